//! The `kubernetes_workload` check kind: Deployments, StatefulSets and DaemonSets rolled out and
//! available, by the rules the controllers and `kubectl rollout status` apply.
//!
//! Objects are read as raw JSON rather than through the typed k8s-openapi structs, because
//! those fill an absent required status field with zero. The API omits zero counts
//! (`omitempty`), so an absent count is shown as "not reported", never exported as zero, and
//! never counts as equal to a positive desired count.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::Deserialize;

use super::network_policy::shorten;
use super::{get_opt, list_all, validate_selector, ApiCall, Connection};
use crate::check::http::truncate;
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// Replica counts of each selected workload, as its controller reports them.
pub static REPLICAS: MeasureFamily = MeasureFamily {
    name: "readiness_kubernetes_workload_replicas",
    help: "Replica counts of a workload selected by a kubernetes_workload check, by state (desired, updated, ready, available); a count the controller did not report is absent",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["workload", "state"],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&REPLICAS];

/// The `kubernetes_workload` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    namespace: String,
    kind: Option<String>,
    name: Option<String>,
    selector: Option<String>,
    expect_image: Option<ImageSpec>,
}

/// The image the workload's pod template must run, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageSpec {
    container: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

/// A workload controller type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl WorkloadKind {
    const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
    ];

    fn parse(text: &str) -> Option<WorkloadKind> {
        match text.to_ascii_lowercase().as_str() {
            "deployment" => Some(WorkloadKind::Deployment),
            "statefulset" => Some(WorkloadKind::StatefulSet),
            "daemonset" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }

    /// The lowercase name used in messages and in the `workload` label (`deployment/api`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
        }
    }

    fn api_resource(self) -> ApiResource {
        match self {
            WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
            WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        }
    }
}

#[derive(Debug)]
enum Selection {
    Name(String),
    Selector(String),
}

#[derive(Debug)]
struct ExpectedImage {
    container: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

/// A validated `kubernetes_workload` check.
#[derive(Debug)]
pub struct WorkloadCheck {
    connection: Arc<Connection>,
    namespace: String,
    kinds: Vec<WorkloadKind>,
    selection: Selection,
    expect_image: Option<ExpectedImage>,
}

impl WorkloadCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `kubernetes_workload` block, recording every problem in `ctx`.
    pub fn build(spec: WorkloadSpec, ctx: &mut BuildContext<'_>) -> Option<WorkloadCheck> {
        let before = ctx.problem_count();
        if spec.namespace.trim().is_empty() {
            ctx.problem(
                "kubernetes_workload.namespace",
                "namespace is empty; name the namespace of the workload",
            );
        }
        let kind = spec.kind.as_deref().map(|text| {
            let kind = WorkloadKind::parse(text);
            if kind.is_none() {
                ctx.problem(
                    "kubernetes_workload.kind",
                    format!(
                        "unknown workload kind `{text}`; use deployment, statefulset or daemonset"
                    ),
                );
            }
            kind
        });
        let selection = match (spec.name, spec.selector) {
            (Some(name), None) => {
                if kind.is_none() {
                    ctx.problem(
                        "kubernetes_workload.kind",
                        "`name` needs `kind`; set `kind: deployment`, `statefulset` or `daemonset`",
                    );
                }
                Some(Selection::Name(name))
            }
            (None, Some(selector)) => {
                validate_selector(ctx, "kubernetes_workload.selector", &selector)
                    .then_some(Selection::Selector(selector))
            }
            _ => {
                ctx.problem(
                    "kubernetes_workload",
                    "set exactly one of `name` (with `kind`) or `selector`",
                );
                None
            }
        };
        let expect_image = spec.expect_image.map(|image| {
            if image.tag.is_some() == image.digest.is_some() {
                ctx.problem(
                    "kubernetes_workload.expect_image",
                    "set exactly one of `tag` (such as `1.4.2`) or `digest` (such as `sha256:...`)",
                );
            }
            if let Some(digest) = &image.digest {
                if !digest.contains(':') {
                    ctx.problem(
                        "kubernetes_workload.expect_image.digest",
                        format!("invalid digest `{digest}`; write the algorithm and hex, such as `sha256:4f5d...`"),
                    );
                }
            }
            ExpectedImage {
                container: image.container,
                tag: image.tag,
                digest: image.digest,
            }
        });
        if ctx.problem_count() > before {
            return None;
        }
        let kinds = match kind.flatten() {
            Some(kind) => vec![kind],
            None => WorkloadKind::ALL.to_vec(),
        };
        Some(WorkloadCheck {
            connection: ctx.kubernetes.clone(),
            namespace: spec.namespace,
            kinds,
            selection: selection?,
            expect_image,
        })
    }

