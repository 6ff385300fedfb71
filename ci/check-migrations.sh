#!/usr/bin/env bash
# Checks the Diesel migrations against a real PostgreSQL, in scratch databases that are
# dropped on exit:
#   - src/schema/tables.rs is exactly what the migrations generate (diesel --locked-schema);
#   - every down.sql restores the schema its up.sql started from, and redo --all is a no-op;
#   - reverting everything leaves nothing of ours in the public schema;
#   - the Node template's facts (tests/fixtures/template_facts.txt, what its own migrate.js
#     leaves) are exactly those of the template fixture (tests/fixtures/template_schema.sql),
#     of our 18 template migrations, and of all our migrations less the additions each later
#     migration declares on a `-- fact: ` line;
#   - our migrations adopt the fixture without changing a row;
#   - a database that this crate's earlier release (EARLIER_RELEASE below) migrated, empty or
#     adopted from the template, is brought to the same facts.
# Usage: ci/check-migrations.sh   (TEST_DATABASE_URL: an admin connection URL)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

admin_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
[[ -d $HOME/.cargo/bin ]] && PATH=$HOME/.cargo/bin:$PATH
for tool in diesel psql pg_dump; do
    command -v "$tool" >/dev/null || { echo "FAIL $tool not found on PATH" >&2; exit 1; }
done

