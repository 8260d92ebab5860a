//! The `cors` kind against HTTP servers on 127.0.0.1 with correct and broken CORS responses.

use std::sync::{Arc, Mutex};

use http::header::{self, HeaderValue};
use http::Method;
use readiness_exporter::check::{Reason, Status};

use crate::support::{self, assert_metric, config_problems, LoadedChecks, TestServer};

const APP: &str = "https://app.example.com";
const ADMIN: &str = "https://admin.example.com";
const EVIL: &str = "https://evil.example.net";
const PROBE: &str = "https://readiness-probe.invalid";

/// How the test server decides `Access-Control-Allow-Origin`.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Echo the origin when it is in the list.
    List,
    /// Echo any origin.
    Reflect,
    /// Send `*` to every origin.
    Wildcard,
}

/// The CORS behaviour of a test server.
#[derive(Clone)]
struct Policy {
    mode: Mode,
    allowed: Vec<&'static str>,
    credentials: bool,
    vary: bool,
    methods: &'static str,
    headers: &'static str,
    preflight_status: u16,
    /// Actual requests without `Authorization: Bearer <token>` get 401.
    token: Option<&'static str>,
}

impl Policy {
    /// A correct server: it allows the front end's two origins with credentials, PUT and the
    /// `Authorization` and `Content-Type` headers, and lists `Origin` in `Vary`.
    fn correct() -> Policy {
        Policy {
            mode: Mode::List,
            allowed: vec![APP, ADMIN],
            credentials: true,
            vary: true,
            methods: "GET, PUT, DELETE",
            headers: "Authorization, Content-Type",
            preflight_status: 204,
            token: None,
        }
    }
}

/// One request the server received: method, origin, preflight headers, whether it carried
/// `Authorization`.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    method: String,
    origin: String,
    request_method: Option<String>,
    request_headers: Option<String>,
    authorization: bool,
}

async fn cors_server(policy: Policy) -> (TestServer, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = support::serve_fn(move |request| {
        let text = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_string())
        };
        let origin = text("origin").unwrap_or_default();
        let authorization = text("authorization");
        log.lock().unwrap().push(Seen {
            method: request.method().to_string(),
            origin: origin.clone(),
            request_method: text("access-control-request-method"),
            request_headers: text("access-control-request-headers"),
            authorization: authorization.is_some(),
        });

        let preflight = request.method() == Method::OPTIONS;
        let authorized = match policy.token {
            Some(token) => authorization.as_deref() == Some(&format!("Bearer {token}")),
            None => true,
        };
        let mut response = if preflight {
            support::respond(policy.preflight_status, "")
        } else if !authorized {
            support::respond(401, "")
        } else {
            support::respond(200, "{}")
        };

        let allow = match policy.mode {
            Mode::List => policy
                .allowed
                .contains(&origin.as_str())
                .then(|| origin.clone()),
            Mode::Reflect => Some(origin.clone()),
            Mode::Wildcard => Some("*".to_string()),
        };
        let headers = response.headers_mut();
        if let Some(allow) = allow {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_str(&allow).unwrap(),
            );
            if policy.credentials {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            if preflight && !policy.methods.is_empty() {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(policy.methods),
                );
            }
            if preflight && !policy.headers.is_empty() {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(policy.headers),
                );
            }
        }
        if policy.vary && policy.mode != Mode::Wildcard {
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        response
    })
    .await;
    (server, seen)
}

/// Returns a checklist with one `cors` check `api_cors` on `url`; `fields` are further lines of the
/// `cors` block, indented by six spaces. The `cors:` key is on line 6 and `url:` on line 7.
fn checklist(url: &str, fields: &str) -> String {
    format!(
        "checks:
  - id: api_cors
    title: \"CORS Origins: the API allows the production front end\"
    section: \"I. Pre-Deployment\"
    severity: critical
    cors:
      url: {url}
{fields}"
    )
}

