//! The Helm chart, checked offline: helm lint and template, yamllint, kubernetes-validate, the
//! rendered rules and dashboard against their sources, the least-privilege settings, the extra
//! volumes, and checkov.

use std::process::Command;

use crate::testbed::{assert_success, in_ci, repo_root, require_tools, run};

#[test]
fn helm_chart_passes_offline_validators() {
    let Some(_) = require_tools(
        "helm_chart_passes_offline_validators",
        &[
            "helm",
            "yamllint",
            "kubernetes-validate",
            "checkov",
            "promtool",
        ],
    ) else {
        return;
    };
    if !repo_root().join(".testbed/venv/bin/python").is_file() {
        let message = "the testbed venv with PyYAML is missing; run scripts/install-testbed.sh";
        assert!(!in_ci(), "{message}");
        eprintln!("skipped: {message}");
        return;
    }

    let output = run(Command::new("bash").arg("scripts/check-chart.sh"));
    assert_success("scripts/check-chart.sh", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("chart render: rules, dashboard, security settings and RBAC OK"),
        "{stdout}"
    );
    assert!(stdout.contains("Failed checks: 0"), "{stdout}");
    assert!(!stdout.contains("FAILED for resource"), "{stdout}");
}

#[test]
fn helm_chart_mounts_extra_volumes() {
    let Some(_) = require_tools("helm_chart_mounts_extra_volumes", &["helm"]) else {
        return;
    };
    let python = repo_root().join(".testbed/venv/bin/python");
    if !python.is_file() {
        let message = "the testbed venv with PyYAML is missing; run scripts/install-testbed.sh";
        assert!(!in_ci(), "{message}");
        eprintln!("skipped: {message}");
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "extraVolumes:\n\
         \x20 - name: readiness-secrets\n\
         \x20   secret:\n\
         \x20     secretName: readiness-exporter-tokens\n\
         extraVolumeMounts:\n\
         \x20 - name: readiness-secrets\n\
         \x20   mountPath: /var/run/secrets/readiness\n\
         \x20   readOnly: true\n",
    )
    .unwrap();
    let output = run(Command::new("helm")
        .args(["template", "readiness", "deploy/helm/readiness-exporter"])
        .args(["--show-only", "templates/deployment.yaml", "-f"])
        .arg(&values));
    assert_success("helm template with extraVolumes", &output);
    let rendered = dir.path().join("deployment.yaml");
    std::fs::write(&rendered, &output.stdout).unwrap();

    // The repository has no YAML parser for tests, so the venv's PyYAML converts to JSON.
    let output = run(Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(&rendered));
    assert_success("converting the Deployment to JSON", &output);
    let deployment: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let pod = &deployment["spec"]["template"]["spec"];

    let volumes = pod["volumes"].as_array().unwrap();
    let volume = volumes
        .iter()
        .find(|volume| volume["name"] == "readiness-secrets")
        .unwrap_or_else(|| panic!("no readiness-secrets volume in {volumes:?}"));
    assert_eq!(volume["secret"]["secretName"], "readiness-exporter-tokens");
    assert!(
        volumes.iter().any(|volume| volume["name"] == "config"),
        "the chart's own config volume is missing: {volumes:?}"
    );

    let container = &pod["containers"][0];
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mount = mounts
        .iter()
        .find(|mount| mount["name"] == "readiness-secrets")
        .unwrap_or_else(|| panic!("no readiness-secrets mount in {mounts:?}"));
    assert_eq!(mount["mountPath"], "/var/run/secrets/readiness");
    assert_eq!(mount["readOnly"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
}
