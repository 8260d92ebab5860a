//! Shutdown of `serve`: SIGTERM lets the checks in flight finish and exits 0; a second signal
//! exits at once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, tcp_server};

const BINARY: &str = env!("CARGO_BIN_EXE_readiness-exporter");

/// A `serve` process whose log lines (JSON, debug level) are collected as they arrive.
struct Served {
    child: Child,
    logs: Arc<Mutex<String>>,
}

impl Served {
    fn start(dir: &std::path::Path, yaml: &str) -> Served {
        let path = support::write_config(dir, yaml);
        let mut child = Command::new(BINARY)
            .args(["serve", "--config", path.to_str().unwrap()])
            .args(["--log-format", "json", "--log-level", "debug"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        Served { child, logs }
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit; panics after `limit`.
    async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread may still hold the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no exit within {limit:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server that counts accepted connections, reads one request and responds with 200
/// once `release` is notified; without a notification it never responds.
async fn held_server(release: Arc<tokio::sync::Notify>) -> (support::TestServer, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tcp_server(move |mut stream| {
        counter.fetch_add(1, Ordering::SeqCst);
        let release = release.clone();
        async move {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            release.notified().await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    })
    .await;
    (server, accepted)
}

/// Returns a configuration with one check of `url`. The tests only signal the process, so it
/// listens on a port the system picks.
fn config(url: &str, timeout: &str) -> String {
    format!(
        "global:
  listen_address: 127.0.0.1:0
  interval: 60s
checks:
  - id: slow_api
    title: Slow API answers
    section: Deployment
    severity: critical
    timeout: {timeout}
    http:
      url: {url}
"
    )
}

fn position(logs: &str, needle: &str) -> usize {
    logs.find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in logs:\n{logs}"))
}

#[tokio::test]
async fn sigterm_drains_in_flight_run() {
    let release = Arc::new(tokio::sync::Notify::new());
    let (server, accepted) = held_server(release.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::start(dir.path(), &config(&server.url("http", "/health"), "50s"));
    support::wait_until(Duration::from_secs(20), || {
        accepted.load(Ordering::SeqCst) == 1
    })
    .await;

    // The server responds only once the drain has begun, so the run is surely in flight.
    served.signal("TERM");
    support::wait_until(Duration::from_secs(20), || {
        served.logs().contains("Draining in-flight checks")
    })
    .await;
    release.notify_one();
    let status = served.wait_exit(Duration::from_secs(30)).await;

    let logs = served.logs();
    assert_eq!(status.code(), Some(0), "{logs}");
    let signalled = position(&logs, "\"signal\":\"SIGTERM\"");
    let draining = position(
        &logs,
        "\"message\":\"Draining in-flight checks\",\"in_flight\":1",
    );
    let finished = position(&logs, "\"message\":\"Check ran\"");
    let drained = position(&logs, "\"message\":\"In-flight checks drained\"");
    let stopped = position(&logs, "\"message\":\"Exporter stopped\"");
    assert!(signalled < draining, "{logs}");
    assert!(
        draining < finished,
        "the run in flight finished after the signal\n{logs}"
    );
    assert!(
        logs[finished..].starts_with("\"message\":\"Check ran\",\"check\":\"slow_api\",\"kind\":\"http\",\"status\":\"pass\""),
        "the run in flight passed instead of being cancelled\n{logs}"
    );
    assert!(finished < drained, "{logs}");
    assert!(drained < stopped, "{logs}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "no run starts after the signal"
    );
}

#[tokio::test]
async fn second_signal_exits_at_once() {
    let (server, accepted) = held_server(Arc::new(tokio::sync::Notify::new())).await;
    let dir = tempfile::tempdir().unwrap();
    // The run hangs until its 50 s timeout, so only the second signal can end the drain early.
    let mut served = Served::start(dir.path(), &config(&server.url("http", "/health"), "50s"));
    support::wait_until(Duration::from_secs(20), || {
        accepted.load(Ordering::SeqCst) == 1
    })
    .await;

    served.signal("TERM");
    support::wait_until(Duration::from_secs(20), || {
        served.logs().contains("Draining in-flight checks")
    })
    .await;
    served.signal("INT");
    let status = served.wait_exit(Duration::from_secs(20)).await;

    let logs = served.logs();
    assert_eq!(status.code(), Some(130), "{logs}");
    assert!(
        logs.contains("\"message\":\"Second signal received, exiting without waiting for in-flight checks\",\"signal\":\"SIGINT\",\"in_flight\":1"),
        "{logs}"
    );
    assert!(!logs.contains("In-flight checks drained"), "{logs}");
}
