DELETE FROM migrations WHERE name = 'create_websocket_cleanup_function';
DROP FUNCTION IF EXISTS cleanup_old_websocket_connections(INTEGER);
