//! The fault matrix: every check kind against each way its dependency can fail.
//!
//! Each cell is one check in one running exporter: all cells run at once, next to a heartbeat
//! check with a one-second interval, while `/metrics` is scraped without pause. For every cell
//! the test asserts the status and reason and that the run ended within its timeout plus a
//! margin. For the whole matrix it asserts that resident memory stayed bounded, that the
//! heartbeat kept its schedule and that no scrape failed. The table of outcomes is `docs/resilience.md`; run with
//! `UPDATE_RESILIENCE_DOC=1` to write it, otherwise the test fails when the file is out of date.
//!
//! A new kind joins the matrix with one [`KindCase`] in [`kinds::CASES`].

mod kinds;
mod servers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use readiness_exporter::check::{Reason, Status};
use tokio::time::Instant;

use crate::support::{self, start_exporter};
use servers::{Certificates, FaultServer};

/// One way a dependency fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Nothing listens: the connection is refused, or the file is missing.
    Down,
    /// The connection is accepted and gets no response; a file is a FIFO no one writes to.
    Hung,
    /// The response comes after the check's timeout.
    Slow,
    /// The response follows no protocol the check speaks.
    Garbage,
    /// The answer stops in the middle.
    Truncated,
    /// An HTTP status, or the protocol's equivalent (a PostgreSQL login failure for 401).
    Status(u16),
    /// The server presents an expired certificate from a trusted CA.
    ExpiredCert,
    /// The server presents a certificate from an unknown CA.
    UntrustedCert,
    /// Gigabytes: a streamed body or message, or a 4 GiB file.
    Huge,
}

impl Fault {
    pub const ALL: [Fault; 13] = [
        Fault::Down,
        Fault::Hung,
        Fault::Slow,
        Fault::Garbage,
        Fault::Truncated,
        Fault::Status(401),
        Fault::Status(403),
        Fault::Status(404),
        Fault::Status(429),
        Fault::Status(500),
        Fault::ExpiredCert,
        Fault::UntrustedCert,
        Fault::Huge,
    ];

    /// Returns the column name in the table, also used in check ids.
    fn name(self) -> String {
        match self {
            Fault::Down => "down".to_string(),
            Fault::Hung => "hung".to_string(),
            Fault::Slow => "slow".to_string(),
            Fault::Garbage => "garbage".to_string(),
            Fault::Truncated => "truncated".to_string(),
            Fault::Status(code) => code.to_string(),
            Fault::ExpiredCert => "expired_cert".to_string(),
            Fault::UntrustedCert => "untrusted_cert".to_string(),
            Fault::Huge => "huge".to_string(),
        }
    }
}

/// What a check kind's dependency is, which decides the faulty server the test starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    /// An HTTP(S) server.
    Http,
    /// A TLS server, up to the handshake.
    Tls,
    /// A DNS name server over UDP.
    Dns,
    /// A PostgreSQL server.
    Postgres,
    /// A file the check reads.
    File,
}

/// A connection block at the top of the configuration that a kind reaches its server through.
/// Cells of such kinds run in an exporter of their own per fault, whose block points at that
/// fault's server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Connection {
    /// The `vault` block, with a token from a file.
    Vault,
    /// The `kubernetes` block, with a kubeconfig.
    Kubernetes,
}

/// Where a cell's check points.
pub struct Target {
    /// The faulty server's address (a closed port for files).
    pub addr: std::net::SocketAddr,
    /// True for the certificate faults: the check must use TLS and trust `ca_file`.
    pub tls: bool,
    /// The CA that signed the valid and the expired certificates.
    pub ca_file: PathBuf,
    /// The faulty file, for file dependencies.
    pub file: PathBuf,
    /// A file with a valid password, for checks that need a secret to reach their server.
    pub password_file: PathBuf,
}

/// One row of the matrix: a check kind and one of its dependencies.
pub struct KindCase {
    /// The row name: the kind, with the dependency when the kind has several.
    pub name: &'static str,
    pub dependency: Dependency,
    /// The connection block the kind reads its server's address from, if any.
    pub connection: Option<Connection>,
    /// The kind's block of the check, from the kind's key on, indented by four spaces.
    pub block: fn(&Target) -> String,
    /// The result each fault must give, or `None` when the fault cannot happen to this
    /// dependency (an HTTP status from a DNS server, say).
    pub expect: fn(Fault) -> Option<(Status, Reason)>,
    /// The content of a valid file, for file dependencies; the truncated fault cuts it in half.
    pub valid_file: fn(&Certificates) -> String,
}

