#!/usr/bin/env bash
# Renders every Kustomize overlay and the Helm chart (helm lint --strict, helm template with the
# default values and each ci/*-values.yaml) and validates them against the Kubernetes schemas
# offline, with scripts/check-deploy.py's policy checks; checks that values.schema.json refuses
# the values in deploy/helm/tests/invalid;
# validates docker-compose.yml against the Compose specification, the Prometheus alert rules
# (promtool) and the Grafana dashboard. Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v kubectl >/dev/null || missing+=("kubectl (for 'kubectl kustomize')")
command -v kubernetes-validate >/dev/null || missing+=("kubernetes-validate (pip install kubernetes-validate)")
command -v check-jsonschema >/dev/null || missing+=("check-jsonschema (pip install check-jsonschema)")
command -v promtool >/dev/null || missing+=("promtool (apt-get install prometheus)")
command -v helm >/dev/null || missing+=("helm (make tools: scripts/install-test-tools.sh)")
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
  ${CARGO:-cargo} build -q --bins -p ingress -p enrich -p reserve -p ship -p notify-webflow -p warehouse -p reconcile -p retention
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
# The Job's name follows the release's version: a new version renders a new Job (no
# immutable-field error); a prod image by tag is refused.
cp -r deploy/k8s "$out/k8s"
sed -i 's|app.kubernetes.io/version: "0.1.0"|app.kubernetes.io/version: "0.1.1"|' "$out/k8s/overlays/prod/kustomization.yaml"
kubectl kustomize "$out/k8s/overlays/prod" | grep -q 'name: migrate-0.1.1' \
  || { echo "ERROR: the migrate Job does not follow the version label" >&2; exit 1; }
echo "ok: a new version renders a new migrate Job"
sed -i 's|    digest: sha256:[0-9a-f]*|    newTag: "0.1.1"|' "$out/k8s/overlays/prod/kustomization.yaml"
kubectl kustomize "$out/k8s/overlays/prod" > "$out/by-tag.yaml"
if python3 scripts/check-deploy.py prod "$out/by-tag.yaml" 2>"$out/by-tag.err"; then
  echo "ERROR: check-deploy.py accepted a prod image by tag" >&2; exit 1
fi
grep -q "is not pinned by digest" "$out/by-tag.err" \
  || { cat "$out/by-tag.err" >&2; echo "ERROR: wrong refusal of a prod image by tag" >&2; exit 1; }
echo "ok: a prod image by tag is refused"
# A configuration production refuses fails the check: database TLS off, insecure console cookies.
cp -r deploy/k8s "$out/k8s-refused"
sed -i -e 's/^ssl_mode = "verify-full"/ssl_mode = "disable"/' -e '/^ssl_root_cert = /d' \
  -e 's/^secure_cookies = true/secure_cookies = false/' "$out/k8s-refused/base/config.toml"
kubectl kustomize "$out/k8s-refused/overlays/prod" > "$out/refused.yaml"
if python3 scripts/check-deploy.py prod-refused "$out/refused.yaml" 2> "$out/refused.err"; then
  echo "ERROR: check-deploy.py accepted database TLS off and insecure cookies" >&2; exit 1
fi
grep -q 'database.ssl_mode' "$out/refused.err" && grep -q 'warehouse.console.secure_cookies' "$out/refused.err" \
  || { echo "ERROR: check-deploy.py did not name the refused keys:" >&2; cat "$out/refused.err" >&2; exit 1; }
echo "ok: a configuration production refuses fails the check (the services' own WMS_CHECK_CONFIG)"

# The Helm chart: lint and render offline with the default values and each production-like
# values file, then the same schema and policy checks as the overlays (the ci/ files also
# require every image by digest).
chart=deploy/helm/wms-bridge
cmp -s "$chart/files/grants.sql" deploy/k8s/base/sql/grants.sql \
  || { echo "ERROR: $chart/files/grants.sql differs from deploy/k8s/base/sql/grants.sql" >&2; exit 1; }
for values in default "$chart"/ci/*-values.yaml; do
  if [ "$values" = default ]; then name=default args=(); else
    name=$(basename "$values" -values.yaml) args=(-f "$values" ); fi
  helm lint --strict --quiet --kube-version 1.30.0 "$chart" "${args[@]}" >"$out/lint.txt" 2>&1 \
    || { cat "$out/lint.txt" >&2; echo "ERROR: helm lint --strict ($name values) failed" >&2; exit 1; }
  helm template wms "$chart" --namespace wms --kube-version 1.30.0 "${args[@]}" > "$out/helm-$name.yaml"
  kubernetes-validate --strict --quiet --no-warn -k 1.30.0 "$out/helm-$name.yaml"
  echo "ok: chart with $name values lints and renders ($(grep -c '^kind:' "$out/helm-$name.yaml") objects)"
  if [ "$name" = default ]; then
    python3 scripts/check-deploy.py --helm "helm-$name" "$out/helm-$name.yaml"
  else
    python3 scripts/check-deploy.py --helm --require-digest "helm-$name" "$out/helm-$name.yaml"
  fi
done
# values.schema.json refuses typos and wrong enums: each file names the error it must produce.
for values in deploy/helm/tests/invalid/*.yaml; do
  expect=$(sed -n '1s/^# expect: //p' "$values")
  [ -n "$expect" ] || { echo "ERROR: $values: no '# expect: ' first line" >&2; exit 1; }
  if helm lint --strict --kube-version 1.30.0 "$chart" -f "$values" >"$out/lint.txt" 2>&1; then
    echo "ERROR: helm lint accepted $values" >&2; exit 1
  fi
  grep -qF -- "$expect" "$out/lint.txt" \
    || { cat "$out/lint.txt" >&2; echo "ERROR: $values: helm lint failed without '$expect'" >&2; exit 1; }
done
echo "ok: the values schema refuses $(ls deploy/helm/tests/invalid/*.yaml | wc -l) invalid values files"
helm package --destination "$out" "$chart" >/dev/null
echo "ok: chart packages ($(basename "$out"/wms-bridge-*.tgz))"
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
