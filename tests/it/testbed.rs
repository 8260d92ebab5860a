//! Locating the repository, the testbed's external tools and the shared directory beside the
//! checkout, for tests that run real Prometheus, Alertmanager, Helm and validator binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the test runs in CI, where a missing component is a failure instead of a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|value| !value.is_empty())
}

/// The `PATH` the tests give child processes: the testbed's `bin` directory first.
pub fn path_with_testbed() -> String {
    let testbed = repo_root().join(".testbed/bin");
    match std::env::var("PATH") {
        Ok(path) => format!("{}:{path}", testbed.display()),
        Err(_) => testbed.display().to_string(),
    }
}

/// Finds `tool` in the testbed's `bin` directory or on `PATH`.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&path_with_testbed())
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// Returns the path of every tool in `tools`, or `None` after printing why the test is skipped.
/// Panics instead when the environment variable `CI` is set, because CI must run every test.
pub fn require_tools(test: &str, tools: &[&str]) -> Option<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for tool in tools {
        match find_tool(tool) {
            Some(path) => found.push(path),
            None => missing.push(*tool),
        }
    }
    if missing.is_empty() {
        return Some(found);
    }
    let message = format!(
        "{test}: {} not found on PATH or in .testbed/bin; run scripts/install-testbed.sh",
        missing.join(", ")
    );
    assert!(!in_ci(), "{message}");
    eprintln!("skipped: {message}");
    None
}

/// Runs `command` with the testbed's `PATH` from the repository root and returns its output.
pub fn run(command: &mut Command) -> Output {
    command
        .current_dir(repo_root())
        .env("PATH", path_with_testbed())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"))
}

/// Asserts that `output` comes from a successful run, showing its output otherwise.
pub fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The directory `shared` beside the checkout, which holds reference schemas that the
/// repository does not copy.
pub fn shared_dir() -> PathBuf {
    repo_root()
        .parent()
        .unwrap_or(Path::new("/"))
        .join("shared")
}

/// Reads a file of the repository as text.
pub fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {relative}: {err}"))
}
