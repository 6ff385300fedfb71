#!/usr/bin/env bash
# Builds the benchmark in release mode and runs it: the store of pronghorn-db
# against hand-written tokio-postgres and sqlx, with pgbench's select-only
# rate, on the server of BENCH_DATABASE_URL (default: postgres://postgres@127.0.0.1:5432/postgres,
# as an admin that may create databases). Prints one markdown table on
# standard output, progress on standard error. Options are passed on to the
# benchmark: ./run.sh --help lists them (--rounds, --secs, --only, ...).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v pgbench >/dev/null && ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then
    echo "pgbench is missing (it ships with the PostgreSQL server package); or pass --no-pgbench" >&2
fi

# Not --locked: the root crate is a path dependency, and its own new
# dependencies must be able to enter this lock file.
cargo build --release --quiet
exec ./target/release/pronghorn-bench "$@"
