-- The schema facts of the public schema that must agree between a database our migrations
-- made and one the Node template made: one '|'-separated text row per fact, sorted.
-- Run with: psql -X -At -f tests/sql/catalog_facts.sql <database>
-- Table column positions are left out (ALTER TABLE ADD COLUMN on an adopted database
-- cannot reorder columns); view column positions are kept, since SELECT * depends on them.
-- Diesel's own __diesel_schema_migrations is left out.
WITH
rels AS (
    SELECT c.oid, c.relname, c.relkind
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace
      AND c.relname <> '__diesel_schema_migrations'
),
facts(fact) AS (
    SELECT concat_ws('|', 'relation', r.relname,
                     CASE r.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                                    WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                                    WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                                    ELSE r.relkind::text END)
    FROM rels r
    WHERE r.relkind <> 'i'

    UNION ALL
    SELECT concat_ws('|', 'column', r.relname, a.attname,
                     format_type(a.atttypid, a.atttypmod),
                     CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                     'default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
                     'collation=' || coalesce(nullif(a.attcollation, t.typcollation)::regcollation::text, ''))
    FROM rels r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE r.relkind IN ('r', 'p')

    UNION ALL
    SELECT concat_ws('|', 'view column', r.relname, lpad(a.attnum::text, 3, '0'), a.attname,
                     format_type(a.atttypid, a.atttypmod))
    FROM rels r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE r.relkind IN ('v', 'm')

    UNION ALL
    SELECT concat_ws('|', 'constraint', r.relname, con.conname,
                     CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                                      WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check'
                                      WHEN 'x' THEN 'exclusion' ELSE con.contype::text END,
                     pg_get_constraintdef(con.oid))
    FROM pg_constraint con
    JOIN rels r ON r.oid = con.conrelid

    UNION ALL
    SELECT concat_ws('|', 'index', r.relname, ic.relname, pg_get_indexdef(ic.oid))
    FROM pg_index i
    JOIN rels r ON r.oid = i.indrelid
    JOIN pg_class ic ON ic.oid = i.indexrelid

    UNION ALL
    SELECT concat_ws('|', 'trigger', r.relname, tg.tgname,
                     CASE tg.tgenabled WHEN 'D' THEN 'disabled' ELSE 'enabled' END,
                     pg_get_triggerdef(tg.oid))
    FROM pg_trigger tg
    JOIN rels r ON r.oid = tg.tgrelid
    WHERE NOT tg.tgisinternal

    UNION ALL
    SELECT concat_ws('|', 'sequence', s.seqrelid::regclass::text, format_type(s.seqtypid, NULL),
                     'owned by ' || coalesce(dep.refobjid::regclass::text || '.' || att.attname, 'nothing'))
    FROM pg_sequence s
    JOIN rels r ON r.oid = s.seqrelid
    LEFT JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = s.seqrelid
                           AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
    LEFT JOIN pg_attribute att ON att.attrelid = dep.refobjid AND att.attnum = dep.refobjsubid

    UNION ALL
    SELECT concat_ws('|', 'function', p.proname,
                     pg_get_function_identity_arguments(p.oid),
                     'args=' || pg_get_function_arguments(p.oid),
                     'returns=' || pg_get_function_result(p.oid),
                     CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable'
                                        ELSE 'volatile' END,
                     'language=' || l.lanname,
                     CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure'
                                    WHEN 'a' THEN 'aggregate' ELSE 'window' END)
    FROM pg_proc p
    JOIN pg_language l ON l.oid = p.prolang
    WHERE p.pronamespace = 'public'::regnamespace

    UNION ALL
    SELECT concat_ws('|', 'type', t.typname, t.typtype::text)
    FROM pg_type t
    WHERE t.typnamespace = 'public'::regnamespace
      AND t.typtype NOT IN ('c')          -- row types of the relations above
      AND NOT (t.typcategory = 'A' AND EXISTS (
            SELECT 1 FROM pg_type e WHERE e.oid = t.typelem AND e.typtype = 'c'))
)
SELECT fact FROM facts ORDER BY fact COLLATE "C";
