//! Shared test fixtures: local HTTP(S) servers, generated certificates and a running exporter.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use readiness_exporter::exporter::Exporter;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Installs the crypto provider; every test that builds a TLS client calls this first.
pub fn init() {
    readiness_exporter::install_crypto_provider();
}

/// Writes `yaml` to `config.yaml` in `dir` and returns its path.
pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A server on 127.0.0.1 that is stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Wraps a server task that the test started itself, so it stops when dropped.
    pub fn new(addr: SocketAddr, task: JoinHandle<()>) -> TestServer {
        TestServer { addr, task }
    }

    /// `http://127.0.0.1:PORT` (or https) followed by `path`.
    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }
}

/// The handler type of [`http_server`]: a request in, a response out.
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync>;

/// Starts an HTTP/1.1 server on 127.0.0.1 with an ephemeral port, optionally with TLS.
pub async fn http_server(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request)) }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    TestServer { addr, task }
}

/// Starts a server from a handler closure.
pub async fn serve_fn(
    f: impl Fn(Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> TestServer {
    http_server(None, Arc::new(f)).await
}

/// Builds a response with a status and a body.
pub fn respond(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response
}

/// Starts a raw TCP server that runs `behaviour` on each accepted connection.
pub async fn tcp_server<F, Fut>(behaviour: F) -> TestServer
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let behaviour = Arc::new(behaviour);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(behaviour(stream));
        }
    });
    TestServer { addr, task }
}

/// A port on 127.0.0.1 with nothing listening on it.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A certificate authority made at test time, and leaf certificates it signs.
pub struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pub cert_pem: String,
}

/// A leaf certificate with its key, in PEM and DER.
pub struct TestLeaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: rustls::pki_types::CertificateDer<'static>,
    pub key_der: rustls::pki_types::PrivateKeyDer<'static>,
}

impl TestCa {
    /// A new self-signed CA.
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            params,
            key,
        }
    }

    /// A leaf for `names` valid from `not_before` to `not_after`, relative to now.
    pub fn leaf(
        &self,
        names: &[&str],
        not_before: time::Duration,
        not_after: time::Duration,
    ) -> TestLeaf {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + not_before;
        params.not_after = now + not_after;
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        TestLeaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    /// A leaf for `names` valid from a day ago for a year.
    pub fn valid_leaf(&self, names: &[&str]) -> TestLeaf {
        self.leaf(names, time::Duration::days(-1), time::Duration::days(365))
    }

    /// An intermediate CA signed by this CA, valid from a day ago until `not_after` from now.
    pub fn intermediate(&self, name: &str, not_after: time::Duration) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + not_after;
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            params,
            key,
        }
    }

    /// The CA certificate in DER, to send after a leaf.
    pub fn cert_der(&self) -> rustls::pki_types::CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap()
    }

    /// Writes the CA certificate to `dir/ca.pem`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.cert_pem).unwrap();
        path
    }
}

impl TestLeaf {
    /// A rustls server configuration presenting this leaf and, after it, `extra` certificates.
    pub fn server_config(
        &self,
        extra: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Arc<rustls::ServerConfig> {
        init();
        let mut chain = vec![self.cert_der.clone()];
        chain.extend(extra.iter().cloned());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, self.key_der.clone_key())
            .unwrap();
        Arc::new(config)
    }
}

