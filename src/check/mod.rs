//! Check kinds and the outcome model they share.
//!
//! Every kind lives in its own file with a validated configuration type and one `run` function.
//! The scheduler owns the deadline and the common metrics; a kind reports only its verdict and
//! the facts of its own protocol as [`Measure`]s.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub mod alertmanager;
pub mod api_client;
pub mod cors;
pub mod dns;
pub mod elasticsearch;
pub mod grafana;
pub mod http;
pub mod kubernetes;
pub mod loki;
pub mod postgres;
pub mod prometheus;
#[cfg(test)]
pub(crate) mod scripted;
pub mod signoff;
pub mod tls;
pub mod vault;

/// The four states a check can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Evaluated and met.
    Pass,
    /// Evaluated and not met.
    Fail,
    /// Could not be evaluated: timeout, refused connection, 401/403, unparseable response.
    Error,
    /// Not run yet, or the last result is older than three intervals.
    Unknown,
}

impl Status {
    /// Every status, in the order the metrics list them.
    pub const ALL: [Status; 4] = [Status::Pass, Status::Fail, Status::Error, Status::Unknown];

    /// The lowercase name used in metrics, JSON and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// The cause of a check's status, from a small fixed set so that it can be a metric label.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, for documentation and tests.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The snake_case name used as the `reason` label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name,)*
                }
            }
        }
    };
}

