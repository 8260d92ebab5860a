//! Configuration: the YAML file, environment overrides and the validated types built from them.
//!
//! Loading is a separate, named step from running: [`load`] reads the file, applies overrides
//! from `READINESS_EXPORTER__*` environment variables (`READINESS_EXPORTER__GLOBAL__INTERVAL=45s`),
//! and converts everything into validated types. URLs are parsed, regexes compiled, CA files read
//! and durations compared here, and every problem in the file is collected and returned at once,
//! so one edit fixes the whole file.

mod collect;
mod lines;
mod raw;
mod schedule;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::check::{
    alertmanager, cors, dns, elasticsearch, grafana, http, kubernetes, loki, postgres, prometheus,
    signoff, tls, vault as vault_kinds, Kind,
};
use crate::secret::SecretRef;
use crate::vault::{Vault, VaultSpec};
pub use lines::LineIndex;
pub use raw::KIND_NAMES;
use raw::{RawCheck, RawGlobal};
use schedule::{GlobalSchedule, Inherited};

/// The prefix of environment variables that override configuration values.
pub const ENV_PREFIX: &str = "READINESS_EXPORTER";

const DEFAULT_LISTEN_ADDRESS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9731));
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_CONCURRENT_CHECKS: usize = 32;
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The maximum duration any field accepts: 100 years of 365 days. Longer values are typos, and
/// the scheduler and the outputs add and multiply durations, which would overflow.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A loaded and validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Settings that apply to the whole exporter.
    pub global: Global,
    /// The checks, in file order.
    pub checks: Vec<Arc<CheckDef>>,
    /// The connection to Vault, when the file has a `vault` block.
    pub vault: Option<Arc<Vault>>,
    /// Problems that do not make the file invalid: secret references to environment variables
    /// that are unset or empty where the file was loaded. `validate` and `check` print them.
    pub warnings: Vec<Problem>,
}

/// The `global` block, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// The address the web server listens on.
    pub listen_address: SocketAddr,
    /// The interval of checks that set none.
    pub interval: Duration,
    /// The timeout of checks that set none.
    pub timeout: Duration,
    /// The maximum random delay added to each scheduled run, for checks that set none.
    /// `None` means a tenth of the check's interval.
    pub jitter: Option<Duration>,
    /// How many checks may run at the same moment.
    pub max_concurrent_checks: usize,
    /// The URL under which users reach the exporter, for links in pages and alerts.
    pub external_url: Option<Url>,
}

/// How much a failing check matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Blocks a go-live and pages on-call.
    Critical,
    /// Needs attention during working hours.
    Warning,
    /// Shown on the checklist, never alerts.
    Info,
}

impl Severity {
    /// The lowercase name used in labels and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One validated check.
#[derive(Debug)]
pub struct CheckDef {
    /// Stable identifier, lowercase `[a-z0-9_]`.
    pub id: String,
    /// The checklist's wording.
    pub title: String,
    /// The checklist section the item belongs to.
    pub section: String,
    /// How much a failure matters.
    pub severity: Severity,
    /// Whether the check counts for the deploy gate.
    pub blocking: bool,
    /// Time between runs.
    pub interval: Duration,
    /// Deadline of one run; always shorter than `interval`.
    pub timeout: Duration,
    /// Maximum random delay added to each scheduled run.
    pub jitter: Duration,
    /// The page on-call reads when the check fails.
    pub runbook_url: Option<String>,
    /// The kind and its settings.
    pub kind: Kind,
    /// The check as written, after overrides; a reload restarts a check only when this changes.
    pub definition: Definition,
}

/// A check's definition as written, after overrides, with the connection blocks it depends on,
/// kept only to tell on a reload whether the check changed.
///
/// It stores the SHA-256 digest of the compact JSON text instead of the text (about 200 bytes of
/// heap for an `http` check) or the parsed value (about 1.4 KiB). serde_json sorts object keys
/// here (the `preserve_order` feature is off), so two values have equal texts exactly when they
/// are equal, and equal digests but for a SHA-256 collision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Definition([u8; 32]);

impl Definition {
    /// Digests `value` as the definition.
    pub fn new(value: &serde_json::Value) -> Self {
        Definition::digest(&[value.to_string().as_bytes()])
    }

    fn digest(parts: &[&[u8]]) -> Self {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for part in parts {
            context.update(part);
        }
        let mut bytes = [0; 32];
        bytes.copy_from_slice(context.finish().as_ref());
        Definition(bytes)
    }

    /// Returns the definition extended by a block that the check depends on, such as `vault`.
    fn with_block(self, name: &str, block: &serde_json::Value) -> Self {
        // The digest has a fixed length and the name contains no `=`, so the parts stay apart.
        Definition::digest(&[
            &self.0,
            b"\n",
            name.as_bytes(),
            b"=",
            block.to_string().as_bytes(),
        ])
    }
}

impl From<serde_json::Value> for Definition {
    fn from(value: serde_json::Value) -> Self {
        Definition::new(&value)
    }
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The id of the check, when the problem is inside one.
    pub check: Option<String>,
    /// The dotted path of the field (`http.url`), or empty for the item as a whole.
    pub field: String,
    /// The description of the problem, with the bad value and the fix.
    pub message: String,
    /// The 1-based line in the file, where it could be found.
    pub line: Option<usize>,
    /// The environment variable that set the field, when an override did. The line is then
    /// left out, because the value is not in the file.
    pub env_var: Option<String>,
    index: Option<usize>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(env_var) = &self.env_var {
            write!(f, "environment variable `{env_var}`")?;
            let separator = if self.check.is_none() && self.field.is_empty() {
                ": "
            } else {
                ", "
            };
            f.write_str(separator)?;
        }
        match (&self.check, self.field.is_empty()) {
            (Some(check), true) => write!(f, "check `{check}`: ")?,
            (Some(check), false) => write!(f, "check `{check}`, field `{}`: ", self.field)?,
            (None, false) => write!(f, "field `{}`: ", self.field)?,
            (None, true) => {}
        }
        f.write_str(&self.message)
    }
}

