//! A real Prometheus and Alertmanager for the monitoring tests, started once per test process.
//!
//! Both run on free ports of 127.0.0.1 with their storage in a temporary directory. Prometheus
//! scrapes itself (job `prometheus`, one target that is up) and job `mixed` (the Alertmanager,
//! which is up, and a closed port, which is down) every second, evaluates a healthy rule group
//! and a broken one every second, and sends alerts to the Alertmanager. Setup returns once the
//! first scrapes and rule evaluations have landed, which the Prometheus API shows. A watchdog
//! shell stops both processes by PID and removes the directory when the test process exits, so
//! a stack shared through a `OnceLock` (which never drops) does not outlive the test run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The receiver names in the Alertmanager configuration.
pub const RECEIVERS: [&str; 2] = ["team-api", "null"];

/// A running Prometheus and Alertmanager pair.
pub struct Stack {
    /// `http://127.0.0.1:PORT` of Prometheus.
    pub prometheus: String,
    /// `http://127.0.0.1:PORT` of the Alertmanager.
    pub alertmanager: String,
    /// The port of the `mixed` job's target that is down.
    pub closed_port: u16,
    _children: Vec<Child>,
}

/// Returns the shared stack, or `None` after printing why the test is skipped. Panics when
/// `CI` is set, because CI must run these tests.
pub fn stack() -> Option<&'static Stack> {
    static STACK: OnceLock<Option<Stack>> = OnceLock::new();
    STACK.get_or_init(start).as_ref()
}

fn find(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start() -> Option<Stack> {
    crate::support::init();
    let binaries = (
        find("prometheus"),
        find("prometheus-alertmanager"),
        find("promtool"),
    );
    let (Some(prometheus), Some(alertmanager), Some(promtool)) = binaries else {
        let message = "prometheus, promtool or prometheus-alertmanager not found on PATH; run scripts/install-testbed.sh";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
        return None;
    };

    let root = tempfile::Builder::new()
        .prefix("readiness-prometheus-")
        .tempdir()
        .unwrap()
        .keep();
    let prometheus_port = free_port();
    let alertmanager_port = free_port();
    let closed_port = free_port();
    write_configs(&root, prometheus_port, alertmanager_port, closed_port);

    let check = Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(root.join("rules.yml"))
        .output()
        .expect("promtool starts");
    assert!(
        check.status.success(),
        "promtool check rules failed:\n{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let mut am = Command::new(alertmanager);
    am.arg(format!(
        "--config.file={}",
        root.join("alertmanager.yml").display()
    ))
    .arg(format!("--storage.path={}", root.join("am-data").display()))
    .arg(format!(
        "--web.listen-address=127.0.0.1:{alertmanager_port}"
    ))
    .arg(format!(
        "--web.external-url=http://127.0.0.1:{alertmanager_port}/"
    ))
    // An empty value turns the gossip listener off: a single Alertmanager.
    .arg("--cluster.listen-address=");
    let am = spawn(am, &root.join("alertmanager.log"));

    let mut prom = Command::new(prometheus);
    prom.arg(format!(
        "--config.file={}",
        root.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        root.join("prom-data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
    .arg(format!(
        "--web.external-url=http://127.0.0.1:{prometheus_port}/"
    ));
    let prom = spawn(prom, &root.join("prometheus.log"));

    watch(&[am.id(), prom.id()], &root);
    let stack = Stack {
        prometheus: format!("http://127.0.0.1:{prometheus_port}"),
        alertmanager: format!("http://127.0.0.1:{alertmanager_port}"),
        closed_port,
        _children: vec![am, prom],
    };
    wait_until_settled(&stack, &root);
    Some(stack)
}

fn write_configs(root: &Path, prometheus_port: u16, alertmanager_port: u16, closed_port: u16) {
    std::fs::write(
        root.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n\
             rule_files: ['{rules}']\n\
             scrape_configs:\n\
             \x20 - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prometheus_port}']\n\
             \x20 - job_name: mixed\n    static_configs:\n      - targets: ['127.0.0.1:{alertmanager_port}', '127.0.0.1:{closed_port}']\n",
            rules = root.join("rules.yml").display()
        ),
    )
    .unwrap();
    // `up * on() up` matches every series of one side with every series of the other, which
    // PromQL rejects as many-to-many matching once `up` has more than one series.
    std::fs::write(
        root.join("rules.yml"),
        "groups:\n\
         \x20 - name: availability\n    rules:\n\
         \x20     - record: job:up:sum\n        expr: sum by (job) (up)\n\
         \x20     - alert: TargetDown\n        expr: up == 0\n        for: 0s\n\
         \x20 - name: broken\n    rules:\n\
         \x20     - record: broken:many_to_many\n        expr: up * on() up\n",
    )
    .unwrap();
    let receivers: String = RECEIVERS
        .iter()
        .map(|name| format!("  - name: \"{name}\"\n"))
        .collect();
    std::fs::write(
        root.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: team-api\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n{receivers}"
        ),
    )
    .unwrap();
}

#[allow(
    clippy::zombie_processes,
    reason = "the shared stack lives until the test process exits; the watchdog stops it by PID"
)]
fn spawn(mut command: Command, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("server starts")
}

