//! The `kubernetes_old_versions` check kind: after a blue/green switch, only the current
//! workload runs, and the current Deployment's older ReplicaSets are scaled to zero.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::Deserialize;

use super::{get_opt, list_all, resource_name, validate_selector, ApiCall, Connection};
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Replicas still requested or running for old versions.
pub static OLD_REPLICAS: MeasureFamily = MeasureFamily {
    name: "readiness_kubernetes_old_version_replicas",
    help: "Replicas requested or still running for workloads and ReplicaSets that a kubernetes_old_versions check considers old",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&OLD_REPLICAS];

/// The `kubernetes_old_versions` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OldVersionsSpec {
    namespace: String,
    selector: String,
    current: String,
}

/// A validated `kubernetes_old_versions` check.
#[derive(Debug)]
pub struct OldVersionsCheck {
    connection: Arc<Connection>,
    namespace: String,
    selector: String,
    current: String,
}

/// The replica counts of a Deployment, StatefulSet or ReplicaSet, read from raw JSON so that an
/// absent count stays absent.
#[derive(Debug, Default, Deserialize)]
struct Scaled {
    spec: Option<ScaledSpec>,
    status: Option<ScaledStatus>,
}

#[derive(Debug, Default, Deserialize)]
struct ScaledSpec {
    replicas: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
struct ScaledStatus {
    replicas: Option<i32>,
}

/// Requested and running replicas; the API omits zero counts, and defaults `spec.replicas` to 1.
fn replicas(object: &DynamicObject) -> (i32, i32) {
    let scaled: Scaled = serde_json::from_value(object.data.clone()).unwrap_or_default();
    let requested = scaled.spec.and_then(|spec| spec.replicas).unwrap_or(1);
    let running = scaled
        .status
        .and_then(|status| status.replicas)
        .unwrap_or(0);
    (requested, running)
}

impl OldVersionsCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `kubernetes_old_versions` block, recording every problem in `ctx`.
    pub fn build(spec: OldVersionsSpec, ctx: &mut BuildContext<'_>) -> Option<OldVersionsCheck> {
        let before = ctx.problem_count();
        if spec.namespace.trim().is_empty() {
            ctx.problem(
                "kubernetes_old_versions.namespace",
                "namespace is empty; name the namespace of the workloads",
            );
        }
        validate_selector(ctx, "kubernetes_old_versions.selector", &spec.selector);
        if spec.current.trim().is_empty() {
            ctx.problem(
                "kubernetes_old_versions.current",
                "name the Deployment that serves after the switch",
            );
        }
        if ctx.problem_count() > before {
            return None;
        }
        Some(OldVersionsCheck {
            connection: ctx.kubernetes.clone(),
            namespace: spec.namespace,
            selector: spec.selector,
            current: spec.current,
        })
    }

    /// Reads the matching workloads and the current Deployment's ReplicaSets and evaluates them.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };
        let namespace = Some(self.namespace.as_str());

        let deployments = ApiResource::erase::<Deployment>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &self.namespace, &deployments);
        let call = ApiCall::new::<Deployment>("get", namespace).named(&self.current);
        let current = match get_opt(&api, &call, &self.current).await {
            Ok(Some(current)) => current,
            Ok(None) => {
                return Outcome::fail(
                    Reason::ObjectNotFound,
                    format!(
                        "current Deployment `{}` not found in namespace `{}`",
                        self.current, self.namespace
                    ),
                )
            }
            Err(outcome) => return outcome,
        };

        let mut old = Vec::new();
        let mut old_replicas = 0;
        let params = ListParams::default().labels(&self.selector);
        for (kind, resource) in [
            ("deployment", deployments.clone()),
            ("statefulset", ApiResource::erase::<StatefulSet>(&())),
        ] {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &self.namespace, &resource);
            let call = ApiCall::with_resource(
                "list",
                resource_name(&resource.plural, &resource.group),
                namespace,
            );
            let listed = match list_all(&api, &call, &params).await {
                Ok(listed) => listed,
                Err(outcome) => return outcome,
            };
            for object in &listed {
                let name = object.metadata.name.clone().unwrap_or_default();
                if kind == "deployment" && name == self.current {
                    continue;
                }
                let (requested, running) = replicas(object);
                if requested > 0 || running > 0 {
                    old_replicas += requested.max(running);
                    old.push(format!(
                        "{kind}/{name} requests {requested} and runs {running} replica(s)"
                    ));
                }
            }
        }

        let current_revision = current
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(REVISION_ANNOTATION))
            .cloned();
        let uid = current.metadata.uid.clone().unwrap_or_default();
        let replica_sets = ApiResource::erase::<ReplicaSet>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(client, &self.namespace, &replica_sets);
        let call = ApiCall::new::<ReplicaSet>("list", namespace);
        let listed = match list_all(&api, &call, &owner_selector(&current)).await {
            Ok(listed) => listed,
            Err(outcome) => return outcome,
        };
        for replica_set in &listed {
            let owned = replica_set
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|owner| owner.controller == Some(true) && owner.uid == uid);
            let revision = replica_set
                .metadata
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(REVISION_ANNOTATION));
            if !owned || revision == current_revision.as_ref() {
                continue;
            }
            let (requested, running) = replicas(replica_set);
            if requested > 0 || running > 0 {
                old_replicas += requested.max(running);
                let name = replica_set.metadata.name.clone().unwrap_or_default();
                let revision = revision.map_or("unknown".to_string(), String::clone);
                old.push(format!("old ReplicaSet {name} (revision {revision}) of `{}` requests {requested} and runs {running} replica(s)", self.current));
            }
        }

        let measures = vec![Measure::new(&OLD_REPLICAS, f64::from(old_replicas))];
        if old.is_empty() {
            return Outcome::pass(format!(
                "only `{}` runs among the workloads matching `{}`, and its older ReplicaSets are scaled to zero",
                self.current, self.selector
            ))
            .with_value(0.0)
            .with_measures(measures);
        }
        Outcome::fail(Reason::OldVersionRunning, old.join("; "))
            .with_value(f64::from(old_replicas))
            .with_measures(measures)
    }
}

/// A list filter for the ReplicaSets of a Deployment: its `matchLabels` as a label selector.
/// The owner reference decides afterwards, so `matchExpressions` need not be translated.
fn owner_selector(deployment: &DynamicObject) -> ListParams {
    let labels = deployment
        .data
        .pointer("/spec/selector/matchLabels")
        .and_then(|labels| labels.as_object())
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(key, value)| value.as_str().map(|value| format!("{key}={value}")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    if labels.is_empty() {
        ListParams::default()
    } else {
        ListParams::default().labels(&labels)
    }
}
