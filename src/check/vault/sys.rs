//! The `vault_auth_method`, `vault_policy` and `vault_mount` check kinds, read from Vault's
//! `sys/auth`, `sys/policy` and `sys/mounts` endpoints with the exporter's token.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use std::collections::BTreeMap;

use super::{mount_key, request_failed, MountEntry};
use crate::check::{Outcome, Reason};
use crate::config::BuildContext;
use crate::vault::Vault;

/// The `vault_auth_method` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthMethodSpec {
    path: String,
    #[serde(rename = "type")]
    method_type: String,
}

/// A validated `vault_auth_method` check.
#[derive(Debug)]
pub struct AuthMethodCheck {
    vault: Arc<Vault>,
    path: String,
    method_type: String,
}

impl AuthMethodCheck {
    /// Validates the `vault_auth_method` block, recording every problem in `ctx`.
    pub fn build(spec: AuthMethodSpec, ctx: &mut BuildContext<'_>) -> Option<AuthMethodCheck> {
        let path = non_empty_path(ctx, "vault_auth_method.path", &spec.path, "kubernetes");
        let method_type = non_empty(
            ctx,
            "vault_auth_method.type",
            &spec.method_type,
            "the auth method type, such as `kubernetes`",
        );
        let vault = ctx.vault("vault_auth_method");
        Some(AuthMethodCheck {
            vault: vault?,
            path: path?,
            method_type: method_type?,
        })
    }

    /// Lists the enabled auth methods and looks for the configured one.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let methods = match self
            .vault
            .read::<BTreeMap<String, MountEntry>>("sys/auth")
            .await
        {
            Err(login) => return login.outcome(),
            Ok(Err(err)) => return request_failed(&self.vault, "`sys/auth`", &err).await,
            Ok(Ok(methods)) => methods,
        };
        let Some(method) = methods.get(&self.path) else {
            let enabled: BTreeSet<&str> = methods.keys().map(String::as_str).collect();
            return Outcome::fail(
                Reason::VaultAuthMethodMissing,
                format!(
                    "no auth method is enabled at `{}`; enabled: {}",
                    self.path,
                    join(enabled)
                ),
            );
        };
        if method.mount_type != self.method_type {
            return Outcome::fail(
                Reason::VaultWrongType,
                format!(
                    "the auth method at `{}` has type `{}`, expected `{}`",
                    self.path,
                    shown(&method.mount_type),
                    self.method_type
                ),
            );
        }
        Outcome::pass(format!(
            "auth method `{}` is enabled at `{}`",
            self.method_type, self.path
        ))
    }
}

/// The response of `sys/policy`: the policy names under `policies`, or under `keys`.
#[derive(Debug, Deserialize)]
struct PolicyList {
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
}

impl PolicyList {
    fn names(self) -> Vec<String> {
        if self.policies.is_empty() {
            self.keys
        } else {
            self.policies
        }
    }
}

/// The `vault_policy` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    policies: Vec<String>,
}

/// A validated `vault_policy` check.
#[derive(Debug)]
pub struct PolicyCheck {
    vault: Arc<Vault>,
    policies: Vec<String>,
}

impl PolicyCheck {
    /// Validates the `vault_policy` block, recording every problem in `ctx`.
    pub fn build(spec: PolicySpec, ctx: &mut BuildContext<'_>) -> Option<PolicyCheck> {
        if spec.policies.is_empty() {
            ctx.problem(
                "vault_policy.policies",
                "list is empty; name at least one ACL policy, such as `[app-payments-read]`",
            );
        }
        for (i, name) in spec.policies.iter().enumerate() {
            if name.trim().is_empty() {
                ctx.problem(
                    format!("vault_policy.policies[{i}]"),
                    "policy name is empty; write the name as `bao policy list` or `vault policy list` prints it",
                );
            }
        }
        let vault = ctx.vault("vault_policy");
        if spec.policies.is_empty() || spec.policies.iter().any(|name| name.trim().is_empty()) {
            return None;
        }
        Some(PolicyCheck {
            vault: vault?,
            policies: spec.policies,
        })
    }

    /// Lists the ACL policies and looks for every configured name.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let existing = match self.vault.read::<PolicyList>("sys/policy").await {
            Err(login) => return login.outcome(),
            Ok(Err(err)) => return request_failed(&self.vault, "`sys/policy`", &err).await,
            Ok(Ok(list)) => list.names(),
        };
        let existing: BTreeSet<&str> = existing.iter().map(String::as_str).collect();
        let missing: Vec<&str> = self
            .policies
            .iter()
            .map(String::as_str)
            .filter(|name| !existing.contains(name))
            .collect();
        let found = (self.policies.len() - missing.len()) as f64;
        if !missing.is_empty() {
            return Outcome::fail(
                Reason::VaultPolicyMissing,
                format!(
                    "{} of {} ACL policies missing: {}",
                    missing.len(),
                    self.policies.len(),
                    missing.join(", ")
                ),
            )
            .with_value(found);
        }
        Outcome::pass(format!("all {} ACL policies exist", self.policies.len())).with_value(found)
    }
}

