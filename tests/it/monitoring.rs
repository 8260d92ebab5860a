//! The Prometheus and Alertmanager kinds against a real Prometheus and Alertmanager, and against
//! local servers for states a healthy pair does not show (warnings, stale groups, settling).

use readiness_exporter::check::{Reason, Status};

use crate::monitoring_support::{stack, Stack};
use crate::support::{
    assert_metric, assert_no_series, config_problems, respond, serve_fn, LoadedChecks,
};

/// Formats one check item whose kind block is the YAML flow map `block`.
pub fn item(id: &str, kind: &str, block: &str) -> String {
    format!(
        "  - id: {id}\n    title: \"{id}\"\n    section: Monitoring\n    severity: critical\n    {kind}: {block}\n"
    )
}

/// Loads `items` under a `checks:` key with a 15 s timeout.
pub fn load(items: &[String]) -> LoadedChecks {
    LoadedChecks::load(&format!(
        "global:\n  interval: 60s\n  timeout: 15s\nchecks:\n{}",
        items.concat()
    ))
}

fn prometheus(stack: &Stack) -> String {
    format!("{{ url: \"{}\" }}", stack.prometheus)
}

fn alertmanager(stack: &Stack) -> String {
    format!("{{ url: \"{}\" }}", stack.alertmanager)
}

#[tokio::test]
async fn targets_all_up_pass() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "scraped",
        "prometheus_targets",
        &format!("{{ server: {}, jobs: [prometheus] }}", prometheus(stack)),
    )]);
    let outcome = checks.run("scraped").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(outcome.message, "prometheus: 1/1 up");
    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_prometheus_job_targets{check=\"scraped\",job=\"prometheus\"} 1.0",
    );
    assert_metric(
        &metrics,
        "readiness_prometheus_job_targets_up{check=\"scraped\",job=\"prometheus\"} 1.0",
    );
}

#[tokio::test]
async fn down_target_fails_with_scrape_error() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "mixed",
        "prometheus_targets",
        &format!(
            "{{ server: {}, jobs: [prometheus, mixed] }}",
            prometheus(stack)
        ),
    )]);
    let outcome = checks.run("mixed").await;
    assert_eq!(outcome.status, Status::Fail, "{}", outcome.message);
    assert_eq!(outcome.reason, Reason::TargetsDown);
    let down = format!("127.0.0.1:{}", stack.closed_port);
    assert!(
        outcome.message.contains(&format!(
            "job `mixed` has 1 of 2 targets up, 2 required; down: {down} ("
        )),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("connection refused"),
        "{}",
        outcome.message
    );
    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_prometheus_job_targets{check=\"mixed\",job=\"mixed\"} 2.0",
    );
    assert_metric(
        &metrics,
        "readiness_prometheus_job_targets_up{check=\"mixed\",job=\"mixed\"} 1.0",
    );
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"mixed\",reason=\"targets_down\"} 1",
    );
}

#[tokio::test]
async fn min_up_accepts_partial_job() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "partial",
        "prometheus_targets",
        &format!(
            "{{ server: {}, jobs: [mixed], min_up: 1 }}",
            prometheus(stack)
        ),
    )]);
    let outcome = checks.run("partial").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(outcome.value, Some(1.0));
}

#[tokio::test]
async fn job_without_targets_fails() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "absent",
        "prometheus_targets",
        &format!("{{ server: {}, jobs: [payments] }}", prometheus(stack)),
    )]);
    let outcome = checks.run("absent").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::NoTargets);
    assert!(
        outcome
            .message
            .contains("job `payments` has no active targets"),
        "{}",
        outcome.message
    );
    assert_metric(
        &checks.metrics(),
        "readiness_prometheus_job_targets{check=\"absent\",job=\"payments\"} 0.0",
    );
}

#[tokio::test]
async fn healthy_rule_group_passes() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "rules",
        "prometheus_rules",
        &format!(
            "{{ server: {}, groups: [availability] }}",
            prometheus(stack)
        ),
    )]);
    let outcome = checks.run("rules").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_prometheus_rule_group_unhealthy_rules{check=\"rules\",group=\"availability\"} 0.0",
    );
    let evaluated = metrics
        .lines()
        .find(|line| {
            line.starts_with("readiness_prometheus_rule_group_last_evaluation_timestamp_seconds{check=\"rules\",group=\"availability\"} ")
        })
        .unwrap_or_else(|| panic!("no last evaluation series in:\n{metrics}"));
    let seconds: f64 = evaluated.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(seconds > 1.7e9, "{evaluated}");
}

