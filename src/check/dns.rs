//! The `dns` check kind: one query for a name and record type, with conditions on the records.
//!
//! The query goes to a given name server, or to the name servers of the system configuration
//! (`/etc/resolv.conf` on Unix). CNAMEs are followed, and the records of the queried type at the
//! end of the chain are compared with the expected values.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use serde::Deserialize;

use super::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

const DEFAULT_PORT: u16 = 53;
/// How many values a message lists before it shortens the list.
const MAX_VALUES_SHOWN: usize = 8;

/// The number of records of the queried type in the final answer.
pub static RECORDS: MeasureFamily = MeasureFamily {
    name: "readiness_dns_records",
    help: "Number of records of the queried type that a dns check received after following CNAMEs",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&RECORDS];

/// The record types a check can query.
const SUPPORTED_TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::TXT,
    RecordType::MX,
    RecordType::NS,
];

/// The `dns` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    nameserver: Option<String>,
    expect: Option<Vec<String>>,
    #[serde(rename = "match")]
    match_mode: Option<String>,
}

/// The comparison of the received values with the expected ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchMode {
    /// The received values are exactly the expected set.
    Exact,
    /// Every expected value is among the received values; others may be present.
    Subset,
}

/// A validated `dns` check.
#[derive(Debug)]
pub struct DnsCheck {
    /// Fully qualified, so search domains of the system configuration never apply.
    name: Name,
    record_type: RecordType,
    nameserver: Option<SocketAddr>,
    /// Canonical forms of the expected values; empty when any record passes.
    expect: BTreeSet<String>,
    match_mode: MatchMode,
}

impl DnsCheck {
    /// Validates the `dns` block, recording every problem in `ctx`.
    pub fn build(spec: DnsSpec, ctx: &mut BuildContext<'_>) -> Option<DnsCheck> {
        let name = parse_name(&spec.name);
        if name.is_none() {
            ctx.problem(
                "dns.name",
                format!(
                    "invalid DNS name `{}`; write a name such as `api.example.com`",
                    spec.name
                ),
            );
        }
        let record_type = SUPPORTED_TYPES.iter().copied().find(|candidate| {
            candidate
                .to_string()
                .eq_ignore_ascii_case(spec.record_type.trim())
        });
        if record_type.is_none() {
            ctx.problem(
                "dns.type",
                format!(
                    "unknown record type `{}`; use one of {}",
                    spec.record_type,
                    type_list()
                ),
            );
        }
        let nameserver = match &spec.nameserver {
            Some(text) => {
                let parsed = parse_nameserver(text);
                if parsed.is_none() {
                    ctx.problem(
                        "dns.nameserver",
                        format!("invalid name server `{text}`; write an IP address with an optional port, such as `10.0.0.10`, `10.0.0.10:53` or `[2001:db8::53]:53`"),
                    );
                }
                Some(parsed)
            }
            None => None,
        };

        let match_mode = match spec.match_mode.as_deref() {
            None | Some("exact") => Some(MatchMode::Exact),
            Some("subset") => Some(MatchMode::Subset),
            Some(other) => {
                ctx.problem(
                    "dns.match",
                    format!("unknown match mode `{other}`; use `exact` or `subset`"),
                );
                None
            }
        };
        if spec.match_mode.is_some() && spec.expect.is_none() {
            ctx.problem(
                "dns.match",
                "has no effect without `expect`; list the expected values or remove it",
            );
        }
        let expect = match (&spec.expect, record_type) {
            (Some(values), _) if values.is_empty() => {
                ctx.problem(
                    "dns.expect",
                    "list is empty; name at least one expected value, or remove `expect` to pass on any record",
                );
                None
            }
            (Some(values), Some(record_type)) => canonical_expected(ctx, record_type, values),
            (None, _) => Some(BTreeSet::new()),
            (Some(_), None) => None,
        };

        // `Some(None)` marks a name server that is set but invalid.
        if matches!(nameserver, Some(None)) {
            return None;
        }
        Some(DnsCheck {
            name: name?,
            record_type: record_type?,
            nameserver: nameserver.flatten(),
            expect: expect?,
            match_mode: match_mode?,
        })
    }

