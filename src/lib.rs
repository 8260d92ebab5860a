//! readiness-exporter turns a go-live checklist into live Prometheus metrics, a status page, a JSON
//! API and a deploy gate.
//!
//! The data flows one way:
//!
//! 1. [`config`] reads the YAML checklist, applies environment overrides and converts the whole
//!    file into validated types. Every problem in the file is reported at once, and a check that
//!    cannot be built is a configuration error, never a failing check.
//! 2. [`scheduler`] runs each check on its own interval with jitter, inside a deadline it enforces
//!    from outside, under a global concurrency limit, and never runs one check twice at once.
//! 3. Each run of a [`check`] produces an [`check::Outcome`]: pass, fail (evaluated and not met),
//!    or error (could not be evaluated), with a reason from a small fixed set. The scheduler stores
//!    it in [`state::State`].
//! 4. Every output reads that state and nothing else: [`metrics`] encodes it for `/metrics`,
//!    [`web`] serves the status page, JSON API and gate, and [`report`] formats the one-shot
//!    `check` command. No output ever triggers a probe.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod check;
pub mod config;
pub mod exporter;
pub mod file;
pub mod metrics;
pub mod report;
pub mod scheduler;
pub mod secret;
pub mod state;
pub mod vault;
pub mod web;

/// Installs [`crypto_provider`] as the process-wide default.
///
/// The crate compiles rustls with ring only, and reqwest and kube both panic when they
/// build a TLS client before a provider is installed. Calling this more than once is harmless.
pub fn install_crypto_provider() {
    // An error only means another caller installed a provider first.
    let _ = crypto_provider().install_default();
}

/// Returns rustls' ring provider with X25519 as the preferred key exchange group.
///
/// rustls 0.23.48 lists secp384r1 first for ring, so every TLS 1.3 handshake sent a P-384 key
/// share, and ring's P-384 arithmetic made that key exchange most of a check's CPU time. The
/// exporter opens a new connection for every run, so the group decides the cost of a TLS check.
/// X25519 is the first choice of Go, OpenSSL and browsers; secp256r1 and secp384r1 stay offered
/// for servers that lack it.
#[allow(
    deprecated,
    reason = "ring is the only provider built; aws-lc-rs needs a C toolchain"
)]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    provider
}

#[cfg(test)]
mod tests {
    use rustls::NamedGroup;

    #[test]
    fn provider_prefers_x25519() {
        let groups: Vec<NamedGroup> = super::crypto_provider()
            .kx_groups
            .iter()
            .map(|group| group.name())
            .collect();
        assert_eq!(
            groups,
            [
                NamedGroup::X25519,
                NamedGroup::secp256r1,
                NamedGroup::secp384r1
            ]
        );
    }
}