/// An exporter serving on 127.0.0.1 with an ephemeral port.
pub struct RunningExporter {
    pub exporter: Arc<Exporter>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for RunningExporter {
    fn drop(&mut self) {
        self.task.abort();
        self.exporter.stop();
    }
}

impl RunningExporter {
    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until every check has run once.
    pub async fn wait_ready(&self) {
        wait_until(Duration::from_secs(20), || self.exporter.state().all_ran()).await;
    }
}

/// Starts an exporter on the configuration `yaml`; `{dir}` in it is replaced by a temp dir.
pub async fn start_exporter(yaml: &str) -> RunningExporter {
    init();
    let dir = tempfile::tempdir().unwrap();
    let yaml = yaml.replace("{dir}", &dir.path().display().to_string());
    let config_path = write_config(dir.path(), &yaml);
    let exporter = Exporter::start_with_env(&config_path, Some(Default::default())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = exporter.clone();
    let task = tokio::spawn(async move {
        readiness_exporter::web::serve(serving, listener, std::future::pending()).await;
    });
    RunningExporter {
        exporter,
        addr,
        dir,
        config_path,
        task,
    }
}

/// Polls `condition` every 20 ms until it holds; panics after `limit`.
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a GET and returns status, content type and body.
pub async fn get(url: &str) -> (u16, String, String) {
    init();
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// A configuration loaded from YAML whose checks the test runs one at a time, with the results
/// kept in a [`State`](readiness_exporter::state::State) that encodes the real `/metrics` body.
pub struct LoadedChecks {
    pub dir: tempfile::TempDir,
    pub config: readiness_exporter::config::Config,
    state: Arc<readiness_exporter::state::State>,
    registry: prometheus_client::registry::Registry,
}

impl LoadedChecks {
    /// Loads `yaml` with `{dir}` replaced by a new temp dir; panics with the problems when the
    /// configuration is invalid.
    pub fn load(yaml: &str) -> LoadedChecks {
        Self::load_in(tempfile::tempdir().unwrap(), yaml)
    }

    /// Like [`LoadedChecks::load`], in a directory the test has already filled.
    pub fn load_in(dir: tempfile::TempDir, yaml: &str) -> LoadedChecks {
        init();
        let yaml = yaml.replace("{dir}", &dir.path().display().to_string());
        let path = write_config(dir.path(), &yaml);
        let config = readiness_exporter::config::load_with_env(&path, Some(Default::default()))
            .unwrap_or_else(|err| panic!("{err}"));
        let state = Arc::new(readiness_exporter::state::State::new());
        state.set_checks(&config.checks);
        let registry = readiness_exporter::metrics::registry(state.clone());
        LoadedChecks {
            dir,
            config,
            state,
            registry,
        }
    }

    /// Runs the check `id` once, as the scheduler does, and records the result.
    pub async fn run(&self, id: &str) -> readiness_exporter::check::Outcome {
        let def = self
            .config
            .checks
            .iter()
            .find(|def| def.id == id)
            .unwrap_or_else(|| panic!("no check `{id}`"));
        let result = readiness_exporter::scheduler::execute(def).await;
        self.state.record(def, result.clone());
        result.outcome
    }

    /// Encodes the `/metrics` body for the results recorded so far.
    pub fn metrics(&self) -> String {
        readiness_exporter::metrics::encode(&self.registry)
    }
}

/// Asserts that the exposition contains `line` exactly.
#[track_caller]
pub fn assert_metric(metrics: &str, line: &str) {
    assert!(
        metrics.lines().any(|candidate| candidate == line),
        "metric line `{line}` not found in:\n{metrics}"
    );
}

/// Asserts that no series of `family` exists for `check`.
#[track_caller]
pub fn assert_no_series(metrics: &str, family: &str, check: &str) {
    let prefix = format!("{family}{{check=\"{check}\"");
    assert!(
        !metrics.lines().any(|line| line.starts_with(&prefix)),
        "unexpected series of `{family}` for `{check}` in:\n{metrics}"
    );
}

/// Loads `yaml` and returns every problem as the loader prints it; panics when it loads.
pub fn config_problems(yaml: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let yaml = yaml.replace("{dir}", &dir.path().display().to_string());
    let path = write_config(dir.path(), &yaml);
    match readiness_exporter::config::load_with_env(&path, Some(Default::default())) {
        Ok(_) => panic!("configuration loaded, but a problem was expected"),
        Err(readiness_exporter::config::ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("expected problems, got: {other}"),
    }
}
