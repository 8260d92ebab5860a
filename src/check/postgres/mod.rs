//! PostgreSQL check kinds and the connection settings they share.
//!
//! Every kind connects with `tokio-postgres` over rustls, makes one connection per run and
//! closes it afterwards, so each run proves that a new session can be opened. All queries run
//! inside one `READ ONLY` transaction with a `statement_timeout`, so a check can neither change
//! data nor hold a server process longer than its deadline. Messages carry values the check
//! measured (counts, positions, timestamps, migration ids) but never row data of other kinds,
//! and never the password.

pub mod archiving;
mod limited;
pub mod migrations;
pub mod query;
pub mod reachable;
pub mod replication;
mod tls;

use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::{format_duration, Outcome, Reason};
use crate::config::BuildContext;
use crate::secret::SecretRef;
use limited::{LimitedStream, ReceiveLimitExceeded};

const DEFAULT_PORT: u16 = 5432;
const DEFAULT_DATABASE: &str = "postgres";
const APPLICATION_NAME: &str = "readiness-exporter";

/// The `connection` block shared by every PostgreSQL kind, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    host: String,
    port: Option<u16>,
    database: Option<String>,
    user: String,
    password: Option<SecretRef>,
    sslmode: Option<String>,
    ca_file: Option<PathBuf>,
    connect_timeout: Option<String>,
    statement_timeout: Option<String>,
}