    /// Reads the selected workloads and evaluates their rollout.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };
        let mut evaluations = Vec::new();
        for kind in &self.kinds {
            let resource = kind.api_resource();
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &self.namespace, &resource);
            let objects = match &self.selection {
                Selection::Name(name) => {
                    let call = ApiCall::with_resource(
                        "get",
                        super::resource_name(&resource.plural, &resource.group),
                        Some(&self.namespace),
                    )
                    .named(name);
                    match get_opt(&api, &call, name).await {
                        Ok(Some(object)) => vec![object],
                        Ok(None) => {
                            return Outcome::fail(
                                Reason::ObjectNotFound,
                                format!(
                                    "{} `{name}` not found in namespace `{}`",
                                    kind.as_str(),
                                    self.namespace
                                ),
                            )
                        }
                        Err(outcome) => return outcome,
                    }
                }
                Selection::Selector(selector) => {
                    let call = ApiCall::with_resource(
                        "list",
                        super::resource_name(&resource.plural, &resource.group),
                        Some(&self.namespace),
                    );
                    match list_all(&api, &call, &ListParams::default().labels(selector)).await {
                        Ok(objects) => objects,
                        Err(outcome) => return outcome,
                    }
                }
            };
            for object in objects {
                evaluations.push(evaluate(*kind, &object, self.expect_image.as_ref()));
            }
        }
        self.summarize(evaluations)
    }

    fn summarize(&self, evaluations: Vec<Evaluation>) -> Outcome {
        if evaluations.is_empty() {
            let Selection::Selector(selector) = &self.selection else {
                unreachable!("a named workload is either found or reported missing");
            };
            return Outcome::fail(
                Reason::ObjectNotFound,
                format!(
                    "no {} in namespace `{}` matches selector `{selector}`",
                    kinds_text(&self.kinds),
                    self.namespace
                ),
            );
        }
        let measures: Vec<Measure> = evaluations
            .iter()
            .flat_map(|evaluation| {
                evaluation.counts.iter().filter_map(|(state, count)| {
                    count.map(|count| Measure {
                        family: &REPLICAS,
                        label_values: vec![evaluation.workload.clone(), state.to_string()],
                        value: f64::from(count),
                    })
                })
            })
            .collect();
        let total = evaluations.len();
        let mut problems: Vec<&Evaluation> = evaluations
            .iter()
            .filter(|evaluation| evaluation.problem.is_some())
            .collect();
        if problems.is_empty() {
            let details: Vec<String> = evaluations
                .iter()
                .map(|evaluation| format!("{}: {}", evaluation.workload, evaluation.summary))
                .collect();
            return Outcome::pass(format!(
                "rolled out and available: {}",
                shorten(&details, "; ")
            ))
            .with_value(total as f64)
            .with_measures(measures);
        }
        // The most serious problem gives the reason; the message lists every workload's.
        problems.sort_by_key(|evaluation| {
            evaluation
                .problem
                .as_ref()
                .map(|problem| problem.severity_rank())
        });
        let first = problems[0].problem.as_ref().expect("filtered on problems");
        let details: Vec<String> = problems
            .iter()
            .map(|evaluation| {
                let problem = evaluation.problem.as_ref().expect("filtered on problems");
                format!("{}: {}", evaluation.workload, problem.message)
            })
            .collect();
        let message = format!(
            "{} of {total} workload(s) not rolled out: {}",
            problems.len(),
            shorten(&details, "; ")
        );
        let outcome = if first.reason == Reason::StatusNotReported {
            Outcome::error(first.reason, message)
        } else {
            Outcome::fail(first.reason, message)
        };
        outcome
            .with_value((total - problems.len()) as f64)
            .with_measures(measures)
    }
}

