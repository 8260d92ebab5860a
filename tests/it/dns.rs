//! The `dns` kind against name servers on 127.0.0.1: an in-process hickory-server with an
//! in-memory zone, a responder that answers SERVFAIL, and a socket that never answers.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use hickory_server::Server;
use readiness_exporter::check::{Outcome, Reason, Status};
use readiness_exporter::config::{self, ConfigError};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::support;

/// An authoritative name server for `zone.test.` on UDP and TCP, stopped when dropped.
struct ZoneServer {
    addr: SocketAddr,
    _server: Server<Catalog>,
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// Builds the records of `zone.test.`, covering every record type the kind supports.
fn zone_records() -> Vec<Record> {
    let record = |owner: &str, data: RData| Record::from_rdata(name(owner), 300, data);
    vec![
        record(
            "zone.test.",
            RData::SOA(SOA::new(
                name("ns1.zone.test."),
                name("hostmaster.zone.test."),
                1,
                3600,
                600,
                86400,
                60,
            )),
        ),
        record("zone.test.", RData::NS(NS(name("ns1.zone.test.")))),
        record("zone.test.", RData::NS(NS(name("ns2.zone.test.")))),
        record(
            "zone.test.",
            RData::MX(MX::new(10, name("mail.zone.test."))),
        ),
        record(
            "zone.test.",
            RData::MX(MX::new(20, name("backup.zone.test."))),
        ),
        record(
            "zone.test.",
            RData::TXT(TXT::new(vec!["v=spf1 -all".to_string()])),
        ),
        record(
            "verify.zone.test.",
            RData::TXT(TXT::new(vec!["site-".to_string(), "token".to_string()])),
        ),
        record("api.zone.test.", RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))),
        record("api.zone.test.", RData::A(A(Ipv4Addr::new(192, 0, 2, 2)))),
        record(
            "api.zone.test.",
            RData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
        ),
        record(
            "v4only.zone.test.",
            RData::A(A(Ipv4Addr::new(192, 0, 2, 9))),
        ),
        // www -> edge -> origin: a chain of two CNAMEs ending in an A record.
        record(
            "www.zone.test.",
            RData::CNAME(CNAME(name("edge.zone.test."))),
        ),
        record(
            "edge.zone.test.",
            RData::CNAME(CNAME(name("origin.zone.test."))),
        ),
        record(
            "origin.zone.test.",
            RData::A(A(Ipv4Addr::new(192, 0, 2, 10))),
        ),
    ]
}

async fn zone_server() -> ZoneServer {
    let origin = name("zone.test.");
    let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    for record in zone_records() {
        assert!(zone.upsert_mut(record, 1));
    }
    let mut catalog = Catalog::new();
    let handler: Arc<dyn ZoneHandler> = Arc::new(zone);
    catalog.upsert(LowerName::new(&origin), vec![handler]);

    // TCP on the same port serves answers too large for UDP, as a real server would. The UDP
    // port is free for TCP only by chance, so another port is tried when TCP has it in use.
    let mut attempt = 0;
    let (socket, listener, addr) = loop {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(listener) => break (socket, listener, addr),
            Err(err) if attempt < 20 => {
                attempt += 1;
                eprintln!("TCP port {} in use ({err}); trying another", addr.port());
            }
            Err(err) => panic!("no port free for both UDP and TCP: {err}"),
        }
    };
    let mut server = Server::new(catalog);
    server.register_socket(socket);
    server.register_listener(listener, Duration::from_secs(5), 4096);
    ZoneServer {
        addr,
        _server: server,
    }
}

/// A UDP responder that answers every query with SERVFAIL and nothing else.
async fn servfail_server() -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        loop {
            let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
                continue;
            };
            if length < 12 {
                continue;
            }
            // The response repeats the query with the header changed: QR set (byte 2, keeping
            // the opcode and RD bits), and byte 3 holding RA and RCODE 2, which is SERVFAIL.
            let mut response = buffer[..length].to_vec();
            response[2] |= 0x80;
            response[3] = 0x80 | 0x02;
            let _ = socket.send_to(&response, peer).await;
        }
    });
    (addr, task)
}

