//! The `/metrics` exposition, encoded from [`State`] on each scrape.
//!
//! One collector reads the state under a single read lock and writes every family, so a scrape
//! never runs a check, series of removed checks disappear with the check, and staleness is judged
//! at the moment of the scrape. Label values are check metadata and fixed reason names only; error
//! text never becomes a label.
//!
//! Two encoders write the same bytes. [`registry`] and [`encode`] go through prometheus-client and
//! are the reference. [`encode_state`] serves `/metrics`: it writes the same text by hand from
//! label sets rendered once per check, which makes a scrape of 10,000 checks several times
//! cheaper. A unit test compares the two line by line.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::check::{measure_families, Measure, MeasureFamily, Status};
use crate::config::CheckDef;
use crate::state::{Entry, State};

mod writer;

pub use writer::encode_state;
pub(crate) use writer::RunValues;
pub(crate) use writer::SeriesTable;

/// The content type of the exposition: OpenMetrics text, which Prometheus requests first.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The version and git revision the binary was built from.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from, or `unknown` outside a git checkout.
pub const REVISION: &str = env!("READINESS_EXPORTER_REVISION");

/// A family of the core contract, for documentation tests.
#[derive(Debug, Clone, Copy)]
pub struct CoreFamily {
    /// Full series name as exposed (with unit, without `_total`).
    pub name: &'static str,
    /// Exposition type.
    pub metric_type: &'static str,
    /// Label names.
    pub labels: &'static [&'static str],
}

/// Every family of the core contract.
pub const CORE_FAMILIES: &[CoreFamily] = &[
    core("readiness_check_success", "gauge", &["check"]),
    core("readiness_check_result", "gauge", &["check", "result"]),
    core(
        "readiness_check_info",
        "gauge",
        &[
            "check",
            "title",
            "section",
            "severity",
            "kind",
            "blocking",
            "runbook_url",
        ],
    ),
    core("readiness_check_duration_seconds", "gauge", &["check"]),
    core("readiness_check_interval_seconds", "gauge", &["check"]),
    core(
        "readiness_check_last_run_timestamp_seconds",
        "gauge",
        &["check"],
    ),
    core(
        "readiness_check_last_success_timestamp_seconds",
        "gauge",
        &["check"],
    ),
    core(
        "readiness_check_failures_total",
        "counter",
        &["check", "reason"],
    ),
    core("readiness_gate_open", "gauge", &[]),
    core(
        "readiness_exporter_build_info",
        "gauge",
        &["version", "revision", "external_url"],
    ),
    core("readiness_exporter_start_time_seconds", "gauge", &[]),
    core("readiness_exporter_checks", "gauge", &[]),
    core(
        "readiness_exporter_config_last_reload_successful",
        "gauge",
        &[],
    ),
    core(
        "readiness_exporter_config_last_reload_success_timestamp_seconds",
        "gauge",
        &[],
    ),
    core(
        "readiness_exporter_config_reloads_total",
        "counter",
        &["result"],
    ),
];

const fn core(
    name: &'static str,
    metric_type: &'static str,
    labels: &'static [&'static str],
) -> CoreFamily {
    CoreFamily {
        name,
        metric_type,
        labels,
    }
}

/// Builds the registry whose encoding is the `/metrics` body.
pub fn registry(state: Arc<State>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StateCollector { state }));
    registry
}

/// Encodes the registry in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut body = String::with_capacity(64 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut body, registry);
    body
}

#[derive(Debug)]
struct StateCollector {
    state: Arc<State>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("State")
    }
}

type Encoder<'a> = DescriptorEncoder<'a>;

fn seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Collector for StateCollector {
    fn encode(&self, encoder: Encoder<'_>) -> Result<(), std::fmt::Error> {
        self.state
            .with_entries(|entries| self.encode_entries(encoder, entries))
    }
}