/// The fields of a check that expects the correct server's behaviour.
const FRONT_END: &str = "      method: PUT
      request_headers: [Authorization, Content-Type]
      credentials: true
      allowed_origins: [\"https://app.example.com\", \"https://admin.example.com\"]
      rejected_origins: [\"https://evil.example.net\"]
";

async fn run(policy: Policy, fields: &str) -> (readiness_exporter::check::Outcome, String) {
    let (server, _) = cors_server(policy).await;
    let checks = LoadedChecks::load(&checklist(&server.url("http", "/v1/patients"), fields));
    let outcome = checks.run("api_cors").await;
    (outcome, checks.metrics())
}

fn allowed_line(origin: &str, value: u8) -> String {
    format!("readiness_cors_origin_allowed{{check=\"api_cors\",origin=\"{origin}\"}} {value}.0")
}

#[tokio::test]
async fn correct_cors_passes() {
    let (outcome, metrics) = run(Policy::correct(), FRONT_END).await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(outcome.reason, Reason::Ok);
    assert_eq!(
        outcome.message,
        "2 allowed origins PUT and headers authorization, content-type with credentials; 1 rejected origin and a made-up origin are not echoed"
    );
    assert_metric(
        &metrics,
        "readiness_check_result{check=\"api_cors\",result=\"pass\"} 1",
    );
    assert_metric(&metrics, &allowed_line(APP, 1));
    assert_metric(&metrics, &allowed_line(ADMIN, 1));
    assert_metric(&metrics, &allowed_line(EVIL, 0));
    assert_metric(&metrics, &allowed_line(PROBE, 0));
    assert_metric(
        &metrics,
        "readiness_cors_responses_without_vary{check=\"api_cors\"} 0.0",
    );
}

#[tokio::test]
async fn preflight_carries_method_and_headers() {
    let mut policy = Policy::correct();
    policy.token = Some("s3cret-token");
    let (server, seen) = cors_server(policy).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "Bearer s3cret-token\n").unwrap();
    let fields =
        format!("{FRONT_END}      headers:\n        Authorization: {{ file: {{dir}}/token }}\n");
    let checks = LoadedChecks::load_in(dir, &checklist(&server.url("http", "/v1"), &fields));

    let outcome = checks.run("api_cors").await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert!(!outcome.message.contains("s3cret"), "{}", outcome.message);
    let seen = seen.lock().unwrap().clone();
    let preflight = Seen {
        method: "OPTIONS".into(),
        origin: APP.into(),
        request_method: Some("PUT".into()),
        request_headers: Some("authorization,content-type".into()),
        authorization: false,
    };
    let actual = Seen {
        method: "PUT".into(),
        origin: APP.into(),
        request_method: None,
        request_headers: None,
        authorization: true,
    };
    assert_eq!(
        seen[0], preflight,
        "the preflight never carries credentials"
    );
    assert_eq!(seen[1], actual);
    let origins: Vec<&str> = seen.iter().map(|seen| seen.origin.as_str()).collect();
    assert_eq!(origins, [APP, APP, ADMIN, ADMIN, EVIL, EVIL, PROBE, PROBE]);
}

#[tokio::test]
async fn wildcard_with_credentials_fails() {
    let policy = Policy {
        mode: Mode::Wildcard,
        ..Policy::correct()
    };
    let (outcome, metrics) = run(policy, FRONT_END).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CorsWildcardWithCredentials);
    assert!(
        outcome.message.starts_with("the preflight response to `https://app.example.com` combines `Access-Control-Allow-Origin: *` with `Access-Control-Allow-Credentials: true`, which browsers reject"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"api_cors\",reason=\"cors_wildcard_with_credentials\"} 1",
    );
    assert_metric(&metrics, &allowed_line(PROBE, 1));
}

#[tokio::test]
async fn reflecting_any_origin_fails() {
    let policy = Policy {
        mode: Mode::Reflect,
        ..Policy::correct()
    };
    let (outcome, metrics) = run(policy, FRONT_END).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CorsOriginReflected);
    assert!(
        outcome.message.starts_with("rejected origin `https://evil.example.net` is allowed: the preflight response echoes it in `Access-Control-Allow-Origin` with `Access-Control-Allow-Credentials: true`"),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("the preflight response echoes the made-up origin `https://readiness-probe.invalid` with `Access-Control-Allow-Credentials: true`, so any web site can read responses with the user's credentials"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"api_cors\",reason=\"cors_origin_reflected\"} 1",
    );
    assert_metric(&metrics, &allowed_line(EVIL, 1));
    assert_metric(&metrics, &allowed_line(PROBE, 1));
}

#[tokio::test]
async fn reflection_without_credentials_fails() {
    let policy = Policy {
        mode: Mode::Reflect,
        credentials: false,
        ..Policy::correct()
    };
    let fields = "      allowed_origins: [\"https://app.example.com\"]\n";
    let (outcome, _) = run(policy, fields).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CorsOriginReflected);
    assert_eq!(
        outcome.message,
        "the preflight response echoes the made-up origin `https://readiness-probe.invalid`, so the server allows every origin; allow only the listed origins; the GET response echoes the made-up origin `https://readiness-probe.invalid`, so the server allows every origin; allow only the listed origins"
    );
}

