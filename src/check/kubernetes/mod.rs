//! Kubernetes check kinds and the API connection they share.
//!
//! Every kind reads the API with the `kube` client and never changes anything: the only verbs
//! used are `get` and `list`. All checks of one configuration load share one [`Connection`],
//! whose client is built on first use and reused afterwards. A 403 is an error naming the verb,
//! resource and namespace the exporter lacks. A 404 for a whole resource type (a CRD that is not
//! installed) is an error saying so. Neither ever counts as passing.

pub mod config_refs;
pub mod helm_release;
pub mod image_scan;
pub mod ingress_tls;
pub mod network_policy;
pub mod old_versions;
pub mod pod_security;
pub mod rbac;
pub mod vault_injection;
pub mod workload;

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::http::truncate;
use super::{Outcome, Reason};
use crate::config::BuildContext;

/// The kinds that read the Kubernetes API through the shared [`Connection`].
pub const KIND_NAMES: &[&str] = &[
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

/// The `limit` of one list request. Larger collections are read page by page with `continue`.
pub const PAGE_SIZE: u32 = 500;

/// The maximum number of pages one list reads: 1000 pages of [`PAGE_SIZE`] objects, 500,000 in all.
pub const MAX_LIST_PAGES: usize = 1000;

/// The top-level `kubernetes` block, as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
}

/// The source of the client's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionSource {
    /// The pod's service account: the token and CA mounted under
    /// `/var/run/secrets/kubernetes.io/serviceaccount` and `KUBERNETES_SERVICE_HOST`/`_PORT`.
    InCluster,
    /// A kubeconfig file and optionally one of its contexts (otherwise its current context).
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The context to use.
        context: Option<String>,
    },
}

/// The API connection shared by every Kubernetes check of one configuration.
///
/// The client is built on the first run of a Kubernetes check and kept, so checks share its
/// connection pool. A failed build is not kept: the next run tries again.
pub struct Connection {
    source: ConnectionSource,
    client: tokio::sync::OnceCell<kube::Client>,
    tokens: std::sync::Mutex<SentTokens>,
}

/// The bearer tokens the client may send, and the files they were read from, so that a rotated
/// token file is read again.
#[derive(Default)]
struct SentTokens {
    /// Each file read and its modification time then.
    files: Vec<(PathBuf, Option<std::time::SystemTime>)>,
    /// Tokens read so far, newest last. Earlier tokens are kept because the client may still
    /// send one until it reloads its own credentials.
    tokens: Vec<String>,
}

/// The maximum number of tokens kept for redaction.
const MAX_SENT_TOKENS: usize = 16;

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("source", &self.source)
            .field("built", &self.client.initialized())
            .finish()
    }
}

impl Default for Connection {
    fn default() -> Self {
        Connection::new(ConnectionSource::InCluster)
    }
}

impl Connection {
    /// A connection that builds its client from `source` on first use.
    pub fn new(source: ConnectionSource) -> Self {
        Connection {
            source,
            client: tokio::sync::OnceCell::new(),
            tokens: std::sync::Mutex::new(SentTokens::default()),
        }
    }

    /// Returns the bearer tokens the client may send: every user `token` and `tokenFile` of the
    /// kubeconfig, or the service account token in the cluster. Outcomes are redacted with them,
    /// because an API server's error message or a body can quote the request's token. The files
    /// are read again when their modification time changes, as a projected token's does when
    /// the kubelet rotates it.
    // NOTE: a token that an exec plugin prints is not listed, because only the client sees it.
    pub fn sent_tokens(&self) -> Vec<String> {
        let mut sent = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let unchanged = !sent.files.is_empty()
            && sent
                .files
                .iter()
                .all(|(path, modified)| modified_time(path) == *modified);
        if !unchanged {
            let (files, tokens) = read_tokens(&self.source);
            sent.files = files
                .into_iter()
                .map(|path| {
                    let modified = modified_time(&path);
                    (path, modified)
                })
                .collect();
            for token in tokens {
                if !sent.tokens.contains(&token) {
                    sent.tokens.push(token);
                }
            }
            let excess = sent.tokens.len().saturating_sub(MAX_SENT_TOKENS);
            sent.tokens.drain(..excess);
        }
        sent.tokens.clone()
    }

