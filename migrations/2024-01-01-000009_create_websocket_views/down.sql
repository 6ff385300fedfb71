DELETE FROM migrations WHERE name = 'create_websocket_views';
DROP VIEW IF EXISTS websocket_connection_stats;
DROP VIEW IF EXISTS active_websocket_connections;