/// TLS mode of a connection, with libpq's names and meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS without certificate verification.
    Require,
    /// TLS with the chain verified against the CA file, without the host name.
    VerifyCa,
    /// TLS with the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<SslMode> {
        match text {
            "disable" => Some(SslMode::Disable),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    /// Returns the name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Validated connection settings.
#[derive(Debug)]
pub struct Connection {
    host: String,
    port: u16,
    database: String,
    user: String,
    password: Option<SecretRef>,
    sslmode: SslMode,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The CA file the server certificate is verified against, for messages.
    ca_file: Option<PathBuf>,
    connect_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
}

impl Connection {
    /// Validates a `connection` block; `field` is its dotted path, such as
    /// `postgres_reachable.connection`.
    pub fn build(
        spec: ConnectionSpec,
        field: &str,
        ctx: &mut BuildContext<'_>,
    ) -> Option<Connection> {
        let before_problems = ctx.problem_count();
        let host = spec.host.trim().to_string();
        if host.is_empty() {
            ctx.problem(
                format!("{field}.host"),
                "host is empty; write a host name or IP address such as `db.internal`",
            );
        } else if host.starts_with('/') {
            ctx.problem(
                format!("{field}.host"),
                format!("host `{host}` is a Unix socket directory, which is not supported; connect over TCP with a host name or IP address"),
            );
        } else if host.contains(',') {
            ctx.problem(
                format!("{field}.host"),
                format!("host `{host}` lists several hosts; write one host and add one check per server"),
            );
        } else if host.contains("://") {
            ctx.problem(
                format!("{field}.host"),
                format!("host `{host}` is a URL; write the host name alone, and the port, database and user in their own keys"),
            );
        } else if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
            ctx.problem(
                format!("{field}.host"),
                format!("host `{host}` contains a port; write the host name alone and the port in `port`"),
            );
        }
        let port = spec.port.unwrap_or(DEFAULT_PORT);
        if port == 0 {
            ctx.problem(
                format!("{field}.port"),
                "port `0` is invalid; use the server's port, usually 5432",
            );
        }
        let database = spec
            .database
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        if database.is_empty() {
            ctx.problem(
                format!("{field}.database"),
                "database is empty; name the database to connect to, or remove the key to use `postgres`",
            );
        }
        if spec.user.is_empty() {
            ctx.problem(
                format!("{field}.user"),
                "user is empty; name the role the check logs in as",
            );
        }

        let sslmode_text = spec.sslmode.as_deref().unwrap_or("verify-full");
        let sslmode = SslMode::parse(sslmode_text);
        if sslmode.is_none() {
            ctx.problem(
                format!("{field}.sslmode"),
                format!("unknown sslmode `{sslmode_text}`; use disable, require, verify-ca or verify-full"),
            );
        }
        let tls = sslmode.and_then(|mode| build_tls(mode, spec.ca_file.as_deref(), field, ctx));
        let ca_file = spec.ca_file.clone();

        let password = spec
            .password
            .and_then(|reference| ctx.secret_ref(&format!("{field}.password"), reference));

        let connect_timeout = spec
            .connect_timeout
            .as_ref()
            .and_then(|value| ctx.duration(&format!("{field}.connect_timeout"), value));
        let statement_timeout = spec
            .statement_timeout
            .as_ref()
            .and_then(|value| ctx.duration(&format!("{field}.statement_timeout"), value));
        if let (Some(statement_timeout), Some(timeout)) = (statement_timeout, ctx.check_timeout()) {
            reject_ineffective_statement_timeout(statement_timeout, timeout, field, ctx);
        }

        if ctx.problem_count() > before_problems {
            return None;
        }
        Some(Connection {
            host,
            port,
            database,
            user: spec.user,
            password,
            sslmode: sslmode?,
            tls: tls?,
            ca_file,
            connect_timeout,
            statement_timeout,
        })
    }

    /// Returns `host:port` for messages.
    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Returns the role the check logs in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Returns the database the check connects to.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Connects and starts a read-only transaction with a statement timeout.
    ///
    /// `timeout` is the check's deadline: it is the connect timeout and the statement timeout
    /// unless the configuration sets shorter ones.
    pub async fn open(&self, timeout: Duration) -> Result<Session, Outcome> {
        let deadline = tokio::time::Instant::now() + step_limit(timeout);
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .application_name(APPLICATION_NAME)
            .connect_timeout(self.connect_timeout.unwrap_or(timeout).min(timeout));
        let mut password = None;
        if let Some(reference) = &self.password {
            let secret = reference.resolve().map_err(|err| {
                Outcome::error(Reason::SecretUnavailable, format!("password: {err}"))
            })?;
            config.password(secret.expose());
            password = Some(secret);
        }
        // A server may quote the password it received in its error, which the message quotes.
        let redact = |outcome: Outcome| match &password {
            Some(secret) => outcome.redacted([secret.expose()]),
            None => outcome,
        };

        // The check opens the TCP connection itself, so that everything the server sends passes
        // through a stream with a size limit.
        let stream = self
            .connect_tcp(
                self.connect_timeout
                    .unwrap_or(timeout)
                    .min(step_limit(timeout)),
            )
            .await
            .map_err(redact)?;
        let (client, task) = match &self.tls {
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) =
                    tokio::time::timeout_at(deadline, config.connect_raw(stream, NoTls))
                        .await
                        .map_err(|_| self.login_timeout(timeout))?
                        .map_err(|err| redact(self.connect_error(&err)))?;
                (client, spawn_connection(connection))
            }
            Some(tls) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let mut maker = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let connector = MakeTlsConnect::<LimitedStream<TcpStream>>::make_tls_connect(
                    &mut maker, &self.host,
                )
                .map_err(|err| {
                    Outcome::error(
                        Reason::TlsError,
                        format!("TLS with {} cannot start: {err}", self.target()),
                    )
                })?;
                let (client, connection) =
                    tokio::time::timeout_at(deadline, config.connect_raw(stream, connector))
                        .await
                        .map_err(|_| self.login_timeout(timeout))?
                        .map_err(|err| redact(self.connect_error(&err)))?;
                (client, spawn_connection(connection))
            }
        };

        // The server cancels a slow query before the check's own timeout ends the run, so the
        // message names the query.
        let remaining = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(1));
        let statement_timeout = self.statement_timeout.unwrap_or(remaining).min(remaining);
        let session = Session {
            client,
            task,
            statement_timeout,
        };
        let begin = format!(
            "BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = {}",
            statement_timeout.as_millis().max(1)
        );
        session
            .client
            .batch_execute(&begin)
            .await
            .map_err(|err| redact(session.query_error(&err, "starting a read-only transaction")))?;
        Ok(session)
    }

    /// Opens the TCP connection within `limit`, trying each address of the host in turn.
    async fn connect_tcp(&self, limit: Duration) -> Result<LimitedStream<TcpStream>, Outcome> {
        let target = self.target();
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(Outcome::error(
                    Reason::ConnectionRefused,
                    format!("connection to {target} refused; check that PostgreSQL is running and listening on that address"),
                ))
            }
            Ok(Err(err)) => {
                return Err(Outcome::error(
                    Reason::ConnectionFailed,
                    format!("connection to {target} failed: {err}"),
                ))
            }
            Err(_) => {
                return Err(Outcome::error(
                    Reason::Timeout,
                    format!(
                        "connection to {target} timed out after {}",
                        format_duration(limit)
                    ),
                ))
            }
        };
        // Queries are small request-response exchanges, so Nagle's algorithm only adds delay.
        let _ = stream.set_nodelay(true);
        Ok(LimitedStream::new(stream, limited::MAX_RECEIVED_BYTES))
    }

    fn connect_error(&self, err: &tokio_postgres::Error) -> Outcome {
        let target = self.target();
        let reason = classify(err);
        let cause = describe(err);
        // These are tokio-postgres' error texts (0.7) for a server that requests a password the
        // check does not have, a server without TLS, and bytes outside the protocol.
        if cause.ends_with("password missing") {
            return Outcome::error(
                Reason::Unauthorized,
                format!(
                    "login to {target} as `{}` failed: the server asks for a password and `connection.password` is not set; add it as a secret reference",
                    self.user
                ),
            );
        }
        let message = match reason {
            Reason::Unauthorized => format!(
                "login to {target} as `{}` failed: {cause}; check the password and pg_hba.conf",
                self.user
            ),
            Reason::ConnectionRefused => format!(
                "connection to {target} refused; check that PostgreSQL is running and listening on that address"
            ),
            Reason::TlsError if cause.ends_with("server does not support TLS") => format!(
                "TLS with {target} failed (sslmode {}): {cause}; enable `ssl` on the server, check that the port is PostgreSQL's, or set `sslmode: disable` on a trusted network",
                self.sslmode.as_str()
            ),
            Reason::TlsError => format!(
                "TLS with {target} failed (sslmode {}): {cause}{}",
                self.sslmode.as_str(),
                self.tls_hint(err)
            ),
            Reason::Timeout => format!("connection to {target} timed out: {cause}"),
            _ if cause.contains("bytes remaining on stream")
                || cause.contains("unexpected message from server") =>
            {
                format!("connection to {target} failed: {cause}; the server does not speak the PostgreSQL protocol, so check the port")
            }
            _ => format!("connection to {target} failed: {cause}"),
        };
        Outcome::error(reason, message)
    }

    fn login_timeout(&self, timeout: Duration) -> Outcome {
        Outcome::error(
            Reason::Timeout,
            format!(
                "{} accepted the connection but the TLS handshake and login did not finish within the {} timeout; check that the port is PostgreSQL's and that the server is not overloaded",
                self.target(),
                format_duration(timeout)
            ),
        )
    }

    /// Returns advice for a certificate that failed verification, with a leading `; `, or
    /// nothing when the failure is not about the certificate.
    fn tls_hint(&self, err: &tokio_postgres::Error) -> String {
        let mut source: Option<&(dyn StdError + 'static)> = err.source();
        let mut found = None;
        while let Some(cause) = source {
            found = cause.downcast_ref::<rustls::Error>().or_else(|| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            });
            if found.is_some() {
                break;
            }
            source = cause.source();
        }
        let Some(rustls::Error::InvalidCertificate(problem)) = found else {
            return String::new();
        };
        let roots = match &self.ca_file {
            Some(path) => format!("the CA file `{}`", path.display()),
            None => "the system trust store".to_string(),
        };
        match problem {
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature => {
                format!("; the server certificate is not signed by a CA in {roots}, so set `connection.ca_file` to the CA that signs it")
            }
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. } => format!(
                "; the server certificate is not issued for `{}`, so set `connection.host` to a name the certificate holds, or use sslmode `verify-ca` to skip the name check",
                self.host
            ),
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
                "; the server certificate has expired, so renew it on the server".to_string()
            }
            _ => String::new(),
        }
    }
}

