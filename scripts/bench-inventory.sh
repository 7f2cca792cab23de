#!/usr/bin/env bash
# Stock levels back to the storefront (issue 17), for docs/benchmarks.md: a backlog of
# $INV_ORDERS orders over $INV_SKUS SKUs carried to `fulfilled` with inventory sync on, against
# a simulated Webflow limited to $INV_LIMIT/min. Reports the coalescing ratio (inventory calls
# per change of a SKU's available count) and the inventory calls added per order. The numbers
# are counts, not timings: a debug build gives the same ones (BIN=target/debug).
# Runs on its own: scripts/bench.sh calls it last; or `BIN=target/debug scripts/bench-inventory.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
NAMESPACE=${INV_NAMESPACE:-bench-inv}
DB=${INV_DB:-wms_bench_inv}
INGRESS_PORT=${INV_INGRESS_PORT:-18180}
SIM_PORT=${INV_SIM_PORT:-18190}
INV_ORDERS=${INV_ORDERS:-1000}
INV_SKUS=${INV_SKUS:-50}
INV_LIMIT=${INV_LIMIT:-600}
INV_INTERVAL=${INV_INTERVAL:-30}
# Orders placed per second (0: all at once, as fast as the simulator takes them).
INV_RATE=${INV_RATE:-0}
source scripts/bench-common.sh
cleanup() {
  stop_bench_processes
  delete_bench_queues
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

export WMS__WEBFLOW__SITES__BENCH__RATE_LIMIT_PER_MINUTE=$INV_LIMIT
export WMS__WEBFLOW__SITES__BENCH__INVENTORY_SYNC=true
# The simulator's SKU collection of $SITE (webflow_sim::state::sku_collection_id).
export WMS__WEBFLOW__SITES__BENCH__SKU_COLLECTION_ID=5c${SITE:2}
export WMS__INVENTORY_SYNC__MIN_INTERVAL_SECS=$INV_INTERVAL
export WMS__WEBFLOW__API_BASE_URL=http://127.0.0.1:$SIM_PORT/v2
export WMS__WORKER__CONCURRENCY=8
export WMS__DATABASE__POOL_SIZE=4

echo "== stock levels back to the storefront: $INV_ORDERS orders over $INV_SKUS SKUs, sync on (interval ${INV_INTERVAL} s), Webflow limited to $INV_LIMIT/min"
fresh_bench_database
delete_bench_queues
WMS__INGRESS__BIND=127.0.0.1:$INGRESS_PORT start_service ingress "$LOGS/inv-ingress.log"
start_service enrich "$LOGS/inv-enrich.log"
start_service reserve "$LOGS/inv-reserve.log"
WMS__CARRIER__KIND=sandbox start_service ship "$LOGS/inv-ship.log"
WMS__WAREHOUSE__BIND=127.0.0.1:0 WMS__WAREHOUSE__API_TOKENS=bench WMS__WAREHOUSE__AUTO_PACK=true \
  WMS__WAREHOUSE__AUTO_PACK_INTERVAL_MS=100 start_service warehouse "$LOGS/inv-warehouse.log"
start_service notify-webflow "$LOGS/inv-notify.log"
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "INSERT INTO inventory (sku, on_hand) SELECT 'bench-sku-' || n, 100000 FROM generate_series(0, $INV_SKUS - 1) n ON CONFLICT (merchant_id, sku) DO UPDATE SET on_hand = 100000, reserved = 0"
rm -f "$LOGS/inv-sim.log"
start_simulator "$SIM_PORT" "$LOGS/inv-sim.log" --site-id "$SITE" --token bench-token --webhook-secret bench-secret \
  --webhook-url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" --orders-per-minute 0 \
  --rate-limit-per-minute "$INV_LIMIT"
"$BIN/wms-loadgen" flow --sim-url "http://127.0.0.1:$SIM_PORT" --database-url "$WMS__DATABASE__URL" \
  --orders "$INV_ORDERS" --skus "$INV_SKUS" --state fulfilled --limit-per-minute "$INV_LIMIT" --rate "$INV_RATE"
# Then until every SKU's level is in Webflow (at most a few intervals).
for _ in $(seq 600); do
  pending=$(psql -tA -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT count(*) FROM inventory_sync WHERE dirty_since IS NOT NULL")
  [ "$pending" = 0 ] && break
  sleep 1
done
# Changes: every change of a SKU's available count marked its row (change_seq), plus the
# first sight of each SKU. Calls: the simulator's count of inventory PATCHes.
changes=$(psql -tA -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT sum(change_seq) + count(*) FROM inventory_sync WHERE site_id = '$SITE'")
in_step=$(psql -tA -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT count(*) FROM inventory_sync s JOIN inventory i USING (merchant_id, sku) WHERE s.webflow_level = i.on_hand - i.reserved")
stats=$(curl -sf "http://127.0.0.1:$SIM_PORT/_sim/stats")
calls=$(echo "$stats" | jq .inventory_writes)
all_calls=$(echo "$stats" | jq .api_calls)
echo "inventory changes: $changes; inventory calls: $calls; coalescing ratio: $(python3 -c "print(f\"{$calls / $changes:.4f}\")") calls per change"
echo "API calls: $all_calls in all, $(python3 -c "print(f\"{$all_calls / $INV_ORDERS:.3f}\")")/order, of which inventory $(python3 -c "print(f\"{$calls / $INV_ORDERS:.3f}\")")/order; SKUs whose Webflow level equals the warehouse's: $in_step of $INV_SKUS; pending: $pending"
