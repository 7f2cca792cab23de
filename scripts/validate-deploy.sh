#!/usr/bin/env bash
# Renders every Kustomize overlay and validates it against the Kubernetes schemas offline;
# validates docker-compose.yml against the Compose specification, the Prometheus alert rules
# (promtool) and the Grafana dashboard. Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v kubectl >/dev/null || missing+=("kubectl (for 'kubectl kustomize')")
command -v kubernetes-validate >/dev/null || missing+=("kubernetes-validate (pip install kubernetes-validate)")
command -v check-jsonschema >/dev/null || missing+=("check-jsonschema (pip install check-jsonschema)")
command -v promtool >/dev/null || missing+=("promtool (apt-get install prometheus)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'ERROR: validate-deploy needs: %s\n' "${missing[@]}" >&2
  exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# check-deploy.py runs each service binary's own configuration check (WMS_CHECK_CONFIG=1) on the
# rendered configuration: build them (the debug build make test uses anyway), unless
# WMS_BIN_DIR names binaries already built.
if [ -z "${WMS_BIN_DIR:-}" ]; then
  ${CARGO:-cargo} build -q --bins -p ingress -p enrich -p reserve -p ship -p notify-webflow -p warehouse -p reconcile
fi
for overlay in deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$out/$name.yaml"
  # KEDA's custom resources have no bundled schema: reported as warnings, not failures.
  # KEDA's and the Gateway API's custom resources have no bundled schema: warnings, not
  # failures; scripts/check-deploy.py checks what the HTTPRoute refers to.
  kubernetes-validate --strict --quiet --no-warn -k 1.30.0 "$out/$name.yaml"
  echo "ok: overlay $name renders and validates ($(grep -c '^kind:' "$out/$name.yaml") objects)"
  # Least privilege, production profile, migrate Job name, connection budget.
  python3 scripts/check-deploy.py "$name" "$out/$name.yaml"
done
# The Job's name follows the image tag: a new tag renders a new Job (no immutable-field error).
cp -r deploy/k8s "$out/k8s"
sed -i 's/newTag: "0.1.0"/newTag: "0.1.1"/' "$out/k8s/overlays/prod/kustomization.yaml"
kubectl kustomize "$out/k8s/overlays/prod" | grep -q 'name: migrate-0.1.1' \
  || { echo "ERROR: the migrate Job does not follow the image tag" >&2; exit 1; }
echo "ok: a new image tag renders a new migrate Job"
# A configuration production refuses fails the check: database TLS off, insecure console cookies.
sed -i -e 's/^ssl_mode = "verify-full"/ssl_mode = "disable"/' -e '/^ssl_root_cert = /d' \
  -e 's/^secure_cookies = true/secure_cookies = false/' "$out/k8s/base/config.toml"
kubectl kustomize "$out/k8s/overlays/prod" > "$out/refused.yaml"
if python3 scripts/check-deploy.py prod-refused "$out/refused.yaml" 2> "$out/refused.err"; then
  echo "ERROR: check-deploy.py accepted database TLS off and insecure cookies" >&2; exit 1
fi
grep -q 'database.ssl_mode' "$out/refused.err" && grep -q 'warehouse.console.secure_cookies' "$out/refused.err" \
  || { echo "ERROR: check-deploy.py did not name the refused keys:" >&2; cat "$out/refused.err" >&2; exit 1; }
echo "ok: a configuration production refuses fails the check (the services' own WMS_CHECK_CONFIG)"
# The image carries no configuration (the dev configs hold local tokens).
if grep -Eq '^COPY +config' Dockerfile; then
  echo "ERROR: the Dockerfile copies config/ into the image; mount configuration instead" >&2
  exit 1
fi
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
echo "ok: docker-compose.yml matches the Compose specification"
# The Prometheus alert rules and the Grafana dashboard (their metric names are checked against
# running services by tests/pipeline/observability.rs).
promtool check rules deploy/prometheus/alerts.yml
python3 scripts/check-observability.py
