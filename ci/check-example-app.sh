#!/usr/bin/env bash
# Builds and tests examples/notes-app, an application with a table of its own beside the
# crate's, as a dependent crate would: the crate's migrations and then the app's run through
# the stock diesel CLI on a scratch database (dropped on exit), the app's src/schema.rs must
# be exactly what `diesel print-schema` generates for its tables, and then its format, lint
# and tests (which use the crate's `testing` support).
# Usage: ci/check-example-app.sh   (TEST_DATABASE_URL: an admin connection URL)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
app="$repo/examples/notes-app"
admin_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
[[ -d $HOME/.cargo/bin ]] && PATH=$HOME/.cargo/bin:$PATH

url_base=${admin_url%%\?*}
url_query=${admin_url#"$url_base"}
if [[ $url_base =~ ^postgres(ql)?://[^/]*$ ]]; then url_server=$url_base; else url_server=${url_base%/*}; fi
db="pronghorn_appcheck_$(date +%s)_$$"
db_url="$url_server/$db$url_query"
work=$(mktemp -d)
cleanup() {
    psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

psql -X -q -v ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE \"$db\"" >/dev/null
: >"$work/no-schema.toml"
diesel migration run --migration-dir "$repo/migrations" --config-file "$work/no-schema.toml" \
    --database-url "$db_url" >"$work/log" 2>&1 || { cat "$work/log"; echo "FAIL the crate's migrations"; exit 1; }
(cd "$app" && diesel migration run --locked-schema --database-url "$db_url") >"$work/log" 2>&1 ||
    { cat "$work/log"; echo "FAIL the app's migration, or its src/schema.rs differs from print-schema"; exit 1; }
echo "ok   the app's migration runs after the crate's, and its schema.rs is what print-schema makes"

cd "$app"
export CARGO_TARGET_DIR="$repo/target/notes-app"
cargo fmt -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
