DELETE FROM migrations WHERE name = 'create_websocket_triggers';
DROP TRIGGER IF EXISTS ws_connection_blocked_at ON websocket_connections;
DROP TRIGGER IF EXISTS ws_connection_updated_at ON websocket_connections;
DROP FUNCTION IF EXISTS set_ws_connection_blocked_at();
DROP FUNCTION IF EXISTS update_ws_connection_timestamp();
