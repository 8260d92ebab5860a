//! The `postgres_query` check kind: a read-only query that returns one number or timestamp,
//! compared with a threshold.
//!
//! It serves application-level facts, such as the time of the last successful backup in a
//! backup tool's status table. The query runs inside the read-only transaction every PostgreSQL
//! kind uses, as a prepared statement, which PostgreSQL limits to one SQL command.

use std::error::Error as StdError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio_postgres::types::{FromSql, Type};

use super::{format_seconds, Connection, ConnectionSpec, Policy};
use crate::check::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;
use crate::report::rfc3339;

/// The number a query returned.
pub static QUERY_VALUE: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_query_value",
    help: "The number the check's query returned, in the query's own unit",
    unit: None,
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The timestamp a query returned.
pub static QUERY_TIMESTAMP: MeasureFamily = MeasureFamily {
    name: "readiness_postgres_query_timestamp",
    help: "The timestamp the check's query returned, as a Unix timestamp",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&QUERY_VALUE, &QUERY_TIMESTAMP];

/// The `postgres_query` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    connection: ConnectionSpec,
    sql: String,
    min: Option<f64>,
    max: Option<f64>,
    max_age: Option<String>,
    on_empty: Option<String>,
    on_null: Option<String>,
}

/// Threshold the query's value is compared with.
#[derive(Debug)]
enum Threshold {
    /// A number within inclusive bounds.
    Range { min: Option<f64>, max: Option<f64> },
    /// A timestamp no older than this, by the server's clock.
    MaxAge(Duration),
}

/// A validated `postgres_query` check.
#[derive(Debug)]
pub struct QueryCheck {
    connection: Connection,
    sql: String,
    threshold: Threshold,
    on_empty: Policy,
    on_null: Policy,
}

impl QueryCheck {
    /// Validates the `postgres_query` block, recording every problem in `ctx`.
    pub fn build(spec: QuerySpec, ctx: &mut BuildContext<'_>) -> Option<QueryCheck> {
        let before = ctx.problem_count();
        let connection = Connection::build(spec.connection, "postgres_query.connection", ctx);
        let sql = spec.sql.trim().trim_end_matches(';').trim_end().to_string();
        if sql.is_empty() {
            ctx.problem(
                "postgres_query.sql",
                "query is empty; write a SELECT that returns one row with one number or timestamp",
            );
        }
        let max_age = spec
            .max_age
            .as_ref()
            .and_then(|value| ctx.duration("postgres_query.max_age", value));
        let threshold = match (spec.min, spec.max, max_age) {
            (None, None, None) if spec.max_age.is_none() => {
                ctx.problem(
                    "postgres_query",
                    "no threshold; set `min` and/or `max` for a number, or `max_age` for a timestamp",
                );
                None
            }
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                ctx.problem(
                    "postgres_query.max_age",
                    "`max_age` compares a timestamp and `min`/`max` compare a number; a query returns one of them, so keep one kind of threshold",
                );
                None
            }
            (_, _, Some(age)) => Some(Threshold::MaxAge(age)),
            (min, max, None) => {
                if let (Some(low), Some(high)) = (min, max) {
                    if low > high {
                        ctx.problem(
                            "postgres_query.min",
                            format!("`min` ({low}) is larger than `max` ({high}), so no value can pass; swap them"),
                        );
                    }
                }
                if min.is_some_and(f64::is_nan) || max.is_some_and(f64::is_nan) {
                    ctx.problem("postgres_query", "`min` and `max` must be numbers");
                }
                Some(Threshold::Range { min, max })
            }
        };
        let on_empty = Policy::build(
            spec.on_empty.as_deref(),
            Policy::Fail,
            "postgres_query.on_empty",
            ctx,
        );
        let on_null = Policy::build(
            spec.on_null.as_deref(),
            Policy::Fail,
            "postgres_query.on_null",
            ctx,
        );

