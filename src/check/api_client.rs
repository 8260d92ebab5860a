//! The HTTP client shared by the kinds that read a monitoring or logging server's own API
//! (Prometheus, Alertmanager, Grafana, Loki, Elasticsearch and OpenSearch).
//!
//! A kind's `server` block names the base URL, the credential and the CA. Every request makes a
//! new connection through the client cache of the `http` kind, reads at most `max_body_bytes`,
//! and maps every transport failure, 401, 403 and 429 to an error outcome, so a kind only judges
//! the documents it receives.

use std::path::PathBuf;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use super::http::{classify, credential_status, read_body, truncate};
use super::{Outcome, Reason};
use crate::config::BuildContext;
use crate::secret::SecretRef;

/// The default limit of a response body, large enough for the target list of a Prometheus
/// server with a few thousand targets.
const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// The `server` block of a kind, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    url: String,
    bearer_token: Option<SecretRef>,
    basic_auth: Option<BasicAuthSpec>,
    ca_file: Option<PathBuf>,
    max_body_bytes: Option<u64>,
}

/// HTTP basic authentication, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuthSpec {
    username: String,
    password: SecretRef,
}

/// The credential sent with every request.
#[derive(Debug)]
enum Credential {
    None,
    Bearer(SecretRef),
    Basic {
        username: String,
        password: SecretRef,
    },
}

/// A validated API client for one server.
#[derive(Debug)]
pub struct ApiClient {
    client: reqwest::Client,
    base: Url,
    credential: Credential,
    max_body_bytes: u64,
}

/// A response whose status the caller judges, with its body read.
#[derive(Debug)]
pub struct ApiResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The body, at most `max_body_bytes` long.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// Parses the body as JSON, or returns an `invalid_response` error naming `what`.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, Outcome> {
        serde_json::from_slice(&self.body).map_err(|err| {
            Outcome::error(
                Reason::InvalidResponse,
                format!(
                    "{what} returned status {} with a body that is not the expected JSON ({}): `{}`",
                    self.status,
                    truncate(&err.to_string(), 200),
                    self.text_excerpt()
                ),
            )
        })
    }

    /// Returns the first 200 characters of the body, for messages.
    pub fn text_excerpt(&self) -> String {
        truncate(String::from_utf8_lossy(&self.body).trim(), 200)
    }
}

