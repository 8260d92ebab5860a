#!/usr/bin/env bash
# Checks the Helm chart offline with every validator the testbed has. It runs helm lint, and
# helm template with the default values and with ci/full-values.yaml. The rendered manifests
# then go through yamllint, kubernetes-validate, a comparison of the rules and dashboard with
# their sources, promtool, and checkov (with --skip-download, so nothing is sent anywhere).
# Needs helm, yamllint, kubernetes-validate, checkov and promtool on PATH, and .testbed/venv
# (PyYAML).
set -euo pipefail
cd "$(dirname "$0")/.."

chart=deploy/helm/readiness-exporter
python=.testbed/venv/bin/python
for tool in helm yamllint kubernetes-validate checkov promtool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found on PATH; run scripts/install-testbed.sh" >&2
    exit 1
  fi
done
if [ ! -x "$python" ]; then
  echo "error: $python is missing; run scripts/install-testbed.sh" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"

# The chart carries copies because Helm reads only files inside the chart directory.
cmp alerts/readiness.rules.yaml "$chart/files/readiness.rules.yaml" || {
  echo "error: $chart/files/readiness.rules.yaml differs from alerts/readiness.rules.yaml; copy it again" >&2
  exit 1
}
cmp dashboards/readiness.json "$chart/files/readiness.json" || {
  echo "error: $chart/files/readiness.json differs from dashboards/readiness.json; copy it again" >&2
  exit 1
}

helm lint --strict "$chart"
helm lint --strict "$chart" -f "$chart/ci/full-values.yaml"

mkdir -p "$work/default" "$work/full"
helm template readiness "$chart" --namespace readiness >"$work/default/manifests.yaml"
helm template readiness "$chart" --namespace readiness -f "$chart/ci/full-values.yaml" \
  >"$work/full/manifests.yaml"

# values.schema.json rejects a write verb in the generated RBAC.
if helm template readiness "$chart" --set 'rbac.extraRules[0].resources[0]=pods' \
    --set 'rbac.extraRules[0].verbs[0]=delete' >/dev/null 2>&1; then
  echo "error: values.schema.json accepted a write verb in rbac.extraRules" >&2
  exit 1
fi

# values.schema.json constrains each check's id and severity. It must still accept every
# shipped example checklist as config, and reject a severity the exporter does not know.
for example in examples/*.yaml; do
  values="$work/example-$(basename "$example")"
  "$python" - "$example" "$values" <<'PY'
import sys

import yaml

with open(sys.argv[1]) as file:
    checklist = yaml.safe_load(file)
if isinstance(checklist, dict) and "checks" in checklist:
    with open(sys.argv[2], "w") as file:
        yaml.safe_dump({"config": checklist}, file, sort_keys=False)
PY
  if [ -f "$values" ]; then
    helm template readiness "$chart" -f "$values" >/dev/null || {
      echo "error: values.schema.json rejects $example as config" >&2
      exit 1
    }
  fi
done
bad_severity=(--set 'config.checks[0].id=api_health' --set 'config.checks[0].title=API health'
  --set 'config.checks[0].section=Checks' --set 'config.checks[0].severity=high')
if rejection=$(helm template readiness "$chart" "${bad_severity[@]}" 2>&1 >/dev/null); then
  echo "error: values.schema.json accepted the unknown severity high" >&2
  exit 1
fi
if ! grep -q 'config.checks.0.severity' <<<"$rejection"; then
  echo "error: values.schema.json rejected a check for a reason other than its severity: $rejection" >&2
  exit 1
fi

# The relaxed rules catch syntax faults such as duplicate keys and broken indentation. Their
# warnings, mostly long lines from the chart's own strings, do not fail the check.
yamllint -d relaxed --no-warnings "$work/default/manifests.yaml" "$work/full/manifests.yaml" \
  "$chart/values.yaml" "$chart/ci/full-values.yaml"

kubernetes-validate --strict --quiet -k 1.33.0 "$work/default/manifests.yaml" "$work/full/manifests.yaml" \
  deploy/kubernetes/clusterrole.yaml

"$python" scripts/check-chart-render.py "$work/default/manifests.yaml" "$work/full/manifests.yaml" \
  --rules-out "$work/rendered.rules.yaml"
promtool check rules "$work/rendered.rules.yaml"

# The default values cannot pin the image by digest, because only the user knows the digest,
# and IfNotPresent is the usual default. ci/full-values.yaml pins both and passes every check.
checkov --skip-download --quiet --compact --framework kubernetes -d "$work/full"
checkov --skip-download --quiet --compact --framework kubernetes -d "$work/default" \
  --skip-check CKV_K8S_43,CKV_K8S_15

echo "chart: lint, render, yamllint, kubernetes-validate, rendered rules and dashboard, checkov OK"
