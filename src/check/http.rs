//! The `http` check kind: one request, with conditions on the status, headers, body and latency.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::{format_duration, Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;
use crate::secret::SecretRef;

const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// The status code of the last response.
pub static STATUS_CODE: MeasureFamily = MeasureFamily {
    name: "readiness_http_status_code",
    help: "HTTP status code of the last response of an http check",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&STATUS_CODE];

/// The `http` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    url: String,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, serde_json::Value>,
    body: Option<String>,
    expect_status: Option<Vec<u16>>,
    #[serde(default)]
    expect_headers: BTreeMap<String, String>,
    #[serde(default)]
    body_matches: Vec<String>,
    #[serde(default)]
    body_not_matches: Vec<String>,
    #[serde(default)]
    json: Vec<JsonSpec>,
    max_latency: Option<String>,
    follow_redirects: Option<bool>,
    max_redirects: Option<u32>,
    ca_file: Option<PathBuf>,
    max_body_bytes: Option<u64>,
}

/// One condition on a JSON response body, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSpec {
    path: String,
    equals: Option<serde_json::Value>,
    matches: Option<String>,
    exists: Option<bool>,
}

/// A validated `http` check.
#[derive(Debug)]
pub struct HttpCheck {
    client: reqwest::Client,
    method: Method,
    url: Url,
    headers: Vec<(HeaderName, HeaderSource)>,
    body: Option<String>,
    expect_status: Cow<'static, [u16]>,
    expect_headers: Vec<(HeaderName, Regex)>,
    body_matches: Vec<Regex>,
    body_not_matches: Vec<Regex>,
    json: Vec<JsonCondition>,
    max_latency: Option<Duration>,
    max_body_bytes: u64,
    follow_redirects: bool,
}

/// The source of a request header's value: a literal or a secret reference.
#[derive(Debug)]
pub(crate) enum HeaderSource {
    Literal(HeaderValue),
    Secret(SecretRef),
}

#[derive(Debug)]
struct JsonCondition {
    path: String,
    segments: Vec<PathSegment>,
    test: JsonTest,
}

