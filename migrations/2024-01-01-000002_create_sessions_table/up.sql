-- Creates "session", the connect-pg-simple session store (singular name, JSON, naive timestamp).
CREATE TABLE IF NOT EXISTS "session" (
    sid    VARCHAR NOT NULL,
    sess   JSON NOT NULL,
    expire TIMESTAMP(6) NOT NULL,
    CONSTRAINT session_pkey PRIMARY KEY (sid)
);

CREATE INDEX IF NOT EXISTS "IDX_session_expire" ON "session" (expire);
