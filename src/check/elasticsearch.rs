//! The `elasticsearch_count` check kind: the number of documents an Elasticsearch or OpenSearch
//! query matches over a recent window meets a threshold, for teams on an EFK stack.
//!
//! Sends one `POST /<index>/_count` whose query is a `bool` filter of a `range` on the time
//! field (`now-<window>` to now) and the configured query, if any. A response with failed shards
//! is a partial count, so it is an error, never a value.

use std::time::Duration;

use serde::Deserialize;

use super::api_client::{check_bounds, describe_bounds, out_of_bounds, ApiClient, ServerSpec};
use super::http::truncate;
use super::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// The number of documents the query matched.
pub static COUNT: MeasureFamily = MeasureFamily {
    name: "readiness_elasticsearch_count",
    help: "Documents the check's query matched in its window on the last run",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&COUNT];

/// The `elasticsearch_count` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountSpec {
    server: ServerSpec,
    index: String,
    query: Option<serde_json::Value>,
    time_field: Option<String>,
    window: String,
    min: Option<f64>,
    max: Option<f64>,
}

/// A validated `elasticsearch_count` check.
#[derive(Debug)]
pub struct CountCheck {
    client: ApiClient,
    index: String,
    body: serde_json::Value,
    window: Duration,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct CountResponse {
    count: f64,
    #[serde(rename = "_shards")]
    shards: Option<Shards>,
}

#[derive(Debug, Deserialize)]
struct Shards {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    failed: u64,
}

#[derive(Debug, Deserialize)]
struct ErrorResponse {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    error_type: String,
    #[serde(default)]
    reason: String,
}

impl CountCheck {
    /// Validates the `elasticsearch_count` block, recording every problem in `ctx`.
    pub fn build(spec: CountSpec, ctx: &mut BuildContext<'_>) -> Option<CountCheck> {
        let before = ctx.problem_count();
        let client = ApiClient::build(spec.server, "elasticsearch_count.server", ctx);
        let index = spec.index.trim().to_string();
        if index.is_empty() || index.contains(['/', ' ', '?', '#']) {
            ctx.problem(
                "elasticsearch_count.index",
                format!("invalid index `{}`; write an index, alias or pattern such as `logs-shop-*`, several separated by commas", spec.index),
            );
        }
        if let Some(query) = &spec.query {
            if !query.is_object() {
                ctx.problem(
                    "elasticsearch_count.query",
                    "`query` must be a map in the Query DSL, such as `{ match: { app: api } }`",
                );
            }
        }
        let time_field = spec.time_field.unwrap_or_else(|| "@timestamp".to_string());
        if time_field.is_empty() {
            ctx.problem(
                "elasticsearch_count.time_field",
                "time field is empty; name the document's timestamp field, usually `@timestamp`",
            );
        }
        let window = ctx.duration("elasticsearch_count.window", &spec.window);
        check_bounds(ctx, "elasticsearch_count", spec.min, spec.max);
        if ctx.problem_count() > before {
            return None;
        }
        let window = window?;
        // Date math in whole seconds, which every Elasticsearch and OpenSearch version accepts.
        let range = serde_json::json!({
            "range": { time_field: { "gte": format!("now-{}s", window.as_secs().max(1)), "lte": "now" } }
        });
        let mut filters = vec![range];
        filters.extend(spec.query);
        Some(CountCheck {
            client: client?,
            index,
            body: serde_json::json!({ "query": { "bool": { "filter": filters } } }),
            window,
            min: spec.min,
            max: spec.max,
        })
    }

    /// Counts the matching documents once and compares the count with the threshold.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let response = match self
            .client
            .post_json(&[&self.index, "_count"], &self.body)
            .await
        {
            Ok(response) => response,
            Err(outcome) => return outcome,
        };
        if response.status != 200 {
            let detail = match serde_json::from_slice::<ErrorResponse>(&response.body) {
                Ok(error) => format!(
                    "{}: {}",
                    truncate(&error.error.error_type, 80),
                    truncate(&error.error.reason, 240)
                ),
                Err(_) => format!("`{}`", response.text_excerpt()),
            };
            return Outcome::error(
                Reason::QueryFailed,
                format!(
                    "`_count` on `{}` returned status {} ({detail})",
                    self.index, response.status
                ),
            );
        }
        let count: CountResponse = match response.json("`_count`") {
            Ok(count) => count,
            Err(outcome) => return outcome,
        };
        if let Some(shards) = count.shards.as_ref().filter(|shards| shards.failed > 0) {
            return Outcome::error(
                Reason::PartialResult,
                format!(
                    "{} of {} shards failed, so the count of {} is incomplete",
                    shards.failed, shards.total, count.count
                ),
            );
        }
        let window = crate::check::format_duration(self.window);
        let measures = vec![Measure::new(&COUNT, count.count)];
        let outcome = match out_of_bounds(count.count, self.min, self.max) {
            Some(problem) => Outcome::fail(
                Reason::ValueOutOfRange,
                format!("the count of documents in the last {window} {problem}"),
            ),
            None => Outcome::pass(format!(
                "{} documents in the last {window}{}",
                count.count,
                describe_bounds(self.min, self.max)
            )),
        };
        outcome.with_value(count.count).with_measures(measures)
    }
}
