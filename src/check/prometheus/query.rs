//! The `prometheus_query` check kind: a PromQL instant query compared with a threshold, for
//! error rates, latencies and load-test results.
//!
//! The query must return one number: a scalar or a vector of one series. An empty vector and
//! NaN each have their own policy. A query the server rejects or aborts is an error with the
//! server's message, never a value, and a response with warnings is not judged unless
//! `on_warning: evaluate` is set.

use std::time::Duration;

use serde::Deserialize;

use super::{call, QueryData, Threshold, WarningPolicy};
use crate::check::api_client::{check_bounds, ApiClient, ServerSpec};
use crate::check::postgres::Policy;
use crate::check::{MeasureFamily, MeasureType, Outcome};
use crate::config::BuildContext;

/// The number a query returned.
pub static QUERY_VALUE: MeasureFamily = MeasureFamily {
    name: "readiness_prometheus_query_value",
    help: "The number the check's PromQL query returned, in the query's own unit",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&QUERY_VALUE];

/// The `prometheus_query` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    server: ServerSpec,
    query: String,
    min: Option<f64>,
    max: Option<f64>,
    on_empty: Option<String>,
    on_nan: Option<String>,
    on_warning: Option<String>,
}

/// A validated `prometheus_query` check.
#[derive(Debug)]
pub struct QueryCheck {
    client: ApiClient,
    query: String,
    threshold: Threshold,
}

impl QueryCheck {
    /// Validates the `prometheus_query` block, recording every problem in `ctx`.
    pub fn build(spec: QuerySpec, ctx: &mut BuildContext<'_>) -> Option<QueryCheck> {
        let before = ctx.problem_count();
        let client = ApiClient::build(spec.server, "prometheus_query.server", ctx);
        let query = spec.query.trim().to_string();
        if query.is_empty() {
            ctx.problem(
                "prometheus_query.query",
                "query is empty; write a PromQL expression that returns one number, such as `sum(rate(http_requests_total{code=~\"5..\"}[5m]))`",
            );
        }
        check_bounds(ctx, "prometheus_query", spec.min, spec.max);
        let on_empty = Policy::build(
            spec.on_empty.as_deref(),
            Policy::Fail,
            "prometheus_query.on_empty",
            ctx,
        );
        let on_nan = Policy::build(
            spec.on_nan.as_deref(),
            Policy::Fail,
            "prometheus_query.on_nan",
            ctx,
        );
        let on_warning = WarningPolicy::build(
            spec.on_warning.as_deref(),
            "prometheus_query.on_warning",
            ctx,
        );
        if ctx.problem_count() > before {
            return None;
        }
        Some(QueryCheck {
            client: client?,
            query,
            threshold: Threshold {
                min: spec.min,
                max: spec.max,
                on_empty: on_empty?,
                on_nan: on_nan?,
                on_warning: on_warning?,
            },
        })
    }

    /// Runs the query once and compares its number with the threshold.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        // Prometheus stops evaluating at its own timeout, so a slow query ends on the server
        // too, a little before the scheduler gives up on the run.
        let server_timeout = format!("{}ms", (timeout.as_millis() * 9 / 10).max(1));
        let success = match call::<QueryData>(
            &self.client,
            &["api", "v1", "query"],
            &[("query", &self.query), ("timeout", &server_timeout)],
        )
        .await
        {
            Ok(success) => success,
            Err(outcome) => return outcome,
        };
        self.threshold
            .judge(success.data.value(), &success.warnings, &QUERY_VALUE)
    }
}
