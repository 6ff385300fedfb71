-- fact: index idx_reset_requests_token_hash btree (reset_token_hash)
-- Not one of the template's migrations: an addition of this crate (no column
-- changes). Reset tokens are looked up by the SHA-256 digest of the token a
-- client presents; this index serves that lookup, and being unique it also
-- guarantees that one digest names one request. Digests the template stored
-- are salted bcrypt hashes, which never repeat, so a template database adopts.
CREATE UNIQUE INDEX IF NOT EXISTS idx_reset_requests_token_hash
    ON password_reset_requests (reset_token_hash);
