//! The `tls` check kind: the certificate chain of a server or of a PEM file, with its validity
//! dates, trust, host name and, for a server, the negotiated TLS version.
//!
//! The handshake accepts any certificate through a verifier that records the chain the server
//! presents and still checks the handshake signatures. The chain is then verified on its own with
//! webpki against the roots, so the verdict and the dates stay independent: an expired or
//! untrusted certificate still has its dates read and exported.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, ProtocolVersion, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;
use crate::file;

const DEFAULT_MIN_DAYS_LEFT: f64 = 14.0;
const SECONDS_PER_DAY: f64 = 86_400.0;
/// How many names of a certificate a hostname mismatch message lists.
const MAX_NAMES_SHOWN: usize = 5;

/// When the leaf certificate stops being valid.
pub static NOT_AFTER: MeasureFamily = MeasureFamily {
    name: "readiness_tls_not_after_timestamp",
    help: "When the leaf certificate of a tls check expires, as a Unix timestamp",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// When the leaf certificate starts being valid.
pub static NOT_BEFORE: MeasureFamily = MeasureFamily {
    name: "readiness_tls_not_before_timestamp",
    help: "When the leaf certificate of a tls check becomes valid, as a Unix timestamp",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The earliest expiry on the verified chain, from the leaf up to and including the root.
pub static CHAIN_NOT_AFTER: MeasureFamily = MeasureFamily {
    name: "readiness_tls_chain_not_after_timestamp",
    help: "Earliest expiry among the certificates of the verified chain of a tls check, leaf and root included, as a Unix timestamp",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The negotiated TLS version, as an info series.
pub static VERSION_INFO: MeasureFamily = MeasureFamily {
    name: "readiness_tls_version_info",
    help: "TLS version negotiated by a tls check with a server; always 1",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["version"],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] =
    &[&NOT_AFTER, &NOT_BEFORE, &CHAIN_NOT_AFTER, &VERSION_INFO];

/// The `tls` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    address: Option<String>,
    server_name: Option<String>,
    file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    min_days_left: Option<f64>,
    /// A string or a number, because YAML reads an unquoted `1.2` as a number.
    min_version: Option<serde_json::Value>,
}

/// A TLS protocol version the exporter can negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TlsVersion {
    V1_2,
    V1_3,
}

impl TlsVersion {
    fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }

    fn from_rustls(version: ProtocolVersion) -> Option<TlsVersion> {
        match version {
            ProtocolVersion::TLSv1_2 => Some(TlsVersion::V1_2),
            ProtocolVersion::TLSv1_3 => Some(TlsVersion::V1_3),
            _ => None,
        }
    }

    fn parse(value: &serde_json::Value) -> Option<TlsVersion> {
        let text = match value {
            serde_json::Value::String(text) => text.trim().to_ascii_lowercase(),
            serde_json::Value::Number(number) => number.to_string(),
            _ => return None,
        };
        match text.trim_start_matches("tlsv").trim_start_matches("tls") {
            "1.2" => Some(TlsVersion::V1_2),
            "1.3" => Some(TlsVersion::V1_3),
            _ => None,
        }
    }
}

/// The origin of the certificates: a server or a file.
#[derive(Debug)]
enum Source {
    /// A server reached over TCP.
    Server {
        /// `host:port` as written, for connecting and for messages.
        address: String,
        /// The name sent as SNI; an IP address sends none.
        sni: ServerName<'static>,
        /// Whether `server_name` set the SNI instead of the host of `address`.
        sni_overridden: bool,
    },
    /// A PEM file read on every run: the leaf first, then any intermediates.
    File(PathBuf),
}

/// The roots a chain must lead to, with the expiry of each root certificate.
#[derive(Debug)]
struct Roots {
    /// The origin of the roots, named in messages.
    origin: String,
    anchors: Vec<TrustAnchor<'static>>,
    /// The parsed root certificates, in the order of `anchors`.
    certs: Vec<CertInfo>,
}

/// The facts of one certificate that the checks use.
#[derive(Clone, Debug)]
struct CertInfo {
    subject: String,
    not_before: i64,
    not_after: i64,
}

