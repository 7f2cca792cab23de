#!/usr/bin/env bash
# Benchmarks (docs/benchmarks.md). Runs release binaries against the local PostgreSQL and
# RabbitMQ in their own namespace ($NAMESPACE, default "bench") and database ($DB, default
# "wms_bench"), then cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
NAMESPACE=${NAMESPACE:-bench}
DB=${DB:-wms_bench}
INGRESS_PORT=${INGRESS_PORT:-18080}
FAKE_PORT=${FAKE_PORT:-18081}  # the simulator enrich calls in the pipeline run
REQUESTS=${REQUESTS:-100000}
CONCURRENCY=${CONCURRENCY:-64}
ORDERS=${ORDERS:-5000}
FLOW_ORDERS=${FLOW_ORDERS:-1000}
FLOW_RATE=${FLOW_RATE:-50}  # 0: no steady run
# PostgreSQL's log file: when set, the whole-pipeline run also counts the statements of each
# service (the bench database logs every statement, which costs CPU: compare CPU without it).
PG_LOG=${PG_LOG:-}
DRAIN_ORDERS=${DRAIN_ORDERS:-1000}
DRAIN_LIMIT=${DRAIN_LIMIT:-600}
SIM_PORT=${SIM_PORT:-18090}
SIM2_PORT=${SIM2_PORT:-18091}
SKUS=${SKUS:-50}
# Products the whole-pipeline runs cycle through (default: the same catalog as webhook -> reserved).
FLOW_SKUS=${FLOW_SKUS:-$SKUS}
# The simulator's limit per minute in the whole-pipeline runs: 0, none (and no X-RateLimit-Limit
# header; Webflow itself sends one with every answer); set it far above the load to have the header.
FLOW_SIM_LIMIT=${FLOW_SIM_LIMIT:-0}
source scripts/bench-common.sh
cleanup() {
  stop_bench_processes
  delete_bench_queues
}
trap cleanup EXIT

export WMS__WEBFLOW__SITES__BENCH__RATE_LIMIT_PER_MINUTE=1000000
export WMS__WEBFLOW__API_BASE_URL=http://127.0.0.1:$FAKE_PORT/v2
export WMS__WORKER__CONCURRENCY=16
export WMS__DATABASE__POOL_SIZE=8

fresh_bench_database
delete_bench_queues
# BENCH_ONLY=fair runs only the last block, per-store fair scheduling (scripts/bench-fair.sh).
if [[ ${BENCH_ONLY:-} == fair ]]; then source scripts/bench-fair.sh; exit 0; fi
# BENCH_ONLY=inventory runs only the stock-level sync block (scripts/bench-inventory.sh).
if [[ ${BENCH_ONLY:-} == inventory ]]; then BIN=$BIN scripts/bench-inventory.sh; exit 0; fi

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uname -sr)"
[[ ${BENCH_ONLY:-} == flow ]] || echo "== ingress versus direct publish ($REQUESTS webhooks, concurrency $CONCURRENCY)"
WMS__INGRESS__BIND=127.0.0.1:$INGRESS_PORT start_service ingress "$LOGS/ingress.log"; ingress_pid=$started
# BENCH_ONLY=flow runs webhook -> reserved and the whole pipeline only (issue #16's numbers).
if [[ ${BENCH_ONLY:-} != flow ]]; then
  "$BIN/wms-loadgen" ingress --url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" \
    --namespace "$NAMESPACE" --requests "$REQUESTS" --concurrency "$CONCURRENCY" --ingress-pid "$ingress_pid"
fi
rabbitmqctl -q purge_queue "$NAMESPACE.enrich" >/dev/null 2>&1 || true

echo "== pipeline: webhook -> reserved ($ORDERS orders, concurrency $CONCURRENCY)"
# The Webflow enrich GETs partial orders from: a simulator that places no orders of its own and has
# no rate limit (the load generator gives it the complete orders before sending their webhooks).
rm -f "$LOGS/fake.log"
start_simulator "$FAKE_PORT" "$LOGS/fake.log" --site-id "$SITE" --token bench-token --orders-per-minute 0 \
  --rate-limit-per-minute 0; fake_pid=$started