/// Each check's timeout. Slow dependencies answer after [`servers::SLOW_DELAY`], well after it.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How far past its timeout a run may end: the scheduler's own work and a loaded machine.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(1500);
/// The heartbeat's interval; its runs must never be further apart than this plus the margin.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const HEARTBEAT_MARGIN: Duration = Duration::from_secs(2);
/// How much resident memory may grow while the matrix runs. Reading up to the 16 MiB body limit
/// in many cells at once takes a few hundred MiB; a check that buffered a huge body or file
/// would add gigabytes.
const MEMORY_GROWTH_LIMIT: u64 = 512 * 1024 * 1024;

struct Cell {
    case: &'static KindCase,
    fault: Fault,
    id: String,
    expected: (Status, Reason),
    _server: Option<FaultServer>,
    /// The exporter the cell runs in: 0 for the shared one, then one per connection and fault.
    exporter: usize,
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

async fn start_dependency(
    case: &KindCase,
    fault: Fault,
    certificates: &Certificates,
    dir: &Path,
    id: &str,
) -> (Option<FaultServer>, Target) {
    let tls = matches!(fault, Fault::ExpiredCert | Fault::UntrustedCert);
    let server = match case.dependency {
        Dependency::Http => Some(servers::http(fault, certificates).await),
        Dependency::Tls => Some(servers::tls(fault, certificates).await),
        Dependency::Dns => Some(servers::dns(fault).await),
        Dependency::Postgres => Some(servers::postgres(fault, certificates).await),
        Dependency::File => None,
    };
    let file = match case.dependency {
        Dependency::File => servers::file(fault, dir, id, &(case.valid_file)(certificates)),
        _ => dir.join(id),
    };
    let addr = match &server {
        Some(server) => server.addr,
        None => servers::down().await.addr,
    };
    let target = Target {
        addr,
        tls,
        ca_file: certificates.ca_file.clone(),
        file,
        password_file: dir.join("password"),
    };
    (server, target)
}

/// Returns a check id from the row and column names: lowercase letters, digits and single `_`.
fn cell_id(name: &str, fault: Fault) -> String {
    let text = format!("{name} {}", fault.name());
    let mut id = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('_') {
            id.push('_');
        }
    }
    id.trim_end_matches('_').to_string()
}

/// Opens every FIFO of the matrix for writing once, so that a reader still blocked in `open`
/// gets end-of-file and its thread ends. Each opener runs in a detached thread, because the
/// open blocks while no reader waits.
struct ReleaseFifos(Vec<PathBuf>);

impl Drop for ReleaseFifos {
    fn drop(&mut self) {
        for path in self.0.drain(..) {
            std::thread::spawn(move || drop(std::fs::OpenOptions::new().write(true).open(path)));
        }
    }
}

/// Returns the `vault` or `kubernetes` block that points at `target`, writing the kubeconfig
/// beside `target.file`.
fn connection_block(connection: Connection, target: &Target) -> String {
    let scheme = if target.tls { "https" } else { "http" };
    let url = format!("{scheme}://localhost:{}", target.addr.port());
    match connection {
        Connection::Vault => {
            let ca_file = if target.tls {
                format!("  ca_file: {}\n", target.ca_file.display())
            } else {
                String::new()
            };
            format!(
                "vault:\n  address: {url}\n{ca_file}  timeout: {}s\n  auth:\n    token: {{ file: {} }}\n",
                TIMEOUT.as_secs(),
                target.password_file.display()
            )
        }
        Connection::Kubernetes => {
            let authority = if target.tls {
                format!("    certificate-authority: {}\n", target.ca_file.display())
            } else {
                String::new()
            };
            let kubeconfig = target.file.with_extension("kubeconfig");
            std::fs::write(
                &kubeconfig,
                format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: matrix\n  cluster:\n    server: {url}\n{authority}contexts:\n- name: matrix\n  context:\n    cluster: matrix\n    user: reader\ncurrent-context: matrix\nusers:\n- name: reader\n  user:\n    token: fault-matrix-token\n"
                ),
            )
            .unwrap();
            format!("kubernetes:\n  kubeconfig: {}\n", kubeconfig.display())
        }
    }
}

fn check_yaml(id: &str, block: &str) -> String {
    format!("  - id: {id}\n    title: Fault cell {id}\n    section: Faults\n    severity: warning\n    {block}")
}

