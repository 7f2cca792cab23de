#!/usr/bin/env bash
# A/B of the whole pipeline (issue #16): two sets of release binaries, run in alternating order
# (a-b, b-a, ...) so a change in the machine's load lands on both:
#
#   scripts/bench-flow-ab.sh A_BIN B_BIN [ROUNDS]    # e.g. /tmp/bin-before target/release 3
#
# Each run is `BENCH_ONLY=flow scripts/bench.sh` with that side's binaries (services, simulator and
# load generator): webhook -> reserved ($ORDERS orders), then placed -> fulfilled ($FLOW_ORDERS
# as a backlog), each in a fresh database and its own AMQP namespace (a queue deleted and
# declared again at once can wedge RabbitMQ 3.10's quorum queues). No steady run unless
# FLOW_RATE is set. The summary gives each side's median and range and b/a of the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
A_BIN=${1:?usage: scripts/bench-flow-ab.sh A_BIN B_BIN [ROUNDS]}
B_BIN=${2:?usage: scripts/bench-flow-ab.sh A_BIN B_BIN [ROUNDS]}
ROUNDS=${3:-3}
LOGS=.bench/flow-ab
mkdir -p "$LOGS"
RESULTS=$LOGS/results.tsv
# The summary's statistics: this tree's load generator (`make release` builds it).
LOADGEN=${LOADGEN:-$PWD/target/release/wms-loadgen}
export ORDERS=${ORDERS:-1000} FLOW_ORDERS=${FLOW_ORDERS:-1000} FLOW_RATE=${FLOW_RATE:-0}

run() { # side bin round
  local side=$1 bin=$2 round=$3 out=$LOGS/$1-$3.out
  BIN=$bin BENCH_ONLY=flow DB=wms_flow_ab NAMESPACE="flowab$(date +%s)$side" bash scripts/bench.sh > "$out" 2>&1
  local reserved flow services pg rabbit transactions
  reserved=$(sed -n 's/^pipeline (complete.* = \([0-9.]*\) orders\/s.*/\1/p' "$out")
  flow=$(sed -n 's/.* reached `fulfilled` in .* (\([0-9.]*\) orders\/s).*/\1/p' "$out" | head -1)
  # The cost table of the backlog run: the third `cpu total` line of the output.
  services=$(sed -n 's/^  cpu total: services \([0-9.]*\) .*/\1/p' "$out" | sed -n 3p)
  pg=$(sed -n 's/^  cpu total: services [0-9.]* + postgres bench backends \([0-9.]*\) .*/\1/p' "$out" | sed -n 3p)
  rabbit=$(sed -n 's/^  cpu rabbitmq (beam.smp) *\([0-9.]*\) ms.*/\1/p' "$out" | sed -n 3p)
  transactions=$(sed -n 's/^  database per order: \([0-9.]*\) transactions.*/\1/p' "$out" | sed -n 3p)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$side" "$reserved" "$flow" \
    "$("$LOADGEN" ratio "$flow" "$reserved" --decimals 3 | grep . || echo 0.000)" \
    "$services" "$pg" "$rabbit" "$transactions" | tee -a "$RESULTS"
  sleep 5 # let the broker finish deleting the run's queues
}

echo "== $ROUNDS rounds: a = $A_BIN, b = $B_BIN; machine: $(nproc) cores; $(uptime)"
printf 'round\tside\twebhook->reserved/s\tplaced->fulfilled/s\tratio\tcpu services ms/order\tcpu pg ms/order\tcpu rabbitmq ms/order\ttransactions/order\n' | tee "$RESULTS"
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order=(a b); else order=(b a); fi
  for side in "${order[@]}"; do
    if [[ $side == a ]]; then run a "$A_BIN" "$round"; else run b "$B_BIN" "$round"; fi
  done
done
echo "== summary: median (min-max) over $ROUNDS runs each; b/a of the medians"
"$LOADGEN" ab-summary --a a --b b "$RESULTS"
echo "(per-run output in $LOGS)"
