#!/usr/bin/env bash
# Checks the alerting artefacts with the real Prometheus and Alertmanager tools:
# the rules parse, their unit tests pass, the Alertmanager example is valid and every kind of
# Readiness alert reaches the intended receiver. Needs promtool and amtool on PATH
# (scripts/install-testbed.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in promtool amtool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found on PATH; run scripts/install-testbed.sh" >&2
    exit 1
  fi
done

promtool check rules alerts/readiness.rules.yaml
promtool test rules alerts/readiness.rules.test.yaml
amtool check-config alerts/alertmanager.example.yaml

# Each case: the receiver expected, then the alert's labels.
route_cases=(
  "readiness-pager alertname=ReadinessCheckFailing severity=critical check=db_backup section=I"
  "readiness-ticket alertname=ReadinessCheckFailing severity=warning check=cors_origins section=I"
  "readiness-pager alertname=ReadinessCheckError severity=critical check=vault_ha"
  "readiness-ticket alertname=ReadinessCheckStale severity=warning check=vault_ha"
  "readiness-ticket alertname=ReadinessCertificateExpiringSoon severity=warning check=ingress_tls"
  "readiness-ticket alertname=ReadinessSignoffExpiringSoon severity=warning check=uat_signoff"
  "readiness-pager alertname=ReadinessGateClosed severity=critical job=readiness-exporter"
  "readiness-pager alertname=ReadinessExporterDown severity=critical job=readiness-exporter"
  "readiness-ticket alertname=ReadinessExporterAbsent severity=warning"
  "readiness-ticket alertname=ReadinessConfigReloadFailed severity=warning job=readiness-exporter"
  "readiness-null alertname=ReadinessCheckFailing severity=info check=docs_updated"
  "readiness-ticket alertname=NodeDown severity=critical"
)

failed=0
for case in "${route_cases[@]}"; do
  read -r expected labels <<<"$case"
  # shellcheck disable=SC2086 # the labels are separate arguments on purpose
  if ! amtool config routes test --config.file=alerts/alertmanager.example.yaml \
      --verify.receivers="$expected" $labels >/dev/null 2>&1; then
    actual=$(amtool config routes test --config.file=alerts/alertmanager.example.yaml $labels 2>/dev/null || true)
    echo "error: route for {$labels} reaches '$actual', expected '$expected'" >&2
    failed=1
  fi
done
if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "alerting: rules, rule tests, Alertmanager config and ${#route_cases[@]} routes OK"
