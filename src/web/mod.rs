//! The HTTP server: `/metrics`, the status page, the JSON API, the deploy gate, health and
//! reload endpoints.
//!
//! Every endpoint reads cached state. None takes a target, URL or host from the request, so the
//! exporter cannot be turned into a proxy that probes arbitrary addresses.

mod page;
mod protection;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::config::ConfigError;
use crate::exporter::Exporter;
use crate::report::{self, CheckView};
pub use protection::{Authorization, WebConfig, WebConfigError};

type Body = Full<Bytes>;

/// Serves requests on `listener` until `shutdown` completes, over plain HTTP without
/// authentication.
pub async fn serve(
    exporter: Arc<Exporter>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(exporter, listener, Arc::new(WebConfig::none()), shutdown).await;
}

/// Serves requests on `listener` until `shutdown` completes, with the TLS and basic auth
/// settings of `web`.
pub async fn serve_with(
    exporter: Arc<Exporter>,
    listener: TcpListener,
    web: Arc<WebConfig>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let address = listener.local_addr().map_or_else(
        |err| format!("unknown ({err})"),
        |address| address.to_string(),
    );
    info!(
        address = %address,
        tls = web.tls_enabled(),
        basic_auth = web.basic_auth_enabled(),
        "Listening"
    );
    let acceptor = web.acceptor();
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    debug!(error = %err, "Accept failed");
                    continue;
                }
            },
        };
        let exporter = exporter.clone();
        let web = web.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let exporter = exporter.clone();
                let web = web.clone();
                async move {
                    let authorization = web
                        .authorize(request.headers().get(header::AUTHORIZATION))
                        .await;
                    let response = match authorization {
                        Authorization::Allowed => handle(&exporter, request).await,
                        Authorization::Denied => unauthorized(),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            let served = match acceptor {
                Some(acceptor) => {
                    if protection::reject_plain_http(&mut stream).await {
                        debug!(peer = %peer, "Plain HTTP request on the TLS listener rejected");
                        return;
                    }
                    match acceptor.accept(stream).await {
                        Ok(stream) => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Err(err) => {
                            debug!(peer = %peer, error = %err, "TLS handshake failed");
                            return;
                        }
                    }
                }
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(err) = served {
                debug!(peer = %peer, error = %err, "Connection ended with an error");
            }
        });
    }
}

fn unauthorized() -> Response<Body> {
    let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, WebConfig::challenge());
    response
}

/// Routes one request.
pub async fn handle(exporter: &Exporter, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let method = request.method().clone();
    let is_read = method == Method::GET || method == Method::HEAD;
    let mut response = match path.as_str() {
        "/metrics" if is_read => metrics(exporter),
        "/" if is_read => page(exporter),
        "/api/v1/checks" if is_read => checks(exporter),
        "/api/v1/gate" if is_read => gate(exporter, &query),
        "/-/healthy" if is_read => text(StatusCode::OK, "Healthy\n"),
        "/-/ready" if is_read => ready(exporter),
        "/-/reload" if method == Method::POST || method == Method::PUT => reload(exporter).await,
        "/-/reload" => method_not_allowed("POST, PUT"),
        "/metrics" | "/" | "/api/v1/checks" | "/api/v1/gate" | "/-/healthy" | "/-/ready" => {
            method_not_allowed("GET, HEAD")
        }
        other => match other.strip_prefix("/api/v1/checks/") {
            Some(id) if is_read => check(exporter, id),
            Some(_) => method_not_allowed("GET, HEAD"),
            None => text(
                StatusCode::NOT_FOUND,
                "not found; see / for the status page\n",
            ),
        },
    };
    if method == Method::HEAD {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_str(content_type)
            .unwrap_or(header::HeaderValue::from_static("text/plain")),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body.into())
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", body)
}

fn metrics(exporter: &Exporter) -> Response<Body> {
    // NOTE: the body grows by about 860 bytes per check. At 10,000 checks it is 8.6 MB, about
    // 8 ms of CPU per scrape on the worker thread that also runs the checks (docs/benchmarks.md).
    respond(
        StatusCode::OK,
        crate::metrics::CONTENT_TYPE,
        crate::metrics::encode_state(exporter.state()),
    )
}

