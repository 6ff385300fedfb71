-- Creates the websocket_connections triggers: updated_at on every update, and blocked_at
-- set when a connection becomes blocked (block details cleared when it is unblocked).
-- Function names are the Node template's, so that adopting its database leaves no orphan.
CREATE OR REPLACE FUNCTION update_ws_connection_timestamp()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS ws_connection_updated_at ON websocket_connections;
CREATE TRIGGER ws_connection_updated_at
    BEFORE UPDATE ON websocket_connections
    FOR EACH ROW
    EXECUTE FUNCTION update_ws_connection_timestamp();

CREATE OR REPLACE FUNCTION set_ws_connection_blocked_at()
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

DROP TRIGGER IF EXISTS ws_connection_blocked_at ON websocket_connections;
CREATE TRIGGER ws_connection_blocked_at
    BEFORE UPDATE ON websocket_connections
    FOR EACH ROW
    EXECUTE FUNCTION set_ws_connection_blocked_at();

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('create_websocket_triggers') ON CONFLICT (name) DO NOTHING;
