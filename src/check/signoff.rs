//! The `signoff` check kind: a human sign-off recorded in an attestation file.
//!
//! Items that no probe can verify (UAT, a risk assessment, a rollback plan) are attested by a
//! person in a YAML file, typically a ConfigMap mounted as a file. The check reads the file on
//! every run, so an edit (or a ConfigMap update, which Kubernetes applies by swapping a symlink)
//! counts from the next run without a reload. A file that cannot be read or parsed is an `error`
//! and never a pass.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer};

use super::{Measure, MeasureFamily, MeasureType, Outcome, Reason};
use crate::config::BuildContext;
use crate::file;
use crate::report::rfc3339;

/// When the sign-offs the verdict rests on were made.
pub static SIGNED_TIMESTAMP: MeasureFamily = MeasureFamily {
    name: "readiness_signoff_signed_timestamp",
    help: "When the item's sign-off was made, as a Unix timestamp; with several required roles, the latest of their sign-offs",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// When the first of those sign-offs expires.
pub static EXPIRY_TIMESTAMP: MeasureFamily = MeasureFamily {
    name: "readiness_signoff_expiry_timestamp",
    help: "When the item's sign-off expires (expires_at or signed_at plus max_age, whichever is earlier), as a Unix timestamp",
    unit: Some("seconds"),
    metric_type: MeasureType::Gauge,
    labels: &[],
};

/// The measure families of this kind.
pub static MEASURES: &[&MeasureFamily] = &[&SIGNED_TIMESTAMP, &EXPIRY_TIMESTAMP];

/// The `signoff` block of a check, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignoffSpec {
    file: PathBuf,
    item: String,
    #[serde(default)]
    roles: Vec<String>,
    max_age: Option<String>,
}

/// A validated `signoff` check.
#[derive(Debug)]
pub struct SignoffCheck {
    file: PathBuf,
    item: String,
    roles: Vec<String>,
    max_age: Option<Duration>,
    /// `max_age` as written, for messages: `90d` reads better than `2months 29days 2h 52m 48s`.
    max_age_text: String,
}

/// The attestation file: a `signoffs` list, which may be empty or left without entries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestationFile {
    #[serde(default)]
    signoffs: Option<Vec<Attestation>>,
}

/// One sign-off of one item by one person.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attestation {
    item: Text,
    signed_by: Text,
    role: Text,
    signed_at: Timestamp,
    expires_at: Option<Timestamp>,
    /// Validated, but never shown: messages name only the signer and the role.
    #[serde(rename = "evidence")]
    _evidence: Evidence,
}

/// A string that is not blank.
#[derive(Debug)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Err(serde::de::Error::custom(
                "value is empty; item, signed_by and role need text",
            ));
        }
        Ok(Text(text.trim().to_string()))
    }
}

/// An RFC 3339 date and time with an offset, such as `2025-06-01T14:00:00Z`.
#[derive(Debug, Clone, Copy)]
struct Timestamp(SystemTime);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_timestamp(&text)
            .map(Timestamp)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_timestamp(text: &str) -> Result<SystemTime, String> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| {
            format!("invalid timestamp `{text}`; write RFC 3339 with a time zone, such as `2025-06-01T14:00:00Z` or `2025-06-01T16:00:00+02:00`")
        })
}

/// A link to the evidence of a sign-off: an absolute URL.
#[derive(Debug)]
struct Evidence;

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match url::Url::parse(text.trim()) {
            Ok(_) => Ok(Evidence),
            Err(_) => Err(serde::de::Error::custom(format!(
                "evidence `{text}` is not an absolute URL; link the signed document or ticket, such as `https://tracker.example.com/UAT-142`"
            ))),
        }
    }
}

impl Attestation {
    /// Returns the earlier of `expires_at` and `signed_at` plus `max_age`, if either applies.
    fn expiry(&self, max_age: Option<Duration>) -> Option<SystemTime> {
        let by_age = max_age.map(|age| self.signed_at.0 + age);
        match (self.expires_at.map(|at| at.0), by_age) {
            (Some(at), Some(age)) => Some(at.min(age)),
            (at, age) => at.or(age),
        }
    }

    fn signer(&self) -> String {
        format!("{} ({})", self.signed_by.0, self.role.0)
    }
}

