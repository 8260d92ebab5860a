#!/usr/bin/env python3
"""Check the manifests `helm template` rendered from the chart.

Arguments: the manifests rendered with the default values, then those rendered with
ci/full-values.yaml. Checks that the PrometheusRule carries exactly alerts/readiness.rules.yaml,
that the dashboard ConfigMap carries exactly dashboards/readiness.json with the sidecar label,
that the Deployment has the least-privilege settings and the extra volumes of the full values,
and that RBAC and the API token appear only when a check kind needs them. Writes the PrometheusRule's spec to --rules-out for promtool.
"""

import argparse
import json
import re
import sys

import yaml

problems = []


def expect(condition, message):
    if not condition:
        problems.append(message)


def load(path):
    with open(path) as file:
        return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(file) if doc}


def only(manifests, kind):
    found = [doc for (k, _), doc in manifests.items() if k == kind]
    expect(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def check_common(manifests, name):
    rule = only(manifests, "PrometheusRule")
    with open("alerts/readiness.rules.yaml") as file:
        expect(rule.get("spec") == yaml.safe_load(file), f"{name}: PrometheusRule differs from alerts/readiness.rules.yaml")

    dashboards = [doc for (k, n), doc in manifests.items() if k == "ConfigMap" and n.endswith("-dashboard")]
    expect(len(dashboards) == 1, f"{name}: expected one dashboard ConfigMap")
    if dashboards:
        dashboard = dashboards[0]
        expect(dashboard["metadata"]["labels"].get("grafana_dashboard") == "1", f"{name}: dashboard ConfigMap lacks the sidecar label")
        with open("dashboards/readiness.json") as file:
            expect(json.loads(dashboard["data"]["readiness.json"]) == json.load(file), f"{name}: dashboard ConfigMap differs from dashboards/readiness.json")

    deployment = only(manifests, "Deployment")
    pod = deployment["spec"]["template"]
    annotation = pod["metadata"].get("annotations", {}).get("checksum/config", "")
    expect(re.fullmatch(r"[0-9a-f]{64}", annotation), f"{name}: no checksum/config annotation on the pod template")
    spec = pod["spec"]
    expect(spec.get("automountServiceAccountToken") is False, f"{name}: the pod mounts the service account token automatically")
    expect(spec["securityContext"].get("runAsNonRoot") is True, f"{name}: pod is not runAsNonRoot")
    expect(spec["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: pod seccomp is not RuntimeDefault")
    container = spec["containers"][0]
    security = container["securityContext"]
    expect(security.get("allowPrivilegeEscalation") is False, f"{name}: privilege escalation allowed")
    expect(security.get("readOnlyRootFilesystem") is True, f"{name}: root filesystem writable")
    expect(security.get("runAsNonRoot") is True, f"{name}: container not runAsNonRoot")
    expect(security.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: capabilities not all dropped")
    expect(security.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: container seccomp is not RuntimeDefault")
    for key in ("cpu", "memory"):
        expect(key in container["resources"].get("limits", {}), f"{name}: no {key} limit")
        expect(key in container["resources"].get("requests", {}), f"{name}: no {key} request")
    expect("livenessProbe" in container and "readinessProbe" in container, f"{name}: liveness or readiness probe missing")

    policy = only(manifests, "NetworkPolicy")
    expect(policy.get("spec", {}).get("policyTypes") == ["Ingress", "Egress"], f"{name}: NetworkPolicy does not cover ingress and egress")
    monitor = only(manifests, "ServiceMonitor")
    expect(monitor["spec"]["endpoints"][0]["path"] == "/metrics", f"{name}: ServiceMonitor does not scrape /metrics")
    return rule, container, spec


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("default")
    parser.add_argument("full")
    parser.add_argument("--rules-out", required=True)
    args = parser.parse_args()

    default = load(args.default)
    rule, container, spec = check_common(default, "default values")
    expect(not any(k in ("Role", "ClusterRole") for k, _ in default), "default values: RBAC rendered without a check kind that needs it")
    expect(not any(v["name"] == "kube-api-access" for v in spec["volumes"]), "default values: API token mounted without a check kind that needs it")
    expect(container["livenessProbe"].get("httpGet", {}).get("path") == "/-/healthy", "default values: liveness probe is not /-/healthy")
    expect(container["readinessProbe"].get("httpGet", {}).get("path") == "/-/ready", "default values: readiness probe is not /-/ready")

    full = load(args.full)
    _, container, spec = check_common(full, "full values")
    role = only(full, "ClusterRole")
    verbs = {verb for rule_ in role.get("rules", []) for verb in rule_["verbs"]}
    expect(verbs and verbs <= {"get", "list", "watch"}, f"full values: ClusterRole grants {sorted(verbs)}, expected read-only verbs")
    resources = {resource for rule_ in role.get("rules", []) for resource in rule_["resources"]}
    expect("networkpolicies" in resources, "full values: ClusterRole lacks the kubernetes_network_policy kind's rules")
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    expect("kube-api-access" in volumes, "full values: no API token for the kubernetes_network_policy kind")
    vault = volumes.get("vault-token", {}).get("projected", {}).get("sources", [{}])[0].get("serviceAccountToken", {})
    expect(vault.get("audience") == "vault", "full values: no Vault token with the vault audience")
    expect("--web.config.file=/etc/readiness-exporter/web/web-config.yml" in container["args"], "full values: web config not passed")
    expect(container["livenessProbe"].get("tcpSocket", {}).get("port") == "http", "full values: probes send HTTP although the endpoints need credentials")
    expect(only(full, "PodDisruptionBudget").get("spec", {}).get("minAvailable") == 1, "full values: no PodDisruptionBudget")
    expect(volumes.get("readiness-secrets", {}).get("secret", {}).get("secretName") == "readiness-exporter-tokens", "full values: extraVolumes did not add the token Secret")
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    expect(mounts.get("readiness-secrets", {}).get("mountPath") == "/var/run/secrets/readiness", "full values: extraVolumeMounts did not mount the token Secret")
    expect(all(mounts[name].get("readOnly") is True for name in ("readiness-secrets", "signoffs") if name in mounts), "full values: an extra volume is mounted writable")

    with open(args.rules_out, "w") as file:
        yaml.safe_dump(rule.get("spec", {}), file, sort_keys=False)

    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    print("chart render: rules, dashboard, security settings and RBAC OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