/// A validated `tls` check.
#[derive(Debug)]
pub struct TlsCheck {
    source: Source,
    /// The name the leaf must be valid for; `None` for a file without `server_name`.
    expected_name: Option<ServerName<'static>>,
    roots: Arc<Roots>,
    min_days_left: f64,
    min_version: TlsVersion,
}

impl TlsCheck {
    /// Validates the `tls` block, recording every problem in `ctx`.
    pub fn build(spec: TlsSpec, ctx: &mut BuildContext<'_>) -> Option<TlsCheck> {
        // `Some(None)` marks a server name that is set but invalid.
        let server_name = spec
            .server_name
            .as_ref()
            .map(|name| parse_server_name(ctx, name));
        let source = match (&spec.address, &spec.file) {
            (Some(_), Some(_)) => {
                ctx.problem(
                    "tls.file",
                    "both `address` and `file` are set; a tls check reads either a server or a PEM file, so remove one of them",
                );
                None
            }
            (None, None) => {
                ctx.problem(
                    "tls",
                    "neither `address` nor `file` is set; add `address: host:port` to check a server or `file: /path/to/tls.crt` to check a PEM file",
                );
                None
            }
            (Some(address), None) => parse_address(ctx, address).map(|host| Source::Server {
                address: address.clone(),
                sni: server_name.clone().flatten().unwrap_or(host),
                sni_overridden: spec.server_name.is_some(),
            }),
            (None, Some(file)) => Some(Source::File(ctx.resolve_path(file))),
        };
        let expected_name = match &source {
            Some(Source::Server { sni, .. }) => Some(sni.clone()),
            _ => server_name.clone().flatten(),
        };

        let min_days_left = spec.min_days_left.unwrap_or(DEFAULT_MIN_DAYS_LEFT);
        if !min_days_left.is_finite() || min_days_left < 0.0 {
            ctx.problem(
                "tls.min_days_left",
                format!("`{min_days_left}` is negative; use a number of days of 0 or more, such as `14`"),
            );
        }
        let min_version = parse_min_version(ctx, &spec);
        let roots = load_roots(ctx, spec.ca_file.as_deref());

        if server_name.is_some_and(|name| name.is_none()) {
            return None;
        }
        Some(TlsCheck {
            source: source?,
            expected_name,
            roots: roots?,
            min_days_left,
            min_version: min_version?,
        })
    }

