//! The Dockerfile, checked statically: no Docker engine runs on the test machines, so the image
//! itself is never built here.

use crate::testbed::{read, repo_root};

#[test]
fn dockerfile_builds_in_stages_and_runs_unprivileged() {
    let dockerfile = read("Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|line| line.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "the build is not multi-stage");
    assert!(
        dockerfile.contains("cargo build --release --locked"),
        "the release build does not use Cargo.lock"
    );

    let user = dockerfile
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("no USER in the final stage");
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0, "the image runs as root");

    let entrypoint = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("ENTRYPOINT [\""))
        .and_then(|rest| rest.split('"').next())
        .expect("no exec-form ENTRYPOINT");
    assert!(
        dockerfile.contains(&format!("/readiness-exporter {entrypoint}")),
        "the ENTRYPOINT {entrypoint} is not where the binary is copied"
    );
}

#[test]
fn dockerfile_copies_only_files_in_context() {
    let dockerfile = read("Dockerfile");
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(|line| line.trim_end_matches('/').to_string())
        .filter(|line| !line.is_empty())
        .collect();
    for line in dockerfile.lines().filter(|line| line.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(
                repo_root().join(source).exists(),
                "{line}: {source} does not exist"
            );
            let top = source.split('/').next().unwrap();
            assert!(
                !ignored.iter().any(|pattern| pattern == top),
                "{line}: {source} is excluded by .dockerignore"
            );
        }
    }
}
