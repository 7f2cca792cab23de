# shellcheck shell=bash
# Deleting a namespace's queues after a benchmark (sourced by scripts/bench-common.sh and
# scripts/bench-ab.sh).
delete_queues() { # namespace
  command -v rabbitmqctl >/dev/null || return 0
  local queues
  queues=$(rabbitmqctl -q list_queues name 2>/dev/null | grep "^$1\\." || true)
  for q in $queues; do rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true; done
}
