//! The `cors` check kind: preflight and actual requests from configured origins, judged the way a
//! browser applies the CORS protocol of the Fetch standard.
//!
//! Every origin that must be allowed gets a preflight (when enabled) and the actual request, and
//! both responses must allow exactly that origin, the method and the request headers. Every origin
//! that must be rejected, and one made-up origin, get the same requests, and their responses must
//! not echo the origin back. A response that names one origin but lacks `Vary: Origin` is a
//! warning in the message and a metric, or a failure with `require_vary: true`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;
use serde::Deserialize;
use url::Url;

use super::http::{
    build_expect_status, build_headers, classify, resolve_headers, secret_values, truncate,
    unexpected_status, HeaderSource,
};
use super::{Measure, MeasureFamily, MeasureType, Outcome, Reason, Status};
use crate::config::BuildContext;

/// The origin sent to find out whether the server reflects any origin. The `.invalid` top-level
/// domain is reserved (RFC 2606), so no real site can have it.
pub const DEFAULT_PROBE_ORIGIN: &str = "https://readiness-probe.invalid";

/// How many findings a failure message lists before it summarises the rest.
const MAX_FINDINGS_IN_MESSAGE: usize = 4;

/// Whether the server allowed an origin on the last run.
pub static ORIGIN_ALLOWED: MeasureFamily = MeasureFamily {
    name: "readiness_cors_origin_allowed",
    help: "1 when every response to the origin named it or * in Access-Control-Allow-Origin, 0 otherwise",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["origin"],
};

/// Responses that name one origin without `Vary: Origin`.
pub static RESPONSES_WITHOUT_VARY: MeasureFamily = MeasureFamily {
    name: "readiness_cors_responses_without_vary",
    help: "Responses of the last cors run that named a specific origin in Access-Control-Allow-Origin without Vary: Origin",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&ORIGIN_ALLOWED, &RESPONSES_WITHOUT_VARY];

/// The `cors` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    url: String,
    method: Option<String>,
    #[serde(default)]
    request_headers: Vec<String>,
    #[serde(default)]
    headers: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    rejected_origins: Vec<String>,
    probe_origin: Option<String>,
    credentials: Option<bool>,
    allow_wildcard: Option<bool>,
    preflight: Option<bool>,
    require_vary: Option<bool>,
    expect_status: Option<Vec<u16>>,
    ca_file: Option<PathBuf>,
}

/// A validated `cors` check.
#[derive(Debug)]
pub struct CorsCheck {
    client: reqwest::Client,
    url: Url,
    method: Method,
    /// Lowercase and sorted, as browsers send them in `Access-Control-Request-Headers`.
    request_headers: Vec<String>,
    headers: Vec<(HeaderName, HeaderSource)>,
    allowed_origins: Vec<String>,
    rejected_origins: Vec<String>,
    probe_origin: String,
    credentials: bool,
    allow_wildcard: bool,
    preflight: bool,
    require_vary: bool,
    expect_status: Cow<'static, [u16]>,
}

/// What the check expects of the responses to one origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expectation {
    /// A listed origin that must be allowed.
    Allowed,
    /// A listed origin that must be rejected.
    Rejected,
    /// The made-up probe origin, which no correct allowlist contains.
    Arbitrary,
}

/// The request a response belongs to: the preflight or the actual request.
#[derive(Clone, Copy, Debug)]
enum Stage<'a> {
    Preflight,
    Actual(&'a Method),
}

impl fmt::Display for Stage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Preflight => f.write_str("preflight response"),
            Stage::Actual(method) => write!(f, "{method} response"),
        }
    }
}

/// The CORS headers of one response.
#[derive(Debug)]
struct CorsHeaders {
    /// `Access-Control-Allow-Origin`; several headers are joined, which no origin matches.
    allow_origin: Option<String>,
    /// `Access-Control-Allow-Credentials` is exactly `true`, as the Fetch standard requires.
    allow_credentials: bool,
    allow_methods: Vec<String>,
    allow_headers: Vec<String>,
    /// `Vary` contains `Origin` or `*`.
    varies_on_origin: bool,
}

