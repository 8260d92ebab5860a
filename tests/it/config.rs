//! Configuration loading: fixtures with their exact messages, overrides, defaults and examples.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use readiness_exporter::config::{self, ConfigError};

use crate::support;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/config");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
}

fn problems(path: &Path) -> Vec<String> {
    support::init();
    match config::load_with_env(path, Some(HashMap::new())) {
        Ok(_) => panic!("{} loaded, but it is invalid", path.display()),
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => vec![other.to_string()],
    }
}

#[test]
fn invalid_fixtures_report_exact_problems() {
    let paths = fixtures();
    assert!(paths.len() >= 10, "fixtures missing");
    for path in paths {
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no .expected file", path.display()));
        let expected: Vec<&str> = expected.lines().collect();
        assert_eq!(problems(&path), expected, "fixture {}", path.display());
    }
}

#[test]
fn credential_value_never_in_messages() {
    for (fixture, values) in [
        (
            "literal_credential_header.yaml",
            &["do-not-print-this-token"][..],
        ),
        (
            "literal_secrets.yaml",
            &[
                "do-not-print-vault-token",
                "do-not-print-db-password",
                "9876543210123",
                "do-not-print-prometheus-token",
            ][..],
        ),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/fixtures/config")
            .join(fixture);
        let err = config::load_with_env(&path, Some(HashMap::new())).unwrap_err();
        let shown = format!("{err}\n{err:?}");
        for value in values {
            assert!(!shown.contains(value), "{fixture}: `{value}` in {shown}");
        }
    }
}

fn load_text(yaml: &str, env: &[(&str, &str)]) -> Result<config::Config, ConfigError> {
    support::init();
    let dir = tempfile::tempdir().unwrap();
    let path = support::write_config(dir.path(), yaml);
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config::load_with_env(&path, Some(env))
}

const MINIMAL: &str = "
checks:
  - id: api
    title: API
    section: Smoke
    severity: critical
    http:
      url: http://127.0.0.1:1/
  - id: docs
    title: Docs
    section: Post
    severity: warning
    interval: 20s
    http:
      url: http://127.0.0.1:1/docs
";

#[test]
fn defaults_apply_when_fields_omitted() {
    let config = load_text(MINIMAL, &[]).unwrap();
    assert_eq!(config.global.interval, Duration::from_secs(60));
    assert_eq!(config.global.timeout, Duration::from_secs(10));
    assert_eq!(config.global.max_concurrent_checks, 32);
    assert_eq!(config.global.listen_address.to_string(), "127.0.0.1:9731");
    let api = &config.checks[0];
    assert!(api.blocking, "critical checks block by default");
    assert_eq!(
        api.jitter,
        Duration::from_secs(6),
        "a tenth of the interval"
    );
    let docs = &config.checks[1];
    assert!(!docs.blocking, "warnings do not block by default");
    assert_eq!(docs.interval, Duration::from_secs(20));
}

#[test]
fn environment_overrides_global_values() {
    let config = load_text(
        MINIMAL,
        &[
            ("READINESS_EXPORTER__GLOBAL__INTERVAL", "45s"),
            ("READINESS_EXPORTER__GLOBAL__MAX_CONCURRENT_CHECKS", "4"),
            (
                "READINESS_EXPORTER__GLOBAL__LISTEN_ADDRESS",
                "127.0.0.1:19731",
            ),
        ],
    )
    .unwrap();
    assert_eq!(config.global.interval, Duration::from_secs(45));
    assert_eq!(config.global.max_concurrent_checks, 4);
    assert_eq!(config.global.listen_address.port(), 19731);
    assert_eq!(config.checks[0].interval, Duration::from_secs(45));
}

#[test]
fn invalid_override_is_reported() {
    let err = load_text(MINIMAL, &[("READINESS_EXPORTER__GLOBAL__INTERVAL", "soon")]).unwrap_err();
    assert!(err.to_string().contains("invalid duration `soon`"), "{err}");
}

#[test]
fn empty_checklist_is_rejected() {
    let cases = [
        ("empty list", "checks: []\n", Some(1)),
        ("null list", "global:\n  interval: 30s\nchecks:\n", Some(3)),
        ("no checks key", "global:\n  interval: 30s\n", None),
        ("empty file", "", None),
        ("only a comment", "# nothing yet\n", None),
    ];
    for (case, yaml, line) in cases {
        let err = load_text(yaml, &[]).expect_err(case);
        let ConfigError::Invalid { problems, .. } = err else {
            panic!("{case}: not a configuration problem: {err}");
        };
        assert_eq!(problems.len(), 1, "{case}: {problems:?}");
        assert_eq!(problems[0].field, "checks", "{case}");
        assert_eq!(problems[0].line, line, "{case}");
        assert_eq!(
            problems[0].message, "no checks configured; add at least one check under `checks`",
            "{case}"
        );
    }
}