/// Renders the table of `docs/resilience.md`.
fn render_doc(cells: &[Cell]) -> String {
    let mut rows: BTreeMap<&str, BTreeMap<Fault, String>> = BTreeMap::new();
    let order: Vec<&str> = kinds::CASES.iter().map(|case| case.name).collect();
    for cell in cells {
        let (status, reason) = cell.expected;
        rows.entry(cell.case.name)
            .or_default()
            .insert(cell.fault, format!("{status} `{reason}`"));
    }
    let mut doc = String::from(DOC_HEAD);
    doc.push_str("| kind |");
    for fault in Fault::ALL {
        doc.push_str(&format!(" {} |", fault.name()));
    }
    doc.push_str("\n|---|");
    doc.push_str(&"---|".repeat(Fault::ALL.len()));
    doc.push('\n');
    for name in order {
        doc.push_str(&format!("| `{name}` |"));
        for fault in Fault::ALL {
            let cell = rows
                .get(name)
                .and_then(|row| row.get(&fault))
                .map_or("n/a", String::as_str);
            doc.push_str(&format!(" {cell} |"));
        }
        doc.push('\n');
    }
    doc.push_str(DOC_TAIL);
    doc
}

const DOC_HEAD: &str = "# Resilience: how each check kind reports a failing dependency

The exporter watches systems exactly when they fail, so every check kind is tested against each
way its dependency can fail. The table below is written by the fault-matrix test
(`tests/it/fault_matrix/`), which fails when this file no longer matches the code; run
`UPDATE_RESILIENCE_DOC=1 cargo test --test it fault_matrix` to rewrite it.

All cells run at once in one exporter, each as a check with a 2 s timeout, next to a heartbeat
check with a 1 s interval while `/metrics` is scraped without pause. For every cell the test
asserts the result and reason shown below and that the run ended within its timeout plus 1.5 s.
For the whole matrix it asserts that the exporter's resident memory grew by less than 512 MiB,
that the heartbeat's runs were never more than 3 s apart, and that every scrape succeeded.

";

const DOC_TAIL: &str = "
`n/a`: the fault cannot happen to that dependency (an HTTP status from a DNS server, a
certificate from a file of YAML).

The Vault kinds other than `vault_health`, and the Kubernetes kinds, reach their server through
the configuration's one `vault` or `kubernetes` block, so their cells run in one more exporter
per fault, whose block points at that fault's server. Vault's login fails first there: a 401 or
403 is a failed login, and every other fault keeps its transport reason. The exporter reads at
most 4 MiB of a Vault response and 16 MiB of a Kubernetes response, so a server that floods it
ends the check with `body_too_large`. The cells of the kinds with a `server` block set its
`max_body_bytes` to 1 MiB, so that a debug build reaches the limit well within the timeout.

## The faults

| fault | HTTP, CORS | TLS handshake | DNS (UDP) | PostgreSQL | file |
|---|---|---|---|---|---|
| down | nothing listens on the port | nothing listens | the port is closed | nothing listens | the file is missing |
| hung | accepts, reads the request, never answers | accepts, never answers | never answers | accepts, never answers | a FIFO no one writes to |
| slow | answers 200 after 6 s | starts the handshake after 6 s | answers after 6 s | answers the login after 6 s | |
| garbage | bytes that are not HTTP | bytes that are not TLS | bytes that are not DNS | bytes that are not the protocol | bytes that are not YAML or PEM, with NUL bytes |
| truncated | the header stops mid-line, then EOF | a record header and one byte, then EOF | a 12-byte header with the truncation bit | an authentication message cut short | the first half of a valid file |
| 401 to 500 | that status | | | 401: SQLSTATE 28P01 (invalid password) | |
| expired_cert | an expired certificate from the trusted CA | the same | | the same, after SSLRequest | |
| untrusted_cert | a certificate from an unknown CA | the same | | the same, after SSLRequest | |
| huge | a 4 GiB chunked body, streamed | 4 GiB of maximum-size handshake records | | a message whose length field says 2 GiB, then 4 GiB of bytes | a sparse 4 GiB file |

## Malformed responses and leaked secrets

Property tests (proptest) feed the response parsers input that no healthy server sends. Case
counts are bounded so they add seconds to the suite, and proptest replays the failing seeds kept
under `proptest-regressions/` and `tests/proptest-regressions/` before it generates new cases.

