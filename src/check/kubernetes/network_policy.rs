//! The `kubernetes_network_policy` check kind: default-deny NetworkPolicies per namespace, and
//! every running pod selected by at least one policy.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};
use serde::Deserialize;

use super::{list_all, selector_matches, ApiCall, Connection};
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// How many pod names a message lists before it only counts the rest.
const MAX_NAMES_SHOWN: usize = 10;

/// Running pods that no NetworkPolicy selects, per namespace.
pub static UNSELECTED_PODS: MeasureFamily = MeasureFamily {
    name: "readiness_kubernetes_network_policy_unselected_pods",
    help: "Running pods of a namespace that no NetworkPolicy selects, for a kubernetes_network_policy check",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["namespace"],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&UNSELECTED_PODS];

/// The `kubernetes_network_policy` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicySpec {
    namespaces: Vec<String>,
    require_default_deny_ingress: Option<bool>,
    require_default_deny_egress: Option<bool>,
    require_every_pod_selected: Option<bool>,
}

/// A validated `kubernetes_network_policy` check.
#[derive(Debug)]
pub struct NetworkPolicyCheck {
    connection: Arc<Connection>,
    namespaces: Vec<String>,
    require_default_deny_ingress: bool,
    require_default_deny_egress: bool,
    require_every_pod_selected: bool,
}

impl NetworkPolicyCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `kubernetes_network_policy` block, recording every problem in `ctx`.
    pub fn build(
        spec: NetworkPolicySpec,
        ctx: &mut BuildContext<'_>,
    ) -> Option<NetworkPolicyCheck> {
        if spec.namespaces.is_empty() || spec.namespaces.iter().any(|n| n.trim().is_empty()) {
            ctx.problem(
                "kubernetes_network_policy.namespaces",
                "list one or more namespaces, such as `[shop]`",
            );
            return None;
        }
        let ingress = spec.require_default_deny_ingress.unwrap_or(true);
        let egress = spec.require_default_deny_egress.unwrap_or(false);
        let pods = spec.require_every_pod_selected.unwrap_or(true);
        if !ingress && !egress && !pods {
            ctx.problem(
                "kubernetes_network_policy",
                "every requirement is switched off, so the check could never fail; leave at least one on",
            );
            return None;
        }
        Some(NetworkPolicyCheck {
            connection: ctx.kubernetes.clone(),
            namespaces: spec.namespaces,
            require_default_deny_ingress: ingress,
            require_default_deny_egress: egress,
            require_every_pod_selected: pods,
        })
    }

    /// Lists the policies (and running pods) of every namespace and evaluates them.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };
        let mut missing = Vec::new();
        let mut unselected = Vec::new();
        let mut measures = Vec::new();
        for namespace in &self.namespaces {
            let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
            let call = ApiCall::new::<NetworkPolicy>("list", Some(namespace));
            let policies = match list_all(&api, &call, &ListParams::default()).await {
                Ok(policies) => policies,
                Err(outcome) => return outcome,
            };
            if self.require_default_deny_ingress
                && !policies.iter().any(|policy| denies_all(policy, "Ingress"))
            {
                missing.push(format!("`{namespace}` has no default-deny ingress policy"));
            }
            if self.require_default_deny_egress
                && !policies.iter().any(|policy| denies_all(policy, "Egress"))
            {
                missing.push(format!("`{namespace}` has no default-deny egress policy"));
            }
            if !self.require_every_pod_selected {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let call = ApiCall::new::<Pod>("list", Some(namespace));
            let params = ListParams::default().fields("status.phase=Running");
            let pods = match list_all(&api, &call, &params).await {
                Ok(pods) => pods,
                Err(outcome) => return outcome,
            };
            let names: Vec<String> = pods
                .iter()
                .filter(|pod| {
                    let labels = pod.metadata.labels.clone().unwrap_or_default();
                    !policies.iter().any(|policy| {
                        policy
                            .spec
                            .as_ref()
                            .is_some_and(|spec| selects(spec, &labels))
                    })
                })
                .map(|pod| pod.metadata.name.clone().unwrap_or_default())
                .collect();
            measures.push(Measure {
                family: &UNSELECTED_PODS,
                label_values: vec![namespace.clone()],
                value: names.len() as f64,
            });
            if !names.is_empty() {
                unselected.push(format!(
                    "{} pod(s) in `{namespace}` selected by no policy: {}",
                    names.len(),
                    shorten(&names, ", ")
                ));
            }
        }
        if !missing.is_empty() {
            let mut details = missing;
            details.extend(unselected);
            return Outcome::fail(Reason::DefaultDenyMissing, details.join("; "))
                .with_measures(measures);
        }
        if !unselected.is_empty() {
            return Outcome::fail(Reason::PodNotSelected, unselected.join("; "))
                .with_measures(measures);
        }
        let mut found = Vec::new();
        match (
            self.require_default_deny_ingress,
            self.require_default_deny_egress,
        ) {
            (true, true) => found.push("default-deny ingress and egress policies"),
            (true, false) => found.push("default-deny ingress policies"),
            (false, true) => found.push("default-deny egress policies"),
            (false, false) => {}
        }
        if self.require_every_pod_selected {
            found.push("every running pod selected by a policy");
        }
        Outcome::pass(format!(
            "{} in {}",
            found.join(", "),
            self.namespaces.join(", ")
        ))
        .with_measures(measures)
    }
}

/// Whether `policy` selects every pod of its namespace and allows no traffic of `direction`
/// (`Ingress` or `Egress`). Without `policyTypes`, the API applies `Ingress`, plus `Egress` when
/// the policy has egress rules.
fn denies_all(policy: &NetworkPolicy, direction: &str) -> bool {
    let Some(spec) = &policy.spec else {
        return false;
    };
    // An absent podSelector is an empty one, which selects every pod.
    let selector = spec.pod_selector.clone().unwrap_or_default();
    let selects_all = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    let has_rules = match direction {
        "Ingress" => spec.ingress.as_ref().is_some_and(|rules| !rules.is_empty()),
        _ => spec.egress.as_ref().is_some_and(|rules| !rules.is_empty()),
    };
    let applies = match &spec.policy_types {
        Some(types) => types.iter().any(|t| t == direction),
        None => direction == "Ingress" || has_rules,
    };
    selects_all && applies && !has_rules
}

/// Whether the policy's podSelector selects a pod with `labels`; an absent selector selects all.
fn selects(
    spec: &k8s_openapi::api::networking::v1::NetworkPolicySpec,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    match &spec.pod_selector {
        Some(selector) => selector_matches(selector, labels),
        None => true,
    }
}

/// Joins items with `separator`, listing at most [`MAX_NAMES_SHOWN`] and counting the rest.
pub fn shorten(names: &[String], separator: &str) -> String {
    if names.len() <= MAX_NAMES_SHOWN {
        return names.join(separator);
    }
    format!(
        "{} and {} more",
        names[..MAX_NAMES_SHOWN].join(separator),
        names.len() - MAX_NAMES_SHOWN
    )
}
