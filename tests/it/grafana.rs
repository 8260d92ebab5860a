//! The `grafana` kind against a local server that responds as Grafana's HTTP API documents.

use std::sync::{Arc, Mutex};

use readiness_exporter::check::{Reason, Status};

use crate::monitoring::item;
use crate::support::{
    assert_metric, assert_no_series, respond, serve_fn, LoadedChecks, TestServer,
};

/// The service-account token the fake Grafana accepts; a canary that must never be printed.
const TOKEN: &str = "glsa_canary_5f1e0c2b7a";

const DASHBOARD: &str = include_str!("fixtures/monitoring/grafana-dashboard.json");

/// Starts a fake Grafana at `/` and at `/grafana`: `database` is the value `/api/health` reports,
/// `readiness-overview` is the one dashboard, data source `prom` is healthy and `loki` is not.
async fn grafana(database: &'static str) -> (TestServer, Arc<Mutex<Vec<String>>>) {
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    let server = serve_fn(move |request| {
        let full_path = request.uri().path().to_string();
        seen.lock().unwrap().push(full_path.clone());
        // Grafana served under a sub path (`root_url` with `serve_from_sub_path`).
        let path = full_path.strip_prefix("/grafana").unwrap_or(&full_path).to_string();
        if path == "/api/health" {
            let status = if database == "ok" { 200 } else { 503 };
            return respond(
                status,
                format!(r#"{{"commit":"087143285","database":"{database}","version":"10.4.2"}}"#),
            );
        }
        let authorized = request
            .headers()
            .get("authorization")
            .is_some_and(|value| value == format!("Bearer {TOKEN}").as_str());
        if !authorized {
            return respond(401, r#"{"message":"Unauthorized"}"#);
        }
        match path.as_str() {
            "/api/dashboards/uid/readiness-overview" => respond(200, DASHBOARD),
            "/api/datasources/uid/prom/health" => {
                respond(200, r#"{"message":"Successfully queried the Prometheus API.","status":"OK"}"#)
            }
            "/api/datasources/uid/loki/health" => respond(
                400,
                r#"{"message":"Unable to connect with Loki. Get \"http://loki:3100/loki/api/v1/labels?start=1&token=abc\": dial tcp: lookup loki: no such host","status":"ERROR"}"#,
            ),
            "/api/datasources/uid/gone/health" => respond(404, r#"{"message":"Data source not found"}"#),
            _ if path.starts_with("/api/dashboards/uid/") => {
                respond(404, r#"{"message":"Dashboard not found"}"#)
            }
            _ => respond(404, r#"{"message":"Not found"}"#),
        }
    })
    .await;
    (server, paths)
}

fn load(url: &str, blocks: &[(&str, &str)]) -> LoadedChecks {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.path().join("wrong"), "glsa_wrong_canary\n").unwrap();
    let items: Vec<String> = blocks
        .iter()
        .map(|(id, rest)| {
            item(
                id,
                "grafana",
                &format!("{{ server: {{ url: \"{url}\", bearer_token: {{ file: \"{{dir}}/token\" }} }}{rest} }}"),
            )
        })
        .collect();
    LoadedChecks::load_in(dir, &format!("checks:\n{}", items.concat()))
}

#[tokio::test]
async fn healthy_grafana_passes() {
    let (server, paths) = grafana("ok").await;
    let checks = load(
        &server.url("http", ""),
        &[(
            "grafana",
            ", dashboards: [readiness-overview], datasources: [prom]",
        )],
    );
    let outcome = checks.run("grafana").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(
        outcome.message,
        "database ok, 1 dashboard(s) found, 1 data source(s) healthy"
    );
    assert_eq!(
        *paths.lock().unwrap(),
        [
            "/api/health",
            "/api/dashboards/uid/readiness-overview",
            "/api/datasources/uid/prom/health"
        ]
    );
    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_grafana_dashboards_missing{check=\"grafana\"} 0.0",
    );
    assert_metric(
        &metrics,
        "readiness_grafana_datasources_failing{check=\"grafana\"} 0.0",
    );
}

#[tokio::test]
async fn missing_dashboard_and_failing_datasource_fail() {
    let (server, _) = grafana("ok").await;
    let checks = load(
        &server.url("http", ""),
        &[(
            "grafana",
            ", dashboards: [readiness-overview, slo-overview], datasources: [prom, loki, gone]",
        )],
    );
    let outcome = checks.run("grafana").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::DashboardMissing);
    let message = &outcome.message;
    assert!(
        message.starts_with(
            "dashboard `slo-overview` not found; check its provisioning or the uid; \
             data source `loki` failed its health check (ERROR): Unable to connect with Loki."
        ),
        "{message}"
    );
    assert!(
        message.contains("; data source `gone` not found"),
        "{message}"
    );
    assert!(!message.contains("token=abc"), "{message}");
    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_grafana_dashboards_missing{check=\"grafana\"} 1.0",
    );
    assert_metric(
        &metrics,
        "readiness_grafana_datasources_failing{check=\"grafana\"} 2.0",
    );
}

#[tokio::test]
async fn failing_database_fails() {
    let (server, _) = grafana("failing").await;
    let checks = load(
        &server.url("http", ""),
        &[("grafana", ", dashboards: [readiness-overview]")],
    );
    let outcome = checks.run("grafana").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::Unhealthy);
    assert_eq!(
        outcome.message,
        "Grafana reports its database as `failing` (status 503); check Grafana's database connection"
    );
    assert_no_series(
        &checks.metrics(),
        "readiness_grafana_dashboards_missing",
        "grafana",
    );
}

#[tokio::test]
async fn wrong_token_is_an_error() {
    let (server, _) = grafana("ok").await;
    let url = server.url("http", "");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wrong"), "glsa_wrong_canary\n").unwrap();
    let checks = LoadedChecks::load_in(
        dir,
        &format!(
            "checks:\n{}",
            item(
                "grafana",
                "grafana",
                &format!("{{ server: {{ url: \"{url}\", bearer_token: {{ file: \"{{dir}}/wrong\" }} }}, dashboards: [readiness-overview] }}"),
            )
        ),
    );
    let outcome = checks.run("grafana").await;
    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::Unauthorized);
    assert_eq!(
        outcome.message,
        "`/api/dashboards/uid/readiness-overview` returned status 401; check the credential the check sends"
    );
    assert!(!checks.metrics().contains("canary"));
}

#[tokio::test]
async fn uid_cannot_change_the_path() {
    let (server, paths) = grafana("ok").await;
    let checks = load(
        &server.url("http", "/grafana"),
        &[("grafana", ", dashboards: [\"../admin\"]")],
    );
    let outcome = checks.run("grafana").await;
    assert_eq!(outcome.status, Status::Fail, "{}", outcome.message);
    assert_eq!(outcome.reason, Reason::DashboardMissing);
    assert_eq!(
        *paths.lock().unwrap(),
        [
            "/grafana/api/health",
            "/grafana/api/dashboards/uid/..%2Fadmin"
        ]
    );
}
