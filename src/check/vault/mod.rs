//! Vault check kinds: node health, auth methods, policies, secrets engines and KV secrets.
//!
//! Every kind except `vault_health` talks to Vault through the configuration's shared
//! [`Vault`] connection, which owns the exporter's token. `vault_health` reads the unauthenticated
//! `sys/health` endpoint of each node directly, because the status code carries the node's state.

pub mod health;
pub mod secret;
pub mod sys;

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Outcome;
use crate::vault::{request_error, ApiError, Vault};

/// Returns the outcome of a failed Vault request for `what` (such as ``"`sys/auth`"``). A 403
/// is split into a missing permission and a rejected token.
async fn request_failed(vault: &Vault, what: &str, err: &ApiError) -> Outcome {
    let error = request_error(vault.address(), &format!("reading {what}"), err);
    match error.status() {
        Some(403) => vault.forbidden_outcome(what).await,
        _ => error.outcome(),
    }
}

/// One enabled auth method or secrets engine in `sys/auth` or `sys/mounts`.
#[derive(Debug, Deserialize)]
struct MountEntry {
    #[serde(rename = "type")]
    mount_type: String,
    #[serde(default)]
    options: Option<BTreeMap<String, serde_json::Value>>,
}

impl MountEntry {
    /// Returns an option's value as text, whether the answer writes it as a string or a number.
    fn option(&self, name: &str) -> Option<String> {
        match self.options.as_ref()?.get(name)? {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
}

/// Normalises a mount or auth path to Vault's form in `sys/mounts` and `sys/auth`: no leading
/// slash, one trailing slash.
fn mount_key(path: &str) -> String {
    format!("{}/", path.trim_matches('/'))
}