    /// Sends the query once and compares the records.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        // The resolver gives up a little before the scheduler's deadline, so that a timeout
        // outcome names the query and the name server that did not answer.
        let timeout = timeout.mul_f64(0.9);
        let resolver = match self.resolver(timeout) {
            Ok(resolver) => resolver,
            Err(message) => return Outcome::error(Reason::ConnectionFailed, message),
        };
        match resolver.lookup(self.name.clone(), self.record_type).await {
            Ok(lookup) => self.evaluate(lookup.answers()),
            Err(err) => self.classify(&err, timeout),
        }
    }

    fn server(&self) -> String {
        match self.nameserver {
            Some(address) => format!("name server {address}"),
            None => "the system name servers".to_string(),
        }
    }

    /// Builds a resolver for one run: no cache, no hosts file, one attempt per name server.
    fn resolver(&self, timeout: Duration) -> Result<TokioResolver, String> {
        let mut builder = match self.nameserver {
            Some(address) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = address.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = address.port();
                let server = NameServerConfig::new(address.ip(), true, vec![udp, tcp]);
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            // NOTE: no test runs this path, because tests must not depend on the machine's
            // name servers; it differs from the tested path only in where the servers come from.
            None => TokioResolver::builder_tokio().map_err(|err| {
                format!("cannot read the system resolver configuration: {err}; set `nameserver`")
            })?,
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 0;
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        options.preserve_intermediates = true;
        builder
            .build()
            .map_err(|err| format!("cannot build the DNS resolver: {err}"))
    }

    fn evaluate(&self, answers: &[Record]) -> Outcome {
        let chain = cname_chain(answers, &self.name, self.record_type);
        let values: BTreeSet<String> = answers
            .iter()
            .filter(|record| record.record_type() == self.record_type)
            .filter(|record| self.record_type != RecordType::CNAME || record.name == self.name)
            .filter_map(|record| canonical_record(&record.data))
            .collect();
        let measures = vec![Measure::new(&RECORDS, values.len() as f64)];
        let finish = |outcome: Outcome| {
            outcome
                .with_value(values.len() as f64)
                .with_measures(measures.clone())
        };
        let subject = format!("{} {}{chain}", self.record_type, self.name);

        if values.is_empty() {
            return finish(Outcome::fail(
                Reason::Nodata,
                format!(
                    "{subject} has no {} record at {}",
                    self.record_type,
                    self.server()
                ),
            ));
        }
        let missing: Vec<&String> = self.expect.difference(&values).collect();
        let unexpected: Vec<&String> = match self.match_mode {
            MatchMode::Exact if !self.expect.is_empty() => {
                values.difference(&self.expect).collect()
            }
            _ => Vec::new(),
        };
        if missing.is_empty() && unexpected.is_empty() {
            return finish(Outcome::pass(format!("{subject}: {}", list(values.iter()))));
        }
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", list(missing.into_iter())));
        }
        if !unexpected.is_empty() {
            parts.push(format!("unexpected {}", list(unexpected.into_iter())));
        }
        finish(Outcome::fail(
            Reason::RecordMismatch,
            format!(
                "{subject} returned {}, expected {} {}: {}",
                list(values.iter()),
                match self.match_mode {
                    MatchMode::Exact => "exactly",
                    MatchMode::Subset => "at least",
                },
                list(self.expect.iter()),
                parts.join("; ")
            ),
        ))
    }

    /// Maps a lookup error to an outcome. A negative answer is a measured count of zero.
    fn classify(&self, err: &NetError, timeout: Duration) -> Outcome {
        let subject = format!("{} {}", self.record_type, self.name);
        let server = self.server();
        let zero = || vec![Measure::new(&RECORDS, 0.0)];
        match err {
            NetError::Dns(DnsError::NoRecordsFound(no_records))
                if no_records.response_code == ResponseCode::NXDomain =>
            {
                Outcome::fail(
                    Reason::Nxdomain,
                    format!("{subject}: the name does not exist (NXDOMAIN from {server})"),
                )
                .with_value(0.0)
                .with_measures(zero())
            }
            NetError::Dns(DnsError::NoRecordsFound(_)) => Outcome::fail(
                Reason::Nodata,
                format!("{subject}: the name exists but has no {} record (NODATA from {server})", self.record_type),
            )
            .with_value(0.0)
            .with_measures(zero()),
            NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => Outcome::fail(
                Reason::Servfail,
                format!("{subject}: {server} answered SERVFAIL, so it could not resolve the name"),
            ),
            NetError::Dns(DnsError::ResponseCode(code)) => Outcome::error(
                Reason::DnsError,
                format!("{subject}: {server} answered {}", code.to_str().to_uppercase()),
            ),
            NetError::Timeout => Outcome::error(
                Reason::Timeout,
                format!(
                    "{subject}: no answer from {server} within {}",
                    super::format_duration(timeout)
                ),
            ),
            NetError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                Outcome::error(
                    Reason::ConnectionRefused,
                    format!("{subject}: {server} refused the connection; check that it is running and listening on that port"),
                )
            }
            other => Outcome::error(
                Reason::ConnectionFailed,
                format!("{subject}: query to {server} failed: {other}"),
            ),
        }
    }
}

/// Parses a name and makes it fully qualified.
fn parse_name(text: &str) -> Option<Name> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "." {
        return None;
    }
    let mut name = Name::from_utf8(trimmed).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// Parses `IP`, `IP:port` or `[IPv6]:port`; the port defaults to 53.
fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    let address = match text.parse::<SocketAddr>() {
        Ok(address) => address,
        Err(_) => SocketAddr::new(text.parse::<IpAddr>().ok()?, DEFAULT_PORT),
    };
    (address.port() != 0).then_some(address)
}

