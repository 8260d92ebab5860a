//! The Grafana dashboard: Grafana's JSON schemas, data sources taken from a variable, and every
//! PromQL expression parsed by promtool.

use std::process::Command;

use crate::testbed::{assert_success, in_ci, read, repo_root, require_tools, run, shared_dir};

#[test]
fn dashboard_matches_grafana_schema_and_parses() {
    // The schemas are reference material kept beside the checkout, not in the repository.
    let schema_dir = shared_dir().join("grafana-dashboard-schema");
    if !schema_dir.join("dashboard.jsonschema.json").is_file() {
        eprintln!(
            "skipped: the Grafana dashboard schema is not at {}; it is read from the directory \
             `shared` beside the checkout",
            schema_dir.display()
        );
        return;
    }
    let python = repo_root().join(".testbed/venv/bin/python");
    if !python.is_file() {
        let message = "the testbed venv with jsonschema is missing; run scripts/install-testbed.sh";
        assert!(!in_ci(), "{message}");
        eprintln!("skipped: {message}");
        return;
    }
    let Some(_) = require_tools("dashboard_matches_grafana_schema_and_parses", &["promtool"])
    else {
        return;
    };

    let output = run(Command::new(&python)
        .arg("scripts/check-dashboard.py")
        .arg("--schema-dir")
        .arg(&schema_dir));
    assert_success("scripts/check-dashboard.py", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("schema valid"), "{stdout}");
}

#[test]
fn dashboard_covers_the_required_panels() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("dashboards/readiness.json")).unwrap();
    assert_eq!(dashboard["uid"], "readiness-exporter");
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|panel| panel["title"].as_str())
        .collect();
    for title in [
        "Deploy gate",
        "Pass ratio per section",
        "Checklist",
        "Result per check",
        "Time until certificates and sign-offs expire",
        "Exporter health",
    ] {
        assert!(titles.contains(&title), "no panel titled {title:?}");
    }
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|variable| variable["name"].as_str())
        .collect();
    assert_eq!(variables, ["datasource", "job", "section"]);
}