    /// Reads the certificates once and evaluates them.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let presented = match &self.source {
            Source::Server { address, sni, .. } => {
                // The handshake gives up a little before the scheduler's deadline, so that a
                // timeout outcome names the server.
                let limit = timeout.mul_f64(0.9);
                match tokio::time::timeout(limit, handshake(address, sni)).await {
                    Ok(result) => result,
                    Err(_) => Err(Outcome::error(
                        Reason::Timeout,
                        format!(
                            "no TLS handshake with {} within {}",
                            self.target(),
                            super::format_duration(limit)
                        ),
                    )),
                }
            }
            Source::File(path) => read_pem_file(path).await,
        };
        match presented {
            Ok(presented) => self.evaluate(&presented, unix_now()),
            Err(outcome) => outcome,
        }
    }

    fn target(&self) -> String {
        match &self.source {
            Source::Server {
                address,
                sni,
                sni_overridden,
            } => {
                if *sni_overridden {
                    format!("{address} (server name {})", sni.to_str())
                } else {
                    address.clone()
                }
            }
            Source::File(path) => format!("file `{}`", path.display()),
        }
    }

    fn evaluate(&self, presented: &Presented, now: i64) -> Outcome {
        let leaf = match CertInfo::parse(&presented.certs[0]) {
            Ok(leaf) => leaf,
            Err(message) => {
                return Outcome::error(
                    Reason::InvalidResponse,
                    format!("the leaf certificate of {} {message}", self.target()),
                )
            }
        };
        let chain = self.verify_chain(&presented.certs, now, leaf.not_before);

        let mut measures = vec![
            Measure::new(&NOT_AFTER, leaf.not_after as f64),
            Measure::new(&NOT_BEFORE, leaf.not_before as f64),
        ];
        let earliest = chain
            .path()
            .and_then(|path| path.iter().min_by_key(|cert| cert.not_after).cloned());
        if let Some(earliest) = &earliest {
            measures.push(Measure::new(&CHAIN_NOT_AFTER, earliest.not_after as f64));
        }
        if let Some(version) = presented.version {
            measures.push(Measure {
                family: &VERSION_INFO,
                label_values: vec![version.as_str().to_string()],
                value: 1.0,
            });
        }

        let soonest = earliest.as_ref().unwrap_or(&leaf);
        let days_left = (soonest.not_after - now) as f64 / SECONDS_PER_DAY;
        self.verdict(presented, &leaf, &chain, soonest, now)
            .with_value(days_left)
            .with_measures(measures)
    }

    /// Decides the outcome, most urgent problem first.
    fn verdict(
        &self,
        presented: &Presented,
        leaf: &CertInfo,
        chain: &Chain,
        soonest: &CertInfo,
        now: i64,
    ) -> Outcome {
        let target = self.target();
        if let Some(outcome) = outside_validity(leaf, "certificate", &target, now) {
            return outcome;
        }
        match chain {
            Chain::Untrusted(error) => {
                return Outcome::fail(
                    Reason::UntrustedChain,
                    format!(
                        "certificate `{}` of {target} is not trusted by {}: {}",
                        leaf.subject,
                        self.roots.origin,
                        describe_webpki_error(error)
                    ),
                )
            }
            Chain::OutsideValidity(path) => {
                let outcome = path
                    .iter()
                    .skip(1)
                    .find_map(|cert| outside_validity(cert, "chain certificate", &target, now));
                if let Some(outcome) = outcome {
                    return outcome;
                }
            }
            Chain::Verified(_) => {}
        }
        if let Some(name) = &self.expected_name {
            if let Err(message) = check_name(&presented.certs[0], name) {
                return Outcome::fail(
                    Reason::HostnameMismatch,
                    format!("certificate `{}` of {target} {message}", leaf.subject),
                );
            }
        }
        if let Some(version) = presented.version {
            if version < self.min_version {
                return Outcome::fail(
                    Reason::TlsVersionTooLow,
                    format!(
                        "{target} negotiated TLS {}, below `min_version` {}",
                        version.as_str(),
                        self.min_version.as_str()
                    ),
                );
            }
        }

        let days_left = (soonest.not_after - now) as f64 / SECONDS_PER_DAY;
        if days_left < self.min_days_left {
            return Outcome::fail(
                Reason::CertExpiring,
                format!(
                    "certificate `{}` of {target} expires in {days_left:.1} days, on {}, fewer than the {} days of `min_days_left`",
                    soonest.subject,
                    format_time(soonest.not_after),
                    self.min_days_left
                ),
            );
        }
        let version = presented
            .version
            .map(|version| format!(", TLS {}", version.as_str()))
            .unwrap_or_default();
        Outcome::pass(format!(
            "certificate `{}` of {target} is valid for {days_left:.1} more days, until {}; chain trusted by {}{version}",
            soonest.subject,
            format_time(soonest.not_after),
            self.roots.origin
        ))
    }

    /// Verifies the chain at `now`. When a certificate on it is outside its validity period, the
    /// chain is verified again as of the leaf's not-before time, so the path and its dates are
    /// still known.
    fn verify_chain(
        &self,
        certs: &[CertificateDer<'static>],
        now: i64,
        leaf_not_before: i64,
    ) -> Chain {
        let end_entity = match webpki::EndEntityCert::try_from(&certs[0]) {
            Ok(end_entity) => end_entity,
            Err(error) => return Chain::Untrusted(error),
        };
        let algorithms = provider().signature_verification_algorithms.all;
        let verify_at = |time: i64| {
            end_entity.verify_for_usage(
                algorithms,
                &self.roots.anchors,
                &certs[1..],
                unix_time(time),
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
        };
        match verify_at(now) {
            Ok(path) => Chain::Verified(self.path_certs(&path, certs)),
            Err(webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. }) => {
                match verify_at(leaf_not_before) {
                    Ok(path) => Chain::OutsideValidity(self.path_certs(&path, certs)),
                    Err(error) => Chain::Untrusted(error),
                }
            }
            Err(error) => Chain::Untrusted(error),
        }
    }

    /// Collects the certificates of a verified path, leaf first and root last. Certificates the
    /// server sent that are not on the path are left out.
    fn path_certs(
        &self,
        path: &webpki::VerifiedPath<'_>,
        certs: &[CertificateDer<'static>],
    ) -> Vec<CertInfo> {
        let mut infos = Vec::new();
        if let Ok(leaf) = CertInfo::parse(&certs[0]) {
            infos.push(leaf);
        }
        for intermediate in path.intermediate_certificates() {
            if let Ok(info) = CertInfo::parse(&intermediate.der()) {
                infos.push(info);
            }
        }
        let root = self
            .roots
            .anchors
            .iter()
            .position(|anchor| std::ptr::eq(anchor, path.anchor()));
        if let Some(index) = root {
            infos.push(self.roots.certs[index].clone());
        }
        infos
    }
}

/// The result of verifying the presented chain against the roots.
#[derive(Debug)]
enum Chain {
    /// A path to a root exists and every certificate on it is valid now.
    Verified(Vec<CertInfo>),
    /// A path to a root exists, but a certificate on it is outside its validity period now.
    OutsideValidity(Vec<CertInfo>),
    /// No path to a root could be verified.
    Untrusted(webpki::Error),
}

impl Chain {
    fn path(&self) -> Option<&[CertInfo]> {
        match self {
            Chain::Verified(path) | Chain::OutsideValidity(path) => Some(path),
            Chain::Untrusted(_) => None,
        }
    }
}

/// The certificates read in one run, and the TLS version when they came from a handshake.
#[derive(Debug)]
struct Presented {
    /// Never empty; the leaf is first.
    certs: Vec<CertificateDer<'static>>,
    version: Option<TlsVersion>,
}

impl CertInfo {
    fn parse(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|err| format!("is not a valid X.509 certificate: {err}"))?;
        let mut subject = cert.subject().to_string();
        if subject.is_empty() {
            subject = "(empty subject)".to_string();
        }
        Ok(CertInfo {
            subject,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

/// Returns a failing outcome when `cert` is expired or not yet valid at `now`.
fn outside_validity(cert: &CertInfo, what: &str, target: &str, now: i64) -> Option<Outcome> {
    let subject = &cert.subject;
    if now < cert.not_before {
        let days = (cert.not_before - now) as f64 / SECONDS_PER_DAY;
        return Some(Outcome::fail(
            Reason::CertNotYetValid,
            format!(
                "{what} `{subject}` of {target} is not valid until {}, {days:.1} days from now",
                format_time(cert.not_before)
            ),
        ));
    }
    if now > cert.not_after {
        let days = (now - cert.not_after) as f64 / SECONDS_PER_DAY;
        return Some(Outcome::fail(
            Reason::CertExpired,
            format!(
                "{what} `{subject}` of {target} expired on {}, {days:.1} days ago",
                format_time(cert.not_after)
            ),
        ));
    }
    None
}

/// Checks that the leaf is valid for `name`, and lists the names it has when it is not.
fn check_name(leaf: &CertificateDer<'_>, name: &ServerName<'_>) -> Result<(), String> {
    let end_entity = webpki::EndEntityCert::try_from(leaf)
        .map_err(|err| format!("cannot be read to compare its names: {err}"))?;
    if end_entity.verify_is_valid_for_subject_name(name).is_ok() {
        return Ok(());
    }
    let names = certificate_names(leaf);
    let listed = if names.is_empty() {
        "no subject alternative names".to_string()
    } else {
        let more = if names.len() > MAX_NAMES_SHOWN {
            ", ..."
        } else {
            ""
        };
        let shown: Vec<&str> = names
            .iter()
            .take(MAX_NAMES_SHOWN)
            .map(String::as_str)
            .collect();
        format!("only {}{more}", shown.join(", "))
    };
    Err(format!(
        "is not valid for `{}`; it names {listed}",
        name.to_str()
    ))
}

/// Collects the DNS names and IP addresses in a certificate's subject alternative names.
fn certificate_names(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(names)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => ip_from_bytes(bytes),
            _ => None,
        })
        .collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|octets| std::net::Ipv4Addr::from(octets).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|octets| std::net::Ipv6Addr::from(octets).to_string()),
        _ => None,
    }
}

