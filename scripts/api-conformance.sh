#!/usr/bin/env bash
# API conformance (make api-conformance, part of make test): runs the real warehouse binary
# against a fresh PostgreSQL database and its own AMQP namespace, then schemathesis against
# the OpenAPI document the binary serves (generated from the code; the same as
# docs/openapi.json). Fails on any 5xx or any response the document does not describe
# (status code, content type, body schema), or a declared path answering an undeclared
# method with something other than 405. Everything it creates is removed, also on failure.
#
# Needs: target/debug/warehouse and webflow-sim (cargo build --workspace --bins), schemathesis (.ci/run
# installs it), psql, curl, python3, PostgreSQL and RabbitMQ (with the management API).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/debug/warehouse}
SIM_BIN=${SIM_BIN:-target/debug/webflow-sim}
PG=${WMS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
AMQP=${WMS_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
MGMT=${WMS_TEST_MGMT_URL:-http://guest:guest@127.0.0.1:15672}
# Bounded and reproducible: deterministic generation (the same requests on every run), a fixed
# number of examples per operation, one worker.
MAX_EXAMPLES=${API_CONFORMANCE_MAX_EXAMPLES:-40}

for tool in schemathesis psql curl python3; do
  command -v "$tool" > /dev/null || { echo "api-conformance: \`$tool\` is missing (.ci/run installs schemathesis)" >&2; exit 1; }
done
for bin in "$BIN" "$SIM_BIN"; do
  [ -x "$bin" ] || { echo "api-conformance: $bin is missing; run cargo build --workspace --bins" >&2; exit 1; }
done

id="apiconf-$$-$(date +%s)"
db="wms_${id//-/_}"
namespace="${id}"
token="conformance-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
work=$(mktemp -d)
pid=""
sim_pid=""

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Deletes the namespace's queues and exchanges (the warehouse declares the whole topology on
# start): through the management API when it answers, else with rabbitmqctl on this host.
delete_namespace() {
  local ns=$1 kind name names
  if curl -sf -o /dev/null "$MGMT/api/overview" 2> /dev/null; then
    for kind in queues exchanges; do
      names=$(curl -sf "$MGMT/api/$kind/%2f?columns=name" \
        | python3 -c "import json,sys; [print(x['name']) for x in json.load(sys.stdin) if x['name'].startswith(sys.argv[1] + '.')]" "$ns") || continue
      for name in $names; do
        curl -sf -X DELETE "$MGMT/api/$kind/%2f/$name" > /dev/null || echo "could not delete $kind $name" >&2
      done
    done
  elif command -v rabbitmqctl > /dev/null; then
    # One Erlang call for everything (a rabbitmqctl call per queue takes seconds each).
    rabbitmqctl eval -q "
      P = <<\"$ns.\">>,
      Mine = fun(R) -> binary:longest_common_prefix([element(4, R), P]) =:= byte_size(P) end,
      Qs = [rabbit_amqqueue:delete(Q, false, false, <<\"api-conformance\">>)
            || Q <- rabbit_amqqueue:list(<<\"/\">>), Mine(amqqueue:get_name(Q))],
      Xs = [rabbit_exchange:delete(element(2, X), false, <<\"api-conformance\">>)
            || X <- rabbit_exchange:list(<<\"/\">>), Mine(element(2, X))],
      {length(Qs), length(Xs)}." > /dev/null || echo "could not delete namespace $ns" >&2
  else
    echo "api-conformance: neither the management API nor rabbitmqctl: namespace $ns left behind" >&2
  fi
}

cleanup() {
  local status=$?
  if [ -n "$pid" ]; then kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; fi
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2> /dev/null || true; wait "$sim_pid" 2> /dev/null || true; fi
  delete_namespace "$namespace"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" > /dev/null 2>&1 || true
  if [ "$status" -ne 0 ] && [ -f "$work/warehouse.log" ]; then
    echo "--- warehouse log (last 40 lines) ---" >&2; tail -n 40 "$work/warehouse.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

psql -q "$PG/postgres" -c "CREATE DATABASE \"$db\"" > /dev/null
port=$(free_port)
health=$(free_port)
# The Webflow the stores routes call (token check, webhooks): the simulator, creating no orders.
# A made-up token is refused there (422), never a 502 for an unreachable api.webflow.com.
sim_port=$(free_port)
WMS__PROFILE=local RUST_LIB_BACKTRACE=0 \
  "$SIM_BIN" --bind "127.0.0.1:$sim_port" --orders-per-minute 0 > "$work/webflow-sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$sim_port/" && break
  kill -0 "$sim_pid" 2> /dev/null || { echo "api-conformance: the Webflow simulator exited:" >&2; cat "$work/webflow-sim.log" >&2; exit 1; }
  sleep 0.1
done
WMS__PROFILE=local \
WMS__DATABASE__URL="$PG/$db" \
WMS__DATABASE__POOL_SIZE=4 \
WMS__AMQP__URL="$AMQP" \
WMS__AMQP__NAMESPACE="$namespace" \
WMS__WAREHOUSE__BIND="127.0.0.1:$port" \
WMS__WAREHOUSE__API_TOKENS="$token" \
WMS__WAREHOUSE__PUBLIC_INGRESS_URL="http://127.0.0.1:1" \
WMS__WEBFLOW__API_BASE_URL="http://127.0.0.1:$sim_port/v2" \
WMS__WEBFLOW__ALLOW_INSECURE_HTTP=true \
WMS__HEALTH__BIND="127.0.0.1:$health" \
WMS__TELEMETRY__LOG_LEVEL=warn \
RUST_LIB_BACKTRACE=0 \
  "$BIN" > "$work/warehouse.log" 2>&1 &
pid=$!

base="http://127.0.0.1:$port"
for _ in $(seq 150); do
  curl -sf "http://127.0.0.1:$health/readyz" > /dev/null && break
  kill -0 "$pid" 2> /dev/null || { echo "api-conformance: the warehouse exited" >&2; exit 1; }
  sleep 0.2
done
curl -sf -H "Authorization: Bearer $token" "$base/api/v1/openapi.json" -o "$work/openapi.json" \
  || { echo "api-conformance: the warehouse did not serve its OpenAPI document" >&2; exit 1; }

# Some stock, so reads and counts also meet existing SKUs.
for sku in conf-1 conf-2; do
  curl -sf -X PUT -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"on_hand": 5}' "$base/api/v1/inventory/$sku" > /dev/null
done

schemathesis run "$work/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,unsupported_method,allow_header_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --generation-deterministic \
  --generation-with-security-parameters false \
  --workers 1 \
  --request-timeout 10 \
  --no-color
