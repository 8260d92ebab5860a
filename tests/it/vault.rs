//! The Vault kinds and Vault secret references, against real OpenBao servers and, for states one
//! node cannot reach, local servers that respond with documented `sys/health` bodies.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use readiness_exporter::check::{Reason, Status};

use crate::support::{
    self, assert_metric, assert_no_series, closed_port, config_problems, respond, serve_fn,
    LoadedChecks, TestServer,
};
use crate::vault_support::{self, BaoServer};

/// The name of the exporter's policy on the dev server, written from docs/vault.md.
const EXPORTER_POLICY: &str = "readiness-exporter";

/// Returns the shared dev server with the documented exporter policy, or `None` when `bao` is
/// missing outside CI.
fn dev() -> Option<Arc<BaoServer>> {
    let bin = vault_support::bao_bin()?;
    let server = vault_support::shared_dev_server(&bin);
    server.policy(EXPORTER_POLICY, &vault_support::documented_policy());
    Some(server)
}

/// Writes `token` to a file in `dir` and returns a `vault` block that reads it.
fn vault_block(server: &BaoServer, dir: &Path, token: &str, extra: &str) -> String {
    let token_file = dir.join("vault-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    format!(
        "vault:\n  address: {}\n  auth:\n    token: {{ file: {} }}\n{extra}",
        server.address,
        token_file.display()
    )
}

/// Formats one check item with `kind` and its indented block.
fn item(id: &str, kind: &str, block: &str) -> String {
    let body: String = block
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    format!(
        "  - id: {id}\n    title: {id}\n    section: Vault\n    severity: critical\n    {kind}:\n{body}"
    )
}

fn load(dir: tempfile::TempDir, vault: &str, items: &[String]) -> LoadedChecks {
    let yaml = format!("{vault}checks:\n{}", items.concat());
    LoadedChecks::load_in(dir, &yaml)
}

#[track_caller]
fn assert_outcome(
    outcome: &readiness_exporter::check::Outcome,
    status: Status,
    reason: Reason,
    fragment: &str,
) {
    assert_eq!(outcome.status, status, "{}", outcome.message);
    assert_eq!(outcome.reason, reason, "{}", outcome.message);
    assert!(
        outcome.message.contains(fragment),
        "`{}` does not contain `{fragment}`",
        outcome.message
    );
}

#[tokio::test]
async fn auth_method_found_missing_and_wrong_type() {
    let Some(server) = dev() else { return };
    server.bao(&["auth", "enable", "-path=k8s-auth-method-test", "kubernetes"]);
    let dir = tempfile::tempdir().unwrap();
    let token = server.token(&[EXPORTER_POLICY], &[]);
    let vault = vault_block(&server, dir.path(), &token, "");
    let checks = load(
        dir,
        &vault,
        &[
            item(
                "enabled",
                "vault_auth_method",
                "path: k8s-auth-method-test\ntype: kubernetes",
            ),
            item(
                "missing",
                "vault_auth_method",
                "path: nowhere\ntype: kubernetes",
            ),
            item(
                "wrong_type",
                "vault_auth_method",
                "path: k8s-auth-method-test/\ntype: userpass",
            ),
        ],
    );

    let enabled = checks.run("enabled").await;
    assert_outcome(&enabled, Status::Pass, Reason::Ok, "k8s-auth-method-test/");
    let missing = checks.run("missing").await;
    assert_outcome(
        &missing,
        Status::Fail,
        Reason::VaultAuthMethodMissing,
        "no auth method is enabled at `nowhere/`",
    );
    assert!(missing.message.contains("token/"), "{}", missing.message);
    let wrong = checks.run("wrong_type").await;
    assert_outcome(
        &wrong,
        Status::Fail,
        Reason::VaultWrongType,
        "has type `kubernetes`, expected `userpass`",
    );
    let metrics = checks.metrics();
    assert_metric(&metrics, "readiness_check_success{check=\"enabled\"} 1.0");
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"missing\",reason=\"vault_auth_method_missing\"} 1",
    );
}

