//! The `helm_release` check kind: the newest revision of a Helm 3 release is deployed.
//!
//! Helm 3's default storage driver keeps each revision in a Secret of type
//! `helm.sh/release.v1` named `sh.helm.release.v1.<release>.v<revision>`, labelled `owner=helm`,
//! `name=<release>` and `version=<revision>`. Its `release` key holds base64 text of the
//! gzip-compressed release JSON (on top of the base64 the API applies to all Secret data). Only
//! the newest revision is decoded, and only the fields named below are read: the release's
//! values and manifest are never kept or shown.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde::Deserialize;

use super::{list_all, ApiCall, Connection};
use crate::check::http::truncate;
use crate::check::{format_duration, Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";

/// The most release JSON one run decompresses. A Secret holds at most 1 MiB, and gzip expands
/// data up to about 1000-fold, so one Secret could otherwise decompress to a gigabyte. A real
/// release (values and manifest included) is estimated to stay well below 64 MiB.
const MAX_RELEASE_JSON_BYTES: u64 = 64 * 1024 * 1024;

/// The newest revision number of the release.
pub static REVISION: MeasureFamily = MeasureFamily {
    name: "readiness_helm_release_revision",
    help: "Newest revision of the Helm release of a helm_release check",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// When the newest revision's operation started.
pub static LAST_DEPLOYED: MeasureFamily = MeasureFamily {
    name: "readiness_helm_release_last_deployed_timestamp",
    help: "Start of the install, upgrade or rollback of the newest Helm release revision, as a Unix timestamp",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&REVISION, &LAST_DEPLOYED];

/// The `helm_release` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelmReleaseSpec {
    namespace: String,
    release: String,
    pending_timeout: Option<String>,
    expect_chart_version: Option<String>,
}

/// A validated `helm_release` check.
#[derive(Debug)]
pub struct HelmReleaseCheck {
    connection: Arc<Connection>,
    namespace: String,
    release: String,
    pending_timeout: Duration,
    expect_chart_version: Option<String>,
}

/// The fields of Helm's release JSON this kind reads.
#[derive(Debug, Deserialize)]
struct Release {
    info: ReleaseInfo,
    chart: Option<Chart>,
    version: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct ReleaseInfo {
    status: String,
    last_deployed: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Chart {
    metadata: Option<ChartMetadata>,
}

#[derive(Debug, Deserialize)]
struct ChartMetadata {
    name: Option<String>,
    version: Option<String>,
}

impl HelmReleaseCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `helm_release` block, recording every problem in `ctx`.
    pub fn build(spec: HelmReleaseSpec, ctx: &mut BuildContext<'_>) -> Option<HelmReleaseCheck> {
        let before = ctx.problem_count();
        if spec.namespace.trim().is_empty() {
            ctx.problem(
                "helm_release.namespace",
                "namespace is empty; name the release's namespace",
            );
        }
        let valid_name = !spec.release.is_empty()
            && spec.release.len() <= 53
            && spec
                .release
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !valid_name {
            ctx.problem(
                "helm_release.release",
                format!("invalid release name `{}`; Helm names are 1 to 53 characters of a-z, 0-9, `-` and `.`", spec.release),
            );
        }
        let pending_timeout = match &spec.pending_timeout {
            Some(value) => ctx.duration("helm_release.pending_timeout", value),
            None => Some(DEFAULT_PENDING_TIMEOUT),
        };
        if ctx.problem_count() > before {
            return None;
        }
        Some(HelmReleaseCheck {
            connection: ctx.kubernetes.clone(),
            namespace: spec.namespace,
            release: spec.release,
            pending_timeout: pending_timeout?,
            expect_chart_version: spec.expect_chart_version,
        })
    }

    /// Lists the release's Secrets, decodes the newest revision and evaluates its status.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };
        let api: Api<Secret> = Api::namespaced(client, &self.namespace);
        let call = ApiCall::new::<Secret>("list", Some(&self.namespace));
        let params = ListParams::default().labels(&format!("owner=helm,name={}", self.release));
        let secrets = match list_all(&api, &call, &params).await {
            Ok(secrets) => secrets,
            Err(outcome) => return outcome,
        };
        let newest = secrets
            .iter()
            .filter(|secret| secret.type_.as_deref() == Some(RELEASE_SECRET_TYPE))
            .filter_map(|secret| {
                let revision = secret
                    .metadata
                    .labels
                    .as_ref()?
                    .get("version")?
                    .parse::<i64>()
                    .ok()?;
                Some((revision, secret))
            })
            .max_by_key(|(revision, _)| *revision);
        let Some((revision, secret)) = newest else {
            return Outcome::fail(
                Reason::ObjectNotFound,
                format!("no revision of Helm release `{}` in namespace `{}` (no Secret of type {RELEASE_SECRET_TYPE} labelled owner=helm,name={})", self.release, self.namespace, self.release),
            );
        };
        let secret_name = secret.metadata.name.clone().unwrap_or_default();
        let release = match decode(secret) {
            Ok(release) => release,
            Err(detail) => {
                return Outcome::error(
                    Reason::InvalidResponse,
                    format!("Secret `{secret_name}` does not hold a Helm 3 release: {detail}"),
                )
            }
        };
        let revision = release.version.unwrap_or(revision);
        self.evaluate(revision, &release)
    }

    fn evaluate(&self, revision: i64, release: &Release) -> Outcome {
        let mut measures = vec![Measure::new(&REVISION, revision as f64)];
        let deployed_at = release
            .info
            .last_deployed
            .as_deref()
            .and_then(|text| {
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map(SystemTime::from);
        if let Some(at) = deployed_at {
            if let Ok(since_epoch) = at.duration_since(SystemTime::UNIX_EPOCH) {
                measures.push(Measure::new(&LAST_DEPLOYED, since_epoch.as_secs_f64()));
            }
        }
        let chart = release
            .chart
            .as_ref()
            .and_then(|chart| chart.metadata.as_ref());
        let chart_text = match chart {
            Some(ChartMetadata {
                name: Some(name),
                version: Some(version),
            }) => format!("chart {}-{}", truncate(name, 80), truncate(version, 40)),
            _ => "chart unknown".to_string(),
        };
        let subject = format!(
            "release `{}` revision {revision} ({chart_text})",
            self.release
        );
        let status = release.info.status.as_str();
        let outcome = match status {
            "deployed" => self.deployed(&subject, chart),
            "failed" => Outcome::fail(
                Reason::ReleaseFailed,
                format!(
                    "{subject} failed; `helm status {} -n {}` shows why",
                    self.release, self.namespace
                ),
            ),
            "pending-install" | "pending-upgrade" | "pending-rollback" => {
                let age = deployed_at.and_then(|at| SystemTime::now().duration_since(at).ok());
                match age {
                    Some(age) if age > self.pending_timeout => Outcome::fail(
                        Reason::ReleaseStuck,
                        format!(
                            "{subject} has been {status} for {}, longer than {}; the Helm operation was probably interrupted",
                            format_duration(age),
                            format_duration(self.pending_timeout)
                        ),
                    ),
                    Some(age) => Outcome::fail(
                        Reason::RolloutInProgress,
                        format!("{subject} is {status}, started {} ago", format_duration(age)),
                    ),
                    None => Outcome::fail(
                        Reason::ReleaseStuck,
                        format!("{subject} is {status} and its start time is unknown"),
                    ),
                }
            }
            other => Outcome::fail(
                Reason::ReleaseNotDeployed,
                format!(
                    "{subject} has status `{}`, not `deployed`",
                    truncate(other, 40)
                ),
            ),
        };
        outcome.with_value(revision as f64).with_measures(measures)
    }

    fn deployed(&self, subject: &str, chart: Option<&ChartMetadata>) -> Outcome {
        let Some(expected) = &self.expect_chart_version else {
            return Outcome::pass(format!("{subject} is deployed"));
        };
        let actual = chart.and_then(|chart| chart.version.as_deref());
        if actual == Some(expected.as_str()) {
            Outcome::pass(format!("{subject} is deployed"))
        } else {
            Outcome::fail(
                Reason::ChartVersionMismatch,
                format!("{subject} is deployed, but chart version {expected} is expected"),
            )
        }
    }
}

/// Decodes the `release` key of a release Secret: base64, then gzip when the data starts with
/// the gzip magic bytes (Helm 3 always compresses), then JSON. The JSON is parsed while it is
/// decompressed, and at most [`MAX_RELEASE_JSON_BYTES`] of it are read.
fn decode(secret: &Secret) -> Result<Release, String> {
    decode_limited(secret, MAX_RELEASE_JSON_BYTES)
}

fn decode_limited(secret: &Secret, max_json_bytes: u64) -> Result<Release, String> {
    let data = secret
        .data
        .as_ref()
        .and_then(|data| data.get("release"))
        .ok_or("no `release` key")?;
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(&data.0)
        .map_err(|err| format!("the `release` key is not base64: {err}"))?;
    // Values and manifest are skipped unread, and the fields read hold no secrets, so a serde
    // error that quotes one is safe to show once it is cut to a short excerpt.
    let invalid = |err: serde_json::Error| {
        format!(
            "the release JSON lacks a field this check reads: {}",
            truncate(&err.to_string(), 200)
        )
    };
    if !compressed.starts_with(&[0x1f, 0x8b]) {
        return serde_json::from_slice(&compressed).map_err(invalid);
    }
    let mut json = flate2::read::GzDecoder::new(compressed.as_slice()).take(max_json_bytes);
    let parsed = serde_json::from_reader(std::io::BufReader::new(&mut json));
    if json.limit() == 0 {
        return Err(format!(
            "the release JSON is larger than {max_json_bytes} bytes once decompressed"
        ));
    }
    parsed.map_err(|err| match err.classify() {
        serde_json::error::Category::Io => format!("the `release` key is not valid gzip: {err}"),
        _ => invalid(err),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;

    use k8s_openapi::ByteString;
    use proptest::prelude::*;

    use super::*;

    fn secret_with_release(release: Vec<u8>) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                "release".to_string(),
                ByteString(release),
            )])),
            ..Secret::default()
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn base64(bytes: &[u8]) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes()
    }

    fn check() -> HelmReleaseCheck {
        HelmReleaseCheck {
            connection: Arc::new(Connection::default()),
            namespace: "shop".to_string(),
            release: "shop".to_string(),
            pending_timeout: DEFAULT_PENDING_TIMEOUT,
            expect_chart_version: Some("1.4.2".to_string()),
        }
    }

    #[test]
    fn gzip_bomb_stops_at_limit() {
        // 4 MiB of spaces compress to about 4 KiB. A limit of 1 MiB stops the decoder after
        // 1 MiB instead of holding everything the gzip stream expands to.
        let mut json = b"{\"info\": {\"status\": \"deployed\"}".to_vec();
        json.resize(4 << 20, b' ');
        json.push(b'}');
        let secret = secret_with_release(base64(&gzip(&json)));

        let err = decode_limited(&secret, 1 << 20).unwrap_err();
        assert_eq!(
            err,
            "the release JSON is larger than 1048576 bytes once decompressed"
        );
        assert!(decode_limited(&secret, 8 << 20).is_ok());
    }

    #[test]
    fn long_field_is_quoted_in_excerpt() {
        let json = format!("{{\"info\": \"{}\"}}", "x".repeat(1 << 16));
        let secret = secret_with_release(base64(&gzip(json.as_bytes())));
        let err = decode(&secret).unwrap_err();
        assert!(err.len() < 400, "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn decode_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), layers in 0u8..3) {
            let release = match layers {
                0 => bytes,
                1 => base64(&bytes),
                _ => base64(&gzip(&bytes)),
            };
            if let Err(err) = decode(&secret_with_release(release)) {
                prop_assert!(err.chars().count() < 400, "{}", err);
            }
        }

        #[test]
        fn evaluate_bounds_quoted_fields(
            status in "\\PC{0,20}|x{1000,5000}",
            name in "\\PC{0,20}|n{1000,5000}",
            version in "\\PC{0,20}|v{1000,5000}",
            deployed in "\\PC{0,30}|2026-01-01T00:00:00Z|0001-01-01T00:00:00Z|9999-12-31T23:59:59Z",
            revision in any::<i64>(),
        ) {
            let release = Release {
                info: ReleaseInfo { status, last_deployed: Some(deployed) },
                chart: Some(Chart { metadata: Some(ChartMetadata { name: Some(name), version: Some(version) }) }),
                version: Some(revision),
            };
            let outcome = check().evaluate(revision, &release);
            prop_assert!(outcome.message.chars().count() < 600, "{}", outcome.message);
        }
    }
}
