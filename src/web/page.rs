//! The status page: the checklist by section, readable without JavaScript, refreshing itself.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::check::Status;
use crate::report::{by_section, escape, rfc3339, CheckView};
use crate::state::ReloadStatus;

const REFRESH_SECONDS: u32 = 15;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#1b1f24;background:#fff}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .4rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
.summary{display:flex;gap:1rem;align-items:center;flex-wrap:wrap;margin:.6rem 0}
.gate{font-weight:700;padding:.35rem .8rem;border-radius:6px;color:#fff}
.gate.open{background:#1a7f37}.gate.closed{background:#cf222e}
table{border-collapse:collapse;width:100%;font-size:.92rem}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-size:.8rem;color:#57606a;text-transform:uppercase;letter-spacing:.03em}
.badge{display:inline-block;min-width:4.2rem;text-align:center;font-weight:700;font-size:.8rem;padding:.15rem .4rem;border-radius:4px;color:#fff}
.pass{background:#1a7f37}.fail{background:#cf222e}.error{background:#9a6700}.unknown{background:#6e7781}
.id{color:#57606a;font-family:ui-monospace,monospace;font-size:.8rem}.muted{color:#57606a}
tr:target{background:#fff8c5}
.when{white-space:nowrap}
.banner{border:1px solid #cf222e;background:#ffebe9;border-radius:6px;padding:.5rem .8rem;margin:.6rem 0}
.banner ul{margin:.3rem 0 0;padding-left:1.2rem}
";

/// Renders the whole page. `reload` is the configuration reload status, shown when the last
/// reload was rejected.
pub fn render(views: &[CheckView], reload: &ReloadStatus, now: SystemTime) -> String {
    let mut html = String::with_capacity(4096 + views.len() * 600);
    let blocking = views.iter().filter(|view| view.blocks()).count();
    let count = |status: Status| views.iter().filter(|view| view.status == status).count();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>{} Readiness checklist</title><style>{STYLE}</style></head><body>\n",
        if blocking == 0 { "OPEN" } else { "CLOSED" }
    );
    let _ = write!(
        html,
        "<h1>Readiness checklist</h1>\n<div class=\"summary\"><span class=\"gate {}\">Gate {}</span>\
         <span>{} passing, {} failing, {} in error, {} unknown</span>\
         <span class=\"muted\">{} blocking item(s) open &middot; updated {} &middot; refreshes every {REFRESH_SECONDS}s</span></div>\n",
        if blocking == 0 { "open" } else { "closed" },
        if blocking == 0 { "open" } else { "closed" },
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Error),
        count(Status::Unknown),
        blocking,
        rfc3339(now),
    );
    if !reload.successful {
        let _ = writeln!(
            html,
            "<div class=\"banner\"><strong>The last configuration reload was rejected.</strong> \
             The checks below still run the configuration applied at {}; the exporter's log \
             names each problem.</div>",
            rfc3339(reload.last_success)
        );
    }
    blocking_list(&mut html, views);
    if views.is_empty() {
        html.push_str("<p>No checks are configured.</p>\n");
    }
    for (section, members) in by_section(views) {
        let passing = members
            .iter()
            .filter(|view| view.status == Status::Pass)
            .count();
        let _ = write!(
            html,
            "<h2>{} <span class=\"muted\">({passing}/{})</span></h2>\n<table><thead><tr>\
             <th>Result</th><th>Item</th><th>Severity</th><th>Message</th><th>Last run</th><th>Runbook</th>\
             </tr></thead><tbody>\n",
            escape(&section),
            members.len()
        );
        for view in members {
            row(&mut html, view);
        }
        html.push_str("</tbody></table>\n");
    }
    html.push_str(
        "<p class=\"muted\">Machine-readable: <a href=\"api/v1/checks\">checks</a> &middot; \
         <a href=\"api/v1/gate\">gate</a> &middot; <a href=\"metrics\">metrics</a></p>\n</body></html>\n",
    );
    html
}

/// Lists the blocking items that keep the gate closed, linked to their rows, so the reader sees
/// them without scrolling through every section.
fn blocking_list(html: &mut String, views: &[CheckView]) {
    let blocking: Vec<&CheckView> = views.iter().filter(|view| view.blocks()).collect();
    if blocking.is_empty() {
        return;
    }
    html.push_str("<div class=\"banner\"><strong>Blocking the gate</strong><ul>\n");
    for view in blocking {
        let _ = writeln!(
            html,
            "<li><span class=\"badge {status}\">{upper}</span> <a href=\"#check-{id}\">{title}</a> \
             <span class=\"id\">{reason}</span></li>",
            status = view.status.as_str(),
            upper = view.status.as_str().to_uppercase(),
            id = escape(&view.id),
            title = escape(&view.title),
            reason = view.reason,
        );
    }
    html.push_str("</ul></div>\n");
}

fn row(html: &mut String, view: &CheckView) {
    let status = view.status.as_str();
    let blocking = if view.blocking {
        ""
    } else {
        " <span class=\"muted\">(non-blocking)</span>"
    };
    let runbook = match &view.runbook_url {
        Some(url) => format!("<a href=\"{}\" rel=\"noreferrer\">runbook</a>", escape(url)),
        None => "<span class=\"muted\">none</span>".to_string(),
    };
    let _ = writeln!(
        html,
        "<tr id=\"check-{id}\"><td><span class=\"badge {status}\">{upper}</span></td>\
         <td><a href=\"#check-{id}\">{title}</a><br><span class=\"id\">{id} &middot; {kind}</span></td>\
         <td>{severity}{blocking}</td><td>{message}<br><span class=\"id\">{reason}</span></td>\
         <td class=\"when\">{last_run}</td><td>{runbook}</td></tr>",
        id = escape(&view.id),
        upper = status.to_uppercase(),
        title = escape(&view.title),
        kind = view.kind,
        severity = view.severity.as_str(),
        message = escape(&view.message),
        reason = view.reason,
        last_run = view.last_run.as_deref().map(escape).unwrap_or_else(|| "never".to_string()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<script>\"x\"&'"),
            "&lt;script&gt;&quot;x&quot;&amp;&apos;"
        );
    }
}
