//! Property-based tests of the API response parsers: every kind that reads a monitoring server,
//! Vault or the Kubernetes API runs against a local server that responds with arbitrary bytes,
//! arbitrary JSON or a valid response with a few values replaced. A run must return (no panic,
//! no hang) with a message of bounded length.
//!
//! Each test starts its server and loads its configuration once, then runs its cases against
//! them. Case counts are bounded so the file adds seconds, not minutes, to the suite. proptest
//! keeps failing inputs under `tests/proptest-regressions/`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use proptest::prelude::*;
use readiness_exporter::check::{Outcome, Reason};
use readiness_exporter::config::{self, Config};
use serde_json::{json, Value};

use crate::kube_api::FakeApi;
use crate::support::{self, serve_fn, TestServer};

/// The maximum message length, in characters, for a run of a monitoring or Vault kind. These kinds quote server
/// text only in excerpts, so a longer one means a parser copied an unbounded field.
const MAX_MESSAGE_CHARS: usize = 4096;

/// The maximum message length, in characters, for a run of a Kubernetes kind: the cut every run gets.
/// These kinds quote object names, keys and hosts in full, which the API server limits to a few
/// hundred characters each.
// NOTE: a server that sends longer values than the API server allows (as these tests do) gets
// messages cut at that limit rather than per-field excerpts.
const MAX_KUBERNETES_MESSAGE_CHARS: usize = readiness_exporter::check::MAX_MESSAGE_BYTES + 40;

/// How long one run may take before the test counts it as a hang.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// The runtime that owns every server and client of this file, so they outlive each case.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// Runs the check `id` of `config` once and asserts that it returns in time, without an internal
/// error, with a message of at most `max_chars` characters.
fn run_bounded(config: &Config, id: &str, max_chars: usize) -> Outcome {
    let def = config
        .checks
        .iter()
        .find(|def| def.id == id)
        .unwrap_or_else(|| panic!("no check `{id}`"));
    let outcome = RUNTIME
        .block_on(async { tokio::time::timeout(RUN_LIMIT, def.kind.run(def.timeout)).await })
        .unwrap_or_else(|_| panic!("check `{id}` returned nothing within {RUN_LIMIT:?}"));
    let chars = outcome.message.chars().count();
    assert!(
        chars <= max_chars,
        "check `{id}` returned a message of {chars} characters, starting: {}",
        outcome.message.chars().take(300).collect::<String>()
    );
    assert_ne!(outcome.reason, Reason::InternalError, "{outcome:?}");
    outcome
}

/// Loads a configuration inside [`RUNTIME`], because building the clients needs a reactor.
fn load(dir: &std::path::Path, yaml: &str) -> Config {
    let _runtime = RUNTIME.enter();
    let path = support::write_config(dir, yaml);
    config::load_with_env(&path, Some(HashMap::new())).unwrap_or_else(|err| panic!("{err}"))
}

// --- generated documents ----------------------------------------------------------------

/// Arbitrary JSON documents, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z_]{0,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Values that sit at the edges of what parsers expect, and arbitrary ones.
fn edge_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_value(),
        1 => prop::sample::select(vec![
            json!(u64::MAX),
            json!(i64::MIN),
            json!(-1),
            json!(0),
            json!(1e308),
            json!(-1e308),
            json!(""),
            json!("NaN"),
            json!("+Inf"),
            json!("0001-01-01T00:00:00Z"),
            json!("9999-12-31T23:59:59.999999999Z"),
            json!("1970-01-01T00:00:00Z"),
            json!("not a time"),
            json!([]),
            json!({}),
            json!("é\u{202e}\u{0}"),
        ]),
        1 => (1usize..50_000).prop_map(|length| json!("x".repeat(length))),
        1 => (1usize..2_000).prop_map(|length| json!("é ://a?b ".repeat(length))),
    ]
}

