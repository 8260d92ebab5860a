//! The `vault_secret` check kind: a KV version 2 secret exists, its latest version is neither
//! deleted nor destroyed, and it was written recently enough.
//!
//! The check reads the secret's metadata (`MOUNT/metadata/PATH`) only, so the exporter's policy
//! needs no read access to the value and the value never reaches the exporter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::request_failed;
use crate::check::{format_duration, Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;
use crate::vault::Vault;

const DEFAULT_MOUNT: &str = "secret";

/// When the secret's current version was written.
pub static UPDATED: MeasureFamily = MeasureFamily {
    name: "readiness_vault_secret_updated_timestamp",
    help: "When the current version of a KV secret was written",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The secret's current version number.
pub static CURRENT_VERSION: MeasureFamily = MeasureFamily {
    name: "readiness_vault_secret_current_version",
    help: "Current version number of a KV secret",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&UPDATED, &CURRENT_VERSION];

/// The fields of a KV version 2 secret's metadata that the check reads.
#[derive(Debug, Deserialize)]
struct Metadata {
    current_version: u64,
    #[serde(default)]
    versions: HashMap<String, VersionMetadata>,
}

#[derive(Debug, Deserialize)]
struct VersionMetadata {
    #[serde(default)]
    created_time: String,
    #[serde(default)]
    deletion_time: String,
    #[serde(default)]
    destroyed: bool,
}

/// The `vault_secret` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    mount: Option<String>,
    path: String,
    max_age: Option<String>,
}

/// A validated `vault_secret` check.
#[derive(Debug)]
pub struct SecretCheck {
    vault: Arc<Vault>,
    mount: String,
    path: String,
    max_age: Option<Duration>,
}

impl SecretCheck {
    /// Validates the `vault_secret` block, recording every problem in `ctx`.
    pub fn build(spec: SecretSpec, ctx: &mut BuildContext<'_>) -> Option<SecretCheck> {
        let mount = spec
            .mount
            .unwrap_or_else(|| DEFAULT_MOUNT.to_string())
            .trim_matches('/')
            .to_string();
        if mount.is_empty() {
            ctx.problem(
                "vault_secret.mount",
                "mount is empty; write the KV version 2 mount path, or remove the key to use `secret`",
            );
        }
        let path = spec.path.trim_matches('/').to_string();
        if path.is_empty() {
            ctx.problem(
                "vault_secret.path",
                "path is empty; write the secret's path inside the mount, such as `payments/db`",
            );
        }
        let inside = crate::vault::path_inside_mount(&mount, &path);
        if let Some(inside) = inside {
            ctx.problem(
                "vault_secret.path",
                format!("`{path}` is the API path; write the secret's path inside the mount, `{inside}`"),
            );
        }
        let max_age = spec
            .max_age
            .as_ref()
            .and_then(|value| ctx.duration("vault_secret.max_age", value));
        let vault = ctx.vault("vault_secret");
        if mount.is_empty()
            || path.is_empty()
            || inside.is_some()
            || (spec.max_age.is_some() && max_age.is_none())
        {
            return None;
        }
        Some(SecretCheck {
            vault: vault?,
            mount,
            path,
            max_age,
        })
    }

    /// Reads the secret's metadata and evaluates its latest version.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let location = format!("`{}/metadata/{}`", self.mount, self.path);
        let metadata = match self
            .vault
            .read::<Metadata>(&format!("{}/metadata/{}", self.mount, self.path))
            .await
        {
            Err(login) => return login.outcome(),
            Ok(Err(err)) if err.status() == Some(404) => {
                return Outcome::fail(
                    Reason::VaultSecretMissing,
                    format!(
                        "no secret exists at {location}; check that `{}` is a KV version 2 mount and that the path is inside it{}",
                        self.mount,
                        self.mount_name_hint()
                    ),
                );
            }
            Ok(Err(err)) => return request_failed(&self.vault, &location, &err).await,
            Ok(Ok(metadata)) => metadata,
        };

        let current = metadata.current_version;
        let latest = metadata.versions.get(&current.to_string());
        let Some(latest) = latest.filter(|_| current > 0) else {
            return Outcome::fail(
                Reason::VaultSecretMissing,
                format!("the secret at {location} has metadata but no version"),
            );
        };
        let mut measures = vec![Measure::new(&CURRENT_VERSION, current as f64)];
        let written = parse_time(&latest.created_time);
        if let Some(written) = written {
            measures.push(Measure::new(&UPDATED, unix_seconds(written)));
        }
        let finish = |outcome: Outcome| outcome.with_measures(measures.clone());

        if latest.destroyed {
            return finish(Outcome::fail(
                Reason::VaultSecretDestroyed,
                format!("the latest version ({current}) of the secret at {location} is destroyed; write a new version"),
            ));
        }
        // A deletion time in the future is a scheduled deletion (`delete_version_after`), not yet
        // in effect.
        let deleted = parse_time(&latest.deletion_time).is_some_and(|at| at <= SystemTime::now());
        if deleted {
            return finish(Outcome::fail(
                Reason::VaultSecretDeleted,
                format!("the latest version ({current}) of the secret at {location} is deleted; undelete it or write a new version"),
            ));
        }

        let Some(written) = written else {
            return finish(Outcome::error(
                Reason::InvalidResponse,
                format!(
                    "the creation time `{}` of version {current} at {location} is not an RFC 3339 timestamp",
                    crate::check::http::truncate(&latest.created_time, 40)
                ),
            ));
        };
        let age = SystemTime::now()
            .duration_since(written)
            .unwrap_or_default();
        if let Some(max_age) = self.max_age {
            if age > max_age {
                return finish(Outcome::fail(
                    Reason::TooOld,
                    format!(
                        "version {current} of the secret at {location} was written {} ago, more than `max_age` ({}); rotate the secret",
                        format_duration(Duration::from_secs(age.as_secs())),
                        format_duration(max_age)
                    ),
                ));
            }
        }
        finish(Outcome::pass(format!(
            "version {current} of the secret at {location} was written {} ago",
            format_duration(Duration::from_secs(age.as_secs()))
        )))
        .with_value(current as f64)
    }
}

impl SecretCheck {
    /// Returns advice for a path that repeats the mount's name, a common slip.
    fn mount_name_hint(&self) -> String {
        match self
            .path
            .strip_prefix(&self.mount)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(inside) => format!(" (without the mount's name: `{inside}`)"),
            None => String::new(),
        }
    }
}

/// Parses Vault's RFC 3339 timestamps; an empty string (no deletion) is `None`.
fn parse_time(text: &str) -> Option<SystemTime> {
    if text.is_empty() {
        return None;
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or(0.0)
}