#[tokio::test]
async fn broken_rule_group_fails_with_error() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "rules",
        "prometheus_rules",
        &format!(
            "{{ server: {}, groups: [availability, broken] }}",
            prometheus(stack)
        ),
    )]);
    let outcome = checks.run("rules").await;
    assert_eq!(outcome.status, Status::Fail, "{}", outcome.message);
    assert_eq!(outcome.reason, Reason::RuleEvaluationFailed);
    assert!(
        outcome
            .message
            .starts_with("rule `broken:many_to_many` of group `broken`"),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("many-to-many"),
        "{}",
        outcome.message
    );
    assert_eq!(outcome.value, Some(1.0));
    assert_metric(
        &checks.metrics(),
        "readiness_prometheus_rule_group_unhealthy_rules{check=\"rules\",group=\"broken\"} 1.0",
    );
}

#[tokio::test]
async fn missing_rule_group_fails() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "rules",
        "prometheus_rules",
        &format!(
            "{{ server: {}, groups: [slo-burn-rate] }}",
            prometheus(stack)
        ),
    )]);
    let outcome = checks.run("rules").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::RuleGroupMissing);
    assert!(
        outcome.message.contains("`slo-burn-rate` is not loaded"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn active_alertmanager_passes_and_minimum_fails() {
    let Some(stack) = stack() else { return };
    let checks = load(&[
        item(
            "one",
            "prometheus_alertmanagers",
            &format!("{{ server: {} }}", prometheus(stack)),
        ),
        item(
            "two",
            "prometheus_alertmanagers",
            &format!("{{ server: {}, min_active: 2 }}", prometheus(stack)),
        ),
    ]);
    let one = checks.run("one").await;
    assert_eq!(one.status, Status::Pass, "{}", one.message);
    let two = checks.run("two").await;
    assert_eq!(two.status, Status::Fail);
    assert_eq!(two.reason, Reason::TooFewAlertmanagers);
    assert!(
        two.message
            .starts_with("1 active Alertmanager(s), 2 required"),
        "{}",
        two.message
    );
    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_prometheus_alertmanagers_active{check=\"one\"} 1.0",
    );
    assert_metric(
        &metrics,
        "readiness_prometheus_alertmanagers_active{check=\"two\"} 1.0",
    );
}

#[tokio::test]
async fn query_within_bounds_passes() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "query",
        "prometheus_query",
        &format!(
            "{{ server: {}, query: 'sum(up{{job=\"prometheus\"}})', min: 1, max: 1 }}",
            prometheus(stack)
        ),
    )]);
    let outcome = checks.run("query").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(outcome.message, "the query returned 1, within 1 to 1");
    assert_metric(
        &checks.metrics(),
        "readiness_prometheus_query_value{check=\"query\"} 1.0",
    );
}

#[tokio::test]
async fn query_out_of_bounds_fails() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "query",
        "prometheus_query",
        &format!(
            "{{ server: {}, query: 'sum(up{{job=\"mixed\"}})', min: 2 }}",
            prometheus(stack)
        ),
    )]);
    let outcome = checks.run("query").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::ValueOutOfRange);
    assert_eq!(
        outcome.message,
        "the query returned 1 is below the minimum 2"
    );
    assert_metric(
        &checks.metrics(),
        "readiness_prometheus_query_value{check=\"query\"} 1.0",
    );
}

