# shellcheck shell=bash
# What scripts/bench.sh and scripts/bench-inventory.sh share (sourced by both, from the
# repository root, after each has set NAMESPACE and DB): the binaries, the bench store, the
# logs, the processes to stop on exit, and the settings every service of a run shares.
BIN=${BIN:-target/release}
SITE=65f0c0ffee0000000000beef
LOGS=.bench
mkdir -p "$LOGS"
pids=()
source scripts/bench-queues.sh
delete_bench_queues() { delete_queues "$NAMESPACE"; }
stop_bench_processes() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
fresh_bench_database() {
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
}

# A local run: the simulator, the sandbox carrier and plain-http Webflow are allowed only here.
export WMS__PROFILE=local
export WMS__AMQP__NAMESPACE=$NAMESPACE
export WMS__DATABASE__URL=postgres://postgres@127.0.0.1:5432/$DB
export WMS__WEBFLOW__SITES__BENCH__SITE_ID=$SITE
export WMS__WEBFLOW__SITES__BENCH__WEBHOOK_SECRETS=bench-secret
export WMS__WEBFLOW__SITES__BENCH__API_TOKEN=bench-token
export WMS__WEBFLOW__ALLOW_INSECURE_HTTP=true
export WMS__TELEMETRY__LOG_LEVEL=warn