reasons! {
    /// The check passed.
    Ok => "ok",
    /// The check has not run yet.
    NotRun => "not_run",
    /// The last result is older than three intervals.
    Stale => "stale",
    /// No result within the check's timeout.
    Timeout => "timeout",
    /// The target refused the connection.
    ConnectionRefused => "connection_refused",
    /// The connection failed for another reason (reset, unreachable, name not resolved).
    ConnectionFailed => "connection_failed",
    /// The TLS handshake or certificate verification failed.
    TlsError => "tls_error",
    /// The target returned 401 Unauthorized.
    Unauthorized => "unauthorized",
    /// The target returned 403 Forbidden.
    Forbidden => "forbidden",
    /// The target returned 429 Too Many Requests.
    RateLimited => "rate_limited",
    /// The status code is not one of the expected codes.
    UnexpectedStatus => "unexpected_status",
    /// A response header is missing or does not match.
    HeaderMismatch => "header_mismatch",
    /// The response body does not match a condition.
    BodyMismatch => "body_mismatch",
    /// The response took longer than the configured maximum latency.
    TooSlow => "too_slow",
    /// The response body is larger than the configured limit, or a server sent more than a
    /// session may receive.
    BodyTooLarge => "body_too_large",
    /// The response could not be parsed.
    InvalidResponse => "invalid_response",
    /// Redirects exceeded the configured limit or looped.
    TooManyRedirects => "too_many_redirects",
    /// A secret reference could not be resolved.
    SecretUnavailable => "secret_unavailable",
    /// The server reports the session as not encrypted although TLS is required.
    NotEncrypted => "not_encrypted",
    /// The server version is older than the configured minimum.
    VersionTooOld => "version_too_old",
    /// The server is a primary where a standby was expected, or the reverse.
    WrongRole => "wrong_role",
    /// Fewer streaming or synchronous standbys than required.
    TooFewStandbys => "too_few_standbys",
    /// A named standby is not streaming from the primary.
    StandbyMissing => "standby_missing",
    /// A standby's replication lag is above the configured maximum.
    ReplicationLag => "replication_lag",
    /// A standby is not receiving WAL from its upstream.
    NotReceiving => "not_receiving",
    /// WAL archiving is turned off, or does not run on this server.
    ArchivingDisabled => "archiving_disabled",
    /// Archiving is on but no WAL segment was ever archived.
    NeverArchived => "never_archived",
    /// The last archive attempt failed after the last success.
    ArchiveFailing => "archive_failing",
    /// A timestamp is older than the configured maximum age.
    TooOld => "too_old",
    /// The server (a database, Prometheus, Loki, Elasticsearch) returned an error for a query.
    QueryFailed => "query_failed",
    /// A query returned no row.
    EmptyResult => "empty_result",
    /// A query returned NULL.
    NullValue => "null_value",
    /// A query's number is outside the configured bounds.
    ValueOutOfRange => "value_out_of_range",
    /// The database lacks migrations the release expects.
    MigrationPending => "migration_pending",
    /// The database's newest migration is newer than or unrelated to the expected one.
    MigrationMismatch => "migration_mismatch",
    /// A table the check reads does not exist.
    TableMissing => "table_missing",
    /// The check panicked; this is a bug in the exporter.
    InternalError => "internal_error",
    /// A response to an origin that must be allowed does not allow exactly that origin.
    CorsOriginNotAllowed => "cors_origin_not_allowed",
    /// An origin that must be rejected, or an arbitrary one, is echoed in
    /// `Access-Control-Allow-Origin`.
    CorsOriginReflected => "cors_origin_reflected",
    /// `Access-Control-Allow-Origin: *` where specific origins are expected.
    CorsWildcardOrigin => "cors_wildcard_origin",
    /// `Access-Control-Allow-Origin: *` together with `Access-Control-Allow-Credentials: true`.
    CorsWildcardWithCredentials => "cors_wildcard_with_credentials",
    /// `Access-Control-Allow-Credentials: true` is missing where credentials are required.
    CorsCredentialsNotAllowed => "cors_credentials_not_allowed",
    /// The preflight response does not allow the request method.
    CorsMethodNotAllowed => "cors_method_not_allowed",
    /// The preflight response does not allow every request header.
    CorsHeadersNotAllowed => "cors_headers_not_allowed",
    /// A response that names a specific origin lacks `Vary: Origin`, and the check requires it.
    CorsVaryMissing => "cors_vary_missing",
    /// The sign-off file has no current sign-off for the item.
    SignoffMissing => "signoff_missing",
    /// The item is signed, but not by every required role.
    SignoffRoleMissing => "signoff_role_missing",
    /// Every sign-off of the item (or of a required role) has expired.
    SignoffExpired => "signoff_expired",
    /// The sign-off file is not valid YAML or does not follow the sign-off format.
    SignoffFileInvalid => "signoff_file_invalid",
    /// The sign-off file could not be read.
    SignoffFileUnreadable => "signoff_file_unreadable",
    /// A certificate expires in fewer days than the configured minimum.
    CertExpiring => "cert_expiring",
    /// A certificate's not-after time has passed.
    CertExpired => "cert_expired",
    /// A certificate's not-before time is still in the future.
    CertNotYetValid => "cert_not_yet_valid",
    /// The leaf certificate is not valid for the expected host name.
    HostnameMismatch => "hostname_mismatch",
    /// The certificate chain does not lead to a trusted root.
    UntrustedChain => "untrusted_chain",
    /// The negotiated TLS version is below the configured minimum.
    TlsVersionTooLow => "tls_version_too_low",
    /// A file the check reads is missing, unreadable or has no usable content.
    FileUnreadable => "file_unreadable",
    /// The name does not exist (DNS response code NXDOMAIN).
    Nxdomain => "nxdomain",
    /// The name exists but has no record of the queried type.
    Nodata => "nodata",
    /// The name server could not resolve the name (DNS response code SERVFAIL).
    Servfail => "servfail",
    /// The name server responded with another error code, such as REFUSED.
    DnsError => "dns_error",
    /// The records differ from the expected values.
    RecordMismatch => "record_mismatch",
    /// The exporter could not log in to Vault, or Vault rejected its token.
    VaultAuthFailed => "vault_auth_failed",
    /// Fewer Vault nodes are unsealed than required, and a node is sealed.
    VaultSealed => "vault_sealed",
    /// Fewer Vault nodes are unsealed than required, and a node is not initialized.
    VaultUninitialized => "vault_uninitialized",
    /// Fewer Vault nodes serve clients than required, and a node is a disaster-recovery
    /// secondary or a standby that cannot reach the active node.
    VaultNotServing => "vault_not_serving",
    /// A Vault node responded to `sys/health` with an undocumented status code or a body that
    /// contradicts its code.
    VaultUnknownState => "vault_unknown_state",
    /// No Vault node is active.
    VaultNoActive => "vault_no_active",
    /// More than one Vault node reports itself active.
    VaultSeveralActive => "vault_several_active",
    /// Vault's HA status lists fewer cluster members than required.
    VaultTooFewMembers => "vault_too_few_members",
    /// No auth method is enabled at the path.
    VaultAuthMethodMissing => "vault_auth_method_missing",
    /// A named ACL policy does not exist.
    VaultPolicyMissing => "vault_policy_missing",
    /// No secrets engine is mounted at the path.
    VaultMountMissing => "vault_mount_missing",
    /// The auth method or secrets engine at the path has another type.
    VaultWrongType => "vault_wrong_type",
    /// The secrets engine at the path has another version.
    VaultWrongVersion => "vault_wrong_version",
    /// No KV secret exists at the path.
    VaultSecretMissing => "vault_secret_missing",
    /// The latest version of the KV secret is deleted.
    VaultSecretDeleted => "vault_secret_deleted",
    /// The latest version of the KV secret is destroyed.
    VaultSecretDestroyed => "vault_secret_destroyed",
    /// A job has no active scrape target.
    NoTargets => "no_targets",
    /// Fewer scrape targets of a job are up than required.
    TargetsDown => "targets_down",
    /// A rule group is not loaded.
    RuleGroupMissing => "rule_group_missing",
    /// A rule reports an evaluation error.
    RuleEvaluationFailed => "rule_evaluation_failed",
    /// A rule group has never been evaluated.
    NotEvaluated => "not_evaluated",
    /// Fewer active Alertmanagers than required.
    TooFewAlertmanagers => "too_few_alertmanagers",
    /// A query returned NaN.
    NanValue => "nan_value",
    /// The server returned warnings with a query result, so the result may be incomplete.
    QueryWarnings => "query_warnings",
    /// The server's readiness endpoint reports it as not ready.
    NotReady => "not_ready",
    /// A cluster has not settled, is disabled where a cluster is expected, or lacks peers.
    ClusterNotReady => "cluster_not_ready",
    /// A named receiver is not in the configuration.
    ReceiverMissing => "receiver_missing",
    /// The server reports a component it depends on (such as its database) as unhealthy.
    Unhealthy => "unhealthy",
    /// A named dashboard does not exist.
    DashboardMissing => "dashboard_missing",
    /// A named data source does not exist.
    DatasourceMissing => "datasource_missing",
    /// A named data source failed its health check.
    DatasourceUnhealthy => "datasource_unhealthy",
    /// Some shards failed, so a count is incomplete.
    PartialResult => "partial_result",
    /// The Kubernetes client could not be built: no in-cluster service account, or an
    /// unusable kubeconfig.
    ApiClientUnavailable => "api_client_unavailable",
    /// The API server does not serve the resource type, usually because its CRD is not
    /// installed.
    ResourceTypeMissing => "resource_type_missing",
    /// The named object does not exist, or a selector matches no object.
    ObjectNotFound => "object_not_found",
    /// The controller has not reported the status the check needs.
    StatusNotReported => "status_not_reported",
    /// A rollout has not finished: the spec is not observed yet, or replicas are not updated.
    RolloutInProgress => "rollout_in_progress",
    /// The Deployment is paused.
    RolloutPaused => "rollout_paused",
    /// The Deployment's Progressing condition reports ProgressDeadlineExceeded.
    ProgressDeadlineExceeded => "progress_deadline_exceeded",
    /// Replicas are updated but fewer than desired are ready or available.
    ReplicasNotReady => "replicas_not_ready",
    /// The pod template does not run the expected image tag or digest.
    ImageMismatch => "image_mismatch",
    /// A container's effective security context violates a least-privilege rule.
    PodSecurityViolation => "pod_security_violation",
    /// A namespace has no default-deny NetworkPolicy for a required direction.
    DefaultDenyMissing => "default_deny_missing",
    /// A running pod is selected by no NetworkPolicy.
    PodNotSelected => "pod_not_selected",
    /// An Ingress host has no TLS entry, or its entry names no Secret.
    TlsNotConfigured => "tls_not_configured",
    /// A TLS Secret is missing, not of type `kubernetes.io/tls`, or holds no usable certificate.
    TlsSecretInvalid => "tls_secret_invalid",
    /// A certificate has expired or is not valid yet.
    CertificateExpired => "certificate_expired",
    /// A certificate expires within the configured minimum validity.
    CertificateExpiresSoon => "certificate_expires_soon",
    /// A certificate does not name a host it is served for.
    CertificateHostMismatch => "certificate_host_mismatch",
    /// A service account is bound to cluster-admin or to a role with `*` verbs or resources.
    ExcessivePermissions => "excessive_permissions",
    /// The newest Helm release revision has status `failed`.
    ReleaseFailed => "release_failed",
    /// The newest Helm release revision has been pending for longer than the timeout.
    ReleaseStuck => "release_stuck",
    /// The newest Helm release revision is neither deployed, failed nor pending.
    ReleaseNotDeployed => "release_not_deployed",
    /// The deployed Helm release runs another chart version than expected.
    ChartVersionMismatch => "chart_version_mismatch",
    /// An image has more critical or high vulnerabilities than allowed.
    VulnerabilitiesFound => "vulnerabilities_found",
    /// A running container has no vulnerability report.
    NotScanned => "not_scanned",
    /// A pod lacks the Vault Agent Injector annotations, its mark or its agent containers.
    InjectionMissing => "injection_missing",
    /// The injected Vault Agent has not completed or is not ready.
    AgentNotReady => "agent_not_ready",
    /// A workload or ReplicaSet of an old version still has replicas.
    OldVersionRunning => "old_version_running",
    /// A ConfigMap or Secret that a workload references does not exist.
    ConfigMissing => "config_missing",
    /// A referenced ConfigMap or Secret lacks a referenced key.
    ConfigKeyMissing => "config_key_missing",
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The type of a [`MeasureFamily`] in the exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeasureType {
    /// A value that can go up and down, or a timestamp.
    Gauge,
}

/// A metric family that one check kind exports about what it measured.
#[derive(Debug)]
pub struct MeasureFamily {
    /// The name without the unit suffix, which the encoder appends.
    pub name: &'static str,
    /// The help text, without a full stop.
    pub help: &'static str,
    /// `Some("seconds")`, `Some("bytes")` or `None` for a unitless value.
    pub unit: Option<&'static str>,
    /// The exposition type.
    pub metric_type: MeasureType,
    /// Label names beyond `check`.
    pub labels: &'static [&'static str],
}

