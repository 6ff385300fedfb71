-- Creates password_reset_requests (one row per requested reset, token stored as a hash) and
-- the pending_password_resets view: unused requests with their user, newest first, each
-- marked 'pending' or 'expired'.
CREATE TABLE IF NOT EXISTS password_reset_requests (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reset_token_hash VARCHAR(255) NOT NULL,
    requested_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at       TIMESTAMPTZ NOT NULL,
    used_at          TIMESTAMPTZ,
    ip_address       INET,
    user_agent       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_reset_requests_user ON password_reset_requests (user_id);
CREATE INDEX IF NOT EXISTS idx_reset_requests_expires ON password_reset_requests (expires_at)
    WHERE used_at IS NULL;

-- Dropped and recreated rather than replaced: CREATE OR REPLACE VIEW cannot change a
-- column's name or type, should a template database hold a different shape.
DROP VIEW IF EXISTS pending_password_resets;
CREATE VIEW pending_password_resets AS
SELECT
    prr.id,
    prr.user_id,
    u.email,
    u.display_name,
    prr.requested_at,
    prr.expires_at,
    prr.ip_address,
    (CASE WHEN prr.expires_at < NOW() THEN 'expired' ELSE 'pending' END)::TEXT AS status
FROM password_reset_requests prr
JOIN users u ON u.id = prr.user_id
WHERE prr.used_at IS NULL
ORDER BY prr.requested_at DESC;

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('create_password_reset_requests_table') ON CONFLICT (name) DO NOTHING;
