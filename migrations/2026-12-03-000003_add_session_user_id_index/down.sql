DROP INDEX IF EXISTS idx_session_user_id;
