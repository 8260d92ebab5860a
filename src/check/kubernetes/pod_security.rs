//! The `kubernetes_pod_security` check kind: the effective security context of every container
//! of the selected pods against least-privilege rules.
//!
//! The effective value of a setting is the container's own when it sets one, otherwise the
//! pod's (`runAsNonRoot`, `runAsUser`, `seccompProfile`); the other container settings have no
//! pod-level counterpart. The rules follow the "restricted" Pod Security Standard of Kubernetes,
//! and each can be switched off.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Pod, PodSecurityContext, SecurityContext};
use kube::api::{Api, ListParams};
use serde::Deserialize;

use super::{list_all, validate_selector, ApiCall, Connection};
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// Containers that violate each rule.
pub static VIOLATIONS: MeasureFamily = MeasureFamily {
    name: "readiness_kubernetes_pod_security_violations",
    help: "Containers (per workload and container name) of a kubernetes_pod_security check that violate a rule and are not exempt, by rule",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["rule"],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&VIOLATIONS];

/// One least-privilege rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `runAsNonRoot: true` or a non-zero `runAsUser`, and never `runAsUser: 0`.
    RunAsNonRoot,
    /// `allowPrivilegeEscalation: false`.
    NoPrivilegeEscalation,
    /// Not `privileged: true`.
    NotPrivileged,
    /// `readOnlyRootFilesystem: true`.
    ReadOnlyRootFilesystem,
    /// `capabilities.drop` contains `ALL`, and nothing but `NET_BIND_SERVICE` is added.
    DropAllCapabilities,
    /// A `RuntimeDefault` or `Localhost` seccomp profile.
    SeccompProfile,
    /// None of `hostNetwork`, `hostPID`, `hostIPC`.
    NoHostNamespaces,
}

impl Rule {
    const ALL: [Rule; 7] = [
        Rule::RunAsNonRoot,
        Rule::NoPrivilegeEscalation,
        Rule::NotPrivileged,
        Rule::ReadOnlyRootFilesystem,
        Rule::DropAllCapabilities,
        Rule::SeccompProfile,
        Rule::NoHostNamespaces,
    ];

    /// The snake_case name used in the configuration and the `rule` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::RunAsNonRoot => "run_as_non_root",
            Rule::NoPrivilegeEscalation => "no_privilege_escalation",
            Rule::NotPrivileged => "not_privileged",
            Rule::ReadOnlyRootFilesystem => "read_only_root_filesystem",
            Rule::DropAllCapabilities => "drop_all_capabilities",
            Rule::SeccompProfile => "seccomp_profile",
            Rule::NoHostNamespaces => "no_host_namespaces",
        }
    }
}

/// The `kubernetes_pod_security` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSecuritySpec {
    namespaces: Vec<String>,
    selector: Option<String>,
    #[serde(default)]
    rules: BTreeMap<Rule, bool>,
    #[serde(default)]
    exemptions: Vec<ExemptionSpec>,
}

/// One exemption, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptionSpec {
    namespace: Option<String>,
    workload: String,
    container: Option<String>,
    rules: Option<Vec<Rule>>,
    reason: String,
    expires: String,
}

#[derive(Debug)]
struct Exemption {
    namespace: Option<String>,
    workload: String,
    container: Option<String>,
    rules: Option<Vec<Rule>>,
    expires: SystemTime,
}

impl Exemption {
    fn covers(&self, namespace: &str, workload: &str, container: &str, rule: Rule) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.workload == workload
            && self.container.as_deref().is_none_or(|c| c == container)
            && self
                .rules
                .as_ref()
                .is_none_or(|rules| rules.contains(&rule))
    }
}

/// A validated `kubernetes_pod_security` check.
#[derive(Debug)]
pub struct PodSecurityCheck {
    connection: Arc<Connection>,
    namespaces: Vec<String>,
    selector: Option<String>,
    rules: Vec<Rule>,
    exemptions: Vec<Exemption>,
}

