//! The exporter's own connection to Vault (or OpenBao): authentication, token renewal and the
//! cache behind Vault secret references.
//!
//! The top-level `vault` block configures one [`Vault`] per loaded configuration, shared by every
//! Vault check kind and every `{ vault: { mount, path, key } }` secret reference. The exporter logs
//! in with a token read from a file or an environment variable, or with Kubernetes auth. A
//! background task renews the token when two thirds of its TTL have passed, and logs in again
//! when renewal fails. Requests go through a reqwest client that verifies TLS (against the
//! system roots, or only the configured CA file) and ignores proxy variables. It reads at most
//! [`MAX_RESPONSE_BYTES`] of a response, so a server that streams without end cannot fill the
//! exporter's memory.
//!
//! The token is kept in a [`Secret`], whose `Debug` and `Display` print a placeholder. Messages
//! built here name addresses, mounts and paths, never the token or a secret value.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use url::Url;

use crate::check::{Outcome, Reason};
use crate::config::BuildContext;
use crate::secret::{Secret, SecretError, SecretRef};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SECRET_REFRESH: Duration = Duration::from_secs(300);
const DEFAULT_KUBERNETES_MOUNT: &str = "kubernetes";
const DEFAULT_SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// How long the maintenance task waits before it tries again after a failed login.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// The largest Vault response body read. The responses the exporter requests are a few
/// kilobytes, and a list of thousands of policies or mounts stays far below this.
pub const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// The top-level `vault` block, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSpec {
    address: String,
    ca_file: Option<PathBuf>,
    auth: AuthSpec,
    timeout: Option<String>,
    secret_refresh_interval: Option<String>,
}