        if ctx.problem_count() > before {
            return None;
        }
        Some(QueryCheck {
            connection: connection?,
            sql,
            threshold: threshold?,
            on_empty: on_empty?,
            on_null: on_null?,
        })
    }

    /// Runs the query once and compares its value with the threshold.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let session = match self.connection.open(timeout).await {
            Ok(session) => session,
            Err(outcome) => return outcome,
        };
        let statement = match session.prepare(&self.sql, "preparing the query").await {
            Ok(statement) => statement,
            Err(outcome) => return outcome,
        };
        let column_type = match statement.columns() {
            [column] => column.type_().clone(),
            columns => {
                return Outcome::error(
                    Reason::InvalidResponse,
                    format!(
                    "the query returns {} columns; it must return exactly one number or timestamp",
                    columns.len()
                ),
                )
            }
        };
        let is_timestamp = <SystemTime as FromSql>::accepts(&column_type);
        if !is_timestamp && !Number::accepts(&column_type) {
            return Outcome::error(
                Reason::InvalidResponse,
                format!("the query returns a column of type `{column_type}`, which is neither a number nor a timestamp; {}", conversion_hint(&column_type)),
            );
        }
        match (&self.threshold, is_timestamp) {
            (Threshold::MaxAge(_), false) => {
                return Outcome::error(
                    Reason::InvalidResponse,
                    format!("the query returns a number (`{column_type}`), but `max_age` compares a timestamp; use `min`/`max` or return a timestamp"),
                )
            }
            (Threshold::Range { .. }, true) => {
                return Outcome::error(
                    Reason::InvalidResponse,
                    format!("the query returns a timestamp (`{column_type}`), but `min`/`max` compare a number; use `max_age` or return a number"),
                )
            }
            _ => {}
        }

        let rows = match session.query_prepared(&statement, "the query").await {
            Ok(rows) => rows,
            Err(outcome) => return outcome,
        };
        let row = match rows.as_slice() {
            [] => {
                return self.on_empty.apply(
                    Reason::EmptyResult,
                    format!("the query returned no row (on_empty: {})", self.on_empty.as_str()),
                )
            }
            [row] => row,
            rows => {
                return Outcome::error(
                    Reason::InvalidResponse,
                    format!("the query returned {} rows; it must return one, so add an aggregate such as max() or a LIMIT 1", rows.len()),
                )
            }
        };

        match &self.threshold {
            Threshold::Range { min, max } => match row.try_get::<_, Option<Number>>(0) {
                Ok(Some(Number(value))) => evaluate_number(value, *min, *max),
                Ok(None) => self.null_value(),
                Err(err) => decode_error(&err),
            },
            Threshold::MaxAge(max_age) => match row.try_get::<_, Option<SystemTime>>(0) {
                Ok(Some(time)) => {
                    let now = match session
                        .query_one("SELECT now()", &[], "reading the server's clock")
                        .await
                    {
                        Ok(row) => row.get::<_, SystemTime>(0),
                        Err(outcome) => return outcome,
                    };
                    evaluate_timestamp(time, now, *max_age)
                }
                Ok(None) => self.null_value(),
                Err(err) => decode_error(&err),
            },
        }
    }

    fn null_value(&self) -> Outcome {
        self.on_null.apply(
            Reason::NullValue,
            format!(
                "the query returned NULL (on_null: {})",
                self.on_null.as_str()
            ),
        )
    }
}

fn evaluate_number(value: f64, min: Option<f64>, max: Option<f64>) -> Outcome {
    let measures = vec![Measure::new(&QUERY_VALUE, value)];
    let outcome = if value.is_nan() {
        Outcome::fail(
            Reason::ValueOutOfRange,
            "the query returned NaN, which no threshold accepts",
        )
    } else if let Some(min) = min.filter(|min| value < *min) {
        Outcome::fail(
            Reason::ValueOutOfRange,
            format!("the query returned {value}, below the minimum {min}"),
        )
    } else if let Some(max) = max.filter(|max| value > *max) {
        Outcome::fail(
            Reason::ValueOutOfRange,
            format!("the query returned {value}, above the maximum {max}"),
        )
    } else {
        Outcome::pass(format!("the query returned {value}{}", bounds(min, max)))
    };
    outcome.with_value(value).with_measures(measures)
}

fn bounds(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!(", within {min} to {max}"),
        (Some(min), None) => format!(", at least {min}"),
        (None, Some(max)) => format!(", at most {max}"),
        (None, None) => String::new(),
    }
}

fn evaluate_timestamp(time: SystemTime, now: SystemTime, max_age: Duration) -> Outcome {
    let epoch = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    // A timestamp in the future has age zero.
    let age = now.duration_since(time).unwrap_or_default();
    let measures = vec![Measure::new(&QUERY_TIMESTAMP, epoch)];
    let described = format!(
        "the query returned {}, {} ago",
        rfc3339(time),
        format_seconds(age.as_secs_f64())
    );
    let outcome = if age > max_age {
        Outcome::fail(
            Reason::TooOld,
            format!(
                "{described}, older than max_age {}",
                format_seconds(max_age.as_secs_f64())
            ),
        )
    } else {
        Outcome::pass(described)
    };
    outcome
        .with_value(age.as_secs_f64())
        .with_measures(measures)
}