/// Runs one check named `record` with the given `dns` block and returns its outcome and the
/// `/metrics` body.
async fn run_check(dns_block: &str, timeout: &str) -> (Outcome, String) {
    let indented: String = dns_block
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    let yaml = format!(
        "checks:\n  - id: record\n    title: DNS record of the API\n    section: DNS\n    severity: critical\n    timeout: {timeout}\n    dns:\n{indented}"
    );
    let exporter = support::start_exporter(&yaml).await;
    exporter.wait_ready().await;
    let outcome = exporter
        .exporter
        .state()
        .entry("record")
        .and_then(|entry| entry.last)
        .expect("the check ran")
        .outcome;
    // Shown when a test fails.
    println!("{} {}: {}", outcome.status, outcome.reason, outcome.message);
    let (status, _, body) = support::get(&exporter.url("/metrics")).await;
    assert_eq!(status, 200);
    (outcome, body)
}

async fn query(server: &ZoneServer, dns_block: &str) -> (Outcome, String) {
    run_check(&format!("nameserver: {}\n{dns_block}", server.addr), "5s").await
}

const RECORDS: &str = "readiness_dns_records{check=\"record\"}";

/// Returns the value of the series `series` (name with labels) in an exposition, if present.
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().unwrap())
    })
}

#[tokio::test]
async fn dns_a_records_match_exact_set() {
    let server = zone_server().await;

    let (outcome, body) = query(
        &server,
        "name: api.zone.test\ntype: A\nexpect: [192.0.2.2, 192.0.2.1]",
    )
    .await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(
        outcome.message,
        "A api.zone.test.: `192.0.2.1`, `192.0.2.2`"
    );
    assert_eq!(metric(&body, RECORDS), Some(2.0));
    assert_eq!(
        metric(&body, "readiness_check_success{check=\"record\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn exact_match_fails_on_extra_record() {
    let server = zone_server().await;

    let (outcome, body) = query(
        &server,
        "name: api.zone.test\ntype: A\nexpect: [192.0.2.1]\nmatch: exact",
    )
    .await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::RecordMismatch);
    assert!(
        outcome.message.ends_with("unexpected `192.0.2.2`"),
        "{}",
        outcome.message
    );
    assert_eq!(metric(&body, RECORDS), Some(2.0));
}

#[tokio::test]
async fn subset_match_allows_extra_record() {
    let server = zone_server().await;

    let (outcome, _) = query(
        &server,
        "name: api.zone.test\ntype: A\nexpect: [192.0.2.1]\nmatch: subset",
    )
    .await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
}

#[tokio::test]
async fn subset_match_fails_on_missing_record() {
    let server = zone_server().await;

    let (outcome, _) = query(
        &server,
        "name: api.zone.test\ntype: A\nexpect: [192.0.2.1, 192.0.2.3]\nmatch: subset",
    )
    .await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::RecordMismatch);
    assert!(
        outcome.message.ends_with("missing `192.0.2.3`"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn aaaa_record_matches() {
    let server = zone_server().await;

    let (outcome, body) = query(
        &server,
        "name: api.zone.test\ntype: AAAA\nexpect: [\"2001:DB8::1\"]",
    )
    .await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(metric(&body, RECORDS), Some(1.0));
}

#[tokio::test]
async fn cname_chain_is_followed_to_address() {
    let server = zone_server().await;

    let (outcome, body) = query(
        &server,
        "name: www.zone.test\ntype: A\nexpect: [192.0.2.10]",
    )
    .await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert!(
        outcome
            .message
            .contains("(via CNAME edge.zone.test. -> origin.zone.test.)"),
        "{}",
        outcome.message
    );
    // Only the final A record counts, not the CNAMEs on the way.
    assert_eq!(metric(&body, RECORDS), Some(1.0));
}

#[tokio::test]
async fn cname_query_returns_first_target() {
    let server = zone_server().await;

    let (outcome, body) = query(
        &server,
        "name: www.zone.test\ntype: CNAME\nexpect: [Edge.Zone.Test]",
    )
    .await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(metric(&body, RECORDS), Some(1.0));
}

#[tokio::test]
async fn txt_strings_are_joined() {
    let server = zone_server().await;

    let (outcome, _) = query(
        &server,
        "name: verify.zone.test\ntype: TXT\nexpect: [site-token]",
    )
    .await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
}

#[tokio::test]
async fn mx_records_match_with_preference() {
    let server = zone_server().await;

    let (outcome, body) = query(
        &server,
        "name: zone.test\ntype: MX\nexpect: [\"10 mail.zone.test\", \"20 backup.zone.test.\"]",
    )
    .await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(metric(&body, RECORDS), Some(2.0));
}

#[tokio::test]
async fn ns_record_mismatch_names_difference() {
    let server = zone_server().await;

    let (outcome, _) = query(
        &server,
        "name: zone.test\ntype: NS\nexpect: [ns1.zone.test, ns3.zone.test]",
    )
    .await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::RecordMismatch);
    assert!(
        outcome
            .message
            .ends_with("missing `ns3.zone.test.`; unexpected `ns2.zone.test.`"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn any_record_passes_without_expect() {
    let server = zone_server().await;

    let (outcome, _) = query(&server, "name: zone.test\ntype: TXT").await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
}

#[tokio::test]
async fn missing_name_is_nxdomain() {
    let server = zone_server().await;

    let (outcome, body) = query(&server, "name: missing.zone.test\ntype: A").await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::Nxdomain);
    assert!(outcome.message.contains("NXDOMAIN"), "{}", outcome.message);
    // The name server answered that there are no records, so the count is a known zero.
    assert_eq!(metric(&body, RECORDS), Some(0.0));
    assert_eq!(
        metric(
            &body,
            "readiness_check_failures_total{check=\"record\",reason=\"nxdomain\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn missing_type_is_nodata() {
    let server = zone_server().await;

    let (outcome, body) = query(&server, "name: v4only.zone.test\ntype: AAAA").await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::Nodata);
    assert!(outcome.message.contains("NODATA"), "{}", outcome.message);
    assert_eq!(metric(&body, RECORDS), Some(0.0));
}

#[tokio::test]
async fn servfail_answer_fails() {
    let (addr, task) = servfail_server().await;

    let (outcome, body) = run_check(
        &format!("nameserver: {addr}\nname: api.zone.test\ntype: A"),
        "5s",
    )
    .await;
    task.abort();

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::Servfail);
    assert!(outcome.message.contains("SERVFAIL"), "{}", outcome.message);
    // SERVFAIL carries no records, so no count is exported.
    assert_eq!(metric(&body, RECORDS), None);
}

#[tokio::test]
async fn silent_name_server_times_out() {
    // A bound socket that never reads: queries to it get no answer.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();

    let (outcome, body) = run_check(
        &format!("nameserver: {addr}\nname: api.zone.test\ntype: A"),
        "1s",
    )
    .await;
    drop(silent);

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::Timeout);
    assert_eq!(
        outcome.message,
        format!("A api.zone.test.: no answer from name server {addr} within 900ms")
    );
    assert_eq!(metric(&body, RECORDS), None);
    assert_eq!(
        metric(
            &body,
            "readiness_check_failures_total{check=\"record\",reason=\"timeout\"}"
        ),
        Some(1.0)
    );
}

/// Loads a configuration with one `dns` block and returns every problem message.
fn problems(dns_block: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let indented: String = dns_block
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    let yaml = format!(
        "checks:\n  - id: record\n    title: DNS record\n    section: DNS\n    severity: critical\n    dns:\n{indented}"
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
fn config_rejects_unknown_record_type() {
    assert_eq!(
        problems("name: api.example.com\ntype: SRV"),
        vec!["line 8: check `record`, field `dns.type`: unknown record type `SRV`; use one of A, AAAA, CNAME, TXT, MX, NS".to_string()]
    );
}

#[test]
fn config_rejects_bad_nameserver() {
    assert_eq!(
        problems("name: api.example.com\ntype: A\nnameserver: dns.example.com:53"),
        vec!["line 9: check `record`, field `dns.nameserver`: invalid name server `dns.example.com:53`; write an IP address with an optional port, such as `10.0.0.10`, `10.0.0.10:53` or `[2001:db8::53]:53`".to_string()]
    );
}

#[test]
fn config_rejects_value_of_wrong_type() {
    assert_eq!(
        problems("name: api.example.com\ntype: A\nexpect: [\"2001:db8::1\"]"),
        vec!["line 9: check `record`, field `dns.expect[0]`: invalid A value `2001:db8::1`; write an IPv4 address such as `192.0.2.10`".to_string()]
    );
}

#[test]
fn config_rejects_unknown_match_mode() {
    let found = problems("name: api.example.com\ntype: A\nexpect: [192.0.2.1]\nmatch: all");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("unknown match mode `all`; use `exact` or `subset`"),
        "{found:?}"
    );
}

#[test]
fn config_rejects_match_without_expect() {
    let found = problems("name: api.example.com\ntype: A\nmatch: subset");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("has no effect without `expect`"),
        "{found:?}"
    );
}

#[test]
fn config_accepts_lowercase_type_and_bare_ip() {
    assert_eq!(
        problems("name: api.example.com\ntype: aaaa\nnameserver: 10.0.0.10"),
        Vec::<String>::new()
    );
}
