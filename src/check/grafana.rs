//! The `grafana` check kind: Grafana's database is healthy, named dashboards exist and named
//! data sources answer their health check.
//!
//! Reads `/api/health` (no credential needed; `database` is `ok`, or status 503 with
//! `failing`), then `/api/dashboards/uid/<uid>` for each dashboard and
//! `/api/datasources/uid/<uid>/health` for each data source, which makes Grafana query the
//! data source itself (status 200 with `status: OK`, or 400 with the data source's error).
//! Dashboards and data sources need a service-account token with the Viewer role at least.

use std::time::Duration;

use serde::Deserialize;

use super::api_client::{redact_queries, ApiClient, ApiResponse, ServerSpec};
use super::http::truncate;
use super::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// Listed dashboards that were not found.
pub static DASHBOARDS_MISSING: MeasureFamily = MeasureFamily {
    name: "readiness_grafana_dashboards_missing",
    help: "Dashboards listed in the check that Grafana did not find by uid on the last run",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Listed data sources whose health check did not pass.
pub static DATASOURCES_FAILING: MeasureFamily = MeasureFamily {
    name: "readiness_grafana_datasources_failing",
    help: "Data sources listed in the check that were not found or failed Grafana's health check on the last run",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&DASHBOARDS_MISSING, &DATASOURCES_FAILING];

/// The `grafana` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrafanaSpec {
    server: ServerSpec,
    #[serde(default)]
    dashboards: Vec<String>,
    #[serde(default)]
    datasources: Vec<String>,
}

/// A validated `grafana` check.
#[derive(Debug)]
pub struct GrafanaCheck {
    client: ApiClient,
    dashboards: Vec<String>,
    datasources: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Health {
    database: String,
}

#[derive(Debug, Deserialize)]
struct DatasourceHealth {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
}

impl GrafanaCheck {
    /// Validates the `grafana` block, recording every problem in `ctx`.
    pub fn build(spec: GrafanaSpec, ctx: &mut BuildContext<'_>) -> Option<GrafanaCheck> {
        let before = ctx.problem_count();
        let client = ApiClient::build(spec.server, "grafana.server", ctx);
        for (field, uids) in [
            ("grafana.dashboards", &spec.dashboards),
            ("grafana.datasources", &spec.datasources),
        ] {
            for (i, uid) in uids.iter().enumerate() {
                if uid.is_empty() {
                    ctx.problem(format!("{field}[{i}]"), "uid is empty");
                } else if uids[..i].contains(uid) {
                    ctx.problem(
                        format!("{field}[{i}]"),
                        format!("uid `{uid}` is listed twice; remove one"),
                    );
                }
            }
        }
        if ctx.problem_count() > before {
            return None;
        }
        Some(GrafanaCheck {
            client: client?,
            dashboards: spec.dashboards,
            datasources: spec.datasources,
        })
    }

    /// Reads the health, every dashboard and every data source's health once.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let response = match self.client.get(&["api", "health"], &[], &[]).await {
            Ok(response) => response,
            Err(outcome) => return outcome,
        };
        if let Some(outcome) = judge_health(&response) {
            return outcome;
        }

        let mut findings: Vec<(Reason, String)> = Vec::new();
        let mut missing = 0;
        for uid in &self.dashboards {
            match self.dashboard_finding(uid).await {
                Ok(None) => {}
                Ok(Some(finding)) => {
                    missing += 1;
                    findings.push(finding);
                }
                Err(outcome) => return outcome,
            }
        }
        let mut failing = 0;
        for uid in &self.datasources {
            match self.datasource_finding(uid).await {
                Ok(None) => {}
                Ok(Some(finding)) => {
                    failing += 1;
                    findings.push(finding);
                }
                Err(outcome) => return outcome,
            }
        }

        let mut measures = Vec::new();
        if !self.dashboards.is_empty() {
            measures.push(Measure::new(&DASHBOARDS_MISSING, f64::from(missing)));
        }
        if !self.datasources.is_empty() {
            measures.push(Measure::new(&DATASOURCES_FAILING, f64::from(failing)));
        }
        let outcome = match findings.first() {
            None => Outcome::pass(format!(
                "database ok, {} dashboard(s) found, {} data source(s) healthy",
                self.dashboards.len(),
                self.datasources.len()
            )),
            Some((reason, _)) => {
                let messages: Vec<String> = findings
                    .iter()
                    .map(|(_, message)| message.clone())
                    .collect();
                Outcome::fail(*reason, messages.join("; "))
            }
        };
        outcome.with_measures(measures)
    }

    async fn dashboard_finding(&self, uid: &str) -> Result<Option<(Reason, String)>, Outcome> {
        let response = self
            .client
            .get(&["api", "dashboards", "uid", uid], &[], &[])
            .await?;
        match response.status {
            200 => Ok(None),
            404 => Ok(Some((
                Reason::DashboardMissing,
                format!("dashboard `{uid}` not found; check its provisioning or the uid"),
            ))),
            status => Err(unexpected(&response, &format!("dashboard `{uid}`"), status)),
        }
    }

    async fn datasource_finding(&self, uid: &str) -> Result<Option<(Reason, String)>, Outcome> {
        let what = format!("data source `{uid}`");
        let response = self
            .client
            .get(&["api", "datasources", "uid", uid, "health"], &[], &[])
            .await?;
        match response.status {
            200 | 400 | 500 => {}
            404 => {
                return Ok(Some((
                    Reason::DatasourceMissing,
                    format!(
                        "{what} not found, or its plugin has no health check: `{}`",
                        response.text_excerpt()
                    ),
                )))
            }
            status => return Err(unexpected(&response, &what, status)),
        }
        let health: DatasourceHealth = response.json(&format!("the health check of {what}"))?;
        if response.status == 200 && health.status.eq_ignore_ascii_case("ok") {
            return Ok(None);
        }
        Ok(Some((
            Reason::DatasourceUnhealthy,
            format!(
                "{what} failed its health check ({}): {}",
                truncate(&health.status, 20),
                truncate(&redact_queries(&health.message), 200)
            ),
        )))
    }
}

/// Judges `/api/health`: `None` when the database is ok.
fn judge_health(response: &ApiResponse) -> Option<Outcome> {
    if response.status != 200 && response.status != 503 {
        return Some(unexpected(response, "`/api/health`", response.status));
    }
    let health: Health = match response.json("`/api/health`") {
        Ok(health) => health,
        Err(outcome) => return Some(outcome),
    };
    if response.status == 200 && health.database == "ok" {
        return None;
    }
    Some(Outcome::fail(
        Reason::Unhealthy,
        format!(
            "Grafana reports its database as `{}` (status {}); check Grafana's database connection",
            truncate(&health.database, 40),
            response.status
        ),
    ))
}

fn unexpected(response: &ApiResponse, what: &str, status: u16) -> Outcome {
    Outcome::error(
        Reason::InvalidResponse,
        format!(
            "{what} returned status {status}: `{}`; check that `server.url` is Grafana's base URL",
            response.text_excerpt()
        ),
    )
}