/// Starts a shell that waits for this test process to exit, then stops `pids` and removes
/// `root`.
#[allow(
    clippy::zombie_processes,
    reason = "the watchdog must outlive the test process, which therefore never waits for it"
)]
fn watch(pids: &[u32], root: &Path) {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let script = format!(
        "while kill -0 {test} 2>/dev/null; do sleep 0.5; done; kill {pids} 2>/dev/null; sleep 1; kill -9 {pids} 2>/dev/null; rm -rf '{root}'",
        test = std::process::id(),
        pids = pids.join(" "),
        root = root.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog starts");
}

/// Polls the Prometheus API until every target has been scraped, both rule groups have been
/// evaluated with the broken rule failing, and the Alertmanager is active. The first scrape
/// lands about 5.5 s after start, because service discovery refreshes every 5 s.
fn wait_until_settled(stack: &Stack, root: &Path) {
    let prometheus = stack.prometheus.clone();
    let settled = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while tokio::time::Instant::now() < deadline {
                if settled(&client, &prometheus).await {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            false
        })
    })
    .join()
    .unwrap();
    if !settled {
        let log = std::fs::read_to_string(root.join("prometheus.log")).unwrap_or_default();
        panic!("Prometheus did not scrape, evaluate and discover within 60s; its log:\n{log}");
    }
}

async fn settled(client: &reqwest::Client, prometheus: &str) -> bool {
    let get = |path: &str| {
        let url = format!("{prometheus}{path}");
        async move {
            let response = client.get(url).send().await.ok()?;
            response.json::<serde_json::Value>().await.ok()
        }
    };
    let Some(targets) = get("/api/v1/targets").await else {
        return false;
    };
    let scraped = targets["data"]["activeTargets"]
        .as_array()
        .is_some_and(|targets| {
            targets.len() == 3 && targets.iter().all(|target| target["health"] != "unknown")
        });
    let Some(rules) = get("/api/v1/rules").await else {
        return false;
    };
    let groups = rules["data"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let broken_fails = groups
        .iter()
        .any(|group| group["name"] == "broken" && group["rules"][0]["health"] == "err");
    let evaluated = groups.len() == 2
        && groups.iter().all(|group| {
            !group["lastEvaluation"]
                .as_str()
                .unwrap_or("0001")
                .starts_with("0001")
        });
    let Some(alertmanagers) = get("/api/v1/alertmanagers").await else {
        return false;
    };
    let discovered = alertmanagers["data"]["activeAlertmanagers"]
        .as_array()
        .is_some_and(|list| !list.is_empty());
    scraped && broken_fails && evaluated && discovered
}
