-- Adds account blocking to users: is_blocked, when, by whom and why, and a partial index
-- on the blocked accounts.
ALTER TABLE users ADD COLUMN IF NOT EXISTS is_blocked BOOLEAN DEFAULT false;
ALTER TABLE users ADD COLUMN IF NOT EXISTS blocked_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN IF NOT EXISTS blocked_by UUID REFERENCES users (id);
ALTER TABLE users ADD COLUMN IF NOT EXISTS blocked_reason TEXT;

CREATE INDEX IF NOT EXISTS idx_users_blocked ON users (is_blocked) WHERE is_blocked = TRUE;

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('add_user_blocking_fields') ON CONFLICT (name) DO NOTHING;
