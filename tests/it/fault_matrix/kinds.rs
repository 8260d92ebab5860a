//! The rows of the fault matrix: each check kind, its dependency, and the result each fault must
//! give. A new kind adds one entry to [`CASES`].

use readiness_exporter::check::{Reason, Status};

use super::servers::Certificates;
use super::{Connection, Dependency, Fault, KindCase, Target};

use Status::{Error, Fail};

pub static CASES: &[KindCase] = &[
    KindCase {
        name: "http",
        dependency: Dependency::Http,
        connection: None,
        block: |target| {
            format!(
                "http:\n      url: {}\n      body_matches: [\"ok\"]\n{}",
                url(target),
                ca_file(target, 6)
            )
        },
        expect: |fault| match fault {
            Fault::Huge => Some((Error, Reason::BodyTooLarge)),
            other => http_like(other),
        },
        valid_file: no_file,
    },
    KindCase {
        name: "http (secret file)",
        dependency: Dependency::File,
        connection: None,
        block: |target| {
            format!(
                "http:\n      url: http://{}/\n      headers:\n        Authorization: {{ file: {} }}\n",
                target.addr,
                target.file.display()
            )
        },
        expect: |fault| match fault {
            // Any text is a valid token, so a cut-off file is still a credential.
            Fault::Truncated => None,
            other => file_like(other, Reason::SecretUnavailable, Reason::SecretUnavailable),
        },
        valid_file: |_| "Bearer token\n".to_string(),
    },
    KindCase {
        name: "cors",
        dependency: Dependency::Http,
        connection: None,
        block: |target| {
            format!(
                "cors:\n      url: {}\n      allowed_origins: [\"https://app.example.com\"]\n{}",
                url(target),
                ca_file(target, 6)
            )
        },
        expect: |fault| match fault {
            // The body is never read. A response without CORS headers fails on them before its
            // status counts.
            Fault::Huge | Fault::Status(404 | 500) => Some((Fail, Reason::CorsOriginNotAllowed)),
            other => http_like(other),
        },
        valid_file: no_file,
    },
    KindCase {
        name: "tls",
        dependency: Dependency::Tls,
        connection: None,
        block: |target| {
            format!(
                "tls:\n      address: {}\n      server_name: localhost\n      ca_file: {}\n",
                target.addr,
                target.ca_file.display()
            )
        },
        expect: |fault| match fault {
            Fault::Down => Some((Error, Reason::ConnectionRefused)),
            Fault::Hung | Fault::Slow => Some((Error, Reason::Timeout)),
            Fault::Garbage | Fault::Truncated | Fault::Huge => Some((Error, Reason::TlsError)),
            Fault::ExpiredCert => Some((Fail, Reason::CertExpired)),
            Fault::UntrustedCert => Some((Fail, Reason::UntrustedChain)),
            Fault::Status(_) => None,
        },
        valid_file: no_file,
    },
    KindCase {
        name: "tls (file)",
        dependency: Dependency::File,
        connection: None,
        block: |target| format!("tls:\n      file: {}\n", target.file.display()),
        expect: |fault| file_like(fault, Reason::FileUnreadable, Reason::FileUnreadable),
        valid_file: |certificates| certificates.ca.cert_pem.clone(),
    },
    KindCase {
        name: "dns",
        dependency: Dependency::Dns,
        connection: None,
        block: |target| {
            format!(
                "dns:\n      name: app.example.com\n      type: A\n      nameserver: {}\n",
                target.addr
            )
        },
        expect: |fault| match fault {
            // The resolver's UDP socket is not connected, so the ICMP error of a closed port
            // never reaches it, and an unparseable reply is dropped as if it never came.
            Fault::Down | Fault::Hung | Fault::Slow | Fault::Garbage => {
                Some((Error, Reason::Timeout))
            }
            Fault::Truncated => Some((Error, Reason::ConnectionFailed)),
            _ => None,
        },
        valid_file: no_file,
    },
    KindCase {
        name: "signoff",
        dependency: Dependency::File,
        connection: None,
        block: |target| {
            format!(
                "signoff:\n      file: {}\n      item: uat\n",
                target.file.display()
            )
        },
        expect: |fault| {
            file_like(
                fault,
                Reason::SignoffFileUnreadable,
                Reason::SignoffFileInvalid,
            )
        },
        valid_file: |_| {
            "signoffs:\n  - item: uat\n    signed_by: Ann Example\n    role: qa_lead\n    signed_at: 2025-06-01T14:00:00Z\n    evidence: https://tracker.example.com/UAT-142\n".to_string()
        },
    },
    KindCase {
        name: "postgres_reachable",
        dependency: Dependency::Postgres,
        connection: None,
        block: |target| format!("postgres_reachable:\n{}", connection(target)),
        expect: postgres_like,
        valid_file: no_file,
    },
    KindCase {
        name: "postgres_replication",
        dependency: Dependency::Postgres,
        connection: None,
        block: |target| {
            format!(
                "postgres_replication:\n{}      role: primary\n",
                connection(target)
            )
        },
        expect: postgres_like,
        valid_file: no_file,
    },
    KindCase {
        name: "postgres_archiving",
        dependency: Dependency::Postgres,
        connection: None,
        block: |target| format!("postgres_archiving:\n{}", connection(target)),
        expect: postgres_like,
        valid_file: no_file,
    },
    KindCase {
        name: "postgres_query",
        dependency: Dependency::Postgres,
        connection: None,
        block: |target| {
            format!(
                "postgres_query:\n{}      sql: SELECT 1\n      min: 1\n",
                connection(target)
            )
        },
        expect: postgres_like,
        valid_file: no_file,
    },
    KindCase {
        name: "ef_migrations",
        dependency: Dependency::Postgres,
        connection: None,
        block: |target| {
            format!(
                "ef_migrations:\n{}      expected_migration: 20240301120000_AddInvoices\n",
                connection(target)
            )
        },
        expect: postgres_like,
        valid_file: no_file,
    },
    KindCase {
        name: "vault_health",
        dependency: Dependency::Http,
        connection: None,
        block: |target| {
            format!(
                "vault_health:\n      nodes: [{}]\n{}",
                base_url(target),
                ca_file(target, 6)
            )
        },
        expect: |fault| match fault {
            // sys/health documents its own status codes; any other code, or a body that is not
            // its JSON, is an unknown state.
            Fault::Status(_) | Fault::Huge => Some((Error, Reason::VaultUnknownState)),
            other => http_like(other),
        },
        valid_file: no_file,
    },
    KindCase {
        name: "prometheus_targets",
        dependency: Dependency::Http,
        connection: None,
        block: |target| format!("prometheus_targets:\n{}      jobs: [api]\n", server(target)),
        expect: |fault| api_like(fault, (Error, Reason::InvalidResponse)),
        valid_file: no_file,
    },
    KindCase {
        name: "prometheus_rules",
        dependency: Dependency::Http,
        connection: None,
        block: |target| {
            format!(
                "prometheus_rules:\n{}      groups: [availability]\n",
                server(target)
            )
        },
        expect: |fault| api_like(fault, (Error, Reason::InvalidResponse)),
        valid_file: no_file,
    },
    KindCase {
        name: "prometheus_alertmanagers",
        dependency: Dependency::Http,
        connection: None,
        block: |target| {
            format!(
                "prometheus_alertmanagers:\n{}      min_active: 1\n",
                server(target)
            )
        },
        expect: |fault| api_like(fault, (Error, Reason::InvalidResponse)),
        valid_file: no_file,
    },
    KindCase {
        name: "prometheus_query",
        dependency: Dependency::Http,
        connection: None,
        block: |target| {
            format!(
                "prometheus_query:\n{}      query: up\n      min: 1\n",
                server(target)
            )
        },
        expect: |fault| api_like(fault, (Error, Reason::InvalidResponse)),
        valid_file: no_file,
    },
    KindCase {
        name: "alertmanager",
        dependency: Dependency::Http,
        connection: None,
        block: |target| format!("alertmanager:\n{}      replicas: 1\n", server(target)),
        expect: |fault| api_like(fault, (Fail, Reason::NotReady)),
        valid_file: no_file,
    },
    KindCase {
        name: "grafana",
        dependency: Dependency::Http,
        connection: None,
        block: |target| {
            format!(
                "grafana:\n{}      dashboards: [readiness]\n",
                server(target)
            )
        },
        expect: |fault| api_like(fault, (Error, Reason::InvalidResponse)),
        valid_file: no_file,
    },
    KindCase {
        name: "loki",
        dependency: Dependency::Http,
        connection: None,
        block: |target| {
            format!(
                "loki:\n{}      query: count_over_time(up[5m])\n      min: 1\n",
                server(target)
            )
        },
        expect: |fault| api_like(fault, (Fail, Reason::NotReady)),
        valid_file: no_file,
    },
    KindCase {
        name: "elasticsearch_count",
        dependency: Dependency::Http,
        connection: None,
        block: |target| {
            format!(
                "elasticsearch_count:\n{}      index: logs\n      window: 5m\n      min: 1\n",
                server(target)
            )
        },
        expect: |fault| api_like(fault, (Error, Reason::QueryFailed)),
        valid_file: no_file,
    },
    KindCase {
        name: "vault_auth_method",
        dependency: Dependency::Http,
        connection: Some(Connection::Vault),
        block: |_| "vault_auth_method: { path: kubernetes, type: kubernetes }\n".to_string(),
        expect: vault_like,
        valid_file: no_file,
    },
    KindCase {
        name: "vault_policy",
        dependency: Dependency::Http,
        connection: Some(Connection::Vault),
        block: |_| "vault_policy:\n      policies: [app-read]\n".to_string(),
        expect: vault_like,
        valid_file: no_file,
    },
    KindCase {
        name: "vault_mount",
        dependency: Dependency::Http,
        connection: Some(Connection::Vault),
        block: |_| "vault_mount: { path: secret, type: kv, version: 2 }\n".to_string(),
        expect: vault_like,
        valid_file: no_file,
    },
    KindCase {
        name: "vault_secret",
        dependency: Dependency::Http,
        connection: Some(Connection::Vault),
        block: |_| "vault_secret: { path: app/database }\n".to_string(),
        expect: vault_like,
        valid_file: no_file,
    },
    KindCase {
        name: "kubernetes_workload",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| {
            "kubernetes_workload:\n      namespace: shop\n      kind: deployment\n      selector: app=api\n".to_string()
        },
        expect: kubernetes_like,
        valid_file: no_file,
    },
    KindCase {
        name: "kubernetes_pod_security",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| "kubernetes_pod_security:\n      namespaces: [shop]\n".to_string(),
        expect: kubernetes_like,
        valid_file: no_file,
    },
    KindCase {
        name: "kubernetes_network_policy",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| "kubernetes_network_policy:\n      namespaces: [shop]\n".to_string(),
        expect: kubernetes_like,
        valid_file: no_file,
    },
    KindCase {
        name: "kubernetes_ingress_tls",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| "kubernetes_ingress_tls:\n      namespaces: [shop]\n".to_string(),
        expect: kubernetes_like,
        valid_file: no_file,
    },
    KindCase {
        name: "kubernetes_rbac",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| "kubernetes_rbac:\n      namespaces: [shop]\n".to_string(),
        expect: kubernetes_like,
        valid_file: no_file,
    },
    KindCase {
        name: "helm_release",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| "helm_release:\n      namespace: shop\n      release: api\n".to_string(),
        expect: kubernetes_like,
        valid_file: no_file,
    },
    KindCase {
        name: "image_scan",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| "image_scan:\n      namespaces: [shop]\n".to_string(),
        expect: kubernetes_like,
        valid_file: no_file,
    },
    KindCase {
        name: "vault_injection",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| {
            "vault_injection:\n      namespaces: [shop]\n      selector: app=api\n".to_string()
        },
        expect: kubernetes_like,
        valid_file: no_file,
    },
    KindCase {
        name: "kubernetes_old_versions",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| {
            "kubernetes_old_versions:\n      namespace: shop\n      selector: app=api\n      current: api-green\n".to_string()
        },
        expect: kubernetes_like,
        valid_file: no_file,
    },
    KindCase {
        name: "kubernetes_config",
        dependency: Dependency::Http,
        connection: Some(Connection::Kubernetes),
        block: |_| {
            "kubernetes_config:\n      namespace: shop\n      selector: app=api\n".to_string()
        },
        expect: kubernetes_like,
        valid_file: no_file,
    },
];