/// Records a problem when `statement_timeout` could never apply. [`Connection::open`] caps it
/// at what is left of the step limit after the login, so a longer value is silently replaced.
fn reject_ineffective_statement_timeout(
    statement_timeout: Duration,
    timeout: Duration,
    field: &str,
    ctx: &mut BuildContext<'_>,
) {
    let limit = step_limit(timeout);
    if statement_timeout <= limit {
        return;
    }
    ctx.problem(
        format!("{field}.statement_timeout"),
        format!(
            "statement_timeout `{}` has no effect with the check's timeout `{}`, because the check ends its login and queries within `{}` (the timeout less a tenth of it, at most 500ms); lower statement_timeout to `{}` or less, or raise the check's `timeout`",
            format_duration(statement_timeout),
            format_duration(timeout),
            format_duration(limit),
            format_duration(limit),
        ),
    );
}

fn build_tls(
    mode: SslMode,
    ca_file: Option<&std::path::Path>,
    field: &str,
    ctx: &mut BuildContext<'_>,
) -> Option<Option<Arc<rustls::ClientConfig>>> {
    let ca_field = format!("{field}.ca_file");
    match (mode, ca_file) {
        (SslMode::Disable, None) => return Some(None),
        (SslMode::Disable | SslMode::Require, Some(_)) => {
            ctx.problem(
                ca_field,
                format!("`ca_file` has no effect with sslmode `{}`, which does not verify the certificate; use `verify-ca` or `verify-full`, or remove `ca_file`", mode.as_str()),
            );
            return None;
        }
        (SslMode::VerifyCa, None) => {
            ctx.problem(
                ca_field,
                "sslmode `verify-ca` needs `ca_file`, the CA that signed the server certificate",
            );
            return None;
        }
        _ => {}
    }
    let roots = match ca_file {
        Some(path) => match tls::read_roots(&ctx.resolve_path(path)) {
            Ok(roots) => Some(roots),
            Err(message) => {
                ctx.problem(ca_field, message);
                return None;
            }
        },
        None => None,
    };
    match tls::client_config(mode, roots) {
        Ok(config) => Some(Some(Arc::new(config))),
        Err(message) => {
            ctx.problem(format!("{field}.sslmode"), message);
            None
        }
    }
}

