//! Secret values and the references that point at them.
//!
//! A configuration file never contains a credential. Fields that carry one take a [`SecretRef`]
//! that names an environment variable, a file or a key of a Vault KV version 2 secret. Variables
//! and files are read when a check runs, so a rotated file is picked up without a reload. Vault
//! secrets are read at load and reload and refreshed on an interval by the configuration's
//! [`Vault`](crate::vault::Vault) connection, and a check reads the cached value. The resolved
//! [`Secret`] prints a placeholder in `Debug` and `Display`, so it cannot reach a log line or an
//! error message by accident.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::vault::Vault;

/// The largest secret file a reference may name: 64 KiB, far above any token or password.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Where a secret value is read from.
///
/// It deserializes only from a map with one of the keys `env`, `file` and `vault`. A scalar, such
/// as a password pasted into the file, is refused with a message that does not repeat it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// The value of an environment variable.
    Env(String),
    /// The contents of a file, without the line feeds and carriage returns at its end. Other
    /// whitespace, and line breaks inside the value, are kept.
    File(PathBuf),
    /// One key of a Vault KV version 2 secret, read through the top-level `vault` connection.
    Vault(VaultRef),
}

/// The map forms of [`SecretRef`], as serde derives them.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Tagged {
    Env(String),
    File(PathBuf),
    Vault(VaultRef),
}

impl From<Tagged> for SecretRef {
    fn from(tagged: Tagged) -> Self {
        match tagged {
            Tagged::Env(name) => SecretRef::Env(name),
            Tagged::File(path) => SecretRef::File(path),
            Tagged::Vault(reference) => SecretRef::Vault(reference),
        }
    }
}

/// The message for a secret-valued field written as a scalar. It never contains the value,
/// which is most often the credential itself.
const LITERAL_SECRET: &str = "a credential written into the configuration is not accepted, and \
     its value is not shown; store it in an environment variable, a file or Vault and write \
     `{ env: VARIABLE }`, `{ file: /path/to/file }` or `{ vault: { mount: M, path: P, key: K } }`";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ReferenceVisitor)
    }
}

/// Accepts a map and refuses every other shape without naming the value it saw, because serde's
/// default "invalid type" messages quote scalars.
struct ReferenceVisitor;

impl ReferenceVisitor {
    fn literal<E: serde::de::Error>() -> Result<SecretRef, E> {
        Err(E::custom(LITERAL_SECRET))
    }
}

impl<'de> serde::de::Visitor<'de> for ReferenceVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret reference")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<SecretRef, A::Error> {
        Tagged::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(SecretRef::from)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<SecretRef, E> {
        Err(E::custom(
            "empty secret reference; write `{ env: VARIABLE }`, `{ file: /path/to/file }` or `{ vault: { mount: M, path: P, key: K } }`",
        ))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<SecretRef, A::Error> {
        Err(serde::de::Error::custom(
            "a list is not a secret reference; write one `{ env: VARIABLE }`, `{ file: /path/to/file }` or `{ vault: { mount: M, path: P, key: K } }`",
        ))
    }
}

/// A key of a Vault KV version 2 secret: `{ vault: { mount: secret, path: app/db, key: password } }`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultRef {
    /// The mount path of the KV version 2 secrets engine, such as `secret`.
    pub mount: String,
    /// The secret's path inside the mount, such as `app/db`.
    pub path: String,
    /// The key inside the secret's data, such as `password`.
    pub key: String,
    /// The connection that reads and caches the secret, set when the configuration is built.
    #[serde(skip)]
    vault: Option<Arc<Vault>>,
}

impl VaultRef {
    /// Attaches the connection that resolves this reference and registers the secret with it.
    pub fn bind(&mut self, vault: &Arc<Vault>) {
        vault.register_secret(&self.mount, &self.path);
        self.vault = Some(vault.clone());
    }
}

impl fmt::Debug for VaultRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultRef")
            .field("mount", &self.mount)
            .field("path", &self.path)
            .field("key", &self.key)
            .finish()
    }
}

impl PartialEq for VaultRef {
    fn eq(&self, other: &Self) -> bool {
        (&self.mount, &self.path, &self.key) == (&other.mount, &other.path, &other.key)
    }
}