    /// Validates the top-level `kubernetes` block. A kubeconfig file must exist, parse and
    /// contain the named context, so that mistakes surface at load rather than on every run.
    pub fn build(spec: ConnectionSpec, ctx: &mut BuildContext<'_>) -> Connection {
        let Some(path) = spec.kubeconfig else {
            if spec.context.is_some() {
                ctx.problem(
                    "kubernetes.context",
                    "`context` needs `kubeconfig`; name the kubeconfig file, or remove `context` to use the in-cluster service account",
                );
            }
            return Connection::default();
        };
        let path = ctx.resolve_path(&path);
        match kube::config::Kubeconfig::read_from(&path) {
            Ok(kubeconfig) => {
                if let Some(context) = &spec.context {
                    if !kubeconfig.contexts.iter().any(|named| &named.name == context) {
                        let known: Vec<&str> = kubeconfig
                            .contexts
                            .iter()
                            .map(|named| named.name.as_str())
                            .collect();
                        ctx.problem(
                            "kubernetes.context",
                            format!(
                                "context `{context}` is not in kubeconfig `{}`; it has: {}",
                                path.display(),
                                known.join(", ")
                            ),
                        );
                    }
                }
            }
            Err(err) => ctx.problem(
                "kubernetes.kubeconfig",
                format!(
                    "cannot load kubeconfig `{}`: {}; name a readable kubeconfig file, or remove `kubeconfig` to use the in-cluster service account",
                    path.display(),
                    error_chain(&err)
                ),
            ),
        }
        Connection::new(ConnectionSource::Kubeconfig {
            path,
            context: spec.context,
        })
    }

    /// Returns the shared client, building it on first use.
    pub async fn client(&self) -> Result<kube::Client, Outcome> {
        self.client
            .get_or_try_init(|| build_client(&self.source))
            .await
            .cloned()
            .map_err(|message| Outcome::error(Reason::ApiClientUnavailable, message))
    }
}

/// The service account token of a pod, as `kube::Config::incluster` reads it.
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

fn modified_time(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// Reads a token file, or nothing when it cannot be read.
fn read_token_file(path: &Path) -> Option<String> {
    let text = crate::file::read_limited(path, crate::file::MAX_DOCUMENT_BYTES).ok()?;
    let token = String::from_utf8_lossy(&text).trim().to_string();
    (!token.is_empty()).then_some(token)
}

/// Returns the files that hold the client's tokens, and the tokens in them.
fn read_tokens(source: &ConnectionSource) -> (Vec<PathBuf>, Vec<String>) {
    match source {
        ConnectionSource::InCluster => {
            let path = PathBuf::from(SERVICE_ACCOUNT_TOKEN);
            let tokens = read_token_file(&path).into_iter().collect();
            (vec![path], tokens)
        }
        ConnectionSource::Kubeconfig { path, .. } => {
            let mut files = vec![path.clone()];
            let Ok(text) = crate::file::read_limited(path, crate::file::MAX_DOCUMENT_BYTES) else {
                return (files, Vec::new());
            };
            let Ok(kubeconfig) =
                serde_saphyr::from_str::<serde_json::Value>(&String::from_utf8_lossy(&text))
            else {
                return (files, Vec::new());
            };
            let mut tokens = Vec::new();
            let users = kubeconfig["users"].as_array().into_iter().flatten();
            for user in users {
                if let Some(token) = user.pointer("/user/token").and_then(|v| v.as_str()) {
                    if !token.is_empty() {
                        tokens.push(token.to_string());
                    }
                }
                if let Some(file) = user.pointer("/user/tokenFile").and_then(|v| v.as_str()) {
                    // A relative path is relative to the kubeconfig's folder, as the client reads it.
                    let file = path.parent().unwrap_or(Path::new(".")).join(file);
                    tokens.extend(read_token_file(&file));
                    files.push(file);
                }
            }
            (files, tokens)
        }
    }
}

async fn build_client(source: &ConnectionSource) -> Result<kube::Client, String> {
    let mut config = match source {
        ConnectionSource::InCluster => kube::Config::incluster().map_err(|err| {
            format!(
                "cannot use the in-cluster service account: {}; run the exporter in a pod, or set `kubernetes.kubeconfig`",
                error_chain(&err)
            )
        })?,
        ConnectionSource::Kubeconfig { path, context } => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|err| {
                format!(
                    "cannot load kubeconfig `{}`: {}",
                    path.display(),
                    error_chain(&err)
                )
            })?;
            let options = kube::config::KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|err| {
                    format!(
                        "invalid kubeconfig `{}`: {}",
                        path.display(),
                        error_chain(&err)
                    )
                })?
        }
    };
    // A check makes one attempt; the scheduler decides when to try again.
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|err| format!("cannot build Kubernetes client: {}", error_chain(&err)))?;
    // The client would otherwise buffer a response of any size, so a broken or hostile API
    // server could grow the exporter by gigabytes.
    let limited = builder.with_layer(&tower::util::MapResponseLayer::new(
        |response: http::Response<Box<kube::client::DynBody>>| {
            response.map(|body| http_body_util::Limited::new(body, MAX_RESPONSE_BYTES))
        },
    ));
    Ok(limited.build())
}