#[test]
fn invalid_override_names_variable() {
    let yaml = format!("global:\n  interval: 30s\n  max_concurrent_checks: 8\n{MINIMAL}");
    let err = load_text(
        &yaml,
        &[
            ("READINESS_EXPORTER__GLOBAL__INTERVAL", "soon"),
            ("READINESS_EXPORTER__GLOBAL__MAX_CONCURRENT_CHECKS", "many"),
        ],
    )
    .unwrap_err();
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("not a configuration problem: {err}");
    };
    let mut lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "environment variable `READINESS_EXPORTER__GLOBAL__INTERVAL`, field `global.interval`: invalid duration `soon`; write a number with a unit, such as `500ms`, `30s` or `5m`",
            "environment variable `READINESS_EXPORTER__GLOBAL__MAX_CONCURRENT_CHECKS`, field `global.max_concurrent_checks`: invalid type: string \"many\", expected an integer",
        ]
    );
    for problem in &problems {
        assert_eq!(problem.line, None, "{problem}");
    }
}

#[test]
fn duration_units_match_docs() {
    let check = |interval: &str| {
        format!(
            "checks:\n  - id: a\n    title: A\n    section: S\n    severity: info\n    interval: {interval}\n    http:\n      url: http://127.0.0.1:1/\n"
        )
    };
    let month = load_text(&check("1M"), &[]).unwrap();
    assert_eq!(month.checks[0].interval, Duration::from_secs(2_630_016));
    let minutes = load_text(&check("1h 30m"), &[]).unwrap();
    assert_eq!(minutes.checks[0].interval, Duration::from_secs(5_400));
    let longest = load_text(&check("36500d"), &[]).unwrap();
    assert_eq!(
        longest.checks[0].interval,
        Duration::from_secs(36_500 * 86_400)
    );
    let err = load_text(&check("100y"), &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("duration `100y` is longer than the maximum of 100 years"),
        "{err}"
    );
}

#[test]
fn check_without_kind_lists_kinds() {
    let err = load_text(
        "checks:\n  - id: a\n    title: A\n    section: S\n    severity: info\n",
        &[],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("line 2: check `a`: no check kind given; add exactly one of: "),
        "{text}"
    );
    assert!(text.contains("http"), "{text}");
}

#[test]
fn unknown_check_key_names_key() {
    let err = load_text(
        "checks:\n  - id: a\n    title: A\n    section: S\n    severity: info\n    intervall: 5s\n    http:\n      url: http://127.0.0.1:1/\n",
        &[],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("line 6: check `a`, field `intervall`: unknown key `intervall`"),
        "{text}"
    );
}

#[test]
fn yaml_syntax_error_names_line() {
    let err = load_text("checks:\n  - id: a\n    title: [unclosed\n", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("line 3 column 12"), "{text}");
    assert!(
        !text.contains("error:"),
        "the CLI adds the only `error:`: {text}"
    );
}

#[test]
fn missing_file_names_path() {
    let err = config::load(Path::new("/nonexistent/readiness.yaml")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/readiness.yaml"),
        "{err}"
    );
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );
}

#[test]
fn shipped_examples_load() {
    support::init();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut loaded = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Only checklist configurations; attestation files live beside them.
        if path.extension().is_some_and(|ext| ext == "yaml") && text.contains("\nchecks:") {
            let config = config::load_with_env(&path, Some(HashMap::new()))
                .unwrap_or_else(|err| panic!("{err}"));
            assert!(
                !config.checks.is_empty(),
                "{} has no checks",
                path.display()
            );
            loaded += 1;
        }
    }
    assert!(loaded >= 1);
}

#[test]
fn helm_default_values_load() {
    support::init();
    let values_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/readiness-exporter/values.yaml");
    let values: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(values_path).unwrap()).unwrap();
    let checklist = values.get("config").expect("values.yaml has no `config`");
    // JSON is YAML, so the chart's `config` value is written out as JSON.
    let config = load_text(&checklist.to_string(), &[]).unwrap_or_else(|err| panic!("{err}"));
    assert!(!config.checks.is_empty());
}

#[test]
fn coverage_page_names_example_checks() {
    support::init();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ids = std::collections::BTreeSet::new();
    for example in ["examples/ojala-production.yaml", "examples/database.yaml"] {
        let config = config::load_with_env(&root.join(example), Some(HashMap::new()))
            .unwrap_or_else(|err| panic!("{err}"));
        ids.extend(config.checks.iter().map(|check| check.id.clone()));
    }
    let page = std::fs::read_to_string(root.join("docs/checklist-coverage.md")).unwrap();
    let mut named = 0;
    for line in page.lines().filter(|line| line.starts_with("| ")) {
        let Some(cell) = line.split('|').nth(2) else {
            continue;
        };
        for id in cell.split('`').skip(1).step_by(2) {
            assert!(
                ids.contains(id),
                "docs/checklist-coverage.md names `{id}`, which no example defines"
            );
            named += 1;
        }
    }
    assert!(
        named > 40,
        "only {named} check ids found on the coverage page"
    );
}