impl Eq for VaultRef {}

impl Hash for VaultRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.mount, &self.path, &self.key).hash(state);
    }
}

/// Errors from resolving a [`SecretRef`]. Messages name the reference, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set or is not valid UTF-8.
    #[error("environment variable `{0}` is not set; export it or point the reference at a file")]
    EnvMissing(String),
    /// The file could not be read.
    #[error("cannot read secret file `{path}`: {source}; check that it is mounted and readable")]
    File {
        /// The file named by the reference.
        path: PathBuf,
        /// Why the read failed.
        #[source]
        source: crate::file::ReadError,
    },
    /// The value is empty, for a file once the line feeds and carriage returns at its end are
    /// removed.
    #[error("{0} is empty")]
    Empty(String),
    /// A Vault reference could not be resolved.
    #[error("{reference} is unavailable: {message}")]
    Vault {
        /// The reference, as ``Vault secret `mount/path#key` ``.
        reference: String,
        /// Why: not read yet, the read failed (with the cause), or the key is missing.
        message: String,
    },
    /// A Vault reference was built without a `vault` block.
    #[error("{0} needs the top-level `vault` block")]
    VaultNotConfigured(String),
}

impl SecretRef {
    /// Reads the referenced value.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::EnvMissing(name.clone()))?
            }
            SecretRef::File(path) => {
                let mut text = crate::file::read_limited_to_string(path, MAX_SECRET_FILE_BYTES)
                    .map_err(|source| SecretError::File {
                        path: path.clone(),
                        source,
                    })?;
                // Files written by editors and `echo` end with a newline, on Windows with CR LF,
                // that is not part of the credential. Every trailing CR and LF goes, so a file
                // that ends with blank lines still yields the credential alone.
                while text.ends_with('\n') || text.ends_with('\r') {
                    text.pop();
                }
                text
            }
            SecretRef::Vault(reference) => {
                return match &reference.vault {
                    Some(vault) => {
                        vault.cached_secret(&reference.mount, &reference.path, &reference.key)
                    }
                    None => Err(SecretError::VaultNotConfigured(self.to_string())),
                };
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(Secret(value))
    }
}

/// The keys of a secret reference, one of which a reference sets.
const REFERENCE_KEYS: [&str; 3] = ["env", "file", "vault"];

impl SecretRef {
    /// Parses a secret reference written as a map, with a message that names the mistake: an
    /// unknown key, several keys or a bad value.
    pub fn from_map(value: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        if let Some(key) = value
            .keys()
            .find(|key| !REFERENCE_KEYS.contains(&key.as_str()))
        {
            return Err(format!(
                "unknown key `{key}`; expected `env`, `file` or `vault`"
            ));
        }
        let keys: Vec<&String> = value.keys().collect();
        match keys.as_slice() {
            [] => Err(
                "empty secret reference; write `{ env: VARIABLE }`, `{ file: /path/to/file }` or `{ vault: { mount: M, path: P, key: K } }`"
                    .to_string(),
            ),
            [_] => serde_json::from_value(serde_json::Value::Object(value.clone()))
                .map_err(|err| format!("invalid secret reference: {err}")),
            [first, second] => Err(format!("both `{first}` and `{second}` given; use one")),
            _ => Err("`env`, `file` and `vault` given; use one".to_string()),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "variable `{name}`"),
            SecretRef::File(path) => write!(f, "file `{}`", path.display()),
            SecretRef::Vault(reference) => write!(
                f,
                "Vault secret `{}/{}#{}`",
                reference.mount, reference.path, reference.key
            ),
        }
    }
}

/// A resolved credential. `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that must not be printed.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The text that replaces a secret in [`redact`]'s output.
pub const REDACTED: &str = "<redacted>";

/// Parts of a secret shorter than this are not searched for: they are scheme names such as
/// `Bearer` or `Basic`, and ordinary words would match everywhere.
const MIN_REDACTED_PART: usize = 8;

