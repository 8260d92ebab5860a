//! The Helm chart, checked offline: helm lint and template, kubernetes-validate, the rendered
//! rules and dashboard against their sources, the least-privilege settings, and checkov.

use std::process::Command;

use crate::testbed::{assert_success, in_ci, repo_root, require_tools, run};

#[test]
fn helm_chart_passes_offline_validators() {
    let Some(_) = require_tools(
        "helm_chart_passes_offline_validators",
        &["helm", "kubernetes-validate", "checkov", "promtool"],
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