#[tokio::test]
async fn policy_present_and_missing() {
    let Some(server) = dev() else { return };
    server.policy(
        "app-payments-read",
        "path \"secret/data/payments/*\" { capabilities = [\"read\"] }\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let token = server.token(&[EXPORTER_POLICY], &[]);
    let vault = vault_block(&server, dir.path(), &token, "");
    let checks = load(
        dir,
        &vault,
        &[
            item(
                "present",
                "vault_policy",
                "policies: [app-payments-read, default]",
            ),
            item(
                "missing",
                "vault_policy",
                "policies: [app-payments-read, app-orders-read, app-ledger-write]",
            ),
        ],
    );

    let present = checks.run("present").await;
    assert_outcome(
        &present,
        Status::Pass,
        Reason::Ok,
        "all 2 ACL policies exist",
    );
    let missing = checks.run("missing").await;
    assert_outcome(
        &missing,
        Status::Fail,
        Reason::VaultPolicyMissing,
        "2 of 3 ACL policies missing: app-orders-read, app-ledger-write",
    );
    assert_eq!(missing.value, Some(1.0));
}

#[tokio::test]
async fn mount_type_and_version_compared() {
    let Some(server) = dev() else { return };
    server.bao(&[
        "secrets",
        "enable",
        "-path=legacy-kv-mount-test",
        "-version=1",
        "kv",
    ]);
    server.bao(&["secrets", "enable", "-path=transit-mount-test", "transit"]);
    let dir = tempfile::tempdir().unwrap();
    let token = server.token(&[EXPORTER_POLICY], &[]);
    let vault = vault_block(&server, dir.path(), &token, "");
    let checks = load(
        dir,
        &vault,
        &[
            item("kv2", "vault_mount", "path: secret\ntype: kv\nversion: 2"),
            item(
                "kv1_expected_2",
                "vault_mount",
                "path: legacy-kv-mount-test\ntype: kv\nversion: \"2\"",
            ),
            item("missing", "vault_mount", "path: payments\ntype: kv"),
            item(
                "wrong_type",
                "vault_mount",
                "path: transit-mount-test\ntype: kv",
            ),
        ],
    );

    let kv2 = checks.run("kv2").await;
    assert_outcome(
        &kv2,
        Status::Pass,
        Reason::Ok,
        "`kv` version 2 is mounted at `secret/`",
    );
    let kv1 = checks.run("kv1_expected_2").await;
    assert_outcome(
        &kv1,
        Status::Fail,
        Reason::VaultWrongVersion,
        "has version `1`, expected `2`",
    );
    let missing = checks.run("missing").await;
    assert_outcome(
        &missing,
        Status::Fail,
        Reason::VaultMountMissing,
        "no secrets engine is mounted at `payments/`",
    );
    let wrong = checks.run("wrong_type").await;
    assert_outcome(
        &wrong,
        Status::Fail,
        Reason::VaultWrongType,
        "has type `transit`, expected `kv`",
    );
}

#[tokio::test]
async fn secret_metadata_states_distinguished() {
    let Some(server) = dev() else { return };
    let base = "kv-states-test";
    server.bao(&[
        "kv",
        "put",
        &format!("secret/{base}/current"),
        "password=one",
    ]);
    server.bao(&[
        "kv",
        "put",
        &format!("secret/{base}/current"),
        "password=two",
    ]);
    server.bao(&[
        "kv",
        "put",
        &format!("secret/{base}/deleted"),
        "password=one",
    ]);
    server.bao(&["kv", "delete", &format!("secret/{base}/deleted")]);
    server.bao(&[
        "kv",
        "put",
        &format!("secret/{base}/destroyed"),
        "password=one",
    ]);
    server.bao(&[
        "kv",
        "destroy",
        "-versions=1",
        &format!("secret/{base}/destroyed"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let token = server.token(&[EXPORTER_POLICY], &[]);
    let vault = vault_block(&server, dir.path(), &token, "");
    let checks = load(
        dir,
        &vault,
        &[
            item(
                "current",
                "vault_secret",
                &format!("path: {base}/current\nmax_age: 1h"),
            ),
            item(
                "missing",
                "vault_secret",
                &format!("path: {base}/never-written"),
            ),
            item("deleted", "vault_secret", &format!("path: {base}/deleted")),
            item(
                "destroyed",
                "vault_secret",
                &format!("mount: secret\npath: {base}/destroyed"),
            ),
            item(
                "overdue",
                "vault_secret",
                &format!("path: {base}/current\nmax_age: 1s"),
            ),
        ],
    );

    let current = checks.run("current").await;
    assert_outcome(
        &current,
        Status::Pass,
        Reason::Ok,
        "version 2 of the secret",
    );
    let missing = checks.run("missing").await;
    assert_outcome(
        &missing,
        Status::Fail,
        Reason::VaultSecretMissing,
        "no secret exists at `secret/metadata/kv-states-test/never-written`",
    );
    let deleted = checks.run("deleted").await;
    assert_outcome(
        &deleted,
        Status::Fail,
        Reason::VaultSecretDeleted,
        "latest version (1)",
    );
    let destroyed = checks.run("destroyed").await;
    assert_outcome(
        &destroyed,
        Status::Fail,
        Reason::VaultSecretDestroyed,
        "is destroyed",
    );
    // The secret was written moments ago; waiting makes it older than the one-second maximum.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let overdue = checks.run("overdue").await;
    assert_outcome(&overdue, Status::Fail, Reason::TooOld, "rotate the secret");

    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_vault_secret_current_version{check=\"current\"} 2.0",
    );
    assert!(
        metrics.contains("readiness_vault_secret_updated_timestamp_seconds{check=\"current\"} 1"),
        "{metrics}"
    );
    assert_no_series(
        &metrics,
        "readiness_vault_secret_current_version",
        "missing",
    );
    for value in ["password=one", "one\"", "two\""] {
        assert!(!metrics.contains(value), "secret value in metrics");
    }
}

#[tokio::test]
async fn missing_permission_and_rejected_token() {
    let Some(server) = dev() else { return };
    let dir = tempfile::tempdir().unwrap();
    server.policy(
        "only-mounts-test",
        "path \"sys/mounts\" { capabilities = [\"read\"] }\npath \"auth/token/lookup-self\" { capabilities = [\"read\"] }\n",
    );
    let limited = server.token(&["only-mounts-test"], &[]);
    let vault = vault_block(&server, dir.path(), &limited, "");
    let checks = load(
        dir,
        &vault,
        &[item("policies", "vault_policy", "policies: [default]")],
    );
    let forbidden = checks.run("policies").await;
    assert_outcome(
        &forbidden,
        Status::Error,
        Reason::Forbidden,
        "Vault denied reading `sys/policy`",
    );

    let dir = tempfile::tempdir().unwrap();
    let revoked = server.token(&[EXPORTER_POLICY], &[]);
    let vault = vault_block(&server, dir.path(), &revoked, "");
    let checks = load(
        dir,
        &vault,
        &[item("policies", "vault_policy", "policies: [default]")],
    );
    server.bao(&["token", "revoke", &revoked]);
    let rejected = checks.run("policies").await;
    assert_outcome(
        &rejected,
        Status::Error,
        Reason::VaultAuthFailed,
        "login to Vault failed",
    );
    assert!(!rejected.message.contains(&revoked), "token in message");
}

#[tokio::test]
async fn health_of_dev_node_with_ha_status() {
    let Some(server) = dev() else { return };
    let dir = tempfile::tempdir().unwrap();
    let token = server.token(&[EXPORTER_POLICY], &[]);
    let vault = vault_block(&server, dir.path(), &token, "");
    let checks = load(
        dir,
        &vault,
        &[
            item(
                "healthy",
                "vault_health",
                &format!(
                    "nodes: [{}]\nha_status: true\nmin_version: \"2.0\"",
                    server.address
                ),
            ),
            item(
                "too_old",
                "vault_health",
                &format!("nodes: [{}]\nmin_version: \"99.1\"", server.address),
            ),
        ],
    );

    let healthy = checks.run("healthy").await;
    assert_outcome(
        &healthy,
        Status::Pass,
        Reason::Ok,
        "1 of 1 nodes serve (1 active), 1 HA members",
    );
    let too_old = checks.run("too_old").await;
    assert_outcome(
        &too_old,
        Status::Fail,
        Reason::VersionTooOld,
        "older than the minimum 99.1.0",
    );
    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_vault_active_nodes{check=\"healthy\"} 1.0",
    );
    assert_metric(
        &metrics,
        "readiness_vault_sealed_nodes{check=\"healthy\"} 0.0",
    );
    assert_metric(
        &metrics,
        "readiness_vault_ha_members{check=\"healthy\"} 1.0",
    );
    assert_metric(
        &metrics,
        &format!(
            "readiness_vault_node_health_status_code{{check=\"healthy\",node=\"{}/\"}} 200.0",
            server.address
        ),
    );
}

#[tokio::test]
async fn real_node_uninitialized_sealed_then_unsealed() {
    let Some(bin) = vault_support::bao_bin() else {
        return;
    };
    let server = vault_support::start_raft_server(&bin);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "checks:\n{}",
        item(
            "node",
            "vault_health",
            &format!(
                "nodes: [{}]\nca_file: {}",
                server.address,
                server.ca_file.as_ref().unwrap().display()
            )
        )
    );
    let checks = LoadedChecks::load_in(dir, &yaml);
    let node_series = format!(
        "readiness_vault_node_health_status_code{{check=\"node\",node=\"{}/\"}}",
        server.address
    );

    let uninitialized = checks.run("node").await;
    assert_outcome(
        &uninitialized,
        Status::Fail,
        Reason::VaultUninitialized,
        "0 of 1 nodes serve as active or standby, at least 1 required; not initialized",
    );
    assert_metric(&checks.metrics(), &format!("{node_series} 501.0"));

    let init = server.bao(&[
        "operator",
        "init",
        "-key-shares=1",
        "-key-threshold=1",
        "-format=json",
    ]);
    let init: serde_json::Value = serde_json::from_str(&init).unwrap();
    let key = init["unseal_keys_b64"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();

    let sealed = checks.run("node").await;
    assert_outcome(&sealed, Status::Fail, Reason::VaultSealed, "sealed");
    let metrics = checks.metrics();
    assert_metric(&metrics, &format!("{node_series} 503.0"));
    assert_metric(&metrics, "readiness_vault_sealed_nodes{check=\"node\"} 1.0");
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"node\",reason=\"vault_sealed\"} 1",
    );

    server.bao(&["operator", "unseal", &key]);
    // After unsealing, raft elects the node leader. Until then it responds as a standby.
    let mut unsealed = checks.run("node").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while unsealed.status != Status::Pass && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        unsealed = checks.run("node").await;
    }
    assert_outcome(
        &unsealed,
        Status::Pass,
        Reason::Ok,
        "1 of 1 nodes serve (1 active)",
    );
    let metrics = checks.metrics();
    assert_metric(&metrics, &format!("{node_series} 200.0"));
    assert_metric(
        &metrics,
        "readiness_vault_unsealed_nodes{check=\"node\"} 1.0",
    );

    server.bao_as(&root, &["operator", "seal"]);
    let resealed = checks.run("node").await;
    assert_outcome(&resealed, Status::Fail, Reason::VaultSealed, "sealed");
}

/// Starts a server that accepts any token and breaks each listing endpoint in its own way.
/// `sys/auth` lists a type name of 10,000 characters at `long/`. `sys/mounts` sends more bytes
/// than the exporter reads, `sys/policy` a body that is not JSON, and the KV metadata a field of
/// the wrong type.
async fn misbehaving_vault() -> TestServer {
    serve_fn(|request| match request.uri().path() {
        "/v1/auth/token/lookup-self" => respond(200, r#"{"data":{"ttl":0,"renewable":false}}"#),
        "/v1/sys/auth" => respond(
            200,
            format!(
                r#"{{"data":{{"kubernetes/":{{"type":"kubernetes","options":null}},"long/":{{"type":"{}"}}}}}}"#,
                "x".repeat(10_000)
            ),
        ),
        "/v1/sys/mounts" => respond(200, vec![b' '; 5 * 1024 * 1024]),
        "/v1/sys/policy" => respond(200, "<html>maintenance page secret-marker</html>"),
        "/v1/secret/metadata/app" => respond(
            200,
            r#"{"data":{"current_version":"secret-marker","versions":{}}}"#,
        ),
        _ => respond(404, r#"{"errors":[]}"#),
    })
    .await
}

#[tokio::test]
async fn responses_after_login_capped_and_parsed() {
    support::init();
    let server = misbehaving_vault().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, "any-token\n").unwrap();
    let vault = format!(
        "vault:\n  address: {}\n  auth:\n    token: {{ file: {} }}\n",
        server.url("http", ""),
        token_file.display()
    );
    let checks = load(
        dir,
        &vault,
        &[
            item(
                "auth",
                "vault_auth_method",
                "{ path: kubernetes, type: kubernetes }",
            ),
            item(
                "long",
                "vault_auth_method",
                "{ path: long, type: kubernetes }",
            ),
            item("mounts", "vault_mount", "{ path: secret, type: kv }"),
            item("policies", "vault_policy", "policies: [app-read]"),
            item("secret", "vault_secret", "{ path: app }"),
        ],
    );

    let auth = checks.run("auth").await;
    assert_outcome(&auth, Status::Pass, Reason::Ok, "enabled at `kubernetes/`");
    let long = checks.run("long").await;
    assert_outcome(&long, Status::Fail, Reason::VaultWrongType, "has type `xxx");
    assert!(
        long.message.len() < 300,
        "the message repeats the whole type: {} characters",
        long.message.len()
    );

    let mounts = checks.run("mounts").await;
    assert_outcome(
        &mounts,
        Status::Error,
        Reason::BodyTooLarge,
        "larger than 4194304 bytes",
    );

    let policies = checks.run("policies").await;
    assert_outcome(
        &policies,
        Status::Error,
        Reason::InvalidResponse,
        "not the JSON this endpoint returns",
    );
    let secret = checks.run("secret").await;
    assert_outcome(
        &secret,
        Status::Error,
        Reason::InvalidResponse,
        "not the JSON this endpoint returns",
    );
    for outcome in [&policies, &secret] {
        assert!(
            !outcome.message.contains("secret-marker"),
            "the message quotes the response: {}",
            outcome.message
        );
    }
}

/// Starts a server that responds to `sys/health` with `status` and the fixture body `name`.
async fn health_node(status: u16, name: &str) -> TestServer {
    let body = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/fixtures/vault")
            .join(name),
    )
    .unwrap();
    serve_fn(move |request| {
        assert_eq!(request.uri().path(), "/v1/sys/health");
        let mut response = respond(status, body.clone());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    })
    .await
}

fn health_item(id: &str, nodes: &[String], extra: &str) -> String {
    item(
        id,
        "vault_health",
        &format!("nodes: [{}]\n{extra}", nodes.join(", ")),
    )
}

#[tokio::test]
async fn single_node_states_from_documented_bodies() {
    support::init();
    let standby = health_node(429, "sys-health-429-standby.json").await;
    let performance = health_node(473, "sys-health-473-performance-standby.json").await;
    let dr = health_node(472, "sys-health-472-dr-secondary.json").await;
    let disconnected = health_node(474, "sys-health-474-standby-disconnected.json").await;
    let teapot = health_node(418, "sys-health-200-active.json").await;
    let contradicting = health_node(200, "sys-health-503-sealed.json").await;
    let url = |server: &TestServer| server.url("http", "");
    let checks = LoadedChecks::load(&format!(
        "checks:\n{}",
        [
            health_item("standby_needs_active", &[url(&standby)], ""),
            health_item("standby_member", &[url(&standby)], "require_active: false"),
            health_item(
                "performance_member",
                &[url(&performance)],
                "require_active: false"
            ),
            health_item("dr_secondary", &[url(&dr)], "require_active: false"),
            health_item(
                "disconnected",
                &[url(&disconnected)],
                "require_active: false"
            ),
            health_item("undocumented_code", &[url(&teapot)], ""),
            health_item("contradicting_body", &[url(&contradicting)], ""),
        ]
        .concat()
    ));

    let outcome = checks.run("standby_needs_active").await;
    assert_outcome(
        &outcome,
        Status::Fail,
        Reason::VaultNoActive,
        "no node is active",
    );
    let outcome = checks.run("standby_member").await;
    assert_outcome(
        &outcome,
        Status::Pass,
        Reason::Ok,
        "1 of 1 nodes serve (0 active)",
    );
    let outcome = checks.run("performance_member").await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok, "1 of 1 nodes serve");
    let outcome = checks.run("dr_secondary").await;
    assert_outcome(
        &outcome,
        Status::Fail,
        Reason::VaultNotServing,
        "not serving clients",
    );
    let outcome = checks.run("disconnected").await;
    assert_outcome(
        &outcome,
        Status::Fail,
        Reason::VaultNotServing,
        "not serving clients",
    );
    let outcome = checks.run("undocumented_code").await;
    assert_outcome(
        &outcome,
        Status::Error,
        Reason::VaultUnknownState,
        "status 418 is not a documented sys/health code",
    );
    let outcome = checks.run("contradicting_body").await;
    assert_outcome(
        &outcome,
        Status::Error,
        Reason::VaultUnknownState,
        "status 200 but the body does not say initialized, unsealed and active",
    );

    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_vault_standby_nodes{check=\"standby_member\"} 1.0",
    );
    assert_metric(
        &metrics,
        "readiness_vault_standby_nodes{check=\"performance_member\"} 1.0",
    );
    assert_metric(
        &metrics,
        "readiness_vault_unsealed_nodes{check=\"dr_secondary\"} 0.0",
    );
    assert_metric(
        &metrics,
        "readiness_vault_unsealed_nodes{check=\"undocumented_code\"} 0.0",
    );
    assert_metric(
        &metrics,
        &format!(
            "readiness_vault_node_health_status_code{{check=\"disconnected\",node=\"{}\"}} 474.0",
            disconnected.url("http", "/")
        ),
    );
}

#[tokio::test]
async fn cluster_counts_and_active_rules() {
    support::init();
    let active = health_node(200, "sys-health-200-active.json").await;
    let second_active = health_node(200, "sys-health-200-active.json").await;
    let standby = health_node(429, "sys-health-429-standby.json").await;
    let performance = health_node(473, "sys-health-473-performance-standby.json").await;
    let sealed = health_node(503, "sys-health-503-sealed.json").await;
    let down = format!("http://127.0.0.1:{}", closed_port().await);
    let url = |server: &TestServer| server.url("http", "");
    let checks = LoadedChecks::load(&format!(
        "checks:\n{}",
        [
            health_item(
                "three_serving",
                &[url(&active), url(&standby), url(&performance)],
                ""
            ),
            health_item(
                "one_sealed_allowed",
                &[url(&active), url(&standby), url(&sealed)],
                "min_unsealed: 2"
            ),
            health_item(
                "one_sealed_too_many",
                &[url(&active), url(&standby), url(&sealed)],
                ""
            ),
            health_item(
                "split_brain",
                &[url(&active), url(&second_active), url(&standby)],
                ""
            ),
            health_item(
                "active_unreachable",
                &[url(&standby), url(&performance), down.clone()],
                "min_unsealed: 2"
            ),
        ]
        .concat()
    ));

    let outcome = checks.run("three_serving").await;
    assert_outcome(
        &outcome,
        Status::Pass,
        Reason::Ok,
        "3 of 3 nodes serve (1 active)",
    );
    let outcome = checks.run("one_sealed_allowed").await;
    assert_outcome(
        &outcome,
        Status::Pass,
        Reason::Ok,
        "2 of 3 nodes serve (1 active)",
    );
    let outcome = checks.run("one_sealed_too_many").await;
    assert_outcome(
        &outcome,
        Status::Fail,
        Reason::VaultSealed,
        &format!(
            "2 of 3 nodes serve as active or standby, at least 3 required; sealed: {}",
            sealed.url("http", "/")
        ),
    );
    let outcome = checks.run("split_brain").await;
    assert_outcome(
        &outcome,
        Status::Fail,
        Reason::VaultSeveralActive,
        "2 nodes report active",
    );
    let outcome = checks.run("active_unreachable").await;
    assert_outcome(
        &outcome,
        Status::Error,
        Reason::ConnectionRefused,
        "no readable node is active",
    );

    let metrics = checks.metrics();
    for (family, value) in [
        ("readiness_vault_nodes", 3),
        ("readiness_vault_unsealed_nodes", 3),
        ("readiness_vault_active_nodes", 1),
        ("readiness_vault_standby_nodes", 2),
        ("readiness_vault_sealed_nodes", 0),
    ] {
        assert_metric(
            &metrics,
            &format!("{family}{{check=\"three_serving\"}} {value}.0"),
        );
    }
    assert_metric(
        &metrics,
        "readiness_vault_sealed_nodes{check=\"one_sealed_allowed\"} 1.0",
    );
    assert_metric(
        &metrics,
        "readiness_vault_active_nodes{check=\"split_brain\"} 2.0",
    );
    assert_no_series(
        &metrics,
        "readiness_vault_node_health_status_code",
        "missing",
    );
}

/// Starts a local server that records the `Authorization` header of each request.
async fn recording_server() -> (TestServer, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = serve_fn(move |request| {
        let value = request
            .headers()
            .get("authorization")
            .map(|value| value.to_str().unwrap().to_string())
            .unwrap_or_default();
        record.lock().unwrap().push(value);
        respond(200, "ok")
    })
    .await;
    (server, seen)
}

#[tokio::test]
async fn secret_reference_resolved_and_refreshed() {
    let Some(server) = dev() else { return };
    server.bao(&[
        "kv",
        "put",
        "secret/readiness-exporter/api",
        "token=Bearer first-value",
    ]);
    let (target, seen) = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = server.token(&[EXPORTER_POLICY], &[]);
    let vault = vault_block(
        &server,
        dir.path(),
        &token,
        "  secret_refresh_interval: 1s\n",
    );
    let checks = load(
        dir,
        &vault,
        &[
            item(
                "api",
                "http",
                &format!(
                    "url: {}\nheaders:\n  Authorization: {{ vault: {{ mount: secret, path: readiness-exporter/api, key: token }} }}",
                    target.url("http", "/")
                ),
            ),
            item(
                "missing_key",
                "http",
                &format!(
                    "url: {}\nheaders:\n  Authorization: {{ vault: {{ mount: secret, path: readiness-exporter/api, key: nope }} }}",
                    target.url("http", "/")
                ),
            ),
            item(
                "missing_path",
                "http",
                &format!(
                    "url: {}\nheaders:\n  Authorization: {{ vault: {{ mount: secret, path: readiness-exporter/absent, key: token }} }}",
                    target.url("http", "/")
                ),
            ),
        ],
    );
    let vault = checks.config.vault.clone().unwrap();
    vault.start().await;

    let api = checks.run("api").await;
    assert_outcome(&api, Status::Pass, Reason::Ok, "");
    assert_eq!(seen.lock().unwrap().last().unwrap(), "Bearer first-value");
    let missing_key = checks.run("missing_key").await;
    assert_outcome(
        &missing_key,
        Status::Error,
        Reason::SecretUnavailable,
        "the secret has no key `nope`; its keys are: token",
    );
    let missing_path = checks.run("missing_path").await;
    assert_outcome(
        &missing_path,
        Status::Error,
        Reason::SecretUnavailable,
        "KV secret `readiness-exporter/absent` in mount `secret` does not exist",
    );
    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"missing_path\",reason=\"secret_unavailable\"} 1",
    );
    assert_metric(&metrics, "readiness_check_success{check=\"api\"} 1.0");

    server.bao(&[
        "kv",
        "put",
        "secret/readiness-exporter/api",
        "token=Bearer second-value",
    ]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        checks.run("api").await;
        if seen.lock().unwrap().last().unwrap() == "Bearer second-value" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated value was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !missing_key.message.contains("value"),
        "{}",
        missing_key.message
    );
}

