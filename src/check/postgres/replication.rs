//! The `postgres_replication` check kind: streaming standbys and their lag, seen from the
//! primary, or the WAL receiver seen from a standby.
//!
//! On the primary a standby is a `pg_stat_replication` row in state `streaming` that reports a
//! replay position. WAL clients that never replay (pg_receivewal, the WAL stream of
//! pg_basebackup) report none, so they are not counted. PostgreSQL sets the lag columns to NULL
//! once an idle standby has caught up; such a standby has zero lag.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{format_bytes, format_seconds, Connection, ConnectionSpec, Session};
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;

/// Count of standbys streaming from the primary.
pub static STANDBYS: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_standbys",
    help: "Standbys streaming from the primary and replaying WAL",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Count of synchronous standbys of the primary.
pub static SYNCHRONOUS_STANDBYS: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_synchronous_standbys",
    help: "Streaming standbys whose sync_state is sync or quorum",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Replay lag of each standby in bytes.
pub static LAG_BYTES: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_replication_lag",
    help: "WAL the standby has not replayed yet, from the primary's current position",
    unit: Some("bytes"),
    metric_type: MeasureType::Gauge,
    labels: &["standby"],
};

/// Replay lag of each standby in seconds.
pub static LAG_SECONDS: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_replication_lag",
    help: "Replay lag of the standby as the primary measures it; 0 for a caught-up idle standby",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &["standby"],
};

/// Whether a standby's WAL receiver is streaming.
pub static RECEIVER_STREAMING: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_wal_receiver_streaming",
    help: "1 when the standby's WAL receiver is streaming from its upstream, 0 otherwise",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// WAL a standby received but has not replayed, in bytes.
pub static REPLAY_BACKLOG_BYTES: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_replay_lag",
    help: "WAL the standby received but has not replayed yet",
    unit: Some("bytes"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// Age of the last replayed transaction while a standby has WAL left to replay.
pub static REPLAY_BACKLOG_SECONDS: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_replay_lag",
    help: "Age of the last replayed transaction while the standby has received WAL left to replay; 0 when it has none",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[
    &STANDBYS,
    &SYNCHRONOUS_STANDBYS,
    &LAG_BYTES,
    &LAG_SECONDS,
    &RECEIVER_STREAMING,
    &REPLAY_BACKLOG_BYTES,
    &REPLAY_BACKLOG_SECONDS,
];

/// The `postgres_replication` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSpec {
    connection: ConnectionSpec,
    role: Option<String>,
    min_standbys: Option<u32>,
    min_synchronous: Option<u32>,
    #[serde(default)]
    expected_standbys: Vec<String>,
    max_lag_bytes: Option<u64>,
    max_lag: Option<String>,
}

/// Side of replication the check connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Primary,
    Standby,
}

/// A validated `postgres_replication` check.
#[derive(Debug)]
pub struct ReplicationCheck {
    connection: Connection,
    role: Role,
    min_standbys: u32,
    min_synchronous: u32,
    expected_standbys: Vec<String>,
    max_lag_bytes: Option<u64>,
    max_lag: Option<Duration>,
}

/// One `pg_stat_replication` row.
struct WalSender {
    name: String,
    state: Option<String>,
    sync_state: Option<String>,
    replays: bool,
    lag_bytes: Option<f64>,
    lag_seconds: Option<f64>,
}

impl WalSender {
    fn is_standby(&self) -> bool {
        self.state.as_deref() == Some("streaming") && self.replays
    }

    fn is_synchronous(&self) -> bool {
        matches!(self.sync_state.as_deref(), Some("sync" | "quorum"))
    }

    /// Returns the lag in seconds, where a NULL column of a standby with nothing left to replay
    /// counts as 0.
    fn effective_lag_seconds(&self) -> Option<f64> {
        match (self.lag_seconds, self.lag_bytes) {
            (Some(seconds), _) => Some(seconds),
            (None, Some(bytes)) if bytes <= 0.0 => Some(0.0),
            _ => None,
        }
    }
}

