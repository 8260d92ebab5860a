//! The `kubernetes_config` check kind: the ConfigMaps and Secrets that the selected workloads'
//! pod templates reference exist and contain the referenced keys.
//!
//! References come from `env[].valueFrom`, `envFrom`, and `configMap`, `secret` and `projected`
//! volumes of containers and init containers. A reference marked `optional: true` is skipped,
//! as the kubelet starts the pod without it. Secrets are read by name; only their key names are
//! used, and messages never contain a value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, PodTemplateSpec, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::Deserialize;

use super::network_policy::shorten;
use super::{get_opt, list_all, resource_name, validate_selector, ApiCall, Connection};
use crate::check::http::truncate;
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// References to missing ConfigMaps, Secrets or keys.
pub static MISSING: MeasureFamily = MeasureFamily {
    name: "readiness_kubernetes_config_missing_references",
    help: "References of a kubernetes_config check's workloads to ConfigMaps, Secrets or keys that do not exist",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&MISSING];

/// The `kubernetes_config` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRefsSpec {
    namespace: String,
    kind: Option<String>,
    name: Option<String>,
    selector: Option<String>,
}

/// A validated `kubernetes_config` check.
#[derive(Debug)]
pub struct ConfigRefsCheck {
    connection: Arc<Connection>,
    namespace: String,
    kinds: Vec<(&'static str, ApiResource)>,
    name: Option<String>,
    selector: Option<String>,
}

/// A referenced object: `ConfigMap` or `Secret`, and its name.
type Source = (&'static str, String);

/// Keys each source must contain, and the workloads that reference it.
#[derive(Debug, Default)]
struct Needs {
    keys: BTreeMap<String, BTreeSet<String>>,
    workloads: BTreeSet<String>,
}

impl ConfigRefsCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `kubernetes_config` block, recording every problem in `ctx`.
    pub fn build(spec: ConfigRefsSpec, ctx: &mut BuildContext<'_>) -> Option<ConfigRefsCheck> {
        let before = ctx.problem_count();
        if spec.namespace.trim().is_empty() {
            ctx.problem(
                "kubernetes_config.namespace",
                "namespace is empty; name the namespace of the workloads",
            );
        }
        let all = [
            ("deployment", ApiResource::erase::<Deployment>(&())),
            ("statefulset", ApiResource::erase::<StatefulSet>(&())),
            ("daemonset", ApiResource::erase::<DaemonSet>(&())),
        ];
        let kinds: Vec<(&'static str, ApiResource)> = match spec.kind.as_deref() {
            None => all.to_vec(),
            Some(kind) => {
                let selected: Vec<_> = all
                    .iter()
                    .filter(|(name, _)| kind.eq_ignore_ascii_case(name))
                    .cloned()
                    .collect();
                if selected.is_empty() {
                    ctx.problem(
                        "kubernetes_config.kind",
                        format!("unknown workload kind `{kind}`; use deployment, statefulset or daemonset"),
                    );
                }
                selected
            }
        };
        match (&spec.name, &spec.selector) {
            (Some(_), None) if spec.kind.is_none() => ctx.problem(
                "kubernetes_config.kind",
                "`name` needs `kind`; set `kind: deployment`, `statefulset` or `daemonset`",
            ),
            (Some(_), None) => {}
            (None, Some(selector)) => {
                validate_selector(ctx, "kubernetes_config.selector", selector);
            }
            _ => ctx.problem(
                "kubernetes_config",
                "set exactly one of `name` (with `kind`) or `selector`",
            ),
        }
        if ctx.problem_count() > before {
            return None;
        }
        Some(ConfigRefsCheck {
            connection: ctx.kubernetes.clone(),
            namespace: spec.namespace,
            kinds,
            name: spec.name,
            selector: spec.selector,
        })
    }

    /// Reads the workloads, collects their references and reads each referenced object once.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };
        let namespace = Some(self.namespace.as_str());
        let mut needs: BTreeMap<Source, Needs> = BTreeMap::new();
        let mut workloads = 0;
        for (kind, resource) in &self.kinds {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &self.namespace, resource);
            let resource_text = resource_name(&resource.plural, &resource.group);
            let objects = match (&self.name, &self.selector) {
                (Some(name), _) => {
                    let call = ApiCall::with_resource("get", resource_text, namespace).named(name);
                    match get_opt(&api, &call, name).await {
                        Ok(found) => found.into_iter().collect(),
                        Err(outcome) => return outcome,
                    }
                }
                (None, selector) => {
                    let call = ApiCall::with_resource("list", resource_text, namespace);
                    let params =
                        ListParams::default().labels(selector.as_deref().unwrap_or_default());
                    match list_all(&api, &call, &params).await {
                        Ok(found) => found,
                        Err(outcome) => return outcome,
                    }
                }
            };
            for object in &objects {
                workloads += 1;
                let workload = format!(
                    "{kind}/{}",
                    object.metadata.name.clone().unwrap_or_default()
                );
                let template: Option<PodTemplateSpec> = object
                    .data
                    .pointer("/spec/template")
                    .and_then(|template| serde_json::from_value(template.clone()).ok());
                let Some(spec) = template.and_then(|template| template.spec) else {
                    continue;
                };
                collect(&spec, &workload, &mut needs);
            }
        }
        if workloads == 0 {
            let what = match (&self.name, &self.selector) {
                (Some(name), _) => format!("workload `{name}`"),
                (None, selector) => format!(
                    "workload matching `{}`",
                    selector.as_deref().unwrap_or_default()
                ),
            };
            return Outcome::fail(
                Reason::ObjectNotFound,
                format!("no {what} in namespace `{}`", self.namespace),
            );
        }

