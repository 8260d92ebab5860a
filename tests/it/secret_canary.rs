//! A secret canary across every check kind: every secret-valued field contains its own marker,
//! the targets echo what they receive back in every place they can, every kind runs (failures
//! included), and no marker may appear in any output of `serve` or `check`.
//!
//! The secrets cover every kind's credential fields, read from files, the environment and Vault
//! (`{ vault: { mount, path, key } }`): request headers, PostgreSQL passwords, the bearer tokens
//! and basic-auth passwords of the monitoring kinds' `server` blocks, the exporter's own Vault
//! token (`vault.auth.token`) and the token of the `kubernetes` block's kubeconfig. A basic-auth
//! password is also searched for in its encoded `Authorization` form.
//!
//! A new kind joins with one entry in [`cases`]; a kind with secret fields takes their values
//! from [`Canary::file_secret`], [`Canary::env_secret`] or [`Canary::vault_secret`].

use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, serve_fn, tcp_server, TestServer};
use crate::vault_support::{self, BaoServer};

const BINARY: &str = env!("CARGO_BIN_EXE_readiness-exporter");

/// The secrets of one run: each a unique marker, written to a file or passed in the child's
/// environment.
struct Canary {
    dir: PathBuf,
    markers: RefCell<Vec<String>>,
    /// Texts that give a secret away as well as its marker: the `Authorization` values of
    /// basic-auth passwords.
    encoded: RefCell<Vec<String>>,
    env: RefCell<Vec<(String, String)>>,
    /// The OpenBao dev server that stores the secrets of [`Canary::vault_secret`].
    vault: Option<Arc<BaoServer>>,
}

impl Canary {
    fn new(dir: &Path, vault: Option<Arc<BaoServer>>) -> Canary {
        Canary {
            dir: dir.to_path_buf(),
            markers: RefCell::default(),
            encoded: RefCell::default(),
            env: RefCell::default(),
            vault,
        }
    }

    fn marker(&self, field: &str) -> String {
        let marker = format!("canary{}x{field}x7f3a", self.markers.borrow().len());
        self.markers.borrow_mut().push(marker.clone());
        marker
    }

    /// Returns a `{ file: PATH }` reference to a new file whose content is `prefix` and a marker.
    fn file_secret(&self, field: &str, prefix: &str) -> String {
        let marker = self.marker(field);
        let path = self.dir.join(format!("secret-{field}"));
        std::fs::write(&path, format!("{prefix}{marker}\n")).unwrap();
        format!("{{ file: {} }}", path.display())
    }

    /// Returns an `{ env: NAME }` reference to a new variable of the child's environment.
    fn env_secret(&self, field: &str, prefix: &str) -> String {
        let marker = self.marker(field);
        let name = format!("READINESS_CANARY_{}", field.to_uppercase());
        self.env
            .borrow_mut()
            .push((name.clone(), format!("{prefix}{marker}")));
        format!("{{ env: {name} }}")
    }

    /// Returns a `{ vault: ... }` reference to a new KV version 2 secret on the dev server, or
    /// a file reference when no `bao` binary is installed.
    fn vault_secret(&self, field: &str, prefix: &str) -> String {
        let Some(vault) = &self.vault else {
            return self.file_secret(field, prefix);
        };
        let marker = self.marker(field);
        vault.bao(&[
            "kv",
            "put",
            &format!("secret/canary/{field}"),
            &format!("value={prefix}{marker}"),
        ]);
        format!("{{ vault: {{ mount: secret, path: canary/{field}, key: value }} }}")
    }

    /// Returns a `basic_auth` block whose password `reference` returned, and records the
    /// `Authorization` value it makes.
    fn basic_auth(&self, reference: String) -> String {
        let password = self.markers.borrow().last().unwrap().clone();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{BASIC_USER}:{password}"));
        self.encoded.borrow_mut().push(encoded);
        format!("basic_auth: {{ username: {BASIC_USER}, password: {reference} }}")
    }
}

/// The user name of every basic-auth block.
const BASIC_USER: &str = "reader";

