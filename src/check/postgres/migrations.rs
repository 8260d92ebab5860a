//! The `ef_migrations` check kind: the newest migration in Entity Framework Core's history
//! table equals the one the release expects.
//!
//! EF Core names migrations `<UTC timestamp>_<Name>` (such as `20240301120000_AddOrders`) and
//! records each applied one in `"MigrationId"` of `__EFMigrationsHistory`, so the byte order of
//! the ids is the order in which they were created.

use std::time::Duration;

use serde::Deserialize;
use tokio_postgres::error::SqlState;

use super::{Connection, ConnectionSpec};
use crate::check::{MeasureFamily, Outcome, Reason};
use crate::config::BuildContext;

const DEFAULT_SCHEMA: &str = "public";
const DEFAULT_TABLE: &str = "__EFMigrationsHistory";
/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The measure families of this kind: it exports only the common check metrics.
pub static MEASURES: &[&MeasureFamily] = &[];

/// The `ef_migrations` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationsSpec {
    connection: ConnectionSpec,
    expected_migration: String,
    schema: Option<String>,
    table: Option<String>,
}

/// A validated `ef_migrations` check.
#[derive(Debug)]
pub struct MigrationsCheck {
    connection: Connection,
    expected: String,
    /// `"schema"."table"`, quoted for SQL.
    qualified_table: String,
}

impl MigrationsCheck {
    /// Validates the `ef_migrations` block, recording every problem in `ctx`.
    pub fn build(spec: MigrationsSpec, ctx: &mut BuildContext<'_>) -> Option<MigrationsCheck> {
        let before = ctx.problem_count();
        let connection = Connection::build(spec.connection, "ef_migrations.connection", ctx);
        let expected = spec.expected_migration.trim().to_string();
        if expected.is_empty() {
            ctx.problem(
                "ef_migrations.expected_migration",
                "expected migration is empty; write the id of the release's newest migration, such as `20240301120000_AddOrders`",
            );
        } else if !has_timestamp(&expected) {
            // Ids are compared in byte order to tell pending from unknown migrations, which
            // only works for ids that start with the timestamp EF Core gives them.
            ctx.problem(
                "ef_migrations.expected_migration",
                format!("`{expected}` is not a migration id; write the id as the history table stores it: a 14-digit timestamp, `_` and the name, such as `20240301120000_AddOrders`"),
            );
        }
        let schema = spec.schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
        let table = spec.table.unwrap_or_else(|| DEFAULT_TABLE.to_string());
        for (field, name) in [("schema", &schema), ("table", &table)] {
            if name.is_empty() || name.len() > MAX_IDENTIFIER_BYTES || name.contains('\0') {
                ctx.problem(
                    format!("ef_migrations.{field}"),
                    format!("invalid {field} name `{name}`; use 1 to 63 bytes as the name appears in the database (names are case-sensitive)"),
                );
            }
        }
        if ctx.problem_count() > before {
            return None;
        }
        Some(MigrationsCheck {
            connection: connection?,
            expected,
            qualified_table: format!("{}.{}", quote_identifier(&schema), quote_identifier(&table)),
        })
    }

    /// Reads the newest applied migration and compares it with the expected one.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let session = match self.connection.open(timeout).await {
            Ok(session) => session,
            Err(outcome) => return outcome,
        };
        let table = &self.qualified_table;
        let sql = format!(
            "SELECT (SELECT \"MigrationId\"::text FROM {table} \
                     ORDER BY \"MigrationId\" COLLATE \"C\" DESC LIMIT 1), \
                    (SELECT count(*) FROM {table}), \
                    EXISTS (SELECT 1 FROM {table} WHERE \"MigrationId\"::text = $1)"
        );
        let row = match session.client.query_one(&sql, &[&self.expected]).await {
            Ok(row) => row,
            Err(err) if is_missing_table(&err) => return self.missing_table(),
            Err(err) => return session.query_error(&err, "reading the migration history"),
        };
        let newest: Option<String> = row.get(0);
        let applied: i64 = row.get(1);
        let expected_applied: bool = row.get(2);
        self.evaluate(newest, applied, expected_applied)
            .with_value(applied as f64)
    }

    /// Reports a missing history table as a failure, not an error, because the database was
    /// evaluated: either no migration ran, or the check names the wrong schema or table.
    fn missing_table(&self) -> Outcome {
        Outcome::fail(
            Reason::TableMissing,
            format!(
                "table {} does not exist in database `{}`, so no migration is applied; expected `{}`; run the migrations, or correct `schema` and `table`",
                self.qualified_table,
                self.connection.database(),
                self.expected
            ),
        )
    }

    fn evaluate(&self, newest: Option<String>, applied: i64, expected_applied: bool) -> Outcome {
        let expected = &self.expected;
        let Some(newest) = newest else {
            return Outcome::fail(
                Reason::MigrationPending,
                format!(
                    "{} is empty, so no migration is applied; expected `{expected}`",
                    self.qualified_table
                ),
            );
        };
        if &newest == expected {
            return Outcome::pass(format!(
                "newest migration is `{newest}` as expected ({applied} applied)"
            ));
        }
        if expected_applied {
            return Outcome::fail(
                Reason::MigrationMismatch,
                format!("applied `{newest}` is newer than expected `{expected}`; the database is ahead of this release, so deploy the release that added `{newest}` or roll the migrations back"),
            );
        }
        if newest.as_bytes() < expected.as_bytes() {
            return Outcome::fail(
                Reason::MigrationPending,
                format!("applied `{newest}`, expected `{expected}`; apply the pending migrations before the release goes live"),
            );
        }
        if newest.get(..TIMESTAMP_DIGITS) == expected.get(..TIMESTAMP_DIGITS) {
            return Outcome::fail(
                Reason::MigrationMismatch,
                format!("applied `{newest}` has the timestamp of expected `{expected}` but another name; check the spelling of `expected_migration`"),
            );
        }
        Outcome::fail(
            Reason::MigrationMismatch,
            format!("applied `{newest}`, expected `{expected}`, which is not in the history; the database has migrations this release does not know"),
        )
    }
}

/// The length of the timestamp that starts every migration id EF Core generates.
const TIMESTAMP_DIGITS: usize = 14;

/// Tells whether `id` starts like an EF Core migration id: 14 digits, `_` and a name.
fn has_timestamp(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() > TIMESTAMP_DIGITS + 1
        && bytes[..TIMESTAMP_DIGITS].iter().all(u8::is_ascii_digit)
        && bytes[TIMESTAMP_DIGITS] == b'_'
}

fn is_missing_table(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME
    })
}

/// Quotes an identifier for SQL, doubling embedded quotes.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_ids_need_a_timestamp() {
        assert!(has_timestamp("20240301120000_AddOrders"));
        assert!(!has_timestamp("AddOrders"));
        assert!(!has_timestamp("20240301120000_"));
        assert!(!has_timestamp("2024030112000_AddOrders"));
        assert!(!has_timestamp("20240301120000AddOrders"));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(
            quote_identifier("__EFMigrationsHistory"),
            "\"__EFMigrationsHistory\""
        );
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
