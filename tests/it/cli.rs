//! The command-line interface: `check` in every format with its exit codes, `validate`, and a
//! secret canary across every output of `check` and `serve`.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{self, respond, serve_fn};

const BINARY: &str = env!("CARGO_BIN_EXE_readiness-exporter");
const CANARY: &str = "canary-5b9e2d71-secret-value";

fn config(dir: &Path, up_url: &str, down_port: u16) -> std::path::PathBuf {
    let token = dir.join("token");
    std::fs::write(&token, format!("Bearer {CANARY}\n")).unwrap();
    let yaml = format!(
        "global:
  interval: 30s
  timeout: 3s
checks:
  - id: api_up
    title: API answers
    section: Deployment
    severity: critical
    http:
      url: {up_url}
      headers:
        Authorization: {{ file: {token} }}
  - id: identity_down
    title: Identity answers
    section: Deployment
    severity: critical
    http:
      url: http://127.0.0.1:{down_port}/health
      headers:
        Authorization: {{ file: {token} }}
  - id: docs
    title: Docs published
    section: Post-deployment
    severity: info
    http:
      url: {up_url}
      body_matches: [\"never there\"]
",
        token = token.display()
    );
    support::write_config(dir, &yaml)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BINARY)
        .args(args)
        .env("READINESS_EXPORTER_LOG_LEVEL", "debug")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn check_exit_codes_and_formats() {
    // The server echoes the credential back, as a misbehaving target might.
    let server = serve_fn(|request| {
        let echoed = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        respond(200, echoed)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        &server.url("http", "/"),
        support::closed_port().await,
    );
    let path = path.to_str().unwrap();

    let outputs = tokio::task::spawn_blocking({
        let path = path.to_string();
        move || {
            ["table", "json", "junit", "markdown"].map(|format| {
                (
                    format,
                    run(&["check", "--config", &path, "--format", format]),
                )
            })
        }
    })
    .await
    .unwrap();

    for (format, (code, stdout, stderr)) in &outputs {
        assert_eq!(
            *code, 1,
            "a blocking check fails, so `check --format {format}` exits 1\n{stderr}"
        );
        assert!(!stdout.contains(CANARY), "secret in {format} output");
        assert!(!stderr.contains(CANARY), "secret in logs of {format} run");
    }
    let markdown = &outputs[3].1 .1;
    assert!(markdown.contains("## Deployment"), "{markdown}");
    assert!(
        markdown.contains("- [x] **API answers** (`api_up`)"),
        "{markdown}"
    );
    assert!(markdown.contains("- [ ] **Identity answers** (`identity_down`) — error (connection_refused): connection to 127.0.0.1:"), "{markdown}");
    assert!(
        markdown.contains("- [ ] **Docs published** (`docs`) — fail (body_mismatch)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("1 of 3 items done; gate closed by 1 blocking item(s)."),
        "{markdown}"
    );

    let junit = &outputs[2].1 .1;
    assert!(
        junit.contains("<testsuites name=\"readiness\" tests=\"3\" failures=\"1\" errors=\"1\">"),
        "{junit}"
    );
    assert!(
        junit.contains("<error type=\"connection_refused\""),
        "{junit}"
    );

    let json: serde_json::Value = serde_json::from_str(&outputs[1].1 .1).unwrap();
    assert_eq!(json["checks"][1]["reason"], "connection_refused");

    let table = &outputs[0].1 .1;
    assert!(
        table.lines().next().unwrap().starts_with("RESULT"),
        "{table}"
    );
    assert!(
        table.contains("gate closed (1 blocking check(s) not passing)"),
        "{table}"
    );

    // One section whose blocking checks all pass: exit 0.
    let path_owned = path.to_string();
    let (code, stdout, _) = tokio::task::spawn_blocking(move || {
        run(&[
            "check",
            "--config",
            &path_owned,
            "--section",
            "Post-deployment",
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn invalid_configuration_exits_two() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/config/several_problems.yaml"
    );
    let (code, _, stderr) = run(&["check", "--config", fixture]);
    assert_eq!(code, 2);
    assert!(stderr.contains("has 5 problem(s)"), "{stderr}");
    let (code, _, _) = run(&["validate", "--config", fixture]);
    assert_eq!(code, 2);
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.yaml");
    let (code, stdout, stderr) = run(&["validate", "--config", quickstart]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("is valid: 6 checks (3 blocking) in 2 sections"),
        "{stdout}"
    );
    assert!(!stderr.contains("no check is blocking"), "{stderr}");
}

#[test]
fn nothing_blocking_warns_of_open_gate() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(
        dir.path(),
        "checks:\n  - id: a\n    title: A\n    section: S\n    severity: warning\n    http: { url: \"http://127.0.0.1:9/\" }\n",
    );
    let config = config.to_str().unwrap();
    let (code, stdout, stderr) = run(&["validate", "--config", config]);
    assert_eq!(code, 0);
    assert!(stdout.contains("(0 blocking)"), "{stdout}");
    assert!(stderr.contains("warning: no check is blocking"), "{stderr}");

    let (code, _, stderr) = run(&["check", "--config", config]);
    assert_eq!(code, 0);
    assert!(stderr.contains("deploy gate is always open"), "{stderr}");
}

/// Runs the binary with `set` added to and `unset` removed from the inherited environment.
fn run_with_env(args: &[&str], set: &[(&str, &str)], unset: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(BINARY);
    command.args(args);
    for (name, value) in set {
        command.env(name, value);
    }
    for name in unset {
        command.env_remove(name);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn unset_secret_variable_warns() {
    const UNSET: &str = "READINESS_TEST_UNSET_DB_PASSWORD";
    const EMPTY: &str = "READINESS_TEST_EMPTY_API_TOKEN";
    const SET: &str = "READINESS_TEST_SET_API_KEY";
    const UNSET_VAULT: &str = "READINESS_TEST_UNSET_VAULT_TOKEN";
    let closed = support::closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let checks = format!(
        "checks:
  - id: orders_db
    title: Orders database answers
    section: Database
    severity: critical
    postgres_reachable:
      connection:
        host: 127.0.0.1
        port: {closed}
        user: readiness
        sslmode: disable
        password: {{ env: {UNSET} }}
  - id: api_up
    title: API answers
    section: Smoke
    severity: critical
    http:
      url: http://127.0.0.1:{closed}/health
      headers:
        Authorization: {{ env: {EMPTY} }}
        X-Api-Key: {{ env: {SET} }}
"
    );
    let path = support::write_config(dir.path(), &checks);
    let path = path.to_str().unwrap().to_string();
    let set = [(EMPTY, ""), (SET, CANARY)];

    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let path = path.clone();
        move || run_with_env(&["validate", "--config", &path], &set, &[UNSET])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "an unset variable is no error\n{stderr}");
    assert!(stdout.contains("is valid: 2 checks"), "{stdout}");
    assert!(
        stderr.contains(&format!("warning: line 12: check `orders_db`, field `postgres_reachable.connection.password`: environment variable `{UNSET}` is not set here")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("warning: line 20: check `api_up`, field `http.headers.Authorization`: environment variable `{EMPTY}` is empty here")),
        "{stderr}"
    );
    assert!(
        !stderr.contains(SET),
        "a set variable is not reported\n{stderr}"
    );
    assert!(
        !stderr.contains(CANARY),
        "secret value in warnings\n{stderr}"
    );
    assert_eq!(stderr.matches("warning:").count(), 2, "{stderr}");

    // `check` warns about the checks it runs only.
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let path = path.clone();
        move || {
            run_with_env(
                &["check", "--config", &path, "--section", "Smoke"],
                &set,
                &[UNSET],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "api_up cannot pass\n{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("check `api_up`, field `http.headers.Authorization`: environment variable `{EMPTY}` is empty")),
        "{stderr}"
    );
    assert!(!stderr.contains("orders_db"), "{stderr}");
    assert!(
        !stdout.contains(CANARY),
        "secret value in the report\n{stdout}"
    );

    // A reference outside the checks names the field alone.
    let vault_dir = tempfile::tempdir().unwrap();
    let with_vault = support::write_config(
        vault_dir.path(),
        &format!(
            "vault:
  address: http://127.0.0.1:{closed}
  auth:
    token: {{ env: {UNSET_VAULT} }}
{checks}"
        ),
    );
    let with_vault = with_vault.to_str().unwrap().to_string();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        run_with_env(
            &["validate", "--config", &with_vault],
            &set,
            &[UNSET, UNSET_VAULT],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("warning: line 4: field `vault.auth.token`: environment variable `{UNSET_VAULT}` is not set here; unless it is set where the exporter runs, the secret cannot be read")),
        "{stderr}"
    );
}

#[test]
fn validate_errors_print_once_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let (code, _, stderr) = run(&["validate", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("No such file or directory"), "{stderr}");

    let broken = support::write_config(dir.path(), "checks:\n  - id: a\n    title: [unclosed\n");
    let (code, _, stderr) = run(&["validate", "--config", broken.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("is not valid YAML: line 3 column 12"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
}

/// Kills the process when dropped, so a failed assertion does not leave it running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_outputs_never_contain_secret() {
    support::init();
    let server = serve_fn(|request| {
        let echoed = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        // Echo the credential in a header and the body, and fail, so every path is exercised.
        let mut response = respond(500, echoed.clone());
        response
            .headers_mut()
            .insert("x-echo", echoed.parse().unwrap());
        response
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        &server.url("http", "/"),
        support::closed_port().await,
    );
    let port = support::closed_port().await;
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "global:\n",
            &format!("global:\n  listen_address: 127.0.0.1:{port}\n"),
        ),
    )
    .unwrap();

    let mut child = KillOnDrop(
        Command::new(BINARY)
            .args([
                "serve",
                "--config",
                path.to_str().unwrap(),
                "--log-format",
                "json",
                "--log-level",
                "trace",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let mut bodies = Vec::new();
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(format!("{base}/-/ready")).await {
            if response.status() == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for endpoint in [
        "/metrics",
        "/",
        "/api/v1/checks",
        "/api/v1/checks/api_up",
        "/api/v1/gate",
        "/-/ready",
    ] {
        bodies.push((
            endpoint,
            reqwest::get(format!("{base}{endpoint}"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        ));
    }
    let reload = reqwest::Client::new()
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    bodies.push(("/-/reload", reload.text().await.unwrap()));

    // SIGHUP reloads too: remove the `docs` check and wait for its series to go.
    let text = std::fs::read_to_string(&path).unwrap();
    let without_docs = &text[..text.find("  - id: docs").unwrap()];
    std::fs::write(&path, without_docs).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status();
    let mut reloaded = false;
    for _ in 0..200 {
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if !metrics.contains("check=\"docs\"") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let status = child.0.wait().unwrap();
    let mut logs = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();

    assert!(
        status.success(),
        "SIGTERM stops the exporter cleanly\n{logs}"
    );
    assert!(reloaded, "SIGHUP removed the `docs` check\n{logs}");
    assert!(logs.contains("Configuration reloaded"), "{logs}");
    assert!(
        bodies[0]
            .1
            .contains("readiness_check_success{check=\"api_up\"} 0"),
        "{}",
        bodies[0].1
    );
    for (endpoint, body) in &bodies {
        assert!(!body.contains(CANARY), "secret in {endpoint}");
    }
    assert!(logs.contains("Check is not passing"), "{logs}");
    assert!(!logs.contains(CANARY), "secret in logs");
}

#[tokio::test]
async fn serve_on_taken_port_runs_no_check() {
    support::init();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let server = serve_fn(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        respond(200, "ok")
    })
    .await;

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = support::write_config(
        dir.path(),
        &format!(
            "global:\n  listen_address: 127.0.0.1:{port}\nchecks:\n  - id: api_up\n    title: API answers\n    section: Deployment\n    severity: critical\n    http:\n      url: {}\n",
            server.url("http", "/")
        ),
    );
    let path = path.to_str().unwrap().to_string();

    let output = tokio::task::spawn_blocking(move || run(&["serve", "--config", &path]))
        .await
        .unwrap();
    let (code, _, stderr) = output;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no check ran before the port was bound"
    );
    drop(taken);
}

#[test]
fn unknown_log_level_exits_two() {
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.yaml");
    let output = Command::new(BINARY)
        .args(["validate", "--config", quickstart, "--log-level", "verbose"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`verbose` is not a log level"), "{stderr}");

    let output = Command::new(BINARY)
        .args(["validate", "--config", quickstart, "--log-level", "warning"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
}

#[tokio::test]
async fn missed_runs_are_logged() {
    support::init();
    // Accepts connections into its backlog and never responds, so every run lasts its timeout.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let port = support::closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = format!(
        "global:\n  listen_address: 127.0.0.1:{port}\n  interval: 1s\n  timeout: 900ms\n  max_concurrent_checks: 1\nchecks:\n"
    );
    for id in ["first", "second"] {
        yaml.push_str(&format!(
            "  - id: {id}\n    title: Hung {id}\n    section: Faults\n    severity: warning\n    http:\n      url: http://127.0.0.1:{hung_port}/\n"
        ));
    }
    let path = support::write_config(dir.path(), &yaml);

    let mut child = KillOnDrop(
        Command::new(BINARY)
            .args(["serve", "--config", path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Two runs of 900 ms share one slot per second, so each check misses runs within seconds.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = child.0.kill();
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();

    // Each check misses a run about every other second, but logs it once per five minutes.
    for id in ["first", "second"] {
        let warnings = stderr
            .lines()
            .filter(|line| line.contains("Check missed scheduled runs"))
            .filter(|line| line.contains(&format!("check={id} ")))
            .count();
        assert_eq!(warnings, 1, "missed-run warnings of {id} in:\n{stderr}");
    }
    drop(hung);
}
