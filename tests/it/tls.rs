//! The `tls` kind against TLS servers on 127.0.0.1 with certificates made at test time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use readiness_exporter::check::{Outcome, Reason, Status};
use readiness_exporter::config::{self, ConfigError};
use time::Duration;

use crate::support::{self, TestCa, TestLeaf, TestServer};

/// The name every test leaf is issued for and every check expects.
const HOST: &str = "api.test";

/// Starts a TLS server on 127.0.0.1 that completes handshakes with `config`.
async fn tls_server(config: Arc<rustls::ServerConfig>) -> TestServer {
    support::http_server(Some(config), Arc::new(|_| support::respond(200, "ok"))).await
}

/// Runs one check named `cert` with the given `tls` block and returns its outcome and the
/// `/metrics` body.
async fn run_check(tls_block: &str) -> (Outcome, String) {
    let indented: String = tls_block
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    let yaml = format!(
        "checks:\n  - id: cert\n    title: Certificate of the API\n    section: TLS\n    severity: critical\n    tls:\n{indented}"
    );
    let exporter = support::start_exporter(&yaml).await;
    exporter.wait_ready().await;
    let outcome = exporter
        .exporter
        .state()
        .entry("cert")
        .and_then(|entry| entry.last)
        .expect("the check ran")
        .outcome;
    // Shown when a test fails.
    println!("{} {}: {}", outcome.status, outcome.reason, outcome.message);
    let (status, _, body) = support::get(&exporter.url("/metrics")).await;
    assert_eq!(status, 200);
    (outcome, body)
}

/// Returns the value of the series `series` (name with labels) in an exposition, if present.
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().unwrap())
    })
}

fn not_after(der: &[u8]) -> f64 {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.validity().not_after.timestamp() as f64
}

fn not_before(der: &[u8]) -> f64 {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.validity().not_before.timestamp() as f64
}

const LEAF_NOT_AFTER: &str = "readiness_tls_not_after_timestamp_seconds{check=\"cert\"}";
const LEAF_NOT_BEFORE: &str = "readiness_tls_not_before_timestamp_seconds{check=\"cert\"}";
const CHAIN_NOT_AFTER: &str = "readiness_tls_chain_not_after_timestamp_seconds{check=\"cert\"}";

/// Writes a check block for `server` that expects [`HOST`] and trusts `ca_file`.
fn server_block(server: &TestServer, ca_file: &Path) -> String {
    format!(
        "address: {}\nserver_name: {HOST}\nca_file: {}",
        server.addr,
        ca_file.display()
    )
}

struct Fixture {
    ca: TestCa,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        support::init();
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Readiness Test Root");
        ca.write(dir.path());
        Fixture { ca, dir }
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    async fn check_leaf(&self, leaf: &TestLeaf) -> (Outcome, String) {
        let server = tls_server(leaf.server_config(&[])).await;
        run_check(&server_block(&server, &self.ca_file())).await
    }
}