/// One change to a JSON document, at the node that `at` picks among all of them.
#[derive(Clone, Debug)]
enum Edit {
    /// Replaces the node.
    Replace(prop::sample::Index, Value),
    /// Removes the node from its object or array.
    Remove(prop::sample::Index),
    /// Repeats the first element of an array, as a server with many objects would list them.
    Repeat(prop::sample::Index, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), edge_value()).prop_map(|(at, value)| Edit::Replace(at, value)),
        2 => any::<prop::sample::Index>().prop_map(Edit::Remove),
        1 => (any::<prop::sample::Index>(), 2usize..500).prop_map(|(at, times)| Edit::Repeat(at, times)),
    ]
}

/// Collects the JSON pointers of every node of `value`, parents before children.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                let pointer = format!("{at}/{escaped}");
                out.push(pointer.clone());
                pointers(child, pointer, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let pointer = format!("{at}/{i}");
                out.push(pointer.clone());
                pointers(child, pointer, out);
            }
        }
        _ => {}
    }
}

/// Applies `edits` to `seed`, leaving the nodes in `keep` and their parents alone.
fn mutate_json(seed: &Value, edits: &[Edit], keep: &[&str]) -> Value {
    let mut document = seed.clone();
    for edit in edits {
        let mut all = Vec::new();
        pointers(&document, String::new(), &mut all);
        all.retain(|pointer| {
            !keep
                .iter()
                .any(|kept| *kept == pointer || kept.starts_with(&format!("{pointer}/")))
        });
        if all.is_empty() {
            continue;
        }
        match edit {
            Edit::Replace(at, value) => {
                *document.pointer_mut(at.get::<String>(&all)).unwrap() = value.clone();
            }
            Edit::Remove(at) => {
                let pointer = at.get(&all);
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                match document.pointer_mut(parent).unwrap() {
                    Value::Object(map) => {
                        map.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Value::Array(items) => {
                        items.remove(key.parse::<usize>().unwrap());
                    }
                    _ => {}
                }
            }
            Edit::Repeat(at, times) => {
                if let Some(Value::Array(items)) = document.pointer_mut(at.get::<String>(&all)) {
                    if let Some(first) = items.first().cloned() {
                        items.extend(std::iter::repeat_n(first, *times));
                    }
                }
            }
        }
    }
    document
}

/// Applies byte edits to `bytes`: each replaces, deletes or inserts one byte, or cuts the rest.
fn mutate_bytes(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
    for (index, byte, operation) in edits {
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let at = index.index(bytes.len());
        match operation % 4 {
            0 => bytes[at] = *byte,
            1 => {
                bytes.remove(at);
            }
            2 => bytes.insert(at, *byte),
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Generates a response body: arbitrary bytes, arbitrary JSON, or one of `seeds` changed.
fn body(seeds: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        1 => json_value().prop_map(|value| value.to_string().into_bytes()),
        4 => (
            prop::sample::select(seeds),
            prop::collection::vec(edit(), 0..4),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 0..2),
        )
            .prop_map(|(seed, edits, byte_edits)| {
                mutate_bytes(mutate_json(&seed, &edits, &[]).to_string().into_bytes(), &byte_edits)
            }),
    ]
}

/// Generates a status code: mostly success, and the codes the kinds treat specially.
fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => Just(200),
        1 => prop::sample::select(vec![204, 400, 404, 422, 429, 472, 473, 474, 500, 501, 503, 599]),
    ]
}

// --- a server that responds to every request the same way ------------------------------------

/// A local server that sends one status and body to every request, except the fixed responses.
struct FuzzServer {
    server: TestServer,
    response: Arc<Mutex<(u16, Bytes)>>,
}

