#!/usr/bin/env bash
# The whole pipeline on this machine, on built-in defaults: the Webflow simulator as the
# store, the sandbox carrier, auto-pack. Uses the local PostgreSQL and RabbitMQ.
# Stop with Ctrl-C. Logs: .run/<service>.log
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
export WMS_CONFIG=${WMS_CONFIG:-config/local.toml}
RUN=.run
mkdir -p "$RUN"
pids=()
stop() {
  echo; echo "stopping…"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'wms'" | grep -q 1; then
  echo "creating database wms"
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE wms"
fi

start() {
  local name=$1 health=$2; shift 2
  WMS__HEALTH__BIND="127.0.0.1:$health" "$@" > "$RUN/$name.log" 2>&1 &
  pids+=("$!")
  echo "started $name (health http://127.0.0.1:$health/readyz, log $RUN/$name.log)"
}

start ingress 9001 "$BIN/ingress"
start enrich 9002 "$BIN/enrich"
start reserve 9003 "$BIN/reserve"
start ship 9004 "$BIN/ship"
start notify-webflow 9005 "$BIN/notify-webflow"
start warehouse 9006 "$BIN/warehouse"
# Wait until every service is ready (connected, migrations applied) before seeding stock.
for health in 9001 9002 9003 9004 9005 9006; do
  for _ in $(seq 150); do curl -sf "http://127.0.0.1:$health/readyz" > /dev/null && continue 2; sleep 0.2; done
  echo "the service with health port $health is not ready after 30 s: see $RUN/*.log" >&2
  exit 1
done
# Stock for the simulator's catalog (sim-sku-5 starts empty: its orders wait as backorders).
for sku in sim-sku-1 sim-sku-2 sim-sku-3 sim-sku-4; do
  curl -sf -X PUT -H "Authorization: Bearer local-operator-token" -H "content-type: application/json" \
    -d '{"on_hand": 500}' "http://127.0.0.1:8081/api/v1/inventory/$sku" > /dev/null || echo "could not seed $sku"
done
curl -sf -X PUT -H "Authorization: Bearer local-operator-token" -H "content-type: application/json" \
  -d '{"on_hand": 0}' "http://127.0.0.1:8081/api/v1/inventory/sim-sku-5" > /dev/null || true
start webflow-sim 9007 "$BIN/webflow-sim" --bind 127.0.0.1:8090 \
  --webhook-url http://127.0.0.1:8080/webhooks/webflow/65f0c0ffee0000000000beef --orders-per-minute "${ORDERS_PER_MINUTE:-30}"
start reconcile 9008 "$BIN/reconcile"

cat <<MSG

The pipeline runs.

  Operator console:   http://127.0.0.1:8081/console
  Sign-in token:      local-operator-token   (admin on every store, from config/local.toml)

Also:
  orders in the simulated store:  curl -s http://127.0.0.1:8090/_sim/orders | head -c 2000
  writes Webflow received:        curl -s http://127.0.0.1:8090/_sim/writes
  one order's timeline (API):     curl -s -H 'Authorization: Bearer local-operator-token' http://127.0.0.1:8081/api/v1/orders/65f0c0ffee0000000000beef/<order_id>
  logs:                           tail -f $RUN/*.log
  RabbitMQ management UI:         http://localhost:15672 (guest/guest), queues wms.*
Ctrl-C stops everything. Progress every ${PROGRESS_SECS:-5} s:
MSG

# A progress line every few seconds instead of silence: orders by outcome from the database,
# dead letters from the broker (the same code as `wmsctl dlq list`).
progress() {
  local counts dead
  counts=$(psql -h 127.0.0.1 -U postgres -d wms -tA -F ' ' -c \
    "SELECT count(*), count(*) FILTER (WHERE state = 'fulfilled'), count(*) FILTER (WHERE state = 'backordered'),
            count(*) FILTER (WHERE state = 'needs_review') FROM orders" 2>/dev/null) || counts="? ? ? ?"
  dead=$("$BIN/wmsctl" --json dlq list 2>/dev/null | awk -F': ' '/"messages"/ { n += $2 } END { print n + 0 }') || dead="?"
  read -r placed fulfilled backordered review <<< "$counts"
  printf '%s  orders placed %s · fulfilled %s · backordered %s · needs_review %s · dead letters %s\n' \
    "$(date +%H:%M:%S)" "${placed:-?}" "${fulfilled:-?}" "${backordered:-?}" "${review:-?}" "${dead:-?}"
}
while sleep "${PROGRESS_SECS:-5}"; do
  progress
done
