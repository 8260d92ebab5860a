//! The `elasticsearch_count` kind against a local server that responds as the `_count` API of
//! Elasticsearch and OpenSearch documents.

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use readiness_exporter::check::{Reason, Status};

use crate::monitoring::{item, load};
use crate::support::{assert_metric, assert_no_series, respond, TestServer};

/// Paths and JSON bodies of the requests a fake cluster received.
type Requests = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// Starts a fake cluster: index `logs-shop-*` counts 42 documents, `logs-partial` has a failed
/// shard, and any other index does not exist.
async fn cluster() -> (TestServer, Requests) {
    let requests: Requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    // The shared fixture's handlers are synchronous, so this server reads request bodies itself.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let path = request.uri().path().to_string();
                            let body = request.into_body().collect().await?.to_bytes();
                            let body = serde_json::from_slice(&body).unwrap_or_default();
                            seen.lock().unwrap().push((path.clone(), body));
                            Ok::<_, hyper::Error>(answer(&path))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (TestServer::new(addr, task), requests)
}

fn answer(path: &str) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    match path {
        "/logs-shop-*/_count" => respond(
            200,
            r#"{"count":42,"_shards":{"total":3,"successful":3,"skipped":0,"failed":0}}"#,
        ),
        "/logs-partial/_count" => respond(
            200,
            r#"{"count":7,"_shards":{"total":3,"successful":2,"skipped":0,"failed":1}}"#,
        ),
        _ => respond(
            404,
            r#"{"error":{"root_cause":[],"type":"index_not_found_exception","reason":"no such index [logs-missing]","index":"logs-missing"},"status":404}"#,
        ),
    }
}

fn block(server: &TestServer, rest: &str) -> String {
    format!(
        "{{ server: {{ url: \"{}\" }}, window: 5m{rest} }}",
        server.url("http", "")
    )
}

#[tokio::test]
async fn recent_documents_pass() {
    let (server, requests) = cluster().await;
    let checks = load(&[item(
        "logs",
        "elasticsearch_count",
        &block(
            &server,
            ", index: \"logs-shop-*\", query: { match: { app: api } }, min: 1",
        ),
    )]);
    let outcome = checks.run("logs").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(outcome.message, "42 documents in the last 5m, at least 1");
    let requests = requests.lock().unwrap();
    assert_eq!(requests[0].0, "/logs-shop-*/_count");
    assert_eq!(
        requests[0].1,
        serde_json::json!({"query": {"bool": {"filter": [
            {"range": {"@timestamp": {"gte": "now-300s", "lte": "now"}}},
            {"match": {"app": "api"}}
        ]}}})
    );
    assert_metric(
        &checks.metrics(),
        "readiness_elasticsearch_count{check=\"logs\"} 42.0",
    );
}

#[tokio::test]
async fn too_few_documents_fail() {
    let (server, _) = cluster().await;
    let checks = load(&[item(
        "logs",
        "elasticsearch_count",
        &block(&server, ", index: \"logs-shop-*\", min: 100"),
    )]);
    let outcome = checks.run("logs").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::ValueOutOfRange);
    assert_eq!(
        outcome.message,
        "the count of documents in the last 5m 42 is below the minimum 100"
    );
}

#[tokio::test]
async fn partial_and_failed_counts_are_errors() {
    let (server, _) = cluster().await;
    let checks = load(&[
        item(
            "partial",
            "elasticsearch_count",
            &block(&server, ", index: logs-partial, min: 1"),
        ),
        item(
            "missing",
            "elasticsearch_count",
            &block(&server, ", index: logs-missing, min: 1"),
        ),
    ]);
    let partial = checks.run("partial").await;
    assert_eq!(partial.status, Status::Error);
    assert_eq!(partial.reason, Reason::PartialResult);
    assert_eq!(
        partial.message,
        "1 of 3 shards failed, so the count of 7 is incomplete"
    );
    let missing = checks.run("missing").await;
    assert_eq!(missing.status, Status::Error);
    assert_eq!(missing.reason, Reason::QueryFailed);
    assert_eq!(
        missing.message,
        "`_count` on `logs-missing` returned status 404 (index_not_found_exception: no such index [logs-missing])"
    );
    let metrics = checks.metrics();
    assert_no_series(&metrics, "readiness_elasticsearch_count", "partial");
    assert_no_series(&metrics, "readiness_elasticsearch_count", "missing");
}
