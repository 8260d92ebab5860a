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

/// Installs rustls' ring provider as the process-wide default.
///
/// The crate compiles rustls with ring only, and reqwest, kube and vaultrs all panic when they
/// build a TLS client before a provider is installed. Calling this more than once is harmless.
#[allow(
    deprecated,
    reason = "ring is the only provider built; aws-lc-rs needs a C toolchain"
)]
pub fn install_crypto_provider() {
    // An error only means another caller installed a provider first.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
