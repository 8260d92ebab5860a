//! The `vault_health` check kind: the seal, HA and version state of one or more Vault nodes.
//!
//! Each node's unauthenticated `sys/health` endpoint is read with the default status codes, and
//! the state is decided from the code and the JSON body together:
//!
//! | code | state | counts as a serving member |
//! |---|---|---|
//! | 200 | active | yes |
//! | 429 | unsealed standby | yes |
//! | 473 | performance standby | yes |
//! | 472 | disaster-recovery secondary, serves no clients | no |
//! | 474 | standby that cannot reach the active node | no |
//! | 501 | not initialized | no |
//! | 503 | sealed | no |
//!
//! Any other code, or a body that contradicts its code, is an unknown state and never healthy.
//! The request is unauthenticated and goes to each node's own address, not through the
//! exporter's Vault connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Deserialize;
use url::Url;

use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;
use crate::vault::Vault;

/// The largest `sys/health` body read; a real one is a few hundred bytes.
const MAX_BODY_BYTES: u64 = 64 * 1024;

/// The largest `sys/ha-status` body read: about 300 bytes per node, for clusters of thousands.
const MAX_HA_STATUS_BYTES: u64 = 1024 * 1024;

/// Nodes the check read.
pub static NODES: MeasureFamily = MeasureFamily {
    name: "readiness_vault_nodes",
    help: "Vault nodes a vault_health check reads",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Nodes that serve as members: active, standby and performance standby.
pub static UNSEALED: MeasureFamily = MeasureFamily {
    name: "readiness_vault_unsealed_nodes",
    help: "Vault nodes that are unsealed and serve as active, standby or performance standby",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Nodes that responded sealed.
pub static SEALED: MeasureFamily = MeasureFamily {
    name: "readiness_vault_sealed_nodes",
    help: "Vault nodes that responded sealed (503)",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Nodes that responded as a healthy standby or performance standby.
pub static STANDBY: MeasureFamily = MeasureFamily {
    name: "readiness_vault_standby_nodes",
    help: "Vault nodes that responded as standby (429) or performance standby (473)",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Nodes that responded active.
pub static ACTIVE: MeasureFamily = MeasureFamily {
    name: "readiness_vault_active_nodes",
    help: "Vault nodes that responded active (200)",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Each node's `sys/health` status code.
pub static NODE_STATUS: MeasureFamily = MeasureFamily {
    name: "readiness_vault_node_health_status_code",
    help: "Status code of a Vault node's sys/health response",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["node"],
};

/// Members listed by `sys/ha-status`.
pub static HA_MEMBERS: MeasureFamily = MeasureFamily {
    name: "readiness_vault_ha_members",
    help: "Cluster members that Vault's sys/ha-status lists",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[
    &NODES,
    &UNSEALED,
    &SEALED,
    &STANDBY,
    &ACTIVE,
    &NODE_STATUS,
    &HA_MEMBERS,
];

/// The `vault_health` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    nodes: Vec<String>,
    ca_file: Option<PathBuf>,
    min_unsealed: Option<usize>,
    require_active: Option<bool>,
    ha_status: Option<bool>,
    min_version: Option<String>,
}

/// A validated `vault_health` check.
#[derive(Debug)]
pub struct HealthCheck {
    client: reqwest::Client,
    nodes: Vec<Url>,
    min_unsealed: usize,
    require_active: bool,
    /// The connection whose token reads `sys/ha-status`, when `ha_status` is set.
    ha_status: Option<Arc<Vault>>,
    min_version: Option<Version>,
}

/// A `major.minor.patch` version; missing parts are zero and suffixes (`+ent`, `-rc1`) ignored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version(Vec<u64>);

impl Version {
    fn parse(text: &str) -> Option<Version> {
        let core = text.trim().trim_start_matches('v');
        let core = core.split(['+', '-', ' ']).next()?;
        let parts: Option<Vec<u64>> = core.split('.').map(|part| part.parse().ok()).collect();
        let mut parts = parts?;
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        parts.resize(3, 0);
        Some(Version(parts))
    }
}

/// The fields of a `sys/health` body the verdict uses.
#[derive(Debug, Deserialize)]
struct HealthBody {
    initialized: Option<bool>,
    sealed: Option<bool>,
    standby: Option<bool>,
    performance_standby: Option<bool>,
    version: Option<String>,
}

type StatePredicate = fn(&NodeState) -> bool;

/// The state of one node, from its `sys/health` response.
#[derive(Debug)]
enum NodeState {
    Active,
    Standby,
    PerformanceStandby,
    DrSecondary,
    StandbyDisconnected,
    Uninitialized,
    Sealed,
    /// An undocumented code, or a body that contradicts the code.
    Unknown(String),
    /// No HTTP response.
    Unreachable(Reason, String),
}

impl NodeState {
    fn serves(&self) -> bool {
        matches!(
            self,
            NodeState::Active | NodeState::Standby | NodeState::PerformanceStandby
        )
    }

    fn describe(&self) -> String {
        match self {
            NodeState::Active => "active".to_string(),
            NodeState::Standby => "standby".to_string(),
            NodeState::PerformanceStandby => "performance standby".to_string(),
            NodeState::DrSecondary => "disaster-recovery secondary".to_string(),
            NodeState::StandbyDisconnected => "standby without the active node".to_string(),
            NodeState::Uninitialized => "not initialized".to_string(),
            NodeState::Sealed => "sealed".to_string(),
            NodeState::Unknown(detail) => format!("unknown ({detail})"),
            NodeState::Unreachable(_, message) => format!("unreachable ({message})"),
        }
    }
}

struct Node<'a> {
    url: &'a Url,
    status: Option<u16>,
    state: NodeState,
    version: Option<String>,
}

impl HealthCheck {
    /// Validates the `vault_health` block, recording every problem in `ctx`.
    pub fn build(spec: HealthSpec, ctx: &mut BuildContext<'_>) -> Option<HealthCheck> {
        let before = ctx.problem_count();
        if spec.nodes.is_empty() {
            ctx.problem(
                "vault_health.nodes",
                "list is empty; write the address of every Vault node, such as `https://vault-0.vault-internal:8200`",
            );
        }
        let mut nodes = Vec::new();
        for (i, node) in spec.nodes.iter().enumerate() {
            let field = format!("vault_health.nodes[{i}]");
            if let Some(url) = ctx.http_url(&field, node) {
                if nodes.contains(&url) {
                    ctx.problem(
                        field,
                        format!("node `{url}` is listed twice; list each node once"),
                    );
                } else {
                    nodes.push(url);
                }
            }
        }
        let min_unsealed = spec.min_unsealed.unwrap_or(spec.nodes.len());
        if min_unsealed == 0 || min_unsealed > spec.nodes.len().max(1) {
            ctx.problem(
                "vault_health.min_unsealed",
                format!(
                    "`{min_unsealed}` is out of range; use a number from 1 to the number of nodes ({})",
                    spec.nodes.len()
                ),
            );
        }
        let min_version = spec.min_version.as_ref().and_then(|text| {
            let version = Version::parse(text);
            if version.is_none() {
                ctx.problem(
                    "vault_health.min_version",
                    format!("invalid version `{text}`; write a version such as `1.15.0` or `2.0`"),
                );
            }
            version
        });
        let ha_status = match spec.ha_status.unwrap_or(false) {
            true => ctx.vault("vault_health.ha_status"),
            false => None,
        };
        let shared = ctx.optional_vault();
        let client = match (&spec.ca_file, &shared) {
            (Some(path), _) => {
                let path = ctx.resolve_path(path);
                match ctx.http_clients.get(Some(path), None) {
                    Ok(client) => Some(client),
                    Err(message) => {
                        ctx.problem("vault_health.ca_file", message);
                        None
                    }
                }
            }
            // Without its own CA file the check trusts what the `vault` block trusts.
            (None, Some(vault)) => Some(vault.http().clone()),
            (None, None) => match ctx.http_clients.get(None, None) {
                Ok(client) => Some(client),
                Err(message) => {
                    ctx.problem("vault_health", message);
                    None
                }
            },
        };
        if ctx.problem_count() > before {
            return None;
        }
        Some(HealthCheck {
            client: client?,
            nodes,
            min_unsealed,
            require_active: spec.require_active.unwrap_or(true),
            ha_status,
            min_version,
        })
    }

    /// Reads every node's `sys/health` at once and evaluates the cluster.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let nodes: Vec<Node<'_>> = join_all(self.nodes.iter().map(|url| self.read(url))).await;
        let count = |predicate: fn(&NodeState) -> bool| {
            nodes.iter().filter(|node| predicate(&node.state)).count()
        };
        let serving = count(NodeState::serves);
        let active = count(|state| matches!(state, NodeState::Active));
        let sealed = count(|state| matches!(state, NodeState::Sealed));
        let standby =
            count(|state| matches!(state, NodeState::Standby | NodeState::PerformanceStandby));

        let mut measures = vec![
            Measure::new(&NODES, nodes.len() as f64),
            Measure::new(&UNSEALED, serving as f64),
            Measure::new(&SEALED, sealed as f64),
            Measure::new(&STANDBY, standby as f64),
            Measure::new(&ACTIVE, active as f64),
        ];
        for node in &nodes {
            if let Some(status) = node.status {
                measures.push(Measure {
                    family: &NODE_STATUS,
                    label_values: vec![node.url.to_string()],
                    value: f64::from(status),
                });
            }
        }

        let outcome = match self.evaluate(&nodes, serving, active).await {
            Ok((outcome, members)) => {
                if let Some(members) = members {
                    measures.push(Measure::new(&HA_MEMBERS, members as f64));
                }
                outcome
            }
            Err(outcome) => outcome,
        };
        outcome.with_value(serving as f64).with_measures(measures)
    }

    /// Applies the rules in order: enough serving members, exactly one active node, the minimum
    /// version, then the HA status. Returns the outcome and the HA member count when read.
    async fn evaluate(
        &self,
        nodes: &[Node<'_>],
        serving: usize,
        active: usize,
    ) -> Result<(Outcome, Option<usize>), Outcome> {
        let total = nodes.len();
        let list = |predicate: &dyn Fn(&NodeState) -> bool| -> Vec<String> {
            nodes
                .iter()
                .filter(|node| predicate(&node.state))
                .map(|node| node.url.to_string())
                .collect()
        };
        let uncertain = nodes.iter().find(|node| {
            matches!(
                node.state,
                NodeState::Unknown(_) | NodeState::Unreachable(..)
            )
        });

        if serving < self.min_unsealed {
            let summary = format!(
                "{serving} of {total} nodes serve as active or standby, at least {} required",
                self.min_unsealed
            );
            let checks: [(Reason, &str, StatePredicate); 3] = [
                (Reason::VaultUninitialized, "not initialized", |state| {
                    matches!(state, NodeState::Uninitialized)
                }),
                (Reason::VaultSealed, "sealed", |state| {
                    matches!(state, NodeState::Sealed)
                }),
                (Reason::VaultNotServing, "not serving clients", |state| {
                    matches!(
                        state,
                        NodeState::DrSecondary | NodeState::StandbyDisconnected
                    )
                }),
            ];
            for (reason, label, predicate) in checks {
                let matching = list(&predicate);
                if !matching.is_empty() {
                    let detail = self.describe_all(nodes);
                    return Err(Outcome::fail(
                        reason,
                        format!("{summary}; {label}: {}{detail}", matching.join(", ")),
                    ));
                }
            }
            if let Some(node) = uncertain {
                return Err(uncertain_outcome(node, &summary));
            }
        }

        if self.require_active && active != 1 {
            if active > 1 {
                let actives = list(&|state| matches!(state, NodeState::Active));
                return Err(Outcome::fail(
                    Reason::VaultSeveralActive,
                    format!("{active} nodes report active: {}", actives.join(", ")),
                ));
            }
            // The active node may be among those that could not be read.
            if let Some(node) = uncertain {
                return Err(uncertain_outcome(node, "no readable node is active"));
            }
            return Err(Outcome::fail(
                Reason::VaultNoActive,
                format!("no node is active{}", self.describe_all(nodes)),
            ));
        }

        if let Some(minimum) = &self.min_version {
            for node in nodes {
                let Some(text) = &node.version else { continue };
                match Version::parse(text) {
                    Some(version) if &version < minimum => {
                        return Err(Outcome::fail(
                            Reason::VersionTooOld,
                            format!(
                                "node {} runs version {}, older than the minimum {}",
                                node.url,
                                crate::check::http::truncate(text, 40),
                                minimum
                                    .0
                                    .iter()
                                    .map(u64::to_string)
                                    .collect::<Vec<_>>()
                                    .join(".")
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => {
                        return Err(Outcome::error(
                            Reason::InvalidResponse,
                            format!(
                                "node {} reports version `{}`, which cannot be compared",
                                node.url,
                                crate::check::http::truncate(text, 40)
                            ),
                        ))
                    }
                }
            }
        }

        let mut members = None;
        if let Some(vault) = &self.ha_status {
            let (count, active_members) = self.read_ha_status(vault, nodes).await?;
            members = Some(count);
            if count < self.min_unsealed {
                return Ok((
                    Outcome::fail(
                        Reason::VaultTooFewMembers,
                        format!(
                            "sys/ha-status lists {count} cluster members, at least {} required",
                            self.min_unsealed
                        ),
                    ),
                    members,
                ));
            }
            if active_members != 1 {
                let reason = if active_members == 0 {
                    Reason::VaultNoActive
                } else {
                    Reason::VaultSeveralActive
                };
                return Ok((
                    Outcome::fail(
                        reason,
                        format!("sys/ha-status lists {active_members} active members, expected 1"),
                    ),
                    members,
                ));
            }
        }

        let versions: Vec<String> = {
            let mut versions: Vec<String> = nodes
                .iter()
                .filter_map(|node| node.version.as_deref())
                .map(|version| crate::check::http::truncate(version, 40))
                .collect();
            versions.sort_unstable();
            versions.dedup();
            versions
        };
        let members_text = members
            .map(|count| format!(", {count} HA members"))
            .unwrap_or_default();
        let message = format!(
            "{serving} of {total} nodes serve ({active} active){members_text}; version {}",
            if versions.is_empty() {
                "unknown".to_string()
            } else {
                versions.join(", ")
            }
        );
        Ok((Outcome::pass(message), members))
    }

    /// Lists every node's state when there are several, for a failure message.
    fn describe_all(&self, nodes: &[Node<'_>]) -> String {
        if nodes.len() == 1 {
            return String::new();
        }
        let states: Vec<String> = nodes
            .iter()
            .map(|node| format!("{} {}", node.url, node.state.describe()))
            .collect();
        format!("; states: {}", states.join(", "))
    }

    async fn read<'a>(&self, url: &'a Url) -> Node<'a> {
        let endpoint = match url.join("v1/sys/health") {
            Ok(endpoint) => endpoint,
            Err(err) => {
                return Node {
                    url,
                    status: None,
                    state: NodeState::Unreachable(Reason::InternalError, err.to_string()),
                    version: None,
                }
            }
        };
        let response = match self.client.get(endpoint).send().await {
            Ok(response) => response,
            Err(err) => {
                let (reason, message) = crate::check::http::classify(&err, url);
                return Node {
                    url,
                    status: None,
                    state: NodeState::Unreachable(reason, message),
                    version: None,
                };
            }
        };
        let status = response.status().as_u16();
        let mut response = response;
        // The body is read up to the limit only, so a node that streams without end cannot
        // fill the exporter's memory.
        let body = match crate::check::http::read_body(&mut response, MAX_BODY_BYTES, url).await {
            Ok(body) => body,
            Err(outcome) => {
                let detail = if outcome.reason == Reason::BodyTooLarge {
                    format!("status {status} with a body larger than {MAX_BODY_BYTES} bytes")
                } else {
                    outcome.message
                };
                return Node {
                    url,
                    status: Some(status),
                    state: NodeState::Unknown(detail),
                    version: None,
                };
            }
        };
        let parsed = serde_json::from_slice::<HealthBody>(&body).ok();
        let Some(body) = parsed else {
            return Node {
                url,
                status: Some(status),
                state: NodeState::Unknown(format!(
                    "status {status} without a sys/health JSON body"
                )),
                version: None,
            };
        };
        Node {
            url,
            status: Some(status),
            state: decide(status, &body),
            version: body.version.clone(),
        }
    }

    /// Reads `sys/ha-status` from the first active node (or the first serving one) with the
    /// exporter's token. Returns the member count and how many members are active.
    async fn read_ha_status(
        &self,
        vault: &Vault,
        nodes: &[Node<'_>],
    ) -> Result<(usize, usize), Outcome> {
        let target = nodes
            .iter()
            .find(|node| matches!(node.state, NodeState::Active))
            .or_else(|| nodes.iter().find(|node| node.state.serves()))
            .ok_or_else(|| {
                Outcome::error(
                    Reason::VaultNoActive,
                    "no serving node to read sys/ha-status from",
                )
            })?;
        let token = vault.token().await.map_err(|err| err.outcome())?;
        let endpoint = target
            .url
            .join("v1/sys/ha-status")
            .map_err(|err| Outcome::error(Reason::InternalError, err.to_string()))?;
        let mut value = http::HeaderValue::from_str(token.expose()).map_err(|_| {
            Outcome::error(
                Reason::VaultAuthFailed,
                "the Vault token is not a valid header value",
            )
        })?;
        value.set_sensitive(true);
        let response = self
            .client
            .get(endpoint)
            .header("X-Vault-Token", value)
            .send()
            .await
            .map_err(|err| {
                let (reason, message) = crate::check::http::classify(&err, target.url);
                Outcome::error(reason, format!("reading sys/ha-status: {message}"))
            })?;
        let status = response.status().as_u16();
        if status == 403 {
            return Err(vault.forbidden_outcome("`sys/ha-status`").await);
        }
        if status != 200 {
            return Err(Outcome::error(
                Reason::UnexpectedStatus,
                format!(
                    "reading sys/ha-status from {} failed: status {status}",
                    target.url
                ),
            ));
        }
        let mut response = response;
        let body = crate::check::http::read_body(&mut response, MAX_HA_STATUS_BYTES, target.url)
            .await
            .map_err(|outcome| {
                Outcome::error(
                    outcome.reason,
                    format!(
                        "reading sys/ha-status from {}: {}",
                        target.url, outcome.message
                    ),
                )
            })?;
        let body: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            Outcome::error(
                Reason::InvalidResponse,
                format!("sys/ha-status from {} is not JSON", target.url),
            )
        })?;
        // Vault returns the list under `nodes` (and again under `data.nodes`); some versions
        // document it as `Nodes`.
        let members = body
            .pointer("/data/nodes")
            .or_else(|| body.get("nodes"))
            .or_else(|| body.get("Nodes"))
            .and_then(|nodes| nodes.as_array())
            .ok_or_else(|| {
                Outcome::error(
                    Reason::InvalidResponse,
                    format!("sys/ha-status from {} has no node list", target.url),
                )
            })?;
        let active = members
            .iter()
            .filter(|member| member.get("active_node").and_then(|v| v.as_bool()) == Some(true))
            .count();
        Ok((members.len(), active))
    }
}

/// Decides a node's state from the status code and the body together.
fn decide(status: u16, body: &HealthBody) -> NodeState {
    let initialized = body.initialized == Some(true);
    let unsealed = body.sealed == Some(false);
    let standby = body.standby == Some(true);
    let contradiction = |expected: &str| {
        NodeState::Unknown(format!(
            "status {status} but the body does not say {expected}"
        ))
    };
    match status {
        200 if initialized && unsealed && !standby => NodeState::Active,
        200 => contradiction("initialized, unsealed and active"),
        429 if initialized && unsealed && standby => NodeState::Standby,
        429 => contradiction("an unsealed standby"),
        473 if initialized && unsealed && body.performance_standby == Some(true) => {
            NodeState::PerformanceStandby
        }
        473 => contradiction("an unsealed performance standby"),
        472 if initialized && unsealed => NodeState::DrSecondary,
        472 => contradiction("an unsealed disaster-recovery secondary"),
        474 if initialized && unsealed && standby => NodeState::StandbyDisconnected,
        474 => contradiction("an unsealed standby"),
        501 if body.initialized == Some(false) => NodeState::Uninitialized,
        501 => contradiction("not initialized"),
        503 if initialized && body.sealed == Some(true) => NodeState::Sealed,
        503 => contradiction("initialized and sealed"),
        other => NodeState::Unknown(format!(
            "status {other} is not a documented sys/health code"
        )),
    }
}

fn uncertain_outcome(node: &Node<'_>, summary: &str) -> Outcome {
    match &node.state {
        NodeState::Unreachable(reason, message) => {
            Outcome::error(*reason, format!("{summary}; node {}: {message}", node.url))
        }
        NodeState::Unknown(detail) => Outcome::error(
            Reason::VaultUnknownState,
            format!(
                "{summary}; node {} is in an unknown state: {detail}",
                node.url
            ),
        ),
        other => Outcome::error(
            Reason::InternalError,
            format!("{summary}; node {} is {}", node.url, other.describe()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ignores_suffixes() {
        assert_eq!(Version::parse("1.17.2+ent"), Some(Version(vec![1, 17, 2])));
        assert_eq!(Version::parse("v2.0"), Some(Version(vec![2, 0, 0])));
        assert!(Version::parse("2.7.2").unwrap() > Version::parse("2.7").unwrap());
        assert_eq!(Version::parse("latest"), None);
    }

    #[test]
    fn contradicting_body_is_unknown() {
        let body = HealthBody {
            initialized: Some(true),
            sealed: Some(true),
            standby: Some(true),
            performance_standby: Some(false),
            version: None,
        };
        assert!(matches!(decide(200, &body), NodeState::Unknown(_)));
        assert!(matches!(decide(503, &body), NodeState::Sealed));
        assert!(matches!(decide(418, &body), NodeState::Unknown(_)));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// `sys/health` bodies: arbitrary bytes, or the documented fields with arbitrary values.
        fn body() -> impl Strategy<Value = Vec<u8>> {
            let flag = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                "\\PC{0,8}".prop_map(serde_json::Value::from),
            ];
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..256),
                (
                    flag.clone(),
                    flag.clone(),
                    flag.clone(),
                    flag,
                    "\\PC{0,30}|[0-9.+v-]{0,30}|9{30}"
                )
                    .prop_map(
                        |(initialized, sealed, standby, performance_standby, version)| {
                            serde_json::json!({
                                "initialized": initialized,
                                "sealed": sealed,
                                "standby": standby,
                                "performance_standby": performance_standby,
                                "version": version,
                            })
                            .to_string()
                            .into_bytes()
                        }
                    ),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn health_body_decides_a_state(body in body(), status in 0u16..1000) {
                if let Ok(parsed) = serde_json::from_slice::<HealthBody>(&body) {
                    let state = decide(status, &parsed);
                    prop_assert!(state.describe().len() < 200, "{}", state.describe());
                    if let Some(version) = &parsed.version {
                        let _ = Version::parse(version);
                    }
                }
            }

            #[test]
            fn version_parse_survives_any_text(text in "\\PC{0,40}|[0-9.v+ -]{0,40}|[0-9]{20,40}(\\.[0-9]{1,3}){0,3}") {
                if let Some(version) = Version::parse(&text) {
                    prop_assert_eq!(version.0.len(), 3);
                }
            }
        }
    }
}
