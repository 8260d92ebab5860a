//! The `signoff` kind against attestation files written by the test.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use readiness_exporter::check::{Outcome, Reason, Status};

use crate::support::{assert_metric, assert_no_series, config_problems, LoadedChecks};

const DAY: Duration = Duration::from_secs(86_400);

/// Returns a checklist with one `signoff` check `uat_signed_off`; `fields` are further lines of the
/// `signoff` block, indented by six spaces. `signoff:` is on line 6 and `file:` on line 7.
fn checklist(fields: &str) -> String {
    format!(
        "checks:
  - id: uat_signed_off
    title: \"User Acceptance Testing (UAT): UAT completed and signed off by stakeholders\"
    section: \"I. Pre-Deployment\"
    severity: critical
    signoff:
      file: {{dir}}/signoffs.yaml
{fields}"
    )
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Whole seconds since the epoch, as the timestamps in the file carry them.
fn whole_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Formats one attestation, indented for the `signoffs` list.
fn entry(
    item: &str,
    signer: &str,
    role: &str,
    signed: SystemTime,
    expires: Option<SystemTime>,
) -> String {
    let expires = expires
        .map(|at| format!("    expires_at: {}\n", rfc3339(at)))
        .unwrap_or_default();
    format!(
        "  - item: {item}\n    signed_by: {signer}\n    role: {role}\n    signed_at: {}\n{expires}    evidence: https://tracker.example.com/browse/UAT-142\n",
        rfc3339(signed)
    )
}

fn write_signoffs(dir: &Path, entries: &[String]) {
    let text = format!("signoffs:\n{}", entries.concat());
    std::fs::write(dir.join("signoffs.yaml"), text).unwrap();
}

/// Loads the checklist with `fields`, writes `entries` to the attestation file and runs once.
async fn run(fields: &str, entries: &[String]) -> (Outcome, String, LoadedChecks) {
    let checks = LoadedChecks::load(&checklist(fields));
    write_signoffs(checks.dir.path(), entries);
    let outcome = checks.run("uat_signed_off").await;
    let metrics = checks.metrics();
    (outcome, metrics, checks)
}

fn signed_line(time: SystemTime) -> String {
    format!(
        "readiness_signoff_signed_timestamp_seconds{{check=\"uat_signed_off\"}} {}.0",
        whole_seconds(time)
    )
}

fn expiry_line(time: SystemTime) -> String {
    format!(
        "readiness_signoff_expiry_timestamp_seconds{{check=\"uat_signed_off\"}} {}.0",
        whole_seconds(time)
    )
}

#[tokio::test]
async fn valid_signoff_passes() {
    let signed = SystemTime::now() - 10 * DAY;
    let expires = SystemTime::now() + 80 * DAY;
    let entries = [entry(
        "uat",
        "Jane Doe",
        "product_owner",
        signed,
        Some(expires),
    )];

    let (outcome, metrics, _checks) =
        run("      item: uat\n      roles: [product_owner]\n", &entries).await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(
        outcome.message,
        format!(
            "signed by Jane Doe (product_owner) at {}, expires {}",
            rfc3339(signed),
            rfc3339(expires)
        )
    );
    assert!(
        !outcome.message.contains("tracker.example.com"),
        "the evidence link stays out of the message"
    );
    assert_metric(
        &metrics,
        "readiness_check_result{check=\"uat_signed_off\",result=\"pass\"} 1",
    );
    assert_metric(&metrics, &signed_line(signed));
    assert_metric(&metrics, &expiry_line(expires));
}

#[tokio::test]
async fn signoff_without_expiry_exports_no_expiry() {
    let signed = SystemTime::now() - DAY;
    let entries = [entry("uat", "Jane Doe", "product_owner", signed, None)];

    let (outcome, metrics, _checks) = run("      item: uat\n", &entries).await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_metric(&metrics, &signed_line(signed));
    assert_no_series(
        &metrics,
        "readiness_signoff_expiry_timestamp_seconds",
        "uat_signed_off",
    );
}

#[tokio::test]
async fn expired_signoff_fails() {
    let signed = SystemTime::now() - 100 * DAY;
    let expires = SystemTime::now() - DAY;
    let entries = [entry(
        "uat",
        "Jane Doe",
        "product_owner",
        signed,
        Some(expires),
    )];

    let (outcome, metrics, _checks) = run("      item: uat\n", &entries).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::SignoffExpired);
    assert_eq!(
        outcome.message,
        format!(
            "item `uat`: the sign-off by Jane Doe (product_owner) made at {} expired at {}; sign it off again",
            rfc3339(signed),
            rfc3339(expires)
        )
    );
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"uat_signed_off\",reason=\"signoff_expired\"} 1",
    );
    assert_metric(&metrics, &signed_line(signed));
    assert_metric(&metrics, &expiry_line(expires));
}

