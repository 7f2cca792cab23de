#!/usr/bin/env bash
# A/B benchmark of the services of an older commit against this tree (docs/benchmarks.md,
# "#11 no-regression check"):
#
#   scripts/bench-ab.sh OLD_REV [ROUNDS]        # e.g. scripts/bench-ab.sh 7e027d0 4
#
# Only the service binaries differ: both sides are driven by this tree's load generator
# (`wms-loadgen`) and the pipeline block's simulator, the way scripts/bench.sh runs them. Each
# round runs both sides, one after the other, in alternating order (old-new, new-old, ...), so
# a change in the machine's load lands on both; each side has its own AMQP namespace (ab_old,
# ab_new) and database (wms_ab_old, wms_ab_new), recreated for every run. Per run: the ingress
# block (`wms-loadgen ingress`: throughput over a like-for-like direct-publish baseline measured
# in the same run, p99 at a steady 1,000/s, peak RSS), then webhook -> reserved
# (`wms-loadgen pipeline`, complete payloads) with CPU per order; the load average is recorded
# with each. The summary gives each side's median and range, and new/old of the medians.
#
# The old services are built in a detached worktree of OLD_REV ($OLD_TREE, removed at the end
# unless it existed before) into their own target directory ($OLD_TARGET, kept for reruns; seeded
# from this tree's release dependencies the first time). OLD_BIN=dir skips that build; NEW_BIN=dir
# skips building this tree. INGRESS_ONLY=1 skips the pipeline block.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD_REV=${1:?usage: scripts/bench-ab.sh OLD_REV [ROUNDS]}
ROUNDS=${2:-${ROUNDS:-4}}
old_sha=$(git rev-parse --verify "$OLD_REV^{commit}")
OLD_TREE=${OLD_TREE:-/tmp/wms-ab-${old_sha:0:10}}
OLD_TARGET=${OLD_TARGET:-$PWD/target/ab-${old_sha:0:10}}
SITE=65f0c0ffee0000000000beef
INGRESS_PORT=${INGRESS_PORT:-18280}
HEALTH_PORT=${HEALTH_PORT:-18281}      # the ingress's health listener: /readyz
ENRICH_HEALTH=${ENRICH_HEALTH:-18282}
RESERVE_HEALTH=${RESERVE_HEALTH:-18283}
FAKE_PORT=${FAKE_PORT:-18284}          # the simulator enrich would call (complete payloads: never)
REQUESTS=${REQUESTS:-100000}           # ingress webhooks per run, in INGRESS_ROUNDS rounds
INGRESS_ROUNDS=${INGRESS_ROUNDS:-5}
CONCURRENCY=${CONCURRENCY:-64}
ORDERS=${ORDERS:-5000}
SKUS=${SKUS:-50}
LOGS=${LOGS:-.bench/ab}
mkdir -p "$LOGS"
RESULTS=$LOGS/results.tsv

# The services' own settings, the same for both sides (bench.sh's); the namespace and the
# database are set per side. Keys the old code does not know are ignored by it.
export WMS__PROFILE=local
export WMS__WEBFLOW__SITES__BENCH__SITE_ID=$SITE
export WMS__WEBFLOW__SITES__BENCH__WEBHOOK_SECRETS=bench-secret
export WMS__WEBFLOW__SITES__BENCH__API_TOKEN=bench-token
export WMS__WEBFLOW__SITES__BENCH__RATE_LIMIT_PER_MINUTE=1000000
export WMS__WEBFLOW__API_BASE_URL=http://127.0.0.1:$FAKE_PORT/v2
export WMS__WEBFLOW__ALLOW_INSECURE_HTTP=true
export WMS__TELEMETRY__LOG_LEVEL=warn
export WMS__WORKER__CONCURRENCY=16
export WMS__DATABASE__POOL_SIZE=8
# The old ingress waited 10 s for a request's headers (hard-coded), the new one
# `ingress.header_timeout_ms` (default 5 s): the load generator's connections sit idle while the
# baseline runs, and under load that is more than 5 s.
export WMS__INGRESS__HEADER_TIMEOUT_MS=10000

