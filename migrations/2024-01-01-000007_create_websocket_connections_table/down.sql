DELETE FROM migrations WHERE name = 'create_websocket_connections_table';
DROP TABLE IF EXISTS websocket_connections;
