#!/usr/bin/env bash
# Soak benchmark (issue 25, docs/benchmarks.md "Soak"): the whole pipeline (ingress, enrich,
# reserve, warehouse with auto-pack, ship on the sandbox carrier, notify-webflow, the
# simulator) under a steady load for SOAK_SECS, with the prune job (crates/retention) run every
# PRUNE_EVERY_SECS while the load goes on. Every WINDOW_SECS it records the window's p99
# placed -> fulfilled, each service's resident memory (VmRSS), and the rows and size on disk of
# the tables that grow (processed_messages, outbox, audit_log, orders). It ends with the table
# and the last/first ratios after the warm-up (the windows before pruning can have bitten).
#
#   make bench-soak                                  # 30 min at 50 orders/s, release build
#   SOAK_SECS=600 RATE=10 BIN=target/debug bash scripts/bench-soak.sh
#
# The retention is short on purpose, so pruning bites within the run: the dedupe window is
# DEDUPE_SECS (with retention.allow_short_dedupe_window, local profile only), published outbox
# rows OUTBOX_SECS. The audit log cannot be pruned below 30 days (a floor in the database), so
# within a soak it grows with the orders, as the orders table does: both are expected to grow.
# Own namespace and database ($NAMESPACE, $DB), dropped at the end like scripts/bench.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."
NAMESPACE=${NAMESPACE:-soak}
DB=${DB:-wms_soak}
SOAK_SECS=${SOAK_SECS:-1800}
WINDOW_SECS=${WINDOW_SECS:-30}
RATE=${RATE:-50}
SKUS=${SKUS:-50}
PRUNE_EVERY_SECS=${PRUNE_EVERY_SECS:-60}
DEDUPE_SECS=${DEDUPE_SECS:-120}
OUTBOX_SECS=${OUTBOX_SECS:-60}
INGRESS_PORT=${INGRESS_PORT:-18180}
SIM_PORT=${SIM_PORT:-18190}
OUT=${OUT:-.bench/soak.tsv}
source scripts/bench-common.sh
PRUNE=${PRUNE:-$BIN/prune}
for tool in "$PRUNE" "$LOADGEN" "$STACK"; do
  [[ -x $tool ]] || { echo "ERROR: $tool is missing: build it (make release, or BIN=target/debug after cargo build --workspace --bins)" >&2; exit 1; }
done
cleanup() {
  stop_bench_processes
  delete_bench_queues
}
trap cleanup EXIT

export WMS__WEBFLOW__SITES__BENCH__RATE_LIMIT_PER_MINUTE=1000000
export WMS__WEBFLOW__API_BASE_URL=http://127.0.0.1:$SIM_PORT/v2
# Small pools: the PostgreSQL server may be shared (max_connections 100 here); at these rates a
# few connections per service are plenty (ship and notify-webflow hold one more per slot).
export WMS__WORKER__CONCURRENCY=${CONCURRENCY:-4}
export WMS__DATABASE__POOL_SIZE=${POOL_SIZE:-4}

fresh_bench_database
delete_bench_queues
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== soak: $RATE orders/s for $SOAK_SECS s, windows of $WINDOW_SECS s; prune every $PRUNE_EVERY_SECS s (dedupe window $DEDUPE_SECS s, published outbox $OUTBOX_SECS s); binaries $BIN"
declare -A pid_of
WMS__INGRESS__BIND=127.0.0.1:$INGRESS_PORT start_service ingress "$LOGS/soak-ingress.log"; pid_of[ingress]=$started
start_service enrich "$LOGS/soak-enrich.log"; pid_of[enrich]=$started
start_service reserve "$LOGS/soak-reserve.log"; pid_of[reserve]=$started
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "INSERT INTO inventory (sku, on_hand) SELECT 'bench-sku-' || n, 100000000 FROM generate_series(0, GREATEST($SKUS, 2) - 1) n ON CONFLICT (sku) DO UPDATE SET on_hand = 100000000"
start_simulator "$SIM_PORT" "$LOGS/soak-sim.log" --site-id "$SITE" --token bench-token --webhook-secret bench-secret \
  --webhook-url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" --orders-per-minute 0 --rate-limit-per-minute 0
pid_of[webflow-sim]=$started
WMS__CARRIER__KIND=sandbox start_service ship "$LOGS/soak-ship.log"; pid_of[ship]=$started
WMS__WAREHOUSE__BIND=127.0.0.1:0 WMS__WAREHOUSE__API_TOKENS=bench WMS__WAREHOUSE__AUTO_PACK=true \
  WMS__WAREHOUSE__AUTO_PACK_INTERVAL_MS=100 start_service warehouse "$LOGS/soak-warehouse.log"; pid_of[warehouse]=$started
start_service notify-webflow "$LOGS/soak-notify.log"; pid_of[notify-webflow]=$started
services=(ingress enrich reserve warehouse ship notify-webflow webflow-sim)