fn no_file(_: &Certificates) -> String {
    String::new()
}

fn url(target: &Target) -> String {
    let scheme = if target.tls { "https" } else { "http" };
    format!("{scheme}://localhost:{}/health", target.addr.port())
}

fn base_url(target: &Target) -> String {
    let scheme = if target.tls { "https" } else { "http" };
    format!("{scheme}://localhost:{}", target.addr.port())
}

/// Returns the `server` block of the kinds that read a monitoring or logging server's API.
/// The `server` block of the API kinds, with a body limit of 1 MiB instead of the default
/// 16 MiB. A debug build that read 16 MiB in every huge-body cell at once used most of the 2 s
/// timeout, and those cells timed out while a release build compiled beside it.
fn server(target: &Target) -> String {
    format!(
        "      server:\n        url: {}\n        max_body_bytes: 1048576\n{}",
        base_url(target),
        ca_file(target, 8)
    )
}

fn ca_file(target: &Target, indent: usize) -> String {
    if target.tls {
        format!(
            "{}ca_file: {}\n",
            " ".repeat(indent),
            target.ca_file.display()
        )
    } else {
        String::new()
    }
}

/// Returns a `connection` block: TLS with full verification for the certificate faults, plain
/// otherwise, and a password from a file.
fn connection(target: &Target) -> String {
    let tls = if target.tls {
        format!(
            "        sslmode: verify-full\n        ca_file: {}\n",
            target.ca_file.display()
        )
    } else {
        "        sslmode: disable\n".to_string()
    };
    format!(
        "      connection:\n        host: localhost\n        port: {}\n        database: app\n        user: app\n        password: {{ file: {} }}\n{tls}",
        target.addr.port(),
        target.password_file.display()
    )
}