start_service enrich "$LOGS/enrich.log"; enrich_pid=$started
start_service reserve "$LOGS/reserve.log"; reserve_pid=$started
# A catalog of $SKUS products with plenty of stock (orders cycle through them).
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "INSERT INTO inventory (sku, on_hand) SELECT 'bench-sku-' || n, 100000000 FROM generate_series(0, $SKUS - 1) n ON CONFLICT (sku) DO UPDATE SET on_hand = 100000000, reserved = 0"
"$BIN/wms-loadgen" pipeline --database-url "$WMS__DATABASE__URL" --url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" \
  --orders "$ORDERS" --skus "$SKUS" --concurrency "$CONCURRENCY" --sim-url "http://127.0.0.1:$FAKE_PORT" | tee "$LOGS/pipeline.out"
"$BIN/wms-loadgen" pipeline --database-url "$WMS__DATABASE__URL" --url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" \
  --orders "$ORDERS" --skus "$SKUS" --concurrency "$CONCURRENCY" --partial --sim-url "http://127.0.0.1:$FAKE_PORT"

echo "== whole pipeline: order placed in the simulator -> fulfilled ($FLOW_ORDERS orders, no rate limit)"
# A fresh database: the orders above are `reserved` and would otherwise be packed, shipped and
# written back too, to a Webflow that never heard of them.
stop_processes "$enrich_pid" "$reserve_pid" "$fake_pid"
fresh_bench_database
pg_log=()
if [[ -n $PG_LOG ]]; then
  psql -q -h 127.0.0.1 -U postgres -c "ALTER DATABASE $DB SET log_statement = 'all'"
  pg_log=(--pg-log "$PG_LOG")
fi
# Each service names its connections (application_name), so the cost table splits
# PostgreSQL's CPU between them.
as_app() { echo "postgres://postgres@127.0.0.1:5432/$DB?application_name=$1"; }
WMS__DATABASE__URL=$(as_app enrich) start_service enrich "$LOGS/enrich-flow.log"; enrich_pid=$started
WMS__DATABASE__URL=$(as_app reserve) start_service reserve "$LOGS/reserve-flow.log"; reserve_pid=$started
# The same catalog as webhook -> reserved ($FLOW_SKUS products, default $SKUS), so the ratio
# compares like with like: with one product every reservation waits for the one inventory row
# (FLOW_SKUS=1 measures that case).
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "INSERT INTO inventory (sku, on_hand) SELECT 'bench-sku-' || n, 100000000 FROM generate_series(0, GREATEST($FLOW_SKUS, 2) - 1) n ON CONFLICT (sku) DO UPDATE SET on_hand = 100000000"
start_sim() {
  start_simulator "$SIM_PORT" "$LOGS/sim.log" --site-id "$SITE" --token bench-token --webhook-secret bench-secret \
    --webhook-url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" --orders-per-minute 0 --rate-limit-per-minute "$FLOW_SIM_LIMIT"
  sim_pid=$started
}
start_sim
WMS__DATABASE__URL=$(as_app ship) WMS__CARRIER__KIND=sandbox start_service ship "$LOGS/ship.log"; ship_pid=$started
WMS__DATABASE__URL=$(as_app warehouse) WMS__WAREHOUSE__BIND=127.0.0.1:0 WMS__WAREHOUSE__API_TOKENS=bench WMS__WAREHOUSE__AUTO_PACK=true \
  WMS__WAREHOUSE__AUTO_PACK_INTERVAL_MS=100 start_service warehouse "$LOGS/warehouse.log"; warehouse_pid=$started
WMS__DATABASE__URL=$(as_app notify-webflow) WMS__WEBFLOW__API_BASE_URL="http://127.0.0.1:$SIM_PORT/v2" start_service notify-webflow "$LOGS/notify.log"
notify_pid=$started
flow_pids() {
  echo "ingress=$ingress_pid,enrich=$enrich_pid,reserve=$reserve_pid,warehouse=$warehouse_pid,ship=$ship_pid,notify-webflow=$notify_pid,webflow-sim=$sim_pid"
}
"$BIN/wms-loadgen" flow --sim-url "http://127.0.0.1:$SIM_PORT" --database-url "$WMS__DATABASE__URL" --orders "$FLOW_ORDERS" --skus "$FLOW_SKUS" --state fulfilled \
  --pid "$(flow_pids)" "${pg_log[@]}" | tee "$LOGS/flow.out"
