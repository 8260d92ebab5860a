//! rustls client configurations for the PostgreSQL `sslmode` values.
//!
//! The modes follow libpq: `require` encrypts without verifying the certificate, `verify-ca`
//! verifies the chain against the CA file but not the host name, and `verify-full` verifies both.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_platform_verifier::BuilderVerifierExt;

use super::SslMode;
// `sslmode=require` accepts any certificate but still checks the handshake signatures, so the
// session is encrypted with the key of the certificate the server presented; the tls kind's
// recording verifier does exactly that.
use crate::check::tls::RecordingVerifier;

/// The crypto provider the crate is built with.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(crate::crypto_provider())
}

/// Reads the PEM certificates of a CA file into a root store.
pub(super) fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let pem = crate::file::read_limited(path, crate::file::MAX_DOCUMENT_BYTES)
        .map_err(|err| format!("cannot read CA file `{}`: {err}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert =
            cert.map_err(|err| format!("CA file `{}` is not valid PEM: {err}", path.display()))?;
        roots.add(cert).map_err(|err| {
            format!(
                "CA file `{}` contains a certificate that cannot be used as a root: {err}",
                path.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "CA file `{}` contains no PEM certificate; it must hold one or more `BEGIN CERTIFICATE` blocks",
            path.display()
        ));
    }
    Ok(roots)
}

/// Builds the client configuration for `mode`. `roots` is required for `verify-ca`; for
/// `verify-full` without roots the operating system's trust store is used.
pub(super) fn client_config(
    mode: SslMode,
    roots: Option<RootCertStore>,
) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("cannot build TLS configuration: {err}"))?;
    let config = match (mode, roots) {
        (SslMode::Disable, _) => {
            return Err("TLS configuration requested with sslmode `disable`".to_string())
        }
        (SslMode::Require, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RecordingVerifier::new(provider)))
            .with_no_client_auth(),
        (SslMode::VerifyCa, Some(roots)) => {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| format!("cannot build certificate verifier: {err}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
                .with_no_client_auth()
        }
        (SslMode::VerifyCa, None) => {
            return Err("sslmode `verify-ca` needs `ca_file`".to_string());
        }
        (SslMode::VerifyFull, Some(roots)) => {
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (SslMode::VerifyFull, None) => builder
            .with_platform_verifier()
            .map_err(|err| format!("cannot load the system trust store: {err}"))?
            .with_no_client_auth(),
    };
    Ok(config)
}

/// `sslmode=verify-ca`: the chain must lead to the CA file, and the host name is not compared.
///
/// rustls' WebPKI verifier checks the chain before the name, so a name mismatch error means the
/// chain itself was valid.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
