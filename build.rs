//! Records the git revision for `readiness_exporter_build_info`.

use std::path::Path;
use std::process::Command;

fn main() {
    let revision = std::env::var("READINESS_EXPORTER_REVISION")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=READINESS_EXPORTER_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=READINESS_EXPORTER_REVISION");
    println!("cargo:rerun-if-changed=build.rs");
    // In a linked worktree `.git` is a file and HEAD lives elsewhere; `--git-path` returns the
    // real paths. Cargo treats a watched path that does not exist as changed on every build,
    // which would rebuild the crate each time, so only existing paths are watched.
    for name in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}

/// Runs git with `args` and returns its trimmed output, or `None` when git fails.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
}