/// Errors from [`load`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    // The reason is part of the message, and not a `source`, so that every output (the CLI, the
    // reload log and the /-/reload response) shows it exactly once.
    #[error("cannot read configuration file `{path}`: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error, such as "No such file or directory".
        error: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("configuration file `{path}` is not valid YAML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file is valid YAML but describes an invalid configuration.
    #[error("configuration file `{path}` has {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| format!("  {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads a configuration file with overrides from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, None)
}

/// Loads a configuration file with overrides from `env` instead of the process environment.
///
/// `env` maps variable names (`READINESS_EXPORTER__GLOBAL__INTERVAL`) to values. Tests use it so
/// that they never change the environment of the process.
pub fn load_with_env(
    path: &Path,
    env: Option<HashMap<String, String>>,
) -> Result<Config, ConfigError> {
    // Building a check builds its TLS client, which panics without a process-wide provider.
    crate::install_crypto_provider();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut env = env.unwrap_or_else(|| {
        std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect()
    });
    // Copied before `take_checks_overrides` removes entries, because secret references may
    // name any variable.
    let secret_env = env.clone();
    let mut problems = take_checks_overrides(&mut env);
    let overrides = env_overrides(Some(&env));
    let document = parse_document(path, &text, Some(env))?;
    let index = LineIndex::new(&text);
    let mut env_references = Vec::new();
    let config = build(document, &base_dir, &mut problems, &mut env_references);
    if problems.is_empty() {
        if let Some(mut config) = config {
            config.warnings = unset_variable_warnings(&env_references, &secret_env, &index);
            return Ok(config);
        }
    }
    for problem in &mut problems {
        if problem.check.is_none() && problem.env_var.is_none() {
            problem.env_var = overriding_variable(&overrides, &problem.field);
        }
        problem.line = match (problem.index, problem.check.is_some()) {
            _ if problem.env_var.is_some() => None,
            (Some(i), _) => index.field_line(i, &problem.field),
            (None, false) => top_level_line(&index, &problem.field),
            _ => None,
        };
    }
    problems.sort_by_key(|problem| problem.line.unwrap_or(usize::MAX));
    Err(ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

/// Builds a warning for each secret reference to an environment variable that `env` does not
/// set or sets to an empty string, with the line of the field that makes the reference. Such a reference fails
/// each time it is read, but the variable may be set where the exporter runs, so the file stays
/// valid.
fn unset_variable_warnings(
    references: &[EnvReference],
    env: &HashMap<String, String>,
    index: &LineIndex<'_>,
) -> Vec<Problem> {
    let mut warnings = Vec::new();
    for reference in references {
        let state = match env.get(&reference.variable) {
            None => "is not set",
            Some(value) if value.is_empty() => "is empty",
            Some(_) => continue,
        };
        let consequence = if reference.check.is_some() {
            "the check reports `error` with reason `secret_unavailable`"
        } else {
            "the secret cannot be read"
        };
        let line = match reference.index {
            Some(i) => index.field_line(i, &reference.field),
            None => top_level_line(index, &reference.field),
        };
        warnings.push(Problem {
            check: reference.check.clone(),
            field: reference.field.clone(),
            message: format!(
                "environment variable `{}` {state} here; unless it is set where the exporter runs, {consequence}",
                reference.variable
            ),
            line,
            env_var: None,
            index: reference.index,
        });
    }
    warnings
}

/// Removes the variables that override `checks` or an item of it from `env`, and returns a
/// problem for each. The `config` crate would turn the list into a map with keys `0`, `1`, ...
/// and the file's checks would be reported as not a list.
fn take_checks_overrides(env: &mut HashMap<String, String>) -> Vec<Problem> {
    let prefix = format!("{ENV_PREFIX}__").to_lowercase();
    let mut names: Vec<String> = env
        .keys()
        .filter(|name| {
            let key = name.to_lowercase();
            key.strip_prefix(&prefix)
                .is_some_and(|field| field == "checks" || field.starts_with("checks__"))
        })
        .cloned()
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            env.remove(&name);
            let mut problem = top_problem(
                "",
                format!(
                    "single items of `checks` cannot be overridden; override scalar values such as `{ENV_PREFIX}__GLOBAL__INTERVAL`, or template the file"
                ),
            );
            problem.env_var = Some(name);
            problem
        })
        .collect()
}

