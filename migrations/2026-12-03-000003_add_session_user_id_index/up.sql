-- fact: index idx_session_user_id btree (((sess ->> 'userId'::text))) WHERE ((sess ->> 'userId'::text) IS NOT NULL)
-- Not one of the template's migrations: an addition of this crate (no column
-- changes). Changing or resetting a password, blocking, deleting or changing
-- the role of a user deletes the sessions whose `sess` holds the user's id as
-- `userId`; this index serves that delete, which would otherwise read every
-- session. `sess` is `json`, which has no equality operator and no GIN
-- support, but `->>` is immutable on it and yields NULL for a session that is
-- not an object or has no `userId`. Partial, so that anonymous sessions cost
-- no index entry.
CREATE INDEX IF NOT EXISTS idx_session_user_id ON "session" ((sess ->> 'userId'))
    WHERE (sess ->> 'userId') IS NOT NULL;