created_tree=false
pids=()
# Every process is started and stopped by this tree's launcher (crates/launcher), whichever
# side's binaries it runs: `wms-stack start` returns once the process is ready, `stop` once it exited.
stack() { "${STACK:-$NEW_BIN/wms-stack}" "$@"; }
stop_services() {
  ((${#pids[@]} == 0)) || stack stop "${pids[@]}" || true
  pids=()
}
source scripts/bench-queues.sh
cleanup() {
  stop_services
  for side in old new; do
    delete_queues "ab_$side"
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS wms_ab_$side WITH (FORCE)" 2>/dev/null || true
  done
  if $created_tree; then git worktree remove --force "$OLD_TREE" || true; fi
}
trap cleanup EXIT

echo "== building: this tree's services, load generator and simulator; $OLD_REV's services"
if [[ -z ${NEW_BIN:-} ]]; then
  cargo build --release -p ingress -p enrich -p reserve -p loadgen -p webflow-sim -p launcher
  NEW_BIN=$PWD/target/release
fi
if [[ -z ${OLD_BIN:-} ]]; then
  if [[ -d $OLD_TREE ]]; then
    [[ $(git -C "$OLD_TREE" rev-parse HEAD) == "$old_sha" ]] || { echo "$OLD_TREE is not at $OLD_REV" >&2; exit 1; }
  else
    git worktree add --detach "$OLD_TREE" "$old_sha" >/dev/null
    created_tree=true
  fi
  # The dependencies mostly did not change: start from this tree's compiled ones.
  if [[ ! -d $OLD_TARGET/release && -d target/release/deps ]]; then
    mkdir -p "$OLD_TARGET/release"
    cp -a target/release/deps target/release/build target/release/.fingerprint "$OLD_TARGET/release/"
  fi
  (cd "$OLD_TREE" && CARGO_TARGET_DIR=$OLD_TARGET cargo build --release -p ingress -p enrich -p reserve)
  OLD_BIN=$OLD_TARGET/release
fi

load() { cut -d' ' -f1 /proc/loadavg; }
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; } # utime + stime of a pid
export PGOPTIONS="-c client_min_messages=warning"

# One run of one side: the ingress block, then webhook -> reserved. Appends a line to $RESULTS.
run_side() { # side bin round
  local side=$1 bin=$2 round=$3
  local ns=ab_$side db=wms_ab_$side out=$LOGS/$side-$round
  local url=postgres://postgres@127.0.0.1:5432/$db
  export WMS__AMQP__NAMESPACE=$ns WMS__DATABASE__URL=$url
  delete_queues "$ns"
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  local load_ingress
  load_ingress=$(load)
  local ingress_pid
  ingress_pid=$(WMS__INGRESS__BIND=127.0.0.1:$INGRESS_PORT stack start --bin "$bin" --log "$out-ingress.log" --health-port "$HEALTH_PORT" ingress)
  pids+=("$ingress_pid")
  local ticks_before; ticks_before=$(ticks "$ingress_pid")
  "$NEW_BIN/wms-loadgen" ingress --url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" --namespace "$ns" \
    --requests "$REQUESTS" --rounds "$INGRESS_ROUNDS" --concurrency "$CONCURRENCY" --ingress-pid "$ingress_pid" > "$out-ingress.out"
  # The ingress's CPU per webhook (closed-loop rounds plus the open loop's 10 s at 1,000/s):
  # what a busy neighbour distorts least.
  local cpu_webhook
  cpu_webhook=$("$NEW_BIN/wms-loadgen" ratio "$(($(ticks "$ingress_pid") - ticks_before))" "$((REQUESTS + 10000))" --scale 10000 --decimals 1)
  rabbitmqctl -q purge_queue "$ns.enrich" >/dev/null 2>&1 || true
  # Each run's ratio is the median of its INGRESS_ROUNDS rounds; all rounds are kept too.
  sed -n 's/^ratio ingress\/baseline throughput: [0-9.]* (median of rounds: \(.*\))/\1/p' "$out-ingress.out" |
    tr ',' '\n' >> "$LOGS/rounds-$side.txt"
  local rate='' cpu_services='' cpu_pg='' load_pipeline=''
  if [[ ${INGRESS_ONLY:-} != 1 ]]; then
    pids+=("$(stack start --bin "$NEW_BIN" --log "$out-sim.log" --sim-port "$FAKE_PORT" webflow-sim -- --site-id "$SITE" \
      --token bench-token --orders-per-minute 0 --rate-limit-per-minute 0)")
    local enrich_pid reserve_pid
    enrich_pid=$(stack start --bin "$bin" --log "$out-enrich.log" --health-port "$ENRICH_HEALTH" enrich); pids+=("$enrich_pid")
    reserve_pid=$(stack start --bin "$bin" --log "$out-reserve.log" --health-port "$RESERVE_HEALTH" reserve); pids+=("$reserve_pid")
    psql -q -h 127.0.0.1 -U postgres -d "$db" -c "INSERT INTO inventory (sku, on_hand) SELECT 'bench-sku-' || n, 100000000 FROM generate_series(0, $SKUS - 1) n ON CONFLICT (sku) DO UPDATE SET on_hand = 100000000, reserved = 0"
    load_pipeline=$(load)
    "$NEW_BIN/wms-loadgen" pipeline --database-url "$url" --url "http://127.0.0.1:$INGRESS_PORT/webhooks/webflow/$SITE" \
      --orders "$ORDERS" --skus "$SKUS" --concurrency "$CONCURRENCY" --sim-url "http://127.0.0.1:$FAKE_PORT" \
      --pid "ingress=$ingress_pid,enrich=$enrich_pid,reserve=$reserve_pid" > "$out-pipeline.out"
    rate=$(sed -n 's/^pipeline .* = \([0-9.]*\) orders\/s.*/\1/p' "$out-pipeline.out")
    cpu_services=$(sed -n 's/^  cpu total: services \([0-9.]*\) .*/\1/p' "$out-pipeline.out")
    cpu_pg=$(sed -n 's/^  cpu total: services [0-9.]* + postgres bench backends \([0-9.]*\) .*/\1/p' "$out-pipeline.out")
  fi
  stop_services
  delete_queues "$ns"

  local ratio p99 rss
  ratio=$(sed -n 's/^ratio ingress\/baseline throughput: \([0-9.]*\).*/\1/p' "$out-ingress.out")
  p99=$(sed -n 's/^ingress open loop.* p99 *\([0-9.]*\) ms.*/\1/p' "$out-ingress.out")
  rss=$(sed -n 's/^ingress resident memory: .* \([0-9.]*\) MiB peak/\1/p' "$out-ingress.out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$side" "$ratio" "$cpu_webhook" "$p99" "$rss" "$load_ingress" \
    "$rate" "$cpu_services" "$cpu_pg" "$load_pipeline" | tee -a "$RESULTS"
}

echo "== $ROUNDS rounds: old = $OLD_BIN ($OLD_REV, ${old_sha:0:10}), new = $NEW_BIN ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' + uncommitted changes'))"
echo "== machine: $(nproc) cores; $(uptime)"
rm -f "$LOGS/rounds-old.txt" "$LOGS/rounds-new.txt"
printf 'round\tside\tingress/baseline\tingress cpu us/webhook\tp99@1000/s ms\tRSS MiB\tload (ingress)\torders/s\tcpu services ms/order\tcpu pg ms/order\tload (pipeline)\n' | tee "$RESULTS"
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order=(old new); else order=(new old); fi
  for side in "${order[@]}"; do
    if [[ $side == old ]]; then run_side old "$OLD_BIN" "$round"; else run_side new "$NEW_BIN" "$round"; fi
  done
done

echo "== summary: median (min-max) over $ROUNDS runs each; new/old of the medians"
"$NEW_BIN/wms-loadgen" ab-summary --a old --b new "$RESULTS"
for side in old new; do
  "$NEW_BIN/wms-loadgen" rounds-summary --side "$side" "$LOGS/rounds-$side.txt"
done
echo "(per-run output in $LOGS)"