impl MeasureFamily {
    /// The full series name as it appears in the exposition.
    pub fn full_name(&self) -> String {
        match self.unit {
            Some(unit) => format!("{}_{unit}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// One measured value of one check.
#[derive(Clone, Debug)]
pub struct Measure {
    /// The family the value belongs to.
    pub family: &'static MeasureFamily,
    /// Values for the family's extra labels, in the same order.
    pub label_values: Vec<String>,
    /// The value, in the family's base unit.
    pub value: f64,
}

impl Measure {
    /// A measure of a family without extra labels.
    pub fn new(family: &'static MeasureFamily, value: f64) -> Self {
        Measure {
            family,
            label_values: Vec::new(),
            value,
        }
    }
}

/// The result of one run of a check.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Pass, fail or error. A kind never returns `Unknown`.
    pub status: Status,
    /// Why, from the fixed set.
    pub reason: Reason,
    /// One line for a human: what was found, and for a failure what to look at.
    pub message: String,
    /// The main observed value, where the kind has one (a status code, a latency, a count).
    pub value: Option<f64>,
    /// Facts of the kind's protocol, exported as metrics.
    pub measures: Vec<Measure>,
}

impl Outcome {
    /// Replaces the `secrets` the run sent, and parts of them, in the message; see
    /// [`crate::secret::redact`].
    pub fn redacted<'a>(mut self, secrets: impl IntoIterator<Item = &'a str>) -> Self {
        self.message = crate::secret::redact(&self.message, secrets);
        self
    }

    /// A passing outcome.
    pub fn pass(message: impl Into<String>) -> Self {
        Self::new(Status::Pass, Reason::Ok, message)
    }

    /// An outcome for a check that was evaluated and not met.
    pub fn fail(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Status::Fail, reason, message)
    }

    /// An outcome for a check that could not be evaluated.
    pub fn error(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Status::Error, reason, message)
    }