/// Lists the fields that environment variables override, as pairs of the dotted field path
/// (`global.interval`) and the variable's name, read from `env` or else from the process.
fn env_overrides(env: Option<&HashMap<String, String>>) -> Vec<(String, String)> {
    let names: Vec<String> = match env {
        Some(env) => env.keys().cloned().collect(),
        None => std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect(),
    };
    // The same mapping as `config::Environment` with the prefix and `__` as both separators:
    // READINESS_EXPORTER__GLOBAL__MAX_CONCURRENT_CHECKS sets global.max_concurrent_checks.
    let prefix = format!("{ENV_PREFIX}__").to_lowercase();
    names
        .into_iter()
        .filter_map(|name| {
            let key = name.to_lowercase();
            let field = key.strip_prefix(&prefix)?.replace("__", ".");
            Some((field, name))
        })
        .collect()
}

/// Returns the environment variable that sets `field` or a block that contains it.
fn overriding_variable(overrides: &[(String, String)], field: &str) -> Option<String> {
    overrides
        .iter()
        .find(|(path, _)| {
            field
                .strip_prefix(path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
        .map(|(_, name)| name.clone())
}

/// The line of a field outside the checks: a key inside the `global`, `vault` or `kubernetes`
/// block, or a top-level key.
fn top_level_line(index: &LineIndex<'_>, field: &str) -> Option<usize> {
    let (block, rest) = match field.find(['.', '[']) {
        Some(at) => (&field[..at], field[at..].trim_start_matches('.')),
        None => (field, ""),
    };
    match block {
        "global" | "vault" | "kubernetes" => index.block_line(block, rest),
        _ => index.top_line(field),
    }
}

/// Parses the YAML text and merges environment overrides into it.
fn parse_document(
    path: &Path,
    text: &str,
    env: Option<HashMap<String, String>>,
) -> Result<serde_json::Value, ConfigError> {
    // serde-saphyr parses the file because it reports line and column, which the `config` crate
    // does not. It also expands YAML merge keys (`<<: *anchor`), so the `config` crate only
    // applies the environment overrides.
    let document = match serde_saphyr::from_str::<serde_json::Value>(text) {
        Ok(document) => document,
        Err(err) => {
            // serde-saphyr starts its message with "error: ", which the CLI already prints.
            let message = err.to_string();
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            // The duplicate-key message ends with advice to the library's caller, not to the user.
            let message = message.replace(
                ", set DuplicateKeyPolicy in Options if acceptable",
                "; write each key once in a map",
            );
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                message,
            });
        }
    };
    // An empty file is an empty map, so that it reports the missing checks.
    let document = match document {
        serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
        other => other,
    };
    let environment = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(env);
    let merged = config::Config::builder()
        .add_source(config::File::from_str(
            &document.to_string(),
            config::FileFormat::Json,
        ))
        .add_source(environment)
        .build()
        .and_then(|merged| merged.try_deserialize::<serde_json::Value>())
        .map_err(|err| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: format!(
                "{err}; environment overrides can set scalar values such as \
                 {ENV_PREFIX}__GLOBAL__INTERVAL but not single items of the checks list"
            ),
        })?;
    Ok(merged)
}

/// State shared by the builders of all checks of one load.
pub struct BuildContext<'a> {
    problems: &'a mut Vec<Problem>,
    check: Option<String>,
    index: Option<usize>,
    base_dir: &'a Path,
    /// HTTP clients already built during this load, shared by checks with equal settings.
    pub http_clients: &'a mut http::ClientCache,
    vault: Option<Arc<Vault>>,
    vault_used: bool,
    /// Whether the file has a `vault` block that is invalid, whose problems are already listed.
    vault_invalid: bool,
    /// The Kubernetes API connection shared by every Kubernetes check of this load.
    pub kubernetes: Arc<kubernetes::Connection>,
    /// The `timeout` of the check being built, once it is valid, for kind settings that must
    /// fit inside it.
    check_timeout: Option<Duration>,
    /// The secret references to environment variables made so far.
    env_references: Vec<EnvReference>,
}

/// A secret reference to an environment variable, kept to warn when the variable is not set.
struct EnvReference {
    check: Option<String>,
    index: Option<usize>,
    field: String,
    variable: String,
}

