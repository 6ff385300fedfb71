-- Creates migrations, the Node template's own migration log, kept for parity with the Node app.
CREATE TABLE IF NOT EXISTS migrations (
    id          SERIAL PRIMARY KEY,
    name        VARCHAR(255) NOT NULL UNIQUE,
    executed_at TIMESTAMPTZ DEFAULT NOW()
);

-- Recorded so that a Node app sharing this database treats these migrations as done and never re-runs them.
INSERT INTO migrations (name) VALUES
    ('create_users_table'),
    ('create_sessions_table'),
    ('create_refresh_tokens_table'),
    ('create_conversations_table'),
    ('create_messages_table'),
    ('create_migrations_table')
ON CONFLICT (name) DO NOTHING;