#[tokio::test]
async fn valid_certificate_passes_with_dates() {
    let fixture = Fixture::new();
    let leaf = fixture
        .ca
        .leaf(&["localhost"], Duration::days(-1), Duration::days(90));
    let server = tls_server(leaf.server_config(&[])).await;

    // Without `server_name`, the host of the address is the SNI and the expected name.
    let block = format!(
        "address: localhost:{}\nca_file: {}",
        server.addr.port(),
        fixture.ca_file().display()
    );
    let (outcome, body) = run_check(&block).await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(outcome.reason, Reason::Ok);
    assert!(
        outcome.message.contains("valid for 90.0 more days"),
        "{}",
        outcome.message
    );
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(&body, LEAF_NOT_BEFORE),
        Some(not_before(&leaf.cert_der))
    );
    // The test root expires in the year 4096, so the leaf is the earliest on the chain.
    assert_eq!(
        metric(&body, CHAIN_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(
            &body,
            "readiness_tls_version_info{check=\"cert\",version=\"1.3\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&body, "readiness_check_success{check=\"cert\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn certificate_expiring_in_three_days_fails() {
    let fixture = Fixture::new();
    let leaf = fixture
        .ca
        .leaf(&[HOST], Duration::days(-80), Duration::days(3));

    let (outcome, body) = fixture.check_leaf(&leaf).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CertExpiring);
    assert!(
        outcome.message.contains("expires in 3.0 days"),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("14 days of `min_days_left`"),
        "{}",
        outcome.message
    );
    let date = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(not_after(&leaf.cert_der) as u64),
    )
    .to_string();
    assert!(outcome.message.contains(&date), "{}", outcome.message);
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(&body, CHAIN_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(
            &body,
            "readiness_check_result{check=\"cert\",result=\"fail\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn lower_min_days_left_passes_expiring_certificate() {
    let fixture = Fixture::new();
    let leaf = fixture
        .ca
        .leaf(&[HOST], Duration::days(-80), Duration::days(3));
    let server = tls_server(leaf.server_config(&[])).await;

    let block = format!(
        "{}\nmin_days_left: 2",
        server_block(&server, &fixture.ca_file())
    );
    let (outcome, _) = run_check(&block).await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
}

#[tokio::test]
async fn expired_certificate_fails_and_exports_dates() {
    let fixture = Fixture::new();
    let leaf = fixture
        .ca
        .leaf(&[HOST], Duration::days(-90), Duration::days(-2));

    let (outcome, body) = fixture.check_leaf(&leaf).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CertExpired);
    assert!(
        outcome.message.contains("expired on"),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("2.0 days ago"),
        "{}",
        outcome.message
    );
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(&body, LEAF_NOT_BEFORE),
        Some(not_before(&leaf.cert_der))
    );
    // The chain still verifies apart from the date, so its earliest expiry is the leaf's.
    assert_eq!(
        metric(&body, CHAIN_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(
            &body,
            "readiness_check_failures_total{check=\"cert\",reason=\"cert_expired\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn not_yet_valid_certificate_fails() {
    let fixture = Fixture::new();
    let leaf = fixture
        .ca
        .leaf(&[HOST], Duration::days(2), Duration::days(365));

    let (outcome, body) = fixture.check_leaf(&leaf).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CertNotYetValid);
    assert!(
        outcome.message.contains("is not valid until"),
        "{}",
        outcome.message
    );
    assert_eq!(
        metric(&body, LEAF_NOT_BEFORE),
        Some(not_before(&leaf.cert_der))
    );
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
}

#[tokio::test]
async fn wrong_host_fails_with_names() {
    let fixture = Fixture::new();
    let leaf = fixture.ca.valid_leaf(&["other.test", "www.other.test"]);

    let (outcome, body) = fixture.check_leaf(&leaf).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::HostnameMismatch);
    assert!(
        outcome
            .message
            .contains("is not valid for `api.test`; it names only other.test, www.other.test"),
        "{}",
        outcome.message
    );
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
}

#[tokio::test]
async fn untrusted_chain_fails_and_exports_leaf_dates() {
    let fixture = Fixture::new();
    let stranger = TestCa::new("Unknown Root");
    let leaf = stranger.valid_leaf(&[HOST]);

    let (outcome, body) = fixture.check_leaf(&leaf).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::UntrustedChain);
    assert!(
        outcome.message.contains("is not trusted by CA file"),
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .message
            .contains("issuer is not among the trusted roots"),
        "{}",
        outcome.message
    );
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(&body, LEAF_NOT_BEFORE),
        Some(not_before(&leaf.cert_der))
    );
    // Without a verified chain there is no chain figure, never a made-up one.
    assert_eq!(metric(&body, CHAIN_NOT_AFTER), None);
}

#[tokio::test]
async fn unrelated_certificate_does_not_move_figures() {
    let fixture = Fixture::new();
    let leaf = fixture.ca.valid_leaf(&[HOST]);
    // The server also sends a certificate of another CA that expires much sooner.
    let unrelated = TestCa::new("Unrelated Root").leaf(
        &["unrelated.test"],
        Duration::days(-10),
        Duration::days(2),
    );
    let server = tls_server(leaf.server_config(std::slice::from_ref(&unrelated.cert_der))).await;

    let (outcome, body) = run_check(&server_block(&server, &fixture.ca_file())).await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(&body, CHAIN_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_ne!(
        metric(&body, CHAIN_NOT_AFTER),
        Some(not_after(&unrelated.cert_der))
    );
}

#[tokio::test]
async fn expiring_intermediate_sets_chain_figure() {
    let fixture = Fixture::new();
    let intermediate = fixture
        .ca
        .intermediate("Readiness Test Intermediate", Duration::days(3));
    let leaf = intermediate.valid_leaf(&[HOST]);
    let unrelated = TestCa::new("Unrelated Root").leaf(
        &["unrelated.test"],
        Duration::days(-10),
        Duration::days(1),
    );
    let server =
        tls_server(leaf.server_config(&[intermediate.cert_der(), unrelated.cert_der.clone()]))
            .await;

    let (outcome, body) = run_check(&server_block(&server, &fixture.ca_file())).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CertExpiring);
    assert!(
        outcome
            .message
            .contains("certificate `CN=Readiness Test Intermediate`"),
        "{}",
        outcome.message
    );
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(&body, CHAIN_NOT_AFTER),
        Some(not_after(&intermediate.cert_der()))
    );
}

