DELETE FROM migrations WHERE name = 'add_user_profile_fields';
DROP INDEX IF EXISTS idx_users_role;
DROP INDEX IF EXISTS idx_users_additional_roles;
ALTER TABLE users DROP COLUMN IF EXISTS additional_roles;
ALTER TABLE users DROP COLUMN IF EXISTS avatar_url;