/// Replaces every secret value in `text`, and every whitespace-separated part of a value of at
/// least 8 characters, with `<redacted>`.
///
/// A target can send a credential back (in a header, a body or a server error), and a check's
/// message can quote what the target sent, cut to a maximum length. So a match is any run of at
/// least 8 characters that starts like a part and agrees with it as far as it goes, which also
/// covers a quote cut off in the middle of the credential.
pub fn redact<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut text = text.to_string();
    for secret in secrets {
        let parts = std::iter::once(secret).chain(secret.split_whitespace());
        for part in parts.filter(|part| part.len() >= MIN_REDACTED_PART) {
            text = redact_part(&text, part);
        }
    }
    text
}

fn redact_part(text: &str, part: &str) -> String {
    let head = &part.as_bytes()[..MIN_REDACTED_PART];
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at + MIN_REDACTED_PART <= bytes.len() {
        if &bytes[at..at + MIN_REDACTED_PART] != head || !text.is_char_boundary(at) {
            at += 1;
            continue;
        }
        let matched = bytes[at..]
            .iter()
            .zip(part.as_bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let mut end = at + matched;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&text[copied..at]);
        out.push_str(REDACTED);
        copied = end;
        at = end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_prints_placeholder() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "<redacted>");
    }

    #[test]
    fn file_reference_drops_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        let secret = SecretRef::File(path).resolve().unwrap();
        assert_eq!(secret.expose(), "abc");
    }

    #[test]
    fn redact_replaces_whole_and_parts() {
        let secret = "Bearer eyJhbGciOiJIUzI1NiJ9.payload";
        assert_eq!(
            redact(&format!("header is `{secret}`"), [secret]),
            "header is `<redacted>`"
        );
        assert_eq!(
            redact("allows `eyJhbGciOiJIUzI1NiJ9.payload`", [secret]),
            "allows `<redacted>`"
        );
        assert_eq!(
            redact("received `eyJhbGciOiJIUzI1…`", [secret]),
            "received `<redacted>…`",
            "a quote cut off in the middle"
        );
        assert_eq!(
            redact("Bearer tokens are expected", [secret]),
            "Bearer tokens are expected",
            "short parts stay"
        );
        assert_eq!(
            redact("é eyJhbGciOiJIUzI1NiJ9.payload é", [secret]),
            "é <redacted> é"
        );
    }

    #[test]
    fn fifo_secret_file_fails_at_once() {
        // Reading a FIFO without a writer used to block the check's async worker thread for
        // good. Two such checks stopped every other check and every scrape.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let err = SecretRef::File(path).resolve().unwrap_err();
        assert!(
            err.to_string().contains("not a regular file but a FIFO"),
            "{err}"
        );
    }

    #[test]
    fn oversized_secret_file_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        let err = SecretRef::File(path).resolve().unwrap_err();
        assert!(
            err.to_string()
                .contains("larger than the limit of 65536 bytes"),
            "{err}"
        );
    }

    fn reference(value: serde_json::Value) -> Result<SecretRef, String> {
        SecretRef::from_map(value.as_object().unwrap())
    }

    #[test]
    fn reference_with_two_keys_rejected() {
        let err = reference(serde_json::json!({"file": "x", "env": "X"})).unwrap_err();
        assert!(err.starts_with("both `"), "{err}");
        assert!(err.ends_with("` given; use one"), "{err}");
        assert!(err.contains("`env`") && err.contains("`file`"), "{err}");
    }

    #[test]
    fn reference_with_unknown_key_rejected() {
        let err = reference(serde_json::json!({"fiel": "x"})).unwrap_err();
        assert_eq!(err, "unknown key `fiel`; expected `env`, `file` or `vault`");
    }

    #[test]
    fn reference_with_one_key_parsed() {
        assert_eq!(
            reference(serde_json::json!({"env": "TOKEN"})),
            Ok(SecretRef::Env("TOKEN".into()))
        );
        let err = reference(serde_json::json!({"env": 5})).unwrap_err();
        assert!(
            err.starts_with("invalid secret reference: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn missing_env_names_variable() {
        let err = SecretRef::Env("READINESS_TEST_UNSET_VARIABLE".into())
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("READINESS_TEST_UNSET_VARIABLE"));
    }
}