#[tokio::test]
async fn expired_intermediate_fails_with_its_date() {
    let fixture = Fixture::new();
    let intermediate = fixture
        .ca
        .intermediate("Readiness Test Intermediate", Duration::hours(-1));
    let leaf = intermediate.valid_leaf(&[HOST]);
    let server = tls_server(leaf.server_config(&[intermediate.cert_der()])).await;

    let (outcome, body) = run_check(&server_block(&server, &fixture.ca_file())).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CertExpired);
    assert!(
        outcome
            .message
            .starts_with("chain certificate `CN=Readiness Test Intermediate`"),
        "{}",
        outcome.message
    );
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    // The path is still known, so the chain figure shows the date that passed.
    assert_eq!(
        metric(&body, CHAIN_NOT_AFTER),
        Some(not_after(&intermediate.cert_der()))
    );
}

#[tokio::test]
async fn silent_server_times_out_naming_address() {
    let fixture = Fixture::new();
    // Accepts connections and never sends a byte, so no handshake completes.
    let server = support::tcp_server(|stream| async move {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        drop(stream);
    })
    .await;
    let block = server_block(&server, &fixture.ca_file());
    let indented: String = block
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    let yaml = format!(
        "checks:\n  - id: cert\n    title: Certificate\n    section: TLS\n    severity: critical\n    timeout: 1s\n    tls:\n{indented}"
    );
    let exporter = support::start_exporter(&yaml).await;
    exporter.wait_ready().await;

    let outcome = exporter
        .exporter
        .state()
        .entry("cert")
        .unwrap()
        .last
        .unwrap()
        .outcome;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::Timeout);
    assert_eq!(
        outcome.message,
        format!(
            "no TLS handshake with {} (server name api.test) within 900ms",
            server.addr
        )
    );
}

#[tokio::test]
async fn tls12_server_fails_min_version_13() {
    let fixture = Fixture::new();
    let leaf = fixture.ca.valid_leaf(&[HOST]);
    let config = rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_no_client_auth()
        .with_single_cert(vec![leaf.cert_der.clone()], leaf.key_der.clone_key())
        .unwrap();
    let server = tls_server(Arc::new(config)).await;

    let block = format!(
        "{}\nmin_version: \"1.3\"",
        server_block(&server, &fixture.ca_file())
    );
    let (outcome, body) = run_check(&block).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::TlsVersionTooLow);
    assert!(
        outcome
            .message
            .contains("negotiated TLS 1.2, below `min_version` 1.3"),
        "{}",
        outcome.message
    );
    assert_eq!(
        metric(
            &body,
            "readiness_tls_version_info{check=\"cert\",version=\"1.2\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn pem_bundle_file_reports_chain() {
    let fixture = Fixture::new();
    let intermediate = fixture
        .ca
        .intermediate("Readiness Test Intermediate", Duration::days(200));
    let leaf = intermediate.leaf(&[HOST], Duration::days(-1), Duration::days(30));
    // A Secret mounted as a file: leaf, intermediate and the private key in one PEM file.
    let bundle = fixture.dir.path().join("tls.crt");
    std::fs::write(
        &bundle,
        format!("{}{}{}", leaf.cert_pem, intermediate.cert_pem, leaf.key_pem),
    )
    .unwrap();

    let block = format!(
        "file: {}\nserver_name: {HOST}\nca_file: {}",
        bundle.display(),
        fixture.ca_file().display()
    );
    let (outcome, body) = run_check(&block).await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert!(outcome.message.contains("of file `"), "{}", outcome.message);
    assert!(
        !outcome.message.contains("PRIVATE KEY"),
        "{}",
        outcome.message
    );
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    assert_eq!(
        metric(&body, CHAIN_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
    // A file negotiates no version, so no version series exists.
    assert!(
        !body.contains("readiness_tls_version_info{check=\"cert\""),
        "{body}"
    );
}

#[tokio::test]
async fn expired_pem_file_fails_with_date() {
    let fixture = Fixture::new();
    let leaf = fixture
        .ca
        .leaf(&[HOST], Duration::days(-30), Duration::days(-1));
    let file = fixture.dir.path().join("expired.crt");
    std::fs::write(&file, &leaf.cert_pem).unwrap();

    let block = format!(
        "file: {}\nca_file: {}",
        file.display(),
        fixture.ca_file().display()
    );
    let (outcome, body) = run_check(&block).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::CertExpired);
    assert_eq!(
        metric(&body, LEAF_NOT_AFTER),
        Some(not_after(&leaf.cert_der))
    );
}

#[tokio::test]
async fn missing_pem_file_is_error() {
    let fixture = Fixture::new();
    let block = format!(
        "file: {}\nca_file: {}",
        fixture.dir.path().join("absent.crt").display(),
        fixture.ca_file().display()
    );

    let (outcome, body) = run_check(&block).await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::FileUnreadable);
    assert!(
        outcome.message.contains("absent.crt` cannot be read"),
        "{}",
        outcome.message
    );
    assert_eq!(metric(&body, LEAF_NOT_AFTER), None);
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let fixture = Fixture::new();
    let port = support::closed_port().await;
    let block = format!(
        "address: 127.0.0.1:{port}\nca_file: {}",
        fixture.ca_file().display()
    );

    let (outcome, _) = run_check(&block).await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::ConnectionRefused);
}

