//! The `kubernetes_ingress_tls` check kind: every host of every selected Ingress is served with
//! TLS from a `kubernetes.io/tls` Secret whose certificate is valid and names the host.
//!
//! Secrets are read one at a time by name, so the exporter's RBAC can list the exact Secret
//! names (`resourceNames`) instead of granting every Secret of the namespace. Only the
//! certificate (`tls.crt`) is parsed; messages carry Secret names, never their contents.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use serde::Deserialize;
use x509_parser::extensions::GeneralName;

use super::{get_opt, list_all, validate_selector, ApiCall, Connection};
use crate::check::{format_duration, Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

const DEFAULT_MIN_VALIDITY: Duration = Duration::from_secs(14 * 24 * 3600);

/// The end of the validity period of each certificate an Ingress serves.
pub static NOT_AFTER: MeasureFamily = MeasureFamily {
    name: "readiness_kubernetes_ingress_certificate_not_after_timestamp",
    help: "End of the validity period of the certificate in an Ingress TLS Secret, as a Unix timestamp",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &["ingress", "secret"],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&NOT_AFTER];

/// The `kubernetes_ingress_tls` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressTlsSpec {
    namespaces: Vec<String>,
    selector: Option<String>,
    read_secrets: Option<bool>,
    min_validity: Option<String>,
}

/// A validated `kubernetes_ingress_tls` check.
#[derive(Debug)]
pub struct IngressTlsCheck {
    connection: Arc<Connection>,
    namespaces: Vec<String>,
    selector: Option<String>,
    read_secrets: bool,
    min_validity: Duration,
}

/// One finding, with the rank that decides the outcome's reason (lowest first).
struct Finding {
    reason: Reason,
    message: String,
}

fn rank(reason: Reason) -> u8 {
    match reason {
        Reason::TlsNotConfigured => 0,
        Reason::TlsSecretInvalid => 1,
        Reason::CertificateExpired => 2,
        Reason::CertificateHostMismatch => 3,
        _ => 4,
    }
}

impl IngressTlsCheck {
    /// Returns the API connection the check reads through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Validates the `kubernetes_ingress_tls` block, recording every problem in `ctx`.
    pub fn build(spec: IngressTlsSpec, ctx: &mut BuildContext<'_>) -> Option<IngressTlsCheck> {
        let before = ctx.problem_count();
        if spec.namespaces.is_empty() || spec.namespaces.iter().any(|n| n.trim().is_empty()) {
            ctx.problem(
                "kubernetes_ingress_tls.namespaces",
                "list one or more namespaces, such as `[shop]`",
            );
        }
        if let Some(selector) = &spec.selector {
            validate_selector(ctx, "kubernetes_ingress_tls.selector", selector);
        }
        let min_validity = match &spec.min_validity {
            Some(value) => ctx.duration("kubernetes_ingress_tls.min_validity", value),
            None => Some(DEFAULT_MIN_VALIDITY),
        };
        let read_secrets = spec.read_secrets.unwrap_or(true);
        if !read_secrets && spec.min_validity.is_some() {
            ctx.problem(
                "kubernetes_ingress_tls.min_validity",
                "has no effect while `read_secrets` is false; set `read_secrets: true` or remove it",
            );
        }
        if ctx.problem_count() > before {
            return None;
        }
        Some(IngressTlsCheck {
            connection: ctx.kubernetes.clone(),
            namespaces: spec.namespaces,
            selector: spec.selector,
            read_secrets,
            min_validity: min_validity?,
        })
    }