/// The dependencies the cases point at.
struct Targets {
    /// Echoes the `Authorization` header in the body, in `x-echo` and in
    /// `Access-Control-Allow-Origin`, with status 200.
    echo_ok: TestServer,
    /// The same with status 500.
    echo_error: TestServer,
    /// A PostgreSQL server that requests the password in clear text and quotes it in its error.
    postgres: TestServer,
    closed_port: u16,
}

/// Returns one check item per case: the kind's block and the secrets it uses.
fn cases(canary: &Canary, targets: &Targets) -> Vec<(&'static str, String)> {
    let ok = targets.echo_ok.url("http", "/");
    let error = targets.echo_error.url("http", "/");
    let closed = targets.closed_port;
    let connection = |password: String| {
        format!(
            "      connection:\n        host: 127.0.0.1\n        port: {}\n        user: app\n        password: {password}\n        sslmode: disable\n",
            targets.postgres.addr.port()
        )
    };
    vec![
        (
            "http_pass",
            format!(
                "http:\n      url: {ok}\n      headers:\n        Authorization: {}\n",
                canary.file_secret("http_file", "Bearer ")
            ),
        ),
        (
            "http_header_mismatch",
            format!(
                "http:\n      url: {ok}\n      headers:\n        Authorization: {}\n      expect_headers:\n        x-echo: \"^nothing$\"\n",
                canary.env_secret("http_env", "Bearer ")
            ),
        ),
        (
            "http_status",
            format!(
                "http:\n      url: {error}\n      headers:\n        X-Api-Key: {}\n",
                canary.file_secret("http_api_key", "")
            ),
        ),
        (
            "http_refused",
            format!(
                "http:\n      url: http://127.0.0.1:{closed}/\n      headers:\n        Authorization: {}\n",
                canary.file_secret("http_refused", "Bearer ")
            ),
        ),
        (
            "cors_reflected",
            format!(
                "cors:\n      url: {ok}\n      allowed_origins: [\"https://app.example.com\"]\n      headers:\n        Authorization: {}\n",
                canary.env_secret("cors_env", "Bearer ")
            ),
        ),
        (
            "cors_status",
            format!(
                "cors:\n      url: {error}\n      allowed_origins: [\"https://app.example.com\"]\n      headers:\n        Authorization: {}\n",
                canary.file_secret("cors_file", "Bearer ")
            ),
        ),
        (
            "postgres_reachable",
            format!(
                "postgres_reachable:\n{}",
                connection(canary.file_secret("pg_reachable", ""))
            ),
        ),
        (
            "postgres_replication",
            format!(
                "postgres_replication:\n{}      role: primary\n",
                connection(canary.env_secret("pg_replication", ""))
            ),
        ),
        (
            "postgres_archiving",
            format!(
                "postgres_archiving:\n{}",
                connection(canary.file_secret("pg_archiving", ""))
            ),
        ),
        (
            "postgres_query",
            format!(
                "postgres_query:\n{}      sql: SELECT 1\n      min: 1\n",
                connection(canary.env_secret("pg_query", ""))
            ),
        ),
        (
            "ef_migrations",
            format!(
                "ef_migrations:\n{}      expected_migration: 20240301120000_AddInvoices\n",
                connection(canary.file_secret("pg_migrations", ""))
            ),
        ),
        // The monitoring kinds, each with a credential in its `server` block. The echo servers
        // send the `Authorization` value back in the body and in a Prometheus error.
        (
            "prometheus_targets",
            format!(
                "prometheus_targets:\n      server: {{ url: \"{ok}\", bearer_token: {} }}\n      jobs: [api]\n",
                canary.file_secret("prometheus_bearer", "")
            ),
        ),
        (
            "prometheus_rules",
            format!(
                "prometheus_rules:\n      server: {{ url: \"{error}\", {} }}\n      groups: [api]\n",
                canary.basic_auth(canary.env_secret("prometheus_basic", ""))
            ),
        ),
        (
            "prometheus_alertmanagers",
            format!(
                "prometheus_alertmanagers:\n      server: {{ url: \"{ok}\", bearer_token: {} }}\n",
                canary.vault_secret("prometheus_vault_bearer", "")
            ),
        ),
        (
            "prometheus_query",
            format!(
                "prometheus_query:\n      server: {{ url: \"{ok}\", {} }}\n      query: sum(up)\n      min: 1\n",
                canary.basic_auth(canary.file_secret("prometheus_query_basic", ""))
            ),
        ),
        (
            "alertmanager",
            format!(
                "alertmanager:\n      server: {{ url: \"{error}\", bearer_token: {} }}\n      receivers: [team]\n",
                canary.env_secret("alertmanager_bearer", "")
            ),
        ),
        (
            "grafana",
            format!(
                "grafana:\n      server: {{ url: \"{ok}\", {} }}\n      dashboards: [red]\n",
                canary.basic_auth(canary.vault_secret("grafana_vault_basic", ""))
            ),
        ),
        (
            "loki",
            format!(
                "loki:\n      server: {{ url: \"{ok}\", bearer_token: {} }}\n      query: 'sum(count_over_time({{app=\"api\"}}[5m]))'\n      min: 1\n",
                canary.file_secret("loki_bearer", "")
            ),
        ),
        (
            "elasticsearch_count",
            format!(
                "elasticsearch_count:\n      server: {{ url: \"{error}\", {} }}\n      index: logs\n      window: 15m\n      min: 1\n",
                canary.basic_auth(canary.env_secret("elasticsearch_basic", ""))
            ),
        ),
        // Secrets from Vault in the kinds that send them to their targets.
        (
            "http_vault",
            format!(
                "http:\n      url: {ok}\n      headers:\n        Authorization: {}\n",
                canary.vault_secret("http_vault", "Bearer ")
            ),
        ),
        (
            "postgres_vault",
            format!(
                "postgres_reachable:\n{}",
                connection(canary.vault_secret("pg_vault", ""))
            ),
        ),
        // The kinds that read Vault with the exporter's own token, and the Kubernetes kinds,
        // which send the kubeconfig's token to an API server that echoes it.
        (
            "vault_secret",
            "vault_secret: { mount: secret, path: canary/http_vault }\n".to_string(),
        ),
        (
            "vault_policy",
            "vault_policy: { policies: [missing-policy] }\n".to_string(),
        ),
        (
            "vault_mount",
            "vault_mount: { path: secret, type: kv, version: 2 }\n".to_string(),
        ),
        (
            "vault_auth_method",
            "vault_auth_method: { path: kubernetes, type: kubernetes }\n".to_string(),
        ),
        (
            "kubernetes_workload",
            "kubernetes_workload: { namespace: shop, kind: deployment, name: api }\n".to_string(),
        ),
        (
            "helm_release",
            "helm_release: { namespace: shop, release: shop }\n".to_string(),
        ),
        // The kinds without secret fields run too, so their logs are searched as well.
        (
            "tls",
            format!("tls:\n      address: 127.0.0.1:{closed}\n      server_name: localhost\n"),
        ),
        (
            "dns",
            format!(
                "dns:\n      name: app.example.com\n      type: A\n      nameserver: 127.0.0.1:{closed}\n"
            ),
        ),
        (
            "signoff",
            "signoff:\n      file: missing-signoffs.yaml\n      item: uat\n".to_string(),
        ),
    ]
    .into_iter()
    .filter(|(id, _)| canary.vault.is_some() || !id.starts_with("vault_"))
    .collect()
}

