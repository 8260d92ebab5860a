//! The `loki` kind against a local server that responds as Loki's HTTP API documents.

use std::sync::{Arc, Mutex};

use readiness_exporter::check::{Reason, Status};

use crate::monitoring::{item, load};
use crate::support::{assert_metric, assert_no_series, respond, serve_fn, TestServer};

const VECTOR: &str = include_str!("fixtures/monitoring/loki-vector.json");
const STREAMS: &str = include_str!("fixtures/monitoring/loki-streams.json");

/// Starts a fake Loki for tenant `shop`. `ready` is whether `/ready` returns 200. Each query's
/// response depends on what it selects: `app="api"` has three lines, `app="none"` none, a log query returns
/// streams, and anything with `((` is a parse error.
async fn loki(ready: bool) -> (TestServer, Arc<Mutex<Vec<String>>>) {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let server = serve_fn(move |request| {
        if request.headers().get("x-scope-orgid").is_none_or(|tenant| tenant != "shop") {
            return respond(401, "no org id\n");
        }
        match request.uri().path() {
            "/ready" if ready => respond(200, "ready\n"),
            "/ready" => respond(503, "Ingester not ready: waiting for 15s after being ready\n"),
            "/loki/api/v1/query" => {
                let query: String = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                    .find(|(key, _)| key == "query")
                    .map(|(_, value)| value.into_owned())
                    .unwrap_or_default();
                seen.lock().unwrap().push(query.clone());
                if query.contains("((") {
                    respond(400, "parse error at line 1, col 5: syntax error: unexpected (\n")
                } else if !query.contains("count_over_time") {
                    respond(200, STREAMS)
                } else if query.contains("app=\"none\"") {
                    respond(200, r#"{"status":"success","data":{"resultType":"vector","result":[],"stats":{}}}"#)
                } else {
                    respond(200, VECTOR)
                }
            }
            _ => respond(404, "404 page not found\n"),
        }
    })
    .await;
    (server, queries)
}

fn block(server: &TestServer, rest: &str) -> String {
    format!(
        "{{ server: {{ url: \"{}\" }}, tenant: shop{rest} }}",
        server.url("http", "")
    )
}

#[tokio::test]
async fn recent_log_lines_pass() {
    let (server, queries) = loki(true).await;
    let query = r#"sum(count_over_time({namespace="shop", app="api"}[5m]))"#;
    let checks = load(&[item(
        "logs",
        "loki",
        &block(&server, &format!(", query: '{query}', min: 1")),
    )]);
    let outcome = checks.run("logs").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(outcome.message, "the query returned 3, at least 1");
    assert_eq!(*queries.lock().unwrap(), [query]);
    assert_metric(
        &checks.metrics(),
        "readiness_loki_query_value{check=\"logs\"} 3.0",
    );
}

#[tokio::test]
async fn no_log_lines_fail() {
    let (server, _) = loki(true).await;
    let checks = load(&[item(
        "logs",
        "loki",
        &block(
            &server,
            r#", query: 'sum(count_over_time({app="none"}[5m]))', min: 1"#,
        ),
    )]);
    let outcome = checks.run("logs").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::EmptyResult);
    assert_eq!(
        outcome.message,
        "the query returned no series (on_empty: fail)"
    );
    assert_no_series(&checks.metrics(), "readiness_loki_query_value", "logs");
}

#[tokio::test]
async fn too_many_error_lines_fail() {
    let (server, _) = loki(true).await;
    let checks = load(&[item(
        "errors",
        "loki",
        &block(
            &server,
            r#", query: 'sum(count_over_time({app="api", level="error"}[5m]))', max: 2, on_empty: pass"#,
        ),
    )]);
    let outcome = checks.run("errors").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::ValueOutOfRange);
    assert_eq!(
        outcome.message,
        "the query returned 3 is above the maximum 2"
    );
}

#[tokio::test]
async fn unready_loki_fails() {
    let (server, queries) = loki(false).await;
    let checks = load(&[item(
        "logs",
        "loki",
        &block(
            &server,
            r#", query: 'sum(count_over_time({app="api"}[5m]))', min: 1"#,
        ),
    )]);
    let outcome = checks.run("logs").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::NotReady);
    assert_eq!(
        outcome.message,
        "`/ready` returned status 503: `Ingester not ready: waiting for 15s after being ready`"
    );
    assert!(queries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn rejected_and_log_queries_are_errors() {
    let (server, _) = loki(true).await;
    let checks = load(&[
        item(
            "syntax",
            "loki",
            &block(&server, r#", query: 'sum((', min: 1"#),
        ),
        item(
            "lines",
            "loki",
            &block(&server, r#", query: '{app="api"}', min: 1"#),
        ),
    ]);
    let syntax = checks.run("syntax").await;
    assert_eq!(syntax.status, Status::Error);
    assert_eq!(syntax.reason, Reason::QueryFailed);
    assert_eq!(
        syntax.message,
        "`/loki/api/v1/query` returned status 400: parse error at line 1, col 5: syntax error: unexpected ("
    );
    let lines = checks.run("lines").await;
    assert_eq!(lines.status, Status::Error);
    assert_eq!(lines.reason, Reason::InvalidResponse);
    assert!(
        lines
            .message
            .starts_with("the query returned log lines, not a number"),
        "{}",
        lines.message
    );
}

#[tokio::test]
async fn missing_tenant_is_unauthorized() {
    let (server, _) = loki(true).await;
    let checks = load(&[item(
        "logs",
        "loki",
        &format!(
            "{{ server: {{ url: \"{}\" }}, query: 'sum(count_over_time({{app=\"api\"}}[5m]))', min: 1 }}",
            server.url("http", "")
        ),
    )]);
    let outcome = checks.run("logs").await;
    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::Unauthorized);
}
