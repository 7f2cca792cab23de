# shellcheck shell=bash
# What scripts/bench.sh and scripts/bench-inventory.sh share (sourced by both, from the
# repository root, after each has set NAMESPACE and DB): the binaries, the bench store, the
# logs, the processes to stop on exit, and the settings every service of a run shares.
# Processes are started and stopped by the launcher (`wms-stack start` / `wms-stack stop`,
# crates/launcher): each with a health listener of its own, returned from once ready.
BIN=${BIN:-target/release}
# The launcher: this tree's (built by `make release`), or the one beside the binaries.
STACK=${STACK:-target/release/wms-stack}
[[ -x $STACK ]] || STACK=$BIN/wms-stack
# The statistics (`wms-loadgen ratio`): this tree's load generator, or the one beside the binaries.
LOADGEN=${LOADGEN:-target/release/wms-loadgen}
[[ -x $LOADGEN ]] || LOADGEN=$BIN/wms-loadgen
SITE=65f0c0ffee0000000000beef
LOGS=.bench
mkdir -p "$LOGS"
pids=()
source scripts/bench-queues.sh
delete_bench_queues() { delete_queues "$NAMESPACE"; }
# start_service NAME LOG [ARGS...]: starts the binary NAME with this environment (a variable
# set on the call applies to it alone), logging to LOG, and returns once it is ready; its pid
# is in $started and in `pids`.
start_service() {
  local name=$1 log=$2; shift 2
  started=$("$STACK" start --bin "$BIN" --log "$log" "$name" -- "$@")
  pids+=("$started")
}
# start_simulator PORT LOG [ARGS...]: the simulator serving on PORT (appending to LOG), once it answers.
start_simulator() {
  local port=$1 log=$2; shift 2
  started=$("$STACK" start --bin "$BIN" --log "$log" --append --sim-port "$port" webflow-sim -- "$@")
  pids+=("$started")
}
# stop_processes PID...: SIGTERM, returning once each has exited.
stop_processes() { (($# == 0)) || "$STACK" stop "$@" || true; }
stop_bench_processes() {
  stop_processes "${pids[@]}"
  pids=()
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