/// The state of the sign-off of one required role (or of the item, when no role is required).
enum Verdict<'a> {
    /// The newest sign-off that is in force.
    Current(&'a Attestation),
    /// Every sign-off has expired; this is the newest.
    Expired(&'a Attestation),
    /// Every sign-off is dated in the future; this is the earliest.
    Future(&'a Attestation),
    /// No sign-off.
    Missing,
}

impl SignoffCheck {
    /// Validates the `signoff` block, recording every problem in `ctx`.
    pub fn build(spec: SignoffSpec, ctx: &mut BuildContext<'_>) -> Option<SignoffCheck> {
        let mut ok = true;
        if spec.file.as_os_str().is_empty() {
            ctx.problem(
                "signoff.file",
                "file is empty; name the attestation file, such as `/etc/readiness/signoffs.yaml`",
            );
            ok = false;
        }
        let item = spec.item.trim();
        if item.is_empty() {
            ctx.problem(
                "signoff.item",
                "item is empty; name the item id the attestation file uses, such as `uat`",
            );
            ok = false;
        }
        if spec.item != item {
            ctx.problem(
                "signoff.item",
                format!(
                    "item `{}` has leading or trailing spaces; write `{item}`",
                    spec.item
                ),
            );
            ok = false;
        }
        let mut roles: Vec<String> = Vec::new();
        for (i, role) in spec.roles.iter().enumerate() {
            let trimmed = role.trim();
            if trimmed.is_empty() {
                ctx.problem(
                    format!("signoff.roles[{i}]"),
                    "role is empty; name the role that must sign, such as `security_officer`",
                );
                ok = false;
            } else if roles.iter().any(|seen| seen.eq_ignore_ascii_case(trimmed)) {
                ctx.problem(
                    format!("signoff.roles[{i}]"),
                    format!("role `{trimmed}` is listed twice; remove one"),
                );
                ok = false;
            } else {
                roles.push(trimmed.to_string());
            }
        }
        let max_age = match &spec.max_age {
            Some(value) => match ctx.duration("signoff.max_age", value) {
                Some(age) => Some(age),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };

        ok.then(|| SignoffCheck {
            file: ctx.resolve_path(&spec.file),
            item: item.to_string(),
            roles,
            max_age,
            max_age_text: spec.max_age.unwrap_or_default(),
        })
    }

    /// Reads the attestation file and judges the item's sign-offs.
    pub async fn run(&self, _timeout: Duration) -> Outcome {
        let read = file::read_limited_async(self.file.clone(), file::MAX_DOCUMENT_BYTES).await;
        let text = match read.map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => {
                return Outcome::error(
                    Reason::SignoffFileInvalid,
                    format!(
                        "sign-off file `{}` is invalid: it is not UTF-8 text",
                        self.file.display()
                    ),
                )
            }
            Err(err) => {
                return Outcome::error(
                    Reason::SignoffFileUnreadable,
                    format!(
                        "cannot read sign-off file `{}`: {err}; check that the file (or the ConfigMap mounted there) exists and is readable",
                        self.file.display()
                    ),
                )
            }
        };
        let file = match parse_file(&text) {
            Ok(file) => file,
            Err(message) => {
                return Outcome::error(
                    Reason::SignoffFileInvalid,
                    format!(
                        "sign-off file `{}` is invalid: {message}",
                        self.file.display()
                    ),
                )
            }
        };
        let signoffs = file.signoffs.unwrap_or_default();
        self.evaluate(&signoffs, SystemTime::now())
    }

    fn evaluate(&self, signoffs: &[Attestation], now: SystemTime) -> Outcome {
        let entries: Vec<&Attestation> = signoffs
            .iter()
            .filter(|attestation| attestation.item.0 == self.item)
            .collect();
        if entries.is_empty() {
            return Outcome::fail(
                Reason::SignoffMissing,
                format!(
                    "no sign-off for item `{}` in `{}`; record one with signed_by, role, signed_at and evidence",
                    self.item,
                    self.file.display()
                ),
            );
        }

        let verdicts: Vec<(Option<&str>, Verdict<'_>)> = if self.roles.is_empty() {
            vec![(None, self.verdict(&entries, now))]
        } else {
            self.roles
                .iter()
                .map(|role| {
                    let of_role: Vec<&Attestation> = entries
                        .iter()
                        .copied()
                        .filter(|attestation| attestation.role.0.eq_ignore_ascii_case(role))
                        .collect();
                    (Some(role.as_str()), self.verdict(&of_role, now))
                })
                .collect()
        };
        let measures = self.measures(&verdicts);

        let future: Vec<String> = verdicts
            .iter()
            .filter_map(|(_, verdict)| match verdict {
                Verdict::Future(attestation) => Some(format!(
                    "the sign-off by {} is dated {}, in the future; correct signed_at",
                    attestation.signer(),
                    rfc3339(attestation.signed_at.0)
                )),
                _ => None,
            })
            .collect();
        let expired: Vec<String> = verdicts
            .iter()
            .filter_map(|(_, verdict)| match verdict {
                Verdict::Expired(attestation) => Some(self.describe_expired(attestation)),
                _ => None,
            })
            .collect();
        let missing: Vec<&str> = verdicts
            .iter()
            .filter_map(|(role, verdict)| matches!(verdict, Verdict::Missing).then_some(*role))
            .flatten()
            .collect();
        if !missing.is_empty() {
            let signers: Vec<String> = entries.iter().map(|entry| entry.signer()).collect();
            // The other roles' problems would otherwise show only after the missing role signs.
            let also: String = future
                .iter()
                .chain(&expired)
                .map(|problem| format!("; {problem}"))
                .collect();
            return Outcome::fail(
                Reason::SignoffRoleMissing,
                format!(
                    "item `{}` has no sign-off by role {}; signed by {}{}",
                    self.item,
                    quoted_list(&missing),
                    signers.join(", "),
                    also
                ),
            );
        }

        if !future.is_empty() {
            return Outcome::fail(
                Reason::SignoffMissing,
                format!("item `{}`: {}", self.item, future.join("; ")),
            )
            .with_measures(measures);
        }

        if !expired.is_empty() {
            return Outcome::fail(
                Reason::SignoffExpired,
                format!(
                    "item `{}`: {}; sign it off again",
                    self.item,
                    expired.join("; ")
                ),
            )
            .with_measures(measures);
        }

        let current: Vec<String> = verdicts
            .iter()
            .filter_map(|(_, verdict)| match verdict {
                Verdict::Current(attestation) => Some(self.describe_current(attestation)),
                _ => None,
            })
            .collect();
        Outcome::pass(current.join("; ")).with_measures(measures)
    }

    /// Picks the sign-off that decides the state of one group of sign-offs.
    fn verdict<'a>(&self, entries: &[&'a Attestation], now: SystemTime) -> Verdict<'a> {
        let signed: Vec<&Attestation> = entries
            .iter()
            .copied()
            .filter(|attestation| attestation.signed_at.0 <= now)
            .collect();
        let newest_current = signed
            .iter()
            .copied()
            .filter(|attestation| {
                attestation
                    .expiry(self.max_age)
                    .is_none_or(|expiry| expiry > now)
            })
            .max_by_key(|attestation| attestation.signed_at.0);
        if let Some(attestation) = newest_current {
            return Verdict::Current(attestation);
        }
        if let Some(attestation) = signed.iter().copied().max_by_key(|a| a.signed_at.0) {
            return Verdict::Expired(attestation);
        }
        match entries.iter().copied().min_by_key(|a| a.signed_at.0) {
            Some(attestation) => Verdict::Future(attestation),
            None => Verdict::Missing,
        }
    }

    /// Returns the signing and expiry times of the sign-offs the verdict rests on, or none while
    /// one of them is missing or dated in the future.
    fn measures(&self, verdicts: &[(Option<&str>, Verdict<'_>)]) -> Vec<Measure> {
        let mut deciding = Vec::new();
        for (_, verdict) in verdicts {
            match verdict {
                Verdict::Current(attestation) | Verdict::Expired(attestation) => {
                    deciding.push(*attestation)
                }
                Verdict::Future(_) | Verdict::Missing => return Vec::new(),
            }
        }
        let mut measures = Vec::new();
        if let Some(signed) = deciding.iter().map(|a| a.signed_at.0).max() {
            measures.push(Measure::new(&SIGNED_TIMESTAMP, unix_seconds(signed)));
        }
        if let Some(expiry) = deciding.iter().filter_map(|a| a.expiry(self.max_age)).min() {
            measures.push(Measure::new(&EXPIRY_TIMESTAMP, unix_seconds(expiry)));
        }
        measures
    }

    fn describe_current(&self, attestation: &Attestation) -> String {
        let expiry = match attestation.expiry(self.max_age) {
            Some(expiry) => format!(", expires {}", rfc3339(expiry)),
            None => String::new(),
        };
        format!(
            "signed by {} at {}{expiry}",
            attestation.signer(),
            rfc3339(attestation.signed_at.0)
        )
    }

    fn describe_expired(&self, attestation: &Attestation) -> String {
        let expiry = attestation
            .expiry(self.max_age)
            .unwrap_or(attestation.signed_at.0);
        let by_age = match (self.max_age, attestation.expires_at) {
            (Some(age), Some(at)) if attestation.signed_at.0 + age < at.0 => {
                format!(" (maximum age {})", self.max_age_text)
            }
            (Some(_), None) => format!(" (maximum age {})", self.max_age_text),
            _ => String::new(),
        };
        format!(
            "the sign-off by {} made at {} expired at {}{by_age}",
            attestation.signer(),
            rfc3339(attestation.signed_at.0),
            rfc3339(expiry)
        )
    }
}

/// Parses the attestation file; an empty file has no sign-offs. The error names the line and
/// column.
fn parse_file(text: &str) -> Result<AttestationFile, String> {
    if text.trim().is_empty() {
        return Ok(AttestationFile::default());
    }
    serde_saphyr::from_str::<AttestationFile>(text).map_err(|err| {
        // The snippet would copy lines of the file into the message, so only the first line of
        // the plain message is kept, with the position moved to the front.
        let plain = err.without_snippet().to_string();
        let plain = plain.lines().next().unwrap_or_default();
        match err.location() {
            Some(location) => {
                let suffix = format!(" at line {}, column {}", location.line(), location.column());
                let message = plain.strip_suffix(&suffix).unwrap_or(plain);
                format!(
                    "line {}, column {}: {message}",
                    location.line(),
                    location.column()
                )
            }
            None => plain.to_string(),
        }
    })
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod properties {
        use proptest::prelude::*;

        use super::super::parse_file;
        use super::ENTRY;

        /// Applies byte edits (replace, delete, insert) to `seed`.
        fn mutate(seed: &str, edits: &[(prop::sample::Index, u8, u8)]) -> String {
            let mut bytes = seed.as_bytes().to_vec();
            for (index, byte, operation) in edits {
                if bytes.is_empty() {
                    bytes.push(*byte);
                    continue;
                }
                let at = index.index(bytes.len());
                match operation % 3 {
                    0 => bytes[at] = *byte,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, *byte),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn parser_survives_arbitrary_text(text in "\\PC{0,300}") {
                let _ = parse_file(&text);
            }

            #[test]
            fn parser_survives_mutated_file(
                edits in prop::collection::vec(
                    (any::<prop::sample::Index>(), any::<u8>(), any::<u8>()),
                    1..10,
                ),
            ) {
                let text = mutate(&format!("signoffs:\n{ENTRY}{ENTRY}"), &edits);
                if let Err(message) = parse_file(&text) {
                    prop_assert!(!message.is_empty());
                }
            }
        }
    }

    const ENTRY: &str = "  - item: uat\n    signed_by: Jane Doe\n    role: qa_lead\n    signed_at: 2025-06-01T14:00:00Z\n    evidence: https://tracker.example.com/UAT-1\n";

    fn check(roles: &[&str], max_age: Option<Duration>) -> SignoffCheck {
        SignoffCheck {
            file: PathBuf::from("signoffs.yaml"),
            item: "uat".to_string(),
            roles: roles.iter().map(|role| role.to_string()).collect(),
            max_age,
            max_age_text: "90d".to_string(),
        }
    }

    fn at(text: &str) -> SystemTime {
        parse_timestamp(text).unwrap()
    }

    fn parse(text: &str) -> Vec<Attestation> {
        parse_file(text).unwrap().signoffs.unwrap_or_default()
    }

    #[test]
    fn timestamp_accepts_offsets() {
        assert_eq!(at("2025-06-01T16:00:00+02:00"), at("2025-06-01T14:00:00Z"));
        assert!(parse_timestamp("2025-06-01").is_err());
        assert!(parse_timestamp("2025-06-01 14:00:00").is_err());
    }

    #[test]
    fn parse_error_names_line_and_column() {
        let text = format!(
            "signoffs:\n{}",
            ENTRY.replace("2025-06-01T14:00:00Z", "yesterday")
        );
        let err = parse_file(&text).unwrap_err();
        assert!(
            err.starts_with("line 5, column 16: invalid timestamp `yesterday`"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn parse_rejects_unknown_key_and_blank_signer() {
        let text = format!("signoffs:\n{ENTRY}    colour: red\n");
        let err = parse_file(&text).unwrap_err();
        assert!(
            err.starts_with("line 7, column 5: unknown field `colour`"),
            "{err}"
        );

        let text = format!("signoffs:\n{}", ENTRY.replace("Jane Doe", "' '"));
        let err = parse_file(&text).unwrap_err();
        assert!(
            err.starts_with("line 3, column 16: value is empty"),
            "{err}"
        );
    }

    #[test]
    fn parse_rejects_evidence_that_is_not_a_url() {
        let text = format!(
            "signoffs:\n{}",
            ENTRY.replace("https://tracker.example.com/UAT-1", "see email")
        );
        let err = parse_file(&text).unwrap_err();
        assert!(
            err.starts_with("line 6, column 15: evidence `see email`"),
            "{err}"
        );
    }

    #[test]
    fn empty_file_has_no_signoffs() {
        for text in ["", "signoffs:\n", "signoffs: []\n"] {
            assert!(parse(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn max_age_expires_old_signoff() {
        let signoffs = parse(&format!("signoffs:\n{ENTRY}"));
        let ninety_days = Duration::from_secs(90 * 86_400);
        let outcome = check(&[], Some(ninety_days)).evaluate(&signoffs, at("2025-10-01T00:00:00Z"));
        assert_eq!(outcome.reason, Reason::SignoffExpired);
        assert!(
            outcome
                .message
                .contains("expired at 2025-08-30T14:00:00Z (maximum age 90d)"),
            "{}",
            outcome.message
        );

        let outcome = check(&[], Some(ninety_days)).evaluate(&signoffs, at("2025-07-01T00:00:00Z"));
        assert_eq!(outcome.reason, Reason::Ok);
        assert_eq!(outcome.measures.len(), 2);
    }

    #[test]
    fn newest_current_signoff_decides() {
        let renewed = ENTRY.replace(
            "2025-06-01T14:00:00Z",
            "2025-09-01T14:00:00Z\n    expires_at: 2026-09-01T00:00:00Z",
        );
        let old = ENTRY.replace(
            "2025-06-01T14:00:00Z",
            "2024-06-01T14:00:00Z\n    expires_at: 2025-01-01T00:00:00Z",
        );
        let signoffs = parse(&format!("signoffs:\n{old}{renewed}"));
        let outcome = check(&[], None).evaluate(&signoffs, at("2025-10-01T00:00:00Z"));
        assert_eq!(outcome.reason, Reason::Ok);
        assert_eq!(
            outcome.message,
            "signed by Jane Doe (qa_lead) at 2025-09-01T14:00:00Z, expires 2026-09-01T00:00:00Z"
        );
    }

    #[test]
    fn future_signoff_does_not_count() {
        let signoffs = parse(&format!("signoffs:\n{ENTRY}"));
        let outcome = check(&[], None).evaluate(&signoffs, at("2025-05-01T00:00:00Z"));
        assert_eq!(outcome.reason, Reason::SignoffMissing);
        assert!(
            outcome.message.contains("in the future"),
            "{}",
            outcome.message
        );
        assert!(outcome.measures.is_empty());
    }

    #[test]
    fn every_required_role_must_sign() {
        let signoffs = parse(&format!("signoffs:\n{ENTRY}"));
        let now = at("2025-07-01T00:00:00Z");
        let outcome = check(&["QA_LEAD"], None).evaluate(&signoffs, now);
        assert_eq!(outcome.reason, Reason::Ok, "roles compare without case");

        let outcome = check(&["qa_lead", "product_owner"], None).evaluate(&signoffs, now);
        assert_eq!(outcome.reason, Reason::SignoffRoleMissing);
        assert_eq!(
            outcome.message,
            "item `uat` has no sign-off by role `product_owner`; signed by Jane Doe (qa_lead)"
        );
        assert!(outcome.measures.is_empty());
    }

    #[test]
    fn missing_role_message_names_expired_signoff() {
        let signoffs = parse(&format!("signoffs:\n{ENTRY}"));
        let ninety_days = Duration::from_secs(90 * 86_400);
        let outcome = check(&["qa_lead", "product_owner"], Some(ninety_days))
            .evaluate(&signoffs, at("2025-10-01T00:00:00Z"));
        assert_eq!(outcome.reason, Reason::SignoffRoleMissing);
        assert!(
            outcome
                .message
                .starts_with("item `uat` has no sign-off by role `product_owner`"),
            "{}",
            outcome.message
        );
        assert!(
            outcome.message.contains("expired"),
            "the expired qa_lead sign-off is named: {}",
            outcome.message
        );
    }
}
