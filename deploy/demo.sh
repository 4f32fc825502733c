#!/usr/bin/env bash
# The demo, in one command: RabbitMQ and Redis (installed and started if needed), a release
# build, then producer, router, two deliverers and a receiver that verifies both
# signatures; a sample hook; a burst of every event; what arrived, and where the metrics
# are. It runs under HOOKBUS_PREFIX=hookbus-demo and leaves other prefixes alone.
# `--once` stops after the report instead of leaving the pipeline running.
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[ "${1:-}" = "--once" ] && once=true
per_event=${HOOKBUS_DEMO_PER_EVENT:-3}

bash deploy/services.sh
echo "demo: building (release)"
cargo build --release --locked --bins -p hookbus-producer -p hookbus-router -p hookbus-deliverer -p hookbus-tests
bin="${CARGO_TARGET_DIR:-target}/release"
logs=.demo
mkdir -p "$logs"

export HOOKBUS_PREFIX=hookbus-demo
export HOOKBUS_ADMIN_TOKEN=demo-admin-token HOOKBUS_INGEST_TOKEN=demo-ingest-token
# The demo receiver is on loopback over plain http: allowed for the demo only.
export HOOKBUS_ALLOW_HTTP=true HOOKBUS_ALLOW_PRIVATE_TARGETS=true
export HOOKBUS_RETRY_SCHEDULE=1s,5s,30s
"$bin/hookbus-demo" reset

pids=()
stop() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT
start() { local name=$1; shift; "$@" >"$logs/$name.log" 2>&1 & pids+=($!); }
start router "$bin/router"
start producer "$bin/producer"
HOOKBUS_DELIVERER_LISTEN=127.0.0.1:7803 start deliverer-1 "$bin/deliverer"
HOOKBUS_DELIVERER_LISTEN=127.0.0.1:7804 start deliverer-2 "$bin/deliverer"
for port in 7801 7802 7803 7804; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "demo: :$port not ready, see $logs/"; exit 1; }
done
echo "demo: producer :7801, router :7802, deliverers :7803 :7804 are ready"

events=$("$bin/hookbus-demo" events | sed 's/.*/"&"/' | paste -sd, -)
hook=$(curl -sf -X POST http://127.0.0.1:7802/api/hooks \
  -H "Authorization: Bearer $HOOKBUS_ADMIN_TOKEN" -H 'content-type: application/json' \
  -d "{\"name\":\"demo\",\"events\":[$events],\"config\":{\"url\":\"http://127.0.0.1:7900/webhook\",\"headers\":{\"x-demo\":\"1\"}}}")
hook_id=$(printf '%s' "$hook" | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)
key=$(printf '%s' "$hook" | grep -o '"signingKey":"[^"]*"' | cut -d'"' -f4)
echo "demo: created hook $hook_id for all $("$bin/hookbus-demo" events | wc -l) events"

HOOKBUS_DEMO_SIGNING_KEY=$key start receiver "$bin/hookbus-demo" receive --listen 127.0.0.1:7900
total=0
for event in $("$bin/hookbus-demo" events); do
  for i in $(seq 1 "$per_event"); do
    curl -sf -o /dev/null -X POST http://127.0.0.1:7801/api/events \
      -H "Authorization: Bearer $HOOKBUS_INGEST_TOKEN" \
      -d "{\"event\":\"$event\",\"userAgent\":\"hookbus-demo\",\"ip\":\"203.0.113.7\",\"data\":{\"id\":\"demo-$i\"}}"
    total=$((total + 1))
  done
done
echo "demo: published $total events (each confirmed by RabbitMQ before the 202)"

stats=""
for _ in $(seq 1 300); do
  stats=$(curl -sf http://127.0.0.1:7900/stats || true)
  printf '%s' "$stats" | grep -q "\"verified\":$total," && break
  sleep 0.1
done
echo
echo "== the receiver's last deliveries ($logs/receiver.log)"
tail -n 5 "$logs/receiver.log"
echo
echo "== receiver stats: $stats"
echo
echo "== deliverer metrics (http://127.0.0.1:7803/metrics, :7804/metrics)"
for port in 7803 7804; do
  curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^hookbus_deliveries_total' | sed "s/^/  :$port  /"
done
printf '%s' "$stats" | grep -q "\"verified\":$total," || { echo "demo: not every event arrived verified"; exit 1; }
echo "demo: all $total deliveries arrived with both signatures verified"
echo
echo "== what the README's examples need (paste into another shell)"
echo "  export HOOKBUS_PREFIX=$HOOKBUS_PREFIX HOOKBUS_INGEST_TOKEN=$HOOKBUS_INGEST_TOKEN HOOKBUS_ADMIN_TOKEN=$HOOKBUS_ADMIN_TOKEN"
echo "  ingest API http://127.0.0.1:7801/api (producer), hooks API http://127.0.0.1:7802/api/hooks (router); binaries in $bin/"
echo "  console: http://127.0.0.1:7802/console (sign in with the admin token $HOOKBUS_ADMIN_TOKEN)"
echo "  metrics: producer http://127.0.0.1:7801/metrics, router http://127.0.0.1:7802/metrics,"
echo "           deliverers http://127.0.0.1:7803/metrics http://127.0.0.1:7804/metrics; logs in $logs/"
echo "  note: the demo runs with HOOKBUS_ALLOW_HTTP=true and HOOKBUS_ALLOW_PRIVATE_TARGETS=true for its"
echo "        loopback receiver, so http:// and localhost hook URLs are accepted here; without them"
echo "        (the default, and what production should keep) such URLs are refused with a 400."
if [ "$once" = false ]; then
  echo "demo: the pipeline keeps running; publish more with:"
  echo "  curl -X POST http://127.0.0.1:7801/api/events -H \"Authorization: Bearer \$HOOKBUS_INGEST_TOKEN\" -d '{\"event\":\"PostSignIn\",\"userId\":\"u1\"}'"
  echo "demo: Ctrl-C stops it"
  wait
fi