async fn echo_server(status: u16) -> TestServer {
    serve_fn(move |request| {
        let echoed = request
            .headers()
            .get("authorization")
            .or_else(|| request.headers().get("x-api-key"))
            .map(|value| value.to_str().unwrap().to_string())
            .unwrap_or_default();
        // API paths get the echo inside a Prometheus error envelope that is also a Kubernetes
        // Status, so the kinds that quote a server's error message see it.
        let body = if request.uri().path().contains("/api") {
            serde_json::json!({
                "status": "error", "errorType": echoed, "error": echoed,
                "kind": "Status", "apiVersion": "v1", "message": echoed, "reason": echoed, "code": status,
            })
            .to_string()
        } else {
            echoed.clone()
        };
        let mut response = support::respond(status, body);
        let headers = response.headers_mut();
        headers.insert("x-echo", echoed.parse().unwrap());
        headers.insert("access-control-allow-origin", echoed.parse().unwrap());
        response
    })
    .await
}

/// Starts a PostgreSQL server that requests the password in clear text and sends it back inside
/// a FATAL error, as a hostile or broken server might.
async fn echoing_postgres() -> TestServer {
    tcp_server(|mut stream| async move {
        let Ok(length) = stream.read_u32().await else {
            return;
        };
        let mut startup = vec![0u8; (length as usize).saturating_sub(4).min(65536)];
        if stream.read_exact(&mut startup).await.is_err() {
            return;
        }
        // AuthenticationCleartextPassword.
        if stream
            .write_all(b"R\x00\x00\x00\x08\x00\x00\x00\x03")
            .await
            .is_err()
        {
            return;
        }
        let mut tag = [0u8; 1];
        if stream.read_exact(&mut tag).await.is_err() {
            return;
        }
        let length = stream.read_u32().await.unwrap_or(4);
        let mut password = vec![0u8; (length as usize).saturating_sub(4).min(65536)];
        let _ = stream.read_exact(&mut password).await;
        let password = String::from_utf8_lossy(&password)
            .trim_end_matches('\0')
            .to_string();
        let text = format!("password authentication failed, received `{password}`");
        let mut fields = Vec::new();
        for (field, value) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "28P01"),
            (b'M', text.as_str()),
            (b'D', text.as_str()),
        ] {
            fields.push(field);
            fields.extend_from_slice(value.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut message = vec![b'E'];
        message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
        message.extend_from_slice(&fields);
        let _ = stream.write_all(&message).await;
    })
    .await
}