    fn new(status: Status, reason: Reason, message: impl Into<String>) -> Self {
        Outcome {
            status,
            reason,
            message: message.into(),
            value: None,
            measures: Vec::new(),
        }
    }

    /// Sets the main observed value.
    pub fn with_value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    /// Adds measures.
    pub fn with_measures(mut self, measures: Vec<Measure>) -> Self {
        self.measures.extend(measures);
        self
    }
}

/// The validated configuration of one check kind.
#[derive(Debug)]
pub enum Kind {
    /// An HTTP request with conditions on the response.
    Http(Box<http::HttpCheck>),
    /// A check whose behaviour a unit test scripts.
    #[cfg(test)]
    Scripted(scripted::ScriptedCheck),
    /// Preflight and actual requests from several origins, with conditions on the CORS headers.
    Cors(Box<cors::CorsCheck>),
    /// A human sign-off recorded in an attestation file.
    Signoff(signoff::SignoffCheck),
    /// A PostgreSQL login and trivial query.
    PostgresReachable(postgres::reachable::ReachableCheck),
    /// PostgreSQL streaming replication, from the primary or a standby.
    PostgresReplication(postgres::replication::ReplicationCheck),
    /// PostgreSQL WAL archiving.
    PostgresArchiving(postgres::archiving::ArchivingCheck),
    /// A read-only PostgreSQL query compared with a threshold.
    PostgresQuery(postgres::query::QueryCheck),
    /// Entity Framework Core's newest applied migration.
    EfMigrations(postgres::migrations::MigrationsCheck),
    /// The certificate chain of a server or a PEM file.
    Tls(tls::TlsCheck),
    /// A DNS query with conditions on the records.
    Dns(dns::DnsCheck),
    /// Seal, HA and version state of one or more Vault nodes.
    VaultHealth(vault::health::HealthCheck),
    /// A Vault auth method of a type enabled at a path.
    VaultAuthMethod(vault::sys::AuthMethodCheck),
    /// Named Vault ACL policies exist.
    VaultPolicy(vault::sys::PolicyCheck),
    /// A Vault secrets engine of a type and version mounted at a path.
    VaultMount(vault::sys::MountCheck),
    /// A Vault KV version 2 secret exists, is not deleted and was rotated recently.
    VaultSecret(vault::secret::SecretCheck),
    /// The scrape targets of named Prometheus jobs.
    PrometheusTargets(prometheus::targets::TargetsCheck),
    /// Named Prometheus rule groups.
    PrometheusRules(prometheus::rules::RulesCheck),
    /// The Alertmanagers a Prometheus server sends alerts to.
    PrometheusAlertmanagers(prometheus::alertmanagers::AlertmanagersCheck),
    /// A PromQL instant query compared with a threshold.
    PrometheusQuery(prometheus::query::QueryCheck),
    /// An Alertmanager's readiness, cluster and receivers.
    Alertmanager(alertmanager::AlertmanagerCheck),
    /// Grafana's health, dashboards and data sources.
    Grafana(grafana::GrafanaCheck),
    /// Loki's readiness and a LogQL metric query compared with a threshold.
    Loki(Box<loki::LokiCheck>),
    /// An Elasticsearch or OpenSearch document count over a recent window.
    ElasticsearchCount(Box<elasticsearch::CountCheck>),
    /// Deployments, StatefulSets or DaemonSets rolled out and available.
    KubernetesWorkload(kubernetes::workload::WorkloadCheck),
    /// Least-privilege security contexts of the selected pods.
    KubernetesPodSecurity(kubernetes::pod_security::PodSecurityCheck),
    /// Default-deny NetworkPolicies and pods selected by a policy.
    KubernetesNetworkPolicy(kubernetes::network_policy::NetworkPolicyCheck),
    /// Ingress hosts served with TLS from valid Secrets.
    KubernetesIngressTls(kubernetes::ingress_tls::IngressTlsCheck),
    /// Service accounts bound to cluster-admin or wildcard roles.
    KubernetesRbac(kubernetes::rbac::RbacCheck),
    /// The newest revision of a Helm 3 release deployed.
    HelmRelease(kubernetes::helm_release::HelmReleaseCheck),
    /// trivy-operator vulnerability reports of the running images.
    ImageScan(kubernetes::image_scan::ImageScanCheck),
    /// Vault Agent Injector annotations and ready agent containers.
    VaultInjection(kubernetes::vault_injection::VaultInjectionCheck),
    /// Old workloads and ReplicaSets scaled to zero after a blue/green switch.
    KubernetesOldVersions(kubernetes::old_versions::OldVersionsCheck),
    /// ConfigMaps and Secrets referenced by workloads exist with their keys.
    KubernetesConfig(kubernetes::config_refs::ConfigRefsCheck),
}