#[derive(Debug)]
enum JsonTest {
    Equals(serde_json::Value),
    Matches(Regex),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum PathSegment {
    Key(String),
    Index(usize),
}

/// HTTP clients built during one configuration load, keyed by their TLS and redirect settings.
///
/// Checks with equal settings share one client. Its pool keeps no idle connections, so every run
/// opens a new connection and performs a full, verified handshake, which is what a readiness
/// check must prove.
#[derive(Debug, Default)]
pub struct ClientCache {
    clients: HashMap<(Option<PathBuf>, Option<u32>), reqwest::Client>,
}

impl ClientCache {
    /// Returns the client for a CA file and a redirect limit (`None`: redirects are not
    /// followed), building it on first use.
    pub(crate) fn get(
        &mut self,
        ca_file: Option<PathBuf>,
        redirects: Option<u32>,
    ) -> Result<reqwest::Client, String> {
        let key = (ca_file, redirects);
        if let Some(client) = self.clients.get(&key) {
            return Ok(client.clone());
        }
        let client = build_client(key.0.as_deref(), key.1)?;
        self.clients.insert(key, client.clone());
        Ok(client)
    }
}

fn build_client(
    ca_file: Option<&std::path::Path>,
    redirects: Option<u32>,
) -> Result<reqwest::Client, String> {
    let policy = match redirects {
        None => reqwest::redirect::Policy::none(),
        Some(max) => reqwest::redirect::Policy::custom(move |attempt| {
            let downgrade = attempt.previous().last().is_some_and(|previous| {
                previous.scheme() == "https" && attempt.url().scheme() == "http"
            });
            if downgrade {
                attempt
                    .error("redirect from https to http refused; fix the target to stay on https")
            } else if attempt.previous().len() > max as usize {
                attempt.error(format!("more than {max} redirects"))
            } else if attempt.previous().contains(attempt.url()) {
                attempt.error("redirect loop")
            } else {
                attempt.follow()
            }
        }),
    };
    let mut builder = reqwest::Client::builder()
        .redirect(policy)
        .pool_max_idle_per_host(0)
        // A connection carries one request and ends within the check's timeout, so TCP keepalive
        // and TCP_USER_TIMEOUT (reqwest 0.13 sets both by default) would only cost five
        // setsockopt calls per run.
        .tcp_keepalive(None)
        .tcp_keepalive_interval(None)
        .tcp_keepalive_retries(None)
        .tcp_user_timeout(None)
        .no_proxy()
        .user_agent(concat!("readiness-exporter/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = crate::file::read_limited(path, crate::file::MAX_DOCUMENT_BYTES)
            .map_err(|err| format!("cannot read CA file `{}`: {err}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default();
        if certs.is_empty() {
            return Err(format!(
                "CA file `{}` contains no PEM certificate; it must hold one or more `BEGIN CERTIFICATE` blocks",
                path.display()
            ));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|err| format!("cannot build HTTP client: {}", error_chain(&err)))
}

/// Validates a `headers` map: literal values, or secret references for credential headers.
/// `field` is the map's dotted path, such as `http.headers`.
pub(crate) fn build_headers(
    ctx: &mut BuildContext<'_>,
    field: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Vec<(HeaderName, HeaderSource)> {
    let mut headers = Vec::new();
    for (name, value) in spec {
        let field = format!("{field}.{name}");
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            ctx.problem(field, format!("invalid header name `{name}`"));
            continue;
        };
        match value {
            serde_json::Value::String(_) if is_credential_header(name) => {
                // The message must not repeat the value: it is the credential.
                ctx.problem(
                    field,
                    format!("header `{name}` carries a credential, so it cannot be a literal; write `{{ env: VARIABLE }}` or `{{ file: /path/to/file }}`"),
                );
            }
            serde_json::Value::String(text) => match HeaderValue::from_str(text) {
                Ok(value) => headers.push((header_name, HeaderSource::Literal(value))),
                Err(_) => ctx.problem(field, format!("invalid header value `{text}`; use printable ASCII")),
            },
            serde_json::Value::Object(map) => match SecretRef::from_map(map) {
                Ok(reference) => {
                    if let Some(reference) = ctx.secret_ref(&field, reference) {
                        headers.push((header_name, HeaderSource::Secret(reference)));
                    }
                }
                Err(message) => ctx.problem(field, message),
            },
            _ => ctx.problem(
                    field,
                    "a header value is a string or a secret reference: `{ env: VARIABLE }` or `{ file: /path/to/file }`",
                ),
        }
    }
    headers
}

/// Every 2xx status, the expected statuses of a check that does not list them. Checks share this
/// list instead of holding 200 bytes each.
static SUCCESS_CODES: [u16; 100] = {
    let mut codes = [0; 100];
    let mut index = 0;
    while index < codes.len() {
        codes[index] = 200 + index as u16;
        index += 1;
    }
    codes
};

/// Validates an `expect_status` list; without one, every 2xx status is expected.
pub(crate) fn build_expect_status(
    ctx: &mut BuildContext<'_>,
    field: &str,
    spec: Option<Vec<u16>>,
) -> Cow<'static, [u16]> {
    let expect_status: Cow<'static, [u16]> = match spec {
        Some(codes) => Cow::Owned(codes),
        None => Cow::Borrowed(&SUCCESS_CODES),
    };
    for code in expect_status.iter() {
        if !(100..=599).contains(code) {
            ctx.problem(
                field,
                format!("status code `{code}` is not between 100 and 599"),
            );
        }
    }
    if expect_status.is_empty() {
        ctx.problem(
            field,
            "list is empty; name at least one status code, such as `[200]`",
        );
    }
    expect_status
}

/// Resolves the header values, reading secret references now so that a rotated secret is used
/// on the next run. A reference that cannot be resolved is an error outcome naming the header.
pub(crate) fn resolve_headers(
    headers: &[(HeaderName, HeaderSource)],
) -> Result<Vec<(HeaderName, HeaderValue)>, Outcome> {
    let mut resolved = Vec::with_capacity(headers.len());
    for (name, source) in headers {
        let value = match source {
            HeaderSource::Literal(value) => value.clone(),
            HeaderSource::Secret(reference) => match resolve_header(reference) {
                Ok(value) => value,
                Err(message) => {
                    return Err(Outcome::error(
                        Reason::SecretUnavailable,
                        format!("header `{name}`: {message}"),
                    ))
                }
            },
        };
        resolved.push((name.clone(), value));
    }
    Ok(resolved)
}

/// Returns the values of the headers that came from secret references, which
/// [`resolve_headers`] marks as sensitive.
pub(crate) fn secret_values(headers: &[(HeaderName, HeaderValue)]) -> Vec<&str> {
    headers
        .iter()
        .filter(|(_, value)| value.is_sensitive())
        .filter_map(|(_, value)| value.to_str().ok())
        .collect()
}

/// Header names whose values are credentials and must come from a secret reference.
fn is_credential_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "auth", "token", "secret", "key", "cookie", "password", "session",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

impl HttpCheck {
    /// Validates the `http` block, recording every problem in `ctx`.
    pub fn build(spec: HttpSpec, ctx: &mut BuildContext<'_>) -> Option<HttpCheck> {
        let url = ctx.http_url("http.url", &spec.url);

        let method_text = spec.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        let method = Method::from_bytes(method_text.as_bytes()).ok();
        if method.is_none() {
            ctx.problem("http.method", format!("invalid HTTP method `{method_text}`; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"));
        }

        let headers = build_headers(ctx, "http.headers", &spec.headers);
        let expect_status = build_expect_status(ctx, "http.expect_status", spec.expect_status);

        let mut expect_headers = Vec::new();
        for (name, pattern) in &spec.expect_headers {
            let field = format!("http.expect_headers.{name}");
            let header_name = HeaderName::from_bytes(name.as_bytes());
            if header_name.is_err() {
                ctx.problem(field.clone(), format!("invalid header name `{name}`"));
            }
            if let (Ok(header_name), Some(regex)) = (header_name, ctx.regex(&field, pattern)) {
                expect_headers.push((header_name, regex));
            }
        }
        let body_matches = compile_all(ctx, "http.body_matches", &spec.body_matches);
        let body_not_matches = compile_all(ctx, "http.body_not_matches", &spec.body_not_matches);
        let json = build_json_conditions(ctx, spec.json);

        let max_latency = spec
            .max_latency
            .as_ref()
            .and_then(|value| ctx.duration("http.max_latency", value));
        let max_body_bytes = spec.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            ctx.problem(
                "http.max_body_bytes",
                "`0` would reject every body; use a positive size in bytes",
            );
        }
        let follow_redirects = spec.follow_redirects.unwrap_or(false);
        if spec.max_redirects.is_some() && !follow_redirects {
            ctx.problem("http.max_redirects", "has no effect while `follow_redirects` is false; set `follow_redirects: true` or remove it");
        }
        let redirects =
            follow_redirects.then(|| spec.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS));
        let ca_file = spec.ca_file.as_ref().map(|path| ctx.resolve_path(path));
        let client = match ctx.http_clients.get(ca_file, redirects) {
            Ok(client) => Some(client),
            Err(message) => {
                ctx.problem("http.ca_file", message);
                None
            }
        };

        Some(HttpCheck {
            client: client?,
            method: method?,
            url: url?,
            headers,
            body: spec.body,
            expect_status,
            expect_headers,
            body_matches: body_matches?,
            body_not_matches: body_not_matches?,
            json: json?,
            max_latency,
            max_body_bytes,
            follow_redirects,
        })
    }

    /// Sends the request once and evaluates the response.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let headers = match resolve_headers(&self.headers) {
            Ok(headers) => headers,
            Err(outcome) => return outcome,
        };
        let mut request = self.client.request(self.method.clone(), self.url.clone());
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }

        let started = Instant::now();
        let outcome = match request.send().await {
            Ok(response) => self.evaluate(response, started).await,
            Err(err) => {
                let (reason, message) = classify(&err, &self.url);
                Outcome::error(reason, message)
            }
        };
        // The target may send a credential back, and the message may quote what it sent.
        outcome.redacted(secret_values(&headers))
    }

    async fn evaluate(&self, mut response: reqwest::Response, started: Instant) -> Outcome {
        let status = response.status().as_u16();
        let measures = vec![Measure::new(&STATUS_CODE, f64::from(status))];
        let finish = |outcome: Outcome| {
            outcome
                .with_value(f64::from(status))
                .with_measures(measures.clone())
        };

        if let Some(outcome) =
            unexpected_status(&response, &self.expect_status, !self.follow_redirects)
        {
            return finish(outcome);
        }

        for (name, regex) in &self.expect_headers {
            match response.headers().get(name).map(|value| value.to_str()) {
                None => {
                    return finish(Outcome::fail(
                        Reason::HeaderMismatch,
                        format!("header `{name}` is missing"),
                    ))
                }
                Some(Err(_)) => {
                    return finish(Outcome::fail(
                        Reason::HeaderMismatch,
                        format!("header `{name}` is not valid text"),
                    ))
                }
                Some(Ok(value)) if !regex.is_match(value) => {
                    return finish(Outcome::fail(
                        Reason::HeaderMismatch,
                        format!(
                            "header `{name}` is `{}`, which does not match `{regex}`",
                            truncate(value, 80)
                        ),
                    ))
                }
                Some(Ok(_)) => {}
            }
        }

        if self.needs_body() {
            let body = match read_body(&mut response, self.max_body_bytes, &self.url).await {
                Ok(body) => body,
                Err(outcome) => return finish(outcome),
            };
            if let Some(outcome) = self.check_body(&body) {
                return finish(outcome);
            }
        }

        let elapsed = started.elapsed();
        if let Some(max) = self.max_latency {
            if elapsed > max {
                return finish(Outcome::fail(
                    Reason::TooSlow,
                    format!(
                        "response took {}, more than the maximum of {}",
                        format_duration(elapsed),
                        format_duration(max)
                    ),
                ));
            }
        }
        finish(Outcome::pass(format!(
            "status {status} in {}",
            format_duration(elapsed)
        )))
    }

    fn needs_body(&self) -> bool {
        !self.body_matches.is_empty() || !self.body_not_matches.is_empty() || !self.json.is_empty()
    }

    fn check_body(&self, body: &[u8]) -> Option<Outcome> {
        let text = String::from_utf8_lossy(body);
        for regex in &self.body_matches {
            if !regex.is_match(&text) {
                return Some(Outcome::fail(
                    Reason::BodyMismatch,
                    format!("body does not match `{regex}`"),
                ));
            }
        }
        for regex in &self.body_not_matches {
            if regex.is_match(&text) {
                return Some(Outcome::fail(
                    Reason::BodyMismatch,
                    format!("body matches `{regex}`, which it must not"),
                ));
            }
        }
        if self.json.is_empty() {
            return None;
        }
        let document: serde_json::Value = match serde_json::from_slice(body) {
            Ok(document) => document,
            Err(err) => {
                return Some(Outcome::error(
                    Reason::InvalidResponse,
                    format!(
                        "body is not valid JSON ({err}); the JSON conditions cannot be evaluated"
                    ),
                ))
            }
        };
        self.json
            .iter()
            .find_map(|condition| condition.evaluate(&document))
    }
}

