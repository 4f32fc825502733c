#!/usr/bin/env bash
# What tracing costs, in instructions per event: `bench tracing` run under callgrind, which
# counts the instructions the bench's process executes (the pipeline's producer, router and
# deliverer, the load, the receiver and the OTLP sink), the same from one run to the next
# whatever else the machine does. Throughput and CPU time on a two-core machine shared with
# RabbitMQ scatter between runs by more than tracing's cost; instruction counts do not.
#
# Each mode runs three times: 1,000 events through each path, then 4,000 more through the
# Rust SDK, then 2,000 more through the HTTP ingest; the differences divided by the events
# added are the instructions of one event through each path (the pipeline's start, the
# warm-up and the shutdown cancel out). The sink's share (decoding nothing, only reading
# each export's bytes) is counted in: an upper bound of hookbus's.
#
# Usage: bench/tracing-instructions.sh [path of the bench binary]  (about 4 minutes)
# Needs valgrind; RabbitMQ and Redis as for every benchmark.
set -euo pipefail

bench=${1:-target/release/bench}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
[ -x "$bench" ] || { echo "no $bench: cargo build --release -p hookbus-bench" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Instructions of one run of `bench tracing --only $1 --events $2 --ingest-events $3`.
instructions() {
    HOOKBUS_PREFIX="instr-$$-$1-$2-$3" valgrind --tool=callgrind \
        --callgrind-out-file="$work/out" "$bench" tracing --only "$1" --repeats 1 \
        --events "$2" --ingest-events "$3" >"$work/log" 2>&1 ||
        { cat "$work/log" >&2; exit 1; }
    grep -oP 'Collected : \K[0-9]+' "$work/log"
}

echo "| tracing | instructions per event, Rust SDK | cost | instructions per event, HTTP ingest | cost |"
echo "|---|---|---|---|---|"
for mode in off 1 100; do
    base=$(instructions "$mode" 1000 1000)
    sdk=$(( ($(instructions "$mode" 5000 1000) - base) / 4000 ))
    ingest=$(( ($(instructions "$mode" 1000 3000) - base) / 2000 ))
    if [ "$mode" = off ]; then off_sdk=$sdk off_ingest=$ingest; fi
    case $mode in off) name=off ;; *) name="on, $mode % sampled" ;; esac
    awk -v n="$name" -v s="$sdk" -v i="$ingest" -v os="$off_sdk" -v oi="$off_ingest" \
        'BEGIN { printf "| %s | %.1fk | %+.1f %% | %.1fk | %+.1f %% |\n", n, s/1000, (s/os-1)*100, i/1000, (i/oi-1)*100 }'
done