impl BuildContext<'_> {
    /// Records a problem with `field` of the check being built.
    pub fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            check: self.check.clone(),
            field: field.into(),
            message: message.into(),
            line: None,
            env_var: None,
            index: self.index,
        });
    }

    /// Returns the `timeout` of the check being built, or `None` outside a check and when the
    /// timeout is invalid, which is reported at its own field.
    pub fn check_timeout(&self) -> Option<Duration> {
        self.check_timeout
    }

    /// How many problems the load has recorded so far, to tell whether a builder added one.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// Returns the configuration's Vault connection for a check kind that needs it, recording a
    /// problem with `field` when the file has no `vault` block.
    pub fn vault(&mut self, field: &str) -> Option<Arc<Vault>> {
        match self.vault.clone() {
            Some(vault) => {
                self.vault_used = true;
                Some(vault)
            }
            None if self.vault_invalid => None,
            None => {
                self.problem(
                    field,
                    "this needs the top-level `vault` block with the Vault address and the exporter's authentication; add one",
                );
                None
            }
        }
    }

    /// Returns the configuration's Vault connection without requiring one.
    pub fn optional_vault(&mut self) -> Option<Arc<Vault>> {
        self.vault_used |= self.vault.is_some();
        self.vault.clone()
    }

    /// Validates a secret reference in `field`. A relative file path is resolved against the
    /// configuration file's directory, like every other path in the file. A Vault reference is
    /// bound to the configuration's Vault connection, which reads it at load and refreshes it.
    pub fn secret_ref(&mut self, field: &str, reference: SecretRef) -> Option<SecretRef> {
        let mut vault_ref = match reference {
            SecretRef::File(path) => return Some(SecretRef::File(self.resolve_path(&path))),
            SecretRef::Env(name) => {
                self.env_references.push(EnvReference {
                    check: self.check.clone(),
                    index: self.index,
                    field: field.to_string(),
                    variable: name.clone(),
                });
                return Some(SecretRef::Env(name));
            }
            SecretRef::Vault(vault_ref) => vault_ref,
        };
        let before = self.problem_count();
        vault_ref.mount = vault_ref.mount.trim_matches('/').to_string();
        vault_ref.path = vault_ref.path.trim_matches('/').to_string();
        for (name, value) in [
            ("mount", &vault_ref.mount),
            ("path", &vault_ref.path),
            ("key", &vault_ref.key),
        ] {
            if value.trim().is_empty() {
                self.problem(
                    format!("{field}.vault.{name}"),
                    format!("`{name}` is empty; a Vault reference names the KV mount, the secret's path and the key, such as `{{ vault: {{ mount: secret, path: app/db, key: password }} }}`"),
                );
            }
        }
        if let Some(inside) = crate::vault::path_inside_mount(&vault_ref.mount, &vault_ref.path) {
            self.problem(
                format!("{field}.vault.path"),
                format!(
                    "`{}` is the API path; write the secret's path inside the mount, `{inside}`",
                    vault_ref.path
                ),
            );
        }
        let vault = self.vault(field)?;
        if self.problem_count() > before {
            return None;
        }
        vault_ref.bind(&vault);
        Some(SecretRef::Vault(vault_ref))
    }

    /// Resolves a path written in the file against the file's directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// Parses a duration such as `30s` or `5m`, recording a problem when it is invalid.
    pub fn duration(&mut self, field: &str, value: &str) -> Option<Duration> {
        match humantime::parse_duration(value) {
            Ok(duration) if duration > MAX_DURATION => {
                self.problem(
                    field,
                    format!("duration `{value}` is longer than the maximum of 100 years; check the unit"),
                );
                None
            }
            Ok(duration) if !duration.is_zero() => Some(duration),
            Ok(_) => {
                self.problem(
                    field,
                    format!("duration `{value}` is zero; use a positive duration such as `30s`"),
                );
                None
            }
            Err(_) => {
                self.problem(
                    field,
                    format!("invalid duration `{value}`; write a number with a unit, such as `500ms`, `30s` or `5m`"),
                );
                None
            }
        }
    }

    /// Compiles a regular expression, recording a problem when it is invalid.
    pub fn regex(&mut self, field: &str, pattern: &str) -> Option<regex::Regex> {
        match regex::Regex::new(pattern) {
            Ok(regex) => Some(regex),
            Err(err) => {
                // The regex crate draws the pattern with a caret; its last line states the error.
                let text = err.to_string();
                let last_line = text.lines().last().unwrap_or_default().trim();
                let detail = last_line.trim_start_matches("error: ").to_string();
                self.problem(field, format!("invalid regex `{pattern}`: {detail}"));
                None
            }
        }
    }

    /// Parses an absolute http or https URL, recording a problem when it is invalid.
    pub fn http_url(&mut self, field: &str, value: &str) -> Option<Url> {
        let url = match Url::parse(value) {
            Ok(url) => url,
            Err(err) => {
                self.problem(
                    field,
                    format!("invalid URL `{value}`: {err}; write an absolute URL such as `https://api.example.com/health`"),
                );
                return None;
            }
        };
        if url.scheme() != "http" && url.scheme() != "https" {
            self.problem(
                field,
                format!(
                    "URL `{value}` has scheme `{}`; use http or https",
                    url.scheme()
                ),
            );
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Printing the URL would print the credential, so the message does not.
            self.problem(
                field,
                "URL contains credentials; remove them and send an `Authorization` header from a secret reference",
            );
            return None;
        }
        Some(url)
    }
}