/// The `vault_mount` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    path: String,
    #[serde(rename = "type")]
    engine_type: String,
    version: Option<serde_json::Value>,
}

/// A validated `vault_mount` check.
#[derive(Debug)]
pub struct MountCheck {
    vault: Arc<Vault>,
    path: String,
    engine_type: String,
    version: Option<String>,
}

impl MountCheck {
    /// Validates the `vault_mount` block, recording every problem in `ctx`.
    pub fn build(spec: MountSpec, ctx: &mut BuildContext<'_>) -> Option<MountCheck> {
        let path = non_empty_path(ctx, "vault_mount.path", &spec.path, "secret");
        let engine_type = non_empty(
            ctx,
            "vault_mount.type",
            &spec.engine_type,
            "the secrets engine type, such as `kv`",
        );
        let version = match spec.version {
            None => Some(None),
            Some(serde_json::Value::Number(number)) if number.is_u64() => {
                Some(Some(number.to_string()))
            }
            Some(serde_json::Value::String(text))
                if !text.trim().is_empty() && text.trim().bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(Some(text.trim().to_string()))
            }
            Some(other) => {
                let shown = match &other {
                    serde_json::Value::String(text) => text.clone(),
                    value => value.to_string(),
                };
                ctx.problem(
                    "vault_mount.version",
                    format!("invalid version `{shown}`; write the engine version from the mount's options as a number, such as `2` for KV version 2"),
                );
                None
            }
        };
        let vault = ctx.vault("vault_mount");
        Some(MountCheck {
            vault: vault?,
            path: path?,
            engine_type: engine_type?,
            version: version?,
        })
    }

    /// Lists the secrets engines and compares the one at the configured path.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let mounts = match self
            .vault
            .read::<BTreeMap<String, MountEntry>>("sys/mounts")
            .await
        {
            Err(login) => return login.outcome(),
            Ok(Err(err)) => return request_failed(&self.vault, "`sys/mounts`", &err).await,
            Ok(Ok(mounts)) => mounts,
        };
        let Some(mount) = mounts.get(&self.path) else {
            let mounted: BTreeSet<&str> = mounts.keys().map(String::as_str).collect();
            return Outcome::fail(
                Reason::VaultMountMissing,
                format!(
                    "no secrets engine is mounted at `{}`; mounted: {}",
                    self.path,
                    join(mounted)
                ),
            );
        };
        if mount.mount_type != self.engine_type {
            return Outcome::fail(
                Reason::VaultWrongType,
                format!(
                    "the secrets engine at `{}` has type `{}`, expected `{}`",
                    self.path,
                    shown(&mount.mount_type),
                    self.engine_type
                ),
            );
        }
        // A KV mount without a `version` option is KV version 1.
        let actual_version = mount
            .option("version")
            .or_else(|| (mount.mount_type == "kv").then(|| "1".to_string()));
        if let Some(expected) = &self.version {
            if actual_version.as_deref() != Some(expected.as_str()) {
                let actual = actual_version.as_deref().map_or("none".to_string(), shown);
                return Outcome::fail(
                    Reason::VaultWrongVersion,
                    format!(
                        "the `{}` engine at `{}` has version `{actual}`, expected `{expected}`",
                        self.engine_type, self.path
                    ),
                );
            }
        }
        let version = actual_version
            .map(|version| format!(" version {}", shown(&version)))
            .unwrap_or_default();
        Outcome::pass(format!(
            "secrets engine `{}`{version} is mounted at `{}`",
            self.engine_type, self.path
        ))
    }
}

fn non_empty_path(
    ctx: &mut BuildContext<'_>,
    field: &str,
    path: &str,
    example: &str,
) -> Option<String> {
    if path.trim_matches('/').trim().is_empty() {
        ctx.problem(
            field,
            format!("path is empty; write the path it is enabled at, such as `{example}`"),
        );
        return None;
    }
    Some(mount_key(path.trim()))
}

/// Validates a type name: Vault writes `kv`, `kubernetes` and the like in lowercase.
fn non_empty(ctx: &mut BuildContext<'_>, field: &str, value: &str, what: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        ctx.problem(field, format!("value is empty; write {what}"));
        return None;
    }
    if value.chars().any(char::is_uppercase) {
        ctx.problem(
            field,
            format!(
                "type `{value}` has capitals, but Vault's type names are lowercase; write `{}`",
                value.to_lowercase()
            ),
        );
        return None;
    }
    Some(value.to_string())
}

/// The maximum number of names a message lists before it counts the rest.
const LISTED_NAMES: usize = 20;

/// Returns a value from Vault's response, truncated to fit in a message.
fn shown(value: &str) -> String {
    crate::check::http::truncate(value, 100)
}

/// Lists the first [`LISTED_NAMES`] names and counts the rest.
fn join(names: BTreeSet<&str>) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let total = names.len();
    let mut listed: Vec<String> = names.into_iter().take(LISTED_NAMES).map(shown).collect();
    if total > LISTED_NAMES {
        listed.push(format!("and {} more", total - LISTED_NAMES));
    }
    listed.join(", ")
}