rss_mib() { awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "-"; }
# rows and MiB (table, indexes, TOAST) of each growing table, tab-separated.
table_sizes() {
  psql -qAt -F $'\t' -h 127.0.0.1 -U postgres -d "$DB" 2>> "$LOGS/soak-psql.log" -c "
    SELECT (SELECT count(*) FROM processed_messages), round(pg_total_relation_size('processed_messages') / 1048576.0, 1),
           (SELECT count(*) FROM outbox), round(pg_total_relation_size('outbox') / 1048576.0, 1),
           (SELECT count(*) FROM audit_log), round(pg_total_relation_size('audit_log') / 1048576.0, 1),
           (SELECT count(*) FROM orders), round(pg_total_relation_size('orders') / 1048576.0, 1)" \
    || printf -- '-\t-\t-\t-\t-\t-\t-\t-'
}
prune_env=(
  WMS__RETENTION__PROCESSED_MESSAGES_DAYS="$(awk "BEGIN{print $DEDUPE_SECS / 86400}")"
  WMS__RETENTION__OUTBOX_PUBLISHED_DAYS="$(awk "BEGIN{print $OUTBOX_SECS / 86400}")"
  WMS__RETENTION__ALLOW_SHORT_DEDUPE_WINDOW=true
  WMS__RETENTION__BATCH_SIZE=1000
)
prune_runs=0
prune_failures=0
pruned=0
prune_pid=
finish_prune() {
  [[ -n $prune_pid ]] || return 0
  # A failed run (the shared server out of connections, say) is counted, not fatal: the next
  # run prunes what it left.
  wait "$prune_pid" || { prune_failures=$((prune_failures + 1)); echo "prune run failed (see $LOGS/soak-prune.log)" >&2; }
  prune_pid=
  local deleted
  deleted=$(sed -n 's/^  "deleted": \([0-9]*\),$/\1/p' "$LOGS/soak-prune.out" | tail -1)
  pruned=$((pruned + ${deleted:-0}))
  prune_runs=$((prune_runs + 1))
}

{
  printf 'window\tend_s\torders\tp99_ms'
  for s in "${services[@]}"; do printf '\trss_%s_mib' "$s"; done
  printf '\tprocessed_rows\tprocessed_mib\toutbox_rows\toutbox_mib\taudit_rows\taudit_mib\torders_rows\torders_mib\tpruned_total\n'
} > "$OUT"
windows=$(((SOAK_SECS + WINDOW_SECS - 1) / WINDOW_SECS))
per_window=$((RATE * WINDOW_SECS))
started_at=$(date +%s)
last_prune=$started_at
for ((w = 1; w <= windows; w++)); do
  now=$(date +%s)
  # The prune job runs beside the load (a CronJob does not wait for a quiet moment).
  if [[ -z $prune_pid ]] && ((now - last_prune >= PRUNE_EVERY_SECS)); then
    env "${prune_env[@]}" "$PRUNE" > "$LOGS/soak-prune.out" 2>> "$LOGS/soak-prune.log" &
    prune_pid=$!
    last_prune=$now
  fi
  # A window whose load generator fails (it lost its database connection) is recorded as
  # failed and the soak goes on; its orders still flow and are counted by the next window.
  p99=failed
  if "$LOADGEN" flow --sim-url "http://127.0.0.1:$SIM_PORT" --database-url "$WMS__DATABASE__URL" --orders "$per_window" \
    --skus "$SKUS" --state fulfilled --rate "$RATE" > "$LOGS/soak-window.out" 2>> "$LOGS/soak-loadgen.log"; then
    p99=$(sed -n 's/.*p99 \([0-9]*\) ms.*/\1/p' "$LOGS/soak-window.out" | tail -1)
  fi
  finish_prune
  {
    printf '%d\t%d\t%d\t%s' "$w" "$(($(date +%s) - started_at))" "$per_window" "${p99:--}"
    for s in "${services[@]}"; do printf '\t%s' "$(rss_mib "${pid_of[$s]}")"; done
    printf '\t%s\t%d\n' "$(table_sizes)" "$pruned"
  } >> "$OUT"
  tail -1 "$OUT"
done

echo "== soak table ($OUT; RSS in MiB, sizes in MiB with indexes; pruned_total: rows the prune job deleted so far, $prune_runs runs)"
column -t -s $'\t' "$OUT"
# Steady state starts once pruning can have bitten: the dedupe window plus one prune interval.
warm=$(((DEDUPE_SECS + PRUNE_EVERY_SECS + WINDOW_SECS - 1) / WINDOW_SECS + 1))
((warm < windows)) || warm=1
echo "== last window / window $warm (the first after the warm-up of $((DEDUPE_SECS + PRUNE_EVERY_SECS)) s); 1.00 is flat"
awk -F '\t' -v warm="$warm" '
  NR == 1 { for (i = 4; i <= NF; i++) name[i] = $i; next }
  NR == warm + 1 { for (i = 4; i <= NF; i++) first[i] = $i }
  { for (i = 4; i <= NF; i++) last[i] = $i; n = NF }
  END {
    for (i = 4; i < n; i++) {
      if (first[i] + 0 > 0) printf "%-26s %10s -> %10s  x%.2f\n", name[i], first[i], last[i], last[i] / first[i]
      else printf "%-26s %10s -> %10s\n", name[i], first[i], last[i]
    }
  }' "$OUT"
echo "prune: $prune_runs runs during the soak ($prune_failures failed), $pruned rows deleted"
