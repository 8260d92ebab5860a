//! The serde mirror of the configuration file, before validation.
//!
//! Durations and URLs stay strings here so that validation can name the exact bad value.

use serde::Deserialize;

use crate::check::kubernetes::config_refs;
use crate::check::kubernetes::helm_release;
use crate::check::kubernetes::image_scan;
use crate::check::kubernetes::ingress_tls;
use crate::check::kubernetes::network_policy;
use crate::check::kubernetes::old_versions;
use crate::check::kubernetes::pod_security;
use crate::check::kubernetes::rbac;
use crate::check::kubernetes::vault_injection;
use crate::check::kubernetes::workload;
use crate::check::postgres::{archiving, migrations, query, reachable, replication};
use crate::check::prometheus::{alertmanagers, query as prometheus_query, rules, targets};
use crate::check::{
    alertmanager, cors, dns, elasticsearch, grafana, http, loki, signoff, tls, vault,
};

/// The `global` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    pub listen_address: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub jitter: Option<String>,
    pub max_concurrent_checks: Option<i64>,
    pub external_url: Option<String>,
}

/// One item of the `checks` list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub id: String,
    pub title: String,
    pub section: String,
    pub severity: super::Severity,
    pub blocking: Option<bool>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub jitter: Option<String>,
    pub runbook_url: Option<String>,
    pub http: Option<http::HttpSpec>,
    pub cors: Option<cors::CorsSpec>,
    pub signoff: Option<signoff::SignoffSpec>,
    pub postgres_reachable: Option<reachable::ReachableSpec>,
    pub postgres_replication: Option<replication::ReplicationSpec>,
    pub postgres_archiving: Option<archiving::ArchivingSpec>,
    pub postgres_query: Option<query::QuerySpec>,
    pub ef_migrations: Option<migrations::MigrationsSpec>,
    pub tls: Option<tls::TlsSpec>,
    pub dns: Option<dns::DnsSpec>,
    pub vault_health: Option<vault::health::HealthSpec>,
    pub vault_auth_method: Option<vault::sys::AuthMethodSpec>,
    pub vault_policy: Option<vault::sys::PolicySpec>,
    pub vault_mount: Option<vault::sys::MountSpec>,
    pub vault_secret: Option<vault::secret::SecretSpec>,
    pub prometheus_targets: Option<targets::TargetsSpec>,
    pub prometheus_rules: Option<rules::RulesSpec>,
    pub prometheus_alertmanagers: Option<alertmanagers::AlertmanagersSpec>,
    pub prometheus_query: Option<prometheus_query::QuerySpec>,
    pub alertmanager: Option<alertmanager::AlertmanagerSpec>,
    pub grafana: Option<grafana::GrafanaSpec>,
    pub loki: Option<loki::LokiSpec>,
    pub elasticsearch_count: Option<elasticsearch::CountSpec>,
    pub kubernetes_workload: Option<workload::WorkloadSpec>,
    pub kubernetes_pod_security: Option<pod_security::PodSecuritySpec>,
    pub kubernetes_network_policy: Option<network_policy::NetworkPolicySpec>,
    pub kubernetes_ingress_tls: Option<ingress_tls::IngressTlsSpec>,
    pub kubernetes_rbac: Option<rbac::RbacSpec>,
    pub helm_release: Option<helm_release::HelmReleaseSpec>,
    pub image_scan: Option<image_scan::ImageScanSpec>,
    pub vault_injection: Option<vault_injection::VaultInjectionSpec>,
    pub kubernetes_old_versions: Option<old_versions::OldVersionsSpec>,
    pub kubernetes_config: Option<config_refs::ConfigRefsSpec>,
}

impl RawCheck {
    /// The names of the kinds this item sets. A valid check sets exactly one.
    pub fn kinds_set(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        if self.http.is_some() {
            kinds.push("http");
        }
        if self.cors.is_some() {
            kinds.push("cors");
        }
        if self.signoff.is_some() {
            kinds.push("signoff");
        }
        if self.postgres_reachable.is_some() {
            kinds.push("postgres_reachable");
        }
        if self.postgres_replication.is_some() {
            kinds.push("postgres_replication");
        }
        if self.postgres_archiving.is_some() {
            kinds.push("postgres_archiving");
        }
        if self.postgres_query.is_some() {
            kinds.push("postgres_query");
        }
        if self.ef_migrations.is_some() {
            kinds.push("ef_migrations");
        }
        if self.tls.is_some() {
            kinds.push("tls");
        }
        if self.dns.is_some() {
            kinds.push("dns");
        }
        if self.vault_health.is_some() {
            kinds.push("vault_health");
        }
        if self.vault_auth_method.is_some() {
            kinds.push("vault_auth_method");
        }
        if self.vault_policy.is_some() {
            kinds.push("vault_policy");
        }
        if self.vault_mount.is_some() {
            kinds.push("vault_mount");
        }
        if self.vault_secret.is_some() {
            kinds.push("vault_secret");
        }
        if self.prometheus_targets.is_some() {
            kinds.push("prometheus_targets");
        }
        if self.prometheus_rules.is_some() {
            kinds.push("prometheus_rules");
        }
        if self.prometheus_alertmanagers.is_some() {
            kinds.push("prometheus_alertmanagers");
        }
        if self.prometheus_query.is_some() {
            kinds.push("prometheus_query");
        }
        if self.alertmanager.is_some() {
            kinds.push("alertmanager");
        }
        if self.grafana.is_some() {
            kinds.push("grafana");
        }
        if self.loki.is_some() {
            kinds.push("loki");
        }
        if self.elasticsearch_count.is_some() {
            kinds.push("elasticsearch_count");
        }
        if self.kubernetes_workload.is_some() {
            kinds.push("kubernetes_workload");
        }
        if self.kubernetes_pod_security.is_some() {
            kinds.push("kubernetes_pod_security");
        }
        if self.kubernetes_network_policy.is_some() {
            kinds.push("kubernetes_network_policy");
        }
        if self.kubernetes_ingress_tls.is_some() {
            kinds.push("kubernetes_ingress_tls");
        }
        if self.kubernetes_rbac.is_some() {
            kinds.push("kubernetes_rbac");
        }
        if self.helm_release.is_some() {
            kinds.push("helm_release");
        }
        if self.image_scan.is_some() {
            kinds.push("image_scan");
        }
        if self.vault_injection.is_some() {
            kinds.push("vault_injection");
        }
        if self.kubernetes_old_versions.is_some() {
            kinds.push("kubernetes_old_versions");
        }
        if self.kubernetes_config.is_some() {
            kinds.push("kubernetes_config");
        }
        kinds
    }
}

/// Every kind name a check may use, in the order the documentation lists them.
pub const KIND_NAMES: &[&str] = &[
    "http",
    "cors",
    "signoff",
    "postgres_reachable",
    "postgres_replication",
    "postgres_archiving",
    "postgres_query",
    "ef_migrations",
    "tls",
    "dns",
    "vault_health",
    "vault_auth_method",
    "vault_policy",
    "vault_mount",
    "vault_secret",
    "prometheus_targets",
    "prometheus_rules",
    "prometheus_alertmanagers",
    "prometheus_query",
    "alertmanager",
    "grafana",
    "loki",
    "elasticsearch_count",
    "kubernetes_workload",
    "kubernetes_pod_security",
    "kubernetes_network_policy",
    "kubernetes_ingress_tls",
    "kubernetes_rbac",
    "helm_release",
    "image_scan",
    "vault_injection",
    "kubernetes_old_versions",
    "kubernetes_config",
];
