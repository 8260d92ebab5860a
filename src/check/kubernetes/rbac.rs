//! The `kubernetes_rbac` check kind: no service account of the selected namespaces is bound to
//! `cluster-admin` or to a role that grants `*` verbs or resources, except where allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{Api, ListParams};
use serde::Deserialize;

use super::{get_opt, list_all, ApiCall, Connection};
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// Bindings of service accounts to excessive roles that the allow-list does not cover.
pub static VIOLATIONS: MeasureFamily = MeasureFamily {
    name: "readiness_kubernetes_rbac_violations",
    help: "Service account and role pairs of a kubernetes_rbac check that grant cluster-admin or wildcard permissions and are not allowed",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&VIOLATIONS];

/// The `kubernetes_rbac` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacSpec {
    namespaces: Vec<String>,
    #[serde(default)]
    allow: Vec<AllowSpec>,
}

/// One allowed binding, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowSpec {
    service_account: String,
    role: Option<String>,
    reason: String,
}

#[derive(Debug)]
struct Allowed {
    service_account: String,
    role: Option<String>,
}

/// A validated `kubernetes_rbac` check.
#[derive(Debug)]
pub struct RbacCheck {
    connection: Arc<Connection>,
    namespaces: Vec<String>,
    allow: Vec<Allowed>,
}