        let mut missing_objects = Vec::new();
        let mut missing_keys = Vec::new();
        for ((kind, name), need) in &needs {
            let keys = match *kind {
                "ConfigMap" => {
                    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &self.namespace);
                    let call = ApiCall::new::<ConfigMap>("get", namespace).named(name);
                    match get_opt(&api, &call, name).await {
                        Ok(found) => found.map(|map| {
                            let mut keys: BTreeSet<String> =
                                map.data.unwrap_or_default().into_keys().collect();
                            keys.extend(map.binary_data.unwrap_or_default().into_keys());
                            keys
                        }),
                        Err(outcome) => return outcome,
                    }
                }
                _ => {
                    let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
                    let call = ApiCall::new::<Secret>("get", namespace).named(name);
                    match get_opt(&api, &call, name).await {
                        // Only the key names leave this block; the values are dropped here.
                        Ok(found) => found.map(|secret| {
                            secret
                                .data
                                .unwrap_or_default()
                                .into_keys()
                                .collect::<BTreeSet<String>>()
                        }),
                        Err(outcome) => return outcome,
                    }
                }
            };
            // Names and keys come from the API server's objects, so each is quoted in an
            // excerpt and each list of users is shortened.
            let name = truncate(name, 253);
            let users: Vec<String> = need.workloads.iter().cloned().collect();
            let Some(keys) = keys else {
                missing_objects.push(format!(
                    "{kind} `{name}` (used by {}) does not exist",
                    shorten(&users, ", ")
                ));
                continue;
            };
            for (key, key_users) in &need.keys {
                if !keys.contains(key) {
                    let key_users: Vec<String> = key_users.iter().cloned().collect();
                    missing_keys.push(format!(
                        "{kind} `{name}` has no key `{}` (used by {})",
                        truncate(key, 253),
                        shorten(&key_users, ", ")
                    ));
                }
            }
        }

        let missing = missing_objects.len() + missing_keys.len();
        let measures = vec![Measure::new(&MISSING, missing as f64)];
        let reason = if !missing_objects.is_empty() {
            Reason::ConfigMissing
        } else if !missing_keys.is_empty() {
            Reason::ConfigKeyMissing
        } else {
            return Outcome::pass(format!(
                "{} ConfigMap(s) and Secret(s) referenced by {workloads} workload(s) exist with every referenced key",
                needs.len()
            ))
            .with_value(0.0)
            .with_measures(measures);
        };
        let mut details = missing_objects;
        details.extend(missing_keys);
        Outcome::fail(reason, shorten(&details, "; "))
            .with_value(missing as f64)
            .with_measures(measures)
    }
}

/// Records every required reference of a pod template.
fn collect(spec: &PodSpec, workload: &str, needs: &mut BTreeMap<Source, Needs>) {
    let mut add = |kind: &'static str, name: &str, key: Option<&str>, optional: Option<bool>| {
        if optional == Some(true) || name.is_empty() {
            return;
        }
        let need = needs.entry((kind, name.to_string())).or_default();
        need.workloads.insert(workload.to_string());
        if let Some(key) = key {
            need.keys
                .entry(key.to_string())
                .or_default()
                .insert(workload.to_string());
        }
    };
    for container in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        for env in container.env.iter().flatten() {
            let Some(from) = &env.value_from else {
                continue;
            };
            if let Some(r) = &from.config_map_key_ref {
                add("ConfigMap", &r.name, Some(&r.key), r.optional);
            }
            if let Some(r) = &from.secret_key_ref {
                add("Secret", &r.name, Some(&r.key), r.optional);
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                add("ConfigMap", &r.name, None, r.optional);
            }
            if let Some(r) = &from.secret_ref {
                add("Secret", &r.name, None, r.optional);
            }
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(source) = &volume.config_map {
            add("ConfigMap", &source.name, None, source.optional);
            for item in source.items.iter().flatten() {
                add("ConfigMap", &source.name, Some(&item.key), source.optional);
            }
        }
        if let Some(source) = &volume.secret {
            let name = source.secret_name.clone().unwrap_or_default();
            add("Secret", &name, None, source.optional);
            for item in source.items.iter().flatten() {
                add("Secret", &name, Some(&item.key), source.optional);
            }
        }
        let projected = volume
            .projected
            .iter()
            .flat_map(|projected| projected.sources.iter().flatten());
        for source in projected {
            if let Some(map) = &source.config_map {
                add("ConfigMap", &map.name, None, map.optional);
                for item in map.items.iter().flatten() {
                    add("ConfigMap", &map.name, Some(&item.key), map.optional);
                }
            }
            if let Some(secret) = &source.secret {
                add("Secret", &secret.name, None, secret.optional);
                for item in secret.items.iter().flatten() {
                    add("Secret", &secret.name, Some(&item.key), secret.optional);
                }
            }
        }
    }
}
