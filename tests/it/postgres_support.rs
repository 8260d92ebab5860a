//! Throwaway PostgreSQL servers for the PostgreSQL tests.
//!
//! Each server is made with `initdb` in a temporary directory and started with `pg_ctl` on a
//! free port of 127.0.0.1, with TLS from a certificate made at test time. When the tests run as
//! root, the server commands run as the `postgres` user through `runuser`, because PostgreSQL
//! refuses to run as root. A watchdog shell process stops every server and removes its
//! directory once the test process exits, so servers shared through a `OnceLock` (which never
//! drops) and servers of a test that panicked do not outlive the test run.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use readiness_exporter::check::Outcome;
use readiness_exporter::config;
use readiness_exporter::scheduler::run_all_once;
use readiness_exporter::state::State;

use crate::support::TestCa;

/// The password of the `app` role, used as a canary: it must never appear in any output.
pub const APP_PASSWORD: &str = "canary-Pw-7f3a9c61";
/// A wrong password for the `app` role, also a canary.
pub const WRONG_PASSWORD: &str = "wrong-canary-2b8e1d04";
const MONITOR_PASSWORD: &str = "monitor-pw-5d21";
const SUPERUSER_PASSWORD: &str = "superuser-pw-88c0";

/// The application_name of the standby in replica sets.
pub const STANDBY_NAME: &str = "standby_a";

/// Migration ids in the `ef` schema's history table of the shared primary's `app` database.
pub const MIGRATIONS: [&str; 3] = [
    "20240101090000_InitialCreate",
    "20240215143000_AddOrders",
    "20240301120000_AddInvoices",
];

/// Returns the directory with `initdb`, `pg_ctl`, `pg_basebackup`, `pg_receivewal` and `psql`,
/// or `None` after printing why the test is skipped. Panics when `CI` is set, because CI must
/// run these tests.
pub fn postgres_bin() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    let bin = BIN.get_or_init(find_bin).clone();
    if bin.is_none() {
        let message = "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH; run scripts/install-testbed.sh";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
    }
    bin
}