/// Returns the outcome for a status that is not one of `expected`: an error for 401, 403 and
/// 429, because the check could not evaluate the target, and a failure for any other status.
/// `suggest_follow_redirects` adds the `follow_redirects` hint to the message of a 3xx status.
pub(crate) fn unexpected_status(
    response: &reqwest::Response,
    expected: &[u16],
    suggest_follow_redirects: bool,
) -> Option<Outcome> {
    let status = response.status().as_u16();
    if expected.contains(&status) {
        return None;
    }
    let (reason, detail) = match (credential_status(status), status) {
        (Some((reason, detail)), _) => (Some(reason), detail),
        (None, 300..=399) if suggest_follow_redirects => {
            (None, "; set `follow_redirects: true` to follow it")
        }
        _ => (None, ""),
    };
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(|value| format!(" to `{}`", without_query(value)))
        .unwrap_or_default();
    let message = format!(
        "status {status}{location}, expected {}{detail}",
        describe_codes(expected)
    );
    Some(match reason {
        Some(reason) => Outcome::error(reason, message),
        None => Outcome::fail(Reason::UnexpectedStatus, message),
    })
}

/// Returns the reason and the message suffix for a status that means the exporter may not
/// evaluate the target (401, 403, 429), so the check is an error rather than a failure.
pub(crate) fn credential_status(status: u16) -> Option<(Reason, &'static str)> {
    match status {
        401 => Some((
            Reason::Unauthorized,
            "; check the credential the check sends",
        )),
        403 => Some((Reason::Forbidden, "; the credential lacks permission")),
        429 => Some((
            Reason::RateLimited,
            "; the target is rate limiting the exporter",
        )),
        _ => None,
    }
}

