#!/usr/bin/env bash
# The test command: makes sure RabbitMQ and Redis answer and the tools tests call are
# installed (deploy/tools.sh: promtool, and the browser test's through deploy/browser.sh),
# then runs every test of the workspace against them (each test uses a HOOKBUS_PREFIX of
# its own and cleans up), and closes with one line that cannot mislead: the totals over all
# test binaries, or that the build failed, or that no test ran (which is not a pass either).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/services.sh
bash deploy/tools.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
if grep -q '^error: could not compile' "$log"; then
  crates=$(grep -o '^error: could not compile `[^`]*`' "$log" | cut -d'`' -f2 | sort -u | paste -sd, -)
  echo "test: the build failed (could not compile $crates); no test ran"
  exit "$((status == 0 ? 1 : status))"
fi
read -r results passed failed < <(awk '
  /^test result:/ { n++; for (i = 1; i < NF; i++) { if ($(i + 1) == "passed;") p += $i; if ($(i + 1) == "failed;") f += $i } }
  END { printf "%d %d %d\n", n, p, f }' "$log")
if [ "$results" -eq 0 ] && [ "$status" -ne 0 ]; then
  echo "test: cargo failed (exit $status) before any test ran; see above"
  exit "$status"
fi
if [ "$((passed + failed))" -eq 0 ]; then
  echo "test: no test ran (0 passed, 0 failed); that is not a pass"
  exit "$((status == 0 ? 1 : status))"
fi
echo "total: $passed passed, $failed failed"
exit "$status"