impl PodSecurityCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `kubernetes_pod_security` block, recording every problem in `ctx`.
    pub fn build(spec: PodSecuritySpec, ctx: &mut BuildContext<'_>) -> Option<PodSecurityCheck> {
        let before = ctx.problem_count();
        if spec.namespaces.is_empty() || spec.namespaces.iter().any(|n| n.trim().is_empty()) {
            ctx.problem(
                "kubernetes_pod_security.namespaces",
                "list one or more namespaces, such as `[shop]`",
            );
        }
        if let Some(selector) = &spec.selector {
            validate_selector(ctx, "kubernetes_pod_security.selector", selector);
        }
        let rules: Vec<Rule> = Rule::ALL
            .into_iter()
            .filter(|rule| spec.rules.get(rule).copied().unwrap_or(true))
            .collect();
        if rules.is_empty() {
            ctx.problem(
                "kubernetes_pod_security.rules",
                "every rule is switched off, so the check could never fail; leave at least one on",
            );
        }
        let mut exemptions = Vec::new();
        for (i, exemption) in spec.exemptions.into_iter().enumerate() {
            let field = format!("kubernetes_pod_security.exemptions[{i}]");
            if exemption.reason.trim().is_empty() {
                ctx.problem(
                    format!("{field}.reason"),
                    "reason is empty; say why the workload needs the exemption",
                );
            }
            let expires = time::OffsetDateTime::parse(
                exemption.expires.trim(),
                &time::format_description::well_known::Rfc3339,
            );
            match expires {
                Ok(expires) => exemptions.push(Exemption {
                    namespace: exemption.namespace,
                    workload: exemption.workload,
                    container: exemption.container,
                    rules: exemption.rules,
                    expires: SystemTime::from(expires),
                }),
                Err(_) => ctx.problem(
                    format!("{field}.expires"),
                    format!("invalid timestamp `{}`; write RFC 3339 with a time zone, such as `2025-12-31T00:00:00Z`", exemption.expires),
                ),
            }
        }
        if ctx.problem_count() > before {
            return None;
        }
        Some(PodSecurityCheck {
            connection: ctx.kubernetes.clone(),
            namespaces: spec.namespaces,
            selector: spec.selector,
            rules,
            exemptions,
        })
    }

    /// Lists the selected pods and evaluates every container.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };
        // Completed pods no longer run anything, so only pending and running pods are read.
        let mut params =
            ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
        if let Some(selector) = &self.selector {
            params = params.labels(selector);
        }
        let now = SystemTime::now();
        let mut findings: BTreeMap<(String, String, String), BTreeSet<Rule>> = BTreeMap::new();
        let mut exempted: BTreeSet<(String, String, String)> = BTreeSet::new();
        let mut expired: BTreeSet<String> = BTreeSet::new();
        let mut pods = 0;
        for namespace in &self.namespaces {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let call = ApiCall::new::<Pod>("list", Some(namespace));
            let listed = match list_all(&api, &call, &params).await {
                Ok(listed) => listed,
                Err(outcome) => return outcome,
            };
            pods += listed.len();
            for pod in &listed {
                let workload = workload_name(pod);
                for (container, rule) in violations(pod, &self.rules) {
                    let key = (namespace.clone(), workload.clone(), container.clone());
                    let matching: Vec<&Exemption> = self
                        .exemptions
                        .iter()
                        .filter(|exemption| {
                            exemption.covers(namespace, &workload, &container, rule)
                        })
                        .collect();
                    let exempt = matching.iter().any(|exemption| exemption.expires > now);
                    if !exempt && !matching.is_empty() {
                        expired.insert(format!("{namespace}/{workload} container `{container}`"));
                    }
                    if exempt {
                        exempted.insert(key);
                    } else {
                        findings.entry(key).or_default().insert(rule);
                    }
                }
            }
        }
        self.summarize(pods, findings, exempted.len(), expired)
    }

    fn summarize(
        &self,
        pods: usize,
        findings: BTreeMap<(String, String, String), BTreeSet<Rule>>,
        exempted: usize,
        expired: BTreeSet<String>,
    ) -> Outcome {
        if pods == 0 {
            let selector = self
                .selector
                .as_ref()
                .map(|selector| format!(" matching `{selector}`"))
                .unwrap_or_default();
            return Outcome::fail(
                Reason::ObjectNotFound,
                format!(
                    "no running or pending pod{selector} in namespace(s) {}",
                    self.namespaces.join(", ")
                ),
            );
        }
        let measures: Vec<Measure> = self
            .rules
            .iter()
            .map(|rule| Measure {
                family: &VIOLATIONS,
                label_values: vec![rule.as_str().to_string()],
                value: findings
                    .values()
                    .filter(|rules| rules.contains(rule))
                    .count() as f64,
            })
            .collect();
        let mut exempted_text = String::new();
        if exempted > 0 {
            exempted_text.push_str(&format!("; {exempted} container(s) with exempt rules"));
        }
        if !expired.is_empty() {
            let expired: Vec<String> = expired.into_iter().collect();
            exempted_text.push_str(&format!(
                "; expired exemptions no longer apply to {}",
                expired.join(", ")
            ));
        }
        if findings.is_empty() {
            return Outcome::pass(format!(
                "every container of {pods} pod(s) follows the {} enabled rule(s){exempted_text}",
                self.rules.len()
            ))
            .with_value(0.0)
            .with_measures(measures);
        }
        let offenders: Vec<String> = findings
            .iter()
            .map(|((namespace, workload, container), rules)| {
                let rules: Vec<&str> = rules.iter().map(|rule| rule.as_str()).collect();
                format!(
                    "{namespace}/{workload} container `{container}`: {}",
                    rules.join(", ")
                )
            })
            .collect();
        Outcome::fail(
            Reason::PodSecurityViolation,
            format!(
                "{} container(s) violate least-privilege rules: {}{exempted_text}",
                findings.len(),
                offenders.join("; ")
            ),
        )
        .with_value(findings.len() as f64)
        .with_measures(measures)
    }
}