impl StateCollector {
    fn encode_entries(
        &self,
        mut encoder: Encoder<'_>,
        entries: &[&Entry],
    ) -> Result<(), std::fmt::Error> {
        let now = SystemTime::now();
        let statuses: Vec<Status> = entries.iter().map(|entry| entry.effective(now).0).collect();

        per_check(
            &mut encoder,
            "readiness_check_success",
            "1 when the check's last result is a pass, 0 otherwise",
            None,
            entries,
            |i, _| Some(f64::from(u8::from(statuses[i] == Status::Pass))),
        )?;

        {
            let mut family = encoder.encode_descriptor(
                "readiness_check_result",
                "The check's current result as a state set over pass, fail, error and unknown",
                None,
                MetricType::Gauge,
            )?;
            for (entry, status) in entries.iter().zip(&statuses) {
                for candidate in Status::ALL {
                    let labels = [
                        ("check", entry.def.id.as_str()),
                        ("result", candidate.as_str()),
                    ];
                    let value = i64::from(*status == candidate);
                    ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }

        {
            let mut family = encoder.encode_descriptor(
                "readiness_check_info",
                "Metadata of each check; always 1, joined on the check label",
                None,
                MetricType::Gauge,
            )?;
            for entry in entries {
                let labels = info_labels(&entry.def);
                ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
            }
        }

        per_check(
            &mut encoder,
            "readiness_check_duration",
            "Duration of the check's last run",
            Some(Unit::Seconds),
            entries,
            |_, entry| entry.last.as_ref().map(|last| last.duration.as_secs_f64()),
        )?;
        per_check(
            &mut encoder,
            "readiness_check_interval",
            "Configured interval between runs of the check",
            Some(Unit::Seconds),
            entries,
            |_, entry| Some(entry.def.interval.as_secs_f64()),
        )?;
        per_check(
            &mut encoder,
            "readiness_check_last_run_timestamp",
            "When the check's last run finished, as a Unix timestamp",
            Some(Unit::Seconds),
            entries,
            |_, entry| entry.last.as_ref().map(|last| seconds(last.finished())),
        )?;
        per_check(
            &mut encoder,
            "readiness_check_last_success_timestamp",
            "When the check last passed, as a Unix timestamp",
            Some(Unit::Seconds),
            entries,
            |_, entry| entry.last_success.map(seconds),
        )?;

        {
            let mut family = encoder.encode_descriptor(
                "readiness_check_failures",
                "Runs of the check that did not pass, by reason",
                None,
                MetricType::Counter,
            )?;
            for entry in entries {
                for (reason, count) in &entry.failures {
                    let labels = [
                        ("check", entry.def.id.as_str()),
                        ("reason", reason.as_str()),
                    ];
                    ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
                }
            }
        }

        let gate_open = entries
            .iter()
            .zip(&statuses)
            .all(|(entry, status)| !entry.def.blocking || *status == Status::Pass);
        scalar(
            &mut encoder,
            "readiness_gate_open",
            "1 when every blocking check passes",
            None,
            f64::from(u8::from(gate_open)),
        )?;

        {
            let family = encoder.encode_descriptor(
                "readiness_exporter_build_info",
                "Version and git revision of the exporter, and the URL of its status page; always 1",
                None,
                MetricType::Gauge,
            )?;
            let mut family = family;
            // Alerts join this series to link to the status page; empty when not configured.
            let external_url = self.state.external_url().unwrap_or_default();
            let labels = [
                ("version", VERSION),
                ("revision", REVISION),
                ("external_url", external_url.as_str()),
            ];
            ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
        }
        scalar(
            &mut encoder,
            "readiness_exporter_start_time",
            "When the exporter started, as a Unix timestamp",
            Some(Unit::Seconds),
            seconds(self.state.started),
        )?;
        scalar(
            &mut encoder,
            "readiness_exporter_checks",
            "Number of configured checks",
            None,
            entries.len() as f64,
        )?;
        let reload = self.state.reload_status();
        scalar(
            &mut encoder,
            "readiness_exporter_config_last_reload_successful",
            "1 when the last configuration reload was applied",
            None,
            f64::from(u8::from(reload.successful)),
        )?;
        scalar(
            &mut encoder,
            "readiness_exporter_config_last_reload_success_timestamp",
            "When a configuration was last applied, as a Unix timestamp",
            Some(Unit::Seconds),
            seconds(reload.last_success),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "readiness_exporter_config_reloads",
                "Configuration reloads since start, by result: success (applied) or failure (rejected)",
                None,
                MetricType::Counter,
            )?;
            for (result, count) in [("success", reload.successes), ("failure", reload.failures)] {
                ConstCounter::new(count).encode(family.encode_family(&[("result", result)])?)?;
            }
        }

        encode_measures(&mut encoder, entries)
    }
}

fn per_check(
    encoder: &mut Encoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    entries: &[&Entry],
    value: impl Fn(usize, &Entry) -> Option<f64>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
    for (i, entry) in entries.iter().enumerate() {
        if let Some(value) = value(i, entry) {
            let labels = [("check", entry.def.id.as_str())];
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn scalar(
    encoder: &mut Encoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
    ConstGauge::new(value).encode(family)
}

/// Writes each kind's measure families, grouping the series of one family together as the
/// format requires. Families without any series are left out.
fn encode_measures(encoder: &mut Encoder<'_>, entries: &[&Entry]) -> Result<(), std::fmt::Error> {
    for family_def in measure_families() {
        let series: Vec<(&str, &Measure)> = entries
            .iter()
            .filter_map(|entry| entry.last.as_ref().map(|last| (entry, last)))
            .flat_map(|(entry, last)| {
                last.outcome
                    .measures
                    .iter()
                    .filter(|measure| std::ptr::eq(measure.family, family_def))
                    .map(move |measure| (entry.def.id.as_str(), measure))
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        let unit = unit_of(family_def);
        let mut family = encoder.encode_descriptor(
            family_def.name,
            family_def.help,
            unit.as_ref(),
            MetricType::Gauge,
        )?;
        for (check, measure) in series {
            let mut labels: Vec<(&str, &str)> = vec![("check", check)];
            labels.extend(
                family_def
                    .labels
                    .iter()
                    .copied()
                    .zip(measure.label_values.iter().map(String::as_str)),
            );
            ConstGauge::new(measure.value).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn unit_of(family: &MeasureFamily) -> Option<Unit> {
    family.unit.map(|unit| match unit {
        "seconds" => Unit::Seconds,
        "bytes" => Unit::Bytes,
        "ratios" => Unit::Ratios,
        other => Unit::Other(other.to_string()),
    })
}

/// Returns the labels of a check's `readiness_check_info` series, in exposition order, with
/// `check` first.
fn info_labels(def: &CheckDef) -> [(&'static str, &str); 7] {
    [
        ("check", def.id.as_str()),
        ("title", def.title.as_str()),
        ("section", def.section.as_str()),
        ("severity", def.severity.as_str()),
        ("kind", def.kind.name()),
        ("blocking", if def.blocking { "true" } else { "false" }),
        ("runbook_url", def.runbook_url.as_deref().unwrap_or("")),
    ]
}