/// The exporter's authentication to Vault, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum AuthSpec {
    /// A token read from a file or an environment variable.
    Token(SecretRef),
    /// Kubernetes auth with the pod's service account token.
    Kubernetes(KubernetesSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubernetesSpec {
    role: String,
    mount: Option<String>,
    service_account_token_file: Option<PathBuf>,
}

/// Validated authentication settings.
#[derive(Debug)]
enum Auth {
    Token(SecretRef),
    Kubernetes {
        role: String,
        mount: String,
        token_file: PathBuf,
    },
}

/// A token of the exporter, with its known lifetime.
struct Lease {
    token: Secret,
    obtained: Instant,
    /// `None` for a token without expiry, such as a root token.
    ttl: Option<Duration>,
    renewable: bool,
}

impl Lease {
    /// When the token should be renewed: after two thirds of its TTL.
    fn renew_at(&self) -> Option<Instant> {
        self.ttl.map(|ttl| self.obtained + ttl * 2 / 3)
    }

    fn expires_at(&self) -> Option<Instant> {
        self.ttl.map(|ttl| self.obtained + ttl)
    }
}

/// The state of one KV secret that references point at.
#[derive(Clone)]
enum Cached {
    /// Not read yet.
    Pending,
    /// The secret's data as of the last successful read.
    Loaded(Arc<HashMap<String, Secret>>),
    /// The last read failed; the message names the path and the cause, never a value.
    Failed(String),
}

/// Counters of token events, for logs and tests.
#[derive(Debug, Default)]
pub struct TokenEvents {
    logins: AtomicU64,
    renewals: AtomicU64,
    failed_renewals: AtomicU64,
}

impl TokenEvents {
    /// Successful logins (for a token from a file or variable: successful reads and lookups).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Successful renewals.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    /// Renewals that failed and were followed by a new login.
    pub fn failed_renewals(&self) -> u64 {
        self.failed_renewals.load(Ordering::Relaxed)
    }
}

/// A Vault connection shared by the checks and secret references of one configuration.
pub struct Vault {
    address: Url,
    http: reqwest::Client,
    auth: Auth,
    refresh_interval: Duration,
    /// The block as written, so that a check using Vault restarts when it changes.
    definition: serde_json::Value,
    lease: tokio::sync::Mutex<Option<Lease>>,
    secrets: Mutex<BTreeMap<(String, String), Cached>>,
    started: OnceCell<()>,
    events: TokenEvents,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("address", &self.address.as_str())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Errors from talking to Vault. Messages name the request, never the token or a value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Logging in, or reading the credential to log in with, failed.
    #[error("login to Vault failed: {0}")]
    Login(String),
    /// A request failed.
    #[error("{message}")]
    Request {
        /// The reason for a check outcome.
        reason: Reason,
        /// The failed request, with the cause.
        message: String,
        /// The HTTP status code, when Vault responded.
        status: Option<u16>,
    },
}

impl VaultError {
    /// Returns the HTTP status code of Vault's response, if it responded.
    pub fn status(&self) -> Option<u16> {
        match self {
            VaultError::Request { status, .. } => *status,
            VaultError::Login(_) => None,
        }
    }

    /// Converts the error into the error outcome of a check that could not evaluate.
    pub fn outcome(&self) -> Outcome {
        match self {
            VaultError::Login(_) => Outcome::error(Reason::VaultAuthFailed, self.to_string()),
            VaultError::Request {
                reason, message, ..
            } => Outcome::error(*reason, message.clone()),
        }
    }
}

/// A failed request to the Vault API, before [`request_error`] classifies it.
#[derive(Debug)]
pub enum ApiError {
    /// Vault responded with a status outside 2xx, and these messages in its `errors` list.
    Status {
        /// The HTTP status code.
        code: u16,
        /// Vault's error messages, which name paths and permissions, never tokens.
        errors: Vec<String>,
    },
    /// The request could not be sent, or no response came in time.
    Transport(reqwest::Error),
    /// The response began and then failed or stopped before its end.
    Body(reqwest::Error),
    /// The response body is larger than [`MAX_RESPONSE_BYTES`].
    TooLarge,
    /// The response is not the JSON the endpoint returns. The text names where parsing stopped.
    Invalid(String),
    /// The token contains characters that an HTTP header cannot carry.
    TokenNotHeader,
}

impl ApiError {
    /// Returns the HTTP status code of Vault's response, if it responded with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The envelope of most Vault responses, whose content is under `data`.
#[derive(Deserialize)]
struct DataEnvelope<T> {
    data: T,
}

/// The envelope of login and renewal responses.
#[derive(Deserialize)]
struct AuthEnvelope {
    auth: AuthInfo,
}

#[derive(Deserialize)]
struct AuthInfo {
    client_token: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

/// The fields of `auth/token/lookup-self` the exporter uses.
#[derive(Deserialize)]
struct TokenLookup {
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    renewable: Option<bool>,
    /// Null for a token without expiry, such as a root token.
    #[serde(default)]
    expire_time: Option<serde_json::Value>,
}

/// The data of a KV version 2 read; `data` is null when the latest version is deleted.
#[derive(Deserialize)]
struct KvData {
    data: Option<HashMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

impl Vault {
    /// Validates the `vault` block, recording problems with fields under `vault.`.
    pub fn build(
        spec: VaultSpec,
        definition: serde_json::Value,
        ctx: &mut BuildContext<'_>,
    ) -> Option<Arc<Vault>> {
        let before = ctx.problem_count();
        let address = ctx.http_url("vault.address", &spec.address);
        let timeout = match &spec.timeout {
            Some(value) => ctx.duration("vault.timeout", value),
            None => Some(DEFAULT_TIMEOUT),
        };
        let refresh_interval = match &spec.secret_refresh_interval {
            Some(value) => ctx.duration("vault.secret_refresh_interval", value),
            None => Some(DEFAULT_SECRET_REFRESH),
        };
        let auth = match spec.auth {
            AuthSpec::Token(SecretRef::Vault(_)) => {
                ctx.problem(
                    "vault.auth.token",
                    "the Vault token cannot come from Vault itself; write `{ file: /path/to/token }` or `{ env: VARIABLE }`",
                );
                None
            }
            AuthSpec::Token(reference) => ctx
                .secret_ref("vault.auth.token", reference)
                .map(Auth::Token),
            AuthSpec::Kubernetes(kubernetes) => {
                if kubernetes.role.trim().is_empty() {
                    ctx.problem(
                        "vault.auth.kubernetes.role",
                        "role is empty; name the Vault role bound to the exporter's service account",
                    );
                }
                let mount = kubernetes
                    .mount
                    .unwrap_or_else(|| DEFAULT_KUBERNETES_MOUNT.to_string())
                    .trim_matches('/')
                    .to_string();
                if mount.is_empty() {
                    ctx.problem(
                        "vault.auth.kubernetes.mount",
                        "mount is empty; write the path the Kubernetes auth method is enabled at, usually `kubernetes`",
                    );
                }
                let token_file = kubernetes
                    .service_account_token_file
                    .map(|path| ctx.resolve_path(&path))
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_SERVICE_ACCOUNT_TOKEN));
                Some(Auth::Kubernetes {
                    role: kubernetes.role,
                    mount,
                    token_file,
                })
            }
        };
        let ca_file = spec.ca_file.as_ref().map(|path| ctx.resolve_path(path));
        let http = match build_http_client(ca_file.as_deref(), timeout.unwrap_or(DEFAULT_TIMEOUT)) {
            Ok(client) => Some(client),
            Err(message) => {
                ctx.problem("vault.ca_file", message);
                None
            }
        };
        if ctx.problem_count() > before {
            return None;
        }
        Some(Arc::new(Vault {
            address: address?,
            http: http?,
            auth: auth?,
            refresh_interval: refresh_interval?,
            definition,
            lease: tokio::sync::Mutex::new(None),
            secrets: Mutex::new(BTreeMap::new()),
            started: OnceCell::new(),
            events: TokenEvents::default(),
        }))
    }

    /// Returns the Vault address, for messages.
    pub fn address(&self) -> &Url {
        &self.address
    }

    /// Returns the `vault` block as written in the file.
    pub fn definition(&self) -> &serde_json::Value {
        &self.definition
    }

    /// Returns the HTTP client, with the configured CA and timeout, for unauthenticated requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Counts of logins and renewals since this configuration was loaded.
    pub fn token_events(&self) -> &TokenEvents {
        &self.events
    }

    /// Registers a KV secret that a reference points at, so that it is read and refreshed.
    pub fn register_secret(&self, mount: &str, path: &str) {
        let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        secrets
            .entry((mount.to_string(), path.to_string()))
            .or_insert(Cached::Pending);
    }

    /// Logs in and reads every referenced secret once, then starts the background task that
    /// renews the token and refreshes the secrets. Later calls return at once.
    ///
    /// A failure is logged and recorded, never returned: checks that need Vault report it.
    pub async fn start(self: &Arc<Self>) {
        self.started
            .get_or_init(|| async {
                if let Err(err) = self.token().await {
                    warn!(vault = %self.address, error = %err, "Vault login failed; checks that use Vault report errors until it succeeds");
                }
                self.refresh_secrets().await;
                tokio::spawn(maintain(Arc::downgrade(self)));
            })
            .await;
    }

    /// Reads `v1/PATH` with a valid token, logging in or renewing first when needed, and returns
    /// the `data` of the response. A failed login is returned as the outer error.
    pub async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Result<T, ApiError>, VaultError> {
        let token = self.token().await?;
        Ok(self
            .call::<DataEnvelope<T>>(Method::GET, path, Some(&token), None)
            .await
            .map(|envelope| envelope.data))
    }

    /// Sends one request to `v1/PATH` and parses the JSON answer, reading at most
    /// [`MAX_RESPONSE_BYTES`] of it.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<serde_json::Value>,
    ) -> Result<T, ApiError> {
        let url = format!("{}/v1/{path}", self.address.as_str().trim_end_matches('/'));
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            let mut value =
                HeaderValue::from_str(token.expose()).map_err(|_| ApiError::TokenNotHeader)?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let mut response = request.send().await.map_err(ApiError::Transport)?;
        let status = response.status();
        let body = read_limited(&mut response).await?;
        if !status.is_success() {
            let errors = serde_json::from_slice::<ErrorBody>(&body)
                .map(|parsed| parsed.errors)
                .unwrap_or_default();
            return Err(ApiError::Status {
                code: status.as_u16(),
                errors,
            });
        }
        // The parse error's own text can quote a value from the body, so only its position is
        // kept.
        serde_json::from_slice(&body).map_err(|err| {
            ApiError::Invalid(format!(
                "the response is not the JSON this endpoint returns (parsing stopped at line {}, column {})",
                err.line(),
                err.column()
            ))
        })
    }

    /// Looks the token up, which every valid token may do under Vault's `default` policy.
    async fn lookup_self(&self, token: &Secret) -> Result<TokenLookup, ApiError> {
        self.call::<DataEnvelope<TokenLookup>>(
            Method::GET,
            "auth/token/lookup-self",
            Some(token),
            None,
        )
        .await
        .map(|envelope| envelope.data)
    }

    /// Returns the current token, logging in or renewing it first when needed.
    pub async fn token(&self) -> Result<Secret, VaultError> {
        let mut lease = self.lease.lock().await;
        let now = Instant::now();
        let due = match lease.as_ref() {
            None => true,
            Some(current) => current.renew_at().is_some_and(|at| now >= at),
        };
        if !due {
            if let Some(current) = lease.as_ref() {
                return Ok(current.token.clone());
            }
        }
        if let Some(current) = lease.take() {
            let still_valid = current.expires_at().is_none_or(|at| now < at);
            if current.renewable && still_valid {
                match self.renew(&current.token).await {
                    Ok(renewed) => {
                        self.events.renewals.fetch_add(1, Ordering::Relaxed);
                        debug!(vault = %self.address, ttl = %ttl_text(renewed.ttl), "Vault token renewed");
                        let token = renewed.token.clone();
                        *lease = Some(renewed);
                        return Ok(token);
                    }
                    Err(err) => {
                        self.events.failed_renewals.fetch_add(1, Ordering::Relaxed);
                        warn!(vault = %self.address, error = %err, "Vault token renewal failed; logging in again");
                    }
                }
            }
        }
        let fresh = self.login().await?;
        self.events.logins.fetch_add(1, Ordering::Relaxed);
        info!(vault = %self.address, ttl = %ttl_text(fresh.ttl), renewable = fresh.renewable, "Logged in to Vault");
        let token = fresh.token.clone();
        *lease = Some(fresh);
        Ok(token)
    }

    /// Drops the current token, so that the next request logs in again. Called when Vault
    /// rejects a token the exporter believed valid (revoked, or Vault restored from a backup).
    pub async fn invalidate_token(&self) {
        *self.lease.lock().await = None;
    }

    /// Tells a permission problem from an invalid token: after a 403, looks the token up, and
    /// drops it when Vault rejects it too. Returns the outcome the check reports.
    pub async fn forbidden_outcome(&self, what: &str) -> Outcome {
        let valid = match self.token().await {
            Ok(token) => self.lookup_self(&token).await.is_ok(),
            Err(err) => return err.outcome(),
        };
        if valid {
            Outcome::error(
                Reason::Forbidden,
                format!(
                    "Vault denied reading {what}; the exporter's policy needs read access to it"
                ),
            )
        } else {
            self.invalidate_token().await;
            Outcome::error(
                Reason::VaultAuthFailed,
                format!("Vault rejected the exporter's token while reading {what}; the next run logs in again"),
            )
        }
    }

    async fn login(&self) -> Result<Lease, VaultError> {
        match &self.auth {
            Auth::Token(reference) => {
                let token = reference
                    .resolve()
                    .map_err(|err| VaultError::Login(format!("cannot read the token: {err}")))?;
                let lookup = self.lookup_self(&token).await.map_err(|err| match err.status() {
                    Some(403) => VaultError::Login(format!(
                        "Vault rejected the token from {reference} with status 403: the token is invalid or revoked, or its policy lacks read on `auth/token/lookup-self`, which the `default` policy grants"
                    )),
                    _ => login_error(
                        &self.address,
                        &format!("looking up the token from {reference}"),
                        &err,
                    ),
                })?;
                if lookup.ttl == 0 && lookup.expire_time.is_some() {
                    return Err(VaultError::Login(format!(
                        "the token from {reference} has expired or reached its maximum TTL; write a new token there"
                    )));
                }
                let ttl = (lookup.ttl > 0).then(|| Duration::from_secs(lookup.ttl));
                Ok(Lease {
                    token,
                    obtained: Instant::now(),
                    ttl,
                    renewable: lookup.renewable.unwrap_or(false),
                })
            }
            Auth::Kubernetes {
                role,
                mount,
                token_file,
            } => {
                let jwt = SecretRef::File(token_file.clone())
                    .resolve()
                    .map_err(|err| {
                        VaultError::Login(format!("cannot read the service account token: {err}"))
                    })?;
                let body = serde_json::json!({ "role": role, "jwt": jwt.expose() });
                let auth = self
                    .call::<AuthEnvelope>(
                        Method::POST,
                        &format!("auth/{mount}/login"),
                        None,
                        Some(body),
                    )
                    .await
                    .map(|envelope| envelope.auth)
                    .map_err(|err| {
                        let error = login_error(
                            &self.address,
                            &format!("Kubernetes login with role `{role}` at `auth/{mount}`"),
                            &err,
                        );
                        match (error, err.status()) {
                            (VaultError::Login(message), Some(400 | 403)) => VaultError::Login(format!(
                                "{message}; check that the Kubernetes auth method is enabled at `auth/{mount}` and that role `{role}` is bound to the exporter's service account and namespace"
                            )),
                            (error, _) => error,
                        }
                    })?;
                Ok(Lease {
                    token: Secret::new(auth.client_token),
                    obtained: Instant::now(),
                    ttl: (auth.lease_duration > 0)
                        .then(|| Duration::from_secs(auth.lease_duration)),
                    renewable: auth.renewable,
                })
            }
        }
    }

    async fn renew(&self, token: &Secret) -> Result<Lease, VaultError> {
        let auth = self
            .call::<AuthEnvelope>(
                Method::POST,
                "auth/token/renew-self",
                Some(token),
                Some(serde_json::json!({})),
            )
            .await
            .map(|envelope| envelope.auth)
            .map_err(|err| request_error(&self.address, "renewing the token", &err))?;
        let ttl = (auth.lease_duration > 0).then(|| Duration::from_secs(auth.lease_duration));
        // Vault caps a renewal at the token's maximum TTL; a renewal that gains nothing would
        // only repeat, so it counts as failed and the exporter logs in again.
        if ttl.is_some_and(|ttl| ttl < Duration::from_secs(2)) {
            return Err(VaultError::Login(
                "the token reached its maximum TTL and cannot be renewed further".to_string(),
            ));
        }
        Ok(Lease {
            token: token.clone(),
            obtained: Instant::now(),
            ttl,
            renewable: auth.renewable,
        })
    }

    /// Reads every registered KV secret and updates the cache. A failed read keeps no stale
    /// value: the references to it report the failure until a read succeeds again.
    pub async fn refresh_secrets(&self) {
        let paths: Vec<(String, String)> = {
            let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
            secrets.keys().cloned().collect()
        };
        if paths.is_empty() {
            return;
        }
        let token = match self.token().await {
            Ok(token) => token,
            Err(err) => {
                let message = err.to_string();
                let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
                for value in secrets.values_mut() {
                    *value = Cached::Failed(message.clone());
                }
                return;
            }
        };
        for (mount, path) in paths {
            let what = format!("KV secret `{path}` in mount `{mount}`");
            let read = self
                .call::<DataEnvelope<KvData>>(
                    Method::GET,
                    &format!("{mount}/data/{path}"),
                    Some(&token),
                    None,
                )
                .await;
            let cached = match read {
                Ok(DataEnvelope {
                    data: KvData { data: Some(data) },
                }) => Cached::Loaded(Arc::new(
                    data.into_iter()
                        .map(|(key, value)| {
                            let text = match value {
                                serde_json::Value::String(text) => text,
                                other => other.to_string(),
                            };
                            (key, Secret::new(text))
                        })
                        .collect(),
                )),
                Ok(DataEnvelope {
                    data: KvData { data: None },
                }) => Cached::Failed(format!(
                    "{what} has no data; its latest version is deleted or destroyed"
                )),
                Err(err) => {
                    let error = request_error(&self.address, &format!("reading {what}"), &err);
                    let message = match err.status() {
                        Some(404) => format!("{what} does not exist, or its latest version is deleted; check that `{mount}` is a KV version 2 mount and that the path is inside it"),
                        Some(403) => format!("Vault denied reading {what}; the exporter's policy needs read on `{mount}/data/{path}`"),
                        _ => error.to_string(),
                    };
                    warn!(vault = %self.address, mount = %mount, path = %path, error = %message, "Reading a Vault secret reference failed");
                    Cached::Failed(message)
                }
            };
            let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
            secrets.insert((mount, path), cached);
        }
    }

    /// Returns one key of a referenced secret from the cache.
    pub fn cached_secret(&self, mount: &str, path: &str, key: &str) -> Result<Secret, SecretError> {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let reference = format!("Vault secret `{mount}/{path}#{key}`");
        match secrets.get(&(mount.to_string(), path.to_string())) {
            None | Some(Cached::Pending) => Err(SecretError::Vault {
                reference,
                message: "not read from Vault yet".to_string(),
            }),
            Some(Cached::Failed(message)) => Err(SecretError::Vault {
                reference,
                message: message.clone(),
            }),
            Some(Cached::Loaded(data)) => match data.get(key) {
                Some(secret) if !secret.expose().is_empty() => Ok(secret.clone()),
                Some(_) => Err(SecretError::Empty(reference)),
                None => {
                    let known: BTreeSet<&str> = data.keys().map(String::as_str).collect();
                    let known: Vec<&str> = known.into_iter().collect();
                    Err(SecretError::Vault {
                        reference,
                        message: format!(
                            "the secret has no key `{key}`; its keys are: {}",
                            known.join(", ")
                        ),
                    })
                }
            },
        }
    }

    /// When the maintenance task should next wake: at the token's renewal point or the next secret
    /// refresh, whichever comes first, and within [`RETRY_AFTER_FAILURE`] while a read fails.
    async fn next_wake(&self, next_refresh: Instant) -> Instant {
        let retry = Instant::now() + RETRY_AFTER_FAILURE.min(self.refresh_interval);
        let wake = match self.lease.lock().await.as_ref() {
            None => retry,
            Some(current) => current
                .renew_at()
                .map_or(next_refresh, |at| at.min(next_refresh)),
        };
        if self.has_failed_secrets() {
            wake.min(retry)
        } else {
            wake
        }
    }

    /// Returns whether the last read of any referenced secret failed.
    fn has_failed_secrets(&self) -> bool {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        secrets
            .values()
            .any(|cached| matches!(cached, Cached::Failed(_)))
    }
}

/// Renews the token before it expires and refreshes the secret cache, until the [`Vault`] is
/// dropped (a reload replaced every check that used it).
async fn maintain(vault: Weak<Vault>) {
    let mut next_refresh = match vault.upgrade() {
        Some(vault) => Instant::now() + vault.refresh_interval,
        None => return,
    };
    loop {
        let wake = match vault.upgrade() {
            Some(vault) => vault.next_wake(next_refresh).await,
            None => return,
        };
        tokio::time::sleep_until(wake).await;
        let Some(vault) = vault.upgrade() else { return };
        if let Err(err) = vault.token().await {
            warn!(vault = %vault.address, error = %err, "Vault login failed; retrying");
        }
        // A failed read is retried at once rather than after a whole refresh interval, so that
        // references recover soon after Vault does.
        if Instant::now() >= next_refresh || vault.has_failed_secrets() {
            vault.refresh_secrets().await;
            next_refresh = Instant::now() + vault.refresh_interval;
        }
    }
}

fn build_http_client(
    ca_file: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("readiness-exporter/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|err| format!("cannot read CA file `{}`: {err}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default();
        if certs.is_empty() {
            return Err(format!(
                "CA file `{}` contains no PEM certificate; it must hold one or more `BEGIN CERTIFICATE` blocks",
                path.display()
            ));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|err| format!("cannot build the Vault HTTP client: {err}"))
}

/// Formats a token's TTL for logs: seconds, or `none` for a token without expiry.
fn ttl_text(ttl: Option<Duration>) -> String {
    match ttl {
        Some(ttl) => format!("{}s", ttl.as_secs()),
        None => "none".to_string(),
    }
}

/// Returns the path inside the mount when `path` was written as an API path that starts with the
/// mount and `data/` or `metadata/`, such as `secret/data/app/db` for `app/db` in `secret`.
pub fn path_inside_mount<'a>(mount: &str, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix(mount)?.strip_prefix('/')?;
    rest.strip_prefix("data/")
        .or_else(|| rest.strip_prefix("metadata/"))
        .filter(|inside| !inside.is_empty())
}

/// Classifies a failed login. Vault rejecting the credentials (400, 401 or 403) is a login
/// failure; a Vault that cannot be reached or does not respond as Vault keeps the request's
/// reason, so that an alert on `connection_refused` or `timeout` also covers the login.
fn login_error(address: &Url, what: &str, err: &ApiError) -> VaultError {
    match request_error(address, what, err) {
        VaultError::Request {
            reason,
            message,
            status,
        } if !matches!(status, Some(400 | 401 | 403)) => VaultError::Request {
            reason,
            message: format!("login to Vault failed: {message}"),
            status,
        },
        error => VaultError::Login(error.to_string()),
    }
}

/// Classifies a failed Vault request. The message names what was requested and the cause;
/// Vault's own error strings are included because they name paths and permissions, never tokens.
pub fn request_error(address: &Url, what: &str, err: &ApiError) -> VaultError {
    let failed = |reason: Reason, message: String| VaultError::Request {
        reason,
        message,
        status: None,
    };
    match err {
        ApiError::Status { code, errors } => {
            // Vault's messages can span lines ("1 error occurred:\n\t* ..."), and a log line or
            // a metric label must not.
            let joined = errors.join("; ");
            let joined = joined.split_whitespace().collect::<Vec<_>>().join(" ");
            let detail = if joined.is_empty() {
                String::new()
            } else {
                format!(": {}", crate::check::http::truncate(&joined, 200))
            };
            let reason = match code {
                401 => Reason::Unauthorized,
                403 => Reason::Forbidden,
                429 => Reason::RateLimited,
                _ => Reason::UnexpectedStatus,
            };
            VaultError::Request {
                reason,
                message: format!("{what} failed: Vault responded with status {code}{detail}"),
                status: Some(*code),
            }
        }
        ApiError::Transport(error) => {
            let (reason, message) = crate::check::http::classify(error, address);
            failed(reason, format!("{what}: {message}"))
        }
        ApiError::Body(error) => {
            let (reason, message) = crate::check::http::classify(error, address);
            // A connection that drops in the middle of a response is a broken response.
            let reason = match reason {
                Reason::ConnectionFailed => Reason::InvalidResponse,
                other => other,
            };
            failed(reason, format!("{what}: reading the response failed: {message}"))
        }
        ApiError::TooLarge => failed(
            Reason::BodyTooLarge,
            format!("{what} failed: the response is larger than {MAX_RESPONSE_BYTES} bytes, far more than Vault sends for it; check that `vault.address` points at Vault"),
        ),
        ApiError::Invalid(detail) => failed(Reason::InvalidResponse, format!("{what} failed: {detail}")),
        ApiError::TokenNotHeader => VaultError::Login(
            "the token contains characters that an HTTP header cannot carry; check the token's source for stray characters".to_string(),
        ),
    }
}

/// Reads a response body of at most [`MAX_RESPONSE_BYTES`].
async fn read_limited(response: &mut reqwest::Response) -> Result<Vec<u8>, ApiError> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES)
    {
        return Err(ApiError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ApiError::Body)? {
        if body.len() as u64 + chunk.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(ApiError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