/// Converts the merged document into validated types, collecting every problem.
fn build(
    document: serde_json::Value,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
    env_references: &mut Vec<EnvReference>,
) -> Option<Config> {
    let mut top = match document {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            problems.push(top_problem(
                "",
                format!(
                    "the file must be a map with `global` and `checks`, found {}",
                    type_name(&other)
                ),
            ));
            return None;
        }
    };
    for key in top.keys() {
        if !matches!(key.as_str(), "global" | "checks" | "vault" | "kubernetes") {
            problems.push(top_problem(
                key,
                format!(
                    "unknown top-level key `{key}`; expected `global`, `checks`, `vault` or `kubernetes`"
                ),
            ));
        }
    }

    // An invalid `global` block still lets the checks be validated, so that one run reports
    // every problem. A check is not compared with an invalid global duration it inherits.
    let (global, schedule) = build_global(top.remove("global"), problems);
    let vault_written = top.get("vault").is_some_and(|value| !value.is_null());
    let vault = build_vault(top.remove("vault"), base_dir, problems, env_references);
    let items = match top.remove("checks") {
        Some(serde_json::Value::Array(items)) => items,
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(other) => {
            problems.push(top_problem(
                "checks",
                format!("`checks` must be a list, found {}", type_name(&other)),
            ));
            Vec::new()
        }
    };
    if items.is_empty() && !problems.iter().any(|problem| problem.field == "checks") {
        // Without checks the deploy gate would open with nothing verified.
        problems.push(top_problem(
            "checks",
            "no checks configured; add at least one check under `checks`".to_string(),
        ));
    }

    let mut clients = http::ClientCache::default();
    let kubernetes_block = top.remove("kubernetes");
    let kubernetes_definition = kubernetes_block.clone().unwrap_or_default();
    let kubernetes = build_kubernetes(kubernetes_block, base_dir, problems, &mut clients);
    let mut checks = Vec::with_capacity(items.len());
    let mut seen: HashSet<String> = HashSet::new();
    for (index, item) in items.into_iter().enumerate() {
        let id = item
            .get("id")
            .and_then(|id| id.as_str())
            .map(str::to_string);
        let mut ctx = BuildContext {
            problems,
            check: Some(id.clone().unwrap_or_else(|| format!("#{}", index + 1))),
            index: Some(index),
            base_dir,
            http_clients: &mut clients,
            vault: vault.clone(),
            vault_used: false,
            vault_invalid: vault_written && vault.is_none(),
            kubernetes: kubernetes.clone(),
            check_timeout: None,
            env_references: Vec::new(),
        };
        if let Some(id) = &id {
            if !seen.insert(id.clone()) {
                ctx.problem(
                    "id",
                    format!("duplicate check id `{id}`; every check needs its own id"),
                );
            }
        }
        let built = build_check(item, &schedule, &mut ctx);
        env_references.append(&mut ctx.env_references);
        if let Some(mut def) = built {
            // A check that uses Vault starts over when the `vault` block changes on a reload.
            if let (true, Some(vault)) = (ctx.vault_used, &vault) {
                def.definition = def.definition.with_block("vault", vault.definition());
            }
            // A Kubernetes check depends on the connection block too, so a reload that changes
            // the block restarts the check with the new client.
            if kubernetes::KIND_NAMES.contains(&def.kind.name()) {
                def.definition = def
                    .definition
                    .with_block("kubernetes", &kubernetes_definition);
            }
            checks.push(Arc::new(def));
        }
    }

    problems.is_empty().then_some(Config {
        global,
        checks,
        vault,
        warnings: Vec::new(),
    })
}

fn build_vault(
    value: Option<serde_json::Value>,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
    env_references: &mut Vec<EnvReference>,
) -> Option<Arc<Vault>> {
    let value = match value {
        None | Some(serde_json::Value::Null) => return None,
        Some(value @ serde_json::Value::Object(_)) => value,
        Some(other) => {
            problems.push(top_problem(
                "vault",
                format!(
                    "`vault` must be a map, found {}; write its fields under it, such as `address:`",
                    type_name(&other)
                ),
            ));
            return None;
        }
    };
    let spec: VaultSpec = deserialize_block("vault", value.clone(), problems)?;
    let mut clients = http::ClientCache::default();
    let mut ctx = BuildContext {
        problems,
        check: None,
        index: None,
        base_dir,
        http_clients: &mut clients,
        vault: None,
        vault_used: false,
        vault_invalid: false,
        kubernetes: Arc::default(),
        check_timeout: None,
        env_references: Vec::new(),
    };
    let vault = Vault::build(spec, value, &mut ctx);
    env_references.append(&mut ctx.env_references);
    vault
}

fn top_problem(field: &str, message: String) -> Problem {
    Problem {
        check: None,
        field: field.to_string(),
        message,
        line: None,
        env_var: None,
        index: None,
    }
}

