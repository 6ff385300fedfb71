DELETE FROM migrations WHERE name = 'create_users_updated_at_trigger';
DROP TRIGGER IF EXISTS users_updated_at ON users;
DROP FUNCTION IF EXISTS update_users_timestamp();