#[tokio::test]
async fn failed_secret_read_retried_before_refresh() {
    let Some(server) = dev() else { return };
    let (target, seen) = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = server.token(&[EXPORTER_POLICY], &[]);
    let vault = vault_block(
        &server,
        dir.path(),
        &token,
        "  secret_refresh_interval: 1h\n",
    );
    let checks = load(
        dir,
        &vault,
        &[item(
            "late",
            "http",
            &format!(
                "url: {}\nheaders:\n  Authorization: {{ vault: {{ mount: secret, path: readiness-exporter/late, key: token }} }}",
                target.url("http", "/")
            ),
        )],
    );
    let vault = checks.config.vault.clone().unwrap();
    vault.start().await;
    let before = checks.run("late").await;
    assert_outcome(
        &before,
        Status::Error,
        Reason::SecretUnavailable,
        "does not exist",
    );

    // The secret appears long before the hourly refresh; the failed read is retried sooner.
    server.bao(&[
        "kv",
        "put",
        "secret/readiness-exporter/late",
        "token=Bearer late-value",
    ]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = checks.run("late").await;
        if outcome.status == Status::Pass {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the secret was not read again: {}",
            outcome.message
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(seen.lock().unwrap().last().unwrap(), "Bearer late-value");
}

#[tokio::test]
async fn periodic_token_renewed_before_expiry() {
    let Some(server) = dev() else { return };
    let dir = tempfile::tempdir().unwrap();
    let token = server.token(&[EXPORTER_POLICY], &["-period=3s"]);
    let vault = vault_block(&server, dir.path(), &token, "");
    let checks = load(
        dir,
        &vault,
        &[item("policies", "vault_policy", "policies: [default]")],
    );
    let vault = checks.config.vault.clone().unwrap();
    vault.start().await;

    // Each renewal happens two seconds into a three-second period. After three of them the
    // original period has passed, so only renewal keeps the token valid.
    support::wait_until(Duration::from_secs(30), || {
        vault.token_events().renewals() >= 3
    })
    .await;
    let outcome = checks.run("policies").await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok, "");
    assert_eq!(vault.token_events().logins(), 1);
    assert_eq!(vault.token_events().failed_renewals(), 0);
    let ttl = server.bao(&["token", "lookup", "-format=json", &token]);
    let ttl: serde_json::Value = serde_json::from_str(&ttl).unwrap();
    assert!(ttl["data"]["ttl"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn failed_renewal_logs_in_again() {
    let Some(server) = dev() else { return };
    let dir = tempfile::tempdir().unwrap();
    let first = server.token(&[EXPORTER_POLICY], &["-ttl=3s", "-explicit-max-ttl=1h"]);
    let vault = vault_block(&server, dir.path(), &first, "");
    let token_file: PathBuf = dir.path().join("vault-token");
    let checks = load(
        dir,
        &vault,
        &[item("policies", "vault_policy", "policies: [default]")],
    );
    let vault = checks.config.vault.clone().unwrap();
    vault.start().await;
    assert_eq!(vault.token_events().logins(), 1);

    // The first token is revoked, so its renewal fails. The file now contains a second token.
    let second = server.token(&[EXPORTER_POLICY], &[]);
    std::fs::write(&token_file, format!("{second}\n")).unwrap();
    server.bao(&["token", "revoke", &first]);
    support::wait_until(Duration::from_secs(30), || {
        vault.token_events().failed_renewals() >= 1 && vault.token_events().logins() >= 2
    })
    .await;
    let outcome = checks.run("policies").await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok, "");
}

#[tokio::test]
async fn kubernetes_auth_logs_in_with_service_account() {
    let Some(server) = dev() else { return };
    support::init();
    // Vault's Kubernetes auth method sends the service account token to the Kubernetes API as a
    // TokenReview; this local server plays the API and accepts it.
    let reviewed = Arc::new(Mutex::new(Vec::new()));
    let record = reviewed.clone();
    let kubernetes = serve_fn(move |request| {
        assert_eq!(
            request.uri().path(),
            "/apis/authentication.k8s.io/v1/tokenreviews"
        );
        record.lock().unwrap().push(request.method().to_string());
        let mut response = respond(
            201,
            r#"{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","status":{"authenticated":true,"user":{"username":"system:serviceaccount:monitoring:readiness-exporter","uid":"5f0c1a2b-uid","groups":["system:serviceaccounts"]}}}"#,
        );
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    })
    .await;
    let ca = support::TestCa::new("Kubernetes test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write(dir.path());
    server.bao(&["auth", "enable", "-path=k8s-login-test", "kubernetes"]);
    server.bao(&[
        "write",
        "auth/k8s-login-test/config",
        &format!("kubernetes_host={}", kubernetes.url("http", "")),
        "disable_local_ca_jwt=true",
        &format!("kubernetes_ca_cert=@{}", ca_file.display()),
    ]);
    server.bao(&[
        "write",
        "auth/k8s-login-test/role/readiness-exporter",
        "bound_service_account_names=readiness-exporter",
        "bound_service_account_namespaces=monitoring",
        &format!("policies={EXPORTER_POLICY}"),
        "ttl=1h",
    ]);
    let jwt = service_account_jwt();
    let jwt_file = dir.path().join("sa-token");
    std::fs::write(&jwt_file, &jwt).unwrap();
    let vault = format!(
        "vault:\n  address: {}\n  auth:\n    kubernetes:\n      role: readiness-exporter\n      mount: k8s-login-test\n      service_account_token_file: {}\n",
        server.address,
        jwt_file.display()
    );
    let checks = load(
        dir,
        &vault,
        &[item("policies", "vault_policy", "policies: [default]")],
    );

    let outcome = checks.run("policies").await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok, "");
    assert_eq!(reviewed.lock().unwrap().as_slice(), ["POST"]);
    assert!(!outcome.message.contains(&jwt));

    // A mount where no Kubernetes auth method is enabled is refused with 403.
    let other = tempfile::tempdir().unwrap();
    let other_jwt = other.path().join("sa-token");
    std::fs::write(&other_jwt, &jwt).unwrap();
    let vault = format!(
        "vault:\n  address: {}\n  auth:\n    kubernetes:\n      role: readiness-exporter\n      mount: k8s-not-enabled\n      service_account_token_file: {}\n",
        server.address,
        other_jwt.display()
    );
    let checks = load(
        other,
        &vault,
        &[item("policies", "vault_policy", "policies: [default]")],
    );
    let refused = checks.run("policies").await;
    assert_outcome(
        &refused,
        Status::Error,
        Reason::VaultAuthFailed,
        "check that the Kubernetes auth method is enabled at `auth/k8s-not-enabled`",
    );
    assert!(!refused.message.contains(&jwt));
}

/// Builds a JWT with a service account's claims and a made-up signature. Vault does not verify
/// the signature without configured keys, so the TokenReview response decides.
fn service_account_jwt() -> String {
    let encode = |text: &str| {
        const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let header = encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = encode(
        r#"{"iss":"kubernetes/serviceaccount","kubernetes.io/serviceaccount/namespace":"monitoring","kubernetes.io/serviceaccount/service-account.name":"readiness-exporter","kubernetes.io/serviceaccount/service-account.uid":"5f0c1a2b-uid","sub":"system:serviceaccount:monitoring:readiness-exporter"}"#,
    );
    format!("{header}.{claims}.{}", encode("not-a-real-signature"))
}

#[test]
fn vault_kinds_need_vault_block() {
    let problems = config_problems(&format!(
        "checks:\n{}{}",
        item("policies", "vault_policy", "policies: [default]"),
        item(
            "api",
            "http",
            "url: http://127.0.0.1:1/\nheaders:\n  Authorization: { vault: { mount: secret, path: app/api, key: token } }"
        ),
    ));
    assert_eq!(
        problems,
        [
            "line 6: check `policies`, field `vault_policy`: this needs the top-level `vault` block with the Vault address and the exporter's authentication; add one",
            "line 15: check `api`, field `http.headers.Authorization`: this needs the top-level `vault` block with the Vault address and the exporter's authentication; add one",
        ]
    );
}

#[test]
fn vault_block_problems_reported() {
    let problems = config_problems(
        "vault:\n  address: vault.internal:8200\n  auth:\n    token: { vault: { mount: secret, path: a, key: b } }\n  timeout: soon\nchecks:\n  - { id: a, title: A, section: S, severity: info, http: { url: \"http://127.0.0.1:1/\" } }\n",
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].starts_with("line 2: field `vault.address`: "),
        "{problems:?}"
    );
    assert!(problems
        .iter()
        .any(|p| p
            .contains("field `vault.auth.token`: the Vault token cannot come from Vault itself")));
    assert!(problems
        .iter()
        .any(|p| p.contains("field `vault.timeout`: invalid duration `soon`")));

    let problems = config_problems(
        "vault:\n  address: https://vault.internal:8200\n  auth:\n    approle: { role_id: x }\nchecks:\n  - { id: a, title: A, section: S, severity: info, http: { url: \"http://127.0.0.1:1/\" } }\n",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("unknown value `approle`") || problems[0].contains("approle"),
        "{problems:?}"
    );
}

const TOKEN_CANARY: &str = "canary-vault-token-4e1f8a27";
const VALUE_CANARY: &str = "canary-vault-value-93b06d5c";

#[tokio::test]
async fn vault_token_and_secret_never_printed() {
    let Some(server) = dev() else { return };
    support::init();
    // A token with a known id, so that the test can search every output for it.
    let existing = std::process::Command::new(vault_support::bao_bin().unwrap())
        .args(["token", "lookup", TOKEN_CANARY])
        .env("BAO_ADDR", &server.address)
        .env("BAO_TOKEN", vault_support::ROOT_TOKEN)
        .output()
        .unwrap();
    if !existing.status.success() {
        server.bao(&[
            "token",
            "create",
            &format!("-id={TOKEN_CANARY}"),
            &format!("-policy={EXPORTER_POLICY}"),
            "-no-default-policy",
            "-period=1h",
        ]);
    }
    server.bao(&[
        "kv",
        "put",
        "secret/readiness-exporter/canary",
        &format!("token={VALUE_CANARY}"),
    ]);
    let (target, seen) = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port().await;
    let vault = vault_block(&server, dir.path(), TOKEN_CANARY, "");
    let yaml = format!(
        "global:\n  listen_address: 127.0.0.1:{port}\n  interval: 30s\n  timeout: 5s\n{vault}checks:\n{}",
        [
            item(
                "api",
                "http",
                &format!(
                    "url: {}\nheaders:\n  Authorization: {{ vault: {{ mount: secret, path: readiness-exporter/canary, key: token }} }}",
                    target.url("http", "/")
                ),
            ),
            item("rotated", "vault_secret", "path: readiness-exporter/canary\nmax_age: 1s"),
            item("policies", "vault_policy", "policies: [default, not-there]"),
            item(
                "cluster",
                "vault_health",
                &format!("nodes: [{}]\nha_status: true", server.address),
            ),
        ]
        .concat()
    );
    let path = support::write_config(dir.path(), &yaml);
    let binary = env!("CARGO_BIN_EXE_readiness-exporter");

    // The local target runs on this test's runtime, so the command must not block it.
    let check = tokio::process::Command::new(binary)
        .args([
            "check",
            "--config",
            path.to_str().unwrap(),
            "--format",
            "json",
        ])
        .args(["--log-level", "trace"])
        .output()
        .await
        .unwrap();
    let check_stdout = String::from_utf8_lossy(&check.stdout).to_string();
    let check_stderr = String::from_utf8_lossy(&check.stderr).to_string();
    assert_eq!(
        check.status.code(),
        Some(1),
        "{check_stdout}\n{check_stderr}"
    );
    assert!(
        check_stdout.contains("vault_policy_missing"),
        "{check_stdout}"
    );
    assert_eq!(
        seen.lock().unwrap().last().map(String::as_str),
        Some(VALUE_CANARY),
        "{check_stdout}\n{check_stderr}"
    );

    let mut child = std::process::Command::new(binary)
        .args(["serve", "--config", path.to_str().unwrap()])
        .args(["--log-format", "json", "--log-level", "trace"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..400 {
        if let Ok(response) = reqwest::get(format!("{base}/-/ready")).await {
            if response.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bodies = Vec::new();
    for endpoint in [
        "/metrics",
        "/",
        "/api/v1/checks",
        "/api/v1/checks/api",
        "/api/v1/checks/rotated",
        "/api/v1/gate",
    ] {
        let body = reqwest::get(format!("{base}{endpoint}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        bodies.push((endpoint, body));
    }
    let reload = reqwest::Client::new()
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    bodies.push(("/-/reload", reload.text().await.unwrap()));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();

    assert!(ready, "the exporter never became ready\n{logs}");
    assert!(
        bodies[0]
            .1
            .contains("readiness_check_success{check=\"api\"} 1"),
        "{}",
        bodies[0].1
    );
    assert!(logs.contains("Logged in to Vault"), "{logs}");
    for (name, text) in bodies
        .iter()
        .map(|(endpoint, body)| (*endpoint, body.as_str()))
        .chain([
            ("check output", check_stdout.as_str()),
            ("check logs", check_stderr.as_str()),
            ("serve logs", logs.as_str()),
        ])
    {
        assert!(!text.contains(TOKEN_CANARY), "Vault token in {name}");
        assert!(!text.contains(VALUE_CANARY), "secret value in {name}");
    }
}