fn spawn_connection<S, T>(connection: tokio_postgres::Connection<S, T>) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        // An error here also fails the pending query, which reports it.
        let _ = connection.await;
    })
}

/// An open connection inside a read-only transaction. Dropping it closes the connection, and
/// the server rolls the transaction back.
pub struct Session {
    client: Client,
    task: JoinHandle<()>,
    statement_timeout: Duration,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Session {
    /// Prepares a statement; `what` names it in error messages.
    pub async fn prepare(&self, sql: &str, operation: &str) -> Result<Statement, Outcome> {
        self.client
            .prepare(sql)
            .await
            .map_err(|err| self.query_error(&err, operation))
    }

    /// Runs a statement and returns all rows; `what` names it in error messages.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        operation: &str,
    ) -> Result<Vec<Row>, Outcome> {
        self.client
            .query(sql, params)
            .await
            .map_err(|err| self.query_error(&err, operation))
    }

    /// Runs a prepared statement and returns all rows; `what` names it in error messages.
    pub async fn query_prepared(
        &self,
        statement: &Statement,
        operation: &str,
    ) -> Result<Vec<Row>, Outcome> {
        self.client
            .query(statement, &[])
            .await
            .map_err(|err| self.query_error(&err, operation))
    }

    /// Runs a statement that returns exactly one row.
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        operation: &str,
    ) -> Result<Row, Outcome> {
        self.client
            .query_one(sql, params)
            .await
            .map_err(|err| self.query_error(&err, operation))
    }

    /// Turns a query error into an outcome. A cancelled statement is a timeout, a missing
    /// privilege is `forbidden`, everything else the server rejects is `query_failed`.
    pub fn query_error(&self, err: &tokio_postgres::Error, operation: &str) -> Outcome {
        let cause = describe(err);
        match err.code() {
            Some(code) if *code == SqlState::QUERY_CANCELED => Outcome::error(
                Reason::Timeout,
                format!(
                    "{operation} was cancelled after the statement timeout of {}",
                    format_duration(self.statement_timeout)
                ),
            ),
            Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => Outcome::error(
                Reason::Forbidden,
                format!(
                    "{operation} failed: {cause}; grant the check's role the privilege it needs"
                ),
            ),
            Some(_) => Outcome::error(Reason::QueryFailed, format!("{operation} failed: {cause}")),
            None => Outcome::error(classify(err), format!("{operation} failed: {cause}")),
        }
    }
}