fn views(exporter: &Exporter) -> Vec<CheckView> {
    let now = SystemTime::now();
    let mut views = Vec::new();
    exporter
        .state()
        .for_each(|entry| views.push(CheckView::new(entry, now)));
    views
}

fn page(exporter: &Exporter) -> Response<Body> {
    let mut response = respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        page::render(
            &views(exporter),
            &exporter.state().reload_status(),
            SystemTime::now(),
        ),
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

fn checks(exporter: &Exporter) -> Response<Body> {
    respond(
        StatusCode::OK,
        "application/json",
        report::json(&views(exporter)),
    )
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn check(exporter: &Exporter, id: &str) -> Response<Body> {
    match exporter.state().entry(id) {
        Some(entry) => json_response(StatusCode::OK, &CheckView::new(&entry, SystemTime::now())),
        None => json_response(
            StatusCode::NOT_FOUND,
            &ErrorBody {
                error: format!(
                    "no check with id `{}`; GET /api/v1/checks lists them",
                    id.chars().take(128).collect::<String>()
                ),
            },
        ),
    }
}

#[derive(Serialize)]
struct GateBody {
    open: bool,
    section: Option<String>,
    blocking_checks: usize,
    blocking_failures: Vec<GateFailureBody>,
}

#[derive(Serialize)]
struct GateFailureBody {
    id: String,
    title: String,
    section: String,
    severity: crate::config::Severity,
    status: crate::check::Status,
    reason: crate::check::Reason,
    message: String,
}

fn gate(exporter: &Exporter, query: &str) -> Response<Body> {
    let section = url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "section")
        .map(|(_, value)| value.into_owned());
    let state = exporter.state();
    if let Some(section) = &section {
        let mut known = Vec::new();
        state.for_each(|entry| {
            if !known.contains(&entry.def.section) {
                known.push(entry.def.section.clone());
            }
        });
        if !known.contains(section) {
            let shown: String = section.chars().take(128).collect();
            return json_response(
                StatusCode::NOT_FOUND,
                &ErrorBody {
                    error: format!("no section `{shown}`; known sections: {}", known.join(", ")),
                },
            );
        }
    }
    let gate = state.gate(SystemTime::now(), section.as_deref());
    let body = GateBody {
        open: gate.open,
        section,
        blocking_checks: gate.blocking_checks,
        blocking_failures: gate
            .blocking_failures
            .into_iter()
            .map(|failure| GateFailureBody {
                id: failure.def.id.clone(),
                title: failure.def.title.clone(),
                section: failure.def.section.clone(),
                severity: failure.def.severity,
                status: failure.status,
                reason: failure.reason,
                message: failure.message,
            })
            .collect(),
    };
    let status = if body.open {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

fn ready(exporter: &Exporter) -> Response<Body> {
    let mut pending = 0;
    let mut total = 0;
    exporter.state().for_each(|entry| {
        total += 1;
        pending += usize::from(entry.last.is_none());
    });
    if pending == 0 {
        text(StatusCode::OK, "Ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{pending} of {total} checks have not run yet\n"),
        )
    }
}

async fn reload(exporter: &Exporter) -> Response<Body> {
    let listen_before = exporter.global().listen_address;
    match exporter.reload().await {
        Ok(count) => {
            let listen_after = exporter.global().listen_address;
            let note = if listen_after == listen_before {
                String::new()
            } else {
                format!(
                    "global.listen_address changed to {listen_after}; the exporter keeps serving on {listen_before} until it restarts\n"
                )
            };
            text(
                StatusCode::OK,
                format!("configuration reloaded: {count} checks\n{note}"),
            )
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            let mut body = format!(
                "reload rejected, the previous configuration stays in effect; {} problem(s):\n",
                problems.len()
            );
            for problem in problems {
                body.push_str(&format!("  {problem}\n"));
            }
            text(StatusCode::INTERNAL_SERVER_ERROR, body)
        }
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload rejected, the previous configuration stays in effect: {err}\n"),
        ),
    }
}

/// A 405 response with the `Allow` header that lists the methods the path accepts.
fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}
