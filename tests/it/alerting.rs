//! The alerting rules, their unit tests, the Alertmanager example, and the agreement between the
//! metric names they use, the dashboard and docs/metrics.md.

use std::collections::BTreeSet;
use std::process::Command;

use readiness_exporter::metrics::CORE_FAMILIES;

use crate::testbed::{assert_success, read, require_tools, run};

/// Every `readiness_*` metric name in `text`. Recording rule names (with colons) are not metric
/// names of the exporter and are left out.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|token| token.starts_with("readiness_") && !token.contains(':'))
        .map(str::to_string)
        .collect()
}

/// The names of docs/metrics.md's table rows: each row starts with the name in backticks.
fn documented_names() -> BTreeSet<String> {
    read("docs/metrics.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn alerting_artefacts_pass_promtool_and_amtool() {
    let Some(_) = require_tools(
        "alerting_artefacts_pass_promtool_and_amtool",
        &["promtool", "amtool"],
    ) else {
        return;
    };
    let output = run(Command::new("bash").arg("scripts/check-alerting.sh"));
    assert_success("scripts/check-alerting.sh", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("SUCCESS: 12 rules found"), "{stdout}");
    assert!(stdout.contains("routes OK"), "{stdout}");
}

#[test]
fn rules_and_dashboard_metrics_are_documented() {
    let documented = documented_names();
    for file in ["alerts/readiness.rules.yaml", "dashboards/readiness.json"] {
        let used = metric_names(&read(file));
        assert!(!used.is_empty(), "{file} names no readiness_ metric");
        for name in &used {
            if documented.contains(name) {
                continue;
            }
            panic!("{file} uses {name}, which docs/metrics.md does not document");
        }
    }
}

#[test]
fn core_metrics_are_documented_and_used() {
    let documented = documented_names();
    let mut used = metric_names(&read("alerts/readiness.rules.yaml"));
    used.extend(metric_names(&read("dashboards/readiness.json")));
    for family in CORE_FAMILIES {
        assert!(
            documented.contains(family.name),
            "core metric {} is missing from docs/metrics.md",
            family.name
        );
        assert!(
            used.contains(family.name),
            "core metric {} is used by neither the rules nor the dashboard",
            family.name
        );
    }
}

#[test]
fn metric_names_skip_recording_rules() {
    let names = metric_names(
        "section:readiness_check_success:ratio + readiness_gate_open{job=\"readiness-exporter\"}",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["readiness_gate_open".to_string()]
    );
}

#[tokio::test]
async fn build_info_carries_external_url() {
    let checklist = |url: &str| {
        format!(
            r#"
global:
  interval: 60s
  external_url: {url}
checks:
  - id: nothing_listens
    title: "A port with nothing listening"
    section: "I. Pre-Deployment"
    severity: warning
    http:
      url: http://127.0.0.1:9/
"#
        )
    };
    let exporter =
        crate::support::start_exporter(&checklist("https://readiness.example.com/")).await;
    let (_, _, metrics) = crate::support::get(&exporter.url("/metrics")).await;
    let expected = format!(
        "readiness_exporter_build_info{{version=\"{}\",revision=\"{}\",external_url=\"https://readiness.example.com/\"}} 1",
        readiness_exporter::metrics::VERSION,
        readiness_exporter::metrics::REVISION
    );
    assert!(metrics.contains(&expected), "{metrics}");

    // A reload that changes the URL changes the label, so alert links follow it.
    std::fs::write(
        &exporter.config_path,
        checklist("https://staging.example.com/readiness/"),
    )
    .unwrap();
    exporter.exporter.reload().await.unwrap();
    let (_, _, metrics) = crate::support::get(&exporter.url("/metrics")).await;
    assert!(
        metrics.contains("external_url=\"https://staging.example.com/readiness/\"} 1"),
        "{metrics}"
    );
}