/// Returns how long the steps of a run may take together, a little less than the check's
/// `timeout`. A step that hangs then reports its own message, naming the server and the step,
/// before the scheduler ends the run with a generic one.
fn step_limit(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(500)))
}

/// Maps an error to a reason from its SQLSTATE or by walking its cause chain.
fn classify(err: &tokio_postgres::Error) -> Reason {
    if let Some(code) = err.code() {
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return Reason::Unauthorized;
        }
        if *code == SqlState::QUERY_CANCELED {
            return Reason::Timeout;
        }
        return Reason::ConnectionFailed;
    }
    // tokio-postgres has no public accessor for its error kind; these are its Display texts
    // (tokio-postgres 0.7) for the connect timeout and for a failed TLS negotiation.
    match err.to_string().as_str() {
        "timeout waiting for server" => return Reason::Timeout,
        "error performing TLS handshake" => return Reason::TlsError,
        _ => {}
    }
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return Reason::TlsError;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Reason::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return Reason::Timeout,
                _ => {}
            }
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return Reason::TlsError;
            }
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<ReceiveLimitExceeded>())
            {
                return Reason::BodyTooLarge;
            }
        }
        source = cause.source();
    }
    Reason::ConnectionFailed
}

/// Describes an error by walking its cause chain, because tokio-postgres' own text only says
/// which step failed ("error connecting to server").
///
/// A server error contributes its SQLSTATE and primary message, never its DETAIL, which can
/// quote row data. For data exceptions (class 22) and integrity violations (class 23) the
/// message is withheld too, because PostgreSQL quotes the offending value in it.
fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let code = db.code().code();
        if code.starts_with("22") || code.starts_with("23") {
            return format!(
                "SQLSTATE {code} (the server's message is withheld because it can quote row data)"
            );
        }
        return format!("{} (SQLSTATE {code})", db.message());
    }
    let mut parts = vec![err.to_string()];
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    // The first part is tokio-postgres' generic step name; keep it only when nothing follows.
    if parts.len() > 1 {
        parts.remove(0);
    }
    parts.join(": ")
}

/// Parses a policy value shared by kinds that must decide operation an absent value means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Treat the case as passing.
    Pass,
    /// Treat the case as evaluated and not met.
    Fail,
    /// Treat the case as not evaluable.
    Error,
}

impl Policy {
    /// Parses `pass`, `fail` or `error`, recording a problem for anything else.
    pub fn build(
        value: Option<&str>,
        default: Policy,
        field: &str,
        ctx: &mut BuildContext<'_>,
    ) -> Option<Policy> {
        match value {
            None => Some(default),
            Some("pass") => Some(Policy::Pass),
            Some("fail") => Some(Policy::Fail),
            Some("error") => Some(Policy::Error),
            Some(other) => {
                ctx.problem(
                    field,
                    format!("unknown policy `{other}`; use pass, fail or error"),
                );
                None
            }
        }
    }

    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Pass => "pass",
            Policy::Fail => "fail",
            Policy::Error => "error",
        }
    }

    /// Applies the policy to a case described by `message`.
    pub fn apply(self, reason: Reason, message: String) -> Outcome {
        match self {
            Policy::Pass => Outcome::pass(message),
            Policy::Fail => Outcome::fail(reason, message),
            Policy::Error => Outcome::error(reason, message),
        }
    }
}

/// Formats a byte count for messages: `512 B`, `3.2 MiB`.
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[0])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a non-negative number of seconds the way messages show durations.
pub fn format_seconds(seconds: f64) -> String {
    format_duration(Duration::from_secs_f64(seconds.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_format_with_binary_units() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
    }

    #[test]
    fn sslmode_names_round_trip() {
        for name in ["disable", "require", "verify-ca", "verify-full"] {
            assert_eq!(SslMode::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(SslMode::parse("prefer"), None);
    }
}
