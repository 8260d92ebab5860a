//! The `vault_injection` check kind: the selected pods are mutated by the Vault Agent Injector
//! and their agent containers run.
//!
//! The injector's webhook reads the annotation `vault.hashicorp.com/agent-inject: "true"`, adds
//! the init container `vault-agent-init` (unless `agent-pre-populate` is `"false"`) and the
//! sidecar `vault-agent` (unless `agent-pre-populate-only` is `"true"`), and marks the pod with
//! `vault.hashicorp.com/agent-inject-status: injected`. Each secret is requested by an
//! annotation `vault.hashicorp.com/agent-inject-secret-<file name>`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Deserialize;

use super::network_policy::shorten;
use super::{list_all, validate_selector, ApiCall, Connection};
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

const INJECT: &str = "vault.hashicorp.com/agent-inject";
const INJECT_STATUS: &str = "vault.hashicorp.com/agent-inject-status";
const PRE_POPULATE: &str = "vault.hashicorp.com/agent-pre-populate";
const PRE_POPULATE_ONLY: &str = "vault.hashicorp.com/agent-pre-populate-only";
const SECRET_PREFIX: &str = "vault.hashicorp.com/agent-inject-secret-";
const AGENT: &str = "vault-agent";
const AGENT_INIT: &str = "vault-agent-init";

/// Selected pods whose injection is incomplete.
pub static FAILING_PODS: MeasureFamily = MeasureFamily {
    name: "readiness_vault_injection_failing_pods",
    help: "Running pods of a vault_injection check without the annotations, injected agent containers or ready agent",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&FAILING_PODS];

/// The `vault_injection` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultInjectionSpec {
    namespaces: Vec<String>,
    selector: String,
    #[serde(default)]
    expect_secrets: Vec<String>,
}

/// A validated `vault_injection` check.
#[derive(Debug)]
pub struct VaultInjectionCheck {
    connection: Arc<Connection>,
    namespaces: Vec<String>,
    selector: String,
    expect_secrets: Vec<String>,
}

impl VaultInjectionCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `vault_injection` block, recording every problem in `ctx`.
    pub fn build(
        spec: VaultInjectionSpec,
        ctx: &mut BuildContext<'_>,
    ) -> Option<VaultInjectionCheck> {
        let before = ctx.problem_count();
        if spec.namespaces.is_empty() || spec.namespaces.iter().any(|n| n.trim().is_empty()) {
            ctx.problem(
                "vault_injection.namespaces",
                "list one or more namespaces, such as `[shop]`",
            );
        }
        validate_selector(ctx, "vault_injection.selector", &spec.selector);
        if ctx.problem_count() > before {
            return None;
        }
        Some(VaultInjectionCheck {
            connection: ctx.kubernetes.clone(),
            namespaces: spec.namespaces,
            selector: spec.selector,
            expect_secrets: spec.expect_secrets,
        })
    }

    /// Lists the selected running pods and evaluates each one's injection.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };
        let params = ListParams::default()
            .labels(&self.selector)
            .fields("status.phase=Running");
        let mut missing = Vec::new();
        let mut not_ready = Vec::new();
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
                let name = format!(
                    "{namespace}/{}",
                    pod.metadata.name.clone().unwrap_or_default()
                );
                match self.evaluate(pod) {
                    Ok(()) => {}
                    Err((Reason::AgentNotReady, detail)) => {
                        not_ready.push(format!("{name}: {detail}"))
                    }
                    Err((_, detail)) => missing.push(format!("{name}: {detail}")),
                }
            }
        }
        if pods == 0 {
            return Outcome::fail(
                Reason::ObjectNotFound,
                format!(
                    "no running pod matching `{}` in namespace(s) {}",
                    self.selector,
                    self.namespaces.join(", ")
                ),
            );
        }
        let failing = missing.len() + not_ready.len();
        let measures = vec![Measure::new(&FAILING_PODS, failing as f64)];
        let reason = if !missing.is_empty() {
            Reason::InjectionMissing
        } else if !not_ready.is_empty() {
            Reason::AgentNotReady
        } else {
            return Outcome::pass(format!(
                "{pods} pod(s) run with an injected, ready Vault Agent"
            ))
            .with_value(0.0)
            .with_measures(measures);
        };
        let mut details = missing;
        details.extend(not_ready);
        Outcome::fail(
            reason,
            format!("{failing} of {pods} pod(s): {}", shorten(&details, "; ")),
        )
        .with_value(failing as f64)
        .with_measures(measures)
    }

    fn evaluate(&self, pod: &Pod) -> Result<(), (Reason, String)> {
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let annotation = |key: &str| annotations.get(key).map(String::as_str);
        if annotation(INJECT) != Some("true") {
            return Err((
                Reason::InjectionMissing,
                format!("annotation `{INJECT}` is not \"true\""),
            ));
        }
        let missing_secrets: Vec<&str> = self
            .expect_secrets
            .iter()
            .filter(|secret| !annotations.contains_key(&format!("{SECRET_PREFIX}{secret}")))
            .map(String::as_str)
            .collect();
        if !missing_secrets.is_empty() {
            return Err((
                Reason::InjectionMissing,
                format!(
                    "no `{SECRET_PREFIX}*` annotation for {}",
                    missing_secrets.join(", ")
                ),
            ));
        }
        if annotation(INJECT_STATUS) != Some("injected") {
            return Err((
                Reason::InjectionMissing,
                format!("annotation `{INJECT_STATUS}` is not \"injected\", so the injector webhook did not mutate the pod"),
            ));
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        if annotation(PRE_POPULATE) != Some("false") {
            if !spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == AGENT_INIT)
            {
                return Err((
                    Reason::InjectionMissing,
                    format!("init container `{AGENT_INIT}` is missing"),
                ));
            }
            let completed = status
                .init_container_statuses
                .iter()
                .flatten()
                .find(|s| s.name == AGENT_INIT)
                .and_then(|s| s.state.as_ref())
                .and_then(|state| state.terminated.as_ref())
                .is_some_and(|terminated| terminated.exit_code == 0);
            if !completed {
                return Err((
                    Reason::AgentNotReady,
                    format!("init container `{AGENT_INIT}` has not completed successfully"),
                ));
            }
        }
        if annotation(PRE_POPULATE_ONLY) != Some("true") {
            if !spec.containers.iter().any(|c| c.name == AGENT) {
                return Err((
                    Reason::InjectionMissing,
                    format!("container `{AGENT}` is missing"),
                ));
            }
            let ready = status
                .container_statuses
                .iter()
                .flatten()
                .find(|s| s.name == AGENT)
                .is_some_and(|s| s.ready);
            if !ready {
                return Err((
                    Reason::AgentNotReady,
                    format!("container `{AGENT}` is not ready"),
                ));
            }
        }
        Ok(())
    }
}