#[tokio::test]
async fn missing_vary_passes_with_warning() {
    let policy = Policy {
        vary: false,
        ..Policy::correct()
    };
    let (outcome, metrics) = run(policy, FRONT_END).await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert!(
        outcome.message.ends_with("; warning: no `Vary: Origin` on the preflight response to `https://app.example.com`, PUT response to `https://app.example.com`, preflight response to `https://admin.example.com`, PUT response to `https://admin.example.com`, so a shared cache can serve one origin's response to another"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_cors_responses_without_vary{check=\"api_cors\"} 4.0",
    );
}

#[tokio::test]
async fn missing_vary_fails_when_required() {
    let policy = Policy {
        vary: false,
        ..Policy::correct()
    };
    let fields = format!("{FRONT_END}      require_vary: true\n");
    let (outcome, metrics) = run(policy, &fields).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CorsVaryMissing);
    assert!(
        outcome.message.starts_with("the preflight response to `https://app.example.com` names the origin without `Vary: Origin`"),
        "{}",
        outcome.message
    );
    assert!(!outcome.message.contains("warning"), "{}", outcome.message);
    assert_metric(
        &metrics,
        "readiness_cors_responses_without_vary{check=\"api_cors\"} 4.0",
    );
}

#[tokio::test]
async fn disallowed_method_fails() {
    for methods in ["GET, POST", "get, put"] {
        let policy = Policy {
            methods,
            ..Policy::correct()
        };
        let (outcome, metrics) = run(policy, FRONT_END).await;

        assert_eq!(outcome.status, Status::Fail, "{methods}");
        assert_eq!(outcome.reason, Reason::CorsMethodNotAllowed, "{methods}");
        assert!(
            outcome.message.starts_with(&format!("the preflight response to `https://app.example.com` does not allow method `PUT` (`Access-Control-Allow-Methods: {methods}`; method names are case-sensitive)")),
            "{}",
            outcome.message
        );
        assert_metric(
            &metrics,
            "readiness_check_failures_total{check=\"api_cors\",reason=\"cors_method_not_allowed\"} 1",
        );
    }
}

#[tokio::test]
async fn safelisted_method_needs_no_listing() {
    let policy = Policy {
        methods: "",
        headers: "",
        ..Policy::correct()
    };
    let fields = "      method: GET
      credentials: true
      allowed_origins: [\"https://app.example.com\"]
";
    let (outcome, _) = run(policy, fields).await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
}

#[tokio::test]
async fn missing_request_header_fails() {
    let policy = Policy {
        headers: "Content-Type",
        ..Policy::correct()
    };
    let (outcome, metrics) = run(policy, FRONT_END).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CorsHeadersNotAllowed);
    assert!(
        outcome.message.starts_with("the preflight response to `https://app.example.com` does not allow request headers `authorization` (`Access-Control-Allow-Headers: Content-Type`)"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"api_cors\",reason=\"cors_headers_not_allowed\"} 1",
    );
}

#[tokio::test]
async fn header_wildcard_never_covers_authorization() {
    let policy = Policy {
        credentials: false,
        headers: "*",
        ..Policy::correct()
    };
    let fields = "      method: PUT
      request_headers: [Authorization, Content-Type, X-Request-Id]
      allowed_origins: [\"https://app.example.com\"]
";
    let (outcome, _) = run(policy, fields).await;

    assert_eq!(outcome.reason, Reason::CorsHeadersNotAllowed);
    assert_eq!(
        outcome.message,
        "the preflight response to `https://app.example.com` does not allow request headers `authorization` (`Access-Control-Allow-Headers: *`)"
    );
}

#[tokio::test]
async fn rejected_origin_allowed_fails() {
    let policy = Policy {
        allowed: vec![APP, ADMIN, EVIL],
        ..Policy::correct()
    };
    let (outcome, metrics) = run(policy, FRONT_END).await;

    assert_eq!(outcome.reason, Reason::CorsOriginReflected);
    assert_eq!(
        outcome.message,
        "rejected origin `https://evil.example.net` is allowed: the preflight response echoes it in `Access-Control-Allow-Origin` with `Access-Control-Allow-Credentials: true`; rejected origin `https://evil.example.net` is allowed: the PUT response echoes it in `Access-Control-Allow-Origin` with `Access-Control-Allow-Credentials: true`"
    );
    assert_metric(&metrics, &allowed_line(EVIL, 1));
    assert_metric(&metrics, &allowed_line(PROBE, 0));
}

#[tokio::test]
async fn origin_missing_from_allowlist_fails() {
    let policy = Policy {
        allowed: vec![APP],
        ..Policy::correct()
    };
    let (outcome, metrics) = run(policy, FRONT_END).await;

    assert_eq!(outcome.reason, Reason::CorsOriginNotAllowed);
    assert_eq!(
        outcome.message,
        "the preflight response to `https://admin.example.com` has no `Access-Control-Allow-Origin` header; the PUT response to `https://admin.example.com` has no `Access-Control-Allow-Origin` header"
    );
    assert_metric(&metrics, &allowed_line(APP, 1));
    assert_metric(&metrics, &allowed_line(ADMIN, 0));
}

#[tokio::test]
async fn wildcard_origin_needs_allow_wildcard() {
    let policy = Policy {
        mode: Mode::Wildcard,
        credentials: false,
        ..Policy::correct()
    };
    let fields = "      allowed_origins: [\"https://app.example.com\"]\n";
    let (outcome, _) = run(policy.clone(), fields).await;
    assert_eq!(outcome.reason, Reason::CorsWildcardOrigin);
    assert!(
        outcome.message.starts_with("the preflight response to `https://app.example.com` allows every origin with `Access-Control-Allow-Origin: *`"),
        "{}",
        outcome.message
    );

    let fields = format!("{fields}      allow_wildcard: true\n");
    let (outcome, _) = run(policy, &fields).await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
}

#[tokio::test]
async fn missing_allow_credentials_fails() {
    let policy = Policy {
        credentials: false,
        ..Policy::correct()
    };
    let (outcome, _) = run(policy, FRONT_END).await;

    assert_eq!(outcome.reason, Reason::CorsCredentialsNotAllowed);
    assert!(
        outcome.message.starts_with("the preflight response to `https://app.example.com` lacks `Access-Control-Allow-Credentials: true`, so browsers withhold it from requests with credentials"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn preflight_requiring_credentials_fails() {
    let policy = Policy {
        preflight_status: 401,
        ..Policy::correct()
    };
    let (outcome, _) = run(policy, FRONT_END).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::UnexpectedStatus);
    assert!(
        outcome.message.starts_with("the preflight response to `https://app.example.com` has status 401, but browsers accept only 2xx"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn actual_request_unauthorized_is_error() {
    let policy = Policy {
        token: Some("s3cret-token"),
        ..Policy::correct()
    };
    let (outcome, metrics) = run(policy, FRONT_END).await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::Unauthorized);
    assert_eq!(
        outcome.message,
        "the PUT response to `https://app.example.com`: status 401, expected 2xx; check the credential the check sends"
    );
    assert_metric(
        &metrics,
        "readiness_check_result{check=\"api_cors\",result=\"error\"} 1",
    );
    assert!(
        !metrics.contains("readiness_cors_origin_allowed{check=\"api_cors\""),
        "an unevaluated run exports no CORS series"
    );
}

#[tokio::test]
async fn missing_secret_is_error() {
    let fields =
        format!("{FRONT_END}      headers:\n        Authorization: {{ file: {{dir}}/absent }}\n");
    let (outcome, _) = run(Policy::correct(), &fields).await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::SecretUnavailable);
    assert!(
        outcome
            .message
            .starts_with("header `authorization`: cannot read secret file"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn refused_connection_is_error() {
    let port = support::closed_port().await;
    let checks = LoadedChecks::load(&checklist(&format!("http://127.0.0.1:{port}/"), FRONT_END));

    let outcome = checks.run("api_cors").await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::ConnectionRefused);
    assert_metric(
        &checks.metrics(),
        "readiness_check_failures_total{check=\"api_cors\",reason=\"connection_refused\"} 1",
    );
}

/// Returns the problems for a bad `cors` block: `fields` follow `url:` on line 7.
fn problem(fields: &str) -> Vec<String> {
    config_problems(&checklist("https://api.example.com/v1", fields))
}

#[test]
fn origin_with_path_rejected() {
    assert_eq!(
        problem("      allowed_origins: [\"https://App.example.com/\"]\n"),
        ["line 8: check `api_cors`, field `cors.allowed_origins[0]`: origin `https://App.example.com/` is not written the way browsers send it; write `https://app.example.com` (scheme, host and port only, without path or trailing slash)"]
    );
}

#[test]
fn null_origin_rejected_in_allowed() {
    assert_eq!(
        problem("      allowed_origins: [\"null\"]\n"),
        ["line 8: check `api_cors`, field `cors.allowed_origins[0]`: origin `null` is sent by sandboxed frames and local files, so allowing it lets any page allow itself; list it under `rejected_origins` instead"]
    );
}

#[test]
fn origin_in_both_lists_rejected() {
    assert_eq!(
        problem("      allowed_origins: [\"https://app.example.com\"]\n      rejected_origins: [\"null\", \"https://app.example.com\"]\n"),
        ["line 9: check `api_cors`, field `cors.rejected_origins[1]`: origin `https://app.example.com` is also in `allowed_origins`; keep it in one list"]
    );
}

#[test]
fn duplicate_origin_rejected() {
    assert_eq!(
        problem("      allowed_origins: [\"https://app.example.com\", \"https://app.example.com\"]\n"),
        ["line 8: check `api_cors`, field `cors.allowed_origins[1]`: origin `https://app.example.com` is listed twice; remove one"]
    );
}

#[test]
fn no_origin_rejected() {
    assert_eq!(
        problem(""),
        ["line 6: check `api_cors`, field `cors.allowed_origins`: no origin given; list the front end's origins under `allowed_origins`, or origins that must not get access under `rejected_origins`"]
    );
}

#[test]
fn probe_origin_must_be_unlisted() {
    assert_eq!(
        problem("      allowed_origins: [\"https://app.example.com\"]\n      probe_origin: https://app.example.com\n"),
        ["line 9: check `api_cors`, field `cors.probe_origin`: origin `https://app.example.com` is already listed; the probe origin must be one that no list contains, such as `https://readiness-probe.invalid`"]
    );
}

#[test]
fn wildcard_with_credentials_rejected() {
    assert_eq!(
        problem("      allowed_origins: [\"https://app.example.com\"]\n      credentials: true\n      allow_wildcard: true\n"),
        ["line 10: check `api_cors`, field `cors.allow_wildcard`: browsers reject `Access-Control-Allow-Origin: *` on requests with credentials, so `allow_wildcard: true` cannot go with `credentials: true`; remove one of them"]
    );
}

#[test]
fn wildcard_with_rejected_origins_rejected() {
    assert_eq!(
        problem("      rejected_origins: [\"https://evil.example.net\"]\n      allow_wildcard: true\n"),
        ["line 9: check `api_cors`, field `cors.allow_wildcard`: `*` allows every origin, including those in `rejected_origins`; remove `allow_wildcard` or `rejected_origins`"]
    );
}

#[test]
fn preflight_off_for_put_rejected() {
    assert_eq!(
        problem("      allowed_origins: [\"https://app.example.com\"]\n      method: put\n      preflight: false\n"),
        ["line 10: check `api_cors`, field `cors.preflight`: browsers send a preflight before every `PUT` request; remove `preflight: false`"]
    );
}

#[test]
fn forbidden_request_header_rejected() {
    assert_eq!(
        problem("      allowed_origins: [\"https://app.example.com\"]\n      request_headers: [Cookie]\n"),
        ["line 9: check `api_cors`, field `cors.request_headers[0]`: browsers do not let a page set `Cookie`, so it never appears in a preflight; remove it"]
    );
}

#[test]
fn origin_header_rejected() {
    assert_eq!(
        problem("      allowed_origins: [\"https://app.example.com\"]\n      headers:\n        Origin: https://app.example.com\n"),
        ["line 10: check `api_cors`, field `cors.headers.Origin`: the check sets `Origin` itself for each origin it tests; remove it"]
    );
}

#[test]
fn literal_credential_header_rejected() {
    assert_eq!(
        problem("      allowed_origins: [\"https://app.example.com\"]\n      headers:\n        Authorization: Bearer abc\n"),
        ["line 10: check `api_cors`, field `cors.headers.Authorization`: header `Authorization` carries a credential, so it cannot be a literal; write `{ env: VARIABLE }` or `{ file: /path/to/file }`"]
    );
}

#[test]
fn trace_method_rejected() {
    assert_eq!(
        problem("      allowed_origins: [\"https://app.example.com\"]\n      method: TRACE\n"),
        ["line 9: check `api_cors`, field `cors.method`: `TRACE` is not a method a page sends cross-origin; use the method of the front end's request, such as GET, POST, PUT, PATCH or DELETE"]
    );
}

#[test]
fn non_http_url_rejected() {
    assert_eq!(
        config_problems(&checklist("ftp://api.example.com/", "      allowed_origins: [\"https://app.example.com\"]\n")),
        ["line 7: check `api_cors`, field `cors.url`: URL `ftp://api.example.com/` has scheme `ftp`; use http or https"]
    );
}

#[test]
fn misspelled_key_rejected() {
    assert_eq!(
        problem("      allowed_origin: [\"https://app.example.com\"]\n"),
        ["line 6: check `api_cors`, field `cors.allowed_origins`: no origin given; list the front end's origins under `allowed_origins`, or origins that must not get access under `rejected_origins`",
         "line 8: check `api_cors`, field `cors.allowed_origin`: unknown key `allowed_origin`; check the spelling (expected one of `url`, `method`, `request_headers`, `headers`, `allowed_origins`, `rejected_origins`, `probe_origin`, `credentials`, `allow_wildcard`, `preflight`, `require_vary`, `expect_status`, `ca_file`)"]
    );
}

/// An nginx process serving CORS locations on 127.0.0.1; it is killed when dropped.
struct Nginx {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds the nginx binary on PATH or in /usr/sbin, where Debian installs it. Without it the test
/// fails when `CI` is set and is skipped otherwise.
fn nginx_binary() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    });
    let found = on_path.or_else(|| {
        let sbin = std::path::PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is not installed; run scripts/install-testbed.sh"
        );
        eprintln!("skipped: nginx is not installed; run scripts/install-testbed.sh");
    }
    found
}

/// The three CORS setups seen in nginx configurations: an allowlist through `map` (correct), the
/// request's `Origin` copied into the response (reflection), and `*` with credentials.
const NGINX_LOCATIONS: &str = r#"
    map $http_origin $allowed_origin {
        default "";
        "https://app.example.com" $http_origin;
        "https://admin.example.com" $http_origin;
    }
    map $allowed_origin $allowed_credentials {
        "" "";
        default "true";
    }
    server {
        listen 127.0.0.1:PORT;
        location /allowlist/ {
            add_header Access-Control-Allow-Origin $allowed_origin always;
            add_header Access-Control-Allow-Credentials $allowed_credentials always;
            add_header Access-Control-Allow-Methods "GET, PUT, DELETE" always;
            add_header Access-Control-Allow-Headers "Authorization, Content-Type" always;
            add_header Vary Origin always;
            if ($request_method = OPTIONS) { return 204; }
            return 200 '{}';
        }
        location /reflect/ {
            add_header Access-Control-Allow-Origin $http_origin always;
            add_header Access-Control-Allow-Credentials true always;
            add_header Access-Control-Allow-Methods "GET, PUT, DELETE" always;
            add_header Access-Control-Allow-Headers "Authorization, Content-Type" always;
            if ($request_method = OPTIONS) { return 204; }
            return 200 '{}';
        }
        location /wildcard/ {
            add_header Access-Control-Allow-Origin * always;
            add_header Access-Control-Allow-Credentials true always;
            add_header Access-Control-Allow-Methods "GET, PUT, DELETE" always;
            add_header Access-Control-Allow-Headers "Authorization, Content-Type" always;
            if ($request_method = OPTIONS) { return 204; }
            return 200 '{}';
        }
    }
"#;

/// Starts nginx in the foreground with every path inside a temp dir, and waits until it accepts
/// connections.
async fn start_nginx() -> Option<Nginx> {
    let binary = nginx_binary()?;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let port = support::closed_port().await;

    let config = format!(
        "daemon off;\nmaster_process off;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {root}/body;\n    proxy_temp_path {root}/proxy;\n    \
         fastcgi_temp_path {root}/fastcgi;\n    uwsgi_temp_path {root}/uwsgi;\n    scgi_temp_path {root}/scgi;\n{}}}\n",
        NGINX_LOCATIONS.replace("PORT", &port.to_string())
    );
    let config_path = dir.path().join("nginx.conf");
    std::fs::write(&config_path, config).unwrap();

    let child = std::process::Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut nginx = Nginx {
        child,
        port,
        _dir: dir,
    };

    let address = format!("127.0.0.1:{port}");
    support::wait_until(std::time::Duration::from_secs(10), || {
        if let Ok(Some(status)) = nginx.child.try_wait() {
            let log = std::fs::read_to_string(nginx._dir.path().join("error.log"));
            panic!("nginx exited with {status}: {log:?}");
        }
        std::net::TcpStream::connect(&address).is_ok()
    })
    .await;
    Some(nginx)
}

async fn run_against_nginx(path: &str) -> Option<(readiness_exporter::check::Outcome, String)> {
    let nginx = start_nginx().await?;
    let url = format!("http://127.0.0.1:{}{path}", nginx.port);
    let checks = LoadedChecks::load(&checklist(&url, FRONT_END));
    let outcome = checks.run("api_cors").await;
    Some((outcome, checks.metrics()))
}

#[tokio::test]
async fn nginx_allowlist_passes() {
    let Some((outcome, metrics)) = run_against_nginx("/allowlist/patients").await else {
        return;
    };

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_metric(&metrics, &allowed_line(APP, 1));
    assert_metric(&metrics, &allowed_line(EVIL, 0));
    assert_metric(&metrics, &allowed_line(PROBE, 0));
    assert_metric(
        &metrics,
        "readiness_cors_responses_without_vary{check=\"api_cors\"} 0.0",
    );
}

#[tokio::test]
async fn nginx_reflected_origin_fails() {
    let Some((outcome, metrics)) = run_against_nginx("/reflect/patients").await else {
        return;
    };

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CorsOriginReflected);
    assert_metric(&metrics, &allowed_line(PROBE, 1));
    assert_metric(
        &metrics,
        "readiness_cors_responses_without_vary{check=\"api_cors\"} 4.0",
    );
}

#[tokio::test]
async fn nginx_wildcard_with_credentials_fails() {
    let Some((outcome, metrics)) = run_against_nginx("/wildcard/patients").await else {
        return;
    };

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CorsWildcardWithCredentials);
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"api_cors\",reason=\"cors_wildcard_with_credentials\"} 1",
    );
}
