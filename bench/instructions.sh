#!/usr/bin/env bash
# Counts the client instructions per operation of each contender on each
# workload, under valgrind (cachegrind, no cache simulation): instructions
# are repeatable where seconds are not, whatever else the machine does.
#
# For each workload and contender the benchmark runs twice, with N and 2N
# operations (`--contender NAME --ops N`); seeding, connecting and start-up
# cost the same in both runs, so (I(2N) - I(N)) / N is what one operation
# costs in the benchmark's process: the contender's code, its pool, its
# driver tasks and the runtime. The server's work is not counted. Under
# valgrind the longer run also lasts longer, so timers that fire in the
# background (pool maintenance) add a little to the figure, alike for all.
#
# usage: bench/instructions.sh [--only W1,W2,...] [--ops N]   (default: all, N = 1000;
#        W5, 1,000 rows per operation, runs N / 40; W8, a checkout without a query,
#        runs 100 N so that its count stands above the run-to-run noise)
# Prints one markdown table on standard output. BENCH_DATABASE_URL as for run.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
export PATH="$HOME/.cargo/bin:$PATH"

only="W1,W2,W3,W4,W5,W6,W7,W8"
ops=1000
while [ $# -gt 0 ]; do
    case "$1" in
        --only) only="$2"; shift 2 ;;
        --ops) ops="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }

cargo build --release --quiet
bin=./target/release/pronghorn-bench

# The instructions of one run of `n` operations of workload `w` on `c`.
count() {
    local w=$1 c=$2 n=$3 log
    log=$(mktemp)
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        "$bin" --only "$w" --contender "$c" --ops "$n" 2>"$log" >/dev/null || {
        cat "$log" >&2
        rm -f "$log"
        return 1
    }
    grep -E '== I +refs:' "$log" | tr -d ',' | awk '{print $NF}'
    rm -f "$log"
}

echo "| | tokio-postgres | store | sqlx | store ÷ tp | sqlx ÷ tp |"
echo "|---|---:|---:|---:|---:|---:|"
IFS=',' read -ra workloads <<<"$only"
for w in "${workloads[@]}"; do
    w="W${w#[Ww]}"
    n=$ops
    case "$w" in
        W5) n=$(( ops / 40 > 0 ? ops / 40 : 1 )) ;;
        W8) n=$(( ops * 100 )) ;;
    esac
    declare -A per=()
    for c in tokio-postgres store sqlx; do
        one=$(count "$w" "$c" "$n")
        two=$(count "$w" "$c" $(( 2 * n )))
        if ! [[ $one =~ ^[0-9]+$ && $two =~ ^[0-9]+$ ]]; then
            echo "no instruction count for $w on $c" >&2
            exit 1
        fi
        per[$c]=$(( (two - one) / n ))
        echo "$w $c: ${per[$c]} instructions per operation" >&2
    done
    if [ "${per[tokio-postgres]}" -le 0 ]; then
        echo "$w: tokio-postgres counted ${per[tokio-postgres]} per operation; raise --ops" >&2
        exit 1
    fi
    awk -v w="$w" -v tp="${per[tokio-postgres]}" -v st="${per[store]}" -v sq="${per[sqlx]}" 'BEGIN {
        printf "| %s | %.1fk | %.1fk | %.1fk | %.2f× | %.2f× |\n", w, tp / 1000, st / 1000, sq / 1000, st / tp, sq / tp
    }'
    unset per
done