impl CorsHeaders {
    fn read(headers: &HeaderMap) -> Self {
        let values: Vec<String> = headers
            .get_all(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_string())
            .collect();
        let allow_origin = (!values.is_empty()).then(|| values.join(", "));
        let allow_credentials = headers
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_some_and(|value| value.as_bytes() == b"true");
        let vary = list_values(headers, &header::VARY);
        CorsHeaders {
            allow_origin,
            allow_credentials,
            allow_methods: list_values(headers, &header::ACCESS_CONTROL_ALLOW_METHODS),
            allow_headers: list_values(headers, &header::ACCESS_CONTROL_ALLOW_HEADERS),
            varies_on_origin: vary
                .iter()
                .any(|value| value == "*" || value.eq_ignore_ascii_case("origin")),
        }
    }

    /// Returns whether a browser reads `Access-Control-Allow-Origin` as allowing `origin`.
    fn names(&self, origin: &str) -> bool {
        matches!(self.allow_origin.as_deref(), Some(value) if value == origin || value == "*")
    }
}

/// Splits every header called `name` at commas and returns the trimmed, non-empty items.
fn list_values(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|item| item.trim().to_string())
                .filter(|item| !item.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Findings of one run, collected across origins.
#[derive(Debug, Default)]
struct Report {
    findings: Vec<(Reason, String)>,
    /// Responses that name one origin without `Vary: Origin`, as `<stage> to <origin>`.
    without_vary: Vec<String>,
    /// Each tested origin and whether every response to it named it.
    allowed: Vec<(String, bool)>,
}

impl Report {
    fn fail(&mut self, reason: Reason, message: String) {
        self.findings.push((reason, message));
    }
}

/// Sorts findings so that the most serious one comes first and gives the outcome its reason.
fn severity_rank(reason: Reason) -> u8 {
    match reason {
        Reason::CorsWildcardWithCredentials => 0,
        Reason::CorsOriginReflected => 1,
        Reason::CorsWildcardOrigin => 2,
        Reason::CorsOriginNotAllowed => 3,
        Reason::CorsCredentialsNotAllowed => 4,
        Reason::CorsMethodNotAllowed => 5,
        Reason::CorsHeadersNotAllowed => 6,
        Reason::CorsVaryMissing => 7,
        _ => 8,
    }
}

/// Request headers that a page cannot set (the Fetch standard's forbidden request headers), so
/// they never appear in a preflight.
const FORBIDDEN_REQUEST_HEADERS: &[&str] = &[
    "accept-charset",
    "accept-encoding",
    "access-control-request-headers",
    "access-control-request-method",
    "connection",
    "content-length",
    "cookie",
    "cookie2",
    "date",
    "dnt",
    "expect",
    "host",
    "keep-alive",
    "origin",
    "referer",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
];

fn is_forbidden_request_header(name: &str) -> bool {
    FORBIDDEN_REQUEST_HEADERS.contains(&name)
        || name.starts_with("proxy-")
        || name.starts_with("sec-")
}

/// Methods that browsers send without a preflight when no other condition requires one.
fn is_safelisted_method(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD || *method == Method::POST
}

/// Checks that `value` is an origin as browsers serialise it: `scheme://host[:port]`, lowercase,
/// without a default port, path or trailing slash. `null` is accepted when `allow_null` is set.
fn parse_origin(value: &str, allow_null: bool) -> Result<String, String> {
    if value == "null" {
        return if allow_null {
            Ok(value.to_string())
        } else {
            Err("origin `null` is sent by sandboxed frames and local files, so allowing it lets any page allow itself; list it under `rejected_origins` instead".to_string())
        };
    }
    let url = Url::parse(value).map_err(|err| {
        format!("invalid origin `{value}`: {err}; write a scheme and host such as `https://app.example.com`")
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "origin `{value}` has scheme `{}`; use http or https",
            url.scheme()
        ));
    }
    let serialized = url.origin().ascii_serialization();
    if serialized != value {
        return Err(format!(
            "origin `{value}` is not written the way browsers send it; write `{serialized}` (scheme, host and port only, without path or trailing slash)"
        ));
    }
    Ok(serialized)
}

