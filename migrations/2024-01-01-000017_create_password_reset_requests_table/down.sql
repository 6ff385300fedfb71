DELETE FROM migrations WHERE name = 'create_password_reset_requests_table';
DROP VIEW IF EXISTS pending_password_resets;
DROP TABLE IF EXISTS password_reset_requests;