impl Kind {
    /// The kind's name as written in the configuration and in the `kind` label.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Http(_) => "http",
            #[cfg(test)]
            Kind::Scripted(_) => "scripted",
            Kind::Cors(_) => "cors",
            Kind::Signoff(_) => "signoff",
            Kind::PostgresReachable(_) => "postgres_reachable",
            Kind::PostgresReplication(_) => "postgres_replication",
            Kind::PostgresArchiving(_) => "postgres_archiving",
            Kind::PostgresQuery(_) => "postgres_query",
            Kind::EfMigrations(_) => "ef_migrations",
            Kind::Tls(_) => "tls",
            Kind::Dns(_) => "dns",
            Kind::VaultHealth(_) => "vault_health",
            Kind::VaultAuthMethod(_) => "vault_auth_method",
            Kind::VaultPolicy(_) => "vault_policy",
            Kind::VaultMount(_) => "vault_mount",
            Kind::VaultSecret(_) => "vault_secret",
            Kind::PrometheusTargets(_) => "prometheus_targets",
            Kind::PrometheusRules(_) => "prometheus_rules",
            Kind::PrometheusAlertmanagers(_) => "prometheus_alertmanagers",
            Kind::PrometheusQuery(_) => "prometheus_query",
            Kind::Alertmanager(_) => "alertmanager",
            Kind::Grafana(_) => "grafana",
            Kind::Loki(_) => "loki",
            Kind::ElasticsearchCount(_) => "elasticsearch_count",
            Kind::KubernetesWorkload(_) => "kubernetes_workload",
            Kind::KubernetesPodSecurity(_) => "kubernetes_pod_security",
            Kind::KubernetesNetworkPolicy(_) => "kubernetes_network_policy",
            Kind::KubernetesIngressTls(_) => "kubernetes_ingress_tls",
            Kind::KubernetesRbac(_) => "kubernetes_rbac",
            Kind::HelmRelease(_) => "helm_release",
            Kind::ImageScan(_) => "image_scan",
            Kind::VaultInjection(_) => "vault_injection",
            Kind::KubernetesOldVersions(_) => "kubernetes_old_versions",
            Kind::KubernetesConfig(_) => "kubernetes_config",
        }
    }

    /// Runs the check once and cuts its message to [`MAX_MESSAGE_BYTES`]. The caller enforces
    /// the timeout.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let mut outcome = self.run_kind(timeout).await;
        if let Some(connection) = self.kubernetes_connection() {
            outcome = outcome.redacted(connection.sent_tokens().iter().map(String::as_str));
        }
        cut_message(&mut outcome.message);
        outcome
    }

    fn kubernetes_connection(&self) -> Option<&kubernetes::Connection> {
        match self {
            Kind::KubernetesWorkload(check) => Some(check.connection()),
            Kind::KubernetesPodSecurity(check) => Some(check.connection()),
            Kind::KubernetesNetworkPolicy(check) => Some(check.connection()),
            Kind::KubernetesIngressTls(check) => Some(check.connection()),
            Kind::KubernetesRbac(check) => Some(check.connection()),
            Kind::HelmRelease(check) => Some(check.connection()),
            Kind::ImageScan(check) => Some(check.connection()),
            Kind::VaultInjection(check) => Some(check.connection()),
            Kind::KubernetesOldVersions(check) => Some(check.connection()),
            Kind::KubernetesConfig(check) => Some(check.connection()),
            _ => None,
        }
    }

    async fn run_kind(&self, timeout: Duration) -> Outcome {
        match self {
            Kind::Http(check) => check.run(timeout).await,
            #[cfg(test)]
            Kind::Scripted(check) => check.run().await,
            Kind::Cors(check) => check.run(timeout).await,
            Kind::Signoff(check) => check.run(timeout).await,
            Kind::PostgresReachable(check) => check.run(timeout).await,
            Kind::PostgresReplication(check) => check.run(timeout).await,
            Kind::PostgresArchiving(check) => check.run(timeout).await,
            Kind::PostgresQuery(check) => check.run(timeout).await,
            Kind::EfMigrations(check) => check.run(timeout).await,
            Kind::Tls(check) => check.run(timeout).await,
            Kind::Dns(check) => check.run(timeout).await,
            Kind::VaultHealth(check) => check.run(timeout).await,
            Kind::VaultAuthMethod(check) => check.run(timeout).await,
            Kind::VaultPolicy(check) => check.run(timeout).await,
            Kind::VaultMount(check) => check.run(timeout).await,
            Kind::VaultSecret(check) => check.run(timeout).await,
            Kind::PrometheusTargets(check) => check.run(timeout).await,
            Kind::PrometheusRules(check) => check.run(timeout).await,
            Kind::PrometheusAlertmanagers(check) => check.run(timeout).await,
            Kind::PrometheusQuery(check) => check.run(timeout).await,
            Kind::Alertmanager(check) => check.run(timeout).await,
            Kind::Grafana(check) => check.run(timeout).await,
            Kind::Loki(check) => check.run(timeout).await,
            Kind::ElasticsearchCount(check) => check.run(timeout).await,
            Kind::KubernetesWorkload(check) => check.run().await,
            Kind::KubernetesPodSecurity(check) => check.run().await,
            Kind::KubernetesNetworkPolicy(check) => check.run().await,
            Kind::KubernetesIngressTls(check) => check.run().await,
            Kind::KubernetesRbac(check) => check.run().await,
            Kind::HelmRelease(check) => check.run().await,
            Kind::ImageScan(check) => check.run().await,
            Kind::VaultInjection(check) => check.run().await,
            Kind::KubernetesOldVersions(check) => check.run().await,
            Kind::KubernetesConfig(check) => check.run().await,
        }
    }
}