fn type_list() -> String {
    let names: Vec<String> = SUPPORTED_TYPES.iter().map(ToString::to_string).collect();
    names.join(", ")
}

/// Converts the expected values to the canonical form of [`canonical_record`], recording a
/// problem for each value that is not valid for the record type.
fn canonical_expected(
    ctx: &mut BuildContext<'_>,
    record_type: RecordType,
    values: &[String],
) -> Option<BTreeSet<String>> {
    let mut canonical = BTreeSet::new();
    let mut valid = true;
    for (index, value) in values.iter().enumerate() {
        match canonical_value(record_type, value) {
            Ok(value) => {
                canonical.insert(value);
            }
            Err(example) => {
                ctx.problem(
                    format!("dns.expect[{index}]"),
                    format!("invalid {record_type} value `{value}`; write {example}"),
                );
                valid = false;
            }
        }
    }
    valid.then_some(canonical)
}

/// Parses one expected value; the error is an example of a valid value.
fn canonical_value(record_type: RecordType, value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    match record_type {
        RecordType::A => value
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| "an IPv4 address such as `192.0.2.10`"),
        RecordType::AAAA => value
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| "an IPv6 address such as `2001:db8::10`"),
        RecordType::CNAME | RecordType::NS => parse_name(value)
            .map(|name| canonical_name(&name))
            .ok_or("a DNS name such as `app.example.com`"),
        RecordType::MX => {
            let example = "a preference and a host, such as `10 mail.example.com`";
            let (preference, host) = value.split_once(char::is_whitespace).ok_or(example)?;
            let preference = preference.parse::<u16>().map_err(|_| example)?;
            let host = parse_name(host).ok_or(example)?;
            Ok(format!("{preference} {}", canonical_name(&host)))
        }
        _ => Ok(value.to_string()),
    }
}

/// Formats a record's value the way expected values are compared: IP addresses in their
/// standard notation, names lowercase with a final dot, MX as `preference host`, and TXT as its
/// strings joined without separator.
fn canonical_record(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(aaaa) => aaaa.0.to_string(),
        RData::CNAME(cname) => canonical_name(&cname.0),
        RData::NS(ns) => canonical_name(&ns.0),
        RData::MX(mx) => format!("{} {}", mx.preference, canonical_name(&mx.exchange)),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|part| String::from_utf8_lossy(part))
            .collect(),
        _ => return None,
    })
}

fn canonical_name(name: &Name) -> String {
    let mut name = name.to_lowercase();
    name.set_fqdn(true);
    name.to_ascii()
}

/// Describes the CNAMEs followed from `name`, such as ` (via CNAME app.example.com.)`.
fn cname_chain(answers: &[Record], name: &Name, record_type: RecordType) -> String {
    if record_type == RecordType::CNAME {
        return String::new();
    }
    let mut current = name.clone();
    let mut targets = Vec::new();
    // A chain longer than the answer is a loop; stop there.
    for _ in 0..answers.len() {
        let next = answers.iter().find_map(|record| match &record.data {
            RData::CNAME(cname) if record.name == current => Some(cname.0.clone()),
            _ => None,
        });
        let Some(next) = next else { break };
        targets.push(canonical_name(&next));
        current = next;
    }
    if targets.is_empty() {
        String::new()
    } else {
        format!(" (via CNAME {})", targets.join(" -> "))
    }
}

fn list<'a>(values: impl Iterator<Item = &'a String>) -> String {
    let values: Vec<&String> = values.collect();
    let shown: Vec<String> = values
        .iter()
        .take(MAX_VALUES_SHOWN)
        .map(|value| format!("`{value}`"))
        .collect();
    let more = if values.len() > MAX_VALUES_SHOWN {
        format!(" and {} more", values.len() - MAX_VALUES_SHOWN)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_port_defaults_to_53() {
        assert_eq!(
            parse_nameserver("10.0.0.10"),
            Some("10.0.0.10:53".parse().unwrap())
        );
        assert_eq!(
            parse_nameserver("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_nameserver("10.0.0.10:0"), None);
        assert_eq!(parse_nameserver("dns.example.com:53"), None);
    }

    #[test]
    fn expected_values_become_canonical() {
        assert_eq!(
            canonical_value(RecordType::CNAME, "App.Example.COM").unwrap(),
            "app.example.com."
        );
        assert_eq!(
            canonical_value(RecordType::MX, "10  Mail.example.com.").unwrap(),
            "10 mail.example.com."
        );
        assert_eq!(
            canonical_value(RecordType::AAAA, "2001:DB8:0::1").unwrap(),
            "2001:db8::1"
        );
        assert!(canonical_value(RecordType::A, "2001:db8::1").is_err());
        assert!(canonical_value(RecordType::MX, "mail.example.com").is_err());
    }
}