/// Returns the results of a kind that sends one HTTP request and judges its status.
fn http_like(fault: Fault) -> Option<(Status, Reason)> {
    Some(match fault {
        Fault::Down => (Error, Reason::ConnectionRefused),
        Fault::Hung | Fault::Slow => (Error, Reason::Timeout),
        Fault::Garbage | Fault::Truncated => (Error, Reason::InvalidResponse),
        Fault::Status(401) => (Error, Reason::Unauthorized),
        Fault::Status(403) => (Error, Reason::Forbidden),
        Fault::Status(429) => (Error, Reason::RateLimited),
        Fault::Status(_) => (Fail, Reason::UnexpectedStatus),
        Fault::ExpiredCert | Fault::UntrustedCert => (Error, Reason::TlsError),
        Fault::Huge => return None,
    })
}

/// Returns the results of a kind that reads a server's JSON API, where `other_status` is the
/// result of a 404 or 500: the kind's first request returned something that is not its API.
fn api_like(fault: Fault, other_status: (Status, Reason)) -> Option<(Status, Reason)> {
    match fault {
        Fault::Huge => Some((Error, Reason::BodyTooLarge)),
        Fault::Status(404 | 500) => Some(other_status),
        other => http_like(other),
    }
}

/// Returns the results of the Vault kinds that log in through the `vault` block first. The
/// faulty server fails the login, so a status that rejects credentials is a failed login and
/// every other fault keeps its transport reason.
fn vault_like(fault: Fault) -> Option<(Status, Reason)> {
    match fault {
        Fault::Status(401 | 403) => Some((Error, Reason::VaultAuthFailed)),
        Fault::Status(404 | 500) => Some((Error, Reason::UnexpectedStatus)),
        Fault::Huge => Some((Error, Reason::BodyTooLarge)),
        other => http_like(other),
    }
}