impl FuzzServer {
    /// Starts the server. `fixed` maps paths to bodies sent with status 200 every time.
    fn start(fixed: &[(&'static str, Value)]) -> FuzzServer {
        let response = Arc::new(Mutex::new((200, Bytes::new())));
        let fixed: HashMap<&'static str, Bytes> = fixed
            .iter()
            .map(|(path, body)| (*path, Bytes::from(body.to_string())))
            .collect();
        let current = response.clone();
        let server = RUNTIME.block_on(serve_fn(move |request| {
            if let Some(body) = fixed.get(request.uri().path()) {
                return support::respond(200, body.clone());
            }
            let (status, body) = current.lock().unwrap().clone();
            let mut response = support::respond(status, body);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            response
        }));
        FuzzServer { server, response }
    }

    fn set(&self, status: u16, body: Vec<u8>) {
        *self.response.lock().unwrap() = (status, Bytes::from(body));
    }

    fn url(&self) -> String {
        self.server.url("http", "")
    }
}

/// Wraps check blocks (`id`, kind block) into a configuration file.
fn checks_yaml(prefix: &str, checks: &[(&str, String)]) -> String {
    let mut yaml = format!("{prefix}checks:\n");
    for (id, block) in checks {
        yaml.push_str(&format!(
            "  - id: {id}\n    title: Fuzzed {id}\n    section: Fuzz\n    severity: critical\n    timeout: 10s\n    {block}"
        ));
    }
    yaml
}

// --- monitoring and logging servers --------------------------------------------------------

/// The checks of the monitoring kinds, each with the responses its endpoints send.
fn monitoring_seeds() -> Vec<(&'static str, Vec<Value>)> {
    let vector = json!({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"job": "api", "instance": "api:8080"}, "value": [1_767_225_600.5, "0.25"]}
    ]}});
    vec![
        (
            "targets",
            vec![json!({"status": "success", "data": {"activeTargets": [
                {"labels": {"instance": "api:8080", "job": "api"}, "scrapeUrl": "http://api:8080/metrics", "lastError": "", "health": "up"},
                {"labels": {"job": "api"}, "scrapeUrl": "http://api-2:8080/metrics?token=abc", "lastError": "Get \"http://api-2:8080/metrics?token=abc\": connection refused", "health": "down"},
                {"labels": {"instance": "api-3:8080", "job": "api"}, "scrapeUrl": "", "lastError": "", "health": "unknown"}
            ], "droppedTargets": []}})],
        ),
        (
            "rules",
            vec![json!({"status": "success", "data": {"groups": [
                {"name": "api", "file": "/etc/prometheus/rules/api.yml", "interval": 30,
                 "lastEvaluation": "2026-01-01T00:00:00.123456789Z",
                 "rules": [
                    {"name": "HighErrorRate", "health": "ok", "lastError": "", "type": "alerting"},
                    {"name": "Latency", "health": "err", "lastError": "query timed out", "type": "recording"}
                 ]},
                {"name": "api", "file": "/etc/prometheus/rules/other.yml", "interval": 60,
                 "lastEvaluation": "0001-01-01T00:00:00Z", "rules": []}
            ]}})],
        ),
        (
            "alertmanagers",
            vec![json!({"status": "success", "data": {
                "activeAlertmanagers": [{"url": "http://127.0.0.1:9093/api/v2/alerts"}],
                "droppedAlertmanagers": [{"url": "http://10.0.0.1:9093/api/v2/alerts"}]
            }})],
        ),
        (
            "query",
            vec![
                vector.clone(),
                json!({"status": "success", "data": {"resultType": "scalar", "result": [1_767_225_600.5, "NaN"]}, "warnings": ["PromQL info: metric might not be a counter"]}),
                json!({"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected end of input"}),
            ],
        ),
        (
            "loki",
            vec![
                vector,
                json!({"status": "success", "data": {"resultType": "streams", "result": [
                    {"stream": {"app": "api"}, "values": [["1767225600000000000", "GET /health 200"]]}
                ]}}),
            ],
        ),
        (
            "count",
            vec![
                json!({"count": 42, "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0}}),
                json!({"error": {"type": "index_not_found_exception", "reason": "no such index [logs-x]"}, "status": 404}),
            ],
        ),
        (
            "alertmanager",
            vec![
                json!({"cluster": {"status": "ready", "name": "01H", "peers": [
                    {"name": "01H", "address": "10.0.0.1:9094"}, {"name": "01J", "address": "10.0.0.2:9094"}
                ]}, "versionInfo": {"version": "0.28.1"}, "uptime": "2026-01-01T00:00:00Z",
                   "config": {"original": "route:\n  receiver: team-api\n"}}),
                json!([{"name": "team-api"}, {"name": "null"}]),
            ],
        ),
        (
            "grafana",
            vec![
                json!({"commit": "abc123", "database": "ok", "version": "12.0.0"}),
                json!({"dashboard": {"uid": "red", "title": "RED"}, "meta": {"provisioned": true}}),
                json!({"status": "OK", "message": "Data source is working"}),
            ],
        ),
    ]
}

fn monitoring_checks(url: &str) -> Vec<(&'static str, String)> {
    let server = format!("server: {{ url: \"{url}\" }}");
    vec![
        ("targets", format!("prometheus_targets:\n      {server}\n      jobs: [api, prometheus]\n")),
        ("rules", format!("prometheus_rules:\n      {server}\n      groups: [api, missing]\n")),
        ("alertmanagers", format!("prometheus_alertmanagers:\n      {server}\n      min_active: 2\n")),
        ("query", format!("prometheus_query:\n      {server}\n      query: sum(up)\n      min: 1\n      max: 5\n")),
        ("loki", format!("loki:\n      {server}\n      tenant: shop\n      query: 'sum(count_over_time({{app=\"api\"}}[5m]))'\n      min: 1\n")),
        ("count", format!("elasticsearch_count:\n      {server}\n      index: logs-*\n      window: 15m\n      min: 1\n")),
        ("alertmanager", format!("alertmanager:\n      {server}\n      replicas: 3\n      receivers: [team-api, pager]\n")),
        ("grafana", format!("grafana:\n      {server}\n      dashboards: [red, missing]\n      datasources: [prometheus]\n")),
    ]
}

struct HttpFixture {
    server: FuzzServer,
    config: Config,
    _dir: tempfile::TempDir,
}

static MONITORING: LazyLock<HttpFixture> = LazyLock::new(|| {
    support::init();
    let server = FuzzServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = load(
        dir.path(),
        &checks_yaml("", &monitoring_checks(&server.url())),
    );
    HttpFixture {
        server,
        config,
        _dir: dir,
    }
});

/// A check id of `seeds` and a response for it.
fn case(
    seeds: Vec<(&'static str, Vec<Value>)>,
) -> impl Strategy<Value = (&'static str, u16, Vec<u8>)> {
    prop::sample::select(seeds).prop_flat_map(|(id, seeds)| (Just(id), status(), body(seeds)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn monitoring_kinds_survive_fuzzed_responses((id, status, body) in case(monitoring_seeds())) {
        let fixture = &*MONITORING;
        fixture.server.set(status, body);
        run_bounded(&fixture.config, id, MAX_MESSAGE_CHARS);
    }
}

// --- Vault ---------------------------------------------------------------------------------

fn vault_seeds() -> Vec<(&'static str, Vec<Value>)> {
    let envelope = |data: Value| {
        json!({"request_id": "5c2b4d71", "lease_id": "", "renewable": false, "lease_duration": 0,
               "data": data, "wrap_info": null, "warnings": null, "auth": null})
    };
    let auth_method = json!({"accessor": "auth_kubernetes_1", "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "token_type": "default-service"},
        "description": "", "external_entropy_access": false, "local": false, "options": null, "seal_wrap": false, "type": "kubernetes", "uuid": "u1"});
    let mount = json!({"accessor": "kv_1", "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
        "description": "", "external_entropy_access": false, "local": false, "options": {"version": "2"}, "seal_wrap": false, "type": "kv", "uuid": "u2"});
    vec![
        (
            "health",
            vec![
                json!({"initialized": true, "sealed": false, "standby": false, "performance_standby": false,
                       "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
                       "server_time_utc": 1_767_225_600, "version": "2.2.0", "cluster_name": "vault-cluster", "cluster_id": "c1"}),
                json!({"initialized": true, "sealed": true, "standby": true, "version": "1.15.0-rc1+ent"}),
                json!({"nodes": [
                    {"hostname": "vault-0", "api_address": "https://vault-0:8200", "active_node": true, "version": "2.2.0"},
                    {"hostname": "vault-1", "api_address": "https://vault-1:8200", "active_node": false, "version": "2.2.0"}
                ]}),
            ],
        ),
        (
            "auth_method",
            vec![envelope(
                json!({"kubernetes/": auth_method, "token/": {"type": "token", "accessor": "a", "description": "", "config": {}, "local": false, "seal_wrap": false, "external_entropy_access": false, "options": null, "uuid": "u"}}),
            )],
        ),
        (
            "policy",
            vec![envelope(
                json!({"keys": ["default", "shop-api", "root"], "policies": ["default", "shop-api", "root"]}),
            )],
        ),
        (
            "mount",
            vec![envelope(
                json!({"secret/": mount, "sys/": {"type": "system", "accessor": "s", "description": "", "config": {}, "local": false, "seal_wrap": true, "external_entropy_access": false, "options": null, "uuid": "u"}}),
            )],
        ),
        (
            "secret",
            vec![envelope(
                json!({"cas_required": false, "created_time": "2026-01-01T00:00:00.5Z", "current_version": 2,
                "custom_metadata": null, "delete_version_after": "0s", "max_versions": 0, "oldest_version": 0,
                "updated_time": "2026-01-01T00:00:00.5Z", "versions": {
                    "1": {"created_time": "2025-12-01T00:00:00Z", "deletion_time": "2025-12-02T00:00:00Z", "destroyed": false},
                    "2": {"created_time": "2026-01-01T00:00:00.5Z", "deletion_time": "", "destroyed": false}
                }}),
            )],
        ),
    ]
}

static VAULT: LazyLock<HttpFixture> = LazyLock::new(|| {
    support::init();
    let lookup_self = json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": {"accessor": "acc", "creation_time": 1_767_225_600, "creation_ttl": 0, "display_name": "token",
                 "entity_id": "", "expire_time": null, "explicit_max_ttl": 0, "id": "fuzz-token", "issue_time": "2026-01-01T00:00:00Z",
                 "meta": null, "num_uses": 0, "orphan": true, "path": "auth/token/create", "policies": ["root"],
                 "renewable": false, "ttl": 0, "type": "service"},
        "wrap_info": null, "warnings": null, "auth": null});
    let server = FuzzServer::start(&[("/v1/auth/token/lookup-self", lookup_self)]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("vault-token");
    std::fs::write(&token, "fuzz-token\n").unwrap();
    let url = server.url();
    let prefix = format!(
        "vault:\n  address: \"{url}\"\n  auth:\n    token: {{ file: {} }}\n",
        token.display()
    );
    let checks = vec![
        ("health", format!("vault_health:\n      nodes: [\"{url}\", \"{url}/second/\"]\n      min_unsealed: 2\n      ha_status: true\n      min_version: 1.16.0\n")),
        ("auth_method", "vault_auth_method: { path: kubernetes, type: kubernetes }\n".to_string()),
        ("policy", "vault_policy: { policies: [shop-api, missing] }\n".to_string()),
        ("mount", "vault_mount: { path: secret, type: kv, version: 2 }\n".to_string()),
        ("secret", "vault_secret: { mount: secret, path: shop/db, max_age: 30d }\n".to_string()),
    ];
    let config = load(dir.path(), &checks_yaml(&prefix, &checks));
    HttpFixture {
        server,
        config,
        _dir: dir,
    }
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn vault_kinds_survive_fuzzed_responses((id, status, body) in case(vault_seeds())) {
        let fixture = &*VAULT;
        fixture.server.set(status, body);
        run_bounded(&fixture.config, id, MAX_MESSAGE_CHARS);
    }
}

// --- Kubernetes ----------------------------------------------------------------------------

/// A Helm 3 release as the `release` key of its Secret stores it: base64 text of the gzip of the
/// release JSON.
fn helm_release_data(release: &[u8]) -> String {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(release).unwrap();
    base64::engine::general_purpose::STANDARD.encode(gzip.finish().unwrap())
}

/// Base64 as the API encodes the values of a Secret's `data`.
fn secret_value(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn helm_release_seed() -> Value {
    json!({"name": "shop", "namespace": "shop", "version": 2,
           "info": {"status": "deployed", "first_deployed": "2026-01-01T00:00:00Z", "last_deployed": "2026-01-02T00:00:00Z", "description": "Upgrade complete"},
           "chart": {"metadata": {"name": "shop", "version": "1.4.2", "appVersion": "1.4.2"}},
           "config": {"image": {"tag": "1.4.2"}}, "manifest": "---\nkind: Deployment\n"})
}

/// The objects of a small namespace that every Kubernetes kind has something to read in.
fn kubernetes_seeds(tls_cert_pem: &str) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/name": "api", "app": "api"});
    let pod_spec = json!({
        "serviceAccountName": "api",
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "api", "image": "registry.example.com/shop/api:1.4.2",
            "env": [
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "api-db", "key": "password"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "api-config", "key": "mode"}}}
            ],
            "envFrom": [{"configMapRef": {"name": "api-config"}}],
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
        }],
        "initContainers": [{"name": "vault-agent-init", "image": "hashicorp/vault:1.16"}],
        "volumes": [{"name": "tls", "secret": {"secretName": "api-tls"}}]
    });
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "api", "namespace": "shop", "generation": 3, "labels": labels, "annotations": {"deployment.kubernetes.io/revision": "3"}},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}}, "strategy": {"type": "RollingUpdate"},
                        "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
               "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                          "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                                         {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "api-blue", "namespace": "shop", "generation": 1, "labels": labels},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "api", "slot": "blue"}},
                        "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
               "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": "api-7c9", "namespace": "shop", "labels": labels,
                            "annotations": {"deployment.kubernetes.io/revision": "3"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": "d1", "controller": true}]},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}}},
               "status": {"replicas": 2, "readyReplicas": 2}}),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "api-7c9-x1", "namespace": "shop", "labels": labels,
                            "annotations": {"vault.hashicorp.com/agent-inject": "true", "vault.hashicorp.com/role": "shop-api",
                                            "vault.hashicorp.com/agent-inject-secret-db-creds": "database/creds/shop",
                                            "vault.hashicorp.com/agent-inject-status": "injected"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7c9", "uid": "r1", "controller": true}]},
               "spec": pod_spec,
               "status": {"phase": "Running",
                          "initContainerStatuses": [{"name": "vault-agent-init", "ready": true, "restartCount": 0, "image": "hashicorp/vault:1.16", "imageID": "", "state": {"terminated": {"exitCode": 0}}}],
                          "containerStatuses": [{"name": "api", "ready": true, "restartCount": 0, "image": "registry.example.com/shop/api:1.4.2", "imageID": "registry.example.com/shop/api@sha256:0123", "state": {"running": {}}}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api-config", "namespace": "shop"}, "data": {"mode": "production"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-db", "namespace": "shop"}, "type": "Opaque",
               "data": {"password": secret_value(b"not-a-real-password")}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-tls", "namespace": "shop"}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": secret_value(tls_cert_pem.as_bytes()), "tls.key": secret_value(b"unused")}}),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "sh.helm.release.v1.shop.v2", "namespace": "shop", "labels": {"owner": "helm", "name": "shop", "version": "2", "status": "deployed"}},
               "type": "helm.sh/release.v1",
               "data": {"release": secret_value(helm_release_data(helm_release_seed().to_string().as_bytes()).as_bytes())}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "api", "namespace": "shop"},
               "spec": {"tls": [{"hosts": ["api.shop.example.com", "*.shop.example.com"], "secretName": "api-tls"}],
                        "rules": [{"host": "api.shop.example.com"}, {"host": "www.shop.example.com"}, {"host": "plain.example.com"}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "default-deny", "namespace": "shop"},
               "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "api", "namespace": "shop"},
               "spec": {"podSelector": {"matchLabels": {"app": "api"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
                        "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "shop"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "api", "namespace": "shop"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "api", "namespace": "shop"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "api"},
               "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "shop"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "everything"},
               "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "api-everything"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "everything"},
               "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "shop"}, {"kind": "Group", "name": "system:masters"}]}),
        json!({"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "VulnerabilityReport",
               "metadata": {"name": "replicaset-api-7c9-api", "namespace": "shop",
                            "labels": {"trivy-operator.resource.kind": "ReplicaSet", "trivy-operator.resource.name": "api-7c9",
                                       "trivy-operator.resource.namespace": "shop", "trivy-operator.container.name": "api"}},
               "report": {"updateTimestamp": "2026-01-01T00:00:00Z",
                          "artifact": {"repository": "shop/api", "tag": "1.4.2"},
                          "summary": {"criticalCount": 0, "highCount": 2, "mediumCount": 5, "lowCount": 9, "unknownCount": 0}}}),
    ]
}

/// The nodes a mutation leaves alone, so the local API server still serves the object.
const KEPT: &[&str] = &[
    "/apiVersion",
    "/kind",
    "/metadata/name",
    "/metadata/namespace",
];

fn kubernetes_checks() -> Vec<(&'static str, String)> {
    vec![
        ("workload", "kubernetes_workload: { namespace: shop, kind: deployment, name: api }\n".to_string()),
        ("workloads", "kubernetes_workload: { namespace: shop, selector: app=api }\n".to_string()),
        ("pod_security", "kubernetes_pod_security: { namespaces: [shop] }\n".to_string()),
        ("network_policy", "kubernetes_network_policy: { namespaces: [shop] }\n".to_string()),
        ("ingress_tls", "kubernetes_ingress_tls: { namespaces: [shop], read_secrets: true, min_validity: 1d }\n".to_string()),
        ("rbac", "kubernetes_rbac: { namespaces: [shop] }\n".to_string()),
        ("helm_release", "helm_release: { namespace: shop, release: shop, expect_chart_version: 1.4.2 }\n".to_string()),
        ("image_scan", "image_scan: { namespaces: [shop], max_high: 1 }\n".to_string()),
        ("vault_injection", "vault_injection: { namespaces: [shop], selector: app.kubernetes.io/name=api, expect_secrets: [db-creds] }\n".to_string()),
        ("old_versions", "kubernetes_old_versions: { namespace: shop, selector: app.kubernetes.io/name=api, current: api }\n".to_string()),
        ("config_refs", "kubernetes_config: { namespace: shop, kind: deployment, name: api }\n".to_string()),
    ]
}

struct KubernetesFixture {
    api: FakeApi,
    seeds: Vec<Value>,
    config: Config,
    _dir: tempfile::TempDir,
}

fn kubernetes_fixture() -> KubernetesFixture {
    let api = RUNTIME.block_on(FakeApi::start());
    api.install_crds();
    let cert = support::TestCa::new("fuzz ingress CA").valid_leaf(&["api.shop.example.com"]);
    let dir = tempfile::tempdir().unwrap();
    let config = load(
        dir.path(),
        &checks_yaml(&api.config_block(), &kubernetes_checks()),
    );
    KubernetesFixture {
        api,
        seeds: kubernetes_seeds(&cert.cert_pem),
        config,
        _dir: dir,
    }
}

static KUBERNETES_OBJECTS: LazyLock<KubernetesFixture> = LazyLock::new(kubernetes_fixture);
static KUBERNETES_BODIES: LazyLock<KubernetesFixture> = LazyLock::new(kubernetes_fixture);

/// Edits to each seed object, and edits to the Helm release JSON inside its Secret.
type ObjectEdits = (
    Vec<(prop::sample::Index, Vec<Edit>)>,
    Vec<Edit>,
    Vec<(prop::sample::Index, u8, u8)>,
);

fn object_edits() -> impl Strategy<Value = ObjectEdits> {
    (
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop::collection::vec(edit(), 1..4),
            ),
            0..6,
        ),
        prop::collection::vec(edit(), 0..3),
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), any::<u8>()),
            0..2,
        ),
    )
}