/// The largest response body one Kubernetes API request reads, as for the monitoring kinds. A
/// page of 500 pods of about 15 KB each, or a Helm release Secret of at most 1 MiB, fits.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// One API request, described for messages: the verb, the resource and the namespace.
#[derive(Clone, Debug)]
pub struct ApiCall {
    verb: &'static str,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
}

impl ApiCall {
    /// Describes a request with `verb` on the resource type `K` in `namespace` (`None`: the
    /// cluster scope, for all namespaces or a cluster-scoped type).
    pub fn new<K>(verb: &'static str, namespace: Option<&str>) -> Self
    where
        K: Resource<DynamicType = ()>,
    {
        Self::with_resource(
            verb,
            resource_name(&K::plural(&()), &K::group(&())),
            namespace,
        )
    }

    /// Describes a request with `verb` on a resource named `resource` (`deployments.apps`).
    pub fn with_resource(verb: &'static str, resource: String, namespace: Option<&str>) -> Self {
        ApiCall {
            verb,
            resource,
            namespace: namespace.map(str::to_string),
            name: None,
        }
    }

    /// Narrows the request to one object, so a 403 names it for RBAC rules with `resourceNames`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    fn target(&self) -> String {
        match &self.name {
            Some(name) => format!("{} `{name}`", self.resource),
            None => self.resource.clone(),
        }
    }

    fn scope(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("in namespace `{namespace}`"),
            None => "at the cluster scope".to_string(),
        }
    }
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.verb, self.target(), self.scope())
    }
}

/// `deployments.apps`, or `pods` for the core group: the form RBAC messages and kubectl use.
pub fn resource_name(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// Turns a failed API request into an error outcome that names the request.
pub fn api_error(call: &ApiCall, err: kube::Error) -> Outcome {
    match err {
        kube::Error::Api(status) => status_error(call, &status),
        // A parse error quotes the value it rejected, which can be as long as the response.
        kube::Error::SerdeError(err) => Outcome::error(
            Reason::InvalidResponse,
            format!(
                "{call}: the API server's answer is not the expected object: {}",
                truncate(&err.to_string(), 300)
            ),
        ),
        other => {
            let chain = truncate(&error_chain(&other), 300);
            let lower = chain.to_ascii_lowercase();
            let reason = if lower.contains("connection refused") {
                Reason::ConnectionRefused
            } else if lower.contains("length limit exceeded") {
                Reason::BodyTooLarge
            } else if is_malformed_response(&other) {
                Reason::InvalidResponse
            } else if lower.contains("certificate") || lower.contains("tls") {
                Reason::TlsError
            } else {
                Reason::ConnectionFailed
            };
            Outcome::error(reason, format!("{call}: {chain}"))
        }
    }
}

fn status_error(call: &ApiCall, status: &kube::core::Status) -> Outcome {
    let server_message = if status.message.is_empty() {
        String::new()
    } else {
        format!(" (API server: {})", truncate(&status.message, 300))
    };
    match status.code {
        401 => Outcome::error(
            Reason::Unauthorized,
            format!("{call}: 401 Unauthorized{server_message}; the credentials of the kubeconfig or service account were rejected"),
        ),
        403 => Outcome::error(
            Reason::Forbidden,
            format!(
                "forbidden: the exporter may not {} {} {}{server_message}; grant `{}` on `{}`{} to its service account (docs/kubernetes-rbac.md lists what each kind needs)",
                call.verb,
                call.target(),
                call.scope(),
                call.verb,
                call.resource,
                match &call.name {
                    Some(name) => format!(" with resourceNames [{name}]"),
                    None => String::new(),
                },
            ),
        ),
        404 => Outcome::error(
            Reason::ResourceTypeMissing,
            format!(
                "{call}: the API server does not serve `{}`{server_message}; install the CustomResourceDefinition or operator that provides it",
                call.resource
            ),
        ),
        429 => Outcome::error(
            Reason::RateLimited,
            format!("{call}: 429 Too Many Requests{server_message}"),
        ),
        code => Outcome::error(
            Reason::UnexpectedStatus,
            format!("{call}: API server answered {code}{server_message}"),
        ),
    }
}

/// Whether a 404 names one object (`deployments.apps "api" not found`) rather than the whole
/// resource type. The API server fills `details.name` only for a missing object.
fn is_object_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status)
        if status.code == 404
            && status.details.as_ref().is_some_and(|details| !details.name.is_empty()))
}