fn describe_webpki_error(error: &webpki::Error) -> String {
    match error {
        webpki::Error::UnknownIssuer => {
            "its issuer is not among the trusted roots and no intermediate in the chain leads to one; include the intermediates or set `ca_file` to the issuing CA".to_string()
        }
        webpki::Error::CaUsedAsEndEntity => "the leaf is a CA certificate".to_string(),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the leaf is not allowed for server authentication".to_string()
        }
        other => format!("verification failed ({other:?})"),
    }
}

/// Connects, completes one handshake and records the chain the server presented.
async fn handshake(address: &str, sni: &ServerName<'static>) -> Result<Presented, Outcome> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|err| connect_error(address, &err))?;

    let provider = provider();
    let recorder = Arc::new(RecordingVerifier::new(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|err| {
            Outcome::error(
                Reason::InternalError,
                format!("cannot build TLS client: {err}"),
            )
        })?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let mut config = config;
    // Every run performs a full handshake, so the server presents its current chain.
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

    let mut tls = connector
        .connect(sni.clone(), stream)
        .await
        .map_err(|err| handshake_error(address, &err))?;
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .and_then(TlsVersion::from_rustls);
    // The close_notify is a courtesy to the server; its failure changes nothing measured.
    let _ = tls.shutdown().await;

    let certs = std::mem::take(&mut *recorder.chain.lock().unwrap_or_else(|e| e.into_inner()));
    if certs.is_empty() {
        return Err(Outcome::error(
            Reason::TlsError,
            format!("{address} completed the handshake without presenting a certificate"),
        ));
    }
    Ok(Presented { certs, version })
}

fn connect_error(address: &str, err: &std::io::Error) -> Outcome {
    if err.kind() == std::io::ErrorKind::ConnectionRefused {
        return Outcome::error(
            Reason::ConnectionRefused,
            format!("connection to {address} refused; check that the service is running and listening on that port"),
        );
    }
    Outcome::error(
        Reason::ConnectionFailed,
        format!("connection to {address} failed: {err}"),
    )
}

fn handshake_error(address: &str, err: &std::io::Error) -> Outcome {
    let tls_error = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let version_refused = matches!(
        tls_error,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::ProtocolVersion
        )) | Some(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13
                | rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
        ))
    );
    if version_refused {
        return Outcome::fail(
            Reason::TlsVersionTooLow,
            format!("{address} offers no TLS version of 1.2 or later, the versions the exporter negotiates"),
        );
    }
    match tls_error {
        Some(tls_error) => Outcome::error(
            Reason::TlsError,
            format!("TLS handshake with {address} failed: {tls_error}"),
        ),
        None => Outcome::error(
            Reason::TlsError,
            format!("TLS handshake with {address} failed: {err}"),
        ),
    }
}