#[tokio::test]
async fn empty_and_nan_follow_policies() {
    let Some(stack) = stack() else { return };
    let server = prometheus(stack);
    let checks = load(&[
        item(
            "empty_fails",
            "prometheus_query",
            &format!("{{ server: {server}, query: 'up{{job=\"payments\"}}', min: 1 }}"),
        ),
        item(
            "empty_passes",
            "prometheus_query",
            &format!(
                "{{ server: {server}, query: 'up{{job=\"payments\"}}', max: 0, on_empty: pass }}"
            ),
        ),
        item(
            "nan_fails",
            "prometheus_query",
            &format!("{{ server: {server}, query: '0/0', max: 0.01 }}"),
        ),
        item(
            "nan_errors",
            "prometheus_query",
            &format!("{{ server: {server}, query: '0/0', max: 0.01, on_nan: error }}"),
        ),
    ]);
    let empty_fails = checks.run("empty_fails").await;
    assert_eq!(empty_fails.status, Status::Fail);
    assert_eq!(empty_fails.reason, Reason::EmptyResult);
    let empty_passes = checks.run("empty_passes").await;
    assert_eq!(
        empty_passes.status,
        Status::Pass,
        "{}",
        empty_passes.message
    );
    let nan_fails = checks.run("nan_fails").await;
    assert_eq!(nan_fails.status, Status::Fail);
    assert_eq!(nan_fails.reason, Reason::NanValue);
    assert_eq!(nan_fails.message, "the query returned NaN (on_nan: fail)");
    let nan_errors = checks.run("nan_errors").await;
    assert_eq!(nan_errors.status, Status::Error);
    assert_eq!(nan_errors.reason, Reason::NanValue);
    let metrics = checks.metrics();
    for id in ["empty_fails", "empty_passes", "nan_fails", "nan_errors"] {
        assert_no_series(&metrics, "readiness_prometheus_query_value", id);
    }
}

#[tokio::test]
async fn query_errors_are_never_values() {
    let Some(stack) = stack() else { return };
    let server = prometheus(stack);
    let checks = load(&[
        item(
            "syntax",
            "prometheus_query",
            &format!("{{ server: {server}, query: 'sum(up', min: 0 }}"),
        ),
        item(
            "several",
            "prometheus_query",
            &format!("{{ server: {server}, query: 'up', min: 0 }}"),
        ),
    ]);
    let syntax = checks.run("syntax").await;
    assert_eq!(syntax.status, Status::Error);
    assert_eq!(syntax.reason, Reason::QueryFailed);
    assert!(
        syntax
            .message
            .starts_with("`/api/v1/query` returned an error (bad_data, status 400): "),
        "{}",
        syntax.message
    );
    assert!(syntax.message.contains("parse error"), "{}", syntax.message);
    assert_eq!(syntax.value, None);
    let several = checks.run("several").await;
    assert_eq!(several.status, Status::Error);
    assert_eq!(several.reason, Reason::InvalidResponse);
    assert!(
        several.message.contains("returned 3 series"),
        "{}",
        several.message
    );
    let metrics = checks.metrics();
    assert_no_series(&metrics, "readiness_prometheus_query_value", "syntax");
    assert_no_series(&metrics, "readiness_prometheus_query_value", "several");
}

#[tokio::test]
async fn single_alertmanager_passes_with_receivers() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "am",
        "alertmanager",
        &format!(
            "{{ server: {}, replicas: 1, receivers: [team-api] }}",
            alertmanager(stack)
        ),
    )]);
    let outcome = checks.run("am").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(
        outcome.message,
        "ready, cluster disabled with 0 peer(s), 1 receiver(s) configured"
    );
    assert_metric(
        &checks.metrics(),
        "readiness_alertmanager_cluster_peers{check=\"am\"} 0.0",
    );
}

#[tokio::test]
async fn disabled_cluster_fails_where_expected() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "am",
        "alertmanager",
        &format!("{{ server: {}, replicas: 3 }}", alertmanager(stack)),
    )]);
    let outcome = checks.run("am").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::ClusterNotReady);
    assert!(
        outcome.message.starts_with("clustering is disabled"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn missing_receiver_fails() {
    let Some(stack) = stack() else { return };
    let checks = load(&[item(
        "am",
        "alertmanager",
        &format!(
            "{{ server: {}, replicas: 1, receivers: [team-api, pager] }}",
            alertmanager(stack)
        ),
    )]);
    let outcome = checks.run("am").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::ReceiverMissing);
    assert_eq!(
        outcome.message,
        "receiver(s) `pager` not in the Alertmanager configuration; 2 receiver(s) are configured"
    );
}

#[tokio::test]
async fn settling_cluster_fails() {
    let server = serve_fn(|request| match request.uri().path() {
        "/-/ready" => respond(200, "OK"),
        "/api/v2/status" => respond(
            200,
            r#"{"cluster":{"name":"a","peers":[{"address":"10.0.0.1:9094","name":"a"},{"address":"10.0.0.2:9094","name":"b"}],"status":"settling"},"config":{"original":""},"uptime":"2024-05-27T06:00:00.000Z","versionInfo":{}}"#,
        ),
        _ => respond(404, "not found"),
    })
    .await;
    let checks = load(&[item(
        "am",
        "alertmanager",
        &format!(
            "{{ server: {{ url: \"{}\" }}, replicas: 2 }}",
            server.url("http", "")
        ),
    )]);
    let outcome = checks.run("am").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::ClusterNotReady);
    assert!(
        outcome
            .message
            .starts_with("the cluster is still settling (2 peer(s))"),
        "{}",
        outcome.message
    );
    assert_metric(
        &checks.metrics(),
        "readiness_alertmanager_cluster_peers{check=\"am\"} 2.0",
    );
}

