//! PostgreSQL kinds against real PostgreSQL servers started by the tests.

use std::collections::HashMap;
use std::time::Duration;

use readiness_exporter::check::{Reason, Status};
use readiness_exporter::config::{self, ConfigError};

use crate::postgres_support::{
    check, postgres_bin, run_checks, shared_primary, shared_replica_set, start_cluster,
    PrimaryOptions, APP_PASSWORD, MIGRATIONS, STANDBY_NAME, WRONG_PASSWORD,
};
use crate::support;

/// Returns the PostgreSQL binary directory, or returns from the test after printing why.
macro_rules! require_postgres {
    () => {
        match postgres_bin() {
            Some(bin) => bin,
            None => return,
        }
    };
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[tokio::test]
async fn reachable_passes_over_verified_tls() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let monitor = cluster.monitor();
    let ran = run_checks(&check(
        "db_up",
        "postgres_reachable",
        &[
            ("connection", &monitor),
            ("require_tls", "true"),
            ("min_server_version", "\"14\""),
        ],
    ))
    .await;

    let outcome = ran.outcome("db_up");
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert!(
        outcome.message.contains("over TLSv1."),
        "{}",
        outcome.message
    );
    assert!(outcome.value.is_some_and(|seconds| seconds >= 0.0));
    assert_eq!(
        ran.lines("readiness_postgres_round_trip_seconds{check=\"db_up\"}")
            .len(),
        1
    );
    assert!(ran.value("readiness_postgres_server_version{check=\"db_up\"}") >= 140_000.0);
    assert_eq!(ran.value("readiness_check_success{check=\"db_up\"}"), 1.0);
}

#[tokio::test]
async fn sslmodes_verify_chain_and_name() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let other_ca = support::TestCa::new("unrelated CA");
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca_file = other_ca.write(other_dir.path());
    let primary = &cluster.primary;
    let by_ip = |sslmode| cluster.connection_to(primary, "127.0.0.1", "app", APP_PASSWORD, sslmode);
    let untrusted = cluster
        .connection_to(primary, "localhost", "app", APP_PASSWORD, "verify-full")
        .replace(
            &cluster.client.ca_file.display().to_string(),
            &other_ca_file.display().to_string(),
        );
    let checks = [
        check(
            "full_by_ip",
            "postgres_reachable",
            &[("connection", &by_ip("verify-full"))],
        ),
        check(
            "ca_by_ip",
            "postgres_reachable",
            &[("connection", &by_ip("verify-ca"))],
        ),
        check(
            "require_by_ip",
            "postgres_reachable",
            &[("connection", &by_ip("require"))],
        ),
        check(
            "untrusted",
            "postgres_reachable",
            &[("connection", &untrusted)],
        ),
    ];
    let ran = run_checks(&checks.concat()).await;

    // The certificate names only `localhost`, so verify-full to the IP address must fail.
    let full = ran.outcome("full_by_ip");
    assert_eq!(full.status, Status::Error, "{}", full.message);
    assert_eq!(full.reason, Reason::TlsError, "{}", full.message);
    assert!(full.message.contains("verify-full"), "{}", full.message);
    assert!(
        full.message.contains("not valid for name \"127.0.0.1\""),
        "{}",
        full.message
    );
    assert!(
        full.message
            .contains("set `connection.host` to a name the certificate holds"),
        "{}",
        full.message
    );

    let ca = ran.outcome("ca_by_ip");
    assert_eq!(ca.status, Status::Pass, "{}", ca.message);
    let require = ran.outcome("require_by_ip");
    assert_eq!(require.status, Status::Pass, "{}", require.message);

    let untrusted = ran.outcome("untrusted");
    assert_eq!(untrusted.reason, Reason::TlsError, "{}", untrusted.message);
    assert!(
        untrusted.message.contains("UnknownIssuer"),
        "{}",
        untrusted.message
    );
    assert!(
        untrusted.message.contains(&format!(
            "not signed by a CA in the CA file `{}`",
            other_ca_file.display()
        )),
        "{}",
        untrusted.message
    );
    assert_eq!(
        ran.value("readiness_check_failures_total{check=\"untrusted\",reason=\"tls_error\"}"),
        1.0
    );
}

#[tokio::test]
async fn wrong_password_is_unauthorized() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let wrong = cluster.connection("app", WRONG_PASSWORD);
    let ran = run_checks(&check(
        "login",
        "postgres_reachable",
        &[("connection", &wrong)],
    ))
    .await;

    let outcome = ran.outcome("login");
    assert_eq!(outcome.status, Status::Error, "{}", outcome.message);
    assert_eq!(outcome.reason, Reason::Unauthorized, "{}", outcome.message);
    assert!(
        outcome.message.contains("password authentication failed"),
        "{}",
        outcome.message
    );
    assert!(!outcome.message.contains(WRONG_PASSWORD));
    assert_eq!(
        ran.value("readiness_check_failures_total{check=\"login\",reason=\"unauthorized\"}"),
        1.0
    );
}

#[tokio::test]
async fn old_server_version_fails() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let monitor = cluster.monitor();
    let ran = run_checks(&check(
        "version",
        "postgres_reachable",
        &[("connection", &monitor), ("min_server_version", "\"99.1\"")],
    ))
    .await;

    let outcome = ran.outcome("version");
    assert_eq!(outcome.status, Status::Fail, "{}", outcome.message);
    assert_eq!(outcome.reason, Reason::VersionTooOld);
    assert!(
        outcome.message.contains("older than the minimum 99.1"),
        "{}",
        outcome.message
    );
    assert!(ran.value("readiness_postgres_server_version{check=\"version\"}") < 990_001.0);
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let port = support::closed_port().await;
    let connection = format!("{{ host: 127.0.0.1, port: {port}, user: app, sslmode: disable }}");
    let ran = run_checks(&check(
        "down",
        "postgres_reachable",
        &[("connection", &connection)],
    ))
    .await;

    let outcome = ran.outcome("down");
    assert_eq!(outcome.status, Status::Error);
    assert_eq!(
        outcome.reason,
        Reason::ConnectionRefused,
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains(&format!("127.0.0.1:{port}")),
        "{}",
        outcome.message
    );
    assert_eq!(ran.value("readiness_check_success{check=\"down\"}"), 0.0);
}

