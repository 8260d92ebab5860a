//! Views of check results shared by the JSON API and the one-shot `check` command, and the
//! command's output formats: table, JSON, JUnit XML and Markdown.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde::Serialize;

use crate::check::{Reason, Status};
use crate::config::Severity;
use crate::state::Entry;

/// One check as the JSON API and reports show it.
#[derive(Debug, Serialize)]
pub struct CheckView {
    /// Stable identifier.
    pub id: String,
    /// The checklist's wording.
    pub title: String,
    /// The checklist section.
    pub section: String,
    /// Severity.
    pub severity: Severity,
    /// The kind's name.
    pub kind: &'static str,
    /// Whether the check counts for the gate.
    pub blocking: bool,
    /// Where to read what to do.
    pub runbook_url: Option<String>,
    /// Interval between runs, in seconds.
    pub interval_seconds: f64,
    /// Current status; unknown when not run or stale.
    pub status: Status,
    /// Why.
    pub reason: Reason,
    /// One line for a human.
    pub message: String,
    /// The main observed value, where the kind has one.
    pub value: Option<f64>,
    /// When the last run finished, RFC 3339.
    pub last_run: Option<String>,
    /// When the check last passed, RFC 3339.
    pub last_success: Option<String>,
    /// How long the last run took, in seconds.
    pub duration_seconds: Option<f64>,
}

impl CheckView {
    /// Builds the view of `entry` as it stands at `now`.
    pub fn new(entry: &Entry, now: SystemTime) -> Self {
        let def = &entry.def;
        let (status, reason, message) = entry.effective(now);
        let last = entry.last.as_ref();
        CheckView {
            id: def.id.clone(),
            title: def.title.clone(),
            section: def.section.clone(),
            severity: def.severity,
            kind: def.kind.name(),
            blocking: def.blocking,
            runbook_url: def.runbook_url.clone(),
            interval_seconds: def.interval.as_secs_f64(),
            status,
            reason,
            message,
            value: last.and_then(|last| last.outcome.value),
            last_run: last.map(|last| rfc3339(last.finished())),
            last_success: entry.last_success.map(rfc3339),
            duration_seconds: last.map(|last| last.duration.as_secs_f64()),
        }
    }

    /// True when the check keeps the gate closed.
    pub fn blocks(&self) -> bool {
        self.blocking && self.status != Status::Pass
    }
}

/// Formats a time as RFC 3339 in UTC with whole seconds.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The output formats of the `check` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// The same document as `/api/v1/checks`.
    Json,
    /// JUnit XML, one test case per check, for CI test reports.
    Junit,
    /// The checklist by section with `[x]` and `[ ]`, for a deployment record.
    Markdown,
}

/// Renders `views` in `format`.
pub fn render(format: Format, views: &[CheckView]) -> String {
    match format {
        Format::Table => table(views),
        Format::Json => json(views),
        Format::Junit => junit(views),
        Format::Markdown => markdown(views),
    }
}

/// The JSON document of `/api/v1/checks`.
pub fn json(views: &[CheckView]) -> String {
    #[derive(Serialize)]
    struct Document<'a> {
        gate_open: bool,
        checks: &'a [CheckView],
    }
    let document = Document {
        gate_open: !views.iter().any(CheckView::blocks),
        checks: views,
    };
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// The widest title the table shows; longer titles are cut with an ellipsis so that the
/// message column stays aligned. The other formats carry the whole title.
const MAX_TITLE_WIDTH: usize = 60;

/// Cuts `text` to at most `max` characters, ending a cut text with `…`.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn table(views: &[CheckView]) -> String {
    let headers = ["RESULT", "SEVERITY", "ID", "TITLE", "MESSAGE"];
    let rows: Vec<[String; 5]> = views
        .iter()
        .map(|view| {
            [
                view.status.as_str().to_uppercase(),
                view.severity.as_str().to_string(),
                view.id.clone(),
                shorten(&view.title, MAX_TITLE_WIDTH),
                view.message.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row.iter()).take(4) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        for (i, cell) in cells.iter().enumerate() {
            if i == 4 {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{:<width$}  ", cell, width = widths[i]);
            }
        }
        out.push('\n');
    };
    line(headers);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    let blocking = views.iter().filter(|view| view.blocks()).count();
    let _ = writeln!(
        out,
        "\n{} check(s), {} passing; gate {} ({} blocking check(s) not passing)",
        views.len(),
        views
            .iter()
            .filter(|view| view.status == Status::Pass)
            .count(),
        if blocking == 0 { "open" } else { "closed" },
        blocking
    );
    out
}

fn junit(views: &[CheckView]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = views.iter().filter(|v| v.status == Status::Fail).count();
    let errors = views
        .iter()
        .filter(|v| matches!(v.status, Status::Error | Status::Unknown))
        .count();
    let _ = writeln!(
        out,
        "<testsuites name=\"readiness\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">",
        views.len()
    );
    for (section, members) in by_section(views) {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\">",
            escape(&section),
            members.len()
        );
        for view in members {
            let time = view.duration_seconds.unwrap_or(0.0);
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}: {}\" time=\"{time:.3}\"",
                escape(&section),
                escape(&view.id),
                escape(&view.title)
            );
            let element = match view.status {
                Status::Pass => None,
                Status::Fail => Some("failure"),
                Status::Error | Status::Unknown => Some("error"),
            };
            match element {
                None => out.push_str("/>\n"),
                Some(element) => {
                    let _ = writeln!(
                        out,
                        ">\n      <{element} type=\"{}\" message=\"{}\"/>\n    </testcase>",
                        view.reason,
                        escape(&view.message)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn markdown(views: &[CheckView]) -> String {
    let mut out = String::from("# Go-live checklist\n");
    for (section, members) in by_section(views) {
        let _ = writeln!(out, "\n## {section}\n");
        for view in members {
            let mark = if view.status == Status::Pass {
                "x"
            } else {
                " "
            };
            let _ = write!(
                out,
                "- [{mark}] **{}** (`{}`)",
                markdown_text(&view.title),
                view.id
            );
            if view.status != Status::Pass {
                let _ = write!(
                    out,
                    " — {} ({}): {}",
                    view.status,
                    view.reason,
                    markdown_text(&view.message)
                );
            }
            out.push('\n');
        }
    }
    let blocking = views.iter().filter(|view| view.blocks()).count();
    let _ = writeln!(
        out,
        "\n{} of {} items done; gate {}.",
        views.iter().filter(|v| v.status == Status::Pass).count(),
        views.len(),
        if blocking == 0 {
            "open".to_string()
        } else {
            format!("closed by {blocking} blocking item(s)")
        }
    );
    out
}

/// Groups views by section, keeping the order of first appearance.
pub fn by_section(views: &[CheckView]) -> Vec<(String, Vec<&CheckView>)> {
    let mut sections: Vec<(String, Vec<&CheckView>)> = Vec::new();
    for view in views {
        match sections.iter_mut().find(|(name, _)| *name == view.section) {
            Some((_, members)) => members.push(view),
            None => sections.push((view.section.clone(), vec![view])),
        }
    }
    sections
}

/// Escapes text for XML and HTML element content and quoted attribute values, and drops
/// control characters that neither format allows.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn markdown_text(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_keeps_short_text() {
        assert_eq!(shorten("API answers", 60), "API answers");
    }

    #[test]
    fn shorten_cuts_long_text_to_max() {
        let long = "x".repeat(80);
        let cut = shorten(&long, 60);
        assert_eq!(cut.chars().count(), 60);
        assert!(cut.ends_with('…'));
    }
}