#[tokio::test]
async fn unready_alertmanager_fails() {
    let server = serve_fn(|_| respond(503, "Service Unavailable")).await;
    let checks = load(&[item(
        "am",
        "alertmanager",
        &format!(
            "{{ server: {{ url: \"{}\" }}, replicas: 1 }}",
            server.url("http", "")
        ),
    )]);
    let outcome = checks.run("am").await;
    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::NotReady);
    assert_eq!(
        outcome.message,
        "`/-/ready` returned status 503: `Service Unavailable`"
    );
}

const STALE_RULES: &str = include_str!("fixtures/monitoring/rules-stale.json");

#[tokio::test]
async fn stale_and_unevaluated_groups_fail() {
    let server = serve_fn(|_| respond(200, STALE_RULES)).await;
    let block = |groups: &str| {
        format!(
            "{{ server: {{ url: \"{}\" }}, groups: [{groups}] }}",
            server.url("http", "")
        )
    };
    let checks = load(&[
        item("stale", "prometheus_rules", &block("kubernetes-apps")),
        item("never", "prometheus_rules", &block("new-group")),
    ]);
    let stale = checks.run("stale").await;
    assert_eq!(stale.status, Status::Fail);
    assert_eq!(stale.reason, Reason::TooOld);
    assert!(
        stale.message.contains("more than 1m 30s"),
        "{}",
        stale.message
    );
    let never = checks.run("never").await;
    assert_eq!(never.status, Status::Fail);
    assert_eq!(never.reason, Reason::NotEvaluated);
    let metrics = checks.metrics();
    assert_metric(
        &metrics,
        "readiness_prometheus_rule_group_last_evaluation_timestamp_seconds{check=\"stale\",group=\"kubernetes-apps\"} 1716796812.1",
    );
    assert_no_series(
        &metrics,
        "readiness_prometheus_rule_group_last_evaluation_timestamp_seconds",
        "never",
    );
}

#[tokio::test]
async fn query_warnings_are_not_judged() {
    let server = serve_fn(|_| {
        respond(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1716796812.781,"0.02"]}]},"warnings":["remote read of store https://store.internal:10901?token=abc failed: partial response"]}"#,
        )
    })
    .await;
    let block = |policy: &str| {
        format!(
            "{{ server: {{ url: \"{}\" }}, query: 'sum(rate(x[5m]))', max: 0.05{policy} }}",
            server.url("http", "")
        )
    };
    let checks = load(&[
        item("strict", "prometheus_query", &block("")),
        item(
            "lenient",
            "prometheus_query",
            &block(", on_warning: evaluate"),
        ),
    ]);
    let strict = checks.run("strict").await;
    assert_eq!(strict.status, Status::Error);
    assert_eq!(strict.reason, Reason::QueryWarnings);
    assert!(
        strict.message.contains("partial response"),
        "{}",
        strict.message
    );
    assert!(!strict.message.contains("token=abc"), "{}", strict.message);
    let lenient = checks.run("lenient").await;
    assert_eq!(lenient.status, Status::Pass, "{}", lenient.message);
    assert_eq!(lenient.value, Some(0.02));
    let metrics = checks.metrics();
    assert_no_series(&metrics, "readiness_prometheus_query_value", "strict");
    assert_metric(
        &metrics,
        "readiness_prometheus_query_value{check=\"lenient\"} 0.02",
    );
}

