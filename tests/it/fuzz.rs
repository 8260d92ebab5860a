//! Property-based tests of the configuration loader: arbitrary text, mutated example files and
//! generated checks with extreme values either load or return problems, never panic, and every
//! configuration that loads can be rendered by every output. Case counts are bounded so the
//! suite stays fast; proptest keeps failing inputs under `tests/proptest-regressions/`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use readiness_exporter::check::{Outcome, Reason};
use readiness_exporter::config::{self, Config};
use readiness_exporter::report::{self, CheckView, Format};
use readiness_exporter::state::{CheckResult, State};

/// The shipped examples and the invalid-configuration fixtures, as seeds for mutation.
const SEEDS: &[&str] = &[
    include_str!("../../examples/quickstart.yaml"),
    include_str!("../../examples/database.yaml"),
    include_str!("../../examples/ojala-production.yaml"),
    include_str!("fixtures/config/several_problems.yaml"),
    include_str!("fixtures/config/bad_regex.yaml"),
    include_str!("fixtures/config/unknown_http_key.yaml"),
];

/// Loads `text` as a configuration file in a new directory.
fn load(text: &str) -> Result<Config, config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    config::load_with_env(&path, Some(HashMap::new()))
}

/// Records a result for every check and renders every output: `/metrics`, the JSON API, every
/// report format and the gate.
fn render_outputs(config: &Config) {
    let state = Arc::new(State::new());
    state.set_checks(&config.checks);
    let now = SystemTime::now();
    for def in &config.checks {
        let result = CheckResult {
            outcome: Outcome::error(Reason::Timeout, "no result"),
            started: now,
            duration: def.timeout,
        };
        state.record(def, result);
    }
    let registry = readiness_exporter::metrics::registry(state.clone());
    let metrics = readiness_exporter::metrics::encode(&registry);
    assert!(metrics.ends_with("# EOF\n"));
    let views: Vec<CheckView> = state
        .entries()
        .iter()
        .map(|entry| CheckView::new(entry, now))
        .collect();
    report::json(&views);
    for format in [Format::Table, Format::Json, Format::Junit, Format::Markdown] {
        report::render(format, &views);
    }
    state.gate(now, None);
}

/// Applies byte edits to `seed`: each edit replaces, deletes or inserts one byte at a position.
fn mutate(seed: &str, edits: &[(prop::sample::Index, u8, u8)]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for (index, byte, operation) in edits {
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let at = index.index(bytes.len());
        match operation % 3 {
            0 => bytes[at] = *byte,
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, *byte),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Values at the edges of what the fields accept.
fn edge_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "0",
        "-1",
        "1",
        "0s",
        "1ns",
        "-5s",
        "999ms",
        "1s",
        "36500d",
        "36501d",
        "99999999999999h",
        "500000000000y",
        "18446744073709551616",
        "1e309",
        ".nan",
        "\"\"",
        "\"  \"",
        "~",
        "[]",
        "{}",
        "http://127.0.0.1:1/",
        "https://[::1]:0/",
        "\"\\u0000\"",
        "\"é\u{202e}\"",
        "*undefined",
    ])
    .prop_map(str::to_string)
}

/// A check of one kind with up to four of its fields set to edge values.
fn generated_check() -> impl Strategy<Value = String> {
    let kinds = prop::sample::select(vec![
        (
            "http",
            vec![
                "url",
                "method",
                "max_body_bytes",
                "max_latency",
                "max_redirects",
            ],
        ),
        (
            "cors",
            vec!["url", "allowed_origins", "probe_origin", "expect_status"],
        ),
        (
            "tls",
            vec![
                "address",
                "server_name",
                "min_days_left",
                "min_version",
                "file",
            ],
        ),
        ("dns", vec!["name", "type", "nameserver", "expect", "match"]),
        ("signoff", vec!["file", "item", "roles", "max_age"]),
        (
            "postgres_query",
            vec!["sql", "min", "max", "max_age", "on_empty"],
        ),
    ]);
    let check_fields = prop::sample::select(vec!["interval", "timeout", "jitter", "severity"]);
    (
        kinds,
        prop::collection::vec((any::<prop::sample::Index>(), edge_value()), 0..4),
        prop::collection::vec((check_fields, edge_value()), 0..3),
    )
        .prop_map(|((kind, fields), kind_values, check_values)| {
            let mut item = String::from(
                "  - id: generated\n    title: Generated\n    section: S\n    severity: warning\n",
            );
            for (field, value) in check_values {
                if field != "severity" {
                    item.push_str(&format!("    {field}: {value}\n"));
                }
            }
            item.push_str(&format!("    {kind}:\n"));
            if kind == "postgres_query" {
                item.push_str("      connection: { host: 127.0.0.1, user: app }\n");
            }
            for (index, value) in kind_values {
                item.push_str(&format!("      {}: {value}\n", index.get(&fields)));
            }
            format!("checks:\n{item}")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn loader_survives_arbitrary_text(text in "\\PC{0,400}") {
        if let Ok(config) = load(&text) {
            render_outputs(&config);
        }
    }

    #[test]
    fn loader_survives_mutated_examples(
        seed in prop::sample::select(SEEDS),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 1..12),
    ) {
        if let Ok(config) = load(&mutate(seed, &edits)) {
            render_outputs(&config);
        }
    }

    #[test]
    fn generated_checks_load_or_report(yaml in generated_check()) {
        match load(&yaml) {
            Ok(config) => render_outputs(&config),
            Err(config::ConfigError::Invalid { problems, .. }) => {
                prop_assert!(!problems.is_empty());
                for problem in &problems {
                    prop_assert!(!problem.message.is_empty());
                }
            }
            Err(_) => {}
        }
    }
}

#[test]
fn longest_durations_render_every_output() {
    // Durations just under the 100-year maximum once made every scrape and page panic, because
    // staleness multiplies the interval by three.
    let yaml = "global:\n  interval: 36500d\n  timeout: 36499d\n  jitter: 3650d\nchecks:\n  - id: slow\n    title: Slow\n    section: S\n    severity: info\n    signoff:\n      file: missing.yaml\n      item: uat\n      max_age: 36500d\n";
    let config = load(yaml).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        config.checks[0].interval,
        Duration::from_secs(36500 * 86_400)
    );
    render_outputs(&config);
}

#[tokio::test]
async fn longest_durations_schedule_and_run() {
    let yaml = "checks:\n  - id: slow\n    title: Slow\n    section: S\n    severity: info\n    interval: 36500d\n    jitter: 36499d\n    timeout: 5s\n    signoff:\n      file: missing.yaml\n      item: uat\n      max_age: 36500d\n";
    let exporter = crate::support::start_exporter(yaml).await;
    exporter.wait_ready().await;
    let (status, _, body) = crate::support::get(&exporter.url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("readiness_check_result{check=\"slow\",result=\"error\"} 1"));
    let (status, _, _) = crate::support::get(&exporter.url("/")).await;
    assert_eq!(status, 200);
}

#[test]
fn alias_bomb_rejected_within_budget() {
    // Nine levels of nine aliases expand to 387 million nodes; the YAML parser's node budget
    // rejects the file before anything expands it.
    let mut yaml = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..9 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 9].join(",");
        yaml.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    yaml.push_str("checks: *a8\n");
    match load(&yaml) {
        Err(config::ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("budget breached"), "{message}");
        }
        Err(other) => panic!("expected a syntax error, got: {other}"),
        Ok(_) => panic!("the alias bomb loaded"),
    }
}
