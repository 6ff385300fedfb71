-- Adds profile fields to users: avatar_url and additional_roles (a JSON array, GIN-indexed),
-- and an index on role.
ALTER TABLE users ADD COLUMN IF NOT EXISTS avatar_url VARCHAR(500);
ALTER TABLE users ADD COLUMN IF NOT EXISTS additional_roles JSONB DEFAULT '[]';

CREATE INDEX IF NOT EXISTS idx_users_additional_roles ON users USING GIN (additional_roles);
CREATE INDEX IF NOT EXISTS idx_users_role ON users (role);

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('add_user_profile_fields') ON CONFLICT (name) DO NOTHING;