- `tests/it/fuzz_responses.rs` runs every kind that reads a monitoring server
  (`prometheus_targets`, `prometheus_rules`, `prometheus_alertmanagers`, `prometheus_query`,
  `loki`, `elasticsearch_count`, `alertmanager`, `grafana`), Vault (`vault_health` with
  `sys/ha-status`, `vault_auth_method`, `vault_policy`, `vault_mount`, `vault_secret`) or the
  Kubernetes API (all ten Kubernetes kinds) against a local server. The server responds with
  arbitrary bytes, arbitrary JSON, or a valid response whose values are replaced with edge values
  (strings of up to 50,000 characters, `u64::MAX`, invalid times), removed, or repeated up to 500
  times. The Kubernetes objects, and the gzip-compressed release JSON inside a Helm release
  Secret, change the same way. Every run must return within 20 s without a panic. A monitoring
  or Vault message must stay within 4096 characters, and a Kubernetes message within the 16 KiB
  at which every message is cut.
- Unit properties cover the Helm release decoding of arbitrary bytes, base64 and gzip, the
  Prometheus envelope and instant-query results, `sys/health` bodies and version strings, and
  the API client's JSON errors and URL query redaction. `tests/it/fuzz.rs` covers the
  configuration loader, and the `http`, `cors`, `signoff` and `tls` kinds have their own.

