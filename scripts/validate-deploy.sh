#!/usr/bin/env bash
# Renders every Kustomize overlay and validates it against the Kubernetes schemas offline;
# validates docker-compose.yml against the Compose specification. Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v kubectl >/dev/null || missing+=("kubectl (for 'kubectl kustomize')")
command -v kubernetes-validate >/dev/null || missing+=("kubernetes-validate (pip install kubernetes-validate)")
command -v check-jsonschema >/dev/null || missing+=("check-jsonschema (pip install check-jsonschema)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'ERROR: validate-deploy needs: %s\n' "${missing[@]}" >&2
  exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for overlay in deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$out/$name.yaml"
  # KEDA's custom resources have no bundled schema: reported as warnings, not failures.
  kubernetes-validate --strict --quiet --no-warn -k 1.30.0 "$out/$name.yaml"
  echo "ok: overlay $name renders and validates ($(grep -c '^kind:' "$out/$name.yaml") objects)"
done
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
echo "ok: docker-compose.yml matches the Compose specification"
