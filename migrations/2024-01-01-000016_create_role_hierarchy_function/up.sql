-- Creates the role hierarchy functions: get_role_level (superadmin 100, admin 50, user 10,
-- else 0), can_modify_user_role (the actor must outrank the target's current role and the
-- new role, if one is given) and is_valid_role. Argument names are the template's: CREATE OR
-- REPLACE FUNCTION cannot rename a parameter, so other names fail on a database it made.
CREATE OR REPLACE FUNCTION get_role_level(role_name VARCHAR)
RETURNS INTEGER
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    RETURN CASE role_name
        WHEN 'superadmin' THEN 100
        WHEN 'admin' THEN 50
        WHEN 'user' THEN 10
        ELSE 0
    END;
END;
$$;

CREATE OR REPLACE FUNCTION can_modify_user_role(
    actor_role VARCHAR,
    target_current_role VARCHAR,
    target_new_role VARCHAR DEFAULT NULL
)
RETURNS BOOLEAN
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    actor_level INTEGER := get_role_level(actor_role);
BEGIN
    IF actor_level <= get_role_level(target_current_role) THEN
        RETURN FALSE;
    END IF;
    IF target_new_role IS NOT NULL AND actor_level <= get_role_level(target_new_role) THEN
        RETURN FALSE;
    END IF;
    RETURN TRUE;
END;
$$;

CREATE OR REPLACE FUNCTION is_valid_role(role_name VARCHAR)
RETURNS BOOLEAN
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    RETURN COALESCE(role_name IN ('superadmin', 'admin', 'user'), FALSE);
END;
$$;

-- Recorded so that a Node app sharing this database does not re-run this migration.
INSERT INTO migrations (name) VALUES ('create_role_hierarchy_function') ON CONFLICT (name) DO NOTHING;