impl ApiClient {
    /// Validates a `server` block; `field` is its dotted path, such as `grafana.server`.
    pub fn build(spec: ServerSpec, field: &str, ctx: &mut BuildContext<'_>) -> Option<ApiClient> {
        let before = ctx.problem_count();
        let base = ctx.http_url(&format!("{field}.url"), &spec.url);
        if let Some(base) = &base {
            if base.query().is_some() || base.fragment().is_some() {
                ctx.problem(
                    format!("{field}.url"),
                    format!("base URL `{}` has a query or fragment; write the server's base URL only, such as `https://prometheus.example.com`", spec.url),
                );
            }
        }
        let credential = match (spec.bearer_token, spec.basic_auth) {
            (Some(_), Some(_)) => {
                ctx.problem(
                    format!("{field}.basic_auth"),
                    "`bearer_token` and `basic_auth` both set; a request carries one `Authorization` header, so keep one of them",
                );
                Credential::None
            }
            (Some(token), None) => ctx
                .secret_ref(&format!("{field}.bearer_token"), token)
                .map_or(Credential::None, Credential::Bearer),
            (None, Some(basic)) => {
                if basic.username.is_empty() || basic.username.contains(':') {
                    ctx.problem(
                        format!("{field}.basic_auth.username"),
                        format!(
                            "invalid user name `{}`; it must be non-empty and must not contain `:`",
                            basic.username
                        ),
                    );
                }
                match ctx.secret_ref(&format!("{field}.basic_auth.password"), basic.password) {
                    Some(password) => Credential::Basic {
                        username: basic.username,
                        password,
                    },
                    None => Credential::None,
                }
            }
            (None, None) => Credential::None,
        };
        let max_body_bytes = spec.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            ctx.problem(
                format!("{field}.max_body_bytes"),
                "`0` would reject every response; use a positive size in bytes",
            );
        }
        let ca_file = spec.ca_file.as_ref().map(|path| ctx.resolve_path(path));
        let client = match ctx.http_clients.get(ca_file, None) {
            Ok(client) => Some(client),
            Err(message) => {
                ctx.problem(format!("{field}.ca_file"), message);
                None
            }
        };
        if ctx.problem_count() > before {
            return None;
        }
        Some(ApiClient {
            client: client?,
            base: base?,
            credential,
            max_body_bytes,
        })
    }

    /// Returns the URL of `segments` below the base URL. Each segment is percent-encoded, so a
    /// uid or a group name cannot change the path.
    pub fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// Sends a GET to `segments` below the base URL with `query` parameters.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<ApiResponse, Outcome> {
        let mut url = self.endpoint(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.client.get(url.clone());
        let mut sent = Vec::new();
        if let Some((value, secrets)) = self.authorization()? {
            request = request.header(AUTHORIZATION, value);
            sent = secrets;
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        self.send(request, &url, &sent).await
    }

    /// Sends a POST with a JSON body to `segments` below the base URL.
    pub async fn post_json(
        &self,
        segments: &[&str],
        body: &serde_json::Value,
    ) -> Result<ApiResponse, Outcome> {
        let url = self.endpoint(segments);
        let mut request = self
            .client
            .post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let mut sent = Vec::new();
        if let Some((value, secrets)) = self.authorization()? {
            request = request.header(AUTHORIZATION, value);
            sent = secrets;
        }
        self.send(request, &url, &sent).await
    }

    /// Sends the request and reads the body with every text of `sent` (the credential) replaced,
    /// so no message that quotes the body can quote a credential the server echoed.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
        sent: &[String],
    ) -> Result<ApiResponse, Outcome> {
        let mut response = request.send().await.map_err(|err| {
            let (reason, message) = classify(&err, url);
            Outcome::error(reason, message)
        })?;
        let status = response.status().as_u16();
        if let Some((reason, detail)) = credential_status(status) {
            return Err(Outcome::error(
                reason,
                format!("`{}` returned status {status}{detail}", url.path()),
            ));
        }
        let body = read_body(&mut response, self.max_body_bytes, url).await?;
        Ok(ApiResponse {
            status,
            body: redact_body(body, sent),
        })
    }

    /// Resolves the credential into an `Authorization` value, now, so a rotated secret is used
    /// on the next run. Returns the value and the texts that give the credential away: the
    /// value itself and the secret.
    fn authorization(&self) -> Result<Option<(HeaderValue, Vec<String>)>, Outcome> {
        let (text, secret, reference) = match &self.credential {
            Credential::None => return Ok(None),
            Credential::Bearer(reference) => {
                let token = resolve(reference, "bearer_token")?;
                (format!("Bearer {}", token.expose()), token, reference)
            }
            Credential::Basic { username, password } => {
                let secret = resolve(password, "basic_auth.password")?;
                let pair = format!("{username}:{}", secret.expose());
                (
                    format!("Basic {}", base64(pair.as_bytes())),
                    secret,
                    password,
                )
            }
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            Outcome::error(
                Reason::SecretUnavailable,
                format!("the value of {reference} is not valid in an HTTP header; remove control characters and line breaks"),
            )
        })?;
        value.set_sensitive(true);
        Ok(Some((value, vec![text, secret.expose().to_string()])))
    }
}

/// Replaces every text of `secrets` in `body`, and parts of them, with `<redacted>`; see
/// [`crate::secret::redact`]. A body that is not UTF-8 is redacted in its lossy decoding.
fn redact_body(body: Vec<u8>, secrets: &[String]) -> Vec<u8> {
    if secrets.is_empty() {
        return body;
    }
    let text = String::from_utf8_lossy(&body);
    let redacted = crate::secret::redact(&text, secrets.iter().map(String::as_str));
    if redacted == text {
        return body;
    }
    redacted.into_bytes()
}

fn resolve(reference: &SecretRef, field: &str) -> Result<crate::secret::Secret, Outcome> {
    reference
        .resolve()
        .map_err(|err| Outcome::error(Reason::SecretUnavailable, format!("`{field}`: {err}")))
}

/// Encodes bytes as standard base64 with padding (RFC 4648), for basic authentication.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Parses a comparison threshold pair, recording a problem when `min` exceeds `max` or either
/// is not a number. `field` is the kind's name, such as `prometheus_query`.
pub(crate) fn check_bounds(
    ctx: &mut BuildContext<'_>,
    field: &str,
    min: Option<f64>,
    max: Option<f64>,
) {
    if min.is_some_and(f64::is_nan) || max.is_some_and(f64::is_nan) {
        ctx.problem(field, "`min` and `max` must be numbers");
    }
    if let (Some(low), Some(high)) = (min, max) {
        if low > high {
            ctx.problem(
                format!("{field}.min"),
                format!(
                    "`min` ({low}) is larger than `max` ({high}), so no value can pass; swap them"
                ),
            );
        }
    }
    if min.is_none() && max.is_none() {
        ctx.problem(
            field,
            "no threshold; set `min` and/or `max` for the query's value",
        );
    }
}

