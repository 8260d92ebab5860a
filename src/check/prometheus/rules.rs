//! The `prometheus_rules` check kind: named rule groups are loaded, healthy and evaluated
//! recently.
//!
//! Reads `/api/v1/rules`. A group fails when Prometheus has not loaded it, when one of its rules
//! reports an evaluation error (health `err`, with Prometheus' `lastError` in the message), when
//! it was never evaluated, or when its last evaluation is older than `max_age` (by default three
//! of the group's intervals). Group names may repeat across rule files; every loaded group of a
//! listed name is judged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::call;
use crate::check::api_client::{redact_queries, ApiClient, ServerSpec};
use crate::check::http::truncate;
use crate::check::{format_duration, Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// How many evaluation intervals may pass before a group counts as not evaluated recently,
/// when `max_age` is not set.
const DEFAULT_INTERVALS: u32 = 3;

/// The maximum number of findings a message lists before it counts the rest.
const MAX_FINDINGS_SHOWN: usize = 10;

/// When a rule group was last evaluated.
pub static LAST_EVALUATION: MeasureFamily = MeasureFamily {
    name: "readiness_prometheus_rule_group_last_evaluation_timestamp",
    help: "When Prometheus last evaluated the rule group, as a Unix timestamp; the oldest of groups that share the name",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &["group"],
};

/// Rules of a group whose last evaluation failed.
pub static UNHEALTHY_RULES: MeasureFamily = MeasureFamily {
    name: "readiness_prometheus_rule_group_unhealthy_rules",
    help: "Rules of the rule group whose last evaluation failed (health err)",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &["group"],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&LAST_EVALUATION, &UNHEALTHY_RULES];

/// The `prometheus_rules` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSpec {
    server: ServerSpec,
    groups: Vec<String>,
    max_age: Option<String>,
}

/// A validated `prometheus_rules` check.
#[derive(Debug)]
pub struct RulesCheck {
    client: ApiClient,
    groups: Vec<String>,
    max_age: Option<Duration>,
}

#[derive(Debug, Deserialize)]
struct RulesData {
    #[serde(default)]
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleGroup {
    name: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    rules: Vec<Rule>,
    /// The evaluation interval in seconds.
    #[serde(default)]
    interval: f64,
    last_evaluation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    name: String,
    #[serde(default)]
    health: String,
    #[serde(default)]
    last_error: String,
}

impl RulesCheck {
    /// Validates the `prometheus_rules` block, recording every problem in `ctx`.
    pub fn build(spec: RulesSpec, ctx: &mut BuildContext<'_>) -> Option<RulesCheck> {
        let before = ctx.problem_count();
        let client = ApiClient::build(spec.server, "prometheus_rules.server", ctx);
        if spec.groups.is_empty() {
            ctx.problem(
                "prometheus_rules.groups",
                "list is empty; name at least one rule group, as in the `name` of a group in a rule file",
            );
        }
        for (i, group) in spec.groups.iter().enumerate() {
            if group.is_empty() {
                ctx.problem(
                    format!("prometheus_rules.groups[{i}]"),
                    "group name is empty",
                );
            } else if spec.groups[..i].contains(group) {
                ctx.problem(
                    format!("prometheus_rules.groups[{i}]"),
                    format!("group `{group}` is listed twice; remove one"),
                );
            }
        }
        let max_age = spec
            .max_age
            .as_ref()
            .and_then(|value| ctx.duration("prometheus_rules.max_age", value));
        if ctx.problem_count() > before {
            return None;
        }
        Some(RulesCheck {
            client: client?,
            groups: spec.groups,
            max_age,
        })
    }

    /// Reads the rule groups once and judges every listed group.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let data = match call::<RulesData>(&self.client, &["api", "v1", "rules"], &[]).await {
            Ok(success) => success.data,
            Err(outcome) => return outcome,
        };
        let now = SystemTime::now();
        let mut measures = Vec::new();
        let mut findings: Vec<(Reason, String)> = Vec::new();
        let mut healthy = 0;
        for name in &self.groups {
            let loaded: Vec<&RuleGroup> = data
                .groups
                .iter()
                .filter(|group| &group.name == name)
                .collect();
            if loaded.is_empty() {
                findings.push((
                    Reason::RuleGroupMissing,
                    format!("rule group `{name}` is not loaded; check `rule_files` and the rule file's group names"),
                ));
                continue;
            }
            let before = findings.len();
            let mut oldest: Option<f64> = None;
            let mut unhealthy = 0;
            for group in loaded {
                unhealthy += self.judge_group(group, now, &mut findings, &mut oldest);
            }
            if let Some(timestamp) = oldest {
                measures.push(group_measure(&LAST_EVALUATION, name, timestamp));
            }
            measures.push(group_measure(&UNHEALTHY_RULES, name, unhealthy as f64));
            if findings.len() == before {
                healthy += 1;
            }
        }