/// Validates the `global` block. Problems are recorded, and an invalid value is replaced by
/// its default in the returned block. The schedule durations are also returned as checks inherit
/// them, where an invalid value stays marked invalid, so that checks are not compared with it.
fn build_global(
    value: Option<serde_json::Value>,
    problems: &mut Vec<Problem>,
) -> (Global, GlobalSchedule) {
    // Fields whose value had a type error, and were left out of `raw`.
    let mut failed: Vec<String> = Vec::new();
    let raw: RawGlobal = match value {
        None | Some(serde_json::Value::Null) => RawGlobal::default(),
        Some(value @ serde_json::Value::Object(_)) => {
            let collected = collect::deserialize_collecting(value);
            for error in collected.errors {
                let field = join_path("global", &error.path);
                let message = add_duration_hint(&field, error.message);
                problems.push(top_problem(&field, message));
                failed.push(error.path);
            }
            collected.value.unwrap_or_default()
        }
        Some(other) => {
            // serde would read a list as the fields in order and report each item as a bad
            // value of a field the file never names.
            problems.push(top_problem(
                "global",
                format!(
                    "`global` must be a map, found {}; write its fields under it, such as `interval:`",
                    type_name(&other)
                ),
            ));
            return (default_global(), GlobalSchedule::invalid());
        }
    };
    let mut clients = http::ClientCache::default();
    let mut ctx = BuildContext {
        problems,
        check: None,
        index: None,
        base_dir: Path::new("."),
        http_clients: &mut clients,
        vault: None,
        vault_used: false,
        vault_invalid: false,
        kubernetes: Arc::default(),
        check_timeout: None,
        env_references: Vec::new(),
    };

    let listen_address = match raw.listen_address.as_deref().map(str::parse::<SocketAddr>) {
        None => DEFAULT_LISTEN_ADDRESS,
        Some(Ok(address)) => address,
        Some(Err(_)) => {
            let listen = raw.listen_address.as_deref().unwrap_or_default();
            ctx.problem(
                "global.listen_address",
                format!("invalid listen address `{listen}`; write an IP address and port such as `0.0.0.0:9731`"),
            );
            DEFAULT_LISTEN_ADDRESS
        }
    };
    let mut parse = |name: &str, text: Option<&String>| {
        if failed.iter().any(|field| field == name) {
            Inherited::Invalid
        } else {
            schedule::parse_global(&mut ctx, name, text.map(String::as_str))
        }
    };
    let mut schedule = GlobalSchedule {
        interval: parse("interval", raw.interval.as_ref()),
        timeout: parse("timeout", raw.timeout.as_ref()),
        jitter: parse("jitter", raw.jitter.as_ref()),
    };
    schedule::validate_global(&mut ctx, &mut schedule);
    let max_concurrent_checks = match raw.max_concurrent_checks {
        None => DEFAULT_MAX_CONCURRENT_CHECKS,
        Some(n) if (1..=100_000).contains(&n) => n as usize,
        Some(n) => {
            ctx.problem(
                "global.max_concurrent_checks",
                format!("`{n}` is out of range; use a number from 1 to 100000"),
            );
            1
        }
    };
    let external_url = raw
        .external_url
        .as_ref()
        .and_then(|value| ctx.http_url("global.external_url", value));

    let global = Global {
        listen_address,
        interval: schedule.interval.value().unwrap_or(DEFAULT_INTERVAL),
        timeout: schedule.timeout.value().unwrap_or(DEFAULT_TIMEOUT),
        jitter: schedule.jitter.value(),
        max_concurrent_checks,
        external_url,
    };
    (global, schedule)
}

fn default_global() -> Global {
    Global {
        listen_address: DEFAULT_LISTEN_ADDRESS,
        interval: DEFAULT_INTERVAL,
        timeout: DEFAULT_TIMEOUT,
        jitter: None,
        max_concurrent_checks: DEFAULT_MAX_CONCURRENT_CHECKS,
        external_url: None,
    }
}

/// Deserializes a top-level block (`vault`, `kubernetes`), recording every serde error as a
/// problem. Returns `None` unless the only errors were unknown keys, which are left out.
fn deserialize_block<T: serde::de::DeserializeOwned>(
    block: &str,
    value: serde_json::Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let collected = collect::deserialize_collecting(value);
    for error in collected.errors {
        let field = join_path(block, &error.path);
        let message = add_duration_hint(&field, error.message);
        problems.push(top_problem(&field, message));
    }
    collected.value.filter(|_| collected.only_unknown_keys)
}

/// Adds the fix to the type error of a duration written as a bare number (`interval: 5`).
fn add_duration_hint(field: &str, message: String) -> String {
    let name = field.rsplit('.').next().unwrap_or(field);
    let is_duration = matches!(
        name,
        "interval"
            | "timeout"
            | "jitter"
            | "max_age"
            | "max_lag"
            | "max_latency"
            | "min_validity"
            | "window"
    ) || name.ends_with("_timeout")
        || name.ends_with("_interval");
    let is_number = message.starts_with("invalid type: integer")
        || message.starts_with("invalid type: floating point");
    if is_duration && is_number {
        format!("{message}; write a duration with a unit, such as `30s` or `5m`")
    } else {
        message
    }
}

/// Appends a path inside a block (`auth.token`, `[0].url`) to the block's own path.
fn join_path(block: &str, path: &str) -> String {
    if path.is_empty() {
        block.to_string()
    } else if path.starts_with('[') {
        format!("{block}{path}")
    } else {
        format!("{block}.{path}")
    }
}

/// Validates the optional top-level `kubernetes` block; without it, checks use the in-cluster
/// service account.
fn build_kubernetes(
    value: Option<serde_json::Value>,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
    clients: &mut http::ClientCache,
) -> Arc<kubernetes::Connection> {
    let spec: kubernetes::ConnectionSpec = match value {
        None | Some(serde_json::Value::Null) => return Arc::default(),
        Some(other) if !other.is_object() => {
            problems.push(top_problem(
                "kubernetes",
                format!(
                    "`kubernetes` must be a map, found {}; write its fields under it, such as `kubeconfig:`",
                    type_name(&other)
                ),
            ));
            return Arc::default();
        }
        Some(value) => match deserialize_block("kubernetes", value, problems) {
            Some(spec) => spec,
            None => return Arc::default(),
        },
    };
    let mut ctx = BuildContext {
        problems,
        check: None,
        index: None,
        base_dir,
        http_clients: clients,
        vault: None,
        vault_used: false,
        vault_invalid: false,
        kubernetes: Arc::default(),
        check_timeout: None,
        env_references: Vec::new(),
    };
    Arc::new(kubernetes::Connection::build(spec, &mut ctx))
}