/// Reads a PEM file or bundle: the leaf first, then any intermediates. Other PEM sections, such
/// as a private key in the same file, are skipped and never printed.
async fn read_pem_file(path: &Path) -> Result<Presented, Outcome> {
    let unreadable = |detail: String| {
        Outcome::error(
            Reason::FileUnreadable,
            format!("certificate file `{}` {detail}", path.display()),
        )
    };
    let bytes = file::read_limited_async(path.to_path_buf(), file::MAX_DOCUMENT_BYTES)
        .await
        .map_err(|err| unreadable(format!("cannot be read: {err}")))?;
    let certs = parse_pem_certs(&bytes).map_err(unreadable)?;
    Ok(Presented {
        certs,
        version: None,
    })
}

fn parse_pem_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    // The parser's error can quote a line of the file, which may belong to a private key, so the
    // message does not include it.
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| "is not valid PEM; it must hold `BEGIN CERTIFICATE` blocks".to_string())?;
    if certs.is_empty() {
        return Err("contains no `BEGIN CERTIFICATE` block".to_string());
    }
    Ok(certs)
}

/// Parses `min_version`, which defaults to 1.2 and has no meaning for a file.
fn parse_min_version(ctx: &mut BuildContext<'_>, spec: &TlsSpec) -> Option<TlsVersion> {
    if spec.min_version.is_some() && spec.file.is_some() {
        ctx.problem(
            "tls.min_version",
            "has no effect with `file`, because reading a file negotiates no TLS version; remove it or check the server with `address`",
        );
    }
    let Some(value) = &spec.min_version else {
        return Some(TlsVersion::V1_2);
    };
    let version = TlsVersion::parse(value);
    if version.is_none() {
        let text = match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        ctx.problem(
            "tls.min_version",
            format!("invalid TLS version `{text}`; use `1.2` or `1.3`, the versions the exporter can negotiate"),
        );
    }
    version
}

