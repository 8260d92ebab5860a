//! Load generator for `scripts/bench/compare.sh`, in two modes.
//!
//! `bare` is the floor a checker is compared with: the same request as a check, made with tokio,
//! rustls and a hand-written HTTP/1.1 request, with no scheduler, no state and no metrics. Every
//! request opens a new TCP connection and, for `https://` and `tls://`, performs a full handshake
//! verified against `--ca` (session resumption is off).
//!
//! `drive` sends `GET` requests to one URL over kept-alive connections, the way Prometheus scrapes
//! blackbox_exporter's `/probe`, and counts the responses that report `probe_success 1`.
//!
//! Both modes run for `--duration` seconds or until SIGTERM, either at a fixed `--rate` (requests per second, at
//! most `--concurrency` in flight; a tick that finds them all busy is skipped) or, without
//! `--rate`, at full load with `--concurrency` requests always in flight. They print one JSON line
//! with the counts. The caller measures the process's CPU time from `/proc`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Upper bound on a response read by `bare`; the benchmark target answers a few bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Requests per second; without it, requests run back to back (full load).
    #[arg(long, global = true)]
    rate: Option<f64>,
    /// Requests in flight at most (at full load: always).
    #[arg(long, global = true, default_value_t = 8)]
    concurrency: usize,
    /// Run time in seconds.
    #[arg(long, global = true, default_value_t = 10.0)]
    duration: f64,
}

#[derive(Subcommand)]
enum Mode {
    /// Make the request of one check directly: `http://HOST:PORT/PATH`, `https://HOST:PORT/PATH`
    /// or `tls://HOST:PORT` (handshake only).
    Bare {
        /// Target URL.
        url: String,
        /// PEM file with the CA that issued the server's certificate.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Request `URL` over kept-alive connections and count `probe_success 1` responses.
    Drive {
        /// URL to request, such as blackbox_exporter's `/probe?module=M&target=T`.
        url: String,
    },
}

/// The request `bare` repeats.
enum Target {
    Http {
        address: String,
        request: Vec<u8>,
    },
    Https {
        address: String,
        name: ServerName<'static>,
        request: Vec<u8>,
        connector: tokio_rustls::TlsConnector,
    },
    Tls {
        address: String,
        name: ServerName<'static>,
        connector: tokio_rustls::TlsConnector,
    },
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    readiness_exporter::install_crypto_provider();
    // One thread: the floor should not pay for work stealing between workers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let counts = Arc::new(Counts::default());
    let duration = Duration::from_secs_f64(cli.duration);
    let first_error = runtime.block_on(async {
        match &cli.mode {
            Mode::Bare { url, ca } => {
                let target = Arc::new(Target::parse(url, ca.as_deref())?);
                let request = move || {
                    let target = target.clone();
                    async move { target.request_once().await }
                };
                Ok::<_, Error>(run(request, cli.rate, cli.concurrency, duration, &counts).await)
            }
            Mode::Drive { url } => {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(cli.concurrency)
                    .build()?;
                let url = reqwest::Url::parse(url)?;
                let request = move || {
                    let client = client.clone();
                    let url = url.clone();
                    async move { probe_once(&client, url).await }
                };
                Ok(run(request, cli.rate, cli.concurrency, duration, &counts).await)
            }
        }
    })?;
    println!(
        "{{\"ok\": {}, \"failed\": {}, \"skipped\": {}, \"tls\": {:?}, \"first_error\": {:?}}}",
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        counts.skipped.load(Ordering::Relaxed),
        NEGOTIATED.get().cloned().unwrap_or_default(),
        first_error.unwrap_or_default()
    );
    Ok(())
}

/// Runs `request` at `rate` per second (or back to back) until `duration` has passed, and
/// returns the message of the first failure.
async fn run<F, Fut>(
    request: F,
    rate: Option<f64>,
    concurrency: usize,
    duration: Duration,
    counts: &Arc<Counts>,
) -> Option<String>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), Error>> + Send + 'static,
{
    let deadline = Instant::now() + duration;
    let stopped = Arc::new(AtomicBool::new(false));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    let stop = stopped.clone();
    tokio::spawn(async move {
        terminate.recv().await;
        stop.store(true, Ordering::Relaxed);
    });
    let running = move || Instant::now() < deadline && !stopped.load(Ordering::Relaxed);
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let record = {
        let counts = counts.clone();
        let first_error = first_error.clone();
        move |result: Result<(), Error>| match result {
            Ok(()) => {
                counts.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(|| err.to_string());
            }
        }
    };

    match rate {
        Some(rate) => {
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            // Late ticks are made up at once, so the average rate stays at `rate`.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
            while {
                ticker.tick().await;
                running()
            } {
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    counts.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let future = request();
                let record = record.clone();
                tokio::spawn(async move {
                    record(future.await);
                    drop(permit);
                });
            }
        }
        None => {
            let workers: Vec<_> = (0..concurrency.max(1))
                .map(|_| {
                    let request = request.clone();
                    let record = record.clone();
                    let running = running.clone();
                    tokio::spawn(async move {
                        while running() {
                            record(request().await);
                        }
                    })
                })
                .collect();
            for worker in workers {
                let _ = worker.await;
            }
        }
    }
    // Requests still in flight finish before the counts are printed.
    let _ = limit.acquire_many(concurrency.max(1) as u32).await;
    let message = first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    message
}

