DELETE FROM migrations WHERE name = 'add_password_reset_fields';
DROP INDEX IF EXISTS idx_users_reset_token;
ALTER TABLE users DROP COLUMN IF EXISTS reset_attempts_reset_at;
ALTER TABLE users DROP COLUMN IF EXISTS reset_attempts;
ALTER TABLE users DROP COLUMN IF EXISTS reset_token_used;
ALTER TABLE users DROP COLUMN IF EXISTS reset_token_expires;
ALTER TABLE users DROP COLUMN IF EXISTS reset_token;