/// Loads the roots from `ca_file`, or the system roots without it, recording a problem on failure.
fn load_roots(ctx: &mut BuildContext<'_>, ca_file: Option<&Path>) -> Option<Arc<Roots>> {
    let roots = match ca_file {
        Some(path) => load_ca_file(&ctx.resolve_path(path)),
        None => load_system_roots(),
    };
    match roots {
        Ok(roots) => Some(roots),
        Err(message) => {
            ctx.problem("tls.ca_file", message);
            None
        }
    }
}

fn load_ca_file(path: &Path) -> Result<Arc<Roots>, String> {
    let bytes = file::read_limited(path, file::MAX_DOCUMENT_BYTES)
        .map_err(|err| format!("cannot read CA file `{}`: {err}", path.display()))?;
    let certs = parse_pem_certs(&bytes)
        .map_err(|detail| format!("CA file `{}` {detail}", path.display()))?;
    let roots = roots_from(certs, format!("CA file `{}`", path.display()));
    if roots.anchors.is_empty() {
        return Err(format!(
            "CA file `{}` contains no certificate usable as a root; it must hold X.509 v3 CA certificates in PEM",
            path.display()
        ));
    }
    Ok(Arc::new(roots))
}

/// The system roots, loaded once per process because parsing the bundle takes milliseconds per
/// check. A failed load is not kept, so the next configuration load tries again.
static SYSTEM_ROOTS: Mutex<Option<Arc<Roots>>> = Mutex::new(None);

/// Loads the system's roots with rustls-native-certs, which on Linux reads `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` when set and the distribution's bundle otherwise.
fn load_system_roots() -> Result<Arc<Roots>, String> {
    let mut cached = SYSTEM_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(roots) = cached.as_ref() {
        return Ok(roots.clone());
    }
    let loaded = rustls_native_certs::load_native_certs();
    let roots = roots_from(loaded.certs, "the system roots".to_string());
    if roots.anchors.is_empty() {
        return Err("no system root certificates found; install the ca-certificates package or set `ca_file` to the CA that issues the server's certificate".to_string());
    }
    let roots = Arc::new(roots);
    *cached = Some(roots.clone());
    Ok(roots)
}

/// Builds trust anchors, skipping certificates webpki cannot use as roots; system bundles can
/// contain a few.
fn roots_from(certs: Vec<CertificateDer<'static>>, origin: String) -> Roots {
    let mut anchors = Vec::new();
    let mut infos = Vec::new();
    for cert in &certs {
        let (Ok(anchor), Ok(info)) = (
            webpki::anchor_from_trusted_cert(cert),
            CertInfo::parse(cert),
        ) else {
            continue;
        };
        anchors.push(anchor.to_owned());
        infos.push(info);
    }
    Roots {
        origin,
        anchors,
        certs: infos,
    }
}

