//! The `alertmanager` check kind: an Alertmanager is ready, its cluster has settled, and the
//! named receivers exist in its configuration.
//!
//! Reads `/-/ready`, then `/api/v2/status`, whose `cluster.status` is `ready`, `settling` (the
//! gossip has not converged yet, so notifications may be duplicated or lost) or `disabled`
//! (started without a cluster listener). `disabled` passes only with `replicas: 1`. With
//! `receivers`, reads `/api/v2/receivers`.

use std::time::Duration;

use serde::Deserialize;

use super::api_client::{ApiClient, ServerSpec};
use super::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// Cluster peers the Alertmanager reports, itself included.
pub static CLUSTER_PEERS: MeasureFamily = MeasureFamily {
    name: "readiness_alertmanager_cluster_peers",
    help: "Cluster peers the Alertmanager reported on the last run, itself included; 0 when clustering is disabled",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&CLUSTER_PEERS];

/// The `alertmanager` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSpec {
    server: ServerSpec,
    replicas: Option<u64>,
    #[serde(default)]
    receivers: Vec<String>,
}

/// A validated `alertmanager` check.
#[derive(Debug)]
pub struct AlertmanagerCheck {
    client: ApiClient,
    replicas: Option<u64>,
    receivers: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Status {
    cluster: ClusterStatus,
}

#[derive(Debug, Deserialize)]
struct ClusterStatus {
    status: String,
    #[serde(default)]
    peers: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Receiver {
    name: String,
}

impl AlertmanagerCheck {
    /// Validates the `alertmanager` block, recording every problem in `ctx`.
    pub fn build(spec: AlertmanagerSpec, ctx: &mut BuildContext<'_>) -> Option<AlertmanagerCheck> {
        let before = ctx.problem_count();
        let client = ApiClient::build(spec.server, "alertmanager.server", ctx);
        if spec.replicas == Some(0) {
            ctx.problem(
                "alertmanager.replicas",
                "`0` replicas cannot be checked; use 1 for a single Alertmanager or the size of the cluster",
            );
        }
        for (i, receiver) in spec.receivers.iter().enumerate() {
            if receiver.is_empty() {
                ctx.problem(
                    format!("alertmanager.receivers[{i}]"),
                    "receiver name is empty",
                );
            }
        }
        if ctx.problem_count() > before {
            return None;
        }
        Some(AlertmanagerCheck {
            client: client?,
            replicas: spec.replicas,
            receivers: spec.receivers,
        })
    }

    /// Reads readiness, cluster status and receivers once.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let ready = match self.client.get(&["-", "ready"], &[], &[]).await {
            Ok(response) => response,
            Err(outcome) => return outcome,
        };
        if ready.status != 200 {
            return Outcome::fail(
                Reason::NotReady,
                format!(
                    "`/-/ready` returned status {}: `{}`",
                    ready.status,
                    ready.text_excerpt()
                ),
            );
        }

        let response = match self.client.get(&["api", "v2", "status"], &[], &[]).await {
            Ok(response) => response,
            Err(outcome) => return outcome,
        };
        if response.status != 200 {
            return Outcome::error(
                Reason::InvalidResponse,
                format!(
                    "`/api/v2/status` returned status {}: `{}`; check that `server.url` is the Alertmanager's base URL",
                    response.status,
                    response.text_excerpt()
                ),
            );
        }
        let status: Status = match response.json("`/api/v2/status`") {
            Ok(status) => status,
            Err(outcome) => return outcome,
        };
        let peers = status.cluster.peers.len() as u64;
        let measures = vec![Measure::new(&CLUSTER_PEERS, peers as f64)];
        let finish = |outcome: Outcome| {
            outcome
                .with_value(peers as f64)
                .with_measures(measures.clone())
        };

        if let Some(outcome) = self.judge_cluster(&status.cluster.status, peers) {
            return finish(outcome);
        }
        if !self.receivers.is_empty() {
            if let Some(outcome) = self.check_receivers().await {
                return finish(outcome);
            }
        }
        let receivers = match self.receivers.len() {
            0 => String::new(),
            n => format!(", {n} receiver(s) configured"),
        };
        finish(Outcome::pass(format!(
            "ready, cluster {} with {peers} peer(s){receivers}",
            status.cluster.status
        )))
    }

    fn judge_cluster(&self, cluster: &str, peers: u64) -> Option<Outcome> {
        let single = self.replicas == Some(1);
        match cluster {
            "ready" => {
                let expected = self.replicas.unwrap_or(1);
                (peers < expected).then(|| {
                    Outcome::fail(
                        Reason::ClusterNotReady,
                        format!("the cluster has {peers} peer(s), {expected} expected; check the other replicas and `--cluster.peer`"),
                    )
                })
            }
            "disabled" if single => None,
            "disabled" => Some(Outcome::fail(
                Reason::ClusterNotReady,
                "clustering is disabled, but a cluster is expected; set `--cluster.listen-address` and `--cluster.peer`, or set `replicas: 1` for a single Alertmanager",
            )),
            "settling" => Some(Outcome::fail(
                Reason::ClusterNotReady,
                format!("the cluster is still settling ({peers} peer(s)); notifications may be duplicated or lost until it is ready"),
            )),
            other => Some(Outcome::fail(
                Reason::ClusterNotReady,
                format!("the cluster status is `{}`, expected `ready`", crate::check::http::truncate(other, 40)),
            )),
        }
    }

    async fn check_receivers(&self) -> Option<Outcome> {
        let response = match self.client.get(&["api", "v2", "receivers"], &[], &[]).await {
            Ok(response) => response,
            Err(outcome) => return Some(outcome),
        };
        if response.status != 200 {
            return Some(Outcome::error(
                Reason::InvalidResponse,
                format!(
                    "`/api/v2/receivers` returned status {}: `{}`",
                    response.status,
                    response.text_excerpt()
                ),
            ));
        }
        let configured: Vec<Receiver> = match response.json("`/api/v2/receivers`") {
            Ok(receivers) => receivers,
            Err(outcome) => return Some(outcome),
        };
        let missing: Vec<&str> = self
            .receivers
            .iter()
            .filter(|name| !configured.iter().any(|receiver| &receiver.name == *name))
            .map(String::as_str)
            .collect();
        (!missing.is_empty()).then(|| {
            Outcome::fail(
                Reason::ReceiverMissing,
                format!(
                    "receiver(s) `{}` not in the Alertmanager configuration; {} receiver(s) are configured",
                    missing.join("`, `"),
                    configured.len()
                ),
            )
        })
    }
}
