//! OpenBao servers for the Vault tests.
//!
//! OpenBao's `bao` binary speaks Vault's HTTP API. A dev server (in-memory storage, unsealed, a
//! known root token) is started once per test process and shared. Tests create their own paths,
//! policies and tokens on it. A server with raft storage and a TLS listener is started per test
//! that needs the uninitialized and sealed states. Every server listens on 127.0.0.1 only. A
//! watchdog shell process stops the server and removes its directory when the test process
//! exits, because a shared server in a `OnceLock` is never dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::support::TestCa;

/// The dev server's root token. Tests give the exporter tokens of their own.
pub const ROOT_TOKEN: &str = "root-token-for-tests";

/// Returns the `bao` binary, or `None` after printing why the test is skipped. Panics when `CI`
/// is set, because CI must run these tests.
pub fn bao_bin() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    let bin = BIN.get_or_init(find_bin).clone();
    if bin.is_none() {
        let message =
            "OpenBao `bao` binary not found on PATH or in .testbed/bin; run scripts/install-testbed.sh";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
    }
    bin
}

fn find_bin() -> Option<PathBuf> {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".testbed/bin/bao");
    if local.is_file() {
        return Some(local);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bao"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One running `bao server`.
pub struct BaoServer {
    bin: PathBuf,
    child: Mutex<Child>,
    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub address: String,
    /// The directory with the server's files; removed when the server stops.
    pub dir: PathBuf,
    /// The CA file for a TLS listener.
    pub ca_file: Option<PathBuf>,
}

impl Drop for BaoServer {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl BaoServer {
    /// Runs `bao ARGS` against this server with `token`, and returns standard output. Panics
    /// with the output when the command fails.
    pub fn bao_as(&self, token: &str, args: &[&str]) -> String {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env("BAO_ADDR", &self.address)
            .env("BAO_TOKEN", token)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::null());
        if let Some(ca) = &self.ca_file {
            command.env("BAO_CACERT", ca);
        }
        let output = command.output().expect("bao runs");
        assert!(
            output.status.success(),
            "bao {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Runs `bao ARGS` with the root token.
    pub fn bao(&self, args: &[&str]) -> String {
        self.bao_as(ROOT_TOKEN, args)
    }

    /// Creates a token with `policies` and extra `bao token create` flags, and returns it.
    pub fn token(&self, policies: &[&str], flags: &[&str]) -> String {
        let mut args = vec!["token", "create", "-field=token", "-no-default-policy"];
        let policy_flags: Vec<String> = policies.iter().map(|p| format!("-policy={p}")).collect();
        args.extend(policy_flags.iter().map(String::as_str));
        args.extend_from_slice(flags);
        self.bao(&args)
    }

    /// Writes a policy from HCL text.
    pub fn policy(&self, name: &str, hcl: &str) {
        let path = self.dir.join(format!("{name}.hcl"));
        std::fs::write(&path, hcl).unwrap();
        self.bao(&["policy", "write", name, path.to_str().unwrap()]);
    }
}

/// Starts a watchdog that kills `pid` and removes `dir` once the test process exits.
#[allow(
    clippy::zombie_processes,
    reason = "the watchdog must outlive the test process, so nothing waits for it"
)]
fn watch(pid: u32, dir: &Path) {
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 0.5; done; kill {pid} 2>/dev/null; rm -rf '{}'",
        std::process::id(),
        dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog starts");
}

/// Polls the server with `bao status` until it responds with any state, or panics after 20 s.
fn wait_for_listener(server: &BaoServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut command = Command::new(&server.bin);
        command
            .args(["status", "-format=json"])
            .env("BAO_ADDR", &server.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(ca) = &server.ca_file {
            command.env("BAO_CACERT", ca);
        }
        // `bao status` exits 0 when unsealed, 2 when sealed and 1 when it cannot connect.
        if let Ok(status) = command.status() {
            if status.code() != Some(1) {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bao server at {} did not answer within 20 s; log: {}",
            server.address,
            std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn(bin: &Path, dir: &Path, args: &[String]) -> Child {
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    Command::new(bin)
        .args(args)
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("bao server starts")
}

/// Starts a dev server: initialized, unsealed, in-memory, with KV version 2 at `secret/`.
pub fn start_dev_server(bin: &Path) -> BaoServer {
    let dir = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let child = spawn(
        bin,
        &dir,
        &[
            "server".to_string(),
            "-dev".to_string(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            format!("-dev-root-token-id={ROOT_TOKEN}"),
        ],
    );
    watch(child.id(), &dir);
    let server = BaoServer {
        bin: bin.to_path_buf(),
        child: Mutex::new(child),
        address: format!("http://127.0.0.1:{port}"),
        dir,
        ca_file: None,
    };
    wait_for_listener(&server);
    server
}

/// Returns the dev server shared by the tests of this process.
pub fn shared_dev_server(bin: &Path) -> Arc<BaoServer> {
    static SHARED: OnceLock<Arc<BaoServer>> = OnceLock::new();
    SHARED
        .get_or_init(|| Arc::new(start_dev_server(bin)))
        .clone()
}

/// Starts a server with raft storage and a TLS listener on 127.0.0.1, not initialized yet.
pub fn start_raft_server(bin: &Path) -> BaoServer {
    let dir = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let cluster_port = free_port();
    let ca = TestCa::new("OpenBao test CA");
    let leaf = ca.valid_leaf(&["localhost"]);
    let ca_file = ca.write(&dir);
    std::fs::write(dir.join("server.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &leaf.key_pem).unwrap();
    std::fs::create_dir_all(dir.join("raft")).unwrap();
    let config = format!(
        r#"storage "raft" {{
  path    = "{dir}/raft"
  node_id = "node-1"
}}
listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_cert_file   = "{dir}/server.pem"
  tls_key_file    = "{dir}/server.key"
}}
api_addr      = "https://localhost:{port}"
cluster_addr  = "https://127.0.0.1:{cluster_port}"
disable_mlock = true
"#,
        dir = dir.display()
    );
    let config_path = dir.join("server.hcl");
    std::fs::write(&config_path, config).unwrap();
    let child = spawn(
        bin,
        &dir,
        &[
            "server".to_string(),
            format!("-config={}", config_path.display()),
        ],
    );
    watch(child.id(), &dir);
    let server = BaoServer {
        bin: bin.to_path_buf(),
        child: Mutex::new(child),
        address: format!("https://localhost:{port}"),
        dir,
        ca_file: Some(ca_file),
    };
    wait_for_listener(&server);
    server
}

/// Reads the least-privilege policy from docs/vault.md, so that the tests prove the documented
/// policy is enough.
pub fn documented_policy() -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/vault.md"))
        .unwrap();
    let start = text
        .find("```hcl\n")
        .expect("docs/vault.md has an hcl block");
    let rest = &text[start + "```hcl\n".len()..];
    let end = rest.find("```").unwrap();
    rest[..end].to_string()
}