/// The seed objects with `edits` applied; the release Secret carries the edited release JSON.
fn mutated_objects(
    seeds: &[Value],
    (object_edits, release_edits, release_bytes): &ObjectEdits,
) -> Vec<Value> {
    let mut objects = seeds.to_vec();
    let release = mutate_json(&helm_release_seed(), release_edits, &[]).to_string();
    let release = mutate_bytes(release.into_bytes(), release_bytes);
    for object in &mut objects {
        if object["type"] == json!("helm.sh/release.v1") {
            object["data"]["release"] = json!(secret_value(helm_release_data(&release).as_bytes()));
        }
    }
    for (index, edits) in object_edits {
        let at = index.index(objects.len());
        objects[at] = mutate_json(&objects[at], edits, KEPT);
    }
    objects
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn kubernetes_kinds_survive_mutated_objects(edits in object_edits()) {
        let fixture = &*KUBERNETES_OBJECTS;
        fixture.api.clear();
        fixture.api.add(mutated_objects(&fixture.seeds, &edits));
        for (id, _) in kubernetes_checks() {
            run_bounded(&fixture.config, id, MAX_KUBERNETES_MESSAGE_CHARS);
        }
    }

    #[test]
    fn kubernetes_kinds_survive_fuzzed_bodies(
        status in status(),
        body in body(vec![
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1", "continue": "offset-1"}, "items": []}),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "pods is forbidden", "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403}),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "deployments.apps \"api\" not found", "reason": "NotFound", "details": {"name": "api", "kind": "deployments"}, "code": 404}),
        ]),
    ) {
        let fixture = &*KUBERNETES_BODIES;
        fixture.api.set_raw_response(Some((status, Bytes::from(body))));
        for (id, _) in kubernetes_checks() {
            run_bounded(&fixture.config, id, MAX_KUBERNETES_MESSAGE_CHARS);
        }
    }
}

