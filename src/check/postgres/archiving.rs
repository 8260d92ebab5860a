//! The `postgres_archiving` check kind: WAL archiving from `pg_stat_archiver`.
//!
//! Ages are computed with the server's clock, so clock skew between the exporter and the
//! database does not move them. A server that never archived anything has no age: that is a
//! failure of its own, not an archive made zero seconds ago.

use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;

use super::{format_seconds, Connection, ConnectionSpec};
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;
use crate::report::rfc3339;

/// When the last WAL segment was archived.
pub static LAST_SUCCESS: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_archive_last_success_timestamp",
    help: "When the server last archived a WAL segment, as a Unix timestamp",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// When archiving last failed.
pub static LAST_FAILURE: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_archive_last_failure_timestamp",
    help: "When archiving a WAL segment last failed, as a Unix timestamp",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Failed archive attempts since the statistics were reset.
pub static FAILURES: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_archive_failures",
    help:
        "Failed attempts to archive a WAL segment since the server's archiver statistics were reset",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&LAST_SUCCESS, &LAST_FAILURE, &FAILURES];

/// The `postgres_archiving` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivingSpec {
    connection: ConnectionSpec,
    max_age: Option<String>,
}

/// A validated `postgres_archiving` check.
#[derive(Debug)]
pub struct ArchivingCheck {
    connection: Connection,
    max_age: Option<Duration>,
}

/// One read of `pg_stat_archiver` with the settings that decide whether it runs.
struct Archiver {
    archive_mode: String,
    in_recovery: bool,
    last_archived_wal: Option<String>,
    last_archived_time: Option<f64>,
    last_archived_age: Option<f64>,
    failed_count: i64,
    last_failed_wal: Option<String>,
    last_failed_time: Option<f64>,
    stats_reset: Option<f64>,
}

impl ArchivingCheck {
    /// Validates the `postgres_archiving` block, recording every problem in `ctx`.
    pub fn build(spec: ArchivingSpec, ctx: &mut BuildContext<'_>) -> Option<ArchivingCheck> {
        let connection = Connection::build(spec.connection, "postgres_archiving.connection", ctx);
        let mut ok = true;
        let max_age = match &spec.max_age {
            Some(value) => {
                let parsed = ctx.duration("postgres_archiving.max_age", value);
                ok = parsed.is_some();
                parsed
            }
            None => None,
        };
        if !ok {
            return None;
        }
        Some(ArchivingCheck {
            connection: connection?,
            max_age,
        })
    }