async fn probe_once(client: &reqwest::Client, url: reqwest::Url) -> Result<(), Error> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        return Err(format!("status {status}").into());
    }
    if !body.lines().any(|line| line == "probe_success 1") {
        return Err("the probe did not report probe_success 1".into());
    }
    Ok(())
}

impl Target {
    fn parse(url: &str, ca: Option<&Path>) -> Result<Target, Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("invalid URL `{url}`; write http://, https:// or tls://"))?;
        let (address, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        let host = address
            .rsplit_once(':')
            .map(|(host, _)| host)
            .ok_or_else(|| format!("the URL `{url}` has no port"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: bench-client\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        let address = address.to_string();
        match scheme {
            "http" => Ok(Target::Http { address, request }),
            "https" | "tls" => {
                let ca = ca.ok_or("https:// and tls:// need --ca")?;
                let connector = connector(ca)?;
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())?;
                Ok(if scheme == "https" {
                    Target::Https {
                        address,
                        name,
                        request,
                        connector,
                    }
                } else {
                    Target::Tls {
                        address,
                        name,
                        connector,
                    }
                })
            }
            other => Err(format!("unsupported scheme `{other}`; use http, https or tls").into()),
        }
    }

    async fn request_once(&self) -> Result<(), Error> {
        match self {
            Target::Http { address, request } => {
                let stream = TcpStream::connect(address).await?;
                exchange(stream, request).await
            }
            Target::Https {
                address,
                name,
                request,
                connector,
            } => {
                let stream = TcpStream::connect(address).await?;
                let tls = connector.connect(name.clone(), stream).await?;
                record_negotiated(tls.get_ref().1);
                exchange(tls, request).await
            }
            Target::Tls {
                address,
                name,
                connector,
            } => {
                let stream = TcpStream::connect(address).await?;
                let mut tls = connector.connect(name.clone(), stream).await?;
                record_negotiated(tls.get_ref().1);
                tls.shutdown().await?;
                Ok(())
            }
        }
    }
}

/// The TLS version, key exchange group and cipher suite of the first handshake.
static NEGOTIATED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn record_negotiated(connection: &rustls::ClientConnection) {
    NEGOTIATED.get_or_init(|| {
        let version = connection.protocol_version();
        let group = connection
            .negotiated_key_exchange_group()
            .map(|group| group.name());
        let suite = connection
            .negotiated_cipher_suite()
            .map(|suite| suite.suite());
        format!("{version:?} {group:?} {suite:?}")
    });
}

/// Sends `request` and reads the response until the server closes the connection.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<(), Error> {
    stream.write_all(request).await?;
    let mut response = Vec::with_capacity(1024);
    let read = (&mut stream)
        .take(MAX_RESPONSE_BYTES as u64)
        .read_to_end(&mut response)
        .await;
    // A server that closes without close_notify ends the read with an error after a full
    // response; the status line decides.
    if !response.starts_with(b"HTTP/1.1 200") {
        read?;
        return Err("the response is not `HTTP/1.1 200`".into());
    }
    Ok(())
}

fn connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .ok_or("no rustls crypto provider is installed")?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
