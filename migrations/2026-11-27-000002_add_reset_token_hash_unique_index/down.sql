DROP INDEX IF EXISTS idx_reset_requests_token_hash;
