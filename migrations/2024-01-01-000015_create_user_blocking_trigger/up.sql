-- Creates the user_blocked_at trigger: blocking a user stamps blocked_at; unblocking clears
-- blocked_at, blocked_reason and blocked_by.
CREATE OR REPLACE FUNCTION set_user_blocked_at()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.is_blocked = TRUE AND (OLD.is_blocked IS NULL OR OLD.is_blocked = FALSE) THEN
        NEW.blocked_at = NOW();
    ELSIF NEW.is_blocked = FALSE THEN
        NEW.blocked_at = NULL;
        NEW.blocked_reason = NULL;
        NEW.blocked_by = NULL;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS user_blocked_at ON users;
CREATE TRIGGER user_blocked_at
    BEFORE UPDATE ON users
    FOR EACH ROW
    EXECUTE FUNCTION set_user_blocked_at();

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('create_user_blocking_trigger') ON CONFLICT (name) DO NOTHING;
