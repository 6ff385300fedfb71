-- Creates users (accounts, local or OAuth) with its email and OAuth lookup indexes.
CREATE TABLE IF NOT EXISTS users (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email               VARCHAR(255) NOT NULL UNIQUE,
    password_hash       VARCHAR(255),
    display_name        VARCHAR(100) NOT NULL,
    language_preference VARCHAR(10) DEFAULT 'en',
    oauth_provider      VARCHAR(50) DEFAULT 'local',
    oauth_id            VARCHAR(255),
    email_verified      BOOLEAN DEFAULT false,
    role                VARCHAR(50) DEFAULT 'user',
    created_at          TIMESTAMPTZ DEFAULT NOW(),
    updated_at          TIMESTAMPTZ DEFAULT NOW(),
    last_login          TIMESTAMPTZ,
    CONSTRAINT unique_oauth UNIQUE (oauth_provider, oauth_id)
);

-- Databases made by template versions older than language_preference lack the column.
ALTER TABLE users ADD COLUMN IF NOT EXISTS language_preference VARCHAR(10) DEFAULT 'en';

CREATE INDEX IF NOT EXISTS idx_users_email ON users (email);
CREATE INDEX IF NOT EXISTS idx_users_oauth ON users (oauth_provider, oauth_id);
