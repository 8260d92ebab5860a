//! The `image_scan` check kind: trivy-operator `VulnerabilityReport`s of the images the
//! selected pods run, against thresholds for critical and high findings and a maximum age.
//!
//! trivy-operator writes one report per workload controller and container, labelled
//! `trivy-operator.resource.kind`, `trivy-operator.resource.name` and
//! `trivy-operator.container.name`. The check lists the running pods, maps each container to
//! its controller (a Deployment's pods to their ReplicaSet, as trivy-operator does) and looks up
//! that report. Only the report's summary counts are read, never single vulnerabilities.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::Deserialize;

use super::network_policy::shorten;
use super::{list_all, resource_name, validate_selector, ApiCall, Connection};
use crate::check::{format_duration, Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const SEVERITIES: [(&str, &str); 5] = [
    ("critical", "criticalCount"),
    ("high", "highCount"),
    ("medium", "mediumCount"),
    ("low", "lowCount"),
    ("unknown", "unknownCount"),
];

/// Vulnerabilities found in the images of the selected pods, by severity.
pub static VULNERABILITIES: MeasureFamily = MeasureFamily {
    name: "readiness_image_scan_vulnerabilities",
    help: "Vulnerabilities in the newest trivy-operator reports of the images an image_scan check selects, summed over its containers, by severity",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["severity"],
};

/// Containers without a VulnerabilityReport.
pub static UNSCANNED: MeasureFamily = MeasureFamily {
    name: "readiness_image_scan_unscanned_containers",
    help:
        "Containers selected by an image_scan check that have no trivy-operator VulnerabilityReport",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&VULNERABILITIES, &UNSCANNED];

/// The `image_scan` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageScanSpec {
    namespaces: Vec<String>,
    selector: Option<String>,
    max_critical: Option<u64>,
    max_high: Option<u64>,
    max_age: Option<String>,
}

/// A validated `image_scan` check.
#[derive(Debug)]
pub struct ImageScanCheck {
    connection: Arc<Connection>,
    namespaces: Vec<String>,
    selector: Option<String>,
    max_critical: u64,
    max_high: Option<u64>,
    max_age: Duration,
}

/// The trivy-operator CRD this kind reads.
fn vulnerability_reports() -> ApiResource {
    ApiResource {
        group: "aquasecurity.github.io".to_string(),
        version: "v1alpha1".to_string(),
        api_version: "aquasecurity.github.io/v1alpha1".to_string(),
        kind: "VulnerabilityReport".to_string(),
        plural: "vulnerabilityreports".to_string(),
    }
}

/// The parts of a report this kind reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportData {
    report: Option<ReportBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportBody {
    update_timestamp: Option<String>,
    summary: Option<BTreeMap<String, serde_json::Value>>,
}

/// One container to look up: namespace, controller kind and name, container name.
type Target = (String, String, String, String);