/// Compares `value` with inclusive bounds and returns the failure message, if any.
pub(crate) fn out_of_bounds(value: f64, min: Option<f64>, max: Option<f64>) -> Option<String> {
    if let Some(min) = min.filter(|min| value < *min) {
        return Some(format!("{value} is below the minimum {min}"));
    }
    if let Some(max) = max.filter(|max| value > *max) {
        return Some(format!("{value} is above the maximum {max}"));
    }
    None
}

/// Describes the bounds for a passing message: `, within 1 to 5`.
pub(crate) fn describe_bounds(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!(", within {min} to {max}"),
        (Some(min), None) => format!(", at least {min}"),
        (None, Some(max)) => format!(", at most {max}"),
        (None, None) => String::new(),
    }
}

/// Removes query strings from URLs inside a server's error text, because a scrape or
/// data-source URL can carry a credential as a parameter.
pub(crate) fn redact_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_url_query = false;
    let mut word_is_url = false;
    // The last three characters of the current word: a word becomes a URL when they are `://`.
    // Searching the whole word on every character made a long word take quadratic time.
    let mut tail = ['\0'; 3];
    for c in text.chars() {
        let ends_word = c.is_whitespace() || c == '"' || c == '\'' || c == '`';
        if ends_word {
            in_url_query = false;
            word_is_url = false;
            tail = ['\0'; 3];
            out.push(c);
            continue;
        }
        tail = [tail[1], tail[2], c];
        if tail == [':', '/', '/'] {
            word_is_url = true;
        }
        if c == '?' && word_is_url && !in_url_query {
            in_url_query = true;
            out.push_str("?<redacted>");
            continue;
        }
        if !in_url_query {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn url_queries_are_redacted() {
        assert_eq!(
            redact_queries(r#"Get "https://vault:8200/v1/sys/metrics?token=abc": 403"#),
            r#"Get "https://vault:8200/v1/sys/metrics?<redacted>": 403"#
        );
        assert_eq!(redact_queries("is this ok?"), "is this ok?");
    }

    #[test]
    fn echoed_credential_redacted_in_body() {
        // A server or proxy that quotes the request's `Authorization` header in its error body
        // once put the token into the message, which quotes the body.
        let sent = vec![
            "Bearer s3cr3t-token-value".to_string(),
            "s3cr3t-token-value".to_string(),
        ];
        let body = br#"{"error": "bad header Bearer s3cr3t-token-value"}"#.to_vec();
        assert_eq!(
            redact_body(body, &sent),
            br#"{"error": "bad header <redacted>"}"#.to_vec()
        );
        let untouched = b"\xff no secret here".to_vec();
        assert_eq!(redact_body(untouched.clone(), &sent), untouched);
    }

    #[test]
    fn long_word_redacted_in_linear_time() {
        // A scrape error of a few MiB without whitespace once took minutes, because every
        // character searched the whole word so far for `://`.
        let word = format!("{}https://host/metrics?token=abc", "x".repeat(4 << 20));
        let started = tokio::time::Instant::now();
        let redacted = redact_queries(&word);
        assert!(redacted.ends_with("https://host/metrics?<redacted>"));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn redact_queries_never_grows_unbounded(text in "\\PC{0,200}|[a-z:/?= ]{0,200}") {
            let redacted = redact_queries(&text);
            // Each query becomes `?<redacted>`, 10 characters longer at most.
            proptest::prop_assert!(redacted.len() <= text.len() + 10 * text.matches('?').count());
        }

        #[test]
        fn api_json_error_is_bounded(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            long in 0usize..20_000,
            arbitrary in proptest::prelude::any::<bool>(),
        ) {
            // Arbitrary bytes, or a long string where a number is expected, which a parse error
            // quotes in full.
            let body = if arbitrary {
                bytes
            } else {
                format!("{{\"a\": \"{}\"}}", "x".repeat(long)).into_bytes()
            };
            let response = ApiResponse { status: 200, body };
            if let Err(outcome) = response.json::<std::collections::BTreeMap<String, u64>>("`/api`") {
                proptest::prop_assert!(outcome.message.chars().count() < 600, "{}", outcome.message);
            }
        }
    }

    #[test]
    fn bounds_compare_inclusive() {
        assert_eq!(out_of_bounds(1.0, Some(1.0), Some(2.0)), None);
        assert!(out_of_bounds(0.5, Some(1.0), None).is_some());
        assert!(out_of_bounds(2.5, None, Some(2.0)).is_some());
    }
}
