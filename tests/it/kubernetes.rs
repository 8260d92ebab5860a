//! The Kubernetes kinds against a local API server reached through a kubeconfig, and that
//! server's responses compared with the real `kubectl`.

use std::path::PathBuf;
use std::process::Command;

use readiness_exporter::check::{Reason, Status};
use serde_json::{json, Value};

use crate::kube_api::FakeApi;
use crate::support::{assert_metric, assert_no_series, config_problems, LoadedChecks};
use crate::testbed::{assert_success, require_tools, run};

/// The directory of Kubernetes API objects and lists as the API server returns them.
fn fixture_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/kubernetes"
    ))
}

fn shape(name: &str) -> Value {
    let path: PathBuf = fixture_dir().join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Loads one check of kind `kind` with the block `body` against `api`.
fn load(api: &FakeApi, kind: &str, body: &str) -> LoadedChecks {
    let indented: String = body.lines().map(|line| format!("      {line}\n")).collect();
    LoadedChecks::load(&format!(
        "{}checks:\n  - id: k8s\n    title: Kubernetes check\n    section: Cluster\n    severity: critical\n    {kind}:\n{indented}",
        api.config_block()
    ))
}

async fn run_check(
    api: &FakeApi,
    kind: &str,
    body: &str,
) -> (readiness_exporter::check::Outcome, String) {
    let loaded = load(api, kind, body);
    let outcome = loaded.run("k8s").await;
    (outcome, loaded.metrics())
}

fn assert_outcome(outcome: &readiness_exporter::check::Outcome, status: Status, reason: Reason) {
    assert_eq!(outcome.status, status, "{outcome:?}");
    assert_eq!(outcome.reason, reason, "{outcome:?}");
}

fn complete_deployment() -> Value {
    shape("deployment-complete.json")
}

fn with(mut object: Value, pointer: &str, value: Value) -> Value {
    *object
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = value;
    object
}

fn without(mut object: Value, parent: &str, key: &str) -> Value {
    object
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove(key);
    object
}

const API_DEPLOYMENT: &str = "namespace: shop\nkind: deployment\nname: api";

// --- connection -------------------------------------------------------------------------

#[tokio::test]
async fn complete_deployment_passes_with_replica_metrics() {
    let api = FakeApi::start().await;
    api.add([complete_deployment()]);

    let (outcome, metrics) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert!(
        outcome.message.contains("deployment/api"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_check_result{check=\"k8s\",result=\"pass\"} 1",
    );
    for state in ["desired", "updated", "ready", "available"] {
        assert_metric(
            &metrics,
            &format!("readiness_kubernetes_workload_replicas{{check=\"k8s\",workload=\"deployment/api\",state=\"{state}\"}} 3.0"),
        );
    }
}

#[tokio::test]
async fn forbidden_list_names_verb_resource_namespace() {
    let api = FakeApi::start().await;
    api.add([complete_deployment()]);
    api.forbid("list", "deployments", Some("shop"));

    let (outcome, metrics) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nkind: deployment\nselector: app.kubernetes.io/name=api",
    )
    .await;

    assert_outcome(&outcome, Status::Error, Reason::Forbidden);
    assert!(
        outcome
            .message
            .contains("may not list deployments.apps in namespace `shop`"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_check_result{check=\"k8s\",result=\"error\"} 1",
    );
}

#[tokio::test]
async fn forbidden_get_names_verb_resource_namespace() {
    let api = FakeApi::start().await;
    api.add([complete_deployment()]);
    api.forbid("get", "deployments", Some("shop"));

    let (outcome, _) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Error, Reason::Forbidden);
    assert!(
        outcome
            .message
            .contains("may not get deployments.apps `api` in namespace `shop`"),
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .message
            .contains("grant `get` on `deployments.apps` with resourceNames [api]"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn unserved_resource_type_is_error() {
    let api = FakeApi::start().await;
    api.hide_group("apps");

    let (outcome, _) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Error, Reason::ResourceTypeMissing);
    assert!(
        outcome
            .message
            .contains("does not serve `deployments.apps`"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn rejected_token_is_unauthorized_error() {
    let api = FakeApi::start().await;
    api.add([complete_deployment()]);
    let loaded = LoadedChecks::load(&format!(
        "kubernetes:\n  kubeconfig: {}\n  context: wrong-token\nchecks:\n  - id: k8s\n    title: t\n    section: s\n    severity: critical\n    kubernetes_workload:\n      namespace: shop\n      kind: deployment\n      name: api\n",
        api.kubeconfig.display()
    ));

    let outcome = loaded.run("k8s").await;

    assert_outcome(&outcome, Status::Error, Reason::Unauthorized);
}

#[tokio::test]
async fn unreachable_api_server_is_error() {
    let api = FakeApi::start().await;
    let port = crate::support::closed_port().await;
    let text = std::fs::read_to_string(&api.kubeconfig)
        .unwrap()
        .replace(&api.server.addr.to_string(), &format!("127.0.0.1:{port}"));
    std::fs::write(&api.kubeconfig, text).unwrap();

    let (outcome, _) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Error, Reason::ConnectionRefused);
}

#[tokio::test]
async fn client_is_built_once_and_shared() {
    let api = FakeApi::start().await;
    api.add([complete_deployment()]);
    let loaded = LoadedChecks::load(&format!(
        "{}checks:\n  - id: first\n    title: t\n    section: s\n    severity: critical\n    kubernetes_workload: {{namespace: shop, kind: deployment, name: api}}\n  - id: second\n    title: t\n    section: s\n    severity: critical\n    kubernetes_workload: {{namespace: shop, kind: deployment, name: api}}\n",
        api.config_block()
    ));

    assert_outcome(&loaded.run("first").await, Status::Pass, Reason::Ok);
    // The kubeconfig is gone, so only a client built before can reach the server.
    std::fs::remove_file(&api.kubeconfig).unwrap();
    assert_outcome(&loaded.run("second").await, Status::Pass, Reason::Ok);
    assert_outcome(&loaded.run("first").await, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn in_cluster_without_service_account_is_error() {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        eprintln!("skipped: this process runs inside a pod, so the in-cluster client can be built");
        return;
    }
    let loaded = LoadedChecks::load(
        "checks:\n  - id: k8s\n    title: t\n    section: s\n    severity: critical\n    kubernetes_workload: {namespace: shop, kind: deployment, name: api}\n",
    );

    let outcome = loaded.run("k8s").await;

    assert_outcome(&outcome, Status::Error, Reason::ApiClientUnavailable);
    assert!(
        outcome.message.contains("in-cluster service account"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn reload_with_new_context_rebuilds_client() {
    let api = FakeApi::start().await;
    api.add([complete_deployment()]);
    let checklist = |context: &str| {
        format!(
            "kubernetes:\n  kubeconfig: {}\n  context: {context}\nchecks:\n  - id: k8s\n    title: t\n    section: s\n    severity: critical\n    kubernetes_workload: {{namespace: shop, kind: deployment, name: api}}\n",
            api.kubeconfig.display()
        )
    };
    let exporter = crate::support::start_exporter(&checklist("wrong-token")).await;
    exporter.wait_ready().await;
    let before = exporter.exporter.state().entry("k8s").unwrap();
    assert_eq!(before.last.unwrap().outcome.reason, Reason::Unauthorized);

    std::fs::write(&exporter.config_path, checklist("fake")).unwrap();
    exporter.exporter.reload().await.unwrap();
    exporter.wait_ready().await;

    let after = exporter.exporter.state().entry("k8s").unwrap();
    assert_outcome(&after.last.unwrap().outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn list_follows_continue_tokens() {
    let api = FakeApi::start().await;
    let deployments: Vec<Value> = (0..1001)
        .map(|i| {
            let object = with(
                complete_deployment(),
                "/metadata/name",
                json!(format!("api-{i:04}")),
            );
            with(
                object,
                "/metadata/labels",
                json!({"app.kubernetes.io/part-of": "shop"}),
            )
        })
        .collect();
    api.add(deployments);
    api.add([with(
        complete_deployment(),
        "/metadata/labels",
        json!({"app.kubernetes.io/part-of": "other"}),
    )]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nkind: deployment\nselector: app.kubernetes.io/part-of=shop",
    )
    .await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_eq!(outcome.value, Some(1001.0));
    let lists: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|request| request.path == "/apis/apps/v1/namespaces/shop/deployments")
        .collect();
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert_eq!(lists[0].query.get("limit").map(String::as_str), Some("500"));
    assert_eq!(
        lists[0].query.get("labelSelector").map(String::as_str),
        Some("app.kubernetes.io/part-of=shop")
    );
    assert_eq!(lists[0].query.get("continue"), None);
    assert_eq!(
        lists[1].query.get("continue").map(String::as_str),
        Some("offset-500")
    );
    assert_eq!(
        lists[2].query.get("continue").map(String::as_str),
        Some("offset-1000")
    );
}

#[test]
fn missing_kubeconfig_is_config_problem() {
    let problems =
        config_problems("kubernetes:\n  kubeconfig: /nonexistent/kubeconfig\nchecks:\n  - { id: a, title: A, section: S, severity: info, http: { url: \"http://127.0.0.1:1/\" } }\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains(
            "field `kubernetes.kubeconfig`: cannot load kubeconfig `/nonexistent/kubeconfig`"
        ),
        "{problems:?}"
    );
}

#[tokio::test]
async fn unknown_context_is_config_problem() {
    let api = FakeApi::start().await;
    let problems = config_problems(&format!(
        "kubernetes:\n  kubeconfig: {}\n  context: production\nchecks:\n  - {{ id: a, title: A, section: S, severity: info, http: {{ url: \"http://127.0.0.1:1/\" }} }}\n",
        api.kubeconfig.display()
    ));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("context `production` is not in kubeconfig")
            && problems[0].contains("fake, wrong-token"),
        "{problems:?}"
    );
}

#[test]
fn workload_config_problems_are_reported() {
    let problems = config_problems(
        "checks:\n  - id: k8s\n    title: t\n    section: s\n    severity: critical\n    kubernetes_workload:\n      namespace: shop\n      kind: replicaset\n      selector: \"app in (a\"\n      expect_image: {tag: '1', digest: 'sha256:ab'}\n",
    );
    let text = problems.join("\n");
    assert!(
        text.contains("unknown workload kind `replicaset`"),
        "{text}"
    );
    assert!(
        text.contains("invalid label selector `app in (a`"),
        "{text}"
    );
    assert!(text.contains("set exactly one of `tag`"), "{text}");
}

// --- kubernetes_workload: Deployment ------------------------------------------------------

#[tokio::test]
async fn mid_rollout_deployment_fails_in_progress() {
    let api = FakeApi::start().await;
    api.add([shape("deployment-mid-rollout.json")]);

    let (outcome, metrics) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Fail, Reason::RolloutInProgress);
    assert!(
        outcome.message.contains("2 of 4 replicas updated"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_check_result{check=\"k8s\",result=\"fail\"} 1",
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_workload_replicas{check=\"k8s\",workload=\"deployment/api\",state=\"updated\"} 2.0",
    );
}

#[tokio::test]
async fn progress_deadline_exceeded_fails() {
    let api = FakeApi::start().await;
    api.add([shape("deployment-progress-deadline-exceeded.json")]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nkind: deployment\nname: checkout",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::ProgressDeadlineExceeded);
    assert!(
        outcome.message.contains("has timed out progressing"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn paused_deployment_is_reported_paused() {
    let api = FakeApi::start().await;
    let paused = with(
        complete_deployment(),
        "/spec/strategy",
        json!({"type": "RollingUpdate"}),
    );
    let mut paused = paused;
    paused["spec"]["paused"] = json!(true);
    api.add([paused]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Fail, Reason::RolloutPaused);
}

#[tokio::test]
async fn unobserved_generation_is_in_progress() {
    let api = FakeApi::start().await;
    api.add([with(
        complete_deployment(),
        "/metadata/generation",
        json!(8),
    )]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Fail, Reason::RolloutInProgress);
    assert!(
        outcome.message.contains("generation 8, observed 7"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn absent_status_is_error_not_zero() {
    let api = FakeApi::start().await;
    api.add([without(complete_deployment(), "", "status")]);

    let (outcome, metrics) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Error, Reason::StatusNotReported);
    assert_metric(
        &metrics,
        "readiness_kubernetes_workload_replicas{check=\"k8s\",workload=\"deployment/api\",state=\"desired\"} 3.0",
    );
    for state in ["updated", "ready", "available"] {
        let prefix = format!("readiness_kubernetes_workload_replicas{{check=\"k8s\",workload=\"deployment/api\",state=\"{state}\"}}");
        assert!(
            !metrics.contains(&prefix),
            "{state} exported although absent:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn absent_ready_count_is_not_ready() {
    let api = FakeApi::start().await;
    api.add([without(complete_deployment(), "/status", "readyReplicas")]);

    let (outcome, metrics) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Fail, Reason::ReplicasNotReady);
    assert!(
        outcome
            .message
            .contains("ready replicas not reported, 3 desired"),
        "{}",
        outcome.message
    );
    assert!(
        !metrics.contains("state=\"ready\""),
        "ready exported although absent:\n{metrics}"
    );
}

#[tokio::test]
async fn unavailable_replicas_fail_not_ready() {
    let api = FakeApi::start().await;
    api.add([with(
        complete_deployment(),
        "/status/availableReplicas",
        json!(2),
    )]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Fail, Reason::ReplicasNotReady);
    assert!(
        outcome.message.contains("2 of 3 replicas available"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn old_replicas_pending_termination_fail() {
    let api = FakeApi::start().await;
    api.add([with(complete_deployment(), "/status/replicas", json!(4))]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Fail, Reason::RolloutInProgress);
    assert!(
        outcome
            .message
            .contains("1 old replicas are pending termination"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn scaled_to_zero_deployment_passes() {
    let api = FakeApi::start().await;
    let mut scaled = with(complete_deployment(), "/spec/replicas", json!(0));
    scaled["status"] = json!({"observedGeneration": 7});
    api.add([scaled]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn missing_named_deployment_fails_not_found() {
    let api = FakeApi::start().await;

    let (outcome, metrics) = run_check(&api, "kubernetes_workload", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Fail, Reason::ObjectNotFound);
    assert!(
        outcome
            .message
            .contains("deployment `api` not found in namespace `shop`"),
        "{}",
        outcome.message
    );
    assert_no_series(&metrics, "readiness_kubernetes_workload_replicas", "k8s");
}

#[tokio::test]
async fn selector_matching_nothing_fails_not_found() {
    let api = FakeApi::start().await;
    api.add([complete_deployment()]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nselector: app.kubernetes.io/name=web",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::ObjectNotFound);
    assert!(
        outcome
            .message
            .contains("no deployment, statefulset, daemonset in namespace `shop` matches selector"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn selector_covers_every_workload_kind() {
    let api = FakeApi::start().await;
    let labels = json!({"app.kubernetes.io/part-of": "shop"});
    api.add([
        with(complete_deployment(), "/metadata/labels", labels.clone()),
        with(
            with(
                shape("statefulset-rolling-in-progress.json"),
                "/metadata/namespace",
                json!("shop"),
            ),
            "/metadata/labels",
            labels.clone(),
        ),
    ]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nselector: app.kubernetes.io/part-of=shop",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::RolloutInProgress);
    assert!(
        outcome
            .message
            .starts_with("1 of 2 workload(s) not rolled out: statefulset/postgres"),
        "{}",
        outcome.message
    );
    assert_eq!(outcome.value, Some(1.0));
}

// --- kubernetes_workload: StatefulSet -----------------------------------------------------

const POSTGRES_STATEFULSET: &str = "namespace: data\nkind: statefulset\nname: postgres";

#[tokio::test]
async fn complete_statefulset_passes() {
    let api = FakeApi::start().await;
    api.add([shape("statefulset-complete.json")]);

    let (outcome, metrics) = run_check(&api, "kubernetes_workload", POSTGRES_STATEFULSET).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_metric(
        &metrics,
        "readiness_kubernetes_workload_replicas{check=\"k8s\",workload=\"statefulset/postgres\",state=\"ready\"} 3.0",
    );
}

#[tokio::test]
async fn rolling_statefulset_fails_in_progress() {
    let api = FakeApi::start().await;
    api.add([shape("statefulset-rolling-in-progress.json")]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", POSTGRES_STATEFULSET).await;

    assert_outcome(&outcome, Status::Fail, Reason::RolloutInProgress);
    assert!(
        outcome.message.contains(
            "from revision postgres-5c9bc6dbb5 to postgres-7f8d9e0a1b: 1 of 3 pods updated"
        ),
        "{}",
        outcome.message
    );
}

fn partitioned(partition: i64, updated: i64) -> Value {
    let object = shape("statefulset-rolling-in-progress.json");
    let object = with(
        object,
        "/spec/updateStrategy/rollingUpdate/partition",
        json!(partition),
    );
    let object = with(object, "/status/updatedReplicas", json!(updated));
    let object = with(object, "/status/readyReplicas", json!(3));
    with(object, "/status/availableReplicas", json!(3))
}

#[tokio::test]
async fn partitioned_statefulset_passes_above_partition() {
    let api = FakeApi::start().await;
    // Partition 2 of 3 replicas: only ordinal 2 takes the update revision.
    api.add([partitioned(2, 1)]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", POSTGRES_STATEFULSET).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn partitioned_statefulset_fails_below_partition() {
    let api = FakeApi::start().await;
    api.add([partitioned(1, 1)]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", POSTGRES_STATEFULSET).await;

    assert_outcome(&outcome, Status::Fail, Reason::RolloutInProgress);
    assert!(
        outcome
            .message
            .contains("1 of 2 pods at or above partition 1 updated"),
        "{}",
        outcome.message
    );
}

fn on_delete(updated: i64) -> Value {
    let object = shape("statefulset-rolling-in-progress.json");
    let object = with(object, "/spec/updateStrategy", json!({"type": "OnDelete"}));
    let object = with(object, "/status/updatedReplicas", json!(updated));
    let object = with(object, "/status/readyReplicas", json!(3));
    with(object, "/status/availableReplicas", json!(3))
}

#[tokio::test]
async fn on_delete_statefulset_passes_when_all_updated() {
    let api = FakeApi::start().await;
    // Under OnDelete the controller leaves currentRevision behind, so the revisions differ.
    api.add([on_delete(3)]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", POSTGRES_STATEFULSET).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn on_delete_statefulset_fails_with_old_pods() {
    let api = FakeApi::start().await;
    api.add([on_delete(1)]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", POSTGRES_STATEFULSET).await;

    assert_outcome(&outcome, Status::Fail, Reason::RolloutInProgress);
    assert!(
        outcome
            .message
            .contains("OnDelete strategy replaces a pod only when it is deleted"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn statefulset_unready_replica_fails() {
    let api = FakeApi::start().await;
    api.add([with(
        shape("statefulset-complete.json"),
        "/status/readyReplicas",
        json!(2),
    )]);

    let (outcome, _) = run_check(&api, "kubernetes_workload", POSTGRES_STATEFULSET).await;

    assert_outcome(&outcome, Status::Fail, Reason::ReplicasNotReady);
}

// --- kubernetes_workload: DaemonSet -------------------------------------------------------

fn daemon_set(updated: i64, available: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-agent", "namespace": "shop", "generation": 3},
        "spec": {
            "selector": {"matchLabels": {"app": "node-agent"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "node-agent"}}, "spec": {"containers": [{"name": "agent", "image": "registry.example.com/agent:3.1"}]}}
        },
        "status": {
            "observedGeneration": 3,
            "currentNumberScheduled": 4,
            "desiredNumberScheduled": 4,
            "numberMisscheduled": 0,
            "numberReady": available,
            "numberAvailable": available,
            "updatedNumberScheduled": updated
        }
    })
}

#[tokio::test]
async fn complete_daemonset_passes() {
    let api = FakeApi::start().await;
    api.add([daemon_set(4, 4)]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nkind: daemonset\nname: node-agent",
    )
    .await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn daemonset_partly_updated_fails() {
    let api = FakeApi::start().await;
    api.add([daemon_set(2, 4)]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nkind: daemonset\nname: node-agent",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::RolloutInProgress);
    assert!(
        outcome.message.contains("2 of 4 replicas updated"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn daemonset_unavailable_pods_fail() {
    let api = FakeApi::start().await;
    api.add([daemon_set(4, 3)]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nkind: daemonset\nname: node-agent",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::ReplicasNotReady);
}

// --- kubernetes_workload: expected image --------------------------------------------------

#[tokio::test]
async fn expected_tag_passes_when_running() {
    let api = FakeApi::start().await;
    api.add([complete_deployment()]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nkind: deployment\nname: api\nexpect_image: {container: api, tag: 1.4.2}",
    )
    .await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn other_tag_fails_image_mismatch() {
    let api = FakeApi::start().await;
    api.add([complete_deployment()]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_workload",
        "namespace: shop\nkind: deployment\nname: api\nexpect_image: {tag: 1.5.0}",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::ImageMismatch);
    assert!(
        outcome.message.contains(
            "expected tag `1.5.0`, but container `api` runs `registry.example.com/shop/api:1.4.2`"
        ),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn expected_digest_compares_pinned_reference() {
    let api = FakeApi::start().await;
    let digest = format!("sha256:{}", "c".repeat(64));
    api.add([with(
        complete_deployment(),
        "/spec/template/spec/containers/0/image",
        json!(format!("registry.example.com/shop/api@{digest}")),
    )]);

    let (passing, _) = run_check(
        &api,
        "kubernetes_workload",
        &format!(
            "namespace: shop\nkind: deployment\nname: api\nexpect_image: {{digest: '{digest}'}}"
        ),
    )
    .await;
    let (failing, _) = run_check(
        &api,
        "kubernetes_workload",
        &format!(
            "namespace: shop\nkind: deployment\nname: api\nexpect_image: {{digest: 'sha256:{}'}}",
            "d".repeat(64)
        ),
    )
    .await;

    assert_outcome(&passing, Status::Pass, Reason::Ok);
    assert_outcome(&failing, Status::Fail, Reason::ImageMismatch);
}

// --- the local API server against kubectl -------------------------------------------------

fn kubectl(api: &FakeApi, cache: &std::path::Path, args: &[&str]) -> std::process::Output {
    run(Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&api.kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_api_server_matches_kubectl() {
    if require_tools("local_api_server_matches_kubectl", &["kubectl"]).is_none() {
        return;
    }
    let api = FakeApi::start().await;
    api.add([
        complete_deployment(),
        shape("deployment-progress-deadline-exceeded.json"),
    ]);
    api.add([
        shape("pod-restricted.json"),
        shape("pod-root-no-securitycontext.json"),
    ]);
    api.forbid("list", "secrets", Some("shop"));
    // kubectl asks whether the namespace exists before it reports a missing object.
    api.add([json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})]);
    let cache = tempfile::tempdir().unwrap();

    // Plain JSON list, read back into typed objects by kubectl.
    let output = kubectl(
        &api,
        cache.path(),
        &["get", "deployments", "-n", "shop", "-o", "json"],
    );
    assert_success(
        &format!("kubectl get deployments ({:?})", api.requests()),
        &output,
    );
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "checkout"]);

    // Label selector.
    let output = kubectl(
        &api,
        cache.path(),
        &[
            "get",
            "deployments",
            "-n",
            "shop",
            "-l",
            "app.kubernetes.io/name=checkout",
            "-o",
            "name",
        ],
    );
    assert_success("kubectl get -l", &output);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "deployment.apps/checkout\n"
    );

    // Pagination: kubectl follows the continue token page by page.
    let output = kubectl(
        &api,
        cache.path(),
        &["get", "pods", "-n", "shop", "--chunk-size=1", "-o", "name"],
    );
    assert_success("kubectl get --chunk-size=1", &output);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "pod/api-7dfc8c89b5-42xvk\npod/legacy-app-7c56cd65dc-2lcxf\n"
    );
    assert!(api
        .requests()
        .iter()
        .any(|request| request.path == "/api/v1/namespaces/shop/pods"
            && request.query.get("continue").map(String::as_str) == Some("offset-1")));

    // Get by name, and a missing object.
    let output = kubectl(
        &api,
        cache.path(),
        &[
            "get",
            "deployment",
            "api",
            "-n",
            "shop",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
    );
    assert_success("kubectl get deployment api", &output);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "3");
    let output = kubectl(
        &api,
        cache.path(),
        &["get", "deployment", "missing", "-n", "shop"],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Error from server (NotFound): deployments.apps \"missing\" not found"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // 403 Status object.
    let output = kubectl(
        &api,
        cache.path(),
        &["get", "secrets", "-n", "shop", "-o", "name"],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Error from server (Forbidden): secrets is forbidden: User \"system:serviceaccount:readiness:readiness-exporter\" cannot list resource \"secrets\" in API group \"\" in the namespace \"shop\""),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A CRD that is not installed is absent from discovery.
    let output = kubectl(
        &api,
        cache.path(),
        &["get", "vulnerabilityreports", "-n", "shop"],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("the server doesn't have a resource type \"vulnerabilityreports\""),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    api.install_crds();
    let output = kubectl(
        &api,
        cache.path(),
        &[
            "get",
            "vulnerabilityreports",
            "-n",
            "shop",
            "-o",
            "json",
            "--cache-dir",
            cache.path().join("after").to_str().unwrap(),
        ],
    );
    assert_success("kubectl get vulnerabilityreports after install", &output);
}

// --- kubernetes_pod_security ----------------------------------------------------------------

fn restricted_pod() -> Value {
    shape("pod-restricted.json")
}

const SHOP_PODS: &str = "namespaces: [shop]";

/// Each rule with a change to the restricted pod that violates that rule alone.
fn rule_violations() -> Vec<(&'static str, Value)> {
    let pod = restricted_pod;
    vec![
        (
            "run_as_non_root",
            with(pod(), "/spec/securityContext/runAsNonRoot", json!(false))
                .pipe(|p| without(p, "/spec/securityContext", "runAsUser")),
        ),
        (
            "no_privilege_escalation",
            with(
                pod(),
                "/spec/containers/0/securityContext/allowPrivilegeEscalation",
                json!(true),
            ),
        ),
        ("not_privileged", {
            let mut p = pod();
            p["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true);
            p
        }),
        (
            "read_only_root_filesystem",
            without(
                pod(),
                "/spec/containers/0/securityContext",
                "readOnlyRootFilesystem",
            ),
        ),
        (
            "drop_all_capabilities",
            with(
                pod(),
                "/spec/containers/0/securityContext/capabilities",
                json!({"drop": ["NET_RAW"]}),
            ),
        ),
        (
            "seccomp_profile",
            with(
                pod(),
                "/spec/securityContext/seccompProfile",
                json!({"type": "Unconfined"}),
            ),
        ),
        ("no_host_namespaces", {
            let mut p = pod();
            p["spec"]["hostNetwork"] = json!(true);
            p
        }),
    ]
}

trait Pipe: Sized {
    fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
        f(self)
    }
}

impl Pipe for Value {}

#[tokio::test]
async fn restricted_pod_passes_every_rule() {
    let api = FakeApi::start().await;
    api.add([restricted_pod()]);

    let (outcome, metrics) = run_check(&api, "kubernetes_pod_security", SHOP_PODS).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert!(
        outcome
            .message
            .contains("every container of 1 pod(s) follows the 7 enabled rule(s)"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_pod_security_violations{check=\"k8s\",rule=\"run_as_non_root\"} 0.0",
    );
    let list = api
        .requests()
        .into_iter()
        .find(|request| request.path == "/api/v1/namespaces/shop/pods")
        .unwrap();
    assert_eq!(
        list.query.get("fieldSelector").map(String::as_str),
        Some("status.phase!=Succeeded,status.phase!=Failed")
    );
}

#[tokio::test]
async fn each_rule_fails_its_violation() {
    for (rule, pod) in rule_violations() {
        let api = FakeApi::start().await;
        api.add([pod]);

        let (outcome, metrics) = run_check(&api, "kubernetes_pod_security", SHOP_PODS).await;

        assert_outcome(&outcome, Status::Fail, Reason::PodSecurityViolation);
        assert!(
            outcome
                .message
                .contains(&format!("shop/api container `app`: {rule}")),
            "{rule}: {}",
            outcome.message
        );
        assert_metric(
            &metrics,
            &format!(
                "readiness_kubernetes_pod_security_violations{{check=\"k8s\",rule=\"{rule}\"}} 1.0"
            ),
        );
        for other in rule_violations()
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| *name != rule)
        {
            assert_metric(
                &metrics,
                &format!("readiness_kubernetes_pod_security_violations{{check=\"k8s\",rule=\"{other}\"}} 0.0"),
            );
        }
    }
}

#[tokio::test]
async fn switched_off_rule_passes_its_violation() {
    for (rule, pod) in rule_violations() {
        let api = FakeApi::start().await;
        api.add([pod]);

        let (outcome, metrics) = run_check(
            &api,
            "kubernetes_pod_security",
            &format!("namespaces: [shop]\nrules: {{{rule}: false}}"),
        )
        .await;

        assert_outcome(&outcome, Status::Pass, Reason::Ok);
        assert!(
            !metrics.contains(&format!("rule=\"{rule}\"")),
            "{rule} exported although switched off:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn container_context_overrides_pod_context() {
    let api = FakeApi::start().await;
    // The pod says non-root, the container runs as UID 0.
    let mut root = restricted_pod();
    root["spec"]["containers"][0]["securityContext"]["runAsUser"] = json!(0);
    // The pod's profile is Unconfined, the container's own RuntimeDefault takes precedence.
    let seccomp = with(
        with(
            restricted_pod(),
            "/spec/securityContext/seccompProfile",
            json!({"type": "Unconfined"}),
        ),
        "/metadata/name",
        json!("web-5d8f7c9b4-abcde"),
    );
    let mut seccomp = with(
        seccomp,
        "/metadata/ownerReferences/0/name",
        json!("web-5d8f7c9b4"),
    );
    seccomp["spec"]["containers"][0]["securityContext"]["seccompProfile"] =
        json!({"type": "RuntimeDefault"});
    // The pod sets no runAsNonRoot, the container sets a non-zero user.
    let mut user = without(
        without(restricted_pod(), "/spec/securityContext", "runAsNonRoot"),
        "/spec/securityContext",
        "runAsUser",
    );
    user["metadata"]["name"] = json!("worker-6c7d8e9f0-fghij");
    user["metadata"]["ownerReferences"][0]["name"] = json!("worker-6c7d8e9f0");
    user["spec"]["containers"][0]["securityContext"]["runAsUser"] = json!(1000);
    api.add([root, seccomp, user]);

    let (outcome, _) = run_check(&api, "kubernetes_pod_security", SHOP_PODS).await;

    assert_outcome(&outcome, Status::Fail, Reason::PodSecurityViolation);
    assert_eq!(
        outcome.message,
        "1 container(s) violate least-privilege rules: shop/api container `app`: run_as_non_root"
    );
}

#[tokio::test]
async fn message_names_every_offending_container() {
    let api = FakeApi::start().await;
    let mut legacy = shape("pod-root-no-securitycontext.json");
    legacy["spec"]["initContainers"] =
        json!([{"name": "migrate", "image": "registry.example.com/shop/migrate:1"}]);
    api.add([restricted_pod(), legacy]);

    let (outcome, metrics) = run_check(&api, "kubernetes_pod_security", SHOP_PODS).await;

    assert_outcome(&outcome, Status::Fail, Reason::PodSecurityViolation);
    let expected_rules = "run_as_non_root, no_privilege_escalation, read_only_root_filesystem, drop_all_capabilities, seccomp_profile";
    assert_eq!(
        outcome.message,
        format!("2 container(s) violate least-privilege rules: shop/legacy-app container `app`: {expected_rules}; shop/legacy-app container `migrate`: {expected_rules}")
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_pod_security_violations{check=\"k8s\",rule=\"seccomp_profile\"} 2.0",
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_pod_security_violations{check=\"k8s\",rule=\"not_privileged\"} 0.0",
    );
}

fn legacy_exemption(expires: &str) -> String {
    format!(
        "namespaces: [shop]\nexemptions:\n  - workload: legacy-app\n    container: app\n    reason: vendor image writes to its root filesystem until release 3\n    expires: \"{expires}\""
    )
}

#[tokio::test]
async fn current_exemption_excuses_container() {
    let api = FakeApi::start().await;
    api.add([shape("pod-root-no-securitycontext.json")]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_pod_security",
        &legacy_exemption("2999-01-01T00:00:00Z"),
    )
    .await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert!(
        outcome.message.contains("1 container(s) with exempt rules"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn expired_exemption_no_longer_applies() {
    let api = FakeApi::start().await;
    api.add([shape("pod-root-no-securitycontext.json")]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_pod_security",
        &legacy_exemption("2020-01-01T00:00:00Z"),
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::PodSecurityViolation);
    assert!(
        outcome
            .message
            .contains("expired exemptions no longer apply to shop/legacy-app container `app`"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn exemption_for_one_rule_keeps_others() {
    let api = FakeApi::start().await;
    api.add([shape("pod-root-no-securitycontext.json")]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_pod_security",
        "namespaces: [shop]\nexemptions:\n  - workload: legacy-app\n    rules: [read_only_root_filesystem]\n    reason: writes a cache\n    expires: \"2999-01-01T00:00:00Z\"",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::PodSecurityViolation);
    assert!(
        outcome.message.contains("shop/legacy-app container `app`: run_as_non_root, no_privilege_escalation, drop_all_capabilities, seccomp_profile"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn completed_pods_are_not_evaluated() {
    let api = FakeApi::start().await;
    let mut finished = shape("pod-root-no-securitycontext.json");
    finished["status"]["phase"] = json!("Succeeded");
    api.add([restricted_pod(), finished]);

    let (outcome, _) = run_check(&api, "kubernetes_pod_security", SHOP_PODS).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn no_selected_pods_fails_not_found() {
    let api = FakeApi::start().await;
    api.add([restricted_pod()]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_pod_security",
        "namespaces: [shop]\nselector: app.kubernetes.io/name=web",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::ObjectNotFound);
}

#[tokio::test]
async fn forbidden_pod_list_is_error() {
    let api = FakeApi::start().await;
    api.add([restricted_pod()]);
    api.forbid("list", "pods", Some("shop"));

    let (outcome, _) = run_check(&api, "kubernetes_pod_security", SHOP_PODS).await;

    assert_outcome(&outcome, Status::Error, Reason::Forbidden);
    assert!(
        outcome
            .message
            .contains("may not list pods in namespace `shop`"),
        "{}",
        outcome.message
    );
}

#[test]
fn pod_security_config_problems_are_reported() {
    let problems = config_problems(
        "checks:\n  - id: k8s\n    title: t\n    section: s\n    severity: critical\n    kubernetes_pod_security:\n      namespaces: [shop]\n      exemptions:\n        - {workload: legacy, reason: '', expires: tomorrow}\n",
    );
    let text = problems.join("\n");
    assert!(
        text.contains("exemptions[0].reason`: reason is empty"),
        "{text}"
    );
    assert!(text.contains("invalid timestamp `tomorrow`"), "{text}");
}

// --- kubernetes_network_policy --------------------------------------------------------------

fn policy(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec
    })
}

fn running_pod(name: &str, labels: Value) -> Value {
    let mut pod = restricted_pod();
    pod["metadata"]["name"] = json!(name);
    pod["metadata"]["labels"] = labels;
    pod
}

#[tokio::test]
async fn default_deny_with_allow_passes() {
    let api = FakeApi::start().await;
    api.add_file(&fixture_dir().join("networkpolicy-list-default-deny-plus-allow.json"));
    api.add([restricted_pod()]);

    let (outcome, metrics) = run_check(
        &api,
        "kubernetes_network_policy",
        "namespaces: [shop]\nrequire_default_deny_egress: true",
    )
    .await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_eq!(
        outcome.message,
        "default-deny ingress and egress policies, every running pod selected by a policy in shop"
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_network_policy_unselected_pods{check=\"k8s\",namespace=\"shop\"} 0.0",
    );
}

#[tokio::test]
async fn namespace_without_policies_fails() {
    let api = FakeApi::start().await;
    api.add_file(&fixture_dir().join("networkpolicy-list-empty.json"));
    api.add([restricted_pod()]);

    let (outcome, metrics) =
        run_check(&api, "kubernetes_network_policy", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Fail, Reason::DefaultDenyMissing);
    assert_eq!(
        outcome.message,
        "`shop` has no default-deny ingress policy; 1 pod(s) in `shop` selected by no policy: api-7dfc8c89b5-42xvk"
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_network_policy_unselected_pods{check=\"k8s\",namespace=\"shop\"} 1.0",
    );
}

#[tokio::test]
async fn allow_all_policy_is_not_default_deny() {
    let api = FakeApi::start().await;
    // An empty ingress rule allows all traffic, although the selector selects every pod.
    api.add([policy(
        "allow-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}),
    )]);
    api.add([restricted_pod()]);

    let (outcome, _) = run_check(&api, "kubernetes_network_policy", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Fail, Reason::DefaultDenyMissing);
}

#[tokio::test]
async fn ingress_only_deny_fails_egress_requirement() {
    let api = FakeApi::start().await;
    // Without policyTypes a policy without egress rules applies to ingress only.
    api.add([policy("default-deny", json!({"podSelector": {}}))]);
    api.add([restricted_pod()]);

    let (ingress, _) = run_check(&api, "kubernetes_network_policy", "namespaces: [shop]").await;
    let (egress, _) = run_check(
        &api,
        "kubernetes_network_policy",
        "namespaces: [shop]\nrequire_default_deny_egress: true",
    )
    .await;

    assert_outcome(&ingress, Status::Pass, Reason::Ok);
    assert_outcome(&egress, Status::Fail, Reason::DefaultDenyMissing);
    assert_eq!(egress.message, "`shop` has no default-deny egress policy");
}

#[tokio::test]
async fn pod_selected_by_no_policy_fails() {
    let api = FakeApi::start().await;
    // The default deny lives in another namespace, so in `shop` only the api policy selects.
    let mut other = policy(
        "default-deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    other["metadata"]["namespace"] = json!("other");
    api.add([
        other,
        policy("default-deny-by-label", json!({"podSelector": {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "Exists"}]}, "policyTypes": ["Ingress"]})),
        policy("api", json!({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "api"}}, "ingress": [{}]})),
        running_pod("api-1", json!({"app.kubernetes.io/name": "api"})),
        running_pod("debug", json!({"purpose": "debugging"})),
    ]);

    let (outcome, metrics) =
        run_check(&api, "kubernetes_network_policy", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Fail, Reason::DefaultDenyMissing);
    assert!(
        outcome
            .message
            .contains("1 pod(s) in `shop` selected by no policy: debug"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_network_policy_unselected_pods{check=\"k8s\",namespace=\"shop\"} 1.0",
    );
}

#[tokio::test]
async fn unselected_pod_fails_with_default_deny_elsewhere() {
    let api = FakeApi::start().await;
    api.add([
        policy(
            "deny-labelled",
            json!({"podSelector": {"matchLabels": {"tier": "web"}}, "policyTypes": ["Ingress"]}),
        ),
        policy(
            "default-deny",
            json!({"podSelector": {}, "policyTypes": ["Egress"]}),
        ),
        running_pod("web-1", json!({"tier": "web"})),
        running_pod("batch-1", json!({"tier": "batch"})),
    ]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_network_policy",
        "namespaces: [shop]\nrequire_default_deny_egress: true\nrequire_every_pod_selected: true",
    )
    .await;

    // The egress default deny selects every pod, but no ingress default deny exists.
    assert_outcome(&outcome, Status::Fail, Reason::DefaultDenyMissing);
    assert_eq!(outcome.message, "`shop` has no default-deny ingress policy");
}

#[tokio::test]
async fn pod_coverage_fails_without_match() {
    let api = FakeApi::start().await;
    api.add([
        policy(
            "default-deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        running_pod("web-1", json!({"tier": "web"})),
    ]);
    // A policy with a selector matching nothing in the namespace of the second check.
    let mut lonely = policy(
        "web-only",
        json!({"podSelector": {"matchLabels": {"tier": "web"}}, "policyTypes": ["Ingress"]}),
    );
    lonely["metadata"]["namespace"] = json!("batch");
    let mut batch_deny = policy(
        "default-deny",
        json!({"podSelector": {"matchLabels": {"tier": "none"}}, "policyTypes": ["Ingress"]}),
    );
    batch_deny["metadata"]["namespace"] = json!("batch");
    let mut batch_pod = running_pod("batch-1", json!({"tier": "batch"}));
    batch_pod["metadata"]["namespace"] = json!("batch");
    api.add([lonely, batch_deny, batch_pod]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_network_policy",
        "namespaces: [shop, batch]",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::DefaultDenyMissing);
    assert_eq!(
        outcome.message,
        "`batch` has no default-deny ingress policy; 1 pod(s) in `batch` selected by no policy: batch-1"
    );
}

#[tokio::test]
async fn only_unselected_pods_fail_pod_not_selected() {
    let api = FakeApi::start().await;
    api.add([
        policy(
            "default-deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        running_pod("web-1", json!({"tier": "web"})),
    ]);
    let mut batch_deny = policy(
        "default-deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    batch_deny["metadata"]["namespace"] = json!("batch");
    api.add([batch_deny]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_network_policy",
        "namespaces: [shop, batch]",
    )
    .await;
    assert_outcome(&outcome, Status::Pass, Reason::Ok);

    // Without the default-deny requirement, coverage alone decides.
    let api = FakeApi::start().await;
    api.add([
        policy("web", json!({"podSelector": {"matchLabels": {"tier": "web"}}, "policyTypes": ["Ingress"], "ingress": [{}]})),
        running_pod("web-1", json!({"tier": "web"})),
        running_pod("debug", json!({"purpose": "debugging"})),
    ]);
    let (outcome, _) = run_check(
        &api,
        "kubernetes_network_policy",
        "namespaces: [shop]\nrequire_default_deny_ingress: false",
    )
    .await;
    assert_outcome(&outcome, Status::Fail, Reason::PodNotSelected);
    assert_eq!(
        outcome.message,
        "1 pod(s) in `shop` selected by no policy: debug"
    );
}

#[tokio::test]
async fn forbidden_policy_list_is_error() {
    let api = FakeApi::start().await;
    api.forbid("list", "networkpolicies", Some("shop"));

    let (outcome, _) = run_check(&api, "kubernetes_network_policy", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Error, Reason::Forbidden);
    assert!(
        outcome
            .message
            .contains("may not list networkpolicies.networking.k8s.io in namespace `shop`"),
        "{}",
        outcome.message
    );
}

// --- kubernetes_ingress_tls -----------------------------------------------------------------

fn tls_secret(name: &str, leaf: &crate::support::TestLeaf) -> Value {
    use base64::Engine;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": "shop"},
        "data": {"tls.crt": encode(&leaf.cert_pem), "tls.key": encode(&leaf.key_pem)}
    })
}

fn ingress_ca() -> crate::support::TestCa {
    crate::support::init();
    crate::support::TestCa::new("ingress CA")
}

const SHOP_INGRESSES: &str = "namespaces: [shop]";

#[tokio::test]
async fn ingress_with_valid_secret_passes() {
    let api = FakeApi::start().await;
    let leaf = ingress_ca().valid_leaf(&["api.example.com"]);
    api.add([
        shape("ingress-tls.json"),
        tls_secret("api-example-com-tls", &leaf),
    ]);

    let (outcome, metrics) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert!(
        outcome
            .message
            .starts_with("1 host(s) of 1 Ingress(es) served with TLS"),
        "{}",
        outcome.message
    );
    assert!(
        metrics.lines().any(|line| line.starts_with(
            "readiness_kubernetes_ingress_certificate_not_after_timestamp_seconds{check=\"k8s\",ingress=\"shop/api\",secret=\"api-example-com-tls\"} "
        )),
        "{metrics}"
    );
    assert!(!outcome.message.contains("BEGIN"), "{}", outcome.message);
    assert!(
        api.requests()
            .iter()
            .any(|request| request.path == "/api/v1/namespaces/shop/secrets/api-example-com-tls"),
        "the Secret is read by name"
    );
    assert!(
        !api.requests()
            .iter()
            .any(|request| request.path == "/api/v1/namespaces/shop/secrets"),
        "Secrets are never listed"
    );
}

#[tokio::test]
async fn host_without_tls_entry_fails() {
    let api = FakeApi::start().await;
    api.add([shape("ingress-no-tls.json")]);

    let (outcome, _) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;

    assert_outcome(&outcome, Status::Fail, Reason::TlsNotConfigured);
    assert_eq!(
        outcome.message,
        "shop/api: host `api.example.com` has no TLS entry"
    );
}

#[tokio::test]
async fn tls_entry_without_secret_name_fails() {
    let api = FakeApi::start().await;
    api.add([with(
        shape("ingress-tls.json"),
        "/spec/tls/0",
        json!({"hosts": ["api.example.com"]}),
    )]);

    let (outcome, _) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;

    assert_outcome(&outcome, Status::Fail, Reason::TlsNotConfigured);
    assert!(
        outcome.message.contains("names no secretName"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn missing_secret_fails_invalid() {
    let api = FakeApi::start().await;
    api.add([shape("ingress-tls.json")]);

    let (outcome, _) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;

    assert_outcome(&outcome, Status::Fail, Reason::TlsSecretInvalid);
    assert_eq!(
        outcome.message,
        "shop/api: Secret `api-example-com-tls` does not exist"
    );
}

#[tokio::test]
async fn opaque_secret_fails_invalid() {
    let api = FakeApi::start().await;
    let leaf = ingress_ca().valid_leaf(&["api.example.com"]);
    api.add([
        shape("ingress-tls.json"),
        with(
            tls_secret("api-example-com-tls", &leaf),
            "/type",
            json!("Opaque"),
        ),
    ]);

    let (outcome, _) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;

    assert_outcome(&outcome, Status::Fail, Reason::TlsSecretInvalid);
    assert_eq!(
        outcome.message,
        "shop/api: Secret `api-example-com-tls` has type `Opaque`, not `kubernetes.io/tls`"
    );
}

#[tokio::test]
async fn expired_certificate_fails() {
    let api = FakeApi::start().await;
    let leaf = ingress_ca().leaf(
        &["api.example.com"],
        time::Duration::days(-90),
        time::Duration::days(-1),
    );
    api.add([
        shape("ingress-tls.json"),
        tls_secret("api-example-com-tls", &leaf),
    ]);

    let (outcome, _) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;

    assert_outcome(&outcome, Status::Fail, Reason::CertificateExpired);
    assert!(
        outcome
            .message
            .contains("the certificate in Secret `api-example-com-tls` expired at"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn certificate_expiring_soon_fails() {
    let api = FakeApi::start().await;
    let leaf = ingress_ca().leaf(
        &["api.example.com"],
        time::Duration::days(-80),
        time::Duration::days(5),
    );
    api.add([
        shape("ingress-tls.json"),
        tls_secret("api-example-com-tls", &leaf),
    ]);

    let (soon, _) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;
    let (relaxed, _) = run_check(
        &api,
        "kubernetes_ingress_tls",
        "namespaces: [shop]\nmin_validity: 3d",
    )
    .await;

    assert_outcome(&soon, Status::Fail, Reason::CertificateExpiresSoon);
    assert!(
        soon.message.contains("within the required 14days"),
        "{}",
        soon.message
    );
    assert_outcome(&relaxed, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn certificate_for_other_host_fails() {
    let api = FakeApi::start().await;
    let leaf = ingress_ca().valid_leaf(&["*.other.example.com"]);
    api.add([
        shape("ingress-tls.json"),
        tls_secret("api-example-com-tls", &leaf),
    ]);

    let (outcome, _) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;

    assert_outcome(&outcome, Status::Fail, Reason::CertificateHostMismatch);
    assert!(
        outcome
            .message
            .contains("does not name api.example.com (it names *.other.example.com)"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn forbidden_secret_get_is_error() {
    let api = FakeApi::start().await;
    let leaf = ingress_ca().valid_leaf(&["api.example.com"]);
    api.add([
        shape("ingress-tls.json"),
        tls_secret("api-example-com-tls", &leaf),
    ]);
    api.forbid("get", "secrets", Some("shop"));

    let (forbidden, _) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;
    let (unread, _) = run_check(
        &api,
        "kubernetes_ingress_tls",
        "namespaces: [shop]\nread_secrets: false",
    )
    .await;

    assert_outcome(&forbidden, Status::Error, Reason::Forbidden);
    assert!(
        forbidden
            .message
            .contains("may not get secrets `api-example-com-tls` in namespace `shop`")
            && forbidden
                .message
                .contains("grant `get` on `secrets` with resourceNames [api-example-com-tls]"),
        "{}",
        forbidden.message
    );
    assert_outcome(&unread, Status::Pass, Reason::Ok);
    assert!(
        unread.message.contains("(Secrets not read)"),
        "{}",
        unread.message
    );
}

#[tokio::test]
async fn no_ingress_fails_not_found() {
    let api = FakeApi::start().await;

    let (outcome, _) = run_check(&api, "kubernetes_ingress_tls", SHOP_INGRESSES).await;

    assert_outcome(&outcome, Status::Fail, Reason::ObjectNotFound);
}

// --- kubernetes_rbac ------------------------------------------------------------------------

fn role_binding(namespace: &str, name: &str, role_kind: &str, role: &str, account: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    })
}

fn cluster_role_binding(name: &str, role: &str, namespace: &str, account: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [
            {"kind": "ServiceAccount", "name": account, "namespace": namespace},
            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}
        ]
    })
}

fn role(kind: &str, namespace: Option<&str>, name: &str, rules: Value) -> Value {
    let mut object = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "rules": rules
    });
    if let Some(namespace) = namespace {
        object["metadata"]["namespace"] = json!(namespace);
    }
    object
}

fn least_privilege_rbac() -> Vec<Value> {
    vec![
        role(
            "Role",
            Some("shop"),
            "api-reader",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]),
        ),
        role_binding("shop", "api-reader", "Role", "api-reader", "api"),
        role(
            "ClusterRole",
            None,
            "view",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]),
        ),
        cluster_role_binding("api-view", "view", "shop", "api"),
        // Another namespace's service account is outside the check.
        cluster_role_binding("ops-admin", "cluster-admin", "ops", "operator"),
    ]
}

#[tokio::test]
async fn least_privilege_bindings_pass() {
    let api = FakeApi::start().await;
    api.add(least_privilege_rbac());

    let (outcome, metrics) = run_check(&api, "kubernetes_rbac", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_metric(
        &metrics,
        "readiness_kubernetes_rbac_violations{check=\"k8s\"} 0.0",
    );
}

#[tokio::test]
async fn cluster_admin_binding_fails() {
    let api = FakeApi::start().await;
    api.add(least_privilege_rbac());
    api.add([cluster_role_binding(
        "ci-admin",
        "cluster-admin",
        "shop",
        "ci-deployer",
    )]);

    let (outcome, metrics) = run_check(&api, "kubernetes_rbac", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Fail, Reason::ExcessivePermissions);
    assert_eq!(
        outcome.message,
        "1 binding(s) grant too much: shop/ci-deployer is bound to ClusterRole/cluster-admin (cluster-admin)"
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_rbac_violations{check=\"k8s\"} 1.0",
    );
}

#[tokio::test]
async fn wildcard_role_binding_fails() {
    let api = FakeApi::start().await;
    api.add(least_privilege_rbac());
    api.add([
        role(
            "Role",
            Some("shop"),
            "everything",
            json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}]),
        ),
        role_binding("shop", "everything", "Role", "everything", "deployer"),
        role(
            "ClusterRole",
            None,
            "all-resources",
            json!([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]),
        ),
        // A RoleBinding may refer to a ClusterRole; the grant then applies in its namespace.
        role_binding(
            "shop",
            "reader-all",
            "ClusterRole",
            "all-resources",
            "reader",
        ),
    ]);

    let (outcome, _) = run_check(&api, "kubernetes_rbac", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Fail, Reason::ExcessivePermissions);
    assert_eq!(
        outcome.message,
        "2 binding(s) grant too much: shop/deployer is bound to Role/shop/everything (`*` verbs on deployments); shop/reader is bound to ClusterRole/all-resources (get on `*` resources)"
    );
}

#[tokio::test]
async fn allow_list_excuses_binding() {
    let api = FakeApi::start().await;
    api.add(least_privilege_rbac());
    api.add([
        cluster_role_binding("ci-admin", "cluster-admin", "shop", "ci-deployer"),
        cluster_role_binding("ci-admin-2", "cluster-admin", "shop", "other"),
    ]);

    let (outcome, _) = run_check(
        &api,
        "kubernetes_rbac",
        "namespaces: [shop]\nallow:\n  - service_account: shop/ci-deployer\n    role: ClusterRole/cluster-admin\n    reason: installs CRDs during releases",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::ExcessivePermissions);
    assert_eq!(
        outcome.message,
        "1 binding(s) grant too much: shop/other is bound to ClusterRole/cluster-admin (cluster-admin)"
    );
}

#[tokio::test]
async fn forbidden_cluster_binding_list_is_error() {
    let api = FakeApi::start().await;
    api.forbid("list", "clusterrolebindings", None);

    let (outcome, _) = run_check(&api, "kubernetes_rbac", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Error, Reason::Forbidden);
    assert!(
        outcome.message.contains(
            "may not list clusterrolebindings.rbac.authorization.k8s.io at the cluster scope"
        ),
        "{}",
        outcome.message
    );
}

// --- helm_release ---------------------------------------------------------------------------

/// A Helm 3 release Secret encoded as Helm writes it: JSON, gzip, base64, then the API's base64.
fn helm_secret(revision: u32, status: &str, last_deployed: &str, chart_version: &str) -> Value {
    use base64::Engine;
    use std::io::Write;
    let release = json!({
        "name": "shop",
        "info": {"first_deployed": "2024-05-01T10:00:00Z", "last_deployed": last_deployed, "deleted": "", "description": "Upgrade complete", "status": status},
        "chart": {"metadata": {"name": "shop", "version": chart_version, "apiVersion": "v2"}},
        "config": {"database": {"password": "not-for-messages"}},
        "manifest": "---\nkind: Secret\n",
        "version": revision,
        "namespace": "shop"
    });
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(release.to_string().as_bytes()).unwrap();
    let helm_text = base64::engine::general_purpose::STANDARD.encode(gzip.finish().unwrap());
    let api_data = base64::engine::general_purpose::STANDARD.encode(helm_text);
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": format!("sh.helm.release.v1.shop.v{revision}"),
            "namespace": "shop",
            "labels": {"name": "shop", "owner": "helm", "status": status, "version": revision.to_string()}
        },
        "data": {"release": api_data}
    })
}

fn minutes_ago(minutes: i64) -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

const SHOP_RELEASE: &str = "namespace: shop\nrelease: shop";

#[tokio::test]
async fn deployed_release_passes() {
    let api = FakeApi::start().await;
    api.add_file(&fixture_dir().join("helm-release-secrets-deployed.json"));

    let (outcome, metrics) = run_check(
        &api,
        "helm_release",
        "namespace: shop\nrelease: shop\nexpect_chart_version: 1.4.2",
    )
    .await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_eq!(
        outcome.message,
        "release `shop` revision 8 (chart shop-1.4.2) is deployed"
    );
    assert_metric(
        &metrics,
        "readiness_helm_release_revision{check=\"k8s\"} 8.0",
    );
    assert_metric(
        &metrics,
        "readiness_helm_release_last_deployed_timestamp_seconds{check=\"k8s\"} 1716796800.0",
    );
    let list = api
        .requests()
        .into_iter()
        .find(|request| request.path == "/api/v1/namespaces/shop/secrets")
        .unwrap();
    assert_eq!(
        list.query.get("labelSelector").map(String::as_str),
        Some("owner=helm,name=shop")
    );
}

#[tokio::test]
async fn other_chart_version_fails() {
    let api = FakeApi::start().await;
    api.add_file(&fixture_dir().join("helm-release-secrets-deployed.json"));

    let (outcome, _) = run_check(
        &api,
        "helm_release",
        "namespace: shop\nrelease: shop\nexpect_chart_version: 1.5.0",
    )
    .await;

    assert_outcome(&outcome, Status::Fail, Reason::ChartVersionMismatch);
    assert!(
        outcome.message.contains("chart version 1.5.0 is expected"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn failed_newest_revision_fails() {
    let api = FakeApi::start().await;
    api.add([
        helm_secret(9, "deployed", &minutes_ago(60), "1.4.2"),
        helm_secret(10, "failed", &minutes_ago(5), "1.5.0"),
    ]);

    let (outcome, _) = run_check(&api, "helm_release", SHOP_RELEASE).await;

    assert_outcome(&outcome, Status::Fail, Reason::ReleaseFailed);
    assert!(
        outcome
            .message
            .starts_with("release `shop` revision 10 (chart shop-1.5.0) failed"),
        "{}",
        outcome.message
    );
    assert!(
        !outcome.message.contains("not-for-messages"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn revisions_compare_as_numbers() {
    let api = FakeApi::start().await;
    // Revision 10 sorts before 9 as text; the check must pick 10.
    api.add([
        helm_secret(9, "failed", &minutes_ago(60), "1.4.2"),
        helm_secret(10, "deployed", &minutes_ago(5), "1.5.0"),
    ]);

    let (outcome, _) = run_check(&api, "helm_release", SHOP_RELEASE).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn old_pending_upgrade_fails_stuck() {
    let api = FakeApi::start().await;
    api.add([
        helm_secret(9, "deployed", &minutes_ago(120), "1.4.2"),
        helm_secret(10, "pending-upgrade", &minutes_ago(45), "1.5.0"),
    ]);

    let (stuck, _) = run_check(&api, "helm_release", SHOP_RELEASE).await;
    let (patient, _) = run_check(
        &api,
        "helm_release",
        "namespace: shop\nrelease: shop\npending_timeout: 1h",
    )
    .await;

    assert_outcome(&stuck, Status::Fail, Reason::ReleaseStuck);
    assert!(
        stuck.message.contains("has been pending-upgrade for 45m"),
        "{}",
        stuck.message
    );
    assert_outcome(&patient, Status::Fail, Reason::RolloutInProgress);
}

#[tokio::test]
async fn uninstalled_release_fails_not_deployed() {
    let api = FakeApi::start().await;
    api.add([helm_secret(3, "uninstalled", &minutes_ago(10), "1.4.2")]);

    let (outcome, _) = run_check(&api, "helm_release", SHOP_RELEASE).await;

    assert_outcome(&outcome, Status::Fail, Reason::ReleaseNotDeployed);
}

#[tokio::test]
async fn missing_release_fails_not_found() {
    let api = FakeApi::start().await;

    let (outcome, _) = run_check(&api, "helm_release", SHOP_RELEASE).await;

    assert_outcome(&outcome, Status::Fail, Reason::ObjectNotFound);
}

#[tokio::test]
async fn corrupt_release_data_is_error() {
    let api = FakeApi::start().await;
    let mut secret = helm_secret(1, "deployed", &minutes_ago(10), "1.4.2");
    secret["data"]["release"] = json!("bm90IGd6aXA=");
    api.add([secret]);

    let (outcome, _) = run_check(&api, "helm_release", SHOP_RELEASE).await;

    assert_outcome(&outcome, Status::Error, Reason::InvalidResponse);
}

#[tokio::test]
async fn forbidden_secret_list_is_error() {
    let api = FakeApi::start().await;
    api.forbid("list", "secrets", Some("shop"));

    let (outcome, _) = run_check(&api, "helm_release", SHOP_RELEASE).await;

    assert_outcome(&outcome, Status::Error, Reason::Forbidden);
    assert!(
        outcome
            .message
            .contains("may not list secrets in namespace `shop`"),
        "{}",
        outcome.message
    );
}

// --- image_scan -----------------------------------------------------------------------------

/// The documented report, for the restricted pod's container, updated `age_hours` ago.
fn vulnerability_report(critical: u64, high: u64, age_hours: i64) -> Value {
    let mut report = shape("vulnerabilityreport.json");
    report["metadata"]["labels"]["trivy-operator.container.name"] = json!("app");
    report["report"]["summary"]["criticalCount"] = json!(critical);
    report["report"]["summary"]["highCount"] = json!(high);
    report["report"]["updateTimestamp"] = json!(minutes_ago(age_hours * 60));
    report
}

#[tokio::test]
async fn clean_recent_report_passes() {
    let api = FakeApi::start().await;
    api.install_crds();
    api.add([restricted_pod(), vulnerability_report(0, 2, 1)]);

    let (outcome, metrics) = run_check(&api, "image_scan", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_eq!(
        outcome.message,
        "1 container(s) scanned within 7days: 0 critical, 2 high"
    );
    assert_metric(
        &metrics,
        "readiness_image_scan_vulnerabilities{check=\"k8s\",severity=\"critical\"} 0.0",
    );
    assert_metric(
        &metrics,
        "readiness_image_scan_vulnerabilities{check=\"k8s\",severity=\"high\"} 2.0",
    );
    assert_metric(
        &metrics,
        "readiness_image_scan_unscanned_containers{check=\"k8s\"} 0.0",
    );
    assert!(
        !metrics.contains("CVE-"),
        "a series per vulnerability:\n{metrics}"
    );
}

#[tokio::test]
async fn critical_over_threshold_fails() {
    let api = FakeApi::start().await;
    api.install_crds();
    api.add([restricted_pod(), vulnerability_report(1, 2, 1)]);

    let (outcome, metrics) = run_check(&api, "image_scan", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Fail, Reason::VulnerabilitiesFound);
    assert_eq!(
        outcome.message,
        "over the thresholds: shop/ReplicaSet/api-7dfc8c89b5 container `app`: 1 critical (maximum 0)"
    );
    assert_metric(
        &metrics,
        "readiness_image_scan_vulnerabilities{check=\"k8s\",severity=\"critical\"} 1.0",
    );
}

#[tokio::test]
async fn high_threshold_applies_when_set() {
    let api = FakeApi::start().await;
    api.install_crds();
    api.add([restricted_pod(), vulnerability_report(0, 3, 1)]);

    let (strict, _) = run_check(&api, "image_scan", "namespaces: [shop]\nmax_high: 2").await;
    let (lenient, _) = run_check(&api, "image_scan", "namespaces: [shop]\nmax_high: 3").await;

    assert_outcome(&strict, Status::Fail, Reason::VulnerabilitiesFound);
    assert!(
        strict.message.contains("3 high (maximum 2)"),
        "{}",
        strict.message
    );
    assert_outcome(&lenient, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn old_report_fails_too_old() {
    let api = FakeApi::start().await;
    api.install_crds();
    api.add([restricted_pod(), vulnerability_report(0, 0, 24 * 10)]);

    let (outcome, _) = run_check(&api, "image_scan", "namespaces: [shop]").await;
    let (relaxed, _) = run_check(&api, "image_scan", "namespaces: [shop]\nmax_age: 30d").await;

    assert_outcome(&outcome, Status::Fail, Reason::TooOld);
    assert!(
        outcome.message.contains("reports older than 7days"),
        "{}",
        outcome.message
    );
    assert_outcome(&relaxed, Status::Pass, Reason::Ok);
}

#[tokio::test]
async fn container_without_report_is_not_scanned() {
    let api = FakeApi::start().await;
    api.install_crds();
    api.add([
        restricted_pod(),
        shape("pod-root-no-securitycontext.json"),
        vulnerability_report(0, 0, 1),
    ]);

    let (outcome, metrics) = run_check(&api, "image_scan", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Fail, Reason::NotScanned);
    assert_eq!(
        outcome.message,
        "not scanned: shop/ReplicaSet/legacy-app-7c56cd65dc container `app`"
    );
    assert_metric(
        &metrics,
        "readiness_image_scan_unscanned_containers{check=\"k8s\"} 1.0",
    );
}

#[tokio::test]
async fn missing_trivy_crd_is_error() {
    let api = FakeApi::start().await;
    api.add([restricted_pod()]);

    let (outcome, metrics) = run_check(&api, "image_scan", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Error, Reason::ResourceTypeMissing);
    assert!(
        outcome
            .message
            .contains("does not serve `vulnerabilityreports.aquasecurity.github.io`")
            && outcome
                .message
                .contains("install the CustomResourceDefinition"),
        "{}",
        outcome.message
    );
    assert_metric(
        &metrics,
        "readiness_check_result{check=\"k8s\",result=\"error\"} 1",
    );
}

#[tokio::test]
async fn forbidden_report_list_is_error() {
    let api = FakeApi::start().await;
    api.install_crds();
    api.add([restricted_pod()]);
    api.forbid("list", "vulnerabilityreports", Some("shop"));

    let (outcome, _) = run_check(&api, "image_scan", "namespaces: [shop]").await;

    assert_outcome(&outcome, Status::Error, Reason::Forbidden);
    assert!(
        outcome.message.contains(
            "may not list vulnerabilityreports.aquasecurity.github.io in namespace `shop`"
        ),
        "{}",
        outcome.message
    );
}

// --- vault_injection ------------------------------------------------------------------------

/// The restricted pod as the Vault Agent Injector leaves it: annotations, init container and
/// sidecar, with the agent ready.
fn injected_pod() -> Value {
    let mut pod = restricted_pod();
    pod["metadata"]["annotations"] = json!({
        "vault.hashicorp.com/agent-inject": "true",
        "vault.hashicorp.com/role": "shop-api",
        "vault.hashicorp.com/agent-inject-secret-db-creds": "database/creds/shop",
        "vault.hashicorp.com/agent-inject-status": "injected"
    });
    pod["spec"]["initContainers"] =
        json!([{"name": "vault-agent-init", "image": "hashicorp/vault:1.17"}]);
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "vault-agent", "image": "hashicorp/vault:1.17"}));
    pod["status"]["initContainerStatuses"] = json!([{
        "name": "vault-agent-init", "ready": true, "restartCount": 0, "image": "hashicorp/vault:1.17", "imageID": "",
        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}
    }]);
    pod["status"]["containerStatuses"].as_array_mut().unwrap().push(json!({
        "name": "vault-agent", "ready": true, "restartCount": 0, "image": "hashicorp/vault:1.17", "imageID": "",
        "state": {"running": {"startedAt": "2024-05-27T08:00:03Z"}}
    }));
    pod
}

const VAULT_PODS: &str =
    "namespaces: [shop]\nselector: app.kubernetes.io/name=app\nexpect_secrets: [db-creds]";

#[tokio::test]
async fn injected_ready_agent_passes() {
    let api = FakeApi::start().await;
    api.add([injected_pod()]);

    let (outcome, metrics) = run_check(&api, "vault_injection", VAULT_PODS).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_metric(
        &metrics,
        "readiness_vault_injection_failing_pods{check=\"k8s\"} 0.0",
    );
}

#[tokio::test]
async fn injection_failures_fail_missing() {
    let cases: Vec<(&str, Value)> = vec![
        (
            "annotation `vault.hashicorp.com/agent-inject` is not \"true\"",
            restricted_pod(),
        ),
        (
            "no `vault.hashicorp.com/agent-inject-secret-*` annotation for db-creds",
            without(
                injected_pod(),
                "/metadata/annotations",
                "vault.hashicorp.com/agent-inject-secret-db-creds",
            ),
        ),
        (
            "the injector webhook did not mutate the pod",
            without(
                injected_pod(),
                "/metadata/annotations",
                "vault.hashicorp.com/agent-inject-status",
            ),
        ),
        (
            "init container `vault-agent-init` is missing",
            with(injected_pod(), "/spec/initContainers", json!([])),
        ),
        ("container `vault-agent` is missing", {
            let mut pod = injected_pod();
            pod["spec"]["containers"].as_array_mut().unwrap().pop();
            pod
        }),
    ];
    for (expected, pod) in cases {
        let api = FakeApi::start().await;
        api.add([pod]);

        let (outcome, metrics) = run_check(&api, "vault_injection", VAULT_PODS).await;

        assert_outcome(&outcome, Status::Fail, Reason::InjectionMissing);
        assert!(
            outcome.message.contains(expected),
            "{expected}: {}",
            outcome.message
        );
        assert!(
            outcome
                .message
                .starts_with("1 of 1 pod(s): shop/api-7dfc8c89b5-42xvk: "),
            "{}",
            outcome.message
        );
        assert_metric(
            &metrics,
            "readiness_vault_injection_failing_pods{check=\"k8s\"} 1.0",
        );
    }
}

#[tokio::test]
async fn unready_agent_fails_not_ready() {
    let api = FakeApi::start().await;
    api.add([with(
        injected_pod(),
        "/status/containerStatuses/1/ready",
        json!(false),
    )]);

    let (outcome, _) = run_check(&api, "vault_injection", VAULT_PODS).await;

    assert_outcome(&outcome, Status::Fail, Reason::AgentNotReady);
    assert!(
        outcome
            .message
            .contains("container `vault-agent` is not ready"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn failed_agent_init_fails_not_ready() {
    let api = FakeApi::start().await;
    api.add([with(
        injected_pod(),
        "/status/initContainerStatuses/0/state",
        json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
    )]);

    let (outcome, _) = run_check(&api, "vault_injection", VAULT_PODS).await;

    assert_outcome(&outcome, Status::Fail, Reason::AgentNotReady);
}

#[tokio::test]
async fn pre_populate_only_needs_no_sidecar() {
    let api = FakeApi::start().await;
    let mut pod = injected_pod();
    pod["metadata"]["annotations"]["vault.hashicorp.com/agent-pre-populate-only"] = json!("true");
    pod["spec"]["containers"].as_array_mut().unwrap().pop();
    pod["status"]["containerStatuses"]
        .as_array_mut()
        .unwrap()
        .pop();
    api.add([pod]);

    let (outcome, _) = run_check(&api, "vault_injection", VAULT_PODS).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
}

// --- kubernetes_old_versions ----------------------------------------------------------------

fn colour_deployment(colour: &str, replicas: i64, running: Option<i64>) -> Value {
    let mut object = complete_deployment();
    object["metadata"]["name"] = json!(format!("api-{colour}"));
    object["metadata"]["uid"] = json!(format!("uid-{colour}"));
    object["metadata"]["labels"] = json!({"app.kubernetes.io/name": "api", "colour": colour});
    object["spec"]["replicas"] = json!(replicas);
    object["spec"]["selector"] =
        json!({"matchLabels": {"app.kubernetes.io/name": "api", "colour": colour}});
    object["status"] = match running {
        Some(running) => {
            json!({"observedGeneration": 7, "replicas": running, "readyReplicas": running})
        }
        None => json!({"observedGeneration": 7}),
    };
    object
}

fn replica_set(colour: &str, revision: u32, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("api-{colour}-rev{revision}"),
            "namespace": "shop",
            "labels": {"app.kubernetes.io/name": "api", "colour": colour, "pod-template-hash": format!("rev{revision}")},
            "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("api-{colour}"), "uid": format!("uid-{colour}"), "controller": true}]
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"colour": colour}}},
        "status": if replicas > 0 { json!({"replicas": replicas}) } else { json!({}) }
    })
}

fn switched_to_green() -> Vec<Value> {
    let mut green = colour_deployment("green", 3, Some(3));
    green["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "4"});
    vec![
        green,
        colour_deployment("blue", 0, None),
        replica_set("green", 3, 0),
        replica_set("green", 4, 3),
    ]
}

const OLD_VERSIONS: &str =
    "namespace: shop\nselector: app.kubernetes.io/name=api\ncurrent: api-green";

#[tokio::test]
async fn switched_blue_green_passes() {
    let api = FakeApi::start().await;
    api.add(switched_to_green());

    let (outcome, metrics) = run_check(&api, "kubernetes_old_versions", OLD_VERSIONS).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_metric(
        &metrics,
        "readiness_kubernetes_old_version_replicas{check=\"k8s\"} 0.0",
    );
}

#[tokio::test]
async fn old_colour_with_replicas_fails() {
    let api = FakeApi::start().await;
    let mut objects = switched_to_green();
    objects[1] = colour_deployment("blue", 0, Some(2));
    api.add(objects);

    let (outcome, metrics) = run_check(&api, "kubernetes_old_versions", OLD_VERSIONS).await;

    assert_outcome(&outcome, Status::Fail, Reason::OldVersionRunning);
    assert_eq!(
        outcome.message,
        "deployment/api-blue requests 0 and runs 2 replica(s)"
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_old_version_replicas{check=\"k8s\"} 2.0",
    );
}

#[tokio::test]
async fn old_replica_set_with_replicas_fails() {
    let api = FakeApi::start().await;
    let mut objects = switched_to_green();
    objects[2] = replica_set("green", 3, 1);
    api.add(objects);

    let (outcome, _) = run_check(&api, "kubernetes_old_versions", OLD_VERSIONS).await;

    assert_outcome(&outcome, Status::Fail, Reason::OldVersionRunning);
    assert_eq!(
        outcome.message,
        "old ReplicaSet api-green-rev3 (revision 3) of `api-green` requests 1 and runs 1 replica(s)"
    );
}

#[tokio::test]
async fn missing_current_deployment_fails() {
    let api = FakeApi::start().await;
    api.add([colour_deployment("blue", 3, Some(3))]);

    let (outcome, _) = run_check(&api, "kubernetes_old_versions", OLD_VERSIONS).await;

    assert_outcome(&outcome, Status::Fail, Reason::ObjectNotFound);
}

#[tokio::test]
async fn forbidden_replica_set_list_is_error() {
    let api = FakeApi::start().await;
    api.add(switched_to_green());
    api.forbid("list", "replicasets", Some("shop"));

    let (outcome, _) = run_check(&api, "kubernetes_old_versions", OLD_VERSIONS).await;

    assert_outcome(&outcome, Status::Error, Reason::Forbidden);
    assert!(
        outcome
            .message
            .contains("may not list replicasets.apps in namespace `shop`"),
        "{}",
        outcome.message
    );
}

// --- kubernetes_config ----------------------------------------------------------------------

/// The complete Deployment with references of every form: env keys, envFrom, volumes with
/// items, a projected volume, and an optional reference to something that does not exist.
fn configured_deployment() -> Value {
    let mut object = complete_deployment();
    object["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
        {"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"name": "api-settings", "key": "log-level"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "api-db", "key": "password"}}},
        {"name": "FEATURE", "valueFrom": {"configMapKeyRef": {"name": "feature-flags", "key": "beta", "optional": true}}}
    ]);
    object["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
        json!([{"secretRef": {"name": "api-env"}}]);
    object["spec"]["template"]["spec"]["initContainers"] = json!([{
        "name": "migrate", "image": "registry.example.com/shop/migrate:1",
        "env": [{"name": "DB_URL", "valueFrom": {"secretKeyRef": {"name": "api-db", "key": "url"}}}]
    }]);
    object["spec"]["template"]["spec"]["volumes"] = json!([
        {"name": "settings", "configMap": {"name": "api-settings", "items": [{"key": "appsettings.json", "path": "appsettings.json"}]}},
        {"name": "certs", "secret": {"secretName": "api-certs"}},
        {"name": "bundle", "projected": {"sources": [{"configMap": {"name": "ca-bundle", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}
    ]);
    object
}

fn config_map(name: &str, keys: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|key| (key.to_string(), json!("value")))
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"}, "data": data})
}

fn opaque_secret(name: &str, keys: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|key| (key.to_string(), json!("c2VjcmV0LXZhbHVl")))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "namespace": "shop"}, "data": data})
}

fn complete_config() -> Vec<Value> {
    vec![
        configured_deployment(),
        config_map("api-settings", &["log-level", "appsettings.json"]),
        config_map("ca-bundle", &["ca.crt"]),
        opaque_secret("api-db", &["password", "url"]),
        opaque_secret("api-env", &["API_KEY"]),
        opaque_secret("api-certs", &["tls.crt"]),
    ]
}

#[tokio::test]
async fn complete_references_pass() {
    let api = FakeApi::start().await;
    api.add(complete_config());

    let (outcome, metrics) = run_check(&api, "kubernetes_config", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert_eq!(
        outcome.message,
        "5 ConfigMap(s) and Secret(s) referenced by 1 workload(s) exist with every referenced key"
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_config_missing_references{check=\"k8s\"} 0.0",
    );
}

#[tokio::test]
async fn missing_secret_fails_config_missing() {
    let api = FakeApi::start().await;
    let mut objects = complete_config();
    objects.retain(|object| object["metadata"]["name"] != "api-env");
    api.add(objects);

    let (outcome, metrics) = run_check(&api, "kubernetes_config", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Fail, Reason::ConfigMissing);
    assert_eq!(
        outcome.message,
        "Secret `api-env` (used by deployment/api) does not exist"
    );
    assert_metric(
        &metrics,
        "readiness_kubernetes_config_missing_references{check=\"k8s\"} 1.0",
    );
}

#[tokio::test]
async fn missing_keys_fail_with_names_only() {
    let api = FakeApi::start().await;
    let mut objects = complete_config();
    objects.retain(|object| {
        object["metadata"]["name"] != "api-db" && object["metadata"]["name"] != "ca-bundle"
    });
    objects.push(opaque_secret("api-db", &["password"]));
    objects.push(config_map("ca-bundle", &["other.crt"]));
    api.add(objects);

    let (outcome, _) = run_check(&api, "kubernetes_config", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Fail, Reason::ConfigKeyMissing);
    assert_eq!(
        outcome.message,
        "ConfigMap `ca-bundle` has no key `ca.crt` (used by deployment/api); Secret `api-db` has no key `url` (used by deployment/api)"
    );
    assert!(!outcome.message.contains("c2VjcmV0"), "{}", outcome.message);
    assert!(
        !outcome.message.contains("secret-value"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn optional_reference_may_be_missing() {
    let api = FakeApi::start().await;
    api.add(complete_config());

    let (outcome, _) = run_check(&api, "kubernetes_config", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Pass, Reason::Ok);
    assert!(
        !api.requests()
            .iter()
            .any(|request| request.path.ends_with("/configmaps/feature-flags")),
        "the optional ConfigMap is not read"
    );
}

#[tokio::test]
async fn forbidden_secret_read_names_secret() {
    let api = FakeApi::start().await;
    api.add(complete_config());
    api.forbid("get", "secrets", Some("shop"));

    let (outcome, _) = run_check(&api, "kubernetes_config", API_DEPLOYMENT).await;

    assert_outcome(&outcome, Status::Error, Reason::Forbidden);
    assert!(
        outcome
            .message
            .contains("may not get secrets `api-certs` in namespace `shop`"),
        "{}",
        outcome.message
    );
}

// --- permissions: the chart's per-kind rules, the ClusterRole and what each kind requests --------

use crate::kube_api::Permission;
use std::collections::{BTreeMap, BTreeSet};

/// Expands RBAC rules into (verb, group, resource) triples.
fn expand(rules: &Value) -> BTreeSet<Permission> {
    let mut permissions = BTreeSet::new();
    for rule in rules.as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    permissions.insert((
                        verb.as_str().unwrap().to_string(),
                        group.as_str().unwrap().to_string(),
                        resource.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    permissions
}

fn rules_by_kind() -> BTreeMap<String, BTreeSet<Permission>> {
    let values: Value = serde_saphyr::from_str(&crate::testbed::read(
        "deploy/helm/readiness-exporter/values.yaml",
    ))
    .unwrap();
    values["rbac"]["rulesByKind"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(kind, rules)| (kind.clone(), expand(rules)))
        .collect()
}

const KUBERNETES_KINDS: &[&str] = readiness_exporter::check::kubernetes::KIND_NAMES;

#[test]
fn chart_rules_cover_every_kubernetes_kind() {
    let kinds: BTreeSet<String> = rules_by_kind().into_keys().collect();
    let expected: BTreeSet<String> = KUBERNETES_KINDS
        .iter()
        .map(|kind| kind.to_string())
        .collect();
    assert_eq!(kinds, expected);
    for kind in KUBERNETES_KINDS {
        assert!(
            readiness_exporter::config::KIND_NAMES.contains(kind),
            "{kind} is not a kind"
        );
    }
}

#[test]
fn cluster_role_grants_union_of_kind_rules() {
    let text = crate::testbed::read("deploy/kubernetes/clusterrole.yaml");
    let role_text = text.split("\n---\n").next().unwrap();
    let role: Value = serde_saphyr::from_str(role_text).unwrap();
    assert_eq!(role["kind"], "ClusterRole");
    let granted = expand(&role["rules"]);
    let union: BTreeSet<Permission> = rules_by_kind().into_values().flatten().collect();
    assert_eq!(granted, union);
    let verbs: BTreeSet<&str> = granted.iter().map(|(verb, _, _)| verb.as_str()).collect();
    assert_eq!(verbs, BTreeSet::from(["get", "list"]));
}

/// Runs every body of `kind` against `api` restricted to the chart's rules for `kind`, and
/// checks that no request is denied and that every granted permission is used.
async fn assert_rules_exact(api: &FakeApi, kind: &str, bodies: &[&str]) {
    let granted = rules_by_kind().remove(kind).unwrap();
    api.restrict_to(granted.clone());
    for body in bodies {
        let (outcome, _) = run_check(api, kind, body).await;
        assert_ne!(
            outcome.status,
            Status::Error,
            "{kind} with `{body}`: {outcome:?}"
        );
    }
    assert_eq!(
        api.used_permissions(),
        granted,
        "{kind}: requested permissions differ from the chart's rules"
    );
}

#[tokio::test]
async fn workload_rules_are_exact() {
    let api = FakeApi::start().await;
    api.add([
        complete_deployment(),
        with(
            shape("statefulset-complete.json"),
            "/metadata/namespace",
            json!("shop"),
        ),
        daemon_set(4, 4),
    ]);
    assert_rules_exact(
        &api,
        "kubernetes_workload",
        &[
            API_DEPLOYMENT,
            "namespace: shop\nkind: statefulset\nname: postgres",
            "namespace: shop\nkind: daemonset\nname: node-agent",
            "namespace: shop\nselector: app.kubernetes.io/name",
        ],
    )
    .await;
}

#[tokio::test]
async fn pod_security_rules_are_exact() {
    let api = FakeApi::start().await;
    api.add([restricted_pod()]);
    assert_rules_exact(&api, "kubernetes_pod_security", &[SHOP_PODS]).await;
}

#[tokio::test]
async fn network_policy_rules_are_exact() {
    let api = FakeApi::start().await;
    api.add([
        policy(
            "default-deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        restricted_pod(),
    ]);
    assert_rules_exact(&api, "kubernetes_network_policy", &["namespaces: [shop]"]).await;
}

#[tokio::test]
async fn ingress_tls_rules_are_exact() {
    let api = FakeApi::start().await;
    let leaf = ingress_ca().valid_leaf(&["api.example.com"]);
    api.add([
        shape("ingress-tls.json"),
        tls_secret("api-example-com-tls", &leaf),
    ]);
    assert_rules_exact(&api, "kubernetes_ingress_tls", &[SHOP_INGRESSES]).await;
}

#[tokio::test]
async fn rbac_rules_are_exact() {
    let api = FakeApi::start().await;
    api.add(least_privilege_rbac());
    assert_rules_exact(&api, "kubernetes_rbac", &["namespaces: [shop]"]).await;
}

#[tokio::test]
async fn helm_release_rules_are_exact() {
    let api = FakeApi::start().await;
    api.add_file(&fixture_dir().join("helm-release-secrets-deployed.json"));
    assert_rules_exact(&api, "helm_release", &[SHOP_RELEASE]).await;
}

#[tokio::test]
async fn image_scan_rules_are_exact() {
    let api = FakeApi::start().await;
    api.install_crds();
    api.add([restricted_pod(), vulnerability_report(0, 0, 1)]);
    assert_rules_exact(&api, "image_scan", &["namespaces: [shop]"]).await;
}

#[tokio::test]
async fn vault_injection_rules_are_exact() {
    let api = FakeApi::start().await;
    api.add([injected_pod()]);
    assert_rules_exact(&api, "vault_injection", &[VAULT_PODS]).await;
}

#[tokio::test]
async fn old_versions_rules_are_exact() {
    let api = FakeApi::start().await;
    api.add(switched_to_green());
    assert_rules_exact(&api, "kubernetes_old_versions", &[OLD_VERSIONS]).await;
}

#[tokio::test]
async fn config_rules_are_exact() {
    let api = FakeApi::start().await;
    api.add(complete_config());
    assert_rules_exact(
        &api,
        "kubernetes_config",
        &[
            API_DEPLOYMENT,
            "namespace: shop\nselector: app.kubernetes.io/name=api",
            "namespace: shop\nkind: statefulset\nname: api",
            "namespace: shop\nkind: daemonset\nname: api",
        ],
    )
    .await;
}

// --- kubernetes_workload against `kubectl rollout status` ---------------------------------------

/// Runs `kubectl rollout status --watch=false` and returns whether it reports a finished
/// rollout, with its output.
fn kubectl_rollout_complete(
    api: &FakeApi,
    cache: &std::path::Path,
    workload: &str,
    namespace: &str,
) -> (bool, String) {
    let output = kubectl(
        api,
        cache,
        &[
            "rollout",
            "status",
            workload,
            "-n",
            namespace,
            "--watch=false",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let complete = output.status.success()
        && (text.contains("successfully rolled out")
            || text.contains("partitioned roll out complete"));
    (complete, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_verdicts_match_kubectl_rollout_status() {
    if require_tools(
        "workload_verdicts_match_kubectl_rollout_status",
        &["kubectl"],
    )
    .is_none()
    {
        return;
    }
    let statefulset = |object: Value| with(object, "/metadata/namespace", json!("shop"));
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "deployment/api",
            complete_deployment(),
            "kind: deployment\nname: api",
        ),
        (
            "deployment/api",
            shape("deployment-mid-rollout.json"),
            "kind: deployment\nname: api",
        ),
        (
            "deployment/api",
            with(complete_deployment(), "/metadata/generation", json!(8)),
            "kind: deployment\nname: api",
        ),
        (
            "deployment/api",
            with(complete_deployment(), "/status/availableReplicas", json!(2)),
            "kind: deployment\nname: api",
        ),
        (
            "deployment/api",
            with(complete_deployment(), "/status/replicas", json!(4)),
            "kind: deployment\nname: api",
        ),
        (
            "deployment/checkout",
            shape("deployment-progress-deadline-exceeded.json"),
            "kind: deployment\nname: checkout",
        ),
        (
            "statefulset/postgres",
            statefulset(shape("statefulset-complete.json")),
            "kind: statefulset\nname: postgres",
        ),
        (
            "statefulset/postgres",
            statefulset(shape("statefulset-rolling-in-progress.json")),
            "kind: statefulset\nname: postgres",
        ),
        (
            "statefulset/postgres",
            statefulset(partitioned(2, 1)),
            "kind: statefulset\nname: postgres",
        ),
        (
            "statefulset/postgres",
            statefulset(partitioned(1, 1)),
            "kind: statefulset\nname: postgres",
        ),
        (
            "daemonset/node-agent",
            daemon_set(4, 4),
            "kind: daemonset\nname: node-agent",
        ),
        (
            "daemonset/node-agent",
            daemon_set(2, 4),
            "kind: daemonset\nname: node-agent",
        ),
        (
            "daemonset/node-agent",
            daemon_set(4, 3),
            "kind: daemonset\nname: node-agent",
        ),
    ];
    for (workload, object, body) in cases {
        let api = FakeApi::start().await;
        api.add([
            object,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        ]);
        let cache = tempfile::tempdir().unwrap();

        let (kubectl_complete, text) =
            kubectl_rollout_complete(&api, cache.path(), workload, "shop");
        let (outcome, _) = run_check(
            &api,
            "kubernetes_workload",
            &format!("namespace: shop\n{body}"),
        )
        .await;

        assert_eq!(
            outcome.status == Status::Pass,
            kubectl_complete,
            "{workload}: the check says {outcome:?}, kubectl says {text}"
        );
    }
}
