//! The `http` check kind against servers started by each test on 127.0.0.1.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use readiness_exporter::check::{Outcome, Reason, Status};
use readiness_exporter::{config, scheduler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, respond, serve_fn, tcp_server, TestCa};

/// Loads a one-check configuration whose `http` block is `http_block` and runs it once.
async fn run_http(http_block: &str, timeout: &str) -> (Outcome, Duration) {
    support::init();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "checks:\n  - id: probe\n    title: Probe\n    section: Tests\n    severity: critical\n    interval: 30s\n    timeout: {timeout}\n    http:\n{}",
        indent(&http_block.replace("{dir}", &dir.path().display().to_string()), 6)
    );
    let path = support::write_config(dir.path(), &yaml);
    let config =
        config::load_with_env(&path, Some(HashMap::new())).unwrap_or_else(|err| panic!("{err}"));
    let result = scheduler::execute(&config.checks[0]).await;
    (result.outcome, result.duration)
}

async fn run(http_block: &str) -> Outcome {
    run_http(http_block, "5s").await.0
}

fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines().map(|line| format!("{pad}{line}\n")).collect()
}

fn assert_outcome(outcome: &Outcome, status: Status, reason: Reason) {
    assert_eq!(
        (outcome.status, outcome.reason),
        (status, reason),
        "message: {}",
        outcome.message
    );
}

#[tokio::test]
async fn expected_status_passes() {
    let server = serve_fn(|_| respond(200, "Healthy")).await;
    let outcome = run(&format!("url: {}", server.url("http", "/health"))).await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_eq!(outcome.value, Some(200.0));
    assert_eq!(
        outcome.measures[0].family.name,
        "readiness_http_status_code"
    );
    assert_eq!(outcome.measures[0].value, 200.0);
}

#[tokio::test]
async fn server_error_fails_with_status() {
    let server = serve_fn(|_| respond(503, "down")).await;
    let outcome = run(&format!("url: {}", server.url("http", "/"))).await;
    assert_outcome(&outcome, Status::Fail, Reason::UnexpectedStatus);
    assert_eq!(outcome.message, "status 503, expected 2xx");
}

#[tokio::test]
async fn auth_statuses_are_errors() {
    for (code, reason) in [
        (401, Reason::Unauthorized),
        (403, Reason::Forbidden),
        (429, Reason::RateLimited),
    ] {
        let server = serve_fn(move |_| respond(code, "")).await;
        let outcome = run(&format!("url: {}", server.url("http", "/"))).await;
        assert_outcome(&outcome, Status::Error, reason);
    }
}