impl ReplicationCheck {
    /// Validates the `postgres_replication` block, recording every problem in `ctx`.
    pub fn build(spec: ReplicationSpec, ctx: &mut BuildContext<'_>) -> Option<ReplicationCheck> {
        let before = ctx.problem_count();
        let connection = Connection::build(spec.connection, "postgres_replication.connection", ctx);
        let role = match spec.role.as_deref() {
            None | Some("primary") => Some(Role::Primary),
            Some("standby") => Some(Role::Standby),
            Some(other) => {
                ctx.problem(
                    "postgres_replication.role",
                    format!("unknown role `{other}`; use primary or standby"),
                );
                None
            }
        };
        if role == Some(Role::Standby) {
            for (set, field) in [
                (spec.min_standbys.is_some(), "min_standbys"),
                (spec.min_synchronous.is_some(), "min_synchronous"),
                (!spec.expected_standbys.is_empty(), "expected_standbys"),
            ] {
                if set {
                    ctx.problem(
                        format!("postgres_replication.{field}"),
                        format!("`{field}` applies to the primary only; remove it, or set `role: primary` and point the check at the primary"),
                    );
                }
            }
        }
        let min_standbys = spec.min_standbys.unwrap_or(1);
        let min_synchronous = spec.min_synchronous.unwrap_or(0);
        if min_synchronous > min_standbys {
            ctx.problem(
                "postgres_replication.min_synchronous",
                format!("`min_synchronous` ({min_synchronous}) is larger than `min_standbys` ({min_standbys}); synchronous standbys are also standbys, so raise `min_standbys`"),
            );
        }
        for (i, name) in spec.expected_standbys.iter().enumerate() {
            if name.trim().is_empty() {
                ctx.problem(
                    format!("postgres_replication.expected_standbys[{i}]"),
                    "name is empty; write the standby's application_name from pg_stat_replication",
                );
            }
        }
        if spec.max_lag_bytes == Some(0) {
            ctx.problem(
                "postgres_replication.max_lag_bytes",
                "`0` fails on any write in flight; use a positive number of bytes such as 16777216 (16 MiB)",
            );
        }
        let max_lag = spec
            .max_lag
            .as_ref()
            .and_then(|value| ctx.duration("postgres_replication.max_lag", value));

        if ctx.problem_count() > before {
            return None;
        }
        Some(ReplicationCheck {
            connection: connection?,
            role: role?,
            min_standbys,
            min_synchronous,
            expected_standbys: spec.expected_standbys,
            max_lag_bytes: spec.max_lag_bytes,
            max_lag,
        })
    }

