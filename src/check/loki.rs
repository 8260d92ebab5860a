//! The `loki` check kind: Loki is ready, and a LogQL metric query over a recent window meets a
//! threshold, so "logs are aggregated" is proven by log lines arriving.
//!
//! Reads `/ready` (status 200 with `ready`; 503 with the reason while an ingester starts), then
//! runs the query once through `/loki/api/v1/query`. The window is part of the query, such as
//! `[5m]` in `sum(count_over_time({namespace="shop", app="api"}[5m]))`. The result is judged as
//! in `prometheus_query`: one number, with policies for an empty result and NaN.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::api_client::{check_bounds, ApiClient, ServerSpec};
use super::postgres::Policy;
use super::prometheus::{unpack, QueryData, Threshold, WarningPolicy};
use super::{MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// The header that selects the tenant in a multi-tenant Loki.
const TENANT_HEADER: &str = "x-scope-orgid";

/// The number a LogQL query returned.
pub static QUERY_VALUE: MeasureFamily = MeasureFamily {
    name: "readiness_loki_query_value",
    help: "The number the check's LogQL metric query returned, such as a count of log lines",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&QUERY_VALUE];

/// The `loki` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiSpec {
    server: ServerSpec,
    tenant: Option<String>,
    query: String,
    min: Option<f64>,
    max: Option<f64>,
    on_empty: Option<String>,
    on_nan: Option<String>,
    on_warning: Option<String>,
}

/// A validated `loki` check.
#[derive(Debug)]
pub struct LokiCheck {
    client: ApiClient,
    headers: Vec<(HeaderName, HeaderValue)>,
    query: String,
    threshold: Threshold,
}

impl LokiCheck {
    /// Validates the `loki` block, recording every problem in `ctx`.
    pub fn build(spec: LokiSpec, ctx: &mut BuildContext<'_>) -> Option<LokiCheck> {
        let before = ctx.problem_count();
        let client = ApiClient::build(spec.server, "loki.server", ctx);
        let mut headers = Vec::new();
        if let Some(tenant) = &spec.tenant {
            match HeaderValue::from_str(tenant) {
                Ok(value) if !tenant.is_empty() => {
                    headers.push((HeaderName::from_static(TENANT_HEADER), value));
                }
                _ => ctx.problem(
                    "loki.tenant",
                    format!("invalid tenant `{tenant}`; use the tenant id as sent in `X-Scope-OrgID`, in printable ASCII"),
                ),
            }
        }
        let query = spec.query.trim().to_string();
        if query.is_empty() {
            ctx.problem(
                "loki.query",
                "query is empty; write a LogQL metric query such as `sum(count_over_time({app=\"api\"}[5m]))`",
            );
        }
        check_bounds(ctx, "loki", spec.min, spec.max);
        let on_empty = Policy::build(spec.on_empty.as_deref(), Policy::Fail, "loki.on_empty", ctx);
        let on_nan = Policy::build(spec.on_nan.as_deref(), Policy::Fail, "loki.on_nan", ctx);
        let on_warning = WarningPolicy::build(spec.on_warning.as_deref(), "loki.on_warning", ctx);
        if ctx.problem_count() > before {
            return None;
        }
        Some(LokiCheck {
            client: client?,
            headers,
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

    /// Checks readiness, then runs the query once and compares its number with the threshold.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let ready = match self.client.get(&["ready"], &[], &self.headers).await {
            Ok(response) => response,
            Err(outcome) => return outcome,
        };
        if ready.status != 200 {
            return Outcome::fail(
                Reason::NotReady,
                format!(
                    "`/ready` returned status {}: `{}`",
                    ready.status,
                    ready.text_excerpt()
                ),
            );
        }

        let response = match self
            .client
            .get(
                &["loki", "api", "v1", "query"],
                &[("query", &self.query)],
                &self.headers,
            )
            .await
        {
            Ok(response) => response,
            Err(outcome) => return outcome,
        };
        // Loki rejects a query with a plain-text body, not the JSON error envelope.
        if response.status != 200
            && serde_json::from_slice::<serde_json::Value>(&response.body).is_err()
        {
            return Outcome::error(
                Reason::QueryFailed,
                format!(
                    "`/loki/api/v1/query` returned status {}: {}",
                    response.status,
                    response.text_excerpt()
                ),
            );
        }
        let success = match unpack::<QueryData>(&response, "`/loki/api/v1/query`") {
            Ok(success) => success,
            Err(outcome) => return outcome,
        };
        self.threshold
            .judge(success.data.value(), &success.warnings, &QUERY_VALUE)
    }
}