`tests/it/secret_canary.rs` puts a unique marker into every secret-valued field and searches every
output of `check` (all four formats and their logs) and `serve` (every endpoint, a rejected
reload and the logs in both formats, at trace level) for it. The fields are the `http` and
`cors` headers, the PostgreSQL passwords, the bearer tokens and basic-auth passwords of the
monitoring kinds' `server` blocks, the exporter's Vault token (`vault.auth.token`) and the
token of the `kubernetes` block's kubeconfig. Their values come from files, environment
variables and `{ vault: { mount, path, key } }` references to an OpenBao dev server. The targets
echo the `Authorization` header in their bodies, headers and error messages, and a basic-auth
password is also searched for in its encoded form. The test passes only with zero hits.
";

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/resilience.md")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_survives_every_fault() {
    support::init();
    let dir = tempfile::tempdir().unwrap();
    let certificates = Certificates::new(dir.path());
    std::fs::write(dir.path().join("password"), "fault-matrix-password\n").unwrap();

    // One cell per kind and fault that applies to it. Cells of kinds behind a connection block
    // are grouped by block and fault, and each group gets one server and one exporter.
    let mut cells = Vec::new();
    type Member = (&'static KindCase, String, (Status, Reason));
    let mut groups: BTreeMap<(Connection, Fault), Vec<Member>> = BTreeMap::new();
    for case in kinds::CASES {
        for fault in Fault::ALL {
            let Some(expected) = (case.expect)(fault) else {
                continue;
            };
            let id = cell_id(case.name, fault);
            if let Some(connection) = case.connection {
                groups
                    .entry((connection, fault))
                    .or_default()
                    .push((case, id, expected));
                continue;
            }
            let (server, target) =
                start_dependency(case, fault, &certificates, dir.path(), &id).await;
            cells.push((
                Cell {
                    case,
                    fault,
                    id: id.clone(),
                    expected,
                    _server: server,
                    exporter: 0,
                },
                (case.block)(&target),
            ));
        }
    }

    let _release = ReleaseFifos(
        cells
            .iter()
            .filter(|(cell, _)| {
                cell.case.dependency == Dependency::File && cell.fault == Fault::Hung
            })
            .map(|(cell, _)| dir.path().join(&cell.id))
            .collect(),
    );

    let beats: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let heart = beats.clone();
    let heartbeat = support::serve_fn(move |_| {
        heart.lock().unwrap().push(Instant::now());
        support::respond(200, "ok")
    })
    .await;
    let global = format!(
        "global:\n  interval: 60s\n  timeout: {}s\n  max_concurrent_checks: 256\n",
        TIMEOUT.as_secs()
    );
    let mut yaml = format!(
        "{global}checks:\n  - id: heartbeat\n    title: Heartbeat\n    section: Faults\n    severity: warning\n    interval: {}s\n    timeout: 500ms\n    jitter: 1ms\n    http:\n      url: {}\n",
        HEARTBEAT_INTERVAL.as_secs(),
        heartbeat.url("http", "/")
    );
    for (cell, block) in &cells {
        yaml.push_str(&check_yaml(&cell.id, block));
    }
    let mut group_yamls = Vec::new();
    for ((connection, fault), members) in &groups {
        let index = group_yamls.len() + 1;
        let name = format!("{connection:?}_{}", fault.name()).to_lowercase();
        // Every member reaches the same HTTP server through the block.
        let (server, target) =
            start_dependency(members[0].0, *fault, &certificates, dir.path(), &name).await;
        let mut group_yaml = format!(
            "{global}{}checks:\n",
            connection_block(*connection, &target)
        );
        for (case, id, expected) in members {
            group_yaml.push_str(&check_yaml(id, &(case.block)(&target)));
            cells.push((
                Cell {
                    case,
                    fault: *fault,
                    id: id.clone(),
                    expected: *expected,
                    _server: None,
                    exporter: index,
                },
                String::new(),
            ));
        }
        group_yamls.push((group_yaml, server));
    }
    let cells: Vec<Cell> = cells.into_iter().map(|(cell, _)| cell).collect();

    // Memory and scrapes are watched from before the first run until every cell has a result.
    let baseline = resident_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let stop = Arc::new(AtomicBool::new(false));
    let exporter = start_exporter(&yaml).await;
    let mut group_exporters = Vec::new();
    for (group_yaml, server) in group_yamls {
        group_exporters.push((start_exporter(&group_yaml).await, server));
    }
    let watcher = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(resident_bytes(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let scraper = {
        let stop = stop.clone();
        let url = exporter.url("/metrics");
        tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let (mut scrapes, mut failures) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        let body = response.text().await.unwrap_or_default();
                        if !body.ends_with("# EOF\n") {
                            failures.push(format!("truncated body of {} bytes", body.len()));
                        }
                    }
                    Ok(response) => failures.push(format!("status {}", response.status())),
                    Err(err) => failures.push(format!("request failed: {err}")),
                }
                scrapes += 1;
            }
            (scrapes, failures)
        })
    };
    let started = Instant::now();
    let mut states = vec![exporter.exporter.state().clone()];
    for (group_exporter, _) in &group_exporters {
        states.push(group_exporter.exporter.state().clone());
    }
    let deadline = started + Duration::from_secs(60);
    loop {
        let pending: Vec<&str> = cells
            .iter()
            .filter(|cell| {
                states[cell.exporter]
                    .entry(&cell.id)
                    .is_none_or(|e| e.last.is_none())
            })
            .map(|cell| cell.id.as_str())
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cells without a result after 60 s: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The heartbeat runs a few more times after the slowest cell, to see that it recovers.
    tokio::time::sleep(HEARTBEAT_INTERVAL * 2).await;
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    let (scrapes, scrape_failures) = scraper.await.unwrap();
    let elapsed = started.elapsed();

    // Every cell: the expected result, within its timeout.
    let mut wrong = Vec::new();
    for cell in &cells {
        let last = states[cell.exporter].entry(&cell.id).unwrap().last.unwrap();
        let got = (last.outcome.status, last.outcome.reason);
        if got != cell.expected {
            wrong.push(format!(
                "{}: expected {} {}, got {} {}: {}",
                cell.id, cell.expected.0, cell.expected.1, got.0, got.1, last.outcome.message
            ));
        }
        if last.duration > TIMEOUT + TIMEOUT_MARGIN {
            wrong.push(format!("{}: the run took {:?}", cell.id, last.duration));
        }
    }
    assert!(
        wrong.is_empty(),
        "cells with a wrong outcome:\n{}",
        wrong.join("\n")
    );

    let growth = peak.load(Ordering::SeqCst).saturating_sub(baseline);
    assert!(
        growth < MEMORY_GROWTH_LIMIT,
        "resident memory grew by {growth} bytes"
    );

    assert!(scrapes > 0);
    assert_eq!(scrape_failures, Vec::<String>::new(), "failed scrapes");

    let beats = beats.lock().unwrap().clone();
    assert!(
        beats.len() >= 2,
        "{} heartbeats in {elapsed:?}",
        beats.len()
    );
    for pair in beats.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap <= HEARTBEAT_INTERVAL + HEARTBEAT_MARGIN,
            "heartbeat runs {gap:?} apart during the matrix"
        );
    }
    eprintln!(
        "{} cells in {elapsed:?}; resident memory grew by {} KiB; {scrapes} scrapes; {} heartbeats",
        cells.len(),
        growth / 1024,
        beats.len()
    );

    let doc = render_doc(&cells);
    if std::env::var_os("UPDATE_RESILIENCE_DOC").is_some() {
        std::fs::write(doc_path(), &doc).unwrap();
    } else {
        let committed = std::fs::read_to_string(doc_path()).unwrap_or_default();
        assert!(
            committed == doc,
            "docs/resilience.md is out of date; run UPDATE_RESILIENCE_DOC=1 cargo test --test it fault_matrix"
        );
    }
}