impl CorsCheck {
    /// Validates the `cors` block, recording every problem in `ctx`.
    pub fn build(spec: CorsSpec, ctx: &mut BuildContext<'_>) -> Option<CorsCheck> {
        let url = ctx.http_url("cors.url", &spec.url);
        let method = build_method(ctx, spec.method.as_deref());
        let request_headers = build_request_headers(ctx, &spec.request_headers);

        for name in spec.headers.keys() {
            let lower = name.to_ascii_lowercase();
            if lower == "origin" || lower.starts_with("access-control-") {
                ctx.problem(
                    format!("cors.headers.{name}"),
                    format!("the check sets `{name}` itself for each origin it tests; remove it"),
                );
            }
        }
        let headers = build_headers(ctx, "cors.headers", &spec.headers);
        let expect_status =
            build_expect_status(ctx, "cors.expect_status", spec.expect_status.clone());

        let credentials = spec.credentials.unwrap_or(false);
        let allow_wildcard = spec.allow_wildcard.unwrap_or(false);
        let preflight = spec.preflight.unwrap_or(true);
        if allow_wildcard && credentials {
            ctx.problem(
                "cors.allow_wildcard",
                "browsers reject `Access-Control-Allow-Origin: *` on requests with credentials, so `allow_wildcard: true` cannot go with `credentials: true`; remove one of them",
            );
        }
        if allow_wildcard && !spec.rejected_origins.is_empty() {
            ctx.problem(
                "cors.allow_wildcard",
                "`*` allows every origin, including those in `rejected_origins`; remove `allow_wildcard` or `rejected_origins`",
            );
        }
        if !preflight {
            if let Some(method) = method
                .as_ref()
                .filter(|method| !is_safelisted_method(method))
            {
                ctx.problem(
                    "cors.preflight",
                    format!("browsers send a preflight before every `{method}` request; remove `preflight: false`"),
                );
            }
            if !request_headers.is_empty() {
                ctx.problem(
                    "cors.preflight",
                    "browsers send a preflight before requests with `request_headers`; remove `preflight: false`",
                );
            }
        }

        let origins = build_origins(ctx, &spec);
        let ca_file = spec.ca_file.as_ref().map(|path| ctx.resolve_path(path));
        let client = match ctx.http_clients.get(ca_file, None) {
            Ok(client) => Some(client),
            Err(message) => {
                ctx.problem("cors.ca_file", message);
                None
            }
        };
        let (allowed_origins, rejected_origins, probe_origin) = origins?;

        Some(CorsCheck {
            client: client?,
            url: url?,
            method: method?,
            request_headers,
            headers,
            allowed_origins,
            rejected_origins,
            probe_origin,
            credentials,
            allow_wildcard,
            preflight,
            require_vary: spec.require_vary.unwrap_or(false),
            expect_status,
        })
    }

