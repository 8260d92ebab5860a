//! The `postgres_reachable` check kind: log in, run a trivial query, and optionally require an
//! encrypted session and a minimum server version.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::{Connection, ConnectionSpec};
use crate::check::{format_duration, Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// Round-trip time of the trivial query.
pub static ROUND_TRIP: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_round_trip",
    help: "Round-trip time of a trivial query on an open PostgreSQL connection",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The server version as `server_version_num`.
pub static SERVER_VERSION: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_server_version",
    help: "PostgreSQL server version as server_version_num, such as 150004 for 15.4",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&ROUND_TRIP, &SERVER_VERSION];

/// The `postgres_reachable` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReachableSpec {
    connection: ConnectionSpec,
    require_tls: Option<bool>,
    min_server_version: Option<serde_json::Value>,
}

/// A validated `postgres_reachable` check.
#[derive(Debug)]
pub struct ReachableCheck {
    connection: Connection,
    require_tls: bool,
    min_server_version: Option<u32>,
}

impl ReachableCheck {
    /// Validates the `postgres_reachable` block, recording every problem in `ctx`.
    pub fn build(spec: ReachableSpec, ctx: &mut BuildContext<'_>) -> Option<ReachableCheck> {
        let connection = Connection::build(spec.connection, "postgres_reachable.connection", ctx);
        let require_tls = spec.require_tls.unwrap_or(false);
        if require_tls
            && connection
                .as_ref()
                .is_some_and(|c| c.sslmode == super::SslMode::Disable)
        {
            ctx.problem(
                "postgres_reachable.require_tls",
                "`require_tls: true` cannot pass with sslmode `disable`; use sslmode `verify-full`",
            );
        }
        let mut version_ok = true;
        let min_server_version = match &spec.min_server_version {
            None => None,
            Some(value) => {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    serde_json::Value::Number(number) => number.to_string(),
                    other => other.to_string(),
                };
                let is_float =
                    matches!(value, serde_json::Value::Number(number) if number.is_f64());
                if is_float {
                    // YAML reads 15.20 as the number 15.2, so the minor version the user wrote
                    // is lost before it reaches the check.
                    ctx.problem(
                        "postgres_reachable.min_server_version",
                        format!("version `{text}` is a number, and YAML drops its trailing zeros (`15.20` reads as 15.2); write it in quotes, such as `\"{text}\"`"),
                    );
                    return None;
                }
                match parse_version(&text) {
                    Some(number) => Some(number),
                    None => {
                        ctx.problem(
                            "postgres_reachable.min_server_version",
                            format!("invalid version `{text}`; write a PostgreSQL version such as `15` or `14.9`"),
                        );
                        version_ok = false;
                        None
                    }
                }
            }
        };
        if !version_ok {
            return None;
        }
        Some(ReachableCheck {
            connection: connection?,
            require_tls,
            min_server_version,
        })
    }

    /// Connects, runs `SELECT 1` and reads the session's version and encryption.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let session = match self.connection.open(timeout).await {
            Ok(session) => session,
            Err(outcome) => return outcome,
        };
        let target = self.connection.target();

        let started = Instant::now();
        if let Err(outcome) = session.query("SELECT 1", &[], "the query `SELECT 1`").await {
            return outcome;
        }
        let round_trip = started.elapsed();

        // pg_stat_ssl shows the session as the server sees it, which also catches a proxy
        // that terminates TLS and talks to the server in plain text.
        let row = match session
            .query_one(
                "SELECT current_setting('server_version_num')::int4, \
                        coalesce(s.ssl, false), s.version \
                 FROM (SELECT 1) AS one \
                 LEFT JOIN pg_stat_ssl AS s ON s.pid = pg_backend_pid()",
                &[],
                "reading the server version and session encryption",
            )
            .await
        {
            Ok(row) => row,
            Err(outcome) => return outcome,
        };
        let version_num: i32 = row.get(0);
        let encrypted: bool = row.get(1);
        let tls_version: Option<String> = row.get(2);
        let version_num = version_num.max(0) as u32;
        let version = format_version(version_num);

        let measures = vec![
            Measure::new(&ROUND_TRIP, round_trip.as_secs_f64()),
            Measure::new(&SERVER_VERSION, f64::from(version_num)),
        ];
        let finish = |outcome: Outcome| {
            outcome
                .with_value(round_trip.as_secs_f64())
                .with_measures(measures.clone())
        };

        if self.require_tls && !encrypted {
            return finish(Outcome::fail(
                Reason::NotEncrypted,
                format!("the server reports the session from the exporter to {target} as not encrypted; require `hostssl` in pg_hba.conf, and check for a proxy that terminates TLS"),
            ));
        }
        if let Some(minimum) = self.min_server_version {
            if version_num < minimum {
                return finish(Outcome::fail(
                    Reason::VersionTooOld,
                    format!(
                        "server at {target} runs PostgreSQL {version}, older than the minimum {}",
                        format_version(minimum)
                    ),
                ));
            }
        }
        let encryption = match (encrypted, tls_version) {
            (true, Some(tls_version)) => format!("over {tls_version}"),
            (true, None) => "over TLS".to_string(),
            (false, _) => "without TLS".to_string(),
        };
        finish(Outcome::pass(format!(
            "logged in to {target} as `{}` {encryption}, PostgreSQL {version}, query round trip {}",
            self.connection.user(),
            format_duration(round_trip)
        )))
    }
}

/// Parses `15`, `15.4` or `9.6.24` into the `server_version_num` form.
fn parse_version(text: &str) -> Option<u32> {
    let parts: Vec<u32> = text
        .trim()
        .split('.')
        .map(|part| part.parse::<u32>().ok())
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [major] if *major >= 10 => Some(major * 10_000),
        [major, minor] if *major >= 10 && *minor < 10_000 => Some(major * 10_000 + minor),
        [major, minor] if *major < 10 && *minor < 100 => Some(major * 10_000 + minor * 100),
        [major, minor, patch] if *major < 10 && *minor < 100 && *patch < 100 => {
            Some(major * 10_000 + minor * 100 + patch)
        }
        _ => None,
    }
}

/// Formats `server_version_num` as PostgreSQL writes it: `15.4`, `9.6.24`.
fn format_version(number: u32) -> String {
    if number >= 100_000 {
        format!("{}.{}", number / 10_000, number % 10_000)
    } else {
        format!(
            "{}.{}.{}",
            number / 10_000,
            (number / 100) % 100,
            number % 100
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_server_version_num() {
        assert_eq!(parse_version("15"), Some(150_000));
        assert_eq!(parse_version("14.9"), Some(140_009));
        assert_eq!(parse_version("9.6.24"), Some(90_624));
        assert_eq!(parse_version("9.6"), Some(90_600));
        assert_eq!(parse_version("fifteen"), None);
        assert_eq!(parse_version("15.1.2"), None);
    }

    #[test]
    fn versions_format_like_postgres() {
        assert_eq!(format_version(150_004), "15.4");
        assert_eq!(format_version(90_624), "9.6.24");
    }
}
