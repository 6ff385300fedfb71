DELETE FROM migrations WHERE name = 'add_user_blocking_fields';
DROP INDEX IF EXISTS idx_users_blocked;
ALTER TABLE users DROP COLUMN IF EXISTS blocked_reason;
ALTER TABLE users DROP COLUMN IF EXISTS blocked_by;
ALTER TABLE users DROP COLUMN IF EXISTS blocked_at;
ALTER TABLE users DROP COLUMN IF EXISTS is_blocked;