/// A role a binding refers to, as `Role/namespace/name` or `ClusterRole/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RoleKey {
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl RoleKey {
    fn from_ref(role_ref: &RoleRef, binding_namespace: Option<&str>) -> RoleKey {
        let namespace = if role_ref.kind == "Role" {
            binding_namespace.map(str::to_string)
        } else {
            None
        };
        RoleKey {
            kind: role_ref.kind.clone(),
            namespace,
            name: role_ref.name.clone(),
        }
    }

    /// `ClusterRole/edit` or `Role/ns/name`, the form the allow-list uses.
    fn display(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{}/{namespace}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

impl RbacCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `kubernetes_rbac` block, recording every problem in `ctx`.
    pub fn build(spec: RbacSpec, ctx: &mut BuildContext<'_>) -> Option<RbacCheck> {
        let before = ctx.problem_count();
        if spec.namespaces.is_empty() || spec.namespaces.iter().any(|n| n.trim().is_empty()) {
            ctx.problem(
                "kubernetes_rbac.namespaces",
                "list one or more namespaces, such as `[shop]`",
            );
        }
        let mut allow = Vec::new();
        for (i, entry) in spec.allow.into_iter().enumerate() {
            let field = format!("kubernetes_rbac.allow[{i}]");
            if entry
                .service_account
                .split('/')
                .filter(|part| !part.is_empty())
                .count()
                != 2
            {
                ctx.problem(
                    format!("{field}.service_account"),
                    format!(
                        "`{}` is not `namespace/name`; write it such as `shop/ci-deployer`",
                        entry.service_account
                    ),
                );
            }
            if let Some(role) = &entry.role {
                let valid = matches!(role.split('/').collect::<Vec<_>>().as_slice(), ["ClusterRole", name] if !name.is_empty())
                    || matches!(role.split('/').collect::<Vec<_>>().as_slice(), ["Role", namespace, name] if !namespace.is_empty() && !name.is_empty());
                if !valid {
                    ctx.problem(
                        format!("{field}.role"),
                        format!("`{role}` is not `ClusterRole/NAME` or `Role/NAMESPACE/NAME`; write it such as `ClusterRole/edit`"),
                    );
                }
            }
            if entry.reason.trim().is_empty() {
                ctx.problem(
                    format!("{field}.reason"),
                    "reason is empty; say why the binding is needed",
                );
            }
            allow.push(Allowed {
                service_account: entry.service_account,
                role: entry.role,
            });
        }
        if ctx.problem_count() > before {
            return None;
        }
        Some(RbacCheck {
            connection: ctx.kubernetes.clone(),
            namespaces: spec.namespaces,
            allow,
        })
    }

    /// Reads the bindings and the roles they refer to, and evaluates them.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };

        // Service account -> roles bound to it, from RoleBindings and ClusterRoleBindings.
        let mut bound: BTreeMap<String, BTreeSet<RoleKey>> = BTreeMap::new();
        for namespace in &self.namespaces {
            let api: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
            let call = ApiCall::new::<RoleBinding>("list", Some(namespace));
            let bindings = match list_all(&api, &call, &ListParams::default()).await {
                Ok(bindings) => bindings,
                Err(outcome) => return outcome,
            };
            for binding in &bindings {
                let role = RoleKey::from_ref(&binding.role_ref, Some(namespace));
                for account in self.service_accounts(binding.subjects.as_deref(), Some(namespace)) {
                    bound.entry(account).or_default().insert(role.clone());
                }
            }
        }
        let api: Api<ClusterRoleBinding> = Api::all(client.clone());
        let call = ApiCall::new::<ClusterRoleBinding>("list", None);
        let bindings = match list_all(&api, &call, &ListParams::default()).await {
            Ok(bindings) => bindings,
            Err(outcome) => return outcome,
        };
        for binding in &bindings {
            let role = RoleKey::from_ref(&binding.role_ref, None);
            for account in self.service_accounts(binding.subjects.as_deref(), None) {
                bound.entry(account).or_default().insert(role.clone());
            }
        }

        // Each role is read once, however many bindings refer to it.
        let mut rules: BTreeMap<RoleKey, Option<Vec<PolicyRule>>> = BTreeMap::new();
        let roles: BTreeSet<RoleKey> = bound.values().flatten().cloned().collect();
        for role in roles {
            if role.kind == "ClusterRole" && role.name == "cluster-admin" {
                continue;
            }
            let fetched = match &role.namespace {
                Some(namespace) => {
                    let api: Api<Role> = Api::namespaced(client.clone(), namespace);
                    let call = ApiCall::new::<Role>("get", Some(namespace)).named(&role.name);
                    get_opt(&api, &call, &role.name)
                        .await
                        .map(|role| role.map(|role| role.rules.unwrap_or_default()))
                }
                None => {
                    let api: Api<ClusterRole> = Api::all(client.clone());
                    let call = ApiCall::new::<ClusterRole>("get", None).named(&role.name);
                    get_opt(&api, &call, &role.name)
                        .await
                        .map(|role| role.map(|role| role.rules.unwrap_or_default()))
                }
            };
            match fetched {
                Ok(found) => {
                    rules.insert(role, found);
                }
                Err(outcome) => return outcome,
            }
        }

        let mut violations = Vec::new();
        for (account, roles) in &bound {
            for role in roles {
                let finding = if role.kind == "ClusterRole" && role.name == "cluster-admin" {
                    Some("cluster-admin".to_string())
                } else {
                    rules
                        .get(role)
                        .cloned()
                        .flatten()
                        .and_then(|rules| wildcard(&rules))
                };
                let Some(finding) = finding else {
                    continue;
                };
                let role_text = role.display();
                let allowed = self.allow.iter().any(|entry| {
                    &entry.service_account == account
                        && entry
                            .role
                            .as_ref()
                            .is_none_or(|allowed| *allowed == role_text)
                });
                if !allowed {
                    violations.push(format!("{account} is bound to {role_text} ({finding})"));
                }
            }
        }

        let measures = vec![Measure::new(&VIOLATIONS, violations.len() as f64)];
        if violations.is_empty() {
            return Outcome::pass(format!(
                "no service account of {} is bound to cluster-admin or wildcard permissions ({} service account(s) with bindings)",
                self.namespaces.join(", "),
                bound.len()
            ))
            .with_value(0.0)
            .with_measures(measures);
        }
        Outcome::fail(
            Reason::ExcessivePermissions,
            format!(
                "{} binding(s) grant too much: {}",
                violations.len(),
                violations.join("; ")
            ),
        )
        .with_value(violations.len() as f64)
        .with_measures(measures)
    }

    /// The service accounts (`namespace/name`) among `subjects` that live in a selected
    /// namespace. A subject without a namespace is in the binding's namespace.
    fn service_accounts(
        &self,
        subjects: Option<&[Subject]>,
        binding_namespace: Option<&str>,
    ) -> Vec<String> {
        subjects
            .unwrap_or_default()
            .iter()
            .filter(|subject| subject.kind == "ServiceAccount")
            .filter_map(|subject| {
                let namespace = subject.namespace.as_deref().or(binding_namespace)?;
                self.namespaces
                    .iter()
                    .any(|selected| selected == namespace)
                    .then(|| format!("{namespace}/{}", subject.name))
            })
            .collect()
    }
}

/// Describes the first rule that grants `*` verbs or `*` resources, if any.
fn wildcard(rules: &[PolicyRule]) -> Option<String> {
    rules.iter().find_map(|rule| {
        let resources = rule.resources.as_deref().unwrap_or_default();
        let verbs_wild = rule.verbs.iter().any(|verb| verb == "*");
        let resources_wild = resources.iter().any(|resource| resource == "*");
        match (verbs_wild, resources_wild) {
            (true, true) => Some("`*` verbs on `*` resources".to_string()),
            (true, false) => Some(format!("`*` verbs on {}", resources.join(", "))),
            (false, true) => Some(format!("{} on `*` resources", rule.verbs.join(", "))),
            (false, false) => None,
        }
    })
}
