-- fact: index idx_users_email_lower btree (lower((email)::text))
-- Not one of the template's migrations: an addition of this crate (no column
-- changes). Emails are compared case-insensitively (lower(email) = $1); this
-- index serves that lookup, which the template's idx_users_email(email)
-- cannot. Not unique, so that a database the template filled with emails
-- differing only in case still adopts.
CREATE INDEX IF NOT EXISTS idx_users_email_lower ON users (lower(email));
