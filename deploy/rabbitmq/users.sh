#!/usr/bin/env bash
# One RabbitMQ user per service, with only the permissions it needs, on the namespace `wms`
# (amqp.namespace) of a vhost. Run once with rabbitmqctl access (or translate to the
# Cluster Operator's User/Permission resources); put each URL in the Secret `wms-secrets` as
# <service>-amqp-url (amqps://wms-<service>:<password>@host:5671/<vhost>).
#
#   VHOST=/ NS=wms bash deploy/rabbitmq/users.sh     # prints each generated password once
#
# What the users can do: every service declares the whole topology at start (idempotent,
# platform::amqp::topology), and RabbitMQ checks a queue declared with a dead-letter exchange
# for read on the queue and write on the exchange; so each service needs configure, write and
# read on the namespace `<NS>.*` of the vhost, and nothing outside it (tested: an ingress with
# read on the exchanges only is refused `access to queue 'wms.enrich'`). What separate users
# give: credentials rotated and revoked one service at a time, per-user connection limits
# (rabbitmqctl set_user_limits), and the management UI naming who holds each connection.
# Narrower read permissions need the topology declared by one privileged job, not the services.
# KEDA gets read on the work queues only.
set -euo pipefail
VHOST=${VHOST:-/}
NS=${NS:-wms}
ns=$(printf '%s' "$NS" | sed 's/[.]/\\./g')

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
for service in ingress enrich reserve ship notify-webflow warehouse reconcile operator; do
  user "wms-$service" "$all" "$all" "$all"
done
# KEDA's RabbitMQ scaler: reads queue lengths only (passive declare of the work queues).
user wms-keda "^\$" "^\$" "^${ns}\\.(enrich|reserve|ship|notify-webflow)\$"