    /// Reads `pg_stat_archiver` and evaluates it.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let session = match self.connection.open(timeout).await {
            Ok(session) => session,
            Err(outcome) => return outcome,
        };
        let row = match session
            .query_one(
                "SELECT current_setting('archive_mode'), pg_is_in_recovery(), \
                        last_archived_wal, \
                        EXTRACT(EPOCH FROM last_archived_time)::float8, \
                        EXTRACT(EPOCH FROM now() - last_archived_time)::float8, \
                        failed_count, last_failed_wal, \
                        EXTRACT(EPOCH FROM last_failed_time)::float8, \
                        EXTRACT(EPOCH FROM stats_reset)::float8 \
                 FROM pg_stat_archiver",
                &[],
                "reading pg_stat_archiver",
            )
            .await
        {
            Ok(row) => row,
            Err(outcome) => return outcome,
        };
        let archiver = Archiver {
            archive_mode: row.get(0),
            in_recovery: row.get(1),
            last_archived_wal: row.get(2),
            last_archived_time: row.get(3),
            last_archived_age: row.get(4),
            failed_count: row.get(5),
            last_failed_wal: row.get(6),
            last_failed_time: row.get(7),
            stats_reset: row.get(8),
        };
        self.evaluate(&archiver)
    }

    fn evaluate(&self, archiver: &Archiver) -> Outcome {
        let target = self.connection.target();
        let mut measures = vec![Measure::new(&FAILURES, archiver.failed_count as f64)];
        if let Some(time) = archiver.last_archived_time {
            measures.push(Measure::new(&LAST_SUCCESS, time));
        }
        if let Some(time) = archiver.last_failed_time {
            measures.push(Measure::new(&LAST_FAILURE, time));
        }
        let finish = |outcome: Outcome| {
            let outcome = outcome.with_measures(measures.clone());
            match archiver.last_archived_age {
                Some(age) => outcome.with_value(age.max(0.0)),
                None => outcome,
            }
        };

        match archiver.archive_mode.as_str() {
            "off" => {
                return finish(Outcome::fail(
                    Reason::ArchivingDisabled,
                    format!("archive_mode is off on {target}; set archive_mode = on and an archive_command or archive_library"),
                ))
            }
            "on" if archiver.in_recovery => {
                return finish(Outcome::fail(
                    Reason::ArchivingDisabled,
                    format!("{target} is a standby and archive_mode is `on`, which archives on a primary only; point the check at the primary or set archive_mode = always"),
                ))
            }
            _ => {}
        }

        let failure = archiver.last_failed_time.map(|time| {
            format!(
                "archiving {} failed at {}",
                archiver
                    .last_failed_wal
                    .as_deref()
                    .unwrap_or("a WAL segment"),
                timestamp(time)
            )
        });
        let (Some(archived_time), Some(age)) =
            (archiver.last_archived_time, archiver.last_archived_age)
        else {
            let since = archiver
                .stats_reset
                .map(|time| format!(" since the statistics were reset at {}", timestamp(time)))
                .unwrap_or_default();
            return finish(match failure {
                Some(failure) => Outcome::fail(
                    Reason::ArchiveFailing,
                    format!("no WAL segment was ever archived{since}; {} attempt(s) failed, the last: {failure}; check archive_command and the server log", archiver.failed_count),
                ),
                None => Outcome::fail(
                    Reason::NeverArchived,
                    format!("archiving is on but no WAL segment was ever archived{since}; check archive_command, and set archive_timeout so that an idle server still archives"),
                ),
            });
        };
        let archived = format!(
            "{} archived at {}, {} ago",
            archiver
                .last_archived_wal
                .as_deref()
                .unwrap_or("last WAL segment"),
            timestamp(archived_time),
            format_seconds(age)
        );

        if let (Some(failed_time), Some(failure)) = (archiver.last_failed_time, &failure) {
            if failed_time > archived_time {
                return finish(Outcome::fail(
                    Reason::ArchiveFailing,
                    format!("{failure}, after the last success ({archived}); check archive_command and the server log"),
                ));
            }
        }
        if let Some(max_age) = self.max_age {
            if age > max_age.as_secs_f64() {
                return finish(Outcome::fail(
                    Reason::TooOld,
                    format!(
                        "{archived}, longer ago than max_age {}; check the archiver, and set archive_timeout below max_age so that an idle server still archives",
                        format_seconds(max_age.as_secs_f64())
                    ),
                ));
            }
        }
        finish(Outcome::pass(archived))
    }
}

fn timestamp(seconds: f64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_after_success_fails() {
        let now = 1_700_000_000.0;
        let archiver = Archiver {
            archive_mode: "on".into(),
            in_recovery: false,
            last_archived_wal: Some("000000010000000000000003".into()),
            last_archived_time: Some(now - 60.0),
            last_archived_age: Some(60.0),
            failed_count: 2,
            last_failed_wal: Some("000000010000000000000004".into()),
            last_failed_time: Some(now - 5.0),
            stats_reset: None,
        };
        let check = ArchivingCheck {
            connection: test_connection(),
            max_age: None,
        };
        let outcome = check.evaluate(&archiver);
        assert_eq!(outcome.reason, Reason::ArchiveFailing);
        assert!(outcome.message.contains("000000010000000000000004"));
    }

    fn test_connection() -> Connection {
        Connection {
            host: "127.0.0.1".into(),
            port: 5432,
            database: "postgres".into(),
            user: "monitor".into(),
            password: None,
            sslmode: super::super::SslMode::Disable,
            tls: None,
            ca_file: None,
            connect_timeout: None,
            statement_timeout: None,
        }
    }
}
