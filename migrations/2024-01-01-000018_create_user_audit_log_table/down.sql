DELETE FROM migrations WHERE name = 'create_user_audit_log_table';
DROP FUNCTION IF EXISTS log_user_action(UUID, UUID, VARCHAR, JSONB, INET, TEXT);
DROP TABLE IF EXISTS user_audit_log;
