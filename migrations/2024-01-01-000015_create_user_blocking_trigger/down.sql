DELETE FROM migrations WHERE name = 'create_user_blocking_trigger';
DROP TRIGGER IF EXISTS user_blocked_at ON users;
DROP FUNCTION IF EXISTS set_user_blocked_at();