#[tokio::test]
async fn signoff_older_than_max_age_fails() {
    let signed = SystemTime::now() - 100 * DAY;
    let entries = [entry("uat", "Jane Doe", "product_owner", signed, None)];

    let (outcome, metrics, _checks) = run("      item: uat\n      max_age: 90d\n", &entries).await;

    assert_eq!(outcome.reason, Reason::SignoffExpired);
    assert_eq!(
        outcome.message,
        format!(
            "item `uat`: the sign-off by Jane Doe (product_owner) made at {} expired at {} (maximum age 90d); sign it off again",
            rfc3339(signed),
            rfc3339(signed + 90 * DAY)
        )
    );
    assert_metric(&metrics, &expiry_line(signed + 90 * DAY));
}

#[tokio::test]
async fn missing_item_fails() {
    let entries = [entry(
        "rollback_plan",
        "Ana Ruiz",
        "release_manager",
        SystemTime::now() - DAY,
        None,
    )];

    let (outcome, metrics, checks) = run("      item: uat\n", &entries).await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::SignoffMissing);
    assert_eq!(
        outcome.message,
        format!(
            "no sign-off for item `uat` in `{}`; record one with signed_by, role, signed_at and evidence",
            checks.dir.path().join("signoffs.yaml").display()
        )
    );
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"uat_signed_off\",reason=\"signoff_missing\"} 1",
    );
    assert_no_series(
        &metrics,
        "readiness_signoff_signed_timestamp_seconds",
        "uat_signed_off",
    );
}

#[tokio::test]
async fn wrong_role_fails() {
    let entries = [entry(
        "uat",
        "Sam Lee",
        "developer",
        SystemTime::now() - DAY,
        None,
    )];

    let (outcome, metrics, _checks) = run(
        "      item: uat\n      roles: [product_owner, qa_lead]\n",
        &entries,
    )
    .await;

    assert_eq!(outcome.status, Status::Fail);
    assert_eq!(outcome.reason, Reason::SignoffRoleMissing);
    assert_eq!(
        outcome.message,
        "item `uat` has no sign-off by role `product_owner`, `qa_lead`; signed by Sam Lee (developer)"
    );
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"uat_signed_off\",reason=\"signoff_role_missing\"} 1",
    );
    assert_no_series(
        &metrics,
        "readiness_signoff_signed_timestamp_seconds",
        "uat_signed_off",
    );
}

#[tokio::test]
async fn every_required_role_signs() {
    let first = SystemTime::now() - 20 * DAY;
    let second = SystemTime::now() - 5 * DAY;
    let entries = [
        entry(
            "uat",
            "Jane Doe",
            "product_owner",
            first,
            Some(first + 60 * DAY),
        ),
        entry("uat", "Li Wei", "qa_lead", second, Some(second + 30 * DAY)),
    ];

    let (outcome, metrics, _checks) = run(
        "      item: uat\n      roles: [product_owner, qa_lead]\n",
        &entries,
    )
    .await;

    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_eq!(
        outcome.message,
        format!(
            "signed by Jane Doe (product_owner) at {}, expires {}; signed by Li Wei (qa_lead) at {}, expires {}",
            rfc3339(first),
            rfc3339(first + 60 * DAY),
            rfc3339(second),
            rfc3339(second + 30 * DAY)
        )
    );
    // The item is complete when the last role signs, and lapses when the first sign-off does.
    assert_metric(&metrics, &signed_line(second));
    assert_metric(&metrics, &expiry_line(second + 30 * DAY));
}

