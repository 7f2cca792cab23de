#!/usr/bin/env bash
# One RabbitMQ user per service, each with only the permissions it needs, on the namespace
# `wms` (amqp.namespace) of a vhost. Run once with rabbitmqctl access (or translate to the
# Cluster Operator's User/Permission resources), and again after an upgrade that changes the
# table (it updates permissions, keeps passwords). Put each URL in the Secret `wms-secrets` as
# <role>-amqp-url (amqps://wms-<role>:<password>@host:5671/<vhost>): `topology-amqp-url` for the
# migrate Job's declare step, `operator-amqp-url` for whoever runs `wmsctl dlq`.
#
#   VHOST=/ NS=wms bash deploy/rabbitmq/users.sh     # prints each generated password once
#
# USERS (default `wms`) prefixes the user names: <USERS>-<role>.
#
# The permissions come from the code, not from this file: `wmsctl amqp permissions` prints the
# table (platform::amqp::permissions; the test tests/pipeline/least_privilege.rs runs the whole
# pipeline under exactly these users and checks each is refused the rest). WMSCTL names the
# command (default: `wmsctl` on PATH; in a checkout, WMSCTL="cargo run -q -p wmsctl --").
#
# What each user may do (configure / write / read, regexes on the vhost's names):
#   topology        ^<ns>\.  on all three: `wmsctl amqp declare` (the migrate Job) declares and binds
#   ingress         none / <ns>.events / none
#   enrich, reserve, ship, notify-webflow
#                   none / <ns>.events|retry|dead / its own work queue <ns>.<name>
#   warehouse, operator
#                   none / <ns>.events|requeue / the dead queues <ns>.<name>.dead
#   reconcile       none / <ns>.events / none
#   keda            none / none / none (queue lengths by passive declares, which need no permission)
# Only the topology user may configure: the services run with amqp.declare_topology = false and
# only check, at connect, that the topology exists (passive declares). What the broker moves by
# itself (dead-lettering, a retry tier's expiry to <ns>.requeue) needs no user's permission.
# Separate users also give credentials rotated and revoked one service at a time, per-user
# connection limits (rabbitmqctl set_user_limits), and the management UI naming who holds each
# connection.
set -euo pipefail
VHOST=${VHOST:-/}
NS=${NS:-wms}
WMSCTL=${WMSCTL:-wmsctl}
USERS=${USERS:-wms}

# role<TAB>configure<TAB>write<TAB>read, one role a line.
table=$($WMSCTL amqp permissions --namespace "$NS")
[ -n "$table" ] || { echo "users.sh: \`$WMSCTL amqp permissions\` printed nothing" >&2; exit 1; }

user() { # name configure write read
  local name=$1 password
  if rabbitmqctl -q list_users | awk '{print $1}' | grep -qx "$name"; then
    echo "$name exists: permissions updated, password unchanged"
  else
    password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)
    rabbitmqctl -q add_user "$name" "$password"
    echo "$name password: $password"
  fi
  rabbitmqctl -q set_permissions -p "$VHOST" "$name" "$2" "$3" "$4"
}

# On descriptor 3: rabbitmqctl reads standard input.
while IFS=$'\t' read -r role configure write read <&3; do
  user "$USERS-$role" "$configure" "$write" "$read"
done 3<<< "$table"