/// The name of the workload that owns a pod: a Deployment's name for a pod of one of its
/// ReplicaSets, the controller's name otherwise, and the pod's own name for a bare pod.
pub fn workload_name(pod: &Pod) -> String {
    let metadata = &pod.metadata;
    let owner = metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true));
    let Some(owner) = owner else {
        return metadata.name.clone().unwrap_or_default();
    };
    if owner.kind == "ReplicaSet" {
        // A Deployment names its ReplicaSets `<deployment>-<pod-template-hash>`.
        let hash = metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get("pod-template-hash"));
        if let Some(name) = hash.and_then(|hash| owner.name.strip_suffix(&format!("-{hash}"))) {
            return name.to_string();
        }
        if let Some((name, _)) = owner.name.rsplit_once('-') {
            return name.to_string();
        }
    }
    owner.name.clone()
}

/// Every (container, rule) pair the pod violates; pod-level rules are reported for every
/// container, because an exemption names containers.
fn violations(pod: &Pod, rules: &[Rule]) -> Vec<(String, Rule)> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let pod_context = spec.security_context.clone().unwrap_or_default();
    let mut containers: Vec<(&str, Option<&SecurityContext>)> = Vec::new();
    for container in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        containers.push((&container.name, container.security_context.as_ref()));
    }
    for container in spec.ephemeral_containers.iter().flatten() {
        containers.push((&container.name, container.security_context.as_ref()));
    }
    let host_namespaces = spec.host_network == Some(true)
        || spec.host_pid == Some(true)
        || spec.host_ipc == Some(true);
    let mut found = Vec::new();
    for (name, context) in containers {
        let context = context.cloned().unwrap_or_default();
        for &rule in rules {
            let violated = match rule {
                Rule::NoHostNamespaces => host_namespaces,
                other => violates(other, &context, &pod_context),
            };
            if violated {
                found.push((name.to_string(), rule));
            }
        }
    }
    found
}

fn violates(rule: Rule, container: &SecurityContext, pod: &PodSecurityContext) -> bool {
    match rule {
        Rule::RunAsNonRoot => {
            let user = container.run_as_user.or(pod.run_as_user);
            let non_root = container.run_as_non_root.or(pod.run_as_non_root);
            user == Some(0) || (non_root != Some(true) && user.is_none())
        }
        Rule::NoPrivilegeEscalation => container.allow_privilege_escalation != Some(false),
        Rule::NotPrivileged => container.privileged == Some(true),
        Rule::ReadOnlyRootFilesystem => container.read_only_root_filesystem != Some(true),
        Rule::DropAllCapabilities => {
            let capabilities = container.capabilities.clone().unwrap_or_default();
            let drops_all = capabilities
                .drop
                .iter()
                .flatten()
                .any(|capability| capability == "ALL");
            let adds_only_allowed = capabilities
                .add
                .iter()
                .flatten()
                .all(|capability| capability == "NET_BIND_SERVICE");
            !(drops_all && adds_only_allowed)
        }
        Rule::SeccompProfile => {
            let profile = container
                .seccomp_profile
                .as_ref()
                .or(pod.seccomp_profile.as_ref());
            !profile.is_some_and(|profile| {
                profile.type_ == "RuntimeDefault" || profile.type_ == "Localhost"
            })
        }
        Rule::NoHostNamespaces => false,
    }
}