#[tokio::test]
async fn malformed_file_is_error_with_line() {
    let checks = LoadedChecks::load(&checklist("      item: uat\n"));
    let path = checks.dir.path().join("signoffs.yaml");
    let cases = [
        (
            "signoffs:\n  - item: uat\n    signed_by: \"Jane Doe\n    role: qa_lead\n",
            "line 3, column 16: ",
        ),
        (
            "signoffs:\n  - item: uat\n    signed_by: Jane Doe\n    role: qa_lead\n    signed_at: last Tuesday\n    evidence: https://tracker.example.com/browse/UAT-142\n",
            "line 5, column 16: invalid timestamp `last Tuesday`; write RFC 3339 with a time zone",
        ),
        (
            "signoffs:\n  - item: uat\n    signed_by: Jane Doe\n    role: qa_lead\n    signed_at: 2025-06-01T14:00:00Z\n    evidence: https://tracker.example.com/browse/UAT-142\n    approved: yes\n",
            "line 7, column 5: unknown field `approved`",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, text).unwrap();

        let outcome = checks.run("uat_signed_off").await;

        assert_eq!(outcome.status, Status::Error, "{text}");
        assert_eq!(outcome.reason, Reason::SignoffFileInvalid, "{text}");
        let prefix = format!("sign-off file `{}` is invalid: {expected}", path.display());
        assert!(outcome.message.starts_with(&prefix), "{}", outcome.message);
        assert!(!outcome.message.contains('\n'), "{}", outcome.message);
    }
    assert_metric(
        &checks.metrics(),
        "readiness_check_failures_total{check=\"uat_signed_off\",reason=\"signoff_file_invalid\"} 3",
    );
}

#[tokio::test]
async fn missing_file_is_error() {
    let checks = LoadedChecks::load(&checklist("      item: uat\n"));

    let outcome = checks.run("uat_signed_off").await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::SignoffFileUnreadable);
    let path = checks.dir.path().join("signoffs.yaml");
    assert!(
        outcome
            .message
            .starts_with(&format!("cannot read sign-off file `{}`: ", path.display())),
        "{}",
        outcome.message
    );
    assert_metric(
        &checks.metrics(),
        "readiness_check_result{check=\"uat_signed_off\",result=\"error\"} 1",
    );
}

#[tokio::test]
async fn file_change_applies_next_run() {
    let checks = LoadedChecks::load(&checklist("      item: uat\n"));
    let dir = checks.dir.path();
    write_signoffs(dir, &[]);
    let outcome = checks.run("uat_signed_off").await;
    assert_eq!(outcome.reason, Reason::SignoffMissing);

    let signed = SystemTime::now() - DAY;
    write_signoffs(
        dir,
        &[entry("uat", "Jane Doe", "product_owner", signed, None)],
    );
    let outcome = checks.run("uat_signed_off").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
    assert_metric(&checks.metrics(), &signed_line(signed));

    let lapsed = SystemTime::now() - 2 * DAY;
    write_signoffs(
        dir,
        &[entry(
            "uat",
            "Jane Doe",
            "product_owner",
            lapsed,
            Some(signed),
        )],
    );
    let outcome = checks.run("uat_signed_off").await;
    assert_eq!(outcome.reason, Reason::SignoffExpired);
    let metrics = checks.metrics();
    assert_metric(&metrics, &signed_line(lapsed));
    assert_metric(&metrics, &expiry_line(signed));
    assert_metric(
        &metrics,
        "readiness_check_failures_total{check=\"uat_signed_off\",reason=\"signoff_expired\"} 1",
    );
}

/// Kubernetes updates a mounted ConfigMap by pointing the `..data` symlink at a new directory;
/// the file the check names is a symlink through `..data`.
#[cfg(unix)]
#[tokio::test]
async fn configmap_symlink_swap_applies() {
    use std::os::unix::fs::symlink;

    let checks = LoadedChecks::load(&checklist("      item: uat\n"));
    let dir = checks.dir.path();
    let first = dir.join("..2025_06_01_00_00_00.1");
    std::fs::create_dir(&first).unwrap();
    std::fs::write(first.join("signoffs.yaml"), "signoffs: []\n").unwrap();
    symlink(&first, dir.join("..data")).unwrap();
    symlink(dir.join("..data/signoffs.yaml"), dir.join("signoffs.yaml")).unwrap();
    let outcome = checks.run("uat_signed_off").await;
    assert_eq!(outcome.reason, Reason::SignoffMissing);

    let second = dir.join("..2025_06_02_00_00_00.2");
    std::fs::create_dir(&second).unwrap();
    let signed = SystemTime::now() - DAY;
    let text = format!(
        "signoffs:\n{}",
        entry("uat", "Jane Doe", "product_owner", signed, None)
    );
    std::fs::write(second.join("signoffs.yaml"), text).unwrap();
    symlink(&second, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();

    let outcome = checks.run("uat_signed_off").await;
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.message);
}