        // Evaluation errors come first because they name what is broken. The other findings
        // only show that something is late or absent.
        findings.sort_by_key(|(reason, _)| match reason {
            Reason::RuleEvaluationFailed => 0,
            Reason::RuleGroupMissing => 1,
            _ => 2,
        });
        let outcome = match findings.first() {
            None => Outcome::pass(format!(
                "{} rule group(s) loaded, healthy and evaluated recently",
                self.groups.len()
            )),
            Some((reason, _)) => {
                // Group names may repeat without limit, so the message lists the first findings.
                let mut messages: Vec<String> = findings
                    .iter()
                    .take(MAX_FINDINGS_SHOWN)
                    .map(|(_, message)| message.clone())
                    .collect();
                if findings.len() > MAX_FINDINGS_SHOWN {
                    messages.push(format!(
                        "{} more findings",
                        findings.len() - MAX_FINDINGS_SHOWN
                    ));
                }
                Outcome::fail(*reason, messages.join("; "))
            }
        };
        outcome
            .with_value(f64::from(healthy))
            .with_measures(measures)
    }

    /// Records the findings of one loaded group and returns its number of failing rules.
    fn judge_group(
        &self,
        group: &RuleGroup,
        now: SystemTime,
        findings: &mut Vec<(Reason, String)>,
        oldest: &mut Option<f64>,
    ) -> usize {
        let name = &group.name;
        let file = truncate(&group.file, 200);
        let failing: Vec<&Rule> = group
            .rules
            .iter()
            .filter(|rule| rule.health == "err")
            .collect();
        if let Some(rule) = failing.first() {
            let others = match failing.len() {
                1 => String::new(),
                n => format!(" ({} more failing rules)", n - 1),
            };
            findings.push((
                Reason::RuleEvaluationFailed,
                format!(
                    "rule `{}` of group `{name}` ({}) fails to evaluate: {}{others}",
                    truncate(&rule.name, 120),
                    file,
                    truncate(&redact_queries(&rule.last_error), 240)
                ),
            ));
        }

        let evaluated = group.last_evaluation.as_deref().and_then(parse_timestamp);
        let Some(evaluated) = evaluated else {
            findings.push((
                Reason::NotEvaluated,
                format!("rule group `{name}` ({}) has not been evaluated yet", file),
            ));
            return failing.len();
        };
        *oldest = Some(oldest.map_or(evaluated, |current: f64| current.min(evaluated)));
        let max_age = self.max_age.unwrap_or_else(|| {
            Duration::from_secs_f64(group.interval.max(0.0)) * DEFAULT_INTERVALS
        });
        let now_seconds = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let age = Duration::from_secs_f64((now_seconds - evaluated).max(0.0));
        if !max_age.is_zero() && age > max_age {
            findings.push((
                Reason::TooOld,
                format!(
                    "rule group `{name}` ({}) was last evaluated {} ago, more than {}",
                    file,
                    format_duration(age),
                    format_duration(max_age)
                ),
            ));
        }
        failing.len()
    }
}

/// Parses an RFC 3339 timestamp into Unix seconds. Go's zero time (year 1), which Prometheus
/// reports for a group that was never evaluated, gives `None`.
fn parse_timestamp(text: &str) -> Option<f64> {
    let time =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    if time.year() <= 1 {
        return None;
    }
    Some(time.unix_timestamp_nanos() as f64 / 1e9)
}

fn group_measure(family: &'static MeasureFamily, group: &str, value: f64) -> Measure {
    Measure {
        family,
        label_values: vec![group.to_string()],
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanosecond_timestamps_parse() {
        let seconds = parse_timestamp("2024-05-27T08:00:12.101010101Z").unwrap();
        assert!((seconds - 1_716_796_812.101).abs() < 1e-3);
    }

    #[test]
    fn go_zero_time_means_never() {
        assert_eq!(parse_timestamp("0001-01-01T00:00:00Z"), None);
    }
}
