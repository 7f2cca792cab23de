#!/usr/bin/env bash
# Fails loudly unless PostgreSQL and RabbitMQ answer. Waits up to WAIT_SECS (default 30) for each.
set -uo pipefail
wait_secs=${WAIT_SECS:-30}
pg_host=${WMS_TEST_PG_HOST:-127.0.0.1}; pg_port=${WMS_TEST_PG_PORT:-5432}
mq_host=${WMS_TEST_MQ_HOST:-127.0.0.1}; mq_port=${WMS_TEST_MQ_PORT:-5672}

answers() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

wait_for() {
  local name=$1 host=$2 port=$3 hint=$4
  for _ in $(seq 1 "$wait_secs"); do
    if answers "$host" "$port"; then echo "ok: $name answers on $host:$port"; return 0; fi
    sleep 1
  done
  echo "ERROR: $name does not answer on $host:$port after ${wait_secs}s." >&2
  echo "       $hint" >&2
  return 1
}

status=0
wait_for PostgreSQL "$pg_host" "$pg_port" \
  "Start it (pg_ctlcluster <version> main start, or: docker compose up -d postgres)." || status=1
wait_for RabbitMQ "$mq_host" "$mq_port" \
  "Start it (rabbitmq-server -detached, or: docker compose up -d rabbitmq)." || status=1
exit $status