/// Gets one object; `Ok(None)` when that object does not exist.
pub async fn get_opt<K>(api: &Api<K>, call: &ApiCall, name: &str) -> Result<Option<K>, Outcome>
where
    K: Clone + DeserializeOwned + fmt::Debug,
{
    match api.get(name).await {
        Ok(object) => Ok(Some(object)),
        Err(err) if is_object_not_found(&err) => Ok(None),
        Err(err) => Err(api_error(call, err)),
    }
}

/// Lists every object matching `params`, page by page with `limit` and `continue`.
pub async fn list_all<K>(
    api: &Api<K>,
    call: &ApiCall,
    params: &ListParams,
) -> Result<Vec<K>, Outcome>
where
    K: Clone + DeserializeOwned + fmt::Debug,
{
    let mut params = params.clone().limit(PAGE_SIZE);
    let mut items = Vec::new();
    let mut tokens = std::collections::HashSet::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|err| api_error(call, err))?;
        items.extend(page.items);
        let token = match page.metadata.continue_ {
            Some(token) if !token.is_empty() => token,
            _ => return Ok(items),
        };
        // A server that hands out a token again, or never stops, would keep this loop
        // reading until the check times out, holding every page in memory.
        if tokens.len() + 1 >= MAX_LIST_PAGES {
            return Err(Outcome::error(
                Reason::InvalidResponse,
                format!("{call}: the list has more than {MAX_LIST_PAGES} pages of {PAGE_SIZE}; narrow the namespaces or the selector"),
            ));
        }
        if !tokens.insert(token.clone()) {
            return Err(Outcome::error(
                Reason::InvalidResponse,
                format!(
                    "{call}: the API server returned the `continue` token `{}` a second time, so the list never ends",
                    truncate(&token, 40)
                ),
            ));
        }
        params = params.continue_token(&token);
    }
}