    /// Connects and evaluates replication from the configured side.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let session = match self.connection.open(timeout).await {
            Ok(session) => session,
            Err(outcome) => return outcome,
        };
        let in_recovery: bool = match session
            .query_one("SELECT pg_is_in_recovery()", &[], "pg_is_in_recovery()")
            .await
        {
            Ok(row) => row.get(0),
            Err(outcome) => return outcome,
        };
        let target = self.connection.target();
        match (self.role, in_recovery) {
            (Role::Primary, false) => self.run_primary(&session).await,
            (Role::Standby, true) => self.run_standby(&session).await,
            (Role::Primary, true) => Outcome::fail(
                Reason::WrongRole,
                format!("{target} is a standby (in recovery), but the check expects the primary; point it at the primary or set `role: standby`"),
            ),
            (Role::Standby, false) => Outcome::fail(
                Reason::WrongRole,
                format!("{target} is a primary (not in recovery), but the check expects a standby; a failover may have promoted it"),
            ),
        }
    }

    async fn run_primary(&self, session: &Session) -> Outcome {
        let rows = match session
            .query(
                "SELECT coalesce(application_name, ''), state, sync_state, \
                        replay_lsn IS NOT NULL, \
                        pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8, \
                        EXTRACT(EPOCH FROM replay_lag)::float8 \
                 FROM pg_stat_replication \
                 ORDER BY application_name, pid",
                &[],
                "reading pg_stat_replication",
            )
            .await
        {
            Ok(rows) => rows,
            Err(outcome) => return outcome,
        };
        let senders: Vec<WalSender> = rows
            .iter()
            .map(|row| WalSender {
                name: row.get(0),
                state: row.get(1),
                sync_state: row.get(2),
                replays: row.get(3),
                lag_bytes: row.get(4),
                lag_seconds: row.get(5),
            })
            .collect();
        if senders.iter().any(|sender| sender.state.is_none()) {
            return Outcome::error(
                Reason::Forbidden,
                format!(
                    "pg_stat_replication hides the state of WAL senders from role `{}`; grant it pg_monitor",
                    self.connection.user()
                ),
            );
        }

        let standbys: Vec<&WalSender> = senders.iter().filter(|s| s.is_standby()).collect();
        let synchronous = standbys.iter().filter(|s| s.is_synchronous()).count();
        let measures = self.primary_measures(&standbys, synchronous);
        let problems = self.primary_problems(&senders, &standbys, synchronous);
        let outcome = match problems.first() {
            Some((reason, _)) => Outcome::fail(
                *reason,
                problems
                    .iter()
                    .map(|(_, text)| text.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            None => Outcome::pass(describe_standbys(&standbys, senders.len())),
        };
        outcome
            .with_value(standbys.len() as f64)
            .with_measures(measures)
    }

    fn primary_measures(&self, standbys: &[&WalSender], synchronous: usize) -> Vec<Measure> {
        let mut measures = vec![
            Measure::new(&STANDBYS, standbys.len() as f64),
            Measure::new(&SYNCHRONOUS_STANDBYS, synchronous as f64),
        ];
        // Standbys that leave application_name at its default all call themselves
        // `walreceiver`; a suffix keeps their series apart.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for standby in standbys {
            let count = seen.entry(standby.name.as_str()).or_default();
            *count += 1;
            let label = if *count == 1 {
                standby.name.clone()
            } else {
                format!("{}#{count}", standby.name)
            };
            if let Some(bytes) = standby.lag_bytes {
                measures.push(Measure {
                    family: &LAG_BYTES,
                    label_values: vec![label.clone()],
                    value: bytes,
                });
            }
            if let Some(seconds) = standby.effective_lag_seconds() {
                measures.push(Measure {
                    family: &LAG_SECONDS,
                    label_values: vec![label],
                    value: seconds,
                });
            }
        }
        measures
    }

    fn primary_problems(
        &self,
        senders: &[WalSender],
        standbys: &[&WalSender],
        synchronous: usize,
    ) -> Vec<(Reason, String)> {
        let mut problems = Vec::new();
        for expected in &self.expected_standbys {
            if standbys.iter().any(|s| &s.name == expected) {
                continue;
            }
            let text = match senders.iter().find(|s| &s.name == expected) {
                Some(sender) => format!(
                    "expected standby `{expected}` is connected but not a streaming standby (state `{}`{})",
                    sender.state.as_deref().unwrap_or("unknown"),
                    if sender.replays { "" } else { ", no replay position" }
                ),
                None => format!(
                    "expected standby `{expected}` is missing from pg_stat_replication; check that it runs and that its primary_conninfo sets application_name={expected}"
                ),
            };
            problems.push((Reason::StandbyMissing, text));
        }
        if (standbys.len() as u64) < u64::from(self.min_standbys) {
            problems.push((
                Reason::TooFewStandbys,
                format!(
                    "{} streaming standby(s), at least {} required{}",
                    standbys.len(),
                    self.min_standbys,
                    ignored_clients(senders, standbys.len())
                ),
            ));
        }
        if (synchronous as u64) < u64::from(self.min_synchronous) {
            problems.push((
                Reason::TooFewStandbys,
                format!(
                    "{synchronous} synchronous standby(s), at least {} required; check synchronous_standby_names",
                    self.min_synchronous
                ),
            ));
        }
        for standby in standbys {
            if let (Some(max), Some(bytes)) = (self.max_lag_bytes, standby.lag_bytes) {
                if bytes > max as f64 {
                    problems.push((
                        Reason::ReplicationLag,
                        format!(
                            "standby `{}` is {} behind in replay, more than max_lag_bytes {}",
                            standby.name,
                            format_bytes(bytes),
                            format_bytes(max as f64)
                        ),
                    ));
                }
            }
            if let (Some(max), Some(seconds)) = (self.max_lag, standby.effective_lag_seconds()) {
                if seconds > max.as_secs_f64() {
                    problems.push((
                        Reason::ReplicationLag,
                        format!(
                            "standby `{}` replay lag is {}, more than max_lag {}",
                            standby.name,
                            format_seconds(seconds),
                            format_seconds(max.as_secs_f64())
                        ),
                    ));
                }
            }
        }
        problems
    }

    async fn run_standby(&self, session: &Session) -> Outcome {
        let row = match session
            .query_one(
                "SELECT (SELECT status FROM pg_stat_wal_receiver), \
                        pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8, \
                        CASE WHEN pg_last_wal_receive_lsn() IS NULL THEN NULL \
                             WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 \
                             ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 \
                        END",
                &[],
                "reading the WAL receiver status",
            )
            .await
        {
            Ok(row) => row,
            Err(outcome) => return outcome,
        };
        let status: Option<String> = row.get(0);
        let backlog_bytes: Option<f64> = row.get(1);
        let backlog_seconds: Option<f64> = row.get(2);
        let streaming = status.as_deref() == Some("streaming");
        let target = self.connection.target();

        let mut measures = vec![Measure::new(
            &RECEIVER_STREAMING,
            f64::from(u8::from(streaming)),
        )];
        if let Some(bytes) = backlog_bytes {
            measures.push(Measure::new(&REPLAY_BACKLOG_BYTES, bytes.max(0.0)));
        }
        if let Some(seconds) = backlog_seconds {
            measures.push(Measure::new(&REPLAY_BACKLOG_SECONDS, seconds.max(0.0)));
        }

        let mut problems: Vec<(Reason, String)> = Vec::new();
        if !streaming {
            let text = match &status {
                Some(status) => format!("the WAL receiver on {target} is `{status}`, not streaming; check the primary and primary_conninfo"),
                None => format!("standby {target} has no WAL receiver, so it is not receiving WAL; check the primary and primary_conninfo"),
            };
            problems.push((Reason::NotReceiving, text));
        }
        if let (Some(max), Some(bytes)) = (self.max_lag_bytes, backlog_bytes) {
            if bytes > max as f64 {
                problems.push((
                    Reason::ReplicationLag,
                    format!(
                        "{} of received WAL not replayed yet, more than max_lag_bytes {}; check whether replay is paused or blocked by a conflicting query",
                        format_bytes(bytes),
                        format_bytes(max as f64)
                    ),
                ));
            }
        }
        if let (Some(max), Some(seconds)) = (self.max_lag, backlog_seconds) {
            if seconds > max.as_secs_f64() {
                problems.push((
                    Reason::ReplicationLag,
                    format!(
                        "replay lag is {}, more than max_lag {}",
                        format_seconds(seconds),
                        format_seconds(max.as_secs_f64())
                    ),
                ));
            }
        }
        let outcome = match problems.first() {
            Some((reason, _)) => Outcome::fail(
                *reason,
                problems
                    .iter()
                    .map(|(_, text)| text.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            None => Outcome::pass(format!(
                "standby {target} is streaming WAL, {} received but not replayed",
                backlog_bytes.map_or("unknown".to_string(), format_bytes)
            )),
        };
        outcome
            .with_value(f64::from(u8::from(streaming)))
            .with_measures(measures)
    }
}

fn describe_standbys(standbys: &[&WalSender], senders: usize) -> String {
    let names: Vec<String> = standbys
        .iter()
        .map(|standby| {
            let lag = match (standby.lag_bytes, standby.effective_lag_seconds()) {
                (Some(bytes), Some(seconds)) => {
                    format!("{} / {}", format_bytes(bytes), format_seconds(seconds))
                }
                (Some(bytes), None) => format_bytes(bytes),
                _ => "lag unknown".to_string(),
            };
            format!(
                "`{}` ({}, {lag})",
                standby.name,
                standby.sync_state.as_deref().unwrap_or("async")
            )
        })
        .collect();
    format!(
        "{} streaming standby(s): {}{}",
        standbys.len(),
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        },
        ignored_clients_of(senders, standbys.len())
    )
}

fn ignored_clients(senders: &[WalSender], standbys: usize) -> String {
    ignored_clients_of(senders.len(), standbys)
}

fn ignored_clients_of(senders: usize, standbys: usize) -> String {
    match senders - standbys {
        0 => String::new(),
        n => format!("; {n} other WAL client(s) not counted, such as backups or pg_receivewal, or standbys still catching up"),
    }
}