#[tokio::test]
async fn api_failures_map_to_errors() {
    let targets = include_str!("fixtures/monitoring/targets-all-up.json");
    let server = serve_fn(move |request| {
        match request
            .headers()
            .get("authorization")
            .map(|value| value.to_str().unwrap())
        {
            // `prom:secret-Pw-31` in base64.
            Some("Basic cHJvbTpzZWNyZXQtUHctMzE=") => respond(200, targets),
            Some(_) => respond(401, "Unauthorized"),
            None => respond(200, "<html>login</html>"),
        }
    })
    .await;
    let url = server.url("http", "");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good"), "secret-Pw-31\n").unwrap();
    std::fs::write(dir.path().join("bad"), "wrong-Pw-77\n").unwrap();
    let block = |server: String| format!("{{ server: {server}, jobs: [api] }}");
    let checks = LoadedChecks::load_in(
        dir,
        &format!(
            "checks:\n{}",
            [
                item("good", "prometheus_targets", &block(format!("{{ url: \"{url}\", basic_auth: {{ username: prom, password: {{ file: \"{{dir}}/good\" }} }} }}"))),
                item("bad", "prometheus_targets", &block(format!("{{ url: \"{url}\", basic_auth: {{ username: prom, password: {{ file: \"{{dir}}/bad\" }} }} }}"))),
                item("none", "prometheus_targets", &block(format!("{{ url: \"{url}\" }}"))),
                item("small", "prometheus_targets", &block(format!("{{ url: \"{url}\", basic_auth: {{ username: prom, password: {{ file: \"{{dir}}/good\" }} }}, max_body_bytes: 100 }}"))),
                item("unset", "prometheus_targets", &block(format!("{{ url: \"{url}\", bearer_token: {{ env: READINESS_TEST_UNSET_TOKEN }} }}"))),
                item("refused", "prometheus_targets", &block(format!("{{ url: \"http://127.0.0.1:{}\" }}", crate::support::closed_port().await))),
            ]
            .concat()
        ),
    );
    let good = checks.run("good").await;
    assert_eq!(good.status, Status::Pass, "{}", good.message);
    let expected = [
        ("bad", Reason::Unauthorized),
        ("none", Reason::InvalidResponse),
        ("small", Reason::BodyTooLarge),
        ("unset", Reason::SecretUnavailable),
        ("refused", Reason::ConnectionRefused),
    ];
    for (id, reason) in expected {
        let outcome = checks.run(id).await;
        assert_eq!(outcome.status, Status::Error, "{id}: {}", outcome.message);
        assert_eq!(outcome.reason, reason, "{id}: {}", outcome.message);
        assert!(
            !outcome.message.contains("Pw-"),
            "{id}: {}",
            outcome.message
        );
    }
    let metrics = checks.metrics();
    assert!(!metrics.contains("Pw-"));
    assert_no_series(&metrics, "readiness_prometheus_job_targets", "bad");
}

#[test]
fn invalid_monitoring_blocks_are_rejected() {
    let problems = config_problems(&format!(
        "checks:\n{}",
        [
            item("a", "prometheus_targets", "{ server: { url: \"ftp://p\" }, jobs: [] }"),
            item("b", "prometheus_query", "{ server: { url: \"http://p\", bearer_token: { env: T }, basic_auth: { username: u, password: { env: P } } }, query: up, min: 2, max: 1, on_nan: ignore }"),
            item("c", "alertmanager", "{ server: { url: \"http://a\" }, replicas: 0 }"),
        ]
        .concat()
    ));
    let expected = [
        "check `a`, field `prometheus_targets.server.url`: URL `ftp://p` has scheme `ftp`; use http or https",
        "check `a`, field `prometheus_targets.jobs`: list is empty; name at least one job, as in the `job` label of `up`",
        "check `b`, field `prometheus_query.server.basic_auth`: `bearer_token` and `basic_auth` both set; a request carries one `Authorization` header, so keep one of them",
        "check `b`, field `prometheus_query.min`: `min` (2) is larger than `max` (1), so no value can pass; swap them",
        "check `b`, field `prometheus_query.on_nan`: unknown policy `ignore`; use pass, fail or error",
        "check `c`, field `alertmanager.replicas`: `0` replicas cannot be checked; use 1 for a single Alertmanager or the size of the cluster",
    ];
    for message in expected {
        assert!(
            problems.iter().any(|problem| problem.ends_with(message)),
            "missing `{message}` in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}