/// Returns the results of the Kubernetes kinds, whose first request lists or gets objects. A
/// 404 to a list means the API server does not serve the resource type.
fn kubernetes_like(fault: Fault) -> Option<(Status, Reason)> {
    match fault {
        Fault::Status(404) => Some((Error, Reason::ResourceTypeMissing)),
        Fault::Status(500) => Some((Error, Reason::UnexpectedStatus)),
        Fault::Huge => Some((Error, Reason::BodyTooLarge)),
        other => http_like(other),
    }
}

/// Returns the results of a kind that reads a file: `unreadable` when it cannot be read, `invalid`
/// when its content is wrong.
fn file_like(fault: Fault, unreadable: Reason, invalid: Reason) -> Option<(Status, Reason)> {
    Some(match fault {
        Fault::Down | Fault::Hung | Fault::Huge => (Error, unreadable),
        Fault::Garbage | Fault::Truncated => (Error, invalid),
        _ => return None,
    })
}

/// Returns the results of the PostgreSQL kinds, which all fail at the connection.
fn postgres_like(fault: Fault) -> Option<(Status, Reason)> {
    Some(match fault {
        Fault::Down => (Error, Reason::ConnectionRefused),
        Fault::Hung | Fault::Slow => (Error, Reason::Timeout),
        Fault::Garbage | Fault::Truncated => (Error, Reason::ConnectionFailed),
        Fault::Huge => (Error, Reason::BodyTooLarge),
        Fault::Status(401) => (Error, Reason::Unauthorized),
        Fault::ExpiredCert | Fault::UntrustedCert => (Error, Reason::TlsError),
        Fault::Status(_) => return None,
    })
}
