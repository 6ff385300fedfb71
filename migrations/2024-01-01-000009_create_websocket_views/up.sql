-- Creates the websocket views: active_websocket_connections (open connections with their
-- user) and websocket_connection_stats (one row of counters).
-- The column types are the template's: counts BIGINT, durations and averages NUMERIC (the
-- plain EXTRACT(EPOCH ...) and AVG results), so that a Node app sharing the database reads
-- the same types as before. The views are dropped and recreated (they hold no data), since
-- CREATE OR REPLACE VIEW cannot change a column's type.
DROP VIEW IF EXISTS websocket_connection_stats;
DROP VIEW IF EXISTS active_websocket_connections;

CREATE VIEW active_websocket_connections AS
SELECT
    wc.id,
    wc.connection_id,
    wc.user_id,
    u.email AS user_email,
    u.display_name AS user_display_name,
    wc.ip_address,
    wc.connected_at,
    wc.last_activity_at,
    wc.message_count,
    wc.is_authenticated,
    wc.is_blocked,
    EXTRACT(EPOCH FROM (NOW() - wc.connected_at)) AS connection_duration_seconds
FROM websocket_connections wc
LEFT JOIN users u ON u.id = wc.user_id
WHERE wc.disconnected_at IS NULL;

CREATE VIEW websocket_connection_stats AS
SELECT
    COUNT(*) FILTER (WHERE disconnected_at IS NULL)::BIGINT AS active_connections,
    COUNT(*) FILTER (WHERE disconnected_at IS NULL AND is_authenticated)::BIGINT AS authenticated_connections,
    COUNT(*) FILTER (WHERE disconnected_at IS NULL AND NOT is_authenticated)::BIGINT AS anonymous_connections,
    COUNT(*) FILTER (WHERE is_blocked)::BIGINT AS blocked_connections,
    COUNT(*)::BIGINT AS total_connections_all_time,
    COALESCE(AVG(message_count), 0) AS avg_messages_per_connection,
    COALESCE(MAX(message_count), 0)::INTEGER AS max_messages_per_connection,
    COALESCE(AVG(EXTRACT(EPOCH FROM (COALESCE(disconnected_at, NOW()) - connected_at))), 0)
        AS avg_connection_duration_seconds
FROM websocket_connections;

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('create_websocket_views') ON CONFLICT (name) DO NOTHING;