    /// Sends the requests for every origin once and judges the responses.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let headers = match resolve_headers(&self.headers) {
            Ok(headers) => headers,
            Err(outcome) => return outcome,
        };
        let mut report = Report::default();
        let origins = self
            .allowed_origins
            .iter()
            .map(|origin| (origin, Expectation::Allowed))
            .chain(
                self.rejected_origins
                    .iter()
                    .map(|origin| (origin, Expectation::Rejected)),
            )
            .chain(std::iter::once((
                &self.probe_origin,
                Expectation::Arbitrary,
            )));
        let mut outcome = None;
        for (origin, expectation) in origins {
            if let Err(error) = self
                .check_origin(origin, expectation, &headers, &mut report)
                .await
            {
                outcome = Some(error);
                break;
            }
        }
        let outcome = outcome.unwrap_or_else(|| self.conclude(report));
        // The target may send a credential back, in `Access-Control-Allow-Origin` for example,
        // and the message quotes those headers.
        outcome.redacted(secret_values(&headers))
    }

    /// Sends the preflight (when enabled) and the actual request from `origin` and records what
    /// their responses allow. A response that prevents evaluation becomes the error outcome.
    async fn check_origin(
        &self,
        origin: &str,
        expectation: Expectation,
        headers: &[(HeaderName, HeaderValue)],
        report: &mut Report,
    ) -> Result<(), Outcome> {
        let mut named = true;

        if self.preflight {
            let response = self.send(self.preflight_request(origin)).await?;
            let cors = CorsHeaders::read(response.headers());
            named &= cors.names(origin);
            let status = response.status().as_u16();
            if expectation == Expectation::Allowed && !(200..300).contains(&status) {
                report.fail(
                    Reason::UnexpectedStatus,
                    format!("the preflight response to `{origin}` has status {status}, but browsers accept only 2xx; answer OPTIONS requests without requiring credentials"),
                );
            }
            self.judge_origin(origin, expectation, Stage::Preflight, &cors, report);
            if expectation == Expectation::Allowed && cors.names(origin) {
                self.judge_grants(origin, &cors, report);
            }
        }

        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .header(header::ORIGIN, origin);
        for (name, value) in headers {
            request = request.header(name, value.clone());
        }
        let response = self.send(request).await?;
        if expectation == Expectation::Allowed {
            if let Some(outcome) = unexpected_status(&response, &self.expect_status, false) {
                let message = format!(
                    "the {} response to `{origin}`: {}",
                    self.method, outcome.message
                );
                if outcome.status == Status::Error {
                    return Err(Outcome::error(outcome.reason, message));
                }
                report.fail(outcome.reason, message);
            }
        }
        let cors = CorsHeaders::read(response.headers());
        named &= cors.names(origin);
        self.judge_origin(
            origin,
            expectation,
            Stage::Actual(&self.method),
            &cors,
            report,
        );

        report.allowed.push((origin.to_string(), named));
        Ok(())
    }

    fn preflight_request(&self, origin: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .request(Method::OPTIONS, self.url.clone())
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, self.method.as_str());
        if !self.request_headers.is_empty() {
            request = request.header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                self.request_headers.join(","),
            );
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Outcome> {
        request.send().await.map_err(|err| {
            let (reason, message) = classify(&err, &self.url);
            Outcome::error(reason, message)
        })
    }

    /// Judges `Access-Control-Allow-Origin` and `Access-Control-Allow-Credentials` of one response.
    fn judge_origin(
        &self,
        origin: &str,
        expectation: Expectation,
        stage: Stage<'_>,
        cors: &CorsHeaders,
        report: &mut Report,
    ) {
        let allow_origin = cors.allow_origin.as_deref();
        if allow_origin == Some("*") && cors.allow_credentials {
            report.fail(
                Reason::CorsWildcardWithCredentials,
                format!("the {stage} to `{origin}` combines `Access-Control-Allow-Origin: *` with `Access-Control-Allow-Credentials: true`, which browsers reject; name the allowed origins instead of `*`"),
            );
            return;
        }
        let echoed = allow_origin == Some(origin);
        let with_credentials = if cors.allow_credentials {
            " with `Access-Control-Allow-Credentials: true`"
        } else {
            ""
        };

        match expectation {
            Expectation::Allowed => match allow_origin {
                None => report.fail(
                    Reason::CorsOriginNotAllowed,
                    format!("the {stage} to `{origin}` has no `Access-Control-Allow-Origin` header"),
                ),
                Some("*") if self.allow_wildcard => {}
                Some("*") => report.fail(
                    Reason::CorsWildcardOrigin,
                    format!("the {stage} to `{origin}` allows every origin with `Access-Control-Allow-Origin: *`; allow exactly the listed origins, or set `allow_wildcard: true` if that is intended"),
                ),
                Some(_) if echoed => {
                    if self.credentials && !cors.allow_credentials {
                        report.fail(
                            Reason::CorsCredentialsNotAllowed,
                            format!("the {stage} to `{origin}` lacks `Access-Control-Allow-Credentials: true`, so browsers withhold it from requests with credentials"),
                        );
                    }
                    self.judge_vary(origin, stage, cors, report);
                }
                Some(other) => report.fail(
                    Reason::CorsOriginNotAllowed,
                    format!(
                        "the {stage} to `{origin}` allows `{}` instead",
                        truncate(other, 80)
                    ),
                ),
            },
            Expectation::Rejected => match allow_origin {
                Some(_) if echoed => report.fail(
                    Reason::CorsOriginReflected,
                    format!("rejected origin `{origin}` is allowed: the {stage} echoes it in `Access-Control-Allow-Origin`{with_credentials}"),
                ),
                Some("*") => report.fail(
                    Reason::CorsWildcardOrigin,
                    format!("rejected origin `{origin}` is allowed: the {stage} has `Access-Control-Allow-Origin: *`"),
                ),
                _ => {}
            },
            Expectation::Arbitrary => match allow_origin {
                Some(_) if echoed && cors.allow_credentials => report.fail(
                    Reason::CorsOriginReflected,
                    format!("the {stage} echoes the made-up origin `{origin}`{with_credentials}, so any web site can read responses with the user's credentials; allow only the listed origins"),
                ),
                Some(_) if echoed && !self.allow_wildcard => report.fail(
                    Reason::CorsOriginReflected,
                    format!("the {stage} echoes the made-up origin `{origin}`, so the server allows every origin; allow only the listed origins"),
                ),
                Some("*") if !self.allow_wildcard => report.fail(
                    Reason::CorsWildcardOrigin,
                    format!("the {stage} to the made-up origin `{origin}` has `Access-Control-Allow-Origin: *`; allow only the listed origins, or set `allow_wildcard: true` if that is intended"),
                ),
                _ => {}
            },
        }
    }

    /// Judges the method and headers a preflight response allows, as the Fetch standard does: the
    /// safelisted methods need no listing, and `*` counts only without credentials and never
    /// covers `Authorization`.
    fn judge_grants(&self, origin: &str, cors: &CorsHeaders, report: &mut Report) {
        let wildcard = |items: &[String]| !self.credentials && items.iter().any(|item| item == "*");

        let method = self.method.as_str();
        let method_allowed = is_safelisted_method(&self.method)
            || cors.allow_methods.iter().any(|item| item == method)
            || wildcard(&cors.allow_methods);
        if !method_allowed {
            let listed = if cors.allow_methods.is_empty() {
                "no `Access-Control-Allow-Methods`".to_string()
            } else {
                format!(
                    "`Access-Control-Allow-Methods: {}`",
                    truncate(&cors.allow_methods.join(", "), 80)
                )
            };
            report.fail(
                Reason::CorsMethodNotAllowed,
                format!("the preflight response to `{origin}` does not allow method `{method}` ({listed}; method names are case-sensitive)"),
            );
        }

        let missing: Vec<&str> = self
            .request_headers
            .iter()
            .filter(|name| {
                let listed = cors
                    .allow_headers
                    .iter()
                    .any(|item| item.eq_ignore_ascii_case(name));
                !listed && (name.as_str() == "authorization" || !wildcard(&cors.allow_headers))
            })
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let listed = if cors.allow_headers.is_empty() {
                "no `Access-Control-Allow-Headers`".to_string()
            } else {
                format!(
                    "`Access-Control-Allow-Headers: {}`",
                    truncate(&cors.allow_headers.join(", "), 80)
                )
            };
            report.fail(
                Reason::CorsHeadersNotAllowed,
                format!("the preflight response to `{origin}` does not allow request headers `{}` ({listed})", missing.join(", ")),
            );
        }
    }

    /// A response that names one origin must list `Origin` in `Vary`, or a shared cache can
    /// serve one origin's response to another.
    fn judge_vary(&self, origin: &str, stage: Stage<'_>, cors: &CorsHeaders, report: &mut Report) {
        if cors.varies_on_origin {
            return;
        }
        report.without_vary.push(format!("{stage} to `{origin}`"));
        if self.require_vary {
            report.fail(
                Reason::CorsVaryMissing,
                format!("the {stage} to `{origin}` names the origin without `Vary: Origin`, so a shared cache can serve it to other origins"),
            );
        }
    }

    fn conclude(&self, mut report: Report) -> Outcome {
        let mut measures: Vec<Measure> = report
            .allowed
            .iter()
            .map(|(origin, named)| Measure {
                family: &ORIGIN_ALLOWED,
                label_values: vec![origin.clone()],
                value: f64::from(u8::from(*named)),
            })
            .collect();
        measures.push(Measure::new(
            &RESPONSES_WITHOUT_VARY,
            report.without_vary.len() as f64,
        ));

        // A missing `Vary: Origin` that fails the check is already a finding.
        let warning = if report.without_vary.is_empty() || self.require_vary {
            String::new()
        } else {
            format!(
                "; warning: no `Vary: Origin` on the {}, so a shared cache can serve one origin's response to another",
                report.without_vary.join(", ")
            )
        };

        if report.findings.is_empty() {
            return Outcome::pass(format!("{}{warning}", self.summary())).with_measures(measures);
        }
        report
            .findings
            .sort_by_key(|(reason, _)| severity_rank(*reason));
        let reason = report.findings[0].0;
        let total = report.findings.len();
        let mut listed: Vec<String> = report
            .findings
            .into_iter()
            .take(MAX_FINDINGS_IN_MESSAGE)
            .map(|(_, message)| message)
            .collect();
        if total > MAX_FINDINGS_IN_MESSAGE {
            listed.push(format!("{} more", total - MAX_FINDINGS_IN_MESSAGE));
        }
        Outcome::fail(reason, format!("{}{warning}", listed.join("; "))).with_measures(measures)
    }

    /// Describes a passing run: which origins were allowed and which were rejected.
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.allowed_origins.is_empty() {
            let headers = if self.request_headers.is_empty() {
                String::new()
            } else {
                format!(" and headers {}", self.request_headers.join(", "))
            };
            let credentials = if self.credentials {
                " with credentials"
            } else {
                ""
            };
            parts.push(format!(
                "{} allowed {} {}{headers}{credentials}",
                self.allowed_origins.len(),
                plural(self.allowed_origins.len(), "origin", "origins"),
                self.method
            ));
        }
        let refused = if self.rejected_origins.is_empty() {
            "a made-up origin is not echoed".to_string()
        } else {
            format!(
                "{} rejected {} and a made-up origin are not echoed",
                self.rejected_origins.len(),
                plural(self.rejected_origins.len(), "origin", "origins"),
            )
        };
        parts.push(refused);
        parts.join("; ")
    }
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 {
        one
    } else {
        many
    }
}