#[test]
fn global_override_compared_once() {
    let yaml = format!("global:\n  interval: 10s\n{MINIMAL}");
    let err = load_text(&yaml, &[("READINESS_EXPORTER__GLOBAL__TIMEOUT", "20s")]).unwrap_err();
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("not a configuration problem: {err}");
    };
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    // `docs` sets its own interval of 20s, so the inherited timeout is compared with it there.
    // `api` sets neither, so it is not reported again.
    assert_eq!(
        lines[0],
        "line 15: check `docs`, field `interval`: timeout `20s` is not shorter than interval `20s`; a run must end before the next one starts, so shorten the timeout or lengthen the interval"
    );
    assert_eq!(
        lines[1],
        "environment variable `READINESS_EXPORTER__GLOBAL__TIMEOUT`, field `global.timeout`: timeout `20s` is not shorter than interval `10s`; a run must end before the next one starts, so shorten the timeout or lengthen the interval"
    );
}

#[test]
fn checks_item_override_names_variable() {
    let err = load_text(MINIMAL, &[("READINESS_EXPORTER__CHECKS__0__TITLE", "x")]).unwrap_err();
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("not a configuration problem: {err}");
    };
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "environment variable `READINESS_EXPORTER__CHECKS__0__TITLE`: single items of `checks` cannot be overridden; override scalar values such as `READINESS_EXPORTER__GLOBAL__INTERVAL`, or template the file",
        ]
    );
    assert_eq!(problems[0].line, None);
}

#[test]
fn duplicate_key_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = support::write_config(
        dir.path(),
        "checks:\n  - id: a\n    title: A\n    section: S\n    severity: critical\n    http: { url: \"http://127.0.0.1:1/\" }\n    http: { url: \"http://127.0.0.1:2/\" }\n",
    );
    let message = config::load_with_env(&path, Some(HashMap::new()))
        .expect_err("a file with a duplicate key loaded")
        .to_string();
    assert!(message.contains("line 7 column 5"), "{message}");
    assert!(message.contains("duplicate mapping key: http"), "{message}");
    assert!(
        message.contains("write each key once in a map"),
        "{message}"
    );
    assert!(!message.contains("DuplicateKeyPolicy"), "{message}");
}

#[test]
fn merge_keys_share_a_block_with_overrides() {
    let shared = "
checks:
  - id: orders_db
    title: Orders database
    section: Database
    severity: critical
    postgres_reachable:
      connection: &db
        host: 127.0.0.1
        user: readiness
        sslmode: disable
  - id: ledger_db
    title: Ledger database
    section: Database
    severity: critical
    postgres_reachable:
      connection:
        <<: *db
        database: ledger
";
    let loaded = load_text(shared, &[]).expect("a merge key that fills the required keys");
    assert_eq!(loaded.checks.len(), 2);

    // A key written beside the merge key wins over the merged one, so the bad mode is seen.
    let overridden = shared.replace("database: ledger", "sslmode: prefer");
    let ConfigError::Invalid { problems, .. } = load_text(&overridden, &[]).unwrap_err() else {
        panic!("an unknown sslmode loaded");
    };
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("check `ledger_db`")
            && problems[0].contains("unknown sslmode `prefer`"),
        "{problems:?}"
    );
}

#[test]
fn file_secret_drops_only_trailing_line_breaks() {
    use readiness_exporter::secret::{SecretError, SecretRef};

    let dir = tempfile::tempdir().unwrap();
    let resolve = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        SecretRef::File(path).resolve()
    };

    let cases = [
        ("lf", "token\n", "token"),
        ("crlf", "token\r\n", "token"),
        ("blank_lines", "token\n\r\n\n", "token"),
        ("lone_cr", "token\r", "token"),
        ("trailing_blanks_kept", "token \t\n", "token \t"),
        ("leading_blanks_kept", " token\n", " token"),
        (
            "inner_break_kept",
            "line one\nline two\n",
            "line one\nline two",
        ),
    ];
    for (name, contents, expected) in cases {
        let secret = resolve(name, contents).unwrap();
        assert_eq!(secret.expose(), expected, "file `{name}`");
    }

    let only_breaks = resolve("only_breaks", "\r\n\n");
    assert!(
        matches!(only_breaks, Err(SecretError::Empty(_))),
        "a file of line breaks alone is empty: {only_breaks:?}"
    );
}