fn find_bin() -> Option<PathBuf> {
    let tools = ["initdb", "pg_ctl", "pg_basebackup", "pg_receivewal", "psql"];
    let complete = |dir: &Path| tools.iter().all(|tool| dir.join(tool).is_file());
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versioned.sort();
    if let Some((_, dir)) = versioned.into_iter().rev().find(|(_, dir)| complete(dir)) {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| complete(dir))
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A command that runs as the `postgres` user when the tests run as root.
fn server_command(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("{what}: cannot start: {err}"));
    assert!(
        output.status.success(),
        "{what} failed with {}:\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Gives the directory tree to the `postgres` user when running as root.
fn chown_to_postgres(path: &Path) {
    if running_as_root() {
        let mut command = Command::new("chown");
        command.arg("-R").arg("postgres:postgres").arg(path);
        run(command, "chown");
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Files the checks read: the CA certificate and password files.
pub struct ClientFiles {
    dir: PathBuf,
    pub ca_file: PathBuf,
}

impl ClientFiles {
    /// Writes `password` to a file named after `name` and returns its path.
    pub fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.password"));
        std::fs::write(&path, format!("{password}\n")).unwrap();
        path
    }
}

/// One running PostgreSQL server.
pub struct PgServer {
    pub port: u16,
    bin: PathBuf,
    /// The directory owned by `postgres`: data, socket, log, certificate and archive.
    dir: PathBuf,
    data: PathBuf,
}

impl PgServer {
    /// The directory WAL segments are archived into by `archive_command`.
    pub fn archive_dir(&self) -> PathBuf {
        self.dir.join("archive")
    }

    /// Runs SQL as the superuser over the Unix socket and returns psql's unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut command = server_command(&self.bin.join("psql"));
        command
            .arg("-h")
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ]);
        run(command, &format!("psql `{sql}`")).trim().to_string()
    }

    /// Polls `sql` until it returns `t`, or panics after `limit`.
    pub fn wait_for(&self, database: &str, sql: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.psql(database, sql) == "t" {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{sql}` did not become true within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server at once.
    pub fn stop(&self) {
        let mut command = server_command(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"]);
        let _ = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A primary with an optional streaming standby and the files clients need.
pub struct Cluster {
    pub primary: PgServer,
    pub standby: Option<PgServer>,
    pub client: ClientFiles,
    /// Removed when the cluster is dropped; shared clusters are removed by the watchdog.
    root: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(standby) = &self.standby {
            standby.stop();
        }
        self.primary.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// How a primary is set up.
pub struct PrimaryOptions {
    /// Whether `archive_command` copies into the archive directory; when false it is empty
    /// until a test sets one.
    pub archive: bool,
    /// Whether a standby and a pg_receivewal client are added.
    pub standby: bool,
}

impl Cluster {
    /// `{ host: localhost, port: P, user: U, ... }` for the primary, verified with verify-full.
    pub fn connection(&self, user: &str, password: &str) -> String {
        self.connection_to(&self.primary, "localhost", user, password, "verify-full")
    }

    /// A connection block for the standby.
    pub fn standby_connection(&self) -> String {
        let standby = self.standby.as_ref().expect("cluster has a standby");
        self.connection_to(
            standby,
            "localhost",
            "monitor",
            MONITOR_PASSWORD,
            "verify-full",
        )
    }

    /// A connection block as the `monitor` role, which is a member of pg_monitor.
    pub fn monitor(&self) -> String {
        self.connection("monitor", MONITOR_PASSWORD)
    }

    /// A connection block with every setting given.
    pub fn connection_to(
        &self,
        server: &PgServer,
        host: &str,
        user: &str,
        password: &str,
        sslmode: &str,
    ) -> String {
        let password_file = self
            .client
            .password_file(&format!("{user}-{}", password.len()), password);
        let ca = match sslmode {
            "verify-ca" | "verify-full" => {
                format!(", ca_file: {}", self.client.ca_file.display())
            }
            _ => String::new(),
        };
        format!(
            "{{ host: {host}, port: {}, database: app, user: {user}, password: {{ file: {} }}, sslmode: {sslmode}{ca} }}",
            server.port,
            password_file.display()
        )
    }
}

/// Starts a primary (and a standby when asked) owned by the caller.
pub fn start_cluster(bin: &Path, options: PrimaryOptions) -> Cluster {
    let root = tempfile::Builder::new()
        .prefix("readiness-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let client_dir = root.join("client");
    std::fs::create_dir_all(&client_dir).unwrap();

    let ca = TestCa::new("readiness test database CA");
    let leaf = ca.valid_leaf(&["localhost"]);
    let ca_file = ca.write(&client_dir);

    // The watchdog starts first, so servers of a setup that panics halfway are stopped too.
    watch(
        bin,
        &root,
        &[root.join("primary/data"), root.join("standby/data")],
    );
    let primary = start_primary(bin, &root.join("primary"), &leaf, options.archive);
    let mut cluster = Cluster {
        primary,
        standby: None,
        client: ClientFiles {
            dir: client_dir,
            ca_file,
        },
        root: root.clone(),
    };
    if options.standby {
        let standby = start_standby(bin, &root.join("standby"), &cluster.primary);
        start_receivewal(bin, &root.join("receivewal"), &cluster.primary);
        cluster.primary.wait_for(
            "postgres",
            &format!(
                "SELECT count(*) FILTER (WHERE application_name = '{STANDBY_NAME}' AND state = 'streaming' AND replay_lsn IS NOT NULL) = 1 \
                 AND count(*) FILTER (WHERE application_name = 'pg_receivewal') = 1 FROM pg_stat_replication"
            ),
            Duration::from_secs(30),
        );
        cluster.standby = Some(standby);
    }
    cluster
}

fn start_primary(
    bin: &Path,
    dir: &Path,
    leaf: &crate::support::TestLeaf,
    archive: bool,
) -> PgServer {
    std::fs::create_dir_all(dir.join("archive")).unwrap();
    std::fs::write(dir.join("server.crt"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &leaf.key_pem).unwrap();
    std::fs::write(dir.join("superuser.password"), SUPERUSER_PASSWORD).unwrap();
    set_mode(&dir.join("server.key"), 0o600);
    chown_to_postgres(dir.parent().unwrap());
    chown_to_postgres(dir);

    let data = dir.join("data");
    let mut initdb = server_command(&bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!(
            "--pwfile={}",
            dir.join("superuser.password").display()
        ))
        .args(["--no-sync", "--encoding=UTF8", "--locale=C"]);
    run(initdb, "initdb");

    // Replication connections use the Unix socket; TCP logins need a password.
    write_as_postgres(
        &data.join("pg_hba.conf"),
        "local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
    );
    let archive_command = if archive {
        format!("cp %p {}/%f", dir.join("archive").display())
    } else {
        String::new()
    };
    let mut settings = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
    settings.push_str(&format!("archive_command = '{archive_command}'\n"));
    write_as_postgres(&data.join("postgresql.auto.conf"), &settings);

    let server = PgServer {
        port: free_port(),
        bin: bin.to_path_buf(),
        dir: dir.to_path_buf(),
        data,
    };
    let options = format!(
        "-c archive_mode=on -c wal_level=replica -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
        dir = dir.display()
    );
    start_server(&server, &options);

    server.psql(
        "postgres",
        &format!(
            "CREATE ROLE monitor LOGIN PASSWORD '{MONITOR_PASSWORD}' IN ROLE pg_monitor; \
             CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}';"
        ),
    );
    // CREATE DATABASE cannot run in the transaction psql wraps several statements in.
    server.psql("postgres", "CREATE DATABASE app OWNER app");
    let ids: Vec<String> = MIGRATIONS
        .iter()
        .map(|id| format!("('{id}', '8.0.1')"))
        .collect();
    server.psql(
        "app",
        &format!(
            "CREATE SCHEMA ef; \
             CREATE TABLE ef.\"__EFMigrationsHistory\" (\"MigrationId\" varchar(150) PRIMARY KEY, \"ProductVersion\" varchar(32) NOT NULL); \
             INSERT INTO ef.\"__EFMigrationsHistory\" VALUES {}; \
             CREATE TABLE ef.empty_history (\"MigrationId\" varchar(150) PRIMARY KEY, \"ProductVersion\" varchar(32) NOT NULL); \
             CREATE TABLE public.backup_runs (finished_at timestamptz NOT NULL, ok boolean NOT NULL); \
             INSERT INTO public.backup_runs VALUES (now() - interval '30 hours', true), (now() - interval '2 hours', true), (now() - interval '1 hour', false); \
             GRANT USAGE ON SCHEMA ef TO monitor, app; \
             GRANT SELECT ON ALL TABLES IN SCHEMA ef, public TO monitor, app;",
            ids.join(", ")
        ),
    );
    server
}

fn start_standby(bin: &Path, dir: &Path, primary: &PgServer) -> PgServer {
    std::fs::create_dir_all(dir).unwrap();
    chown_to_postgres(dir);
    let data = dir.join("data");
    let mut basebackup = server_command(&bin.join("pg_basebackup"));
    basebackup
        .arg("-h")
        .arg(&primary.dir)
        .arg("-p")
        .arg(primary.port.to_string())
        .args(["-U", "postgres", "-D"])
        .arg(&data)
        .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]);
    run(basebackup, "pg_basebackup");

    let server = PgServer {
        port: free_port(),
        bin: bin.to_path_buf(),
        dir: dir.to_path_buf(),
        data,
    };
    // cluster_name becomes the WAL receiver's application_name; a short status interval lets
    // the primary see a caught-up standby (NULL lag columns) soon.
    let options = format!(
        "-c archive_mode=off -c cluster_name={STANDBY_NAME} -c wal_receiver_status_interval=1s -c ssl_cert_file={primary}/server.crt -c ssl_key_file={primary}/server.key",
        primary = primary.dir.display()
    );
    start_server(&server, &options);
    server
}

/// Starts pg_receivewal against the primary: a WAL client that never replays. It exits on its
/// own when the primary stops.
#[allow(
    clippy::zombie_processes,
    reason = "it exits with the primary; a shared primary lives until the test process exits, and then init reaps it"
)]
fn start_receivewal(bin: &Path, dir: &Path, primary: &PgServer) {
    std::fs::create_dir_all(dir).unwrap();
    chown_to_postgres(dir);
    let mut command = server_command(&bin.join("pg_receivewal"));
    command
        .arg("-h")
        .arg(&primary.dir)
        .arg("-p")
        .arg(primary.port.to_string())
        .args(["-U", "postgres", "-n", "--no-sync", "-D"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().expect("pg_receivewal starts");
}

fn start_server(server: &PgServer, options: &str) {
    let mut command = server_command(&server.bin.join("pg_ctl"));
    command
        .arg("-D")
        .arg(&server.data)
        .arg("-l")
        .arg(server.dir.join("server.log"))
        .arg("-w")
        .arg("-o")
        .arg(format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {dir} -c ssl=on -c fsync=off \
             -c shared_buffers=16MB -c max_connections=30 {options}",
            port = server.port,
            dir = server.dir.display()
        ))
        .arg("start");
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("pg_ctl starts");
    if !output.status.success() {
        let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
        panic!(
            "pg_ctl start failed with {}:\n{}\nserver log:\n{log}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn write_as_postgres(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    chown_to_postgres(path);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Starts a shell that waits for this test process to exit, then stops the servers of
/// `data_dirs` (where they run) and removes `root`.
#[allow(
    clippy::zombie_processes,
    reason = "the watchdog must outlive the test process, which therefore never waits for it"
)]
fn watch(bin: &Path, root: &Path, data_dirs: &[PathBuf]) {
    let runuser = if running_as_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let mut script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 0.5; done; ",
        std::process::id()
    );
    for data in data_dirs {
        script.push_str(&format!(
            "[ -f '{data}/postmaster.pid' ] && {runuser}'{pg_ctl}' -D '{data}' stop -m immediate >/dev/null 2>&1; ",
            data = data.display(),
            pg_ctl = bin.join("pg_ctl").display(),
        ));
    }
    script.push_str(&format!("rm -rf '{}'", root.display()));
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog starts");
}

/// The primary shared by tests that only read from it, with working archiving.
pub fn shared_primary(bin: &Path) -> Arc<Cluster> {
    static SHARED: OnceLock<Arc<Cluster>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            Arc::new(start_cluster(
                bin,
                PrimaryOptions {
                    archive: true,
                    standby: false,
                },
            ))
        })
        .clone()
}

/// A primary with a caught-up streaming standby and a pg_receivewal client, shared by tests
/// that only read from them.
pub fn shared_replica_set(bin: &Path) -> Arc<Cluster> {
    static SHARED: OnceLock<Arc<Cluster>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            Arc::new(start_cluster(
                bin,
                PrimaryOptions {
                    archive: true,
                    standby: true,
                },
            ))
        })
        .clone()
}

/// What one run of a set of checks produced.
pub struct Ran {
    pub outcomes: HashMap<String, Outcome>,
    pub metrics: String,
}

impl Ran {
    /// The outcome of check `id`.
    pub fn outcome(&self, id: &str) -> &Outcome {
        self.outcomes
            .get(id)
            .unwrap_or_else(|| panic!("no outcome for `{id}`"))
    }

    /// The exposition lines that start with `prefix`.
    pub fn lines(&self, prefix: &str) -> Vec<&str> {
        self.metrics
            .lines()
            .filter(|line| line.starts_with(prefix))
            .collect()
    }

    /// The value of the one series whose line starts with `prefix`.
    pub fn value(&self, prefix: &str) -> f64 {
        let lines = self.lines(prefix);
        assert_eq!(
            lines.len(),
            1,
            "expected one line starting with `{prefix}`:\n{}",
            self.metrics
        );
        lines[0].rsplit(' ').next().unwrap().parse().unwrap()
    }
}

/// Loads `checks` (the items of a `checks:` list, in YAML) and runs each once, then encodes
/// the metrics as `/metrics` would.
pub async fn run_checks(checks: &str) -> Ran {
    crate::support::init();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("global:\n  interval: 60s\n  timeout: 15s\nchecks:\n{checks}");
    let path = crate::support::write_config(dir.path(), &yaml);
    let config = config::load_with_env(&path, Some(HashMap::new()))
        .unwrap_or_else(|err| panic!("configuration is invalid: {err}\n{yaml}"));
    let results = run_all_once(&config.checks, 8).await;
    let state = Arc::new(State::new());
    state.set_checks(&config.checks);
    let mut outcomes = HashMap::new();
    for (def, result) in config.checks.iter().zip(results) {
        outcomes.insert(def.id.clone(), result.outcome.clone());
        state.record(def, result);
    }
    let registry = readiness_exporter::metrics::registry(state);
    Ran {
        outcomes,
        metrics: readiness_exporter::metrics::encode(&registry),
    }
}

/// One check item for [`run_checks`]: `fields` are the keys of the kind's block.
pub fn check(id: &str, kind: &str, fields: &[(&str, &str)]) -> String {
    let mut item = format!(
        "  - id: {id}\n    title: \"{id}\"\n    section: Database\n    severity: critical\n    {kind}:\n"
    );
    for (key, value) in fields {
        item.push_str(&format!("      {key}: {value}\n"));
    }
    item
}