#[tokio::test]
async fn oversized_server_message_stops_read() {
    // tokio-postgres buffers each message whole, and this server announces a message of almost
    // 2 GiB and streams it. The session used to buffer it until the timeout.
    let server = support::tcp_server(|mut stream| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let length = stream.read_u32().await.unwrap_or(8);
        let mut startup = vec![0u8; (length as usize).saturating_sub(4).min(65536)];
        let _ = stream.read_exact(&mut startup).await;
        let mut header = b"N".to_vec();
        header.extend_from_slice(&0x7fff_fff0_u32.to_be_bytes());
        let piece = vec![b'x'; 64 * 1024];
        if stream.write_all(&header).await.is_ok() {
            for _ in 0..(1u32 << 15) {
                if stream.write_all(&piece).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let connection = format!(
        "{{ host: 127.0.0.1, port: {}, user: app, sslmode: disable }}",
        server.addr.port()
    );

    let ran = run_checks(&check(
        "flooded",
        "postgres_reachable",
        &[("connection", &connection)],
    ))
    .await;

    let outcome = ran.outcome("flooded");
    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::BodyTooLarge, "{}", outcome.message);
    assert!(
        outcome
            .message
            .contains("the server sent more than 16777216 bytes"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn http_server_on_the_port_is_named() {
    // A web server replies to the startup message with an HTTP error page and closes.
    let server = support::tcp_server(|mut stream| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut request = vec![0u8; 1024];
        let _ = stream.read(&mut request).await;
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    })
    .await;
    let port = server.addr.port();
    let plain = format!("{{ host: 127.0.0.1, port: {port}, user: app, sslmode: disable }}");
    let tls = format!("{{ host: 127.0.0.1, port: {port}, user: app, sslmode: require }}");
    let checks = [
        check("plain", "postgres_reachable", &[("connection", &plain)]),
        check("tls", "postgres_reachable", &[("connection", &tls)]),
    ];
    let ran = run_checks(&checks.concat()).await;

    let plain = ran.outcome("plain");
    assert_eq!(plain.status, Status::Error, "{}", plain.message);
    assert!(
        plain
            .message
            .contains("does not speak the PostgreSQL protocol, so check the port"),
        "{}",
        plain.message
    );
    let tls = ran.outcome("tls");
    assert_eq!(tls.status, Status::Error, "{}", tls.message);
    assert!(
        tls.message.contains("check that the port is PostgreSQL's"),
        "{}",
        tls.message
    );
}

#[tokio::test]
async fn silent_server_is_named_before_the_timeout() {
    // The server accepts the connection, reads the startup message and never replies.
    let server = support::tcp_server(|mut stream| async move {
        use tokio::io::AsyncReadExt;
        let mut request = vec![0u8; 1024];
        while matches!(stream.read(&mut request).await, Ok(read) if read > 0) {}
    })
    .await;
    let connection = format!(
        "{{ host: 127.0.0.1, port: {}, user: app, sslmode: disable }}",
        server.addr.port()
    );
    let item = format!(
        "{}    timeout: 5s\n",
        check(
            "silent",
            "postgres_reachable",
            &[("connection", &connection)]
        )
    );
    let ran = run_checks(&item).await;

    let outcome = ran.outcome("silent");
    assert_eq!(outcome.reason, Reason::Timeout, "{}", outcome.message);
    assert!(
        outcome.message.contains(&format!(
            "127.0.0.1:{} accepted the connection but the TLS handshake and login did not finish",
            server.addr.port()
        )),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn missing_password_names_the_key() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let with_password = cluster.connection("app", APP_PASSWORD);
    let start = with_password
        .find("password: {")
        .expect("connection has a password");
    let end = start + with_password[start..].find("}, ").expect("password ends") + 3;
    let without = format!("{}{}", &with_password[..start], &with_password[end..]);
    let ran = run_checks(&check(
        "no_password",
        "postgres_reachable",
        &[("connection", &without)],
    ))
    .await;

    let outcome = ran.outcome("no_password");
    assert_eq!(outcome.reason, Reason::Unauthorized, "{}", outcome.message);
    assert!(
        outcome.message.contains("`connection.password` is not set"),
        "{}",
        outcome.message
    );
}

fn problems(checks: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = support::write_config(dir.path(), &format!("checks:\n{checks}"));
    match config::load_with_env(&path, Some(HashMap::new())) {
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("expected problems, got {other}"),
        Ok(_) => panic!("configuration loaded although it is invalid"),
    }
}

#[test]
fn invalid_connection_settings_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::TestCa::new("config test CA").write(dir.path());
    let ca = ca.display();
    let checks = [
        check(
            "mode",
            "postgres_reachable",
            &[("connection", "{ host: db, user: u, sslmode: prefer }")],
        ),
        check(
            "ca_missing",
            "postgres_reachable",
            &[("connection", "{ host: db, user: u, sslmode: verify-ca }")],
        ),
        check(
            "ca_unused",
            "postgres_reachable",
            &[(
                "connection",
                &format!("{{ host: db, user: u, sslmode: require, ca_file: {ca} }}"),
            )],
        ),
        check(
            "plain_tls",
            "postgres_reachable",
            &[
                ("connection", "{ host: db, user: u, sslmode: disable }"),
                ("require_tls", "true"),
            ],
        ),
        check(
            "socket",
            "postgres_reachable",
            &[("connection", "{ host: /run/postgresql, user: u }")],
        ),
        check(
            "host_port",
            "postgres_reachable",
            &[("connection", "{ host: \"db:5433\", user: u }")],
        ),
        check(
            "url",
            "postgres_reachable",
            &[(
                "connection",
                "{ host: \"postgres://db:5433/orders\", user: u }",
            )],
        ),
        check(
            "ipv6",
            "postgres_reachable",
            &[("connection", "{ host: \"::1\", user: u }")],
        ),
        check(
            "version",
            "postgres_reachable",
            &[
                ("connection", "{ host: db, user: u }"),
                ("min_server_version", "fifteen"),
            ],
        ),
        check(
            "unquoted",
            "postgres_reachable",
            &[
                ("connection", "{ host: db, user: u }"),
                ("min_server_version", "15.20"),
            ],
        ),
    ];
    let found = problems(&checks.concat());
    let expected = [
        "check `mode`, field `postgres_reachable.connection.sslmode`: unknown sslmode `prefer`; use disable, require, verify-ca or verify-full",
        "check `ca_missing`, field `postgres_reachable.connection.ca_file`: sslmode `verify-ca` needs `ca_file`",
        "check `ca_unused`, field `postgres_reachable.connection.ca_file`: `ca_file` has no effect with sslmode `require`",
        "check `plain_tls`, field `postgres_reachable.require_tls`: `require_tls: true` cannot pass with sslmode `disable`",
        "check `socket`, field `postgres_reachable.connection.host`: host `/run/postgresql` is a Unix socket directory",
        "check `host_port`, field `postgres_reachable.connection.host`: host `db:5433` contains a port; write the host name alone and the port in `port`",
        "check `url`, field `postgres_reachable.connection.host`: host `postgres://db:5433/orders` is a URL",
        "check `version`, field `postgres_reachable.min_server_version`: invalid version `fifteen`",
        "check `unquoted`, field `postgres_reachable.min_server_version`: version `15.2` is a number, and YAML drops its trailing zeros",
    ];
    for text in expected {
        assert!(
            found.iter().any(|problem| problem.contains(text)),
            "missing problem `{text}` in:\n{}",
            found.join("\n")
        );
    }
    assert_eq!(found.len(), expected.len(), "{}", found.join("\n"));
}

#[test]
fn invalid_kind_settings_rejected() {
    let connection = ("connection", "{ host: db, user: u, sslmode: disable }");
    let checks = [
        check(
            "no_threshold",
            "postgres_query",
            &[connection, ("sql", "SELECT 1")],
        ),
        check(
            "mixed",
            "postgres_query",
            &[
                connection,
                ("sql", "SELECT 1"),
                ("min", "1"),
                ("max_age", "1h"),
            ],
        ),
        check(
            "policy",
            "postgres_query",
            &[
                connection,
                ("sql", "SELECT 1"),
                ("max", "1"),
                ("on_null", "ignore"),
            ],
        ),
        check(
            "role",
            "postgres_replication",
            &[connection, ("role", "standby"), ("min_standbys", "2")],
        ),
        check(
            "sync",
            "postgres_replication",
            &[connection, ("min_standbys", "1"), ("min_synchronous", "2")],
        ),
        check(
            "empty_id",
            "ef_migrations",
            &[connection, ("expected_migration", "\"\"")],
        ),
        check(
            "name_only",
            "ef_migrations",
            &[connection, ("expected_migration", "AddInvoices")],
        ),
    ];
    let found = problems(&checks.concat());
    let expected = [
        "check `no_threshold`, field `postgres_query`: no threshold",
        "check `mixed`, field `postgres_query.max_age`: `max_age` compares a timestamp",
        "check `policy`, field `postgres_query.on_null`: unknown policy `ignore`; use pass, fail or error",
        "check `role`, field `postgres_replication.min_standbys`: `min_standbys` applies to the primary only",
        "check `sync`, field `postgres_replication.min_synchronous`: `min_synchronous` (2) is larger than `min_standbys` (1)",
        "check `empty_id`, field `ef_migrations.expected_migration`: expected migration is empty",
        "check `name_only`, field `ef_migrations.expected_migration`: `AddInvoices` is not a migration id",
    ];
    for text in expected {
        assert!(
            found.iter().any(|problem| problem.contains(text)),
            "missing problem `{text}` in:\n{}",
            found.join("\n")
        );
    }
    assert_eq!(found.len(), expected.len(), "{}", found.join("\n"));
}

#[tokio::test]
async fn caught_up_standby_passes_both_sides() {
    let bin = require_postgres!();
    let cluster = shared_replica_set(&bin);
    // PostgreSQL clears the lag columns once an idle standby has caught up.
    cluster.primary.wait_for(
        "postgres",
        &format!("SELECT replay_lag IS NULL FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"),
        Duration::from_secs(60),
    );
    let monitor = cluster.monitor();
    let standby = cluster.standby_connection();
    let expected = format!("[{STANDBY_NAME}]");
    let checks = [
        check(
            "primary",
            "postgres_replication",
            &[
                ("connection", &monitor),
                ("min_standbys", "1"),
                ("expected_standbys", &expected),
                ("max_lag_bytes", "16777216"),
                ("max_lag", "30s"),
            ],
        ),
        check(
            "standby",
            "postgres_replication",
            &[
                ("connection", &standby),
                ("role", "standby"),
                ("max_lag_bytes", "16777216"),
                ("max_lag", "30s"),
            ],
        ),
    ];
    let ran = run_checks(&checks.concat()).await;

    let primary = ran.outcome("primary");
    assert_eq!(primary.status, Status::Pass, "{}", primary.message);
    assert!(
        primary.message.contains(STANDBY_NAME),
        "{}",
        primary.message
    );
    assert_eq!(
        ran.value("readiness_postgres_standbys{check=\"primary\"}"),
        1.0
    );
    assert_eq!(
        ran.value("readiness_postgres_synchronous_standbys{check=\"primary\"}"),
        0.0
    );
    let seconds = format!("readiness_postgres_replication_lag_seconds{{check=\"primary\",standby=\"{STANDBY_NAME}\"}}");
    assert_eq!(ran.value(&seconds), 0.0);
    let bytes = format!(
        "readiness_postgres_replication_lag_bytes{{check=\"primary\",standby=\"{STANDBY_NAME}\"}}"
    );
    assert!(ran.value(&bytes) < 16_777_216.0);

    let standby = ran.outcome("standby");
    assert_eq!(standby.status, Status::Pass, "{}", standby.message);
    assert_eq!(
        ran.value("readiness_postgres_wal_receiver_streaming{check=\"standby\"}"),
        1.0
    );
    assert_eq!(
        ran.lines("readiness_postgres_replay_lag_bytes{check=\"standby\"}")
            .len(),
        1
    );
}

#[tokio::test]
async fn wal_client_without_replay_not_counted() {
    let bin = require_postgres!();
    let cluster = shared_replica_set(&bin);
    assert_eq!(
        cluster
            .primary
            .psql("postgres", "SELECT count(*) FROM pg_stat_replication"),
        "2",
        "the standby and pg_receivewal are connected"
    );
    let monitor = cluster.monitor();
    let ran = run_checks(&check(
        "two_standbys",
        "postgres_replication",
        &[("connection", &monitor), ("min_standbys", "2")],
    ))
    .await;

    let outcome = ran.outcome("two_standbys");
    assert_eq!(outcome.status, Status::Fail, "{}", outcome.message);
    assert_eq!(outcome.reason, Reason::TooFewStandbys);
    assert!(
        outcome
            .message
            .contains("1 streaming standby(s), at least 2 required"),
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .message
            .contains("1 other WAL client(s) not counted"),
        "{}",
        outcome.message
    );
    assert_eq!(
        ran.value("readiness_postgres_standbys{check=\"two_standbys\"}"),
        1.0
    );
    assert_eq!(
        ran.lines("readiness_postgres_replication_lag_bytes{check=\"two_standbys\"")
            .len(),
        1
    );
}

#[tokio::test]
async fn replica_set_requirements_fail_with_reasons() {
    let bin = require_postgres!();
    let cluster = shared_replica_set(&bin);
    let monitor = cluster.monitor();
    let standby = cluster.standby_connection();
    let expected = format!("[{STANDBY_NAME}, standby_b]");
    let checks = [
        check(
            "missing",
            "postgres_replication",
            &[("connection", &monitor), ("expected_standbys", &expected)],
        ),
        check(
            "synchronous",
            "postgres_replication",
            &[("connection", &monitor), ("min_synchronous", "1")],
        ),
        check(
            "wrong_role",
            "postgres_replication",
            &[("connection", &standby)],
        ),
        check(
            "standby_archive",
            "postgres_archiving",
            &[("connection", &standby)],
        ),
    ];
    let ran = run_checks(&checks.concat()).await;

    let missing = ran.outcome("missing");
    assert_eq!(
        missing.reason,
        Reason::StandbyMissing,
        "{}",
        missing.message
    );
    assert!(
        missing
            .message
            .contains("expected standby `standby_b` is missing from pg_stat_replication"),
        "{}",
        missing.message
    );
    assert!(!missing
        .message
        .contains(&format!("`{STANDBY_NAME}` is missing")));

    let synchronous = ran.outcome("synchronous");
    assert_eq!(
        synchronous.reason,
        Reason::TooFewStandbys,
        "{}",
        synchronous.message
    );
    assert!(synchronous
        .message
        .contains("0 synchronous standby(s), at least 1 required"));

    let wrong_role = ran.outcome("wrong_role");
    assert_eq!(wrong_role.status, Status::Fail);
    assert_eq!(
        wrong_role.reason,
        Reason::WrongRole,
        "{}",
        wrong_role.message
    );

    let archive = ran.outcome("standby_archive");
    assert_eq!(
        archive.reason,
        Reason::ArchivingDisabled,
        "{}",
        archive.message
    );
    assert!(
        archive.message.contains("archive_mode is off"),
        "{}",
        archive.message
    );
}

#[tokio::test]
async fn lagging_then_disconnected_standby_fails() {
    let bin = require_postgres!();
    let cluster = start_cluster(
        &bin,
        PrimaryOptions {
            archive: false,
            standby: true,
        },
    );
    let primary = &cluster.primary;
    let standby = cluster.standby.as_ref().unwrap();
    let monitor = cluster.monitor();
    let standby_connection = cluster.standby_connection();
    let expected = format!("[{STANDBY_NAME}]");
    let checks = [
        check(
            "primary",
            "postgres_replication",
            &[
                ("connection", &monitor),
                ("expected_standbys", &expected),
                ("max_lag_bytes", "1048576"),
            ],
        ),
        check(
            "standby",
            "postgres_replication",
            &[
                ("connection", &standby_connection),
                ("role", "standby"),
                ("max_lag_bytes", "1048576"),
            ],
        ),
    ]
    .concat();

    // Lagging: the standby receives WAL but does not replay it.
    standby.psql("postgres", "SELECT pg_wal_replay_pause()");
    primary.psql(
        "app",
        "CREATE TABLE filler AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 20000) AS g",
    );
    let written = primary.psql("postgres", "SELECT pg_current_wal_lsn()");
    standby.wait_for(
        "postgres",
        &format!("SELECT pg_last_wal_receive_lsn() >= '{written}'"),
        Duration::from_secs(30),
    );
    let ran = run_checks(&checks).await;

    let lagging = ran.outcome("primary");
    assert_eq!(lagging.status, Status::Fail, "{}", lagging.message);
    assert_eq!(
        lagging.reason,
        Reason::ReplicationLag,
        "{}",
        lagging.message
    );
    assert!(
        lagging.message.contains("more than max_lag_bytes 1.0 MiB"),
        "{}",
        lagging.message
    );
    let bytes = format!(
        "readiness_postgres_replication_lag_bytes{{check=\"primary\",standby=\"{STANDBY_NAME}\"}}"
    );
    assert!(ran.value(&bytes) > 1_048_576.0);

    let backlog = ran.outcome("standby");
    assert_eq!(
        backlog.reason,
        Reason::ReplicationLag,
        "{}",
        backlog.message
    );
    assert!(ran.value("readiness_postgres_replay_lag_bytes{check=\"standby\"}") > 1_048_576.0);
    assert_eq!(
        ran.value("readiness_postgres_wal_receiver_streaming{check=\"standby\"}"),
        1.0
    );

    // Disconnected: without primary_conninfo the standby stops its WAL receiver. The startup
    // process applies the change only while replaying, so replay resumes first.
    standby.psql("postgres", "SELECT pg_wal_replay_resume()");
    standby.psql("postgres", "ALTER SYSTEM SET primary_conninfo = ''");
    standby.psql("postgres", "SELECT pg_reload_conf()");
    standby.wait_for(
        "postgres",
        "SELECT count(*) = 0 FROM pg_stat_wal_receiver",
        Duration::from_secs(30),
    );
    primary.wait_for("postgres", &format!("SELECT count(*) = 0 FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"), Duration::from_secs(30));
    let ran = run_checks(&checks).await;

    let missing = ran.outcome("primary");
    assert_eq!(missing.status, Status::Fail, "{}", missing.message);
    assert_eq!(
        missing.reason,
        Reason::StandbyMissing,
        "{}",
        missing.message
    );
    assert!(
        missing
            .message
            .contains("0 streaming standby(s), at least 1 required"),
        "{}",
        missing.message
    );
    assert_eq!(
        ran.value("readiness_postgres_standbys{check=\"primary\"}"),
        0.0
    );
    assert!(ran
        .lines("readiness_postgres_replication_lag_bytes{check=\"primary\"")
        .is_empty());

    let not_receiving = ran.outcome("standby");
    assert_eq!(
        not_receiving.reason,
        Reason::NotReceiving,
        "{}",
        not_receiving.message
    );
    assert!(
        not_receiving.message.contains("has no WAL receiver"),
        "{}",
        not_receiving.message
    );
    assert_eq!(
        ran.value("readiness_postgres_wal_receiver_streaming{check=\"standby\"}"),
        0.0
    );
}

#[tokio::test]
async fn archiving_from_never_to_failing() {
    let bin = require_postgres!();
    let cluster = start_cluster(
        &bin,
        PrimaryOptions {
            archive: true,
            standby: false,
        },
    );
    let primary = &cluster.primary;
    let monitor = cluster.monitor();
    let checks = [
        check(
            "archive",
            "postgres_archiving",
            &[("connection", &monitor), ("max_age", "1h")],
        ),
        check(
            "archive_strict",
            "postgres_archiving",
            &[("connection", &monitor), ("max_age", "1s")],
        ),
    ]
    .concat();

    // Never: archiving is on, but no WAL segment has been completed yet.
    let ran = run_checks(&checks).await;
    let never = ran.outcome("archive");
    assert_eq!(never.status, Status::Fail, "{}", never.message);
    assert_eq!(never.reason, Reason::NeverArchived, "{}", never.message);
    assert_eq!(never.value, None, "never archived has no age");
    assert!(ran
        .lines("readiness_postgres_archive_last_success_timestamp_seconds")
        .is_empty());
    assert_eq!(
        ran.value("readiness_postgres_archive_failures{check=\"archive\"}"),
        0.0
    );

    // Working: a segment switch is archived into the archive directory.
    primary.psql("app", "CREATE TABLE archived_one (id int)");
    primary.psql("postgres", "SELECT pg_switch_wal()");
    primary.wait_for(
        "postgres",
        "SELECT archived_count >= 1 FROM pg_stat_archiver",
        Duration::from_secs(30),
    );
    primary.wait_for(
        "postgres",
        "SELECT now() - last_archived_time > interval '1.1 seconds' FROM pg_stat_archiver",
        Duration::from_secs(30),
    );
    let ran = run_checks(&checks).await;
    let working = ran.outcome("archive");
    assert_eq!(working.status, Status::Pass, "{}", working.message);
    assert!(std::fs::read_dir(primary.archive_dir()).unwrap().count() >= 1);
    let archived_at =
        ran.value("readiness_postgres_archive_last_success_timestamp_seconds{check=\"archive\"}");
    assert!(archived_at > 1_600_000_000.0);
    let stale = ran.outcome("archive_strict");
    assert_eq!(stale.reason, Reason::TooOld, "{}", stale.message);
    assert!(
        stale.message.contains("longer ago than max_age 1s"),
        "{}",
        stale.message
    );

    // Failing: the next segment cannot be archived.
    primary.psql("postgres", "ALTER SYSTEM SET archive_command = 'false'");
    primary.psql("postgres", "SELECT pg_reload_conf()");
    primary.psql("app", "CREATE TABLE archived_two (id int)");
    primary.psql("postgres", "SELECT pg_switch_wal()");
    primary.wait_for(
        "postgres",
        "SELECT failed_count >= 1 FROM pg_stat_archiver",
        Duration::from_secs(30),
    );
    let ran = run_checks(&checks).await;
    let failing = ran.outcome("archive");
    assert_eq!(failing.status, Status::Fail, "{}", failing.message);
    assert_eq!(
        failing.reason,
        Reason::ArchiveFailing,
        "{}",
        failing.message
    );
    assert!(
        failing.message.contains("after the last success"),
        "{}",
        failing.message
    );
    assert!(ran.value("readiness_postgres_archive_failures{check=\"archive\"}") >= 1.0);
    assert!(
        ran.value("readiness_postgres_archive_last_failure_timestamp_seconds{check=\"archive\"}")
            >= archived_at
    );
}

#[tokio::test]
async fn archiving_needs_no_pg_monitor() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let primary = &cluster.primary;
    // A role that can log in and nothing more: no predefined role, no grant.
    primary.psql(
        "postgres",
        "CREATE ROLE archive_reader LOGIN PASSWORD 'archive-reader-pw-7c3e'",
    );
    for predefined in ["pg_monitor", "pg_read_all_settings", "pg_read_all_stats"] {
        assert_eq!(
            primary.psql(
                "postgres",
                &format!("SELECT pg_has_role('archive_reader', '{predefined}', 'USAGE')"),
            ),
            "f",
            "archive_reader has the privileges of {predefined}"
        );
    }
    primary.psql("app", "CREATE TABLE archived_for_reader (id int)");
    primary.psql("postgres", "SELECT pg_switch_wal()");
    primary.wait_for(
        "postgres",
        "SELECT archived_count >= 1 FROM pg_stat_archiver",
        Duration::from_secs(30),
    );

    let reader = cluster.connection("archive_reader", "archive-reader-pw-7c3e");
    let monitor = cluster.monitor();
    let checks = [
        check(
            "plain_role",
            "postgres_archiving",
            &[("connection", &reader), ("max_age", "1h")],
        ),
        check(
            "monitor_role",
            "postgres_archiving",
            &[("connection", &monitor), ("max_age", "1h")],
        ),
    ]
    .concat();
    let ran = run_checks(&checks).await;

    let plain = ran.outcome("plain_role");
    assert_eq!(plain.status, Status::Pass, "{}", plain.message);
    let monitored = ran.outcome("monitor_role");
    assert_eq!(monitored.status, Status::Pass, "{}", monitored.message);
    // Both roles read the same archiver statistics, so nothing is hidden from the plain role.
    for family in [
        "readiness_postgres_archive_last_success_timestamp_seconds",
        "readiness_postgres_archive_failures",
    ] {
        assert_eq!(
            ran.value(&format!("{family}{{check=\"plain_role\"}}")),
            ran.value(&format!("{family}{{check=\"monitor_role\"}}")),
            "{family}"
        );
    }
}

#[tokio::test]
async fn query_numbers_compare_with_bounds() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let monitor = cluster.monitor();
    let connection = ("connection", monitor.as_str());
    let count_ok = quoted("SELECT count(*) FROM backup_runs WHERE ok");
    let checks = [
        check(
            "count_in_range",
            "postgres_query",
            &[connection, ("sql", &count_ok), ("min", "1"), ("max", "5")],
        ),
        check(
            "count_above",
            "postgres_query",
            &[connection, ("sql", &count_ok), ("max", "1")],
        ),
        check(
            "numeric_below",
            "postgres_query",
            &[
                connection,
                ("sql", "\"SELECT 12.5::numeric(6,2)\""),
                ("min", "20"),
            ],
        ),
        check(
            "float_in_range",
            "postgres_query",
            &[
                connection,
                ("sql", "\"SELECT -0.25::float8;\""),
                ("min", "-1"),
                ("max", "0"),
            ],
        ),
    ];
    let ran = run_checks(&checks.concat()).await;

    let in_range = ran.outcome("count_in_range");
    assert_eq!(in_range.status, Status::Pass, "{}", in_range.message);
    assert_eq!(in_range.value, Some(2.0));
    assert_eq!(
        ran.value("readiness_postgres_query_value{check=\"count_in_range\"}"),
        2.0
    );

    let above = ran.outcome("count_above");
    assert_eq!(above.reason, Reason::ValueOutOfRange, "{}", above.message);
    assert!(
        above.message.contains("returned 2, above the maximum 1"),
        "{}",
        above.message
    );

    let below = ran.outcome("numeric_below");
    assert_eq!(below.reason, Reason::ValueOutOfRange, "{}", below.message);
    assert!(
        below
            .message
            .contains("returned 12.5, below the minimum 20"),
        "{}",
        below.message
    );
    assert_eq!(
        ran.value("readiness_postgres_query_value{check=\"numeric_below\"}"),
        12.5
    );

    let float = ran.outcome("float_in_range");
    assert_eq!(float.status, Status::Pass, "{}", float.message);
    assert_eq!(float.value, Some(-0.25));
}

#[tokio::test]
async fn query_timestamp_compares_with_max_age() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let monitor = cluster.monitor();
    let connection = ("connection", monitor.as_str());
    let last_backup = quoted("SELECT max(finished_at) FROM backup_runs WHERE ok");
    let checks = [
        check(
            "backup_fresh",
            "postgres_query",
            &[connection, ("sql", &last_backup), ("max_age", "26h")],
        ),
        check(
            "backup_stale",
            "postgres_query",
            &[connection, ("sql", &last_backup), ("max_age", "90m")],
        ),
        check(
            "number_for_age",
            "postgres_query",
            &[connection, ("sql", "\"SELECT 1\""), ("max_age", "1h")],
        ),
    ];
    let ran = run_checks(&checks.concat()).await;

    let fresh = ran.outcome("backup_fresh");
    assert_eq!(fresh.status, Status::Pass, "{}", fresh.message);
    let age = fresh.value.unwrap();
    assert!((7_000.0..7_400.0).contains(&age), "age {age}");
    let stamp = ran.value("readiness_postgres_query_timestamp_seconds{check=\"backup_fresh\"}");
    assert!(stamp > 1_600_000_000.0);

    let stale = ran.outcome("backup_stale");
    assert_eq!(stale.status, Status::Fail, "{}", stale.message);
    assert_eq!(stale.reason, Reason::TooOld);
    assert!(
        stale.message.contains("older than max_age 1h 30m"),
        "{}",
        stale.message
    );

    let mismatch = ran.outcome("number_for_age");
    assert_eq!(mismatch.status, Status::Error);
    assert_eq!(
        mismatch.reason,
        Reason::InvalidResponse,
        "{}",
        mismatch.message
    );
}

#[tokio::test]
async fn query_empty_and_null_follow_policy() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let monitor = cluster.monitor();
    let connection = ("connection", monitor.as_str());
    let empty = ("sql", "\"SELECT finished_at FROM backup_runs WHERE false\"");
    let null = (
        "sql",
        "\"SELECT max(finished_at) FROM backup_runs WHERE finished_at > now()\"",
    );
    let checks = [
        check(
            "empty_default",
            "postgres_query",
            &[connection, empty, ("max_age", "1h")],
        ),
        check(
            "empty_pass",
            "postgres_query",
            &[connection, empty, ("max_age", "1h"), ("on_empty", "pass")],
        ),
        check(
            "null_default",
            "postgres_query",
            &[connection, null, ("max_age", "1h")],
        ),
        check(
            "null_error",
            "postgres_query",
            &[connection, null, ("max_age", "1h"), ("on_null", "error")],
        ),
        check(
            "two_rows",
            "postgres_query",
            &[
                connection,
                ("sql", "\"SELECT 1 UNION ALL SELECT 2\""),
                ("max", "5"),
            ],
        ),
        check(
            "boolean",
            "postgres_query",
            &[connection, ("sql", "\"SELECT true\""), ("max", "5")],
        ),
        check(
            "interval",
            "postgres_query",
            &[
                connection,
                ("sql", "\"SELECT interval '5 minutes'\""),
                ("max", "5"),
            ],
        ),
    ];
    let ran = run_checks(&checks.concat()).await;

    let empty_default = ran.outcome("empty_default");
    assert_eq!(empty_default.status, Status::Fail);
    assert_eq!(empty_default.reason, Reason::EmptyResult);
    assert_eq!(empty_default.value, None);
    assert_eq!(ran.outcome("empty_pass").status, Status::Pass);

    let null_default = ran.outcome("null_default");
    assert_eq!(null_default.status, Status::Fail);
    assert_eq!(null_default.reason, Reason::NullValue);
    assert!(ran
        .lines("readiness_postgres_query_timestamp_seconds{check=\"null_default\"}")
        .is_empty());
    let null_error = ran.outcome("null_error");
    assert_eq!(null_error.status, Status::Error);
    assert_eq!(null_error.reason, Reason::NullValue);

    let two_rows = ran.outcome("two_rows");
    assert_eq!(two_rows.status, Status::Error);
    assert!(
        two_rows.message.contains("returned 2 rows"),
        "{}",
        two_rows.message
    );

    // The advice for each type is SQL that works for it.
    let boolean = ran.outcome("boolean");
    assert_eq!(
        boolean.reason,
        Reason::InvalidResponse,
        "{}",
        boolean.message
    );
    assert!(boolean.message.contains("`::int`"), "{}", boolean.message);
    let interval = ran.outcome("interval");
    assert_eq!(
        interval.reason,
        Reason::InvalidResponse,
        "{}",
        interval.message
    );
    assert!(
        interval.message.contains("extract(epoch from"),
        "{}",
        interval.message
    );
}