// --- cases the properties found -----------------------------------------------------------

#[test]
fn image_scan_totals_saturate() {
    // Two reports that each claim u64::MAX critical vulnerabilities once overflowed the
    // per-severity total and panicked the run.
    let fixture = kubernetes_fixture();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]},
        "status": {"phase": "Running"}});
    let report = |container: &str| {
        json!({"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "VulnerabilityReport",
            "metadata": {"name": format!("pod-api-{container}"), "namespace": "shop",
                "labels": {"trivy-operator.resource.kind": "Pod", "trivy-operator.resource.name": "api",
                           "trivy-operator.container.name": container}},
            "report": {"updateTimestamp": "2026-01-01T00:00:00Z",
                       "summary": {"criticalCount": u64::MAX, "highCount": u64::MAX}}})
    };
    fixture.api.add([pod, report("a"), report("b")]);

    let outcome = run_bounded(&fixture.config, "image_scan", MAX_MESSAGE_CHARS);

    assert_eq!(outcome.reason, Reason::VulnerabilitiesFound, "{outcome:?}");
    assert_eq!(outcome.value, Some(u64::MAX as f64));
}

#[test]
fn repeated_continue_token_ends_list() {
    // A server that returns the same `continue` token on every page once kept a list reading
    // until the check timed out, holding every page.
    let fixture = kubernetes_fixture();
    let page = json!({"kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": "1", "continue": "page-2"}, "items": []});
    fixture
        .api
        .set_raw_response(Some((200, Bytes::from(page.to_string()))));

    let outcome = run_bounded(&fixture.config, "pod_security", MAX_MESSAGE_CHARS);

    assert_eq!(outcome.reason, Reason::InvalidResponse, "{outcome:?}");
    assert!(
        outcome
            .message
            .contains("returned the `continue` token `page-2` a second time"),
        "{}",
        outcome.message
    );
}

#[test]
fn endless_sys_health_body_read_to_limit() {
    // A node that streams its `sys/health` body without end was read completely into memory
    // before the size was compared with the limit.
    support::init();
    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = {
        let written = written.clone();
        RUNTIME.block_on(support::tcp_server(move |mut stream| {
            let written = written.clone();
            async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
                // 64 MiB at most, so a client that reads everything still ends the test.
                for _ in 0..1024 {
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    written.fetch_add(0x10000, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }))
    };
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("http", "");
    let config = load(
        dir.path(),
        &checks_yaml(
            "",
            &[(
                "health",
                format!("vault_health: {{ nodes: [\"{url}\"] }}\n"),
            )],
        ),
    );

    let outcome = run_bounded(&config, "health", MAX_MESSAGE_CHARS);

    assert_eq!(outcome.reason, Reason::VaultUnknownState, "{outcome:?}");
    assert!(
        outcome
            .message
            .contains("with a body larger than 65536 bytes"),
        "{}",
        outcome.message
    );
    std::thread::sleep(Duration::from_millis(200));
    let sent = written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sent < 16 << 20,
        "the node sent {sent} bytes before the exporter stopped reading"
    );
}