#[tokio::test]
async fn plain_tcp_server_is_tls_error() {
    let fixture = Fixture::new();
    let server = support::serve_fn(|_| support::respond(200, "plain")).await;

    let (outcome, _) = run_check(&server_block(&server, &fixture.ca_file())).await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::TlsError);
    assert!(
        outcome.message.contains("TLS handshake with"),
        "{}",
        outcome.message
    );
}

/// Loads a configuration with one `tls` block and returns every problem message.
/// A `ca_file` with a test root is added unless the block sets one, so that no problem depends on
/// the machine's root store.
fn problems(tls_block: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut tls_block = tls_block.to_string();
    if !tls_block.contains("ca_file") {
        let ca_file = TestCa::new("Config Test Root").write(dir.path());
        tls_block.push_str(&format!("\nca_file: {}", ca_file.display()));
    }
    let indented: String = tls_block
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    let yaml = format!(
        "checks:\n  - id: cert\n    title: Certificate\n    section: TLS\n    severity: critical\n    tls:\n{indented}"
    );
    let path = support::write_config(dir.path(), &yaml);
    match config::load_with_env(&path, Some(HashMap::new())) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn config_rejects_address_without_port() {
    assert_eq!(
        problems("address: api.example.com"),
        vec!["line 7: check `cert`, field `tls.address`: invalid address `api.example.com`: the port is missing; write host and port, such as `api.example.com:443` or `[2001:db8::1]:443`".to_string()]
    );
}

#[test]
fn config_rejects_ca_file_without_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();

    let found = problems(&format!(
        "address: api.example.com:443\nca_file: {}",
        empty.display()
    ));

    assert_eq!(
        found,
        vec![format!("line 8: check `cert`, field `tls.ca_file`: CA file `{}` contains no `BEGIN CERTIFICATE` block", empty.display())]
    );
}

#[test]
fn config_rejects_bad_port_and_unbracketed_ipv6() {
    let bad_port = problems("address: api.example.com:https");
    assert_eq!(bad_port.len(), 1, "{bad_port:?}");
    assert!(
        bad_port[0].contains(
            "invalid address `api.example.com:https`: the port is not a number from 1 to 65535"
        ),
        "{bad_port:?}"
    );

    let ipv6 = problems("address: 2001:db8::1:443");
    assert_eq!(ipv6.len(), 1, "{ipv6:?}");
    assert!(
        ipv6[0].contains("an IPv6 address needs brackets"),
        "{ipv6:?}"
    );
}

#[test]
fn config_rejects_negative_min_days_left() {
    assert_eq!(
        problems("address: api.example.com:443\nmin_days_left: -3"),
        vec!["line 8: check `cert`, field `tls.min_days_left`: `-3` is negative; use a number of days of 0 or more, such as `14`".to_string()]
    );
}

#[test]
fn config_rejects_file_and_address_together() {
    assert_eq!(
        problems("address: api.example.com:443\nfile: /etc/tls/tls.crt"),
        vec!["line 8: check `cert`, field `tls.file`: both `address` and `file` are set; a tls check reads either a server or a PEM file, so remove one of them".to_string()]
    );
}

#[test]
fn config_rejects_missing_target() {
    let found = problems("min_days_left: 10");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("neither `address` nor `file` is set"),
        "{found:?}"
    );
}

#[test]
fn config_rejects_unknown_min_version() {
    let found = problems("address: api.example.com:443\nmin_version: \"1.1\"");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("invalid TLS version `1.1`; use `1.2` or `1.3`"),
        "{found:?}"
    );
}

#[test]
fn config_accepts_numeric_min_version() {
    assert_eq!(
        problems("address: api.example.com:443\nmin_version: 1.3"),
        Vec::<String>::new()
    );
}

#[test]
fn config_rejects_min_version_with_file() {
    let found = problems("file: /etc/tls/tls.crt\nmin_version: \"1.3\"");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("has no effect with `file`"), "{found:?}");
}

#[tokio::test]
async fn huge_pem_file_not_read() {
    // A 4 GiB file used to be read whole into memory on every run.
    let fixture = Fixture::new();
    let path = fixture.dir.path().join("huge.crt");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let block = format!(
        "file: {}\nca_file: {}",
        path.display(),
        fixture.ca_file().display()
    );

    let (outcome, _) = run_check(&block).await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::FileUnreadable);
    assert!(
        outcome
            .message
            .contains("huge.crt` cannot be read: larger than the limit of 16777216 bytes"),
        "{}",
        outcome.message
    );
}
