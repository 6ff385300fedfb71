-- The schema facts of the public schema in the format of tests/fixtures/template_facts.txt
-- (what the Node template's migrate.js leaves), one fact a line, sorted:
--   column <table>.<column> <type>[(<length>)] null=<YES|NO> default=<expression|->
--   constraint <table> <name> <p|u|f|c|...>
--   index <name> <method and key, as pg_indexes gives it after USING>
--   trigger <table> <name> <BEFORE|AFTER> <event>
--   view <name>
--   function <name>(<argument names and types>) -> <result>
-- Diesel's own __diesel_schema_migrations and diesel_* helper functions are left out.
-- Run with: psql -X -At -f tests/sql/template_facts.sql <database>
WITH facts(fact) AS (
    SELECT format('column %s.%s %s%s null=%s default=%s',
                  col.table_name, col.column_name, col.data_type,
                  '(' || col.character_maximum_length || ')',
                  col.is_nullable, coalesce(col.column_default, '-'))
    FROM information_schema.columns col
    WHERE col.table_schema = 'public' AND col.table_name NOT LIKE '\_\_diesel%'

    UNION ALL
    SELECT format('constraint %s %s %s', con.conrelid::regclass, con.conname, con.contype)
    FROM pg_constraint con
    WHERE con.connamespace = 'public'::regnamespace
      AND con.conrelid::regclass::text NOT LIKE '\_\_diesel%'

    UNION ALL
    SELECT format('index %s %s', ix.indexname, regexp_replace(ix.indexdef, '^.* USING ', ''))
    FROM pg_indexes ix
    WHERE ix.schemaname = 'public' AND ix.tablename NOT LIKE '\_\_diesel%'

    UNION ALL
    SELECT format('trigger %s %s %s %s', tg.event_object_table, tg.trigger_name,
                  tg.action_timing, tg.event_manipulation)
    FROM information_schema.triggers tg
    WHERE tg.trigger_schema = 'public'

    UNION ALL
    SELECT 'view ' || v.table_name
    FROM information_schema.views v
    WHERE v.table_schema = 'public'

    UNION ALL
    SELECT format('function %s(%s) -> %s', p.proname,
                  pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid))
    FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace AND p.proname NOT LIKE 'diesel\_%'
)
SELECT fact FROM facts ORDER BY fact;