#[tokio::test]
async fn query_is_read_only_and_bounded() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let app = cluster.connection("app", APP_PASSWORD);
    let with_timeout = format!(
        "{}, statement_timeout: 300ms }}",
        app.strip_suffix(" }").unwrap()
    );
    let insert = quoted(
        "WITH added AS (INSERT INTO backup_runs VALUES (now(), true) RETURNING 1) SELECT count(*) FROM added",
    );
    let checks = [
        check(
            "write",
            "postgres_query",
            &[("connection", &app), ("sql", &insert), ("max", "5")],
        ),
        check(
            "slow",
            "postgres_query",
            &[
                ("connection", &with_timeout),
                ("sql", "\"SELECT count(*) FROM pg_sleep(5)\""),
                ("max", "5"),
            ],
        ),
        check(
            "bad_cast",
            "postgres_query",
            &[
                ("connection", &app),
                ("sql", "\"SELECT 'row-value-4411'::int\""),
                ("max", "5"),
            ],
        ),
        // Without `statement_timeout` the server still cancels the query before the check's
        // own timeout, so the message names the query.
        format!(
            "{}    timeout: 5s\n",
            check(
                "slow_default",
                "postgres_query",
                &[
                    ("connection", &app),
                    ("sql", "\"SELECT count(*) FROM pg_sleep(10)\""),
                    ("max", "5"),
                ],
            )
        ),
    ];
    let ran = run_checks(&checks.concat()).await;

    let write = ran.outcome("write");
    assert_eq!(write.status, Status::Error);
    assert_eq!(write.reason, Reason::QueryFailed, "{}", write.message);
    assert!(
        write.message.contains("read-only transaction"),
        "{}",
        write.message
    );
    assert_eq!(
        cluster
            .primary
            .psql("app", "SELECT count(*) FROM backup_runs"),
        "3"
    );

    let slow = ran.outcome("slow");
    assert_eq!(slow.reason, Reason::Timeout, "{}", slow.message);
    assert!(
        slow.message.contains("statement timeout of 300ms"),
        "{}",
        slow.message
    );

    let slow_default = ran.outcome("slow_default");
    assert_eq!(
        slow_default.reason,
        Reason::Timeout,
        "{}",
        slow_default.message
    );
    assert!(
        slow_default
            .message
            .contains("was cancelled after the statement timeout"),
        "{}",
        slow_default.message
    );

    let bad_cast = ran.outcome("bad_cast");
    assert_eq!(bad_cast.reason, Reason::QueryFailed, "{}", bad_cast.message);
    assert!(
        bad_cast.message.contains("SQLSTATE 22P02"),
        "{}",
        bad_cast.message
    );
    assert!(
        !bad_cast.message.contains("row-value-4411"),
        "{}",
        bad_cast.message
    );
}