fn kinds_text(kinds: &[WorkloadKind]) -> String {
    kinds
        .iter()
        .map(|kind| kind.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The parts of a workload's spec and status this kind reads; every field may be absent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadData {
    spec: Option<RawSpec>,
    status: Option<RawStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    replicas: Option<i32>,
    paused: Option<bool>,
    template: Option<PodTemplateSpec>,
    update_strategy: Option<RawUpdateStrategy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUpdateStrategy {
    #[serde(rename = "type")]
    type_: Option<String>,
    rolling_update: Option<RawRollingUpdate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRollingUpdate {
    partition: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStatus {
    observed_generation: Option<i64>,
    replicas: Option<i32>,
    updated_replicas: Option<i32>,
    ready_replicas: Option<i32>,
    available_replicas: Option<i32>,
    current_revision: Option<String>,
    update_revision: Option<String>,
    desired_number_scheduled: Option<i32>,
    updated_number_scheduled: Option<i32>,
    number_ready: Option<i32>,
    number_available: Option<i32>,
    conditions: Option<Vec<RawCondition>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCondition {
    #[serde(rename = "type")]
    type_: String,
    reason: Option<String>,
    message: Option<String>,
}

/// What was found about one workload.
struct Evaluation {
    workload: String,
    counts: Vec<(&'static str, Option<i32>)>,
    summary: String,
    problem: Option<Problem>,
}

struct Problem {
    reason: Reason,
    message: String,
}

impl Problem {
    fn new(reason: Reason, message: impl Into<String>) -> Option<Problem> {
        Some(Problem {
            reason,
            message: message.into(),
        })
    }

    fn severity_rank(&self) -> u8 {
        match self.reason {
            Reason::StatusNotReported => 0,
            Reason::ProgressDeadlineExceeded => 1,
            Reason::RolloutPaused => 2,
            Reason::RolloutInProgress => 3,
            Reason::ReplicasNotReady => 4,
            _ => 5,
        }
    }
}

fn evaluate(
    kind: WorkloadKind,
    object: &DynamicObject,
    image: Option<&ExpectedImage>,
) -> Evaluation {
    let name = object.metadata.name.clone().unwrap_or_default();
    let workload = format!("{}/{name}", kind.as_str());
    let data: WorkloadData = match serde_json::from_value(object.data.clone()) {
        Ok(data) => data,
        Err(err) => {
            return Evaluation {
                workload,
                counts: Vec::new(),
                summary: String::new(),
                problem: Problem::new(
                    Reason::InvalidResponse,
                    format!(
                        "spec or status is not in the apps/v1 format: {}",
                        truncate(&err.to_string(), 200)
                    ),
                ),
            }
        }
    };
    let generation = object.metadata.generation;
    let spec = data.spec.unwrap_or_default();
    let (counts, mut problem) = match kind {
        WorkloadKind::Deployment => deployment(generation, &spec, data.status.as_ref()),
        WorkloadKind::StatefulSet => stateful_set(generation, &spec, data.status.as_ref()),
        WorkloadKind::DaemonSet => daemon_set(generation, &spec, data.status.as_ref()),
    };
    if problem.is_none() {
        if let Some(image) = image {
            problem = image_problem(&spec, image);
        }
    }
    let summary = counts
        .iter()
        .map(|(state, count)| match count {
            Some(count) => format!("{state} {count}"),
            None => format!("{state} not reported"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Evaluation {
        workload,
        counts,
        summary,
        problem,
    }
}

type Counts = Vec<(&'static str, Option<i32>)>;

/// The checks shared by every controller: a status exists and has observed the latest spec.
fn observed_problem(generation: Option<i64>, status: Option<&RawStatus>) -> Option<Problem> {
    let Some(observed) = status.and_then(|status| status.observed_generation) else {
        return Problem::new(
            Reason::StatusNotReported,
            "the controller has not reported a status (status.observedGeneration is absent)",
        );
    };
    match generation {
        Some(generation) if generation > observed => Problem::new(
            Reason::RolloutInProgress,
            format!("waiting for the controller to observe the latest spec (generation {generation}, observed {observed})"),
        ),
        _ => None,
    }
}

/// A count that must equal `desired`; an absent count equals only a desired count of zero.
fn count_problem(what: &str, count: Option<i32>, desired: i32) -> Option<String> {
    match count {
        Some(count) if count == desired => None,
        None if desired == 0 => None,
        Some(count) => Some(format!("{count} of {desired} replicas {what}")),
        None => Some(format!("{what} replicas not reported, {desired} desired")),
    }
}

fn deployment(
    generation: Option<i64>,
    spec: &RawSpec,
    status: Option<&RawStatus>,
) -> (Counts, Option<Problem>) {
    // The API server defaults spec.replicas to 1.
    let desired = spec.replicas.unwrap_or(1);
    let empty = RawStatus::default();
    let status_ref = status.unwrap_or(&empty);
    let counts = vec![
        ("desired", Some(desired)),
        ("updated", status_ref.updated_replicas),
        ("ready", status_ref.ready_replicas),
        ("available", status_ref.available_replicas),
    ];
    if spec.paused == Some(true) {
        return (
            counts,
            Problem::new(
                Reason::RolloutPaused,
                "paused (spec.paused is true); resume it with `kubectl rollout resume`",
            ),
        );
    }
    if let Some(problem) = observed_problem(generation, status) {
        return (counts, Some(problem));
    }
    let progressing = status_ref
        .conditions
        .iter()
        .flatten()
        .find(|condition| condition.type_ == "Progressing");
    if let Some(condition) = progressing {
        if condition.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            let message = condition.message.as_deref().unwrap_or_default();
            return (
                counts,
                Problem::new(
                    Reason::ProgressDeadlineExceeded,
                    format!("progress deadline exceeded: {message}"),
                ),
            );
        }
    }
    if let Some(text) = count_problem("updated", status_ref.updated_replicas, desired) {
        return (counts, Problem::new(Reason::RolloutInProgress, text));
    }
    let updated = status_ref.updated_replicas.unwrap_or(0);
    if let Some(total) = status_ref.replicas {
        if total > updated {
            return (
                counts,
                Problem::new(
                    Reason::RolloutInProgress,
                    format!("{} old replicas are pending termination", total - updated),
                ),
            );
        }
    }
    for (what, count) in [
        ("available", status_ref.available_replicas),
        ("ready", status_ref.ready_replicas),
    ] {
        if let Some(text) = count_problem(what, count, desired) {
            return (counts, Problem::new(Reason::ReplicasNotReady, text));
        }
    }
    (counts, None)
}

fn stateful_set(
    generation: Option<i64>,
    spec: &RawSpec,
    status: Option<&RawStatus>,
) -> (Counts, Option<Problem>) {
    let desired = spec.replicas.unwrap_or(1);
    let empty = RawStatus::default();
    let status_ref = status.unwrap_or(&empty);
    let counts = vec![
        ("desired", Some(desired)),
        ("updated", status_ref.updated_replicas),
        ("ready", status_ref.ready_replicas),
        ("available", status_ref.available_replicas),
    ];
    if let Some(problem) = observed_problem(generation, status) {
        return (counts, Some(problem));
    }
    let strategy = spec.update_strategy.as_ref();
    let strategy_type = strategy
        .and_then(|strategy| strategy.type_.as_deref())
        .unwrap_or("RollingUpdate");
    let partition = strategy
        .and_then(|strategy| strategy.rolling_update.as_ref())
        .and_then(|rolling| rolling.partition)
        .unwrap_or(0);
    if strategy_type == "OnDelete" {
        // The controller never advances currentRevision under OnDelete, so the revisions are
        // not compared; every pod must run the update revision instead.
        if let Some(text) = count_problem("updated", status_ref.updated_replicas, desired) {
            return (
                counts,
                Problem::new(
                    Reason::RolloutInProgress,
                    format!("{text}; the OnDelete strategy replaces a pod only when it is deleted"),
                ),
            );
        }
    } else if partition > 0 {
        // Pods with an ordinal below the partition keep the current revision on purpose.
        let expected = (desired - partition).max(0);
        let updated = status_ref.updated_replicas;
        if updated.unwrap_or(0) < expected {
            let shown = updated.map_or("not reported".to_string(), |count| count.to_string());
            return (
                counts,
                Problem::new(
                    Reason::RolloutInProgress,
                    format!("partitioned rollout: {shown} of {expected} pods at or above partition {partition} updated"),
                ),
            );
        }
    } else {
        match (&status_ref.current_revision, &status_ref.update_revision) {
            (Some(current), Some(update)) if current == update => {}
            (Some(current), Some(update)) => {
                let updated = status_ref
                    .updated_replicas
                    .map_or("not reported".to_string(), |count| count.to_string());
                return (
                    counts,
                    Problem::new(
                        Reason::RolloutInProgress,
                        format!("rolling update from revision {current} to {update}: {updated} of {desired} pods updated"),
                    ),
                );
            }
            _ => {
                return (
                    counts,
                    Problem::new(
                        Reason::StatusNotReported,
                        "status.currentRevision or status.updateRevision is absent",
                    ),
                )
            }
        }
    }
    for (what, count) in [
        ("ready", status_ref.ready_replicas),
        ("available", status_ref.available_replicas),
    ] {
        if let Some(text) = count_problem(what, count, desired) {
            return (counts, Problem::new(Reason::ReplicasNotReady, text));
        }
    }
    (counts, None)
}

fn daemon_set(
    generation: Option<i64>,
    spec: &RawSpec,
    status: Option<&RawStatus>,
) -> (Counts, Option<Problem>) {
    let empty = RawStatus::default();
    let status_ref = status.unwrap_or(&empty);
    let counts = vec![
        ("desired", status_ref.desired_number_scheduled),
        ("updated", status_ref.updated_number_scheduled),
        ("ready", status_ref.number_ready),
        ("available", status_ref.number_available),
    ];
    if let Some(problem) = observed_problem(generation, status) {
        return (counts, Some(problem));
    }
    let Some(desired) = status_ref.desired_number_scheduled else {
        return (
            counts,
            Problem::new(
                Reason::StatusNotReported,
                "status.desiredNumberScheduled is absent",
            ),
        );
    };
    let on_delete = spec
        .update_strategy
        .as_ref()
        .and_then(|strategy| strategy.type_.as_deref())
        == Some("OnDelete");
    if let Some(text) = count_problem("updated", status_ref.updated_number_scheduled, desired) {
        let hint = if on_delete {
            "; the OnDelete strategy replaces a pod only when it is deleted"
        } else {
            ""
        };
        return (
            counts,
            Problem::new(Reason::RolloutInProgress, format!("{text}{hint}")),
        );
    }
    for (what, count) in [
        ("available", status_ref.number_available),
        ("ready", status_ref.number_ready),
    ] {
        if let Some(text) = count_problem(what, count, desired) {
            return (counts, Problem::new(Reason::ReplicasNotReady, text));
        }
    }
    (counts, None)
}

/// Compares the pod template's images with the expected tag or digest.
fn image_problem(spec: &RawSpec, expected: &ExpectedImage) -> Option<Problem> {
    let containers = spec
        .template
        .as_ref()
        .and_then(|template| template.spec.as_ref())
        .map(|pod| pod.containers.as_slice())
        .unwrap_or_default();
    let selected: Vec<_> = containers
        .iter()
        .filter(|container| {
            expected
                .container
                .as_ref()
                .is_none_or(|name| &container.name == name)
        })
        .collect();
    if selected.is_empty() {
        let name = expected.container.as_deref().unwrap_or("any");
        return Problem::new(
            Reason::ImageMismatch,
            format!("the pod template has no container `{name}`"),
        );
    }
    let mut wrong = Vec::new();
    for container in selected {
        let image = container.image.as_deref().unwrap_or_default();
        let matches = match (&expected.tag, &expected.digest) {
            (Some(tag), _) => image_tag(image) == Some(tag.as_str()),
            (None, Some(digest)) => image.ends_with(&format!("@{digest}")),
            (None, None) => true,
        };
        if !matches {
            wrong.push(format!("container `{}` runs `{image}`", container.name));
        }
    }
    if wrong.is_empty() {
        return None;
    }
    let expected_text = match (&expected.tag, &expected.digest) {
        (Some(tag), _) => format!("tag `{tag}`"),
        (None, Some(digest)) => format!("digest `{digest}`"),
        (None, None) => String::new(),
    };
    Problem::new(
        Reason::ImageMismatch,
        format!("expected {expected_text}, but {}", wrong.join(", ")),
    )
}

/// The tag of an image reference: `1.4.2` in `registry:5000/shop/api:1.4.2@sha256:...`.
fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment_start = without_digest.rfind('/').map_or(0, |i| i + 1);
    let last_segment = &without_digest[last_segment_start..];
    last_segment.split_once(':').map(|(_, tag)| tag)
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn image_tag_ignores_registry_port_and_digest() {
        assert_eq!(image_tag("registry:5000/shop/api:1.4.2"), Some("1.4.2"));
        assert_eq!(image_tag("registry:5000/shop/api"), None);
        assert_eq!(image_tag("api:2@sha256:abc"), Some("2"));
        assert_eq!(image_tag("api@sha256:abc"), None);
    }
}