#[tokio::test]
async fn listed_status_passes() {
    let server = serve_fn(|_| respond(404, "")).await;
    let outcome = run(&format!(
        "url: {}\nexpect_status: [404]",
        server.url("http", "/")
    ))
    .await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn header_condition_checked() {
    let server = serve_fn(|_| {
        let mut response = respond(200, "{}");
        response
            .headers_mut()
            .insert("content-type", "text/html".parse().unwrap());
        response
    })
    .await;
    let block = format!(
        "url: {}\nexpect_headers:\n  Content-Type: ^application/json",
        server.url("http", "/")
    );
    let outcome = run(&block).await;
    assert_outcome(&outcome, Status::Fail, Reason::HeaderMismatch);
    assert!(
        outcome.message.contains("`text/html`"),
        "{}",
        outcome.message
    );

    let block = format!(
        "url: {}\nexpect_headers:\n  X-Version: \"1\"",
        server.url("http", "/")
    );
    let outcome = run(&block).await;
    assert_eq!(outcome.message, "header `x-version` is missing");
}

#[tokio::test]
async fn body_regexes_checked() {
    let server = serve_fn(|_| respond(200, "status: Degraded")).await;
    let url = server.url("http", "/");
    let outcome = run(&format!("url: {url}\nbody_matches: [\"status: Healthy\"]")).await;
    assert_outcome(&outcome, Status::Fail, Reason::BodyMismatch);
    let outcome = run(&format!("url: {url}\nbody_not_matches: [Degraded]")).await;
    assert_outcome(&outcome, Status::Fail, Reason::BodyMismatch);
    let outcome = run(&format!(
        "url: {url}\nbody_matches: [Degraded]\nbody_not_matches: [Unhealthy]"
    ))
    .await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn json_conditions_checked() {
    let server = serve_fn(|_| {
        respond(200, r#"{"status":"Healthy","entries":{"db":{"status":"Degraded","ms":12}},"items":[{"name":"a"}]}"#)
    })
    .await;
    let url = server.url("http", "/");
    let passing = format!(
        "url: {url}\njson:\n  - path: status\n    equals: Healthy\n  - path: $.items[0].name\n    matches: ^a$\n  - path: entries.db.ms\n    exists: true\n  - path: entries.cache\n    exists: false"
    );
    assert_outcome(&run(&passing).await, Status::Pass, Reason::Ok);

    let failing = format!("url: {url}\njson:\n  - path: entries.db.status\n    equals: Healthy");
    let outcome = run(&failing).await;
    assert_outcome(&outcome, Status::Fail, Reason::BodyMismatch);
    assert_eq!(
        outcome.message,
        "JSON value `entries.db.status` is \"Degraded\", expected \"Healthy\""
    );

    let missing = format!("url: {url}\njson:\n  - path: items[3].name\n    exists: true");
    assert_eq!(
        run(&missing).await.message,
        "JSON value `items[3].name` is missing"
    );
}

#[tokio::test]
async fn invalid_json_is_error() {
    let server = serve_fn(|_| respond(200, "<html>not json")).await;
    let block = format!(
        "url: {}\njson:\n  - path: status\n    equals: ok",
        server.url("http", "/")
    );
    assert_outcome(&run(&block).await, Status::Error, Reason::InvalidResponse);
}

#[tokio::test]
async fn slow_response_fails_latency() {
    let server = tcp_server(|mut stream| async move {
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let block = format!("url: {}\nmax_latency: 100ms", server.url("http", "/"));
    let outcome = run(&block).await;
    assert_outcome(&outcome, Status::Fail, Reason::TooSlow);
    assert!(
        outcome.message.contains("more than the maximum of 100ms"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn silent_server_hits_timeout() {
    // Accepts the connection and never answers.
    let server = tcp_server(|stream| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(stream);
    })
    .await;
    let (outcome, duration) = run_http(&format!("url: {}", server.url("http", "/")), "500ms").await;
    assert_outcome(&outcome, Status::Error, Reason::Timeout);
    assert_eq!(outcome.message, "no result within the 500ms timeout");
    assert!(duration < Duration::from_secs(3), "held for {duration:?}");
}

#[tokio::test]
async fn huge_declared_body_rejected() {
    let server = tcp_server(|mut stream| async move {
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\n\r\n")
            .await;
        let zeros = vec![0u8; 64 * 1024];
        while stream.write_all(&zeros).await.is_ok() {}
    })
    .await;
    let block = format!(
        "url: {}\nbody_matches: [ok]\nmax_body_bytes: 65536",
        server.url("http", "/")
    );
    let outcome = run(&block).await;
    assert_outcome(&outcome, Status::Error, Reason::BodyTooLarge);
    assert!(
        outcome.message.contains("5000000000 bytes"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn endless_chunked_body_rejected() {
    let server = tcp_server(|mut stream| async move {
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await;
    let block = format!(
        "url: {}\nbody_matches: [ok]\nmax_body_bytes: 1000000",
        server.url("http", "/")
    );
    assert_outcome(&run(&block).await, Status::Error, Reason::BodyTooLarge);
}

#[tokio::test]
async fn garbage_response_is_invalid() {
    let server = tcp_server(|mut stream| async move {
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
        let _ = stream
            .write_all(b"\x00\x01garbage that is not HTTP\r\n\r\n")
            .await;
    })
    .await;
    let outcome = run(&format!("url: {}", server.url("http", "/"))).await;
    assert_outcome(&outcome, Status::Error, Reason::InvalidResponse);
}

#[tokio::test]
async fn refused_connection_is_error() {
    let port = support::closed_port().await;
    let outcome = run(&format!("url: http://127.0.0.1:{port}/health")).await;
    assert_outcome(&outcome, Status::Error, Reason::ConnectionRefused);
    assert!(
        outcome
            .message
            .starts_with(&format!("connection to 127.0.0.1:{port} refused")),
        "{}",
        outcome.message
    );
}

fn redirect_to(location: String) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let mut response = respond(302, "");
    response
        .headers_mut()
        .insert("location", location.parse().unwrap());
    response
}

#[tokio::test]
async fn redirects_off_by_default() {
    let target = serve_fn(|_| respond(200, "ok")).await;
    let target_url = target.url("http", "/final?token=abc");
    let server = serve_fn(move |_| redirect_to(target_url.clone())).await;
    let url = server.url("http", "/");
    let outcome = run(&format!("url: {url}")).await;
    assert_outcome(&outcome, Status::Fail, Reason::UnexpectedStatus);
    assert!(
        outcome.message.contains("follow_redirects: true"),
        "{}",
        outcome.message
    );
    assert!(
        !outcome.message.contains("token=abc"),
        "query strings stay out of messages"
    );

    let outcome = run(&format!("url: {url}\nfollow_redirects: true")).await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn redirect_loop_detected() {
    let server = serve_fn(|request| {
        let next = if request.uri().path() == "/a" {
            "/b"
        } else {
            "/a"
        };
        redirect_to(next.to_string())
    })
    .await;
    let block = format!("url: {}\nfollow_redirects: true", server.url("http", "/a"));
    assert_outcome(&run(&block).await, Status::Error, Reason::TooManyRedirects);
}

#[tokio::test]
async fn https_with_ca_file_passes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let ca_path = ca.write(dir.path());
    let leaf = ca.valid_leaf(&["localhost"]);
    let server = support::http_server(
        Some(leaf.server_config(&[])),
        Arc::new(|_| respond(200, "ok")),
    )
    .await;
    let url = format!("https://localhost:{}/", server.addr.port());
    let outcome = run(&format!("url: {url}\nca_file: {}", ca_path.display())).await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok);

    // Without the CA file the system roots apply, and they do not trust the test CA.
    let outcome = run(&format!("url: {url}")).await;
    assert_outcome(&outcome, Status::Error, Reason::TlsError);
    assert!(
        outcome.message.starts_with("TLS handshake with localhost:"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn expired_certificate_is_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let ca_path = ca.write(dir.path());
    let leaf = ca.leaf(
        &["localhost"],
        time::Duration::days(-30),
        time::Duration::days(-1),
    );
    let server = support::http_server(
        Some(leaf.server_config(&[])),
        Arc::new(|_| respond(200, "ok")),
    )
    .await;
    let block = format!(
        "url: https://localhost:{}/\nca_file: {}",
        server.addr.port(),
        ca_path.display()
    );
    let outcome = run(&block).await;
    assert_outcome(&outcome, Status::Error, Reason::TlsError);
    assert!(
        outcome.message.to_lowercase().contains("expired"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn redirect_hop_certificate_verified() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let ca_path = ca.write(dir.path());
    // The second hop presents a certificate for localhost but is reached as 127.0.0.1.
    let second = support::http_server(
        Some(ca.valid_leaf(&["localhost"]).server_config(&[])),
        Arc::new(|_| respond(200, "ok")),
    )
    .await;
    let location = format!("https://127.0.0.1:{}/", second.addr.port());
    let first = support::http_server(
        Some(ca.valid_leaf(&["localhost"]).server_config(&[])),
        Arc::new(move |_| redirect_to(location.clone())),
    )
    .await;
    let block = format!(
        "url: https://localhost:{}/\nfollow_redirects: true\nca_file: {}",
        first.addr.port(),
        ca_path.display()
    );
    let outcome = run(&block).await;
    assert_outcome(&outcome, Status::Error, Reason::TlsError);
    assert!(outcome.message.contains("127.0.0.1"), "{}", outcome.message);
}

#[tokio::test]
async fn https_to_http_redirect_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let ca_path = ca.write(dir.path());
    let plain = serve_fn(|_| respond(200, "ok")).await;
    let location = plain.url("http", "/");
    let secure = support::http_server(
        Some(ca.valid_leaf(&["localhost"]).server_config(&[])),
        Arc::new(move |_| redirect_to(location.clone())),
    )
    .await;
    let block = format!(
        "url: https://localhost:{}/\nfollow_redirects: true\nca_file: {}",
        secure.addr.port(),
        ca_path.display()
    );
    let outcome = run(&block).await;
    assert_outcome(&outcome, Status::Error, Reason::TooManyRedirects);
    assert!(
        outcome.message.contains("https to http"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn secret_header_sent_never_shown() {
    const TOKEN: &str = "canary-7f3a9c1e-header-token";
    let server = serve_fn(|request| {
        let authorized = request
            .headers()
            .get("authorization")
            .is_some_and(|value| value == "Bearer canary-7f3a9c1e-header-token");
        respond(if authorized { 200 } else { 401 }, "")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, format!("Bearer {TOKEN}\n")).unwrap();
    let block = format!(
        "url: {}\nheaders:\n  Authorization: {{ file: {} }}",
        server.url("http", "/"),
        token_path.display()
    );
    let outcome = run(&block).await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert!(!format!("{outcome:?}").contains(TOKEN));

    std::fs::write(&token_path, "Bearer wrong").unwrap();
    let outcome = run(&block).await;
    assert_outcome(&outcome, Status::Error, Reason::Unauthorized);
    assert!(!format!("{outcome:?}").contains("wrong"));
}

#[tokio::test]
async fn unresolvable_secret_is_error() {
    let server = serve_fn(|_| respond(200, "")).await;
    let block = format!(
        "url: {}\nheaders:\n  X-Api-Key: {{ env: READINESS_TEST_VARIABLE_THAT_IS_NOT_SET }}",
        server.url("http", "/")
    );
    let outcome = run(&block).await;
    assert_outcome(&outcome, Status::Error, Reason::SecretUnavailable);
    assert!(
        outcome
            .message
            .contains("READINESS_TEST_VARIABLE_THAT_IS_NOT_SET"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn request_method_headers_body_sent() {
    let server = serve_fn(|request| {
        let ok = request.method() == http::Method::POST
            && request
                .headers()
                .get("x-probe")
                .is_some_and(|value| value == "readiness");
        respond(if ok { 201 } else { 400 }, "")
    })
    .await;
    let block = format!(
        "url: {}\nmethod: post\nheaders:\n  X-Probe: readiness\nbody: '{{\"ping\":true}}'\nexpect_status: [201]",
        server.url("http", "/")
    );
    assert_outcome(&run(&block).await, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn relative_secret_file_follows_config() {
    let server = serve_fn(|request| {
        let authorized = request
            .headers()
            .get("authorization")
            .is_some_and(|value| value == "Bearer relative-token");
        respond(if authorized { 200 } else { 401 }, "")
    })
    .await;
    // The token file sits beside the configuration and is named relative to it, while the
    // test's working directory is the repository.
    let block = format!(
        "url: {}\nheaders:\n  Authorization: {{ file: token }}",
        server.url("http", "/")
    );
    support::init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "Bearer relative-token\n").unwrap();
    let yaml = format!(
        "checks:\n  - id: probe\n    title: Probe\n    section: Tests\n    severity: critical\n    http:\n{}",
        indent(&block, 6)
    );
    let path = support::write_config(dir.path(), &yaml);
    let config = config::load_with_env(&path, Some(HashMap::new())).unwrap();
    let outcome = scheduler::execute(&config.checks[0]).await.outcome;
    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn https_to_plain_http_suggests_scheme() {
    let server = serve_fn(|_| respond(200, "plain")).await;
    let outcome = run(&format!("url: {}", server.url("https", "/health"))).await;
    assert_outcome(&outcome, Status::Error, Reason::TlsError);
    assert!(
        outcome.message.contains("write the URL with `http://`"),
        "{}",
        outcome.message
    );
}
