DELETE FROM migrations WHERE name = 'create_role_hierarchy_function';
DROP FUNCTION IF EXISTS is_valid_role(VARCHAR);
DROP FUNCTION IF EXISTS can_modify_user_role(VARCHAR, VARCHAR, VARCHAR);
DROP FUNCTION IF EXISTS get_role_level(VARCHAR);
