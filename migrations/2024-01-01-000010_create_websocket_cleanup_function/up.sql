-- Creates cleanup_old_websocket_connections(days_to_keep): deletes connections that ended more
-- than days_to_keep days ago and returns how many rows it deleted.
CREATE OR REPLACE FUNCTION cleanup_old_websocket_connections(days_to_keep INTEGER DEFAULT 30)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    deleted_count INTEGER;
BEGIN
    DELETE FROM websocket_connections
    WHERE disconnected_at IS NOT NULL
      AND disconnected_at < NOW() - make_interval(days => days_to_keep);
    GET DIAGNOSTICS deleted_count = ROW_COUNT;
    RETURN deleted_count;
END;
$$;

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('create_websocket_cleanup_function') ON CONFLICT (name) DO NOTHING;
