-- fact: column login_failures.email_digest character varying(64) null=NO default=-
-- fact: column login_failures.failures integer null=NO default=0
-- fact: column login_failures.last_failed_at timestamp with time zone null=YES default=-
-- fact: column login_failures.window_started_at timestamp with time zone null=NO default=now()
-- fact: constraint login_failures login_failures_pkey p
-- fact: constraint login_failures login_failures_failures_check c
-- fact: index login_failures_pkey btree (email_digest)
-- fact: index idx_login_failures_window btree (window_started_at)
-- Not one of the template's migrations: an addition of this crate (a table of its own; no
-- template table changes). Failed logins counted per email, so that the count holds across
-- app instances and restarts: past a limit within a window, logins for that email fail before
-- any password hash runs. Keyed by the SHA-256 hex of the normalised email rather than by
-- user, so that unknown emails are counted the same way (the throttle must not tell which
-- emails have accounts) and no stranger's email is stored in clear.
CREATE TABLE IF NOT EXISTS login_failures (
    email_digest      VARCHAR(64) PRIMARY KEY,
    failures          INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_failed_at    TIMESTAMPTZ
);

-- Pruning deletes the rows whose window has passed.
CREATE INDEX IF NOT EXISTS idx_login_failures_window ON login_failures (window_started_at);