fn build_check(
    item: serde_json::Value,
    global: &GlobalSchedule,
    ctx: &mut BuildContext<'_>,
) -> Option<CheckDef> {
    let definition = Definition::new(&item);
    let before = ctx.problems.len();
    let collected = collect::deserialize_collecting::<RawCheck>(item);
    for error in collected.errors {
        let message = add_duration_hint(&error.path, error.message);
        ctx.problem(error.path, message);
    }
    // Unknown keys are left out and the rest is still validated. After a bad value, the
    // validation would see a default or a placeholder in its place and could report problems
    // that are not in the file, so it stops.
    let mut raw = match collected.value {
        Some(raw) if collected.only_unknown_keys => raw,
        _ => return None,
    };

    if raw.id.is_empty()
        || raw.id.len() > 128
        || !raw
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        ctx.problem(
            "id",
            format!("invalid id `{}`; use 1 to 128 characters of lowercase a-z, 0-9 and `_`, such as `api_health`", raw.id),
        );
    }
    if raw.title.trim().is_empty() {
        ctx.problem("title", "title is empty; copy the checklist item's wording");
    }
    if raw.section.trim().is_empty() {
        ctx.problem(
            "section",
            "section is empty; name the checklist section the item belongs to",
        );
    }

    let schedule = schedule::build_check(
        ctx,
        raw.interval.as_deref(),
        raw.timeout.as_deref(),
        raw.jitter.as_deref(),
        global,
    );
    ctx.check_timeout = schedule.timeout;
    let runbook_url = raw.runbook_url.as_ref().and_then(|value| {
        ctx.http_url("runbook_url", value)
            .map(|url| url.to_string())
    });

    let kinds = raw.kinds_set();
    let kind = match kinds.as_slice() {
        [] => {
            ctx.problem(
                "",
                format!(
                    "no check kind given; add exactly one of: {}",
                    KIND_NAMES.join(", ")
                ),
            );
            None
        }
        [_] => build_kind(&mut raw, ctx),
        several => {
            ctx.problem(
                "",
                format!("several kinds given ({}); a check has exactly one kind, so split it into one check per kind", several.join(", ")),
            );
            None
        }
    };

    if ctx.problems.len() > before {
        return None;
    }
    Some(CheckDef {
        blocking: raw.blocking.unwrap_or(raw.severity == Severity::Critical),
        id: raw.id,
        title: raw.title,
        section: raw.section,
        severity: raw.severity,
        interval: schedule.interval?,
        timeout: schedule.timeout?,
        jitter: schedule.jitter?,
        runbook_url,
        kind: kind?,
        definition,
    })
}

