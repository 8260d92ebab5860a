//! The `prometheus_alertmanagers` check kind: Prometheus has enough active Alertmanagers.
//!
//! Reads `/api/v1/alertmanagers`. An Alertmanager is active when Prometheus discovered it and
//! will send alerts to it. That does not prove that sending works, so watch
//! `prometheus_notifications_errors_total` with a `prometheus_query` check as well.

use std::time::Duration;

use serde::Deserialize;

use super::call;
use crate::check::api_client::{ApiClient, ServerSpec};
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// Active Alertmanagers of the Prometheus server.
pub static ACTIVE: MeasureFamily = MeasureFamily {
    name: "readiness_prometheus_alertmanagers_active",
    help: "Alertmanagers Prometheus reported as active (discovered and receiving alerts) on the last run",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&ACTIVE];

/// The `prometheus_alertmanagers` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagersSpec {
    server: ServerSpec,
    min_active: Option<u64>,
}

/// A validated `prometheus_alertmanagers` check.
#[derive(Debug)]
pub struct AlertmanagersCheck {
    client: ApiClient,
    min_active: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertmanagersData {
    #[serde(default)]
    active_alertmanagers: Vec<serde_json::Value>,
    #[serde(default)]
    dropped_alertmanagers: Vec<serde_json::Value>,
}

impl AlertmanagersCheck {
    /// Validates the `prometheus_alertmanagers` block, recording every problem in `ctx`.
    pub fn build(
        spec: AlertmanagersSpec,
        ctx: &mut BuildContext<'_>,
    ) -> Option<AlertmanagersCheck> {
        let client = ApiClient::build(spec.server, "prometheus_alertmanagers.server", ctx);
        let min_active = spec.min_active.unwrap_or(1);
        if min_active == 0 {
            ctx.problem(
                "prometheus_alertmanagers.min_active",
                "`0` passes without any Alertmanager; use at least 1",
            );
            return None;
        }
        Some(AlertmanagersCheck {
            client: client?,
            min_active,
        })
    }

    /// Reads the Alertmanager list once and counts the active ones.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let data =
            match call::<AlertmanagersData>(&self.client, &["api", "v1", "alertmanagers"], &[])
                .await
            {
                Ok(success) => success.data,
                Err(outcome) => return outcome,
            };
        let active = data.active_alertmanagers.len() as u64;
        let dropped = match data.dropped_alertmanagers.len() {
            0 => String::new(),
            n => format!(" ({n} dropped by relabelling)"),
        };
        let outcome = if active < self.min_active {
            Outcome::fail(
                Reason::TooFewAlertmanagers,
                format!(
                    "{active} active Alertmanager(s), {} required{dropped}; check `alerting.alertmanagers` in the Prometheus configuration",
                    self.min_active
                ),
            )
        } else {
            Outcome::pass(format!("{active} active Alertmanager(s){dropped}"))
        };
        outcome
            .with_value(active as f64)
            .with_measures(vec![Measure::new(&ACTIVE, active as f64)])
    }
}
