//! Protected endpoints: TLS, mutual TLS and HTTP basic auth, configured by a web configuration
//! file in the format of Prometheus' exporter-toolkit.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients-ca.crt
//!   min_version: TLS12
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt hash, e.g. from `htpasswd -nbB -C 10 user password`
//! ```
//!
//! Relative paths are resolved against the directory of the web configuration file. The
//! settings apply to every endpoint: `/metrics`, the status page, the JSON API, the gate,
//! health and reload.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The first byte of every TLS record that opens a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Errors from [`WebConfig::load`].
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// A file could not be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The web configuration file is not valid YAML or has unknown keys.
    #[error("web configuration file `{path}` is invalid: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value in the web configuration file is invalid.
    #[error("web configuration file `{path}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The problem, with the bad value and its fix.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTlsServerConfig>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsServerConfig {
    cert_file: String,
    key_file: String,
    client_ca_file: Option<String>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
}

/// The validated web configuration: an optional TLS server configuration and the users of
/// basic auth with their bcrypt hashes.
#[derive(Clone, Default)]
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    users: BTreeMap<String, String>,
    /// A bcrypt hash of a random password at the users' cost. Unknown users are checked against
    /// it, so a wrong user name takes about as long as a wrong password.
    unknown_user_hash: String,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Whether a request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// No basic auth is configured, or the credentials match.
    Allowed,
    /// Credentials are missing, malformed or wrong.
    Denied,
}

impl WebConfig {
    /// A configuration that serves plain HTTP without authentication.
    pub fn none() -> Self {
        WebConfig::default()
    }

    /// Loads and validates a web configuration file, reading the certificates it names.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawWebConfig =
            serde_saphyr::from_str(&text).map_err(|err| WebConfigError::Syntax {
                path: path.to_path_buf(),
                message: format!(
                    "{err}; supported keys are tls_server_config (cert_file, key_file, \
                     client_ca_file, client_auth_type, min_version) and basic_auth_users"
                ),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let invalid = |message: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };

        let users = raw.basic_auth_users.unwrap_or_default();
        let mut cost = None;
        for (user, hash) in &users {
            match bcrypt::HashParts::from_str(hash) {
                Ok(parts) => cost = cost.or(Some(parts.get_cost())),
                Err(_) => {
                    return Err(invalid(format!(
                        "basic_auth_users.{user} is not a bcrypt hash; generate one with \
                         `htpasswd -nbB -C 10 {user} PASSWORD` and use the part after the colon"
                    )))
                }
            }
        }
        let unknown_user_hash = match cost {
            Some(cost) => bcrypt::hash(rand::random::<[u8; 32]>(), cost)
                .map_err(|err| invalid(format!("cannot prepare basic auth: {err}")))?,
            None => String::new(),
        };

        let tls = match raw.tls_server_config {
            Some(tls) => Some(Arc::new(server_config(&tls, base).map_err(invalid)?)),
            None => None,
        };
        Ok(WebConfig {
            tls,
            users,
            unknown_user_hash,
        })
    }

    /// Whether the listener serves TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether requests need basic auth credentials.
    pub fn basic_auth_enabled(&self) -> bool {
        !self.users.is_empty()
    }

    pub(crate) fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone().map(tokio_rustls::TlsAcceptor::from)
    }

    /// Checks the `Authorization` header value against the configured users.
    ///
    /// bcrypt is slow on purpose, so verification runs on the blocking thread pool.
    pub async fn authorize(&self, header: Option<&http::HeaderValue>) -> Authorization {
        if self.users.is_empty() {
            return Authorization::Allowed;
        }
        let Some((user, password)) = header.and_then(basic_credentials) else {
            return Authorization::Denied;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.unknown_user_hash.clone(), false),
        };
        let matches = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if matches && known {
            Authorization::Allowed
        } else {
            Authorization::Denied
        }
    }

    /// The `WWW-Authenticate` challenge for denied requests, with the realm `readiness-exporter`.
    pub fn challenge() -> http::HeaderValue {
        http::HeaderValue::from_static("Basic realm=\"readiness-exporter\"")
    }
}

/// Decodes `Basic base64(user:password)`.
fn basic_credentials(header: &http::HeaderValue) -> Option<(String, String)> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let path = Path::new(file);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn server_config(raw: &RawTlsServerConfig, base: &Path) -> Result<rustls::ServerConfig, String> {
    let cert_path = resolve(base, &raw.cert_file);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|err| {
            format!(
                "tls_server_config.cert_file `{}` cannot be read as PEM certificates: {err}",
                cert_path.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file `{}` contains no certificate",
            cert_path.display()
        ));
    }
    let key_path = resolve(base, &raw.key_file);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|err| {
        format!(
            "tls_server_config.key_file `{}` cannot be read as a PEM private key: {err}",
            key_path.display()
        )
    })?;

    let versions: &[&rustls::SupportedProtocolVersion] = match raw.min_version.as_deref() {
        None | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(format!(
                "tls_server_config.min_version `{other}` is not supported; use TLS12 or TLS13"
            ))
        }
    };
    let builder = rustls::ServerConfig::builder_with_protocol_versions(versions);

    let auth_type = raw
        .client_auth_type
        .as_deref()
        .unwrap_or(match raw.client_ca_file {
            Some(_) => "RequireAndVerifyClientCert",
            None => "NoClientCert",
        });
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let Some(ca_file) = &raw.client_ca_file else {
                return Err(format!(
                    "tls_server_config.client_auth_type `{auth_type}` needs client_ca_file"
                ));
            };
            let roots = client_roots(&resolve(base, ca_file))?;
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
            let verifier = if auth_type == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|err| format!("tls_server_config.client_ca_file is unusable: {err}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type `{other}` is not supported; use \
                 NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ))
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|err| {
        format!("tls_server_config: the certificate and key do not form a usable pair: {err}")
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn client_roots(path: &Path) -> Result<RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|err| {
            format!(
                "tls_server_config.client_ca_file `{}` cannot be read as PEM certificates: {err}",
                path.display()
            )
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "tls_server_config.client_ca_file `{}` contains no usable CA certificate",
            path.display()
        ));
    }
    Ok(roots)
}

/// Sends a 400 response to a client that sent plain HTTP to the TLS listener, as Go's servers do,
/// instead of closing the connection without a response. Returns true when it did.
pub(crate) async fn reject_plain_http(stream: &mut TcpStream) -> bool {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] != TLS_HANDSHAKE_RECORD => {
            let body = "Client sent an HTTP request to an HTTPS server.\n";
            let response = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        let header = http::HeaderValue::from_static("Basic dXNlcjpwYTpzcw==");
        assert_eq!(
            basic_credentials(&header),
            Some(("user".to_string(), "pa:ss".to_string()))
        );
    }

    #[test]
    fn other_schemes_are_not_credentials() {
        let header = http::HeaderValue::from_static("Bearer dXNlcjpwYXNz");
        assert_eq!(basic_credentials(&header), None);
    }

    #[test]
    fn challenge_names_the_realm() {
        assert_eq!(WebConfig::challenge(), "Basic realm=\"readiness-exporter\"");
    }
}
