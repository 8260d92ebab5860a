//! The metric contract: `docs/metrics.md`, the families the code encodes and the reason set agree.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use readiness_exporter::check::{measure_families, Reason};
use readiness_exporter::metrics::{self, CORE_FAMILIES};
use readiness_exporter::state::State;
use readiness_exporter::{config, scheduler};

use crate::support::{self, respond, serve_fn};

/// Table rows of docs/metrics.md: first cell (without backticks) and second cell.
fn documented_rows() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .unwrap();
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

fn documented_metrics() -> BTreeSet<String> {
    documented_rows()
        .into_iter()
        .filter(|(_, kind)| kind == "gauge" || kind == "counter")
        .map(|(name, _)| name)
        .collect()
}

fn code_metrics() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = CORE_FAMILIES
        .iter()
        .map(|family| family.name.to_string())
        .collect();
    names.extend(measure_families().iter().map(|family| family.full_name()));
    names
}

#[test]
fn documented_metrics_match_code() {
    let documented = documented_metrics();
    let code = code_metrics();
    let undocumented: Vec<_> = code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    assert!(
        undocumented.is_empty(),
        "families missing from docs/metrics.md: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/metrics.md names families the code lacks: {unknown:?}"
    );
}

#[test]
fn documented_reasons_match_code() {
    let documented: BTreeSet<String> = documented_rows()
        .into_iter()
        .filter(|(_, status)| ["pass", "fail", "error", "unknown"].contains(&status.as_str()))
        .map(|(name, _)| name)
        .collect();
    let code: BTreeSet<String> = Reason::ALL
        .iter()
        .map(|reason| reason.as_str().to_string())
        .collect();
    assert_eq!(documented, code);
}

#[tokio::test]
async fn encoded_families_are_documented() {
    support::init();
    let server = serve_fn(|_| respond(200, "ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "checks:\n  - id: up\n    title: Up\n    section: S\n    severity: critical\n    http:\n      url: {}\n  - id: down\n    title: Down\n    section: S\n    severity: critical\n    http:\n      url: http://127.0.0.1:{}/\n",
        server.url("http", "/"),
        support::closed_port().await
    );
    let path = support::write_config(dir.path(), &yaml);
    let config = config::load_with_env(&path, Some(HashMap::new())).unwrap();
    let state = Arc::new(State::new());
    state.set_checks(&config.checks);
    for def in &config.checks {
        state.record(def, scheduler::execute(def).await);
    }
    let body = metrics::encode(&metrics::registry(state));

    let mut encoded = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            encoded.insert(if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            });
        }
    }
    let documented = documented_metrics();
    for name in &encoded {
        assert!(
            documented.contains(name),
            "`{name}` is encoded but not documented"
        );
    }
    for family in CORE_FAMILIES {
        assert!(
            encoded.contains(family.name),
            "core family `{}` is not encoded",
            family.name
        );
        let sample = body.lines().find(|line| {
            line.starts_with(family.name.trim_end_matches("_total")) && !line.starts_with('#')
        });
        let sample = sample.unwrap_or_else(|| panic!("no sample of `{}`", family.name));
        for label in family.labels {
            assert!(
                sample.contains(&format!("{label}=\"")),
                "`{}` lacks label `{label}`: {sample}",
                family.name
            );
        }
    }
}