fn build_method(ctx: &mut BuildContext<'_>, method: Option<&str>) -> Option<Method> {
    let text = method.unwrap_or("GET").to_ascii_uppercase();
    let Ok(method) = Method::from_bytes(text.as_bytes()) else {
        ctx.problem(
            "cors.method",
            format!("invalid HTTP method `{text}`; use GET, HEAD, POST, PUT, PATCH or DELETE"),
        );
        return None;
    };
    if matches!(text.as_str(), "CONNECT" | "TRACE" | "TRACK" | "OPTIONS") {
        ctx.problem(
            "cors.method",
            format!("`{text}` is not a method a page sends cross-origin; use the method of the front end's request, such as GET, POST, PUT, PATCH or DELETE"),
        );
        return None;
    }
    Some(method)
}

fn build_request_headers(ctx: &mut BuildContext<'_>, names: &[String]) -> Vec<String> {
    let mut headers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let field = format!("cors.request_headers[{i}]");
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            ctx.problem(field, format!("invalid header name `{name}`"));
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if is_forbidden_request_header(&lower) {
            ctx.problem(
                field,
                format!("browsers do not let a page set `{name}`, so it never appears in a preflight; remove it"),
            );
            continue;
        }
        if !headers.contains(&lower) {
            headers.push(lower);
        }
    }
    headers.sort();
    headers
}

