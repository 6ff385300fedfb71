-- Creates websocket_connections: one row per WebSocket connection, for monitoring and blocking.
CREATE TABLE IF NOT EXISTS websocket_connections (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    connection_id    VARCHAR(64) NOT NULL UNIQUE,
    user_id          UUID REFERENCES users (id) ON DELETE SET NULL,
    ip_address       INET,
    user_agent       TEXT,
    connected_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    disconnected_at  TIMESTAMPTZ,
    last_activity_at TIMESTAMPTZ DEFAULT NOW(),
    message_count    INTEGER NOT NULL DEFAULT 0,
    is_authenticated BOOLEAN NOT NULL DEFAULT FALSE,
    is_blocked       BOOLEAN NOT NULL DEFAULT FALSE,
    blocked_reason   TEXT,
    blocked_at       TIMESTAMPTZ,
    blocked_by       UUID REFERENCES users (id),
    metadata         JSONB DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_ws_connections_user_id ON websocket_connections (user_id);
CREATE INDEX IF NOT EXISTS idx_ws_connections_active ON websocket_connections (disconnected_at)
    WHERE disconnected_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_ws_connections_blocked ON websocket_connections (is_blocked)
    WHERE is_blocked = TRUE;
CREATE INDEX IF NOT EXISTS idx_ws_connections_ip ON websocket_connections (ip_address);
CREATE INDEX IF NOT EXISTS idx_ws_connections_connected_at ON websocket_connections (connected_at);

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('create_websocket_connections_table') ON CONFLICT (name) DO NOTHING;