/// A label selector in the API's string form (`app=api,tier in (web)`), validated at load.
///
/// Validation accepts the operators of the Kubernetes label selector syntax: `=`, `==`, `!=`,
/// `in`, `notin`, existence (`key`) and non-existence (`!key`).
pub fn validate_selector(ctx: &mut BuildContext<'_>, field: &str, selector: &str) -> bool {
    if selector.trim().is_empty() {
        ctx.problem(
            field,
            "label selector is empty; write one such as `app.kubernetes.io/name=api`",
        );
        return false;
    }
    match parse_selector(selector) {
        Ok(_) => true,
        Err(detail) => {
            ctx.problem(
                field,
                format!("invalid label selector `{selector}`: {detail}; write one such as `app.kubernetes.io/name=api,tier in (web,api)`"),
            );
            false
        }
    }
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key in (values)`, also `key=value` and `key==value`.
    In(String, Vec<String>),
    /// `key notin (values)`, also `key!=value`.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// Parses a label selector string into its requirements.
pub fn parse_selector(selector: &str) -> Result<Vec<Requirement>, String> {
    let mut requirements = Vec::new();
    for part in split_top_level(selector) {
        let part = part.trim();
        if part.is_empty() {
            return Err("empty requirement between commas".to_string());
        }
        requirements.push(parse_requirement(part)?);
    }
    Ok(requirements)
}

fn split_top_level(selector: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(label_key(key.trim())?));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(Requirement::NotIn(
            label_key(key.trim())?,
            vec![label_value(value.trim())?],
        ));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::In(
            label_key(key.trim())?,
            vec![label_value(value.trim())?],
        ));
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim();
        let (negated, list) = if let Some(list) = rest.strip_prefix("notin") {
            (true, list)
        } else if let Some(list) = rest.strip_prefix("in") {
            (false, list)
        } else {
            return Err(format!(
                "unknown operator in `{part}`; use =, !=, in or notin"
            ));
        };
        let list = list
            .trim()
            .strip_prefix('(')
            .and_then(|list| list.strip_suffix(')'))
            .ok_or_else(|| format!("the values of `{part}` must be in parentheses"))?;
        let values = list
            .split(',')
            .map(|value| label_value(value.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let key = label_key(key)?;
        return Ok(if negated {
            Requirement::NotIn(key, values)
        } else {
            Requirement::In(key, values)
        });
    }
    Ok(Requirement::Exists(label_key(part)?))
}

fn label_key(key: &str) -> Result<String, String> {
    let name = key.rsplit('/').next().unwrap_or_default();
    let valid = !name.is_empty()
        && name.len() <= 63
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!("`{key}` is not a valid label key"))
    }
}

fn label_value(value: &str) -> Result<String, String> {
    let valid = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(value.to_string())
    } else {
        Err(format!("`{value}` is not a valid label value"))
    }
}

/// Whether `labels` match a `LabelSelector` object as the API defines it: every `matchLabels`
/// pair and every `matchExpressions` requirement holds, and an empty selector matches all.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let pairs_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_match = selector
        .match_expressions
        .iter()
        .flatten()
        .all(|expression| {
            let value = labels.get(&expression.key);
            let values = expression.values.as_deref().unwrap_or_default();
            match expression.operator.as_str() {
                "In" => value.is_some_and(|value| values.contains(value)),
                "NotIn" => !value.is_some_and(|value| values.contains(value)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                // The API server rejects other operators, so an object with one cannot exist.
                _ => false,
            }
        });
    pairs_match && expressions_match
}

/// Returns true when the server's bytes were not a complete HTTP response: not HTTP at all, or
/// cut off before the response ended.
fn is_malformed_response(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(error) = current {
        if let Some(hyper_error) = error.downcast_ref::<hyper::Error>() {
            return hyper_error.is_parse() || hyper_error.is_incomplete_message();
        }
        current = error.source();
    }
    false
}

/// Joins an error with its sources: `outer: inner: root`.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The shared connection handle passed to every Kubernetes check.
pub type SharedConnection = Arc<Connection>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_tokens_listed() {
        // The Kubernetes kinds once quoted an API server's error message without redaction, and
        // a server that echoes the request's token put it into the outcome.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nusers:\n- name: a\n  user:\n    token: first-token\n- name: b\n  user:\n    client-certificate-data: Zm9v\n- name: c\n  user:\n    token: second-token\n",
        )
        .unwrap();
        let connection = Connection::new(ConnectionSource::Kubeconfig {
            path,
            context: None,
        });
        assert_eq!(connection.sent_tokens(), ["first-token", "second-token"]);
    }

    #[test]
    fn token_file_read_again_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nusers:\n- name: a\n  user:\n    tokenFile: token\n",
        )
        .unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "first-token\n").unwrap();
        let connection = Connection::new(ConnectionSource::Kubeconfig {
            path,
            context: None,
        });
        assert_eq!(connection.sent_tokens(), ["first-token"]);

        // A rotation replaces the file; the modification time moves forward.
        std::fs::write(&token_file, "second-token\n").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&token_file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(connection.sent_tokens(), ["first-token", "second-token"]);
    }
}
