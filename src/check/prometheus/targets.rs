//! The `prometheus_targets` check kind: the scrape targets of named jobs are up.
//!
//! Reads `/api/v1/targets?state=active` and groups targets by their `job` label (the label that
//! `up{job="..."}` uses, after relabelling). A job fails when it has no target at all, or when
//! fewer targets are up than required. The message names each down target with its last
//! scrape error.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::call;
use crate::check::api_client::{redact_queries, ApiClient, ServerSpec};
use crate::check::http::truncate;
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// How many down targets a message lists per job before it summarises the rest.
const MAX_DOWN_IN_MESSAGE: usize = 3;

/// Active targets of a job.
pub static TARGETS: MeasureFamily = MeasureFamily {
    name: "readiness_prometheus_job_targets",
    help: "Active scrape targets of a job, as Prometheus reported them on the last run",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["job"],
};

/// Targets of a job whose last scrape succeeded.
pub static TARGETS_UP: MeasureFamily = MeasureFamily {
    name: "readiness_prometheus_job_targets_up",
    help: "Scrape targets of a job whose last scrape succeeded, as Prometheus reported them on the last run",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["job"],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&TARGETS, &TARGETS_UP];

/// The `prometheus_targets` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsSpec {
    server: ServerSpec,
    jobs: Vec<String>,
    min_up: Option<u64>,
}

/// A validated `prometheus_targets` check.
#[derive(Debug)]
pub struct TargetsCheck {
    client: ApiClient,
    jobs: Vec<String>,
    min_up: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetsData {
    #[serde(default)]
    active_targets: Vec<ActiveTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActiveTarget {
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    scrape_url: String,
    #[serde(default)]
    last_error: String,
    health: String,
}

impl ActiveTarget {
    /// Returns the `instance` label, or the scrape URL without its query, cut to 120
    /// characters.
    fn name(&self) -> String {
        match self.labels.get("instance") {
            Some(instance) => truncate(instance, 120),
            None => truncate(&redact_queries(&self.scrape_url), 120),
        }
    }

    fn describe_down(&self) -> String {
        let name = self.name();
        match (self.health.as_str(), self.last_error.is_empty()) {
            ("unknown", _) => format!("{name} (not scraped yet)"),
            (_, true) => format!("{name} ({})", truncate(&self.health, 40)),
            (_, false) => format!(
                "{name} ({})",
                truncate(&redact_queries(&self.last_error), 160)
            ),
        }
    }
}

impl TargetsCheck {
    /// Validates the `prometheus_targets` block, recording every problem in `ctx`.
    pub fn build(spec: TargetsSpec, ctx: &mut BuildContext<'_>) -> Option<TargetsCheck> {
        let before = ctx.problem_count();
        let client = ApiClient::build(spec.server, "prometheus_targets.server", ctx);
        if spec.jobs.is_empty() {
            ctx.problem(
                "prometheus_targets.jobs",
                "list is empty; name at least one job, as in the `job` label of `up`",
            );
        }
        for (i, job) in spec.jobs.iter().enumerate() {
            if job.is_empty() {
                ctx.problem(format!("prometheus_targets.jobs[{i}]"), "job name is empty");
            } else if spec.jobs[..i].contains(job) {
                ctx.problem(
                    format!("prometheus_targets.jobs[{i}]"),
                    format!("job `{job}` is listed twice; remove one"),
                );
            }
        }
        if spec.min_up == Some(0) {
            ctx.problem(
                "prometheus_targets.min_up",
                "`0` accepts a job whose targets are all down; use at least 1, or remove it to require every target",
            );
        }
        if ctx.problem_count() > before {
            return None;
        }
        Some(TargetsCheck {
            client: client?,
            jobs: spec.jobs,
            min_up: spec.min_up,
        })
    }

    /// Reads the active targets once and judges every job.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let data = match call::<TargetsData>(
            &self.client,
            &["api", "v1", "targets"],
            &[("state", "active")],
        )
        .await
        {
            Ok(success) => success.data,
            Err(outcome) => return outcome,
        };

        let mut measures = Vec::new();
        let mut findings: Vec<(Reason, String)> = Vec::new();
        let mut summary = Vec::new();
        let mut all_up = 0;
        for job in &self.jobs {
            let targets: Vec<&ActiveTarget> = data
                .active_targets
                .iter()
                .filter(|target| target.labels.get("job") == Some(job))
                .collect();
            let up = targets
                .iter()
                .filter(|target| target.health == "up")
                .count();
            let total = targets.len();
            all_up += up;
            measures.push(job_measure(&TARGETS, job, total));
            measures.push(job_measure(&TARGETS_UP, job, up));
            summary.push(format!("{job}: {up}/{total} up"));

            if total == 0 {
                findings.push((
                    Reason::NoTargets,
                    format!("job `{job}` has no active targets; check the scrape configuration or service discovery"),
                ));
                continue;
            }
            let required = self.min_up.map_or(total, |min| min as usize);
            if up < required {
                let down: Vec<String> = targets
                    .iter()
                    .filter(|target| target.health != "up")
                    .map(|target| target.describe_down())
                    .collect();
                let more = down.len().saturating_sub(MAX_DOWN_IN_MESSAGE);
                let mut listed = down
                    .into_iter()
                    .take(MAX_DOWN_IN_MESSAGE)
                    .collect::<Vec<_>>()
                    .join(", ");
                if more > 0 {
                    listed.push_str(&format!(" and {more} more"));
                }
                findings.push((
                    Reason::TargetsDown,
                    format!("job `{job}` has {up} of {total} targets up, {required} required; down: {listed}"),
                ));
            }
        }

        let outcome = match findings.first() {
            None => Outcome::pass(summary.join(", ")),
            Some((reason, _)) => {
                let messages: Vec<String> = findings
                    .iter()
                    .map(|(_, message)| message.clone())
                    .collect();
                Outcome::fail(*reason, messages.join("; "))
            }
        };
        outcome.with_value(all_up as f64).with_measures(measures)
    }
}

fn job_measure(family: &'static MeasureFamily, job: &str, value: usize) -> Measure {
    Measure {
        family,
        label_values: vec![job.to_string()],
        value: value as f64,
    }
}
