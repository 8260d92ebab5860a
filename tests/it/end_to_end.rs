//! End to end: the exporter, a real Prometheus that scrapes it and evaluates the shipped rules
//! (with `for` shortened), and a real Alertmanager with the example routing that delivers to a
//! webhook receiver inside the test. A failing critical check must page with its title,
//! severity, summary and runbook link, and the page must resolve once the target is repaired.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::support;
use crate::testbed::{read, require_tools};

const EXTERNAL_URL: &str = "https://readiness.example.com/";
const RUNBOOK: &str = "https://runbooks.example.com/payments-down";

/// Notifications received by the webhook, with the path (the receiver's name) they came to.
type Inbox = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on 127.0.0.1 that stores every JSON body it is sent.
async fn webhook_receiver(inbox: Inbox) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let inbox = inbox.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let inbox = inbox.clone();
                    async move {
                        let path = request.uri().path().trim_start_matches('/').to_string();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let payload: Value = serde_json::from_slice(&body).unwrap();
                        inbox.lock().unwrap().push((path, payload));
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// A free port on 127.0.0.1 for a child process to listen on.
async fn free_port() -> u16 {
    support::closed_port().await
}

/// The shipped rules with every `for` shortened to one second.
fn shortened_rules() -> String {
    let rules = read("alerts/readiness.rules.yaml");
    let pattern = regex::Regex::new(r"(?m)^(\s+)for: \d+[smh]$").unwrap();
    let shortened = pattern.replace_all(&rules, "${1}for: 1s").into_owned();
    assert_ne!(shortened, rules, "no `for:` found in the rules");
    shortened
}

/// The example Alertmanager configuration with its routing and inhibition unchanged, every
/// receiver replaced by a webhook to `hook` (path = receiver name), and the waits shortened.
fn alertmanager_config(hook: std::net::SocketAddr) -> Value {
    let mut config: Value =
        serde_saphyr::from_str(&read("alerts/alertmanager.example.yaml")).unwrap();
    let route = config["route"].as_object_mut().unwrap();
    route.insert("group_wait".into(), json!("0s"));
    route.insert("group_interval".into(), json!("1s"));
    route.insert("repeat_interval".into(), json!("1h"));
    for receiver in config["receivers"].as_array_mut().unwrap() {
        let name = receiver["name"].as_str().unwrap().to_string();
        *receiver = json!({
            "name": name,
            "webhook_configs": [{
                "url": format!("http://{hook}/{name}"),
                "send_resolved": true,
            }],
        });
    }
    config
}

/// Polls `condition` every 100 ms; returns false once `limit` has passed without it holding.
async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

fn spawn(program: &Path, args: &[String], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(program)
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", program.display()))
}

/// The notifications about `check` with `status` that reached `receiver`.
fn notifications(inbox: &Inbox, receiver: &str, check: &str, status: &str) -> Vec<Value> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == receiver)
        .flat_map(|(_, payload)| payload["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|alert| alert["labels"]["check"] == check && alert["status"] == status)
        .collect()
}

fn logs(dir: &Path) -> String {
    ["prometheus.log", "alertmanager.log"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            format!(
                "--- {name}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_critical_check_pages_and_resolves() {
    let Some(tools) = require_tools(
        "failing_critical_check_pages_and_resolves",
        &["prometheus", "prometheus-alertmanager"],
    ) else {
        return;
    };
    let (prometheus, alertmanager): (PathBuf, PathBuf) = (tools[0].clone(), tools[1].clone());

    // The checked service: broken until the test repairs it.
    let broken = Arc::new(AtomicBool::new(true));
    let target_state = broken.clone();
    let target = support::serve_fn(move |_| {
        if target_state.load(Ordering::SeqCst) {
            support::respond(500, "payments are down")
        } else {
            support::respond(200, "ok")
        }
    })
    .await;

    let exporter = support::start_exporter(&format!(
        r#"
global:
  interval: 1s
  timeout: 500ms
  jitter: 100ms
  external_url: {EXTERNAL_URL}
checks:
  - id: payments_service_up
    title: "Deploy applications: the payments service answers"
    section: "II. Deployment Execution"
    severity: critical
    runbook_url: {RUNBOOK}
    http:
      url: {url}
  - id: cors_origins
    title: "CORS origins: the API allows the production frontend"
    section: "I. Pre-Deployment"
    severity: warning
    http:
      url: {cors_url}
"#,
        url = target.url("http", "/health"),
        cors_url = target.url("http", "/cors")
    ))
    .await;
    exporter.wait_ready().await;

    let inbox: Inbox = Arc::default();
    let (hook, _hook_task) = webhook_receiver(inbox.clone()).await;
    let dir = tempfile::tempdir().unwrap();

    let am_port = free_port().await;
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(&am_config, alertmanager_config(hook).to_string()).unwrap();
    let _alertmanager = spawn(
        &alertmanager,
        &[
            format!("--config.file={}", am_config.display()),
            format!("--storage.path={}", dir.path().join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            format!("--web.external-url=http://127.0.0.1:{am_port}/"),
            "--cluster.listen-address=".to_string(),
        ],
        &dir.path().join("alertmanager.log"),
    );

    let rules = dir.path().join("readiness.rules.yaml");
    std::fs::write(&rules, shortened_rules()).unwrap();
    let prom_port = free_port().await;
    let prom_config = dir.path().join("prometheus.yml");
    let scrape = json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules.display().to_string()],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [format!("127.0.0.1:{am_port}")]}]}]},
        "scrape_configs": [{
            "job_name": "readiness-exporter",
            "static_configs": [{"targets": [exporter.addr.to_string()]}],
        }],
    });
    std::fs::write(&prom_config, scrape.to_string()).unwrap();
    let _prometheus = spawn(
        &prometheus,
        &[
            format!("--config.file={}", prom_config.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom-data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            format!("--web.external-url=http://127.0.0.1:{prom_port}/"),
        ],
        &dir.path().join("prometheus.log"),
    );

    // The page: Prometheus needs about 6 s for its first scrape, then `for: 1s` and the
    // Alertmanager's group_wait of 0 s. The limit only bounds a hung run.
    let limit = Duration::from_secs(90);
    let paged = wait_for(limit, || {
        !notifications(&inbox, "readiness-pager", "payments_service_up", "firing").is_empty()
    })
    .await;
    assert!(paged, "no page within {limit:?}\n{}", logs(dir.path()));
    let page = notifications(&inbox, "readiness-pager", "payments_service_up", "firing")[0].clone();
    let labels = &page["labels"];
    assert_eq!(labels["alertname"], "ReadinessCheckFailing");
    assert_eq!(labels["check"], "payments_service_up");
    assert_eq!(
        labels["title"],
        "Deploy applications: the payments service answers"
    );
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["section"], "II. Deployment Execution");
    let annotations = &page["annotations"];
    assert_eq!(
        annotations["summary"],
        "Readiness check payments_service_up is failing: Deploy applications: the payments service answers"
    );
    assert_eq!(annotations["runbook_url"], RUNBOOK);
    assert_eq!(
        annotations["status_page"],
        format!("{EXTERNAL_URL}#check-payments_service_up")
    );
    let description = annotations["description"].as_str().unwrap();
    assert!(
        description.contains("was evaluated and is not met"),
        "{description}"
    );
    assert!(
        description.contains("The check is blocking"),
        "{description}"
    );
    // A critical page never goes to the ticket receiver as well, and a failing warning check
    // opens a ticket without paging.
    assert!(notifications(&inbox, "readiness-ticket", "payments_service_up", "firing").is_empty());
    let ticketed = wait_for(limit, || {
        !notifications(&inbox, "readiness-ticket", "cors_origins", "firing").is_empty()
    })
    .await;
    assert!(
        ticketed,
        "no ticket for the warning check within {limit:?}\n{}",
        logs(dir.path())
    );
    let ticket = notifications(&inbox, "readiness-ticket", "cors_origins", "firing")[0].clone();
    assert_eq!(ticket["labels"]["severity"], "warning");
    assert_eq!(
        ticket["annotations"]["runbook_url"],
        format!("{EXTERNAL_URL}#check-cors_origins")
    );
    assert!(notifications(&inbox, "readiness-pager", "cors_origins", "firing").is_empty());

    // Repair the target: the next run passes and the page resolves.
    broken.store(false, Ordering::SeqCst);
    let resolved = wait_for(limit, || {
        !notifications(&inbox, "readiness-pager", "payments_service_up", "resolved").is_empty()
    })
    .await;
    assert!(
        resolved,
        "no resolved notification within {limit:?}\n{}",
        logs(dir.path())
    );
    let (status, _, metrics) = support::get(&exporter.url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("readiness_check_success{check=\"payments_service_up\"} 1"),
        "{metrics}"
    );
}