    /// Lists the selected Ingresses, reads their TLS Secrets and evaluates them.
    pub async fn run(&self) -> Outcome {
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(outcome) => return outcome,
        };
        let mut params = ListParams::default();
        if let Some(selector) = &self.selector {
            params = params.labels(selector);
        }
        let mut findings = Vec::new();
        let mut measures = Vec::new();
        let mut hosts = 0;
        let mut ingresses = 0;
        for namespace in &self.namespaces {
            let api: Api<Ingress> = Api::namespaced(client.clone(), namespace);
            let call = ApiCall::new::<Ingress>("list", Some(namespace));
            let listed = match list_all(&api, &call, &params).await {
                Ok(listed) => listed,
                Err(outcome) => return outcome,
            };
            let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
            for ingress in &listed {
                ingresses += 1;
                let name = format!(
                    "{namespace}/{}",
                    ingress.metadata.name.clone().unwrap_or_default()
                );
                let (host_count, host_findings, needed_secrets) = match_hosts(&name, ingress);
                hosts += host_count;
                findings.extend(host_findings);
                if !self.read_secrets {
                    continue;
                }
                for (secret, secret_hosts) in needed_secrets {
                    let call = ApiCall::new::<Secret>("get", Some(namespace)).named(&secret);
                    let object = match get_opt(&secrets, &call, &secret).await {
                        Ok(object) => object,
                        Err(outcome) => return outcome,
                    };
                    let (found, not_after) =
                        self.evaluate_secret(&name, &secret, object.as_ref(), &secret_hosts);
                    findings.extend(found);
                    if let Some(not_after) = not_after {
                        measures.push(Measure {
                            family: &NOT_AFTER,
                            label_values: vec![name.clone(), secret.clone()],
                            value: not_after as f64,
                        });
                    }
                }
            }
        }
        if ingresses == 0 {
            return Outcome::fail(
                Reason::ObjectNotFound,
                format!(
                    "no Ingress in namespace(s) {}{}",
                    self.namespaces.join(", "),
                    match &self.selector {
                        Some(selector) => format!(" matches selector `{selector}`"),
                        None => String::new(),
                    }
                ),
            );
        }
        if findings.is_empty() {
            let secrets = if self.read_secrets {
                format!(
                    " from valid kubernetes.io/tls Secrets (valid for at least {})",
                    format_duration(self.min_validity)
                )
            } else {
                " (Secrets not read)".to_string()
            };
            return Outcome::pass(format!(
                "{hosts} host(s) of {ingresses} Ingress(es) served with TLS{secrets}"
            ))
            .with_value(hosts as f64)
            .with_measures(measures);
        }
        findings.sort_by_key(|finding| rank(finding.reason));
        let reason = findings[0].reason;
        let messages: Vec<String> = findings
            .into_iter()
            .map(|finding| finding.message)
            .collect();
        Outcome::fail(reason, messages.join("; ")).with_measures(measures)
    }

    /// Checks one Secret: present, of type `kubernetes.io/tls`, with a parseable certificate
    /// that is valid now and for `min_validity`, and names every host. Returns the findings and
    /// the certificate's `notAfter` as a Unix timestamp.
    fn evaluate_secret(
        &self,
        ingress: &str,
        name: &str,
        secret: Option<&Secret>,
        hosts: &[String],
    ) -> (Vec<Finding>, Option<i64>) {
        let invalid = |message: String| {
            (
                vec![Finding {
                    reason: Reason::TlsSecretInvalid,
                    message: format!("{ingress}: Secret `{name}` {message}"),
                }],
                None,
            )
        };
        let Some(secret) = secret else {
            return invalid("does not exist".to_string());
        };
        let secret_type = secret.type_.as_deref().unwrap_or("Opaque");
        if secret_type != "kubernetes.io/tls" {
            return invalid(format!(
                "has type `{}`, not `kubernetes.io/tls`",
                crate::check::http::truncate(secret_type, 80)
            ));
        }
        let Some(pem) = secret.data.as_ref().and_then(|data| data.get("tls.crt")) else {
            return invalid("has no `tls.crt` key".to_string());
        };
        let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem.0) else {
            return invalid("has a `tls.crt` that is not a PEM certificate".to_string());
        };
        let Ok(certificate) = pem.parse_x509() else {
            return invalid("has a `tls.crt` that is not an X.509 certificate".to_string());
        };

        let validity = certificate.validity();
        let not_before = validity.not_before.timestamp();
        let not_after = validity.not_after.timestamp();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64);
        let mut findings = Vec::new();
        let date = |timestamp: i64| {
            time::OffsetDateTime::from_unix_timestamp(timestamp)
                .ok()
                .and_then(|date| {
                    date.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| timestamp.to_string())
        };
        if not_after <= now {
            findings.push(Finding {
                reason: Reason::CertificateExpired,
                message: format!(
                    "{ingress}: the certificate in Secret `{name}` expired at {}",
                    date(not_after)
                ),
            });
        } else if not_before > now {
            findings.push(Finding {
                reason: Reason::CertificateExpired,
                message: format!(
                    "{ingress}: the certificate in Secret `{name}` is not valid before {}",
                    date(not_before)
                ),
            });
        } else if not_after - now < self.min_validity.as_secs() as i64 {
            findings.push(Finding {
                reason: Reason::CertificateExpiresSoon,
                message: format!(
                    "{ingress}: the certificate in Secret `{name}` expires at {}, within the required {}",
                    date(not_after),
                    format_duration(self.min_validity)
                ),
            });
        }

        let names: Vec<String> = match certificate.subject_alternative_name() {
            Ok(Some(extension)) => extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let uncovered: Vec<&str> = hosts
            .iter()
            .filter(|host| !names.iter().any(|pattern| host_matches(pattern, host)))
            .map(String::as_str)
            .collect();
        if !uncovered.is_empty() {
            findings.push(Finding {
                reason: Reason::CertificateHostMismatch,
                message: format!(
                    "{ingress}: the certificate in Secret `{name}` does not name {} (it names {})",
                    uncovered.join(", "),
                    if names.is_empty() {
                        "no DNS name".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            });
        }
        (findings, Some(not_after))
    }
}

/// A TLS Secret's name and the hosts it must serve.
type SecretHosts = (String, Vec<String>);

/// Matches every host of an Ingress with its TLS entries. Returns the number of hosts, the
/// findings for hosts without a usable entry, and each Secret with the hosts it must serve.
fn match_hosts(name: &str, ingress: &Ingress) -> (usize, Vec<Finding>, Vec<SecretHosts>) {
    let spec = ingress.spec.clone().unwrap_or_default();
    let tls = spec.tls.unwrap_or_default();
    let mut findings = Vec::new();
    let mut needed_secrets: Vec<SecretHosts> = Vec::new();
    let hosts: Vec<String> = spec
        .rules
        .iter()
        .flatten()
        .filter_map(|rule| rule.host.clone())
        .collect();
    for host in &hosts {
        let entry = tls.iter().find(|entry| {
            entry
                .hosts
                .iter()
                .flatten()
                .any(|pattern| host_matches(pattern, host))
        });
        let Some(entry) = entry else {
            findings.push(Finding {
                reason: Reason::TlsNotConfigured,
                message: format!("{name}: host `{host}` has no TLS entry"),
            });
            continue;
        };
        let Some(secret) = entry.secret_name.clone() else {
            findings.push(Finding {
                reason: Reason::TlsNotConfigured,
                message: format!("{name}: the TLS entry of host `{host}` names no secretName, so the controller's default certificate is served"),
            });
            continue;
        };
        match needed_secrets
            .iter_mut()
            .find(|(known, _)| *known == secret)
        {
            Some((_, secret_hosts)) => secret_hosts.push(host.clone()),
            None => needed_secrets.push((secret, vec![host.clone()])),
        }
    }
    (hosts.len(), findings, needed_secrets)
}

/// Whether `pattern` (a host or a `*.` wildcard covering exactly one label) matches `host`,
/// ignoring case.
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::host_matches;

    #[test]
    fn wildcard_covers_one_label() {
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(host_matches("API.example.com", "api.EXAMPLE.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
    }
}
