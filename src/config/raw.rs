//! The serde mirror of the configuration file, before validation.
//!
//! Durations and URLs stay strings here so that validation can name the exact bad value.

use serde::Deserialize;

use crate::check::{dns, http, tls};

/// The `global` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    pub listen_address: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub jitter: Option<String>,
    pub max_concurrent_checks: Option<i64>,
    pub external_url: Option<String>,
}

/// One item of the `checks` list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub id: String,
    pub title: String,
    pub section: String,
    pub severity: super::Severity,
    pub blocking: Option<bool>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub jitter: Option<String>,
    pub runbook_url: Option<String>,
    pub http: Option<http::HttpSpec>,
    pub tls: Option<tls::TlsSpec>,
    pub dns: Option<dns::DnsSpec>,
}

impl RawCheck {
    /// The names of the kinds this item sets. A valid check sets exactly one.
    pub fn kinds_set(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        if self.http.is_some() {
            kinds.push("http");
        }
        if self.tls.is_some() {
            kinds.push("tls");
        }
        if self.dns.is_some() {
            kinds.push("dns");
        }
        kinds
    }
}

/// Every kind name a check may use, in the order the documentation lists them.
pub const KIND_NAMES: &[&str] = &["http", "tls", "dns"];