/// Validates the three kinds of origin and their overlaps.
fn build_origins(
    ctx: &mut BuildContext<'_>,
    spec: &CorsSpec,
) -> Option<(Vec<String>, Vec<String>, String)> {
    let mut ok = true;
    let mut parse_list =
        |ctx: &mut BuildContext<'_>, field: &str, values: &[String], allow_null| {
            let mut parsed: Vec<String> = Vec::new();
            for (i, value) in values.iter().enumerate() {
                match parse_origin(value, allow_null) {
                    Ok(origin) if parsed.contains(&origin) => {
                        ctx.problem(
                            format!("{field}[{i}]"),
                            format!("origin `{origin}` is listed twice; remove one"),
                        );
                        ok = false;
                    }
                    Ok(origin) => parsed.push(origin),
                    Err(message) => {
                        ctx.problem(format!("{field}[{i}]"), message);
                        ok = false;
                    }
                }
            }
            parsed
        };
    let allowed = parse_list(ctx, "cors.allowed_origins", &spec.allowed_origins, false);
    let rejected = parse_list(ctx, "cors.rejected_origins", &spec.rejected_origins, true);

    if spec.allowed_origins.is_empty() && spec.rejected_origins.is_empty() {
        ctx.problem(
            "cors.allowed_origins",
            "no origin given; list the front end's origins under `allowed_origins`, or origins that must not get access under `rejected_origins`",
        );
        ok = false;
    }
    for (i, origin) in rejected.iter().enumerate() {
        if allowed.contains(origin) {
            ctx.problem(
                format!("cors.rejected_origins[{i}]"),
                format!("origin `{origin}` is also in `allowed_origins`; keep it in one list"),
            );
            ok = false;
        }
    }

    let probe = spec.probe_origin.as_deref().unwrap_or(DEFAULT_PROBE_ORIGIN);
    let probe = match parse_origin(probe, false) {
        Ok(probe) if allowed.contains(&probe) || rejected.contains(&probe) => {
            ctx.problem(
                "cors.probe_origin",
                format!("origin `{probe}` is already listed; the probe origin must be one that no list contains, such as `{DEFAULT_PROBE_ORIGIN}`"),
            );
            None
        }
        Ok(probe) => Some(probe),
        Err(message) => {
            ctx.problem("cors.probe_origin", message);
            None
        }
    };
    (ok && probe.is_some()).then(|| (allowed, rejected, probe.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    mod properties {
        use http::{HeaderMap, HeaderValue};
        use proptest::prelude::*;

        use super::super::CorsHeaders;

        /// Bytes that are valid in a header value.
        fn header_value() -> impl Strategy<Value = HeaderValue> {
            prop::collection::vec(prop_oneof![32u8..127, 128u8..=255, Just(b'\t')], 0..64)
                .prop_map(|bytes| HeaderValue::from_bytes(&bytes).unwrap())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn cors_headers_survive_any_values(
                values in prop::collection::vec((0usize..5, header_value()), 0..12),
                origin in "\\PC{0,40}",
            ) {
                let names = [
                    http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    http::header::ACCESS_CONTROL_ALLOW_METHODS,
                    http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                    http::header::VARY,
                ];
                let mut headers = HeaderMap::new();
                for (name, value) in values {
                    headers.append(names[name].clone(), value);
                }
                let cors = CorsHeaders::read(&headers);
                let _ = cors.names(&origin);
            }
        }
    }

    #[test]
    fn origin_must_be_serialized_form() {
        assert_eq!(
            parse_origin("https://app.example.com", false).unwrap(),
            "https://app.example.com"
        );
        let err = parse_origin("https://App.example.com/", false).unwrap_err();
        assert!(err.contains("write `https://app.example.com`"), "{err}");
        let err = parse_origin("https://app.example.com:443", false).unwrap_err();
        assert!(err.contains("write `https://app.example.com`"), "{err}");
        assert!(parse_origin("ftp://files.example.com", false).is_err());
        assert!(parse_origin("null", false).is_err());
        assert_eq!(parse_origin("null", true).unwrap(), "null");
    }

    #[test]
    fn list_values_split_commas_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding, Origin"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Cookie"));
        assert_eq!(
            list_values(&headers, &header::VARY),
            vec!["Accept-Encoding", "Origin", "Cookie"]
        );
    }

    #[test]
    fn several_allow_origin_headers_name_nothing() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://a.example"),
        );
        headers.append(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://b.example"),
        );
        let cors = CorsHeaders::read(&headers);
        assert!(!cors.names("https://a.example"));
    }
}