# The regression guard: the whole flow against webhook -> reserved, both from this run.
reserved_rate=$(sed -n 's/.* = \([0-9.]*\) orders\/s.*/\1/p' "$LOGS/pipeline.out" | head -1)
flow_rate=$(sed -n 's/.* (\([0-9.]*\) orders\/s).*/\1/p' "$LOGS/flow.out" | head -1)
ratio=$("$LOADGEN" ratio "$flow_rate" "$reserved_rate" --decimals 2 || true)
if [[ -n $ratio ]]; then
  printf 'ratio placed -> fulfilled / webhook -> reserved (this run): %.0f / %.0f = %s (target >= 0.80)\n' "${flow_rate:-0}" "$reserved_rate" "$ratio"
fi
if ((FLOW_RATE > 0)); then
  echo "== whole pipeline at a steady $FLOW_RATE orders/s ($((FLOW_RATE * 20)) orders): latency without a backlog"
  # A fresh simulator, so its counters and latencies cover this run only.
  stop_processes "$sim_pid"
  start_sim
  "$BIN/wms-loadgen" flow --sim-url "http://127.0.0.1:$SIM_PORT" --database-url "$WMS__DATABASE__URL" --orders "$((FLOW_RATE * 20))" --skus "$FLOW_SKUS" --state fulfilled --rate "$FLOW_RATE" \
    --pid "$(flow_pids)"
fi
if [[ -n $PG_LOG ]]; then psql -q -h 127.0.0.1 -U postgres -c "ALTER DATABASE $DB RESET log_statement"; fi
echo "== peak resident memory of each service after the whole-pipeline run (VmHWM)"
for name in ingress enrich reserve ship warehouse notify-webflow webflow-sim; do
  for pid in $(pgrep -f "$BIN/$name( |\$)" || true); do
    awk '/VmHWM/{printf "%s (pid %s): %.1f MiB\n", "'"$name"'", "'"$pid"'", $2/1024}' "/proc/$pid/status" 2>/dev/null || true
  done
done
stop_processes "$notify_pid" "$sim_pid"
if [[ ${BENCH_ONLY:-} == flow ]]; then exit 0; fi

echo "== drain a backlog of $DRAIN_ORDERS shipped orders against Webflow limited to $DRAIN_LIMIT/min"
rm -f "$LOGS/sim2.log"
start_simulator "$SIM2_PORT" "$LOGS/sim2.log" --site-id "$SITE" --token bench-token --webhook-secret bench-secret \
  --webhook-url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" --orders-per-minute 0 --rate-limit-per-minute "$DRAIN_LIMIT"
"$BIN/wms-loadgen" flow --sim-url "http://127.0.0.1:$SIM2_PORT" --database-url "$WMS__DATABASE__URL" --orders "$DRAIN_ORDERS" --state shipped
# Three replicas within PostgreSQL's default 100 connections (each holds its pool plus one
# connection per in-flight per-order lock): concurrency 8, pool 4.
for replica in 1 2 3; do
  WMS__WEBFLOW__API_BASE_URL="http://127.0.0.1:$SIM2_PORT/v2" WMS__WORKER__CONCURRENCY=8 WMS__DATABASE__POOL_SIZE=4 \
    WMS__WEBFLOW__SITES__BENCH__RATE_LIMIT_PER_MINUTE="$DRAIN_LIMIT" start_service notify-webflow "$LOGS/notify-$replica.log"
done
"$BIN/wms-loadgen" flow --sim-url "http://127.0.0.1:$SIM2_PORT" --database-url "$WMS__DATABASE__URL" --orders "$DRAIN_ORDERS" \
  --create false --state fulfilled --limit-per-minute "$DRAIN_LIMIT"

# Stock levels back to the storefront (issue 17): its own stack, database and namespace.
BIN=$BIN scripts/bench-inventory.sh

# Per-store fair scheduling (issue #12): its own services, database and namespace per run.
source scripts/bench-fair.sh
