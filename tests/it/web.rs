//! The web endpoints of a running exporter: metrics, status page, JSON API, gate, health, reload.

use std::time::Duration;

use crate::support::{self, get, respond, serve_fn, start_exporter, tcp_server, RunningExporter};

async fn post(url: &str) -> (u16, String) {
    support::init();
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(url)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn checklist(up_url: &str, down_port: u16) -> String {
    format!(
        "global:
  interval: 10s
  timeout: 2s
checks:
  - id: api_up
    title: \"Smoke tests: API answers\"
    section: Deployment
    severity: critical
    runbook_url: https://runbooks.example.com/api-up
    http:
      url: {up_url}
  - id: identity_down
    title: \"Smoke tests: <Identity> answers\"
    section: Deployment
    severity: critical
    http:
      url: http://127.0.0.1:{down_port}/health
  - id: docs_info
    title: Documentation updated
    section: Post-deployment
    severity: info
    http:
      url: {up_url}
"
    )
}

async fn exporter_with_one_failure() -> (RunningExporter, support::TestServer) {
    let server = serve_fn(|_| respond(200, "ok")).await;
    let down = support::closed_port().await;
    let exporter = start_exporter(&checklist(&server.url("http", "/"), down)).await;
    exporter.wait_ready().await;
    (exporter, server)
}

#[tokio::test]
async fn metrics_expose_cached_results() {
    let (exporter, _server) = exporter_with_one_failure().await;
    let (status, content_type, body) = get(&exporter.url("/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    for line in [
        "readiness_check_success{check=\"api_up\"} 1",
        "readiness_check_success{check=\"identity_down\"} 0",
        "readiness_check_result{check=\"identity_down\",result=\"error\"} 1",
        "readiness_check_result{check=\"identity_down\",result=\"pass\"} 0",
        "readiness_check_failures_total{check=\"identity_down\",reason=\"connection_refused\"} 1",
        "readiness_check_info{check=\"api_up\",title=\"Smoke tests: API answers\",section=\"Deployment\",severity=\"critical\",kind=\"http\",blocking=\"true\",runbook_url=\"https://runbooks.example.com/api-up\"} 1",
        "readiness_check_info{check=\"docs_info\",title=\"Documentation updated\",section=\"Post-deployment\",severity=\"info\",kind=\"http\",blocking=\"false\",runbook_url=\"\"} 1",
        "readiness_check_interval_seconds{check=\"api_up\"} 10.0",
        "readiness_gate_open 0",
        "readiness_exporter_checks 3",
        "readiness_exporter_config_last_reload_successful 1",
        "readiness_http_status_code{check=\"api_up\"} 200.0",
        "# TYPE readiness_check_failures counter",
        "# UNIT readiness_check_duration_seconds seconds",
    ] {
        assert!(body.lines().any(|l| l.starts_with(line)), "missing `{line}` in:\n{body}");
    }
    assert!(body.contains("readiness_exporter_build_info{version=\""));
    assert!(body.ends_with("# EOF\n"));
    // Error text never becomes a label value.
    assert!(!body.contains("refused;"));
}

#[tokio::test]
async fn scrape_never_runs_a_check() {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let server = serve_fn(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        respond(200, "ok")
    })
    .await;
    let exporter = start_exporter(&checklist(
        &server.url("http", "/"),
        support::closed_port().await,
    ))
    .await;
    exporter.wait_ready().await;
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..20 {
        get(&exporter.url("/metrics")).await;
        get(&exporter.url("/")).await;
        get(&exporter.url("/api/v1/gate")).await;
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before);
}

#[tokio::test]
async fn status_page_lists_checklist() {
    let (exporter, _server) = exporter_with_one_failure().await;
    let (status, content_type, page) = get(&exporter.url("/")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(page.contains("<meta http-equiv=\"refresh\""));
    assert!(page.contains("Gate closed"));
    assert!(page.contains("<h2>Deployment"));
    assert!(page.contains("<h2>Post-deployment"));
    assert!(page.contains("<tr id=\"check-api_up\">"));
    assert!(page.contains("href=\"https://runbooks.example.com/api-up\""));
    assert!(
        page.contains("Smoke tests: &lt;Identity&gt; answers"),
        "titles are escaped"
    );
    assert!(page.contains("connection_refused"));
    assert!(!page.contains("<script"));
}

#[tokio::test]
async fn status_page_lists_blocking_items_first() {
    let (exporter, _server) = exporter_with_one_failure().await;
    let (_, _, page) = get(&exporter.url("/")).await;
    let list_start = page
        .find("Blocking the gate")
        .expect("a list of blocking items");
    let first_section = page.find("<h2>").expect("a section heading");
    assert!(
        list_start < first_section,
        "the blocking list comes before the sections"
    );
    let list = &page[list_start..first_section];
    assert!(
        list.contains("<a href=\"#check-identity_down\">"),
        "the failing critical check is listed: {list}"
    );
    assert!(
        !list.contains("check-api_up"),
        "a passing check is not listed: {list}"
    );
    assert!(
        !list.contains("check-docs_info"),
        "a non-blocking check is not listed: {list}"
    );
    assert!(!page.contains("reload was rejected"));
}

#[tokio::test]
async fn status_page_shows_rejected_reload() {
    let (exporter, _server) = exporter_with_one_failure().await;
    std::fs::write(&exporter.config_path, "checks:\n  - id: Bad Id\n").unwrap();
    let (status, _) = post(&exporter.url("/-/reload")).await;
    assert_eq!(status, 500);
    let (_, _, page) = get(&exporter.url("/")).await;
    assert!(
        page.contains("The last configuration reload was rejected."),
        "{page}"
    );
    assert!(
        page.contains("<tr id=\"check-api_up\">"),
        "the running checks stay listed"
    );
}

#[tokio::test]
async fn checks_api_returns_json() {
    let (exporter, _server) = exporter_with_one_failure().await;
    let (status, content_type, body) = get(&exporter.url("/api/v1/checks")).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["gate_open"], false);
    let checks = document["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    assert_eq!(checks[0]["id"], "api_up");
    assert_eq!(checks[0]["status"], "pass");
    assert_eq!(checks[0]["value"], 200.0);
    assert_eq!(checks[1]["status"], "error");
    assert_eq!(checks[1]["reason"], "connection_refused");
    assert!(checks[1]["last_run"].as_str().unwrap().ends_with('Z'));

    let (status, _, body) = get(&exporter.url("/api/v1/checks/identity_down")).await;
    assert_eq!(status, 200);
    let check: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(check["severity"], "critical");
    assert_eq!(check["blocking"], true);

    let (status, _, body) = get(&exporter.url("/api/v1/checks/nope")).await;
    assert_eq!(status, 404);
    assert!(body.contains("no check with id `nope`"));
}

#[tokio::test]
async fn gate_reports_blocking_failures() {
    let (exporter, _server) = exporter_with_one_failure().await;
    let (status, _, body) = get(&exporter.url("/api/v1/gate")).await;
    assert_eq!(status, 503);
    let gate: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(gate["open"], false);
    assert_eq!(gate["blocking_checks"], 2);
    assert_eq!(gate["blocking_failures"][0]["id"], "identity_down");
    assert_eq!(gate["blocking_failures"].as_array().unwrap().len(), 1);

    let (status, _, body) = get(&exporter.url("/api/v1/gate?section=Post-deployment")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get(&exporter.url("/api/v1/gate?section=Nowhere")).await;
    assert_eq!(status, 404);
    assert!(
        body.contains("known sections: Deployment, Post-deployment"),
        "{body}"
    );
}

#[tokio::test]
async fn ready_after_every_check_ran() {
    let silent = tcp_server(|stream| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(stream);
    })
    .await;
    let exporter = start_exporter(&format!(
        "global:\n  interval: 10s\n  timeout: 1s\nchecks:\n  - id: slow\n    title: Slow\n    section: S\n    severity: warning\n    http:\n      url: {}\n",
        silent.url("http", "/")
    ))
    .await;
    let (status, _, body) = get(&exporter.url("/-/ready")).await;
    assert_eq!(
        (status, body.as_str()),
        (503, "1 of 1 checks have not run yet\n")
    );
    assert_eq!(get(&exporter.url("/-/healthy")).await.0, 200);
    exporter.wait_ready().await;
    assert_eq!(get(&exporter.url("/-/ready")).await.0, 200);
}

#[tokio::test]
async fn unknown_paths_and_methods_rejected() {
    let (exporter, _server) = exporter_with_one_failure().await;
    assert_eq!(
        get(&exporter.url("/probe?target=http://127.0.0.1:1/"))
            .await
            .0,
        404
    );
    assert_eq!(post(&exporter.url("/metrics")).await.0, 405);
    assert_eq!(get(&exporter.url("/-/reload")).await.0, 405);
}

#[tokio::test]
async fn reload_reply_names_listen_address_change() {
    let (exporter, _server) = exporter_with_one_failure().await;
    let text = std::fs::read_to_string(&exporter.config_path).unwrap();
    let moved = text.replacen("global:\n", "global:\n  listen_address: 127.0.0.1:1\n", 1);
    std::fs::write(&exporter.config_path, moved).unwrap();
    let (status, body) = post(&exporter.url("/-/reload")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("global.listen_address changed to 127.0.0.1:1"),
        "{body}"
    );
    assert!(body.contains("until it restarts"), "{body}");
}

#[tokio::test]
async fn method_not_allowed_names_allowed_methods() {
    let (exporter, _server) = exporter_with_one_failure().await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client.post(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    let response = client.get(exporter.url("/-/reload")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST, PUT");
}

#[tokio::test]
async fn reload_applies_valid_and_rejects_invalid() {
    let (exporter, server) = exporter_with_one_failure().await;
    let up = server.url("http", "/");
    let changed = format!(
        "global:\n  interval: 10s\n  timeout: 2s\nchecks:\n  - id: api_up\n    title: \"Smoke tests: API answers\"\n    section: Deployment\n    severity: critical\n    runbook_url: https://runbooks.example.com/api-up\n    http:\n      url: {up}\n  - id: added\n    title: Added\n    section: Deployment\n    severity: warning\n    http:\n      url: {up}\n"
    );
    std::fs::write(&exporter.config_path, changed).unwrap();
    let (status, body) = post(&exporter.url("/-/reload")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "configuration reloaded: 2 checks\n")
    );
    let (_, _, metrics) = get(&exporter.url("/metrics")).await;
    assert!(
        !metrics.contains("identity_down"),
        "series of a removed check disappear"
    );
    assert!(metrics.contains("readiness_check_info{check=\"added\""));
    assert!(
        metrics.contains("readiness_check_success{check=\"api_up\"} 1"),
        "unchanged checks keep results"
    );

    std::fs::write(&exporter.config_path, "checks:\n  - id: Bad Id\n").unwrap();
    let (status, body) = post(&exporter.url("/-/reload")).await;
    assert_eq!(status, 500);
    assert!(
        body.starts_with("reload rejected, the previous configuration stays in effect"),
        "{body}"
    );
    assert!(body.contains("line 2: check `Bad Id`"), "{body}");
    let (_, _, metrics) = get(&exporter.url("/metrics")).await;
    assert!(metrics.contains("readiness_exporter_config_last_reload_successful 0"));
    assert!(
        metrics.contains("readiness_check_info{check=\"added\""),
        "the running configuration stays"
    );
}