fn parse_server_name(ctx: &mut BuildContext<'_>, name: &str) -> Option<ServerName<'static>> {
    match ServerName::try_from(name.to_string()) {
        Ok(server_name) => Some(server_name),
        Err(_) => {
            ctx.problem(
                "tls.server_name",
                format!("invalid server name `{name}`; write a DNS name such as `api.example.com` or an IP address"),
            );
            None
        }
    }
}

/// Parses `host:port` and returns the host as a server name.
fn parse_address(ctx: &mut BuildContext<'_>, address: &str) -> Option<ServerName<'static>> {
    let invalid = |ctx: &mut BuildContext<'_>, detail: &str| {
        ctx.problem(
            "tls.address",
            format!("invalid address `{address}`: {detail}; write host and port, such as `api.example.com:443` or `[2001:db8::1]:443`"),
        );
        None
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return invalid(ctx, "the port is missing");
    };
    if !matches!(port.parse::<u16>(), Ok(port) if port > 0) {
        return invalid(ctx, "the port is not a number from 1 to 65535");
    }
    let host = match host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        Some(inner) => inner,
        None if host.contains(':') => return invalid(ctx, "an IPv6 address needs brackets"),
        None => host,
    };
    if host.is_empty() {
        return invalid(ctx, "the host is missing");
    }
    match ServerName::try_from(host.to_string()) {
        Ok(name) => Some(name),
        Err(_) => invalid(ctx, "the host is not a valid DNS name or IP address"),
    }
}

/// Returns the process-wide crypto provider, installing ring's on first use if none is set.
fn provider() -> Arc<CryptoProvider> {
    if let Some(provider) = CryptoProvider::get_default() {
        return provider.clone();
    }
    crate::install_crypto_provider();
    CryptoProvider::get_default()
        .cloned()
        .expect("a crypto provider was just installed")
}

/// A verifier that accepts any certificate chain and records it, while still checking the
/// handshake signature, which proves that the server has the leaf's private key. Trust is decided
/// later by [`TlsCheck::verify_chain`].
#[derive(Debug)]
pub(crate) struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl RecordingVerifier {
    /// A verifier that checks handshake signatures with `provider`'s algorithms.
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Self {
        RecordingVerifier {
            provider,
            chain: Mutex::new(Vec::new()),
        }
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|cert| cert.clone().into_owned()));
        *self.chain.lock().unwrap_or_else(|e| e.into_inner()) = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}

fn unix_time(seconds: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(seconds.max(0) as u64))
}

/// Formats a Unix timestamp as RFC 3339 in UTC, such as `2025-03-01T12:00:00Z`.
fn format_time(seconds: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    mod properties {
        use proptest::prelude::*;
        use rustls::pki_types::CertificateDer;

        use super::super::{parse_pem_certs, CertInfo};

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn certificate_parser_survives_any_bytes(
                der in prop::collection::vec(any::<u8>(), 0..2048),
            ) {
                let _ = CertInfo::parse(&CertificateDer::from(der));
            }

            #[test]
            fn pem_parser_survives_any_text(
                body in prop::collection::vec(any::<u8>(), 0..1024),
                wrapped in any::<bool>(),
            ) {
                let mut text = Vec::new();
                if wrapped {
                    text.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
                }
                text.extend_from_slice(&body);
                if wrapped {
                    text.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
                }
                let _ = parse_pem_certs(&text);
            }
        }
    }

    #[test]
    fn version_parses_strings_and_numbers() {
        let parse = |value: serde_json::Value| TlsVersion::parse(&value);
        assert_eq!(parse(serde_json::json!("1.3")), Some(TlsVersion::V1_3));
        assert_eq!(parse(serde_json::json!("TLSv1.2")), Some(TlsVersion::V1_2));
        assert_eq!(parse(serde_json::json!(1.2)), Some(TlsVersion::V1_2));
        assert_eq!(parse(serde_json::json!("1.1")), None);
        assert_eq!(parse(serde_json::json!(true)), None);
    }

    #[test]
    fn ip_bytes_format_both_families() {
        assert_eq!(ip_from_bytes(&[127, 0, 0, 1]).as_deref(), Some("127.0.0.1"));
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(ip_from_bytes(&v6).as_deref(), Some("::1"));
        assert_eq!(ip_from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn time_formats_as_rfc3339() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