/// Writes the configuration: `blocks` (the top-level `vault` and `kubernetes` blocks), then one
/// check per case.
fn write_config(dir: &Path, blocks: &str, cases: &[(&'static str, String)]) -> PathBuf {
    let mut yaml = format!(
        "global:\n  listen_address: 127.0.0.1:0\n  interval: 30s\n  timeout: 3s\n{blocks}checks:\n"
    );
    for (id, block) in cases {
        yaml.push_str(&format!(
            "  - id: {id}\n    title: Canary {id}\n    section: Canary\n    severity: critical\n    {block}"
        ));
    }
    support::write_config(dir, &yaml)
}

/// Runs the binary with `args`, the canary's environment and every log line at trace level.
fn command(canary: &Canary, args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .args(["--log-level", "trace"])
        .envs(canary.env.borrow().iter().cloned());
    command
}

/// Reads the listen address from the `Listening` log line of `serve`.
fn listen_address(logs: &str) -> Option<String> {
    let line = logs.lines().find(|line| line.contains("Listening"))?;
    let start = line.find("127.0.0.1:")?;
    let end = line[start..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .map_or(line.len(), |end| start + end);
    Some(line[start..end].to_string())
}

#[tokio::test]
async fn no_output_contains_secret() {
    support::init();
    let dir = tempfile::tempdir().unwrap();
    let vault = vault_support::bao_bin().map(|bin| vault_support::shared_dev_server(&bin));
    let canary = Canary::new(dir.path(), vault.clone());
    let targets = Targets {
        echo_ok: echo_server(200).await,
        echo_error: echo_server(500).await,
        postgres: echoing_postgres().await,
        closed_port: support::closed_port().await,
    };
    let cases = cases(&canary, &targets);

    // The exporter's own Vault token is a token whose id is a marker, read from a file.
    let mut blocks = String::new();
    if let Some(vault) = &vault {
        let token = canary.marker("vault_token");
        vault.token(&["root"], &[&format!("-id={token}")]);
        let token_file = dir.path().join("vault-token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        blocks.push_str(&format!(
            "vault:\n  address: {}\n  auth:\n    token: {{ file: {} }}\n",
            vault.address,
            token_file.display()
        ));
    }
    // The kubeconfig's token goes to an API server that echoes it in a Status message.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: echo\n  cluster:\n    server: {}\ncontexts:\n- name: echo\n  context:\n    cluster: echo\n    user: reader\ncurrent-context: echo\nusers:\n- name: reader\n  user:\n    token: {}\n",
            targets.echo_error.url("http", ""),
            canary.marker("kubeconfig_token")
        ),
    )
    .unwrap();
    blocks.push_str(&format!(
        "kubernetes:\n  kubeconfig: {}\n",
        kubeconfig.display()
    ));
    let path = write_config(dir.path(), &blocks, &cases);
    let config = path.to_str().unwrap().to_string();
    let mut outputs: Vec<(String, String)> = Vec::new();

    // `check` in every format, with its logs.
    for format in ["table", "json", "junit", "markdown"] {
        let args = ["check", "--config", &config, "--format", format];
        let output = tokio::task::spawn_blocking({
            let mut command = command(&canary, &args);
            move || command.output().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "check --format {format}: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
        outputs.push((
            format!("check --format {format}"),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ));
        outputs.push((
            format!("logs of check --format {format}"),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }

    // `serve` in both log formats: every endpoint, a rejected reload and SIGTERM.
    for log_format in ["json", "text"] {
        let mut child = command(&canary, &["serve", "--config", &config])
            .args(["--log-format", log_format])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    logs.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            })
        };
        let mut address = None;
        for _ in 0..1000 {
            address = listen_address(&logs.lock().unwrap());
            if address.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(address) = address else {
            let _ = child.kill();
            panic!("no `Listening` line in:\n{}", logs.lock().unwrap());
        };
        let base = format!("http://{address}");
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let ready = format!("{base}/-/ready");
        for _ in 0..400 {
            if client
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut endpoints = vec![
            "/metrics".to_string(),
            "/".to_string(),
            "/api/v1/checks".to_string(),
            "/api/v1/gate".to_string(),
            "/api/v1/gate?section=Canary".to_string(),
            "/-/ready".to_string(),
        ];
        endpoints.extend(cases.iter().map(|(id, _)| format!("/api/v1/checks/{id}")));
        for endpoint in &endpoints {
            let response = client
                .get(format!("{base}{endpoint}"))
                .send()
                .await
                .unwrap();
            let headers = format!("{:?}", response.headers());
            outputs.push((
                format!("{log_format}: {endpoint}"),
                headers + &response.text().await.unwrap(),
            ));
        }
        let page = &outputs[outputs.len() - endpoints.len() + 1].1;
        assert!(
            page.contains("Canary http_pass"),
            "the status page lists the checks"
        );

        // A rejected reload reports its problems, which must not quote a secret either.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("section: Canary", "section: \"\"")
                .replace("listen_address", "listen_addres"),
        )
        .unwrap();
        let reload = client
            .post(format!("{base}/-/reload"))
            .send()
            .await
            .unwrap();
        assert_eq!(reload.status(), 500);
        outputs.push((
            format!("{log_format}: /-/reload"),
            reload.text().await.unwrap(),
        ));
        std::fs::write(&path, &text).unwrap();

        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success());
        reader.join().unwrap();
        let logs = logs.lock().unwrap().clone();
        assert!(logs.contains("Check is not passing"), "{logs}");
        outputs.push((format!("logs of serve --log-format {log_format}"), logs));
    }

    // The outcomes must have reached the places where a target's echo could leak.
    let api = &outputs
        .iter()
        .find(|(name, _)| name == "json: /api/v1/checks")
        .unwrap()
        .1;
    for reason in [
        "header_mismatch",
        "unexpected_status",
        "connection_refused",
        "unauthorized",
        "query_failed",
        "not_ready",
    ] {
        assert!(api.contains(reason), "no `{reason}` in:\n{api}");
    }
    // The Vault kinds got past authentication, so the marker token was sent.
    if vault.is_some() {
        for reason in ["vault_auth_method_missing", "vault_policy_missing"] {
            assert!(api.contains(reason), "no `{reason}` in:\n{api}");
        }
    }

    let mut markers = canary.markers.borrow().clone();
    assert!(markers.len() >= 10);
    markers.extend(canary.encoded.borrow().iter().cloned());
    let mut leaks = Vec::new();
    for (name, text) in &outputs {
        for marker in markers.iter() {
            if let Some(at) = text.find(marker.as_str()) {
                let start = text[..at]
                    .char_indices()
                    .rev()
                    .nth(120)
                    .map_or(0, |(i, _)| i);
                leaks.push(format!("{marker} in {name}: …{}", &text[start..at]));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
