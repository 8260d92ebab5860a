//! Reloads while every check runs at full load and `/metrics` is scraped without pause: valid
//! files that add, change and remove checks alternate with invalid ones.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, assert_metric, start_exporter, tcp_server};

/// Checks present in both variants, unchanged.
const KEPT: usize = 60;
/// Checks only in one variant, and checks whose title differs between the variants.
const SWAPPED: usize = 20;
const CHANGED: usize = 20;
const ROUNDS: usize = 12;

/// A keep-alive HTTP server that responds to every request with 200 after `delay`, so that runs
/// hold their permits and the concurrency limit stays saturated.
async fn slow_server(delay: Duration) -> support::TestServer {
    tcp_server(move |mut stream| async move {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                buffer.drain(..end + 4);
                tokio::time::sleep(delay).await;
                let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(response).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// Variant `a` or `b`: the kept checks, the variant's own checks, and the changed checks with
/// the variant's title.
fn variant(name: char, url: &str) -> String {
    let mut yaml = String::from(
        "global:\n  interval: 1s\n  timeout: 900ms\n  jitter: 100ms\n  max_concurrent_checks: 4\nchecks:\n",
    );
    let mut check = |id: String, title: String| {
        yaml.push_str(&format!(
            "  - id: {id}\n    title: {title}\n    section: Load\n    severity: warning\n    http:\n      url: {url}\n"
        ));
    };
    for i in 0..KEPT {
        check(format!("kept_{i}"), format!("Kept {i}"));
    }
    for i in 0..SWAPPED {
        check(format!("only_{name}_{i}"), format!("Only in {name} {i}"));
    }
    for i in 0..CHANGED {
        check(format!("changed_{i}"), format!("Changed in {name} {i}"));
    }
    yaml
}

/// Returns the check ids of the `readiness_check_info` series.
fn series_ids(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("readiness_check_info{check=\""))
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

fn expected_ids(name: char) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    ids.extend((0..KEPT).map(|i| format!("kept_{i}")));
    ids.extend((0..SWAPPED).map(|i| format!("only_{name}_{i}")));
    ids.extend((0..CHANGED).map(|i| format!("changed_{i}")));
    ids
}

async fn post(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.post(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_keep_serving() {
    let server = slow_server(Duration::from_millis(40)).await;
    let url = server.url("http", "/health");
    let exporter = start_exporter(&variant('a', &url)).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let metrics_url = exporter.url("/metrics");
    let reload_url = exporter.url("/-/reload");

    // Two scrapers run until the reloads end; every failed scrape is kept with its cause.
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicUsize::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let scrapers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, scrapes, failures) = (stop.clone(), scrapes.clone(), failures.clone());
            let (client, url) = (client.clone(), metrics_url.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let failure = match client.get(&url).send().await {
                        Ok(response) if response.status() == 200 => match response.text().await {
                            Ok(body) if body.ends_with("# EOF\n") => None,
                            Ok(body) => Some(format!("truncated body of {} bytes", body.len())),
                            Err(err) => Some(format!("body failed: {err}")),
                        },
                        Ok(response) => Some(format!("status {}", response.status())),
                        Err(err) => Some(format!("request failed: {err}")),
                    };
                    scrapes.fetch_add(1, Ordering::SeqCst);
                    if let Some(failure) = failure {
                        failures.lock().unwrap().push(failure);
                    }
                }
            })
        })
        .collect();

    let invalid = "global:\n  interval: 1s\nchecks:\n  - id: kept_0\n    title: Broken\n    section: Load\n    severity: warning\n    interval: soon\n    http:\n      url: not a url\n";
    let mut current = 'a';
    for round in 0..ROUNDS {
        // A valid file: the other variant adds, changes and removes checks.
        let next = if current == 'a' { 'b' } else { 'a' };
        std::fs::write(&exporter.config_path, variant(next, &url)).unwrap();
        let (status, body) = post(&client, &reload_url).await;
        let total = KEPT + SWAPPED + CHANGED;
        assert_eq!(
            (status, body.as_str()),
            (
                200,
                format!("configuration reloaded: {total} checks\n").as_str()
            ),
            "round {round}"
        );
        current = next;
        let metrics = scrape(&client, &metrics_url).await;
        assert_eq!(series_ids(&metrics), expected_ids(current), "round {round}");
        let removed = if current == 'a' {
            "only_b_0"
        } else {
            "only_a_0"
        };
        assert!(
            !metrics.contains(&format!("check=\"{removed}\"")),
            "round {round}: series of removed check `{removed}` remain"
        );
        assert!(
            metrics.contains(&format!(
                "readiness_check_info{{check=\"changed_0\",title=\"Changed in {current} 0\""
            )),
            "round {round}: changed title not applied"
        );
        assert_metric(
            &metrics,
            "readiness_exporter_config_last_reload_successful 1.0",
        );
        assert_metric(
            &metrics,
            &format!(
                "readiness_exporter_config_reloads_total{{result=\"success\"}} {}",
                round + 1
            ),
        );
        assert_metric(
            &metrics,
            &format!("readiness_exporter_config_reloads_total{{result=\"failure\"}} {round}"),
        );

        // An invalid file changes nothing.
        std::fs::write(&exporter.config_path, invalid).unwrap();
        let (status, body) = post(&client, &reload_url).await;
        assert_eq!(status, 500, "round {round}: {body}");
        assert!(
            body.starts_with("reload rejected, the previous configuration stays in effect"),
            "{body}"
        );
        let after = scrape(&client, &metrics_url).await;
        assert_eq!(series_ids(&after), expected_ids(current), "round {round}");
        assert!(
            after.contains(&format!(
                "readiness_check_info{{check=\"changed_0\",title=\"Changed in {current} 0\""
            )),
            "round {round}: the rejected file changed a title"
        );
        assert_metric(
            &after,
            "readiness_exporter_config_last_reload_successful 0.0",
        );
        assert_metric(
            &after,
            &format!(
                "readiness_exporter_config_reloads_total{{result=\"failure\"}} {}",
                round + 1
            ),
        );
    }

    stop.store(true, Ordering::SeqCst);
    for scraper in scrapers {
        scraper.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let scrapes = scrapes.load(Ordering::SeqCst);
    eprintln!("{scrapes} scrapes during {} reloads", 2 * ROUNDS);
    assert!(scrapes > 0);
    assert_eq!(failures, Vec::<String>::new(), "failed scrapes");

    // The checks of the last applied file keep running after all those reloads.
    exporter.wait_ready().await;
    let state = exporter.exporter.state();
    assert_eq!(state.entries().len(), KEPT + SWAPPED + CHANGED);
    assert!(state.entry("kept_0").unwrap().last.is_some());
}
