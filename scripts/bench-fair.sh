# Per-store fair scheduling of Webflow calls (issue #12; docs/benchmarks.md). Sourced by
# scripts/bench.sh, as its last block (or alone with BENCH_ONLY=fair): it uses that script's
# settings, `pids`, `cleanup` and `delete_bench_queues`.
#
# One big store (the simulator's main site, FAIR_BIG_LIMIT requests/min) with a backlog of
# FAIR_ORDERS shipped orders, and FAIR_SMALL_STORES small stores (FAIR_SMALL_LIMIT/min each, their
# own tokens) each placing an order every FAIR_SMALL_INTERVAL seconds while the backlog drains;
# once per replica count in FAIR_REPLICAS, each run on a fresh database and AMQP namespace.
FAIR_ORDERS=${FAIR_ORDERS:-1000}
FAIR_BIG_LIMIT=${FAIR_BIG_LIMIT:-600}
FAIR_SMALL_STORES=${FAIR_SMALL_STORES:-50}
FAIR_SMALL_LIMIT=${FAIR_SMALL_LIMIT:-60}
FAIR_SMALL_INTERVAL=${FAIR_SMALL_INTERVAL:-10}
FAIR_REPLICAS=${FAIR_REPLICAS:-1 3}
FAIR_SIM_PORT=${FAIR_SIM_PORT:-18092}
FAIR_HEALTH_PORT=${FAIR_HEALTH_PORT:-19100}  # replica r serves /metrics on FAIR_HEALTH_PORT + r
# Every service of this block, replicas included, within PostgreSQL's default 100 connections:
# concurrency 8 and pool 4 (ship and notify-webflow add one connection per delivery in flight),
# so 4 x 3 (enrich, reserve, warehouse) + 12 (ship) + 12 per replica = 60 at most with 3 replicas.
FAIR_CONCURRENCY=${FAIR_CONCURRENCY:-8}
FAIR_POOL=${FAIR_POOL:-4}

echo "== fair scheduling: a backlog of $FAIR_ORDERS shipped orders in one store at $FAIR_BIG_LIMIT/min," \
  "$FAIR_SMALL_STORES stores at $FAIR_SMALL_LIMIT/min placing an order every $FAIR_SMALL_INTERVAL s each;" \
  "notify-webflow replicas: $FAIR_REPLICAS"
echo "   machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg);" \
  "PostgreSQL max_connections $(psql -Atq -h 127.0.0.1 -U postgres -c 'show max_connections')," \
  "$(psql -Atq -h 127.0.0.1 -U postgres -c 'select count(*) from pg_stat_activity where datname is not null') connections open before"
# What the blocks above left running holds connections and consumes the bench queues: stop it.
stop_bench_processes
fair_config="$LOGS/fair-sites.toml"
fair_extra_sites=$("$BIN/wms-loadgen" fair-sites --small-stores "$FAIR_SMALL_STORES" --small-limit "$FAIR_SMALL_LIMIT" --config "$fair_config")
fair_namespace=$NAMESPACE
export WMS_CONFIG=$fair_config  # the small stores; the big one is `bench` from the environment
export WMS__WEBFLOW__SITES__BENCH__RATE_LIMIT_PER_MINUTE=$FAIR_BIG_LIMIT
export WMS__WEBFLOW__API_BASE_URL=http://127.0.0.1:$FAIR_SIM_PORT/v2
export WMS__WORKER__CONCURRENCY=$FAIR_CONCURRENCY
export WMS__DATABASE__POOL_SIZE=$FAIR_POOL
for replicas in $FAIR_REPLICAS; do
  echo "== fair scheduling with $replicas notify-webflow replica(s)"
  # A fresh database and namespace: nothing of the previous run (backlog, budgets, parked messages).
  NAMESPACE="$fair_namespace-fair$replicas"
  export WMS__AMQP__NAMESPACE=$NAMESPACE
  delete_bench_queues
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  run_pids=()
  rm -f "$LOGS/fair-$replicas-sim.log"
  start_simulator "$FAIR_SIM_PORT" "$LOGS/fair-$replicas-sim.log" --site-id "$SITE" --token bench-token --webhook-secret bench-secret \
    --webhook-url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" --orders-per-minute 0 \
    --rate-limit-per-minute "$FAIR_BIG_LIMIT" --extra-sites "$fair_extra_sites"
  run_pids+=("$started")
  WMS__INGRESS__BIND=127.0.0.1:$INGRESS_PORT start_service ingress "$LOGS/fair-$replicas-ingress.log"; run_pids+=("$started")
  for service in enrich reserve; do
    start_service "$service" "$LOGS/fair-$replicas-$service.log"; run_pids+=("$started")
  done
  WMS__CARRIER__KIND=sandbox start_service ship "$LOGS/fair-$replicas-ship.log"; run_pids+=("$started")
  WMS__WAREHOUSE__BIND=127.0.0.1:0 WMS__WAREHOUSE__API_TOKENS=bench WMS__WAREHOUSE__AUTO_PACK=true \
    WMS__WAREHOUSE__AUTO_PACK_INTERVAL_MS=100 start_service warehouse "$LOGS/fair-$replicas-warehouse.log"; run_pids+=("$started")
  # Every service is ready, so the fresh database is migrated: stock the one SKU.
  psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "INSERT INTO inventory (sku, on_hand) VALUES ('bench-sku-1', 100000000) ON CONFLICT (sku) DO UPDATE SET on_hand = 100000000"
  echo "-- the big store's backlog, carried to shipped with notify-webflow stopped"
  "$BIN/wms-loadgen" flow --sim-url "http://127.0.0.1:$FAIR_SIM_PORT" --database-url "$WMS__DATABASE__URL" --orders "$FAIR_ORDERS" --state shipped
  echo "-- notify-webflow starts: the clock starts"
  metrics=()
  for replica in $(seq "$replicas"); do
    started=$("$STACK" start --bin "$BIN" --log "$LOGS/fair-$replicas-notify-$replica.log" \
      --health-port "$((FAIR_HEALTH_PORT + replica))" notify-webflow)
    run_pids+=("$started"); pids+=("$started")
    metrics+=(--metrics-url "http://127.0.0.1:$((FAIR_HEALTH_PORT + replica))/metrics")
  done
  # One look at the budgets a minute into the drain (wmsctl holds 2 connections for about a second).
  (sleep 60 && "$BIN/wmsctl" sites status > "$LOGS/fair-$replicas-sites-status.txt" 2>&1) & run_pids+=("$!"); pids+=("$!")
  "$BIN/wms-loadgen" fair --sim-url "http://127.0.0.1:$FAIR_SIM_PORT" --database-url "$WMS__DATABASE__URL" \
    --big-site-id "$SITE" --big-token bench-token --big-limit "$FAIR_BIG_LIMIT" --small-stores "$FAIR_SMALL_STORES" \
    --small-interval-secs "$FAIR_SMALL_INTERVAL" --replicas "$replicas" --concurrency "$FAIR_CONCURRENCY" "${metrics[@]}"
  echo "   the budgets 60 s into the drain (wmsctl sites status, most calls in the last minute first):"
  { head -n 2 "$LOGS/fair-$replicas-sites-status.txt"; tail -n +3 "$LOGS/fair-$replicas-sites-status.txt" | sort -k5 -rn | head -n 3; } 2>/dev/null | sed 's/^/   /' || true
  stop_processes "${run_pids[@]}"
  delete_bench_queues
done