impl ImageScanCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `image_scan` block, recording every problem in `ctx`.
    pub fn build(spec: ImageScanSpec, ctx: &mut BuildContext<'_>) -> Option<ImageScanCheck> {
        let before = ctx.problem_count();
        if spec.namespaces.is_empty() || spec.namespaces.iter().any(|n| n.trim().is_empty()) {
            ctx.problem(
                "image_scan.namespaces",
                "list one or more namespaces, such as `[shop]`",
            );
        }
        if let Some(selector) = &spec.selector {
            validate_selector(ctx, "image_scan.selector", selector);
        }
        let max_age = match &spec.max_age {
            Some(value) => ctx.duration("image_scan.max_age", value),
            None => Some(DEFAULT_MAX_AGE),
        };
        if ctx.problem_count() > before {
            return None;
        }
        Some(ImageScanCheck {
            connection: ctx.kubernetes.clone(),
            namespaces: spec.namespaces,
            selector: spec.selector,
            max_critical: spec.max_critical.unwrap_or(0),
            max_high: spec.max_high,
            max_age: max_age?,
        })
    }

    /// Lists the running pods and the reports of each namespace and evaluates them.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };
        let resource = vulnerability_reports();
        let mut pod_params = ListParams::default().fields("status.phase=Running");
        if let Some(selector) = &self.selector {
            pod_params = pod_params.labels(selector);
        }
        let mut targets: BTreeSet<Target> = BTreeSet::new();
        let mut reports: BTreeMap<Target, DynamicObject> = BTreeMap::new();
        for namespace in &self.namespaces {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let call = ApiCall::new::<Pod>("list", Some(namespace));
            let listed = match list_all(&pods, &call, &pod_params).await {
                Ok(listed) => listed,
                Err(outcome) => return outcome,
            };
            for pod in &listed {
                targets.extend(containers(namespace, pod));
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            let call = ApiCall::with_resource(
                "list",
                resource_name(&resource.plural, &resource.group),
                Some(namespace),
            );
            let params = ListParams::default()
                .labels("trivy-operator.resource.kind,trivy-operator.container.name");
            let listed = match list_all(&api, &call, &params).await {
                Ok(listed) => listed,
                Err(outcome) => return outcome,
            };
            // NOTE: label values hold at most 63 characters, so a controller whose name is longer
            // cannot be matched through these labels and shows as not scanned.
            for report in listed {
                let labels = report.metadata.labels.clone().unwrap_or_default();
                let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
                let key = (
                    namespace.clone(),
                    label("trivy-operator.resource.kind"),
                    label("trivy-operator.resource.name"),
                    label("trivy-operator.container.name"),
                );
                reports.insert(key, report);
            }
        }
        if targets.is_empty() {
            return Outcome::fail(
                Reason::ObjectNotFound,
                format!(
                    "no running pod in namespace(s) {}",
                    self.namespaces.join(", ")
                ),
            );
        }
        self.evaluate(&targets, &reports)
    }

    fn evaluate(
        &self,
        targets: &BTreeSet<Target>,
        reports: &BTreeMap<Target, DynamicObject>,
    ) -> Outcome {
        let now = SystemTime::now();
        let mut totals: BTreeMap<&str, u64> =
            SEVERITIES.iter().map(|(name, _)| (*name, 0)).collect();
        let mut unscanned = Vec::new();
        let mut too_old = Vec::new();
        let mut over = Vec::new();
        for target in targets {
            let (namespace, kind, name, container) = target;
            let label = format!("{namespace}/{kind}/{name} container `{container}`");
            let Some(report) = reports.get(target) else {
                unscanned.push(label);
                continue;
            };
            let data: ReportData = serde_json::from_value(report.data.clone()).unwrap_or_default();
            let body = data.report.unwrap_or_default();
            let summary = body.summary.unwrap_or_default();
            let count = |key: &str| summary.get(key).and_then(serde_json::Value::as_u64);
            for (severity, key) in SEVERITIES {
                // A report can claim any count up to u64::MAX, so the sum saturates.
                let total = totals.entry(severity).or_default();
                *total = total.saturating_add(count(key).unwrap_or(0));
            }
            let critical = count("criticalCount");
            let high = count("highCount");
            let mut exceeded = Vec::new();
            match critical {
                Some(critical) if critical > self.max_critical => exceeded.push(format!(
                    "{critical} critical (maximum {})",
                    self.max_critical
                )),
                None => exceeded.push("critical count not reported".to_string()),
                _ => {}
            }
            if let Some(max_high) = self.max_high {
                match high {
                    Some(high) if high > max_high => {
                        exceeded.push(format!("{high} high (maximum {max_high})"))
                    }
                    None => exceeded.push("high count not reported".to_string()),
                    _ => {}
                }
            }
            if !exceeded.is_empty() {
                over.push(format!("{label}: {}", exceeded.join(", ")));
            }
            let updated = body
                .update_timestamp
                .as_deref()
                .and_then(|text| {
                    time::OffsetDateTime::parse(
                        text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                })
                .map(SystemTime::from);
            match updated.map(|at| now.duration_since(at).unwrap_or_default()) {
                Some(age) if age > self.max_age => too_old.push(format!(
                    "{label} scanned {} ago",
                    format_duration(Duration::from_secs(age.as_secs()))
                )),
                None => too_old.push(format!("{label} has no report.updateTimestamp")),
                _ => {}
            }
        }

        let mut measures: Vec<Measure> = totals
            .iter()
            .map(|(severity, total)| Measure {
                family: &VULNERABILITIES,
                label_values: vec![severity.to_string()],
                value: *total as f64,
            })
            .collect();
        measures.push(Measure::new(&UNSCANNED, unscanned.len() as f64));

        let mut parts = Vec::new();
        let mut reason = None;
        if !over.is_empty() {
            parts.push(format!("over the thresholds: {}", shorten(&over, "; ")));
            reason.get_or_insert(Reason::VulnerabilitiesFound);
        }
        if !unscanned.is_empty() {
            parts.push(format!("not scanned: {}", shorten(&unscanned, "; ")));
            reason.get_or_insert(Reason::NotScanned);
        }
        if !too_old.is_empty() {
            parts.push(format!(
                "reports older than {}: {}",
                format_duration(self.max_age),
                shorten(&too_old, "; ")
            ));
            reason.get_or_insert(Reason::TooOld);
        }
        let Some(reason) = reason else {
            return Outcome::pass(format!(
                "{} container(s) scanned within {}: {} critical, {} high",
                targets.len(),
                format_duration(self.max_age),
                totals["critical"],
                totals["high"]
            ))
            .with_value(totals["critical"] as f64)
            .with_measures(measures);
        };
        Outcome::fail(reason, parts.join("; "))
            .with_value(totals["critical"] as f64)
            .with_measures(measures)
    }
}

/// The report keys of a pod's containers: its controller (a ReplicaSet, StatefulSet, DaemonSet
/// or Job; the pod itself when it has none) and each container and init container name.
fn containers(namespace: &str, pod: &Pod) -> Vec<Target> {
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true));
    let (kind, name) = match owner {
        Some(owner) => (owner.kind.clone(), owner.name.clone()),
        None => (
            "Pod".to_string(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
    };
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|container| {
            (
                namespace.to_string(),
                kind.clone(),
                name.clone(),
                container.name.clone(),
            )
        })
        .collect()
}