#[tokio::test]
async fn ef_migrations_compare_newest_id() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let app = cluster.connection("app", APP_PASSWORD);
    let connection = ("connection", app.as_str());
    let ef = ("schema", "ef");
    let pending_id = "20240401080000_AddRefunds";
    let checks = [
        check(
            "applied",
            "ef_migrations",
            &[connection, ef, ("expected_migration", MIGRATIONS[2])],
        ),
        check(
            "pending",
            "ef_migrations",
            &[connection, ef, ("expected_migration", pending_id)],
        ),
        check(
            "ahead",
            "ef_migrations",
            &[connection, ef, ("expected_migration", MIGRATIONS[1])],
        ),
        check(
            "unknown",
            "ef_migrations",
            &[
                connection,
                ef,
                ("expected_migration", "20230101000000_Legacy"),
            ],
        ),
        check(
            "misspelled",
            "ef_migrations",
            &[
                connection,
                ef,
                ("expected_migration", "20240301120000_AddInvoice"),
            ],
        ),
        check(
            "missing",
            "ef_migrations",
            &[connection, ("expected_migration", MIGRATIONS[2])],
        ),
        check(
            "empty",
            "ef_migrations",
            &[
                connection,
                ef,
                ("table", "empty_history"),
                ("expected_migration", MIGRATIONS[0]),
            ],
        ),
    ];
    let ran = run_checks(&checks.concat()).await;

    let applied = ran.outcome("applied");
    assert_eq!(applied.status, Status::Pass, "{}", applied.message);
    assert_eq!(applied.value, Some(3.0));

    let pending = ran.outcome("pending");
    assert_eq!(
        pending.reason,
        Reason::MigrationPending,
        "{}",
        pending.message
    );
    assert!(
        pending.message.contains(MIGRATIONS[2]),
        "{}",
        pending.message
    );
    assert!(pending.message.contains(pending_id), "{}", pending.message);

    let ahead = ran.outcome("ahead");
    assert_eq!(ahead.reason, Reason::MigrationMismatch, "{}", ahead.message);
    assert!(
        ahead.message.contains("is newer than expected"),
        "{}",
        ahead.message
    );

    let unknown = ran.outcome("unknown");
    assert_eq!(
        unknown.reason,
        Reason::MigrationMismatch,
        "{}",
        unknown.message
    );
    assert!(
        unknown.message.contains("not in the history"),
        "{}",
        unknown.message
    );

    let misspelled = ran.outcome("misspelled");
    assert_eq!(
        misspelled.reason,
        Reason::MigrationMismatch,
        "{}",
        misspelled.message
    );
    assert!(
        misspelled
            .message
            .contains("check the spelling of `expected_migration`"),
        "{}",
        misspelled.message
    );

    let missing = ran.outcome("missing");
    assert_eq!(missing.status, Status::Fail, "{}", missing.message);
    assert_eq!(missing.reason, Reason::TableMissing, "{}", missing.message);
    assert!(
        missing
            .message
            .contains("\"public\".\"__EFMigrationsHistory\""),
        "{}",
        missing.message
    );
    assert!(
        missing.message.contains(MIGRATIONS[2]),
        "{}",
        missing.message
    );

    let empty = ran.outcome("empty");
    assert_eq!(empty.reason, Reason::MigrationPending, "{}", empty.message);
    assert!(
        empty.message.contains("no migration is applied"),
        "{}",
        empty.message
    );
    assert_eq!(
        ran.value("readiness_check_failures_total{check=\"missing\",reason=\"table_missing\"}"),
        1.0
    );
}

