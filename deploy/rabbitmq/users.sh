#!/usr/bin/env bash
# One RabbitMQ user per service, with only the permissions it needs, on the namespace `wms`
# (amqp.namespace) of a vhost. Run once with rabbitmqctl access (or translate to the
# Cluster Operator's User/Permission resources); put each URL in the Secret `wms-secrets` as
# <service>-amqp-url (amqps://wms-<service>:<password>@host:5671/<vhost>).
#
#   VHOST=/ NS=wms bash deploy/rabbitmq/users.sh     # prints each generated password once
#
# Every service declares the whole topology at start (idempotent, platform::amqp::topology), so
# each needs configure and write on the namespace (declaring a queue and binding it); what
# differs is `read`: consuming or getting messages. The ingress and the warehouse may read no
# queue at all (binding needs read on the exchanges only), a worker only its own queues, and
# KEDA only the work queues' lengths.
set -euo pipefail
VHOST=${VHOST:-/}
NS=${NS:-wms}
ns=$(printf '%s' "$NS" | sed 's/[.]/\\./g')
exchanges="^${ns}\\.(events|dead|retry|requeue)\$"
own() { printf '^%s\\.%s(\\..*)?$' "$ns" "$1"; }

user() { # name configure write read
  local name=$1 password
  password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)
  if rabbitmqctl -q list_users | awk '{print $1}' | grep -qx "$name"; then
    echo "$name exists: permissions updated, password unchanged"
  else
    rabbitmqctl -q add_user "$name" "$password"
    echo "$name password: $password"
  fi
  rabbitmqctl -q set_permissions -p "$VHOST" "$name" "$2" "$3" "$4"
}

all="^${ns}\\."
user wms-ingress "$all" "$all" "$exchanges"
user wms-warehouse "$all" "$all" "$exchanges"
user wms-reconcile "$all" "$all" "$exchanges"
for worker in enrich reserve ship notify-webflow; do
  user "wms-$worker" "$all" "$all" "${exchanges}|$(own "$worker")"
done
# wmsctl (dead-letter inspection and replay) reads every dead-letter queue.
user wms-operator "$all" "$all" "${exchanges}|^${ns}\\..*\\.dead\$"
# KEDA's RabbitMQ scaler: reads queue lengths only (passive declare of the work queues).
user wms-keda "^\$" "^\$" "^${ns}\\.(enrich|reserve|ship|notify-webflow)\$"
