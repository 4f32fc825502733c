#!/usr/bin/env bash
# The test command: makes sure RabbitMQ and Redis answer, then runs every test of the
# workspace against them (each test uses a HOOKBUS_PREFIX of its own and cleans up), and
# closes with the totals over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/services.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i + 1) == "passed;") p += $i; if ($(i + 1) == "failed;") f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