fn decode_error(err: &tokio_postgres::Error) -> Outcome {
    let cause = err
        .source()
        .map(ToString::to_string)
        .unwrap_or_else(|| err.to_string());
    Outcome::error(
        Reason::InvalidResponse,
        format!("the query's value cannot be read: {cause}"),
    )
}

/// A numeric column of any PostgreSQL number type, as `f64`.
///
/// tokio-postgres decodes `numeric` only with an extra crate, and `sum()` and `avg()` return
/// `numeric`, so this type decodes its binary form itself. Values beyond `f64` precision lose
/// their last digits.
struct Number(f64);

impl<'a> FromSql<'a> for Number {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let value = if *ty == Type::INT2 {
            f64::from(i16::from_sql(ty, raw)?)
        } else if *ty == Type::INT4 {
            f64::from(i32::from_sql(ty, raw)?)
        } else if *ty == Type::INT8 {
            i64::from_sql(ty, raw)? as f64
        } else if *ty == Type::FLOAT4 {
            f64::from(f32::from_sql(ty, raw)?)
        } else if *ty == Type::FLOAT8 {
            f64::from_sql(ty, raw)?
        } else if *ty == Type::OID {
            f64::from(u32::from_sql(ty, raw)?)
        } else {
            numeric_from_binary(raw)?
        };
        Ok(Number(value))
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::OID,
            Type::NUMERIC,
        ]
        .contains(ty)
    }
}

/// Decodes PostgreSQL's binary `numeric`: a header of digit count, weight, sign and display
/// scale (four big-endian 16-bit fields), then base-10000 digits, the first of which is
/// multiplied by 10000^weight.
fn numeric_from_binary(raw: &[u8]) -> Result<f64, Box<dyn StdError + Sync + Send>> {
    let field = |index: usize| -> Result<u16, Box<dyn StdError + Sync + Send>> {
        raw.get(index * 2..index * 2 + 2)
            .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
            .ok_or_else(|| "numeric value is truncated".into())
    };
    let digits = field(0)? as usize;
    let weight = field(1)? as i16;
    let sign = field(2)?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok(f64::NAN),
        0xD000 => return Ok(f64::INFINITY),
        0xF000 => return Ok(f64::NEG_INFINITY),
        other => return Err(format!("numeric value has unknown sign {other:#06x}").into()),
    }
    let mut value = 0.0;
    for i in 0..digits {
        let digit = f64::from(field(4 + i)?);
        value += digit * 10_000f64.powi(i32::from(weight) - i as i32);
    }
    Ok(if sign == 0x4000 { -value } else { value })
}

/// Suggests how to turn a column of `column_type` into a number or a timestamp in SQL.
fn conversion_hint(column_type: &tokio_postgres::types::Type) -> &'static str {
    use tokio_postgres::types::Type;
    match *column_type {
        Type::BOOL => "count it as a number with `::int` (true is 1)",
        Type::INTERVAL => "turn it into seconds with `extract(epoch from ...)`",
        Type::DATE => "cast it with `::timestamptz`",
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            "cast it with `::numeric` or `::timestamptz`, whichever the text holds"
        }
        _ => "cast it, for example with `::numeric` or `::timestamptz`",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(digits: &[u16], weight: i16, sign: u16) -> Vec<u8> {
        let mut raw = Vec::new();
        for field in [digits.len() as u16, weight as u16, sign, 0] {
            raw.extend_from_slice(&field.to_be_bytes());
        }
        for digit in digits {
            raw.extend_from_slice(&digit.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numeric_decodes_integer_and_fraction() {
        // 12345.678 is 1|2345|6780 with weight 1.
        let raw = numeric(&[1, 2345, 6780], 1, 0);
        assert!((numeric_from_binary(&raw).unwrap() - 12345.678).abs() < 1e-9);
    }

    #[test]
    fn numeric_decodes_negative_and_special() {
        assert_eq!(
            numeric_from_binary(&numeric(&[42], 0, 0x4000)).unwrap(),
            -42.0
        );
        assert!(numeric_from_binary(&numeric(&[], 0, 0xC000))
            .unwrap()
            .is_nan());
        assert_eq!(numeric_from_binary(&numeric(&[], 0, 0)).unwrap(), 0.0);
    }

    #[test]
    fn number_outside_bounds_fails() {
        assert_eq!(
            evaluate_number(11.0, None, Some(10.0)).reason,
            Reason::ValueOutOfRange
        );
        assert_eq!(
            evaluate_number(10.0, Some(1.0), Some(10.0)).reason,
            Reason::Ok
        );
    }
}