# Scratch database URLs: the admin URL with its database name replaced (query string kept).
url_base=${admin_url%%\?*}
url_query=${admin_url#"$url_base"}
if [[ $url_base =~ ^postgres(ql)?://[^/]*$ ]]; then url_server=$url_base; else url_server=${url_base%/*}; fi
db_url() { printf '%s/%s%s' "$url_server" "$1" "$url_query"; }

prefix="pronghorn_migcheck_$(date +%s)_$$"
db_steps="${prefix}_steps"      # stepwise up/down, redo, revert
db_fresh="${prefix}_fresh"      # migrated once, from the repository root
db_fixture="${prefix}_fixture"  # the Node template's database, then adopted
work=$(mktemp -d)
created=()

cleanup() {
    local db
    for db in "${created[@]}"; do
        psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

ok() { printf 'ok   %s\n' "$*"; }
skip() { printf 'skip %s\n' "$*"; }
fail() {
    printf 'FAIL %s\n' "$1"
    [[ -n ${2:-} && -s $2 ]] && sed 's/^/     /' "$2"
    exit 1
}

psql_db() { psql -X -q -v ON_ERROR_STOP=1 "$(db_url "$1")" "${@:2}"; }
create_db() {
    psql -X -q -v ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE \"$1\"" >/dev/null
    created+=("$1")
}
# diesel without the project's print_schema, so that nothing here rewrites src/schema/tables.rs.
: >"$work/no-schema.toml"
diesel_plain() { diesel "$@" --config-file "$work/no-schema.toml"; }
# A schema-only dump without the parts that change from one dump to the next.
dump_schema() {
    pg_dump --schema-only --no-owner --no-privileges "$(db_url "$1")" |
        grep -v -e '^--' -e '^\\restrict ' -e '^\\unrestrict ' -e '^$'
}
catalog_facts() { psql_db "$1" -At -f tests/sql/catalog_facts.sql; }
# The facts in the template's own format, byte-sorted so that files compare line by line.
template_facts() { psql_db "$1" -At -f tests/sql/template_facts.sql | LC_ALL=C sort; }
LC_ALL=C sort tests/fixtures/template_facts.txt >"$work/facts_node_template.txt"
{
    cat "$work/facts_node_template.txt"
    sed -n 's/^-- fact: //p' migrations/*/up.sql
} | LC_ALL=C sort >"$work/facts_expected.txt"
# Fails unless database $1 has exactly the facts in file $2; $3 says what the database is.
expect_facts() {
    template_facts "$1" >"$work/facts_seen.txt"
    diff -u --label "$(basename "$2")" --label "$3" "$2" "$work/facts_seen.txt" >"$work/facts.diff" ||
        fail "facts: $3 differs from $(basename "$2") (- expected, + seen)" "$work/facts.diff"
    ok "facts: $3: exactly the $(wc -l <"$2") facts of $(basename "$2")"
}
# One line per table: name|row count|md5 of its rows in a stable order.
table_contents() {
    psql_db "$1" -At <<'SQL'
SELECT c.relname || '|' ||
       (xpath('/row/n/text()', query_to_xml(format(
            'SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
       || '|' ||
       (xpath('/row/h/text()', query_to_xml(format(
            'SELECT md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) AS h FROM %I.%I t',
            n.nspname, c.relname), false, true, '')))[1]::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> '__diesel_schema_migrations'
ORDER BY c.relname COLLATE "C";
SQL
}

migrations=()
for dir in migrations/*/; do migrations+=("$(basename "$dir")"); done
count=${#migrations[@]}
((count > 0)) || fail "no migrations under migrations/"

# (a) src/schema/tables.rs is exactly what the migrations generate.
create_db "$db_fresh"
if [[ -f src/schema/tables.rs ]]; then
    diesel migration run --locked-schema --database-url "$(db_url "$db_fresh")" >"$work/a.log" 2>&1 ||
        fail "schema.rs: src/schema/tables.rs differs from what the migrations generate (run \`diesel migration run\` and commit it)" "$work/a.log"
    ok "schema.rs: src/schema/tables.rs is exactly what the $count migrations generate"
else
    diesel_plain migration run --migration-dir migrations --database-url "$(db_url "$db_fresh")" >"$work/a.log" 2>&1 ||
        fail "migrate: diesel migration run failed on an empty database" "$work/a.log"
    skip "schema.rs: src/schema/tables.rs does not exist yet (run \`diesel migration run\` once to generate it); migrations ran"
fi

# (b) Forward one migration at a time, keeping each schema; then back one at a time: each
# down.sql must restore exactly the schema its up.sql started from.
create_db "$db_steps"
mkdir "$work/steps"
for ((k = 0; k <= count; k++)); do
    step="(diesel setup)"
    if ((k > 0)); then
        step=${migrations[k - 1]}
        cp -r "migrations/$step" "$work/steps/"
    fi
    diesel_plain migration run --migration-dir "$work/steps" --database-url "$(db_url "$db_steps")" \
        >"$work/b.log" 2>&1 || fail "up: $step failed" "$work/b.log"
    dump_schema "$db_steps" >"$work/up_$k.sql"
done
ok "up: each of the $count migrations applies in turn on an empty database"

diesel_plain migration redo --all --migration-dir migrations --database-url "$(db_url "$db_steps")" \
    >"$work/b.log" 2>&1 || fail "redo: diesel migration redo --all failed" "$work/b.log"
dump_schema "$db_steps" >"$work/redo.sql"
diff -u "$work/up_$count.sql" "$work/redo.sql" >"$work/b.diff" ||
    fail "redo: pg_dump --schema-only differs after diesel migration redo --all" "$work/b.diff"
ok "redo: pg_dump --schema-only is identical after diesel migration redo --all"

for ((k = count - 1; k >= 0; k--)); do
    diesel_plain migration revert --migration-dir migrations --database-url "$(db_url "$db_steps")" \
        >"$work/b.log" 2>&1 || fail "down: ${migrations[k]} failed" "$work/b.log"
    dump_schema "$db_steps" >"$work/down_$k.sql"
    diff -u "$work/up_$k.sql" "$work/down_$k.sql" >"$work/b.diff" ||
        fail "down: ${migrations[k]}/down.sql does not restore the schema before its up.sql" "$work/b.diff"
done
ok "down: each down.sql restores exactly the schema its up.sql started from ($count/$count)"

# (c) After reverting everything, nothing of ours is left in public.
diesel_plain migration run --migration-dir migrations --database-url "$(db_url "$db_steps")" >"$work/c.log" 2>&1 &&
    diesel_plain migration revert --all --migration-dir migrations --database-url "$(db_url "$db_steps")" \
        >>"$work/c.log" 2>&1 || fail "revert: diesel migration revert --all failed" "$work/c.log"
psql_db "$db_steps" -At >"$work/c.left" <<'SQL'
SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                      WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                      WHEN 'i' THEN 'index' ELSE 'relation' END || ' ' || c.relname
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relname NOT IN ('__diesel_schema_migrations', '__diesel_schema_migrations_pkey')
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'type ' || t.typname FROM pg_type t
WHERE t.typnamespace = 'public'::regnamespace
  AND t.typname NOT IN ('__diesel_schema_migrations', '___diesel_schema_migrations')
UNION ALL
SELECT 'trigger ' || tg.tgname FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
WHERE c.relnamespace = 'public'::regnamespace AND NOT tg.tgisinternal
ORDER BY 1;
SQL
[[ ! -s $work/c.left ]] || fail "revert: objects left in public after diesel migration revert --all" "$work/c.left"
ok "revert: after diesel migration revert --all only __diesel_schema_migrations is left in public"

# (d) The Node template's database: same catalog, and adopted without changing a row.
create_db "$db_fixture"
psql_db "$db_fixture" -f tests/fixtures/template_schema.sql >"$work/d.log" 2>&1 ||
    fail "fixture: tests/fixtures/template_schema.sql does not load" "$work/d.log"
expect_facts "$db_fixture" "$work/facts_node_template.txt" "the template fixture"
# The template's 18 migrations (named 2024-01-01-*) must reproduce its schema
# exactly; later ones are this crate's additions and are compared after adoption.
db_template_only="${prefix}_template_only"
create_db "$db_template_only"
mkdir "$work/template_only"
cp -r migrations/2024-01-01-* "$work/template_only/"
diesel_plain migration run --migration-dir "$work/template_only" --database-url "$(db_url "$db_template_only")" \
    >"$work/d.log" 2>&1 || fail "catalog: the template's migrations fail" "$work/d.log"
expect_facts "$db_template_only" "$work/facts_node_template.txt" "our 18 template migrations"
expect_facts "$db_fresh" "$work/facts_expected.txt" "all our migrations (template facts + declared additions)"
catalog_facts "$db_fresh" >"$work/facts_ours.txt"
catalog_facts "$db_template_only" >"$work/facts_template_only.txt"
catalog_facts "$db_fixture" >"$work/facts_template.txt"
diff -u --label migrated --label template "$work/facts_template_only.txt" "$work/facts_template.txt" >"$work/d.diff" ||
    fail "catalog: the template's schema and ours differ" "$work/d.diff"
ok "catalog: template fixture and our $(ls "$work/template_only" | wc -l) template migrations agree on all $(wc -l <"$work/facts_template.txt") catalog facts"

table_contents "$db_fixture" >"$work/rows_before.txt"
diesel_plain migration run --migration-dir migrations --database-url "$(db_url "$db_fixture")" >"$work/d.log" 2>&1 ||
    fail "adopt: our migrations fail on the template's database" "$work/d.log"
ok "adopt: all $count migrations run on the template's database"

# After adoption: the template's tables as they were, and each table of ours, empty.
# Prints the contents of the tables listed in $2 (a before-file) to stdout; fails on a new
# table that holds rows.
contents_after() {
    local line table
    table_contents "$1" >"$work/all_after.txt"
    while IFS= read -r line; do
        table=${line%%|*}
        if grep -q "^$table|" "$2"; then
            printf '%s\n' "$line"
        elif [[ $(cut -d'|' -f2 <<<"$line") != 0 ]]; then
            fail "adopt: the new table $table holds rows after adoption" >&2
        fi
    done <"$work/all_after.txt"
}
contents_after "$db_fixture" "$work/rows_before.txt" >"$work/rows_after.txt"
counts() { cut -d'|' -f1,2 "$1"; }
diff -u --label before --label after <(counts "$work/rows_before.txt") <(counts "$work/rows_after.txt") >"$work/d.diff" ||
    fail "adopt: row counts changed" "$work/d.diff"
ok "adopt: row counts unchanged ($(counts "$work/rows_after.txt" | tr '|\n' '= ' | sed 's/ $//'))"
diff -u --label before --label after "$work/rows_before.txt" "$work/rows_after.txt" >"$work/d.diff" ||
    fail "adopt: row contents changed" "$work/d.diff"
ok "adopt: row contents unchanged (md5 of every table)"

catalog_facts "$db_fixture" >"$work/facts_adopted.txt"
diff -u --label migrated --label adopted "$work/facts_ours.txt" "$work/facts_adopted.txt" >"$work/d.diff" ||
    fail "adopt: the adopted database's catalog differs from ours" "$work/d.diff"
ok "adopt: the adopted database still agrees with ours on every catalog fact"

# (e) Databases this crate's earlier release migrated. That release named the role functions'
# argument `role` and made the websocket views' averages DOUBLE PRECISION; on the template's
# database it failed at create_role_hierarchy_function, leaving the rest pending.
EARLIER_RELEASE=72398ac
if ! git -C "$repo" cat-file -e "$EARLIER_RELEASE^{commit}" 2>/dev/null; then
    # A shallow clone: try to fetch that one commit from where the clone came from.
    git -C "$repo" fetch --quiet --depth=1 origin "$EARLIER_RELEASE" 2>/dev/null || true
fi
if ! git -C "$repo" cat-file -e "$EARLIER_RELEASE^{commit}" 2>/dev/null; then
    skip "earlier: commit $EARLIER_RELEASE is not in this checkout and cannot be fetched (a shallow clone or an export); the earlier release's databases are not checked"
    exit 0
fi
mkdir "$work/earlier"
git -C "$repo" archive "$EARLIER_RELEASE" migrations | tar -x -C "$work/earlier"

db_earlier="${prefix}_earlier"
create_db "$db_earlier"
diesel_plain migration run --migration-dir "$work/earlier/migrations" --database-url "$(db_url "$db_earlier")" \
    >"$work/e.log" 2>&1 || fail "earlier: the earlier release's migrations fail on an empty database" "$work/e.log"
diesel_plain migration run --migration-dir migrations --database-url "$(db_url "$db_earlier")" \
    >"$work/e.log" 2>&1 || fail "earlier: our migrations fail after the earlier release's" "$work/e.log"
expect_facts "$db_earlier" "$work/facts_expected.txt" "a database the earlier release made, migrated now"

db_earlier_adopted="${prefix}_earlier_adopted"
create_db "$db_earlier_adopted"
psql_db "$db_earlier_adopted" -f tests/fixtures/template_schema.sql >"$work/e.log" 2>&1 ||
    fail "fixture: tests/fixtures/template_schema.sql does not load" "$work/e.log"
table_contents "$db_earlier_adopted" >"$work/e_rows_before.txt"
if diesel_plain migration run --migration-dir "$work/earlier/migrations" \
    --database-url "$(db_url "$db_earlier_adopted")" >"$work/e.log" 2>&1; then
    fail "earlier: the earlier release adopted the template's database; this check no longer tests the repair"
fi
grep -q 'cannot change name of input parameter' "$work/e.log" ||
    fail "earlier: the earlier release failed on the template's database for another reason" "$work/e.log"
diesel_plain migration run --migration-dir migrations --database-url "$(db_url "$db_earlier_adopted")" \
    >"$work/e.log" 2>&1 || fail "earlier: our migrations fail after the earlier release's failed adoption" "$work/e.log"
expect_facts "$db_earlier_adopted" "$work/facts_expected.txt" "the template's database after the earlier release failed on it, migrated now"
contents_after "$db_earlier_adopted" "$work/e_rows_before.txt" >"$work/e_rows_after.txt"
diff -u --label before --label after "$work/e_rows_before.txt" "$work/e_rows_after.txt" >"$work/e.diff" ||
    fail "earlier: rows changed while adopting after the earlier release" "$work/e.diff"
ok "earlier: no row changed (md5 of every table)"
