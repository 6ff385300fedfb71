-- Creates user_audit_log (who did what to which account, with details as JSON) and
-- log_user_action(...), which appends one entry and returns its id.
CREATE TABLE IF NOT EXISTS user_audit_log (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    UUID REFERENCES users (id) ON DELETE SET NULL,
    actor_id   UUID REFERENCES users (id) ON DELETE SET NULL,
    action     VARCHAR(100) NOT NULL,
    details    JSONB DEFAULT '{}',
    ip_address INET,
    user_agent TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_audit_log_user ON user_audit_log (user_id);
CREATE INDEX IF NOT EXISTS idx_audit_log_actor ON user_audit_log (actor_id);
CREATE INDEX IF NOT EXISTS idx_audit_log_action ON user_audit_log (action);
CREATE INDEX IF NOT EXISTS idx_audit_log_created ON user_audit_log (created_at);

CREATE OR REPLACE FUNCTION log_user_action(
    p_user_id UUID,
    p_actor_id UUID,
    p_action VARCHAR,
    p_details JSONB DEFAULT '{}',
    p_ip_address INET DEFAULT NULL,
    p_user_agent TEXT DEFAULT NULL
)
RETURNS UUID
LANGUAGE plpgsql
AS $$
DECLARE
    new_id UUID;
BEGIN
    INSERT INTO user_audit_log (user_id, actor_id, action, details, ip_address, user_agent)
    VALUES (p_user_id, p_actor_id, p_action, p_details, p_ip_address, p_user_agent)
    RETURNING id INTO new_id;
    RETURN new_id;
END;
$$;

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('create_user_audit_log_table') ON CONFLICT (name) DO NOTHING;