fn compile_all(ctx: &mut BuildContext<'_>, field: &str, patterns: &[String]) -> Option<Vec<Regex>> {
    let mut regexes = Vec::new();
    let mut ok = true;
    for (i, pattern) in patterns.iter().enumerate() {
        match ctx.regex(&format!("{field}[{i}]"), pattern) {
            Some(regex) => regexes.push(regex),
            None => ok = false,
        }
    }
    ok.then_some(regexes)
}

fn build_json_conditions(
    ctx: &mut BuildContext<'_>,
    specs: Vec<JsonSpec>,
) -> Option<Vec<JsonCondition>> {
    let mut conditions = Vec::new();
    let mut ok = true;
    for (i, spec) in specs.into_iter().enumerate() {
        let field = format!("http.json[{i}]");
        let segments = match parse_path(&spec.path) {
            Ok(segments) => Some(segments),
            Err(message) => {
                ctx.problem(format!("{field}.path"), message);
                None
            }
        };
        let set = [
            spec.equals.is_some(),
            spec.matches.is_some(),
            spec.exists.is_some(),
        ];
        let test = match (spec.equals, spec.matches, spec.exists) {
            _ if set.iter().filter(|&&s| s).count() != 1 => {
                ctx.problem(
                    field.clone(),
                    format!(
                        "condition on `{}` needs exactly one of `equals`, `matches` or `exists`",
                        spec.path
                    ),
                );
                None
            }
            (Some(value), _, _) => Some(JsonTest::Equals(value)),
            (_, Some(pattern), _) => ctx
                .regex(&format!("{field}.matches"), &pattern)
                .map(JsonTest::Matches),
            (_, _, Some(exists)) => Some(JsonTest::Exists(exists)),
            _ => None,
        };
        match (segments, test) {
            (Some(segments), Some(test)) => conditions.push(JsonCondition {
                path: spec.path,
                segments,
                test,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(conditions)
}

/// Parses a dotted path with optional indexes: `status`, `entries.db.status`, `items[0].name`.
/// A leading `$.` is accepted for readers used to JSONPath.
fn parse_path(path: &str) -> Result<Vec<PathSegment>, String> {
    let trimmed = path.strip_prefix("$.").unwrap_or(path);
    let invalid = || {
        format!("invalid JSON path `{path}`; write keys separated by dots with optional indexes, such as `entries.db.status` or `items[0].name`")
    };
    if trimmed.is_empty() {
        return Err(invalid());
    }
    let mut segments = Vec::new();
    for part in trimmed.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if key.is_empty() && rest.is_empty() {
            return Err(invalid());
        }
        if !key.is_empty() {
            segments.push(PathSegment::Key(key.to_string()));
        }
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(invalid)?;
            let index = rest[1..close].parse::<usize>().map_err(|_| invalid())?;
            segments.push(PathSegment::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(invalid());
            }
        }
    }
    Ok(segments)
}

impl JsonCondition {
    /// Returns a failing outcome when the condition does not hold.
    fn evaluate(&self, document: &serde_json::Value) -> Option<Outcome> {
        let mut current = Some(document);
        for segment in &self.segments {
            current = current.and_then(|value| match segment {
                PathSegment::Key(key) => value.get(key),
                PathSegment::Index(index) => value.get(index),
            });
        }
        let path = &self.path;
        let failure = |message: String| Some(Outcome::fail(Reason::BodyMismatch, message));
        match (&self.test, current) {
            (JsonTest::Exists(true), None) => failure(format!("JSON value `{path}` is missing")),
            (JsonTest::Exists(false), Some(_)) => {
                failure(format!("JSON value `{path}` exists but must not"))
            }
            (JsonTest::Exists(_), _) => None,
            (_, None) => failure(format!("JSON value `{path}` is missing")),
            (JsonTest::Equals(expected), Some(actual)) if actual != expected => failure(format!(
                "JSON value `{path}` is {}, expected {}",
                truncate(&actual.to_string(), 80),
                truncate(&expected.to_string(), 80)
            )),
            (JsonTest::Matches(regex), Some(actual)) => {
                let text = match actual {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (!regex.is_match(&text)).then(|| {
                    Outcome::fail(
                        Reason::BodyMismatch,
                        format!(
                            "JSON value `{path}` is `{}`, which does not match `{regex}`",
                            truncate(&text, 80)
                        ),
                    )
                })
            }
            _ => None,
        }
    }
}

fn resolve_header(reference: &SecretRef) -> Result<HeaderValue, String> {
    let secret = reference.resolve().map_err(|err| err.to_string())?;
    let mut value = HeaderValue::from_str(secret.expose())
        .map_err(|_| format!("the value of {reference} is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Reads the body up to `limit` bytes; a larger body is an error, not a truncated match.
pub(crate) async fn read_body(
    response: &mut reqwest::Response,
    limit: u64,
    url: &Url,
) -> Result<Vec<u8>, Outcome> {
    let too_large = |size: String| {
        Outcome::error(
            Reason::BodyTooLarge,
            format!("response body is {size}, more than `max_body_bytes` ({limit} bytes); raise the limit or check a smaller endpoint"),
        )
    };
    if let Some(length) = response.content_length() {
        if length > limit {
            return Err(too_large(format!("{length} bytes")));
        }
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(too_large("larger".to_string()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) => {
                let (reason, message) = classify(&err, url);
                let reason = if reason == Reason::ConnectionFailed {
                    Reason::InvalidResponse
                } else {
                    reason
                };
                return Err(Outcome::error(
                    reason,
                    format!("reading the body failed: {message}"),
                ));
            }
        }
    }
}

/// Maps a reqwest error to a reason by walking its cause chain, and writes a message that leads
/// with what failed and ends with the innermost cause.
pub(crate) fn classify(err: &reqwest::Error, url: &Url) -> (Reason, String) {
    let target = match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => url.scheme().to_string(),
    };
    let cause = innermost_cause(err);
    let reason = reason_of(err);
    let message = match reason {
        Reason::Timeout => format!("request to {target} timed out: {cause}"),
        Reason::TooManyRedirects => format!("redirects from {target} were not followed: {cause}"),
        Reason::ConnectionRefused => {
            format!("connection to {target} refused; check that the service is running and listening on that port")
        }
        // A server that speaks plain HTTP responds to the ClientHello with bytes that are no
        // TLS record, which rustls reports as an invalid content type.
        Reason::TlsError if cause.contains("InvalidContentType") => format!(
            "TLS handshake with {target} failed: {cause}; the server does not seem to speak TLS on that port, so if it serves plain HTTP, write the URL with `http://`"
        ),
        Reason::TlsError => format!("TLS handshake with {target} failed: {cause}"),
        Reason::InvalidResponse => format!("invalid HTTP response from {target}: {cause}"),
        _ => format!("request to {target} failed: {cause}"),
    };
    (reason, message)
}

fn reason_of(err: &reqwest::Error) -> Reason {
    if err.is_timeout() {
        return Reason::Timeout;
    }
    if err.is_redirect() {
        return Reason::TooManyRedirects;
    }
    let mut found = Reason::ConnectionFailed;
    visit_causes(err, &mut |cause| {
        if cause.downcast_ref::<rustls::Error>().is_some() {
            found = Reason::TlsError;
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                found = Reason::ConnectionRefused;
                return true;
            }
        }
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>() {
            if hyper_err.is_parse() || hyper_err.is_incomplete_message() {
                found = Reason::InvalidResponse;
                return true;
            }
        }
        false
    });
    if found != Reason::ConnectionFailed {
        return found;
    }
    if err.is_body() || err.is_decode() {
        return Reason::InvalidResponse;
    }
    Reason::ConnectionFailed
}

/// Calls `visit` on every error in the cause chain until it returns true.
///
/// `io::Error::source` skips the error it wraps, so wrapped errors are reached through
/// `get_ref` as well; rustls errors arrive that way, inside one or more `io::Error`s.
fn visit_causes(
    err: &(dyn std::error::Error + 'static),
    visit: &mut dyn FnMut(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    if visit(err) {
        return true;
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if let Some(inner) = io.get_ref() {
            if visit_causes(inner, visit) {
                return true;
            }
        }
    }
    match err.source() {
        Some(source) => visit_causes(source, visit),
        None => false,
    }
}

/// The text of the innermost cause, which names the actual problem; the outer layers only say
/// which library passed it on.
fn innermost_cause(err: &reqwest::Error) -> String {
    let mut text = reqwest_text(err);
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = cause.to_string();
        source = cause.source();
    }
    text
}

/// Joins an error and its causes, dropping causes whose text the previous one already contains.
/// URLs are removed, because a query string can carry a token.
pub(crate) fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let top = reqwest_text(err);
    parts.push(top);
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn reqwest_text(err: &reqwest::Error) -> String {
    // `without_url` needs ownership, so the URL is cut from the text instead.
    let text = err.to_string();
    match text.find(" for url (") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn without_query(location: &str) -> &str {
    location.split(['?', '#']).next().unwrap_or(location)
}

pub(crate) fn describe_codes(codes: &[u16]) -> String {
    if codes.len() == 100 && codes.first() == Some(&200) && codes.last() == Some(&299) {
        return "2xx".to_string();
    }
    let listed: Vec<String> = codes.iter().take(8).map(u16::to_string).collect();
    let more = if codes.len() > 8 { ", ..." } else { "" };
    format!("{}{more}", listed.join(", "))
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    mod properties {
        use proptest::prelude::*;

        use super::super::{parse_path, JsonCondition, JsonTest};

        /// Arbitrary JSON documents, a few levels deep.
        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                "\\PC{0,20}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(4, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                    prop::collection::btree_map("[a-z]{0,4}", inner, 0..8)
                        .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn json_path_parser_survives_any_text(path in "[a-z0-9$.\\[\\]]{0,40}|\\PC{0,40}") {
                let _ = parse_path(&path);
            }

            #[test]
            fn json_conditions_survive_any_document(
                path in "[a-z]{1,4}(\\[[0-9]{1,3}\\])?(\\.[a-z]{1,4}){0,3}",
                expected in json_value(),
                document in json_value(),
            ) {
                let segments = parse_path(&path).unwrap();
                for test in [
                    JsonTest::Equals(expected.clone()),
                    JsonTest::Matches(regex::Regex::new("^[0-9]+$").unwrap()),
                    JsonTest::Exists(true),
                    JsonTest::Exists(false),
                ] {
                    let condition = JsonCondition {
                        path: path.clone(),
                        segments: segments.clone(),
                        test,
                    };
                    if let Some(outcome) = condition.evaluate(&document) {
                        prop_assert!(outcome.message.len() < 1024, "{}", outcome.message);
                    }
                }
            }
        }
    }

    #[test]
    fn path_parses_keys_and_indexes() {
        assert_eq!(
            parse_path("$.items[2].name").unwrap(),
            vec![
                PathSegment::Key("items".into()),
                PathSegment::Index(2),
                PathSegment::Key("name".into())
            ]
        );
    }

    #[test]
    fn path_rejects_empty_key() {
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a[x]").is_err());
        assert!(parse_path("").is_err());
    }

    #[test]
    fn credential_headers_detected() {
        assert!(is_credential_header("Authorization"));
        assert!(is_credential_header("X-Api-Key"));
        assert!(!is_credential_header("Accept"));
    }

    #[test]
    fn location_loses_query() {
        assert_eq!(without_query("https://a/b?token=x"), "https://a/b");
    }
}