#[tokio::test]
async fn example_attestation_file_parses() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/signoffs.yaml");
    let items = [
        "uat",
        "hipaa_risk_assessment",
        "baa_cloud_provider",
        "penetration_test",
        "rollback_plan",
        "deployment_window",
        "communication_plan",
        "post_deployment_review",
    ];
    for item in items {
        let yaml = checklist(&format!("      item: {item}\n"))
            .replace("{dir}/signoffs.yaml", &example.display().to_string());
        let checks = LoadedChecks::load(&yaml);

        let outcome = checks.run("uat_signed_off").await;

        // The example's dates age, so only a parse error or a missing item would be a bug.
        assert_ne!(outcome.status, Status::Error, "{item}: {}", outcome.message);
        assert_ne!(
            outcome.reason,
            Reason::SignoffMissing,
            "{item}: {}",
            outcome.message
        );
        assert_ne!(
            outcome.reason,
            Reason::SignoffRoleMissing,
            "{item}: {}",
            outcome.message
        );
    }
}

/// Returns the problems for a bad `signoff` block; `fields` follow `file:` on line 7.
fn problems(fields: &str) -> Vec<String> {
    config_problems(&checklist(fields))
}

#[test]
fn empty_item_rejected() {
    assert_eq!(
        problems("      item: \"\"\n"),
        ["line 8: check `uat_signed_off`, field `signoff.item`: item is empty; name the item id the attestation file uses, such as `uat`"]
    );
}

#[test]
fn item_with_spaces_rejected() {
    assert_eq!(
        problems("      item: \" uat\"\n"),
        ["line 8: check `uat_signed_off`, field `signoff.item`: item ` uat` has leading or trailing spaces; write `uat`"]
    );
}

#[test]
fn empty_role_rejected() {
    assert_eq!(
        problems("      item: uat\n      roles: [\"\"]\n"),
        ["line 9: check `uat_signed_off`, field `signoff.roles[0]`: role is empty; name the role that must sign, such as `security_officer`"]
    );
}

#[test]
fn duplicate_role_rejected() {
    assert_eq!(
        problems("      item: uat\n      roles: [qa_lead, QA_Lead]\n"),
        ["line 9: check `uat_signed_off`, field `signoff.roles[1]`: role `QA_Lead` is listed twice; remove one"]
    );
}

#[test]
fn invalid_max_age_rejected() {
    assert_eq!(
        problems("      item: uat\n      max_age: three months\n"),
        ["line 9: check `uat_signed_off`, field `signoff.max_age`: invalid duration `three months`; write a number with a unit, such as `500ms`, `30s` or `5m`"]
    );
    assert_eq!(
        problems("      item: uat\n      max_age: 0d\n"),
        ["line 9: check `uat_signed_off`, field `signoff.max_age`: duration `0d` is zero; use a positive duration such as `30s`"]
    );
}

#[test]
fn empty_file_path_rejected() {
    let yaml = checklist("      item: uat\n").replace("{dir}/signoffs.yaml", "\"\"");
    assert_eq!(
        config_problems(&yaml),
        ["line 7: check `uat_signed_off`, field `signoff.file`: file is empty; name the attestation file, such as `/etc/readiness/signoffs.yaml`"]
    );
}

#[test]
fn missing_item_key_rejected() {
    assert_eq!(
        problems(""),
        ["line 6: check `uat_signed_off`, field `signoff.item`: required key `item` is missing"]
    );
}

#[test]
fn misspelled_key_rejected() {
    assert_eq!(
        problems("      item: uat\n      role: qa_lead\n"),
        ["line 9: check `uat_signed_off`, field `signoff.role`: unknown key `role`; check the spelling (expected one of `file`, `item`, `roles`, `max_age`)"]
    );
}

/// Makes a FIFO at `path` that no process writes to.
fn fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
}

#[tokio::test]
async fn fifo_signoff_file_errors_at_once() {
    // Reading a FIFO without a writer used to block a thread of the blocking pool for good, one
    // more on every run, until the run timed out.
    let checks = LoadedChecks::load(&(checklist("      item: uat\n")));
    fifo(&checks.dir.path().join("signoffs.yaml"));

    let outcome = checks.run("uat_signed_off").await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::SignoffFileUnreadable);
    assert!(
        outcome.message.contains("not a regular file but a FIFO"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn huge_signoff_file_not_read() {
    // A 4 GiB file used to be read whole into memory.
    let checks = LoadedChecks::load(&(checklist("      item: uat\n")));
    std::fs::File::create(checks.dir.path().join("signoffs.yaml"))
        .unwrap()
        .set_len(4 << 30)
        .unwrap();

    let outcome = checks.run("uat_signed_off").await;

    assert_eq!(outcome.status, Status::Error);
    assert_eq!(outcome.reason, Reason::SignoffFileUnreadable);
    assert!(
        outcome
            .message
            .contains("larger than the limit of 16777216 bytes"),
        "{}",
        outcome.message
    );
}