#[tokio::test]
async fn password_never_appears_in_outputs() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let good = cluster.connection("app", APP_PASSWORD);
    let wrong = cluster.connection("app", WRONG_PASSWORD);
    let wrong_tls = cluster.connection_to(
        &cluster.primary,
        "127.0.0.1",
        "app",
        APP_PASSWORD,
        "verify-full",
    );
    let checks = [
        check("good_login", "postgres_reachable", &[("connection", &good)]),
        check(
            "wrong_login",
            "postgres_reachable",
            &[("connection", &wrong)],
        ),
        check(
            "wrong_tls",
            "postgres_reachable",
            &[("connection", &wrong_tls)],
        ),
        check(
            "bad_query",
            "postgres_query",
            &[
                ("connection", &good),
                ("sql", "\"SELECT nope\""),
                ("max", "1"),
            ],
        ),
        check(
            "migrations",
            "ef_migrations",
            &[
                ("connection", &wrong),
                ("expected_migration", MIGRATIONS[0]),
            ],
        ),
    ];
    let exporter = support::start_exporter(&format!(
        "global:\n  interval: 60s\n  timeout: 15s\n  jitter: 100ms\nchecks:\n{}",
        checks.concat()
    ))
    .await;
    exporter.wait_ready().await;

    let entries = exporter.exporter.state().entries();
    let statuses: Vec<(String, Status)> = entries
        .iter()
        .map(|entry| {
            (
                entry.def.id.clone(),
                entry.last.as_ref().unwrap().outcome.status,
            )
        })
        .collect();
    assert!(
        statuses.contains(&("good_login".to_string(), Status::Pass)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("wrong_login".to_string(), Status::Error)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("wrong_tls".to_string(), Status::Error)),
        "{statuses:?}"
    );

    let mut outputs = vec![format!("{entries:?}")];
    for entry in &entries {
        outputs.push(entry.last.as_ref().unwrap().outcome.message.clone());
    }
    for path in ["/metrics", "/api/v1/checks", "/", "/api/v1/gate"] {
        outputs.push(support::get(&exporter.url(path)).await.2);
    }
    for entry in &entries {
        outputs.push(
            support::get(&exporter.url(&format!("/api/v1/checks/{}", entry.def.id)))
                .await
                .2,
        );
    }
    for output in &outputs {
        assert!(
            !output.contains(APP_PASSWORD),
            "password in output:\n{output}"
        );
        assert!(
            !output.contains(WRONG_PASSWORD),
            "wrong password in output:\n{output}"
        );
    }
}