/// The longest message a run keeps, in bytes. Kinds quote server text only in short excerpts,
/// so this is a backstop for a list that grows with a response: no message that `/metrics`, the
/// API and the logs carry grows with what a server sends.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Cuts `message` to [`MAX_MESSAGE_BYTES`] at a character boundary and says so at its end.
fn cut_message(message: &mut String) {
    if message.len() <= MAX_MESSAGE_BYTES {
        return;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = message.len() - end;
    message.truncate(end);
    message.push_str(&format!("... ({dropped} more bytes cut)"));
}

/// Every measure family of every kind, for the encoder's ordering and for documentation tests.
pub fn measure_families() -> Vec<&'static MeasureFamily> {
    let mut families = Vec::new();
    families.extend_from_slice(http::MEASURES);
    families.extend_from_slice(cors::MEASURES);
    families.extend_from_slice(signoff::MEASURES);
    families.extend_from_slice(postgres::reachable::MEASURES);
    families.extend_from_slice(postgres::replication::MEASURES);
    families.extend_from_slice(postgres::archiving::MEASURES);
    families.extend_from_slice(postgres::query::MEASURES);
    families.extend_from_slice(postgres::migrations::MEASURES);
    families.extend_from_slice(tls::MEASURES);
    families.extend_from_slice(dns::MEASURES);
    families.extend_from_slice(vault::health::MEASURES);
    families.extend_from_slice(vault::secret::MEASURES);
    families.extend_from_slice(prometheus::targets::MEASURES);
    families.extend_from_slice(prometheus::rules::MEASURES);
    families.extend_from_slice(prometheus::alertmanagers::MEASURES);
    families.extend_from_slice(prometheus::query::MEASURES);
    families.extend_from_slice(alertmanager::MEASURES);
    families.extend_from_slice(grafana::MEASURES);
    families.extend_from_slice(loki::MEASURES);
    families.extend_from_slice(elasticsearch::MEASURES);
    families.extend_from_slice(kubernetes::workload::MEASURES);
    families.extend_from_slice(kubernetes::pod_security::MEASURES);
    families.extend_from_slice(kubernetes::network_policy::MEASURES);
    families.extend_from_slice(kubernetes::ingress_tls::MEASURES);
    families.extend_from_slice(kubernetes::rbac::MEASURES);
    families.extend_from_slice(kubernetes::helm_release::MEASURES);
    families.extend_from_slice(kubernetes::image_scan::MEASURES);
    families.extend_from_slice(kubernetes::vault_injection::MEASURES);
    families.extend_from_slice(kubernetes::old_versions::MEASURES);
    families.extend_from_slice(kubernetes::config_refs::MEASURES);
    families
}

/// Formats a duration the way messages show it: `250ms`, `3s`, `1m 30s`.
pub fn format_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        return format!("{}ms", duration.as_millis());
    }
    let rounded = Duration::from_millis((duration.as_millis() as u64 / 10) * 10);
    humantime::format_duration(rounded).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_message_cut_at_char_boundary() {
        let mut message = "é".repeat(MAX_MESSAGE_BYTES);
        cut_message(&mut message);
        assert!(message.len() < MAX_MESSAGE_BYTES + 40, "{}", message.len());
        assert!(message.ends_with(&format!("... ({MAX_MESSAGE_BYTES} more bytes cut)")));

        let mut short = "a short message".to_string();
        cut_message(&mut short);
        assert_eq!(short, "a short message");
    }
}
