-- Not one of the template's migrations: a repair for databases that earlier releases of this
-- crate migrated. Those releases named the argument of get_role_level and is_valid_role `role`
-- (the template says `role_name`) and cast the websocket views' durations and averages to
-- DOUBLE PRECISION (the template leaves them NUMERIC). Migrations 9 and 16 now make the
-- template's objects; this brings a database on which the earlier versions already ran to the
-- same catalog. On any other database it drops nothing: the views stay, and the role
-- functions are rewritten in place as migration 16 writes them. No table is touched.

-- A parameter cannot be renamed by CREATE OR REPLACE: drop the function when it has the old
-- name. Nothing in the catalog depends on these functions (plpgsql bodies call them by name).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_proc
               WHERE pronamespace = 'public'::regnamespace
                 AND proname IN ('get_role_level', 'is_valid_role')
                 AND proargnames = ARRAY['role']) THEN
        DROP FUNCTION IF EXISTS get_role_level(VARCHAR);
        DROP FUNCTION IF EXISTS is_valid_role(VARCHAR);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION get_role_level(role_name VARCHAR)
RETURNS INTEGER
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    RETURN CASE role_name
        WHEN 'superadmin' THEN 100
        WHEN 'admin' THEN 50
        WHEN 'user' THEN 10
        ELSE 0
    END;
END;
$$;

CREATE OR REPLACE FUNCTION is_valid_role(role_name VARCHAR)
RETURNS BOOLEAN
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    RETURN COALESCE(role_name IN ('superadmin', 'admin', 'user'), FALSE);
END;
$$;

-- A view column's type cannot change in place either: where the earlier release's
-- DOUBLE PRECISION columns are found, both views are dropped and made again (they hold no
-- data). Views that already have the template's types are left as they are, with their
-- owner and grants.
DO $repair$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = 'public'
                 AND table_name IN ('active_websocket_connections', 'websocket_connection_stats')
                 AND data_type = 'double precision') THEN
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
    END IF;
END;
$repair$;
