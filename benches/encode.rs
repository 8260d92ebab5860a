//! Cost of one `/metrics` scrape with 10,000 checks, next to the cost of copying the same bytes.
//!
//! `encode` is the writer that serves `/metrics`; `encode_prometheus_client` is the reference
//! encoder through prometheus-client, which writes the same bytes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use readiness_exporter::check::{http, Measure, Outcome, Reason};
use readiness_exporter::state::{CheckResult, State};
use readiness_exporter::{config, metrics};

const CHECKS: usize = 10_000;

fn state_with_results() -> Arc<State> {
    readiness_exporter::install_crypto_provider();
    let mut yaml = String::from("checks:\n");
    for i in 0..CHECKS {
        yaml.push_str(&format!(
            "  - id: check_{i:05}\n    title: \"Service {i} answers its health endpoint\"\n    section: \"Section {}\"\n    severity: critical\n    runbook_url: https://runbooks.example.com/check-{i}\n    http:\n      url: http://127.0.0.1:8080/health/{i}\n",
            i % 12
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = config::load_with_env(&path, Some(HashMap::new())).unwrap();
    let state = Arc::new(State::new());
    state.set_checks(&config.checks);
    for (i, def) in config.checks.iter().enumerate() {
        let outcome = if i % 10 == 0 {
            Outcome::fail(Reason::UnexpectedStatus, "status 503, expected 2xx")
                .with_measures(vec![Measure::new(&http::STATUS_CODE, 503.0)])
        } else {
            Outcome::pass("status 200 in 3ms")
                .with_measures(vec![Measure::new(&http::STATUS_CODE, 200.0)])
        };
        let result = CheckResult {
            outcome,
            started: SystemTime::now(),
            duration: Duration::from_millis(3),
        };
        state.record(def, result);
    }
    state
}

fn encode(c: &mut Criterion) {
    let state = state_with_results();
    let registry = metrics::registry(state.clone());
    let body = metrics::encode_state(&state);
    assert_eq!(
        body,
        metrics::encode(&registry),
        "both encoders write the same bytes"
    );
    let mut group = c.benchmark_group("scrape_10000_checks");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(20);
    group.bench_function("encode", |b| b.iter(|| metrics::encode_state(&state)));
    group.bench_function("encode_prometheus_client", |b| {
        b.iter(|| metrics::encode(&registry))
    });
    group.bench_function("copy_same_bytes", |b| {
        b.iter(|| {
            let mut copy = String::with_capacity(64 * 1024);
            for line in body.split_inclusive('\n') {
                copy.push_str(line);
            }
            copy
        })
    });
    group.finish();
    eprintln!(
        "exposition size: {} bytes, {} lines",
        body.len(),
        body.lines().count()
    );
}

criterion_group!(benches, encode);
criterion_main!(benches);