#[test]
fn database_example_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/database.yaml");
    let config = config::load_with_env(&path, Some(HashMap::new()))
        .unwrap_or_else(|err| panic!("examples/database.yaml is invalid: {err}"));
    let mut kinds: Vec<&str> = config
        .checks
        .iter()
        .map(|check| check.kind.name())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "ef_migrations",
            "postgres_archiving",
            "postgres_query",
            "postgres_reachable",
            "postgres_replication"
        ]
    );
}

/// Starts a proxy on 127.0.0.1 that accepts PostgreSQL's TLS request from the client and
/// forwards the decrypted session to `upstream` in plain text, as a misconfigured TLS
/// terminator would.
async fn tls_terminating_proxy(upstream: u16) -> support::TestServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let leaf = support::TestCa::new("proxy CA").valid_leaf(&["localhost"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(leaf.server_config(&[]));
    support::tcp_server(move |mut stream| {
        let acceptor = acceptor.clone();
        async move {
            // SSLRequest: length 8, then the request code 80877103.
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).await.is_err() {
                return;
            }
            if stream.write_all(b"S").await.is_err() {
                return;
            }
            let Ok(mut client) = acceptor.accept(stream).await else {
                return;
            };
            let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
            else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
    })
    .await
}

#[tokio::test]
async fn plaintext_hop_fails_require_tls() {
    let bin = require_postgres!();
    let cluster = shared_primary(&bin);
    let proxy = tls_terminating_proxy(cluster.primary.port).await;
    let through_proxy = cluster
        .connection_to(
            &cluster.primary,
            "127.0.0.1",
            "app",
            APP_PASSWORD,
            "require",
        )
        .replace(
            &format!("port: {}", cluster.primary.port),
            &format!("port: {}", proxy.addr.port()),
        );
    let checks = [
        check(
            "proxied",
            "postgres_reachable",
            &[("connection", &through_proxy), ("require_tls", "true")],
        ),
        check(
            "proxied_lenient",
            "postgres_reachable",
            &[("connection", &through_proxy)],
        ),
    ];
    let ran = run_checks(&checks.concat()).await;

    let strict = ran.outcome("proxied");
    assert_eq!(strict.status, Status::Fail, "{}", strict.message);
    assert_eq!(strict.reason, Reason::NotEncrypted, "{}", strict.message);
    assert!(
        strict.message.contains("not encrypted"),
        "{}",
        strict.message
    );
    assert_eq!(
        ran.value("readiness_check_failures_total{check=\"proxied\",reason=\"not_encrypted\"}"),
        1.0
    );

    let lenient = ran.outcome("proxied_lenient");
    assert_eq!(lenient.status, Status::Pass, "{}", lenient.message);
    assert!(
        lenient.message.contains("without TLS"),
        "{}",
        lenient.message
    );
}