fn build_kind(raw: &mut RawCheck, ctx: &mut BuildContext<'_>) -> Option<Kind> {
    if let Some(spec) = raw.http.take() {
        return http::HttpCheck::build(spec, ctx).map(|check| Kind::Http(Box::new(check)));
    }
    if let Some(spec) = raw.cors.take() {
        return cors::CorsCheck::build(spec, ctx).map(|check| Kind::Cors(Box::new(check)));
    }
    if let Some(spec) = raw.signoff.take() {
        return signoff::SignoffCheck::build(spec, ctx).map(Kind::Signoff);
    }
    if let Some(spec) = raw.postgres_reachable.take() {
        return postgres::reachable::ReachableCheck::build(spec, ctx).map(Kind::PostgresReachable);
    }
    if let Some(spec) = raw.postgres_replication.take() {
        return postgres::replication::ReplicationCheck::build(spec, ctx)
            .map(Kind::PostgresReplication);
    }
    if let Some(spec) = raw.postgres_archiving.take() {
        return postgres::archiving::ArchivingCheck::build(spec, ctx).map(Kind::PostgresArchiving);
    }
    if let Some(spec) = raw.postgres_query.take() {
        return postgres::query::QueryCheck::build(spec, ctx).map(Kind::PostgresQuery);
    }
    if let Some(spec) = raw.ef_migrations.take() {
        return postgres::migrations::MigrationsCheck::build(spec, ctx).map(Kind::EfMigrations);
    }
    if let Some(spec) = raw.tls.take() {
        return tls::TlsCheck::build(spec, ctx).map(Kind::Tls);
    }
    if let Some(spec) = raw.dns.take() {
        return dns::DnsCheck::build(spec, ctx).map(Kind::Dns);
    }
    if let Some(spec) = raw.vault_health.take() {
        return vault_kinds::health::HealthCheck::build(spec, ctx).map(Kind::VaultHealth);
    }
    if let Some(spec) = raw.vault_auth_method.take() {
        return vault_kinds::sys::AuthMethodCheck::build(spec, ctx).map(Kind::VaultAuthMethod);
    }
    if let Some(spec) = raw.vault_policy.take() {
        return vault_kinds::sys::PolicyCheck::build(spec, ctx).map(Kind::VaultPolicy);
    }
    if let Some(spec) = raw.vault_mount.take() {
        return vault_kinds::sys::MountCheck::build(spec, ctx).map(Kind::VaultMount);
    }
    if let Some(spec) = raw.vault_secret.take() {
        return vault_kinds::secret::SecretCheck::build(spec, ctx).map(Kind::VaultSecret);
    }
    if let Some(spec) = raw.prometheus_targets.take() {
        return prometheus::targets::TargetsCheck::build(spec, ctx).map(Kind::PrometheusTargets);
    }
    if let Some(spec) = raw.prometheus_rules.take() {
        return prometheus::rules::RulesCheck::build(spec, ctx).map(Kind::PrometheusRules);
    }
    if let Some(spec) = raw.prometheus_alertmanagers.take() {
        return prometheus::alertmanagers::AlertmanagersCheck::build(spec, ctx)
            .map(Kind::PrometheusAlertmanagers);
    }
    if let Some(spec) = raw.prometheus_query.take() {
        return prometheus::query::QueryCheck::build(spec, ctx).map(Kind::PrometheusQuery);
    }
    if let Some(spec) = raw.alertmanager.take() {
        return alertmanager::AlertmanagerCheck::build(spec, ctx).map(Kind::Alertmanager);
    }
    if let Some(spec) = raw.grafana.take() {
        return grafana::GrafanaCheck::build(spec, ctx).map(Kind::Grafana);
    }
    if let Some(spec) = raw.loki.take() {
        return loki::LokiCheck::build(spec, ctx).map(|check| Kind::Loki(Box::new(check)));
    }
    if let Some(spec) = raw.elasticsearch_count.take() {
        return elasticsearch::CountCheck::build(spec, ctx)
            .map(|check| Kind::ElasticsearchCount(Box::new(check)));
    }
    if let Some(spec) = raw.kubernetes_workload.take() {
        return kubernetes::workload::WorkloadCheck::build(spec, ctx).map(Kind::KubernetesWorkload);
    }
    if let Some(spec) = raw.kubernetes_pod_security.take() {
        return kubernetes::pod_security::PodSecurityCheck::build(spec, ctx)
            .map(Kind::KubernetesPodSecurity);
    }
    if let Some(spec) = raw.kubernetes_network_policy.take() {
        return kubernetes::network_policy::NetworkPolicyCheck::build(spec, ctx)
            .map(Kind::KubernetesNetworkPolicy);
    }
    if let Some(spec) = raw.kubernetes_ingress_tls.take() {
        return kubernetes::ingress_tls::IngressTlsCheck::build(spec, ctx)
            .map(Kind::KubernetesIngressTls);
    }
    if let Some(spec) = raw.kubernetes_rbac.take() {
        return kubernetes::rbac::RbacCheck::build(spec, ctx).map(Kind::KubernetesRbac);
    }
    if let Some(spec) = raw.helm_release.take() {
        return kubernetes::helm_release::HelmReleaseCheck::build(spec, ctx).map(Kind::HelmRelease);
    }
    if let Some(spec) = raw.image_scan.take() {
        return kubernetes::image_scan::ImageScanCheck::build(spec, ctx).map(Kind::ImageScan);
    }
    if let Some(spec) = raw.vault_injection.take() {
        return kubernetes::vault_injection::VaultInjectionCheck::build(spec, ctx)
            .map(Kind::VaultInjection);
    }
    if let Some(spec) = raw.kubernetes_old_versions.take() {
        return kubernetes::old_versions::OldVersionsCheck::build(spec, ctx)
            .map(Kind::KubernetesOldVersions);
    }
    if let Some(spec) = raw.kubernetes_config.take() {
        return kubernetes::config_refs::ConfigRefsCheck::build(spec, ctx)
            .map(Kind::KubernetesConfig);
    }
    None
}

fn type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a map",
    }
}

/// The warning for a checklist in which no check is blocking: the gate and the exit code of
/// `check` then pass whatever the checks report.
pub const NO_BLOCKING_CHECK: &str = "no check is blocking, so the deploy gate is always open and `check` always exits 0; set `blocking: true`, or severity `critical`, on the checks that must pass before a rollout";

/// Returns the number of blocking checks.
pub fn blocking_count(checks: &[Arc<CheckDef>]) -> usize {
    checks.iter().filter(|check| check.blocking).count()
}

/// Counts checks per section, in first-seen order, for start-up logs and reports.
pub fn sections(checks: &[Arc<CheckDef>]) -> Vec<(String, usize)> {
    let mut order: Vec<String> = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for check in checks {
        let count = counts.entry(check.section.clone()).or_default();
        if *count == 0 {
            order.push(check.section.clone());
        }
        *count += 1;
    }
    order
        .into_iter()
        .map(|section| {
            let count = counts[&section];
            (section, count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Definition;

    #[test]
    fn definition_ignores_key_order() {
        let written =
            serde_json::json!({ "id": "api", "http": { "url": "http://a/", "method": "GET" } });
        let reordered =
            serde_json::json!({ "http": { "method": "GET", "url": "http://a/" }, "id": "api" });

        assert_eq!(Definition::new(&written), Definition::new(&reordered));
    }

    #[test]
    fn definition_differs_by_value_and_block() {
        let check = serde_json::json!({ "id": "api", "interval": 1 });
        let float = serde_json::json!({ "id": "api", "interval": 1.0 });
        let vault = serde_json::json!({ "address": "https://vault:8200" });
        let other_vault = serde_json::json!({ "address": "https://vault:8300" });

        assert_ne!(Definition::new(&check), Definition::new(&float));
        assert_ne!(
            Definition::new(&check),
            Definition::new(&check).with_block("vault", &vault)
        );
        assert_ne!(
            Definition::new(&check).with_block("vault", &vault),
            Definition::new(&check).with_block("vault", &other_vault)
        );
        assert_eq!(
            Definition::new(&check).with_block("vault", &vault),
            Definition::new(&check).with_block("vault", &vault)
        );
    }
}
