//! The `/metrics` exposition written by hand, byte for byte as prometheus-client writes it.
//!
//! prometheus-client's text encoder escapes and joins every label of every series on every
//! scrape. With 10,000 checks that is about 110,000 series and 330,000 label pairs, and encoding
//! took about 11 times as long as copying the same bytes. This writer renders each check's label
//! sets and interval once, when the state receives the checks' definitions ([`SeriesTable`]), and the
//! values of each run once, when the state stores its result ([`RunValues`]). A scrape only
//! appends those strings and the family names, and formats no floats.
//!
//! The families, their order, names, help texts, units and value formats must stay those of the
//! prometheus-client collector in the parent module ([`super::registry`]). The unit test
//! `writer_matches_prometheus_client` compares both encodings line by line for a state that
//! covers every family, every status and label values that need escaping, so a change to one
//! encoder without the other fails that test.

use std::time::SystemTime;

use super::{info_labels, seconds, unit_of, REVISION, VERSION};
use crate::check::{measure_families, Measure, MeasureFamily, Status};
use crate::config::CheckDef;
use crate::state::{CheckResult, Entry, State};

/// The parts of every check's series that change only with its definition, in the exposition
/// format: label sets escaped and joined, and the interval.
///
/// The parts of all checks share one buffer in configuration order, so a scrape reads them in
/// sequence. With one allocation per check they were scattered over the heap, and a scrape of
/// 10,000 checks took twice the CPU time (docs/benchmarks.md).
#[derive(Debug, Default)]
pub(crate) struct SeriesTable {
    /// Each check's `check="ID"`, then the other six labels of `readiness_check_info` from
    /// `,title=` to `runbook_url`, then the interval in seconds and its line feed.
    text: String,
    /// For each check, the end in `text` of its `check` label, of its info labels and of its
    /// interval line. A check's parts start where the previous check's end.
    ends: Vec<[usize; 3]>,
}

/// One check's parts in a [`SeriesTable`].
struct Series<'a> {
    /// `check="ID"`, the labels of every per-check series.
    check: &'a str,
    /// The seven labels of `readiness_check_info`, from `check` to `runbook_url`.
    info: &'a str,
    /// The interval, formatted, with the line feed that ends its line.
    interval: &'a str,
}

impl SeriesTable {
    /// Renders the parts of `defs`, in their order.
    pub(crate) fn render<'d>(defs: impl ExactSizeIterator<Item = &'d CheckDef>) -> SeriesTable {
        let mut table = SeriesTable {
            text: String::with_capacity(defs.len() * 256),
            ends: Vec::with_capacity(defs.len()),
        };
        for def in defs {
            let text = &mut table.text;
            let [(check, id), others @ ..] = info_labels(def);
            push_label(text, check, id);
            let check_end = text.len();
            for (name, value) in others {
                text.push(',');
                push_label(text, name, value);
            }
            let info_end = text.len();
            push_value_line(text, def.interval.as_secs_f64());
            table.ends.push([check_end, info_end, text.len()]);
        }
        table.text.shrink_to_fit();
        table
    }

    /// Returns the parts of the check at `index` in configuration order.
    fn get(&self, index: usize) -> Series<'_> {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1][2],
        };
        let [check_end, info_end, end] = self.ends[index];
        Series {
            check: &self.text[start..check_end],
            info: &self.text[start..info_end],
            interval: &self.text[info_end..end],
        }
    }
}

/// The room for the three lines every run has: dtoa writes at most 25 bytes, and each line ends
/// in a line feed.
const HEAD: usize = 3 * 26;

/// The sample values of one run, formatted when the state stores the result, so that a scrape
/// copies text instead of formatting floats.
///
/// Every value is a line that ends in a line feed. The duration, the finish time and the time of
/// the last pass (absent when the check never passed) are kept inline, so that a scrape reads them
/// from the state's entry in sequence instead of following a pointer per check.
#[derive(Clone, Debug)]
pub(crate) struct RunValues {
    /// The duration, finish time and last pass lines, followed by unused bytes.
    head: [u8; HEAD],
    /// The end in `head` of the duration, the finish time and the last pass.
    ends: [u8; 3],
    /// The value of each of the outcome's measures, in order.
    measures: Box<str>,
}

impl RunValues {
    /// Formats the values of `result`, with `last_success` as the time of the last pass.
    pub(crate) fn render(result: &CheckResult, last_success: Option<SystemTime>) -> RunValues {
        let mut lines = String::with_capacity(HEAD);
        push_value_line(&mut lines, result.duration.as_secs_f64());
        let duration_end = lines.len();
        push_value_line(&mut lines, seconds(result.finished()));
        let finished_end = lines.len();
        if let Some(time) = last_success {
            push_value_line(&mut lines, seconds(time));
        }
        let mut head = [0; HEAD];
        let used = lines.len().min(HEAD);
        head[..used].copy_from_slice(&lines.as_bytes()[..used]);
        let ends = [duration_end, finished_end, used].map(|end| end.min(used) as u8);

        let mut measures = String::with_capacity(26 * result.outcome.measures.len());
        for measure in &result.outcome.measures {
            push_value_line(&mut measures, measure.value);
        }
        RunValues {
            head,
            ends,
            measures: measures.into_boxed_str(),
        }
    }

    fn head(&self, start: u8, end: u8) -> &str {
        std::str::from_utf8(&self.head[usize::from(start)..usize::from(end)]).unwrap_or_default()
    }

    fn duration(&self) -> &str {
        self.head(0, self.ends[0])
    }

    fn finished(&self) -> &str {
        self.head(self.ends[0], self.ends[1])
    }

    fn last_success(&self) -> Option<&str> {
        let line = self.head(self.ends[1], self.ends[2]);
        (!line.is_empty()).then_some(line)
    }

    /// Returns the value lines of the measures, in the order of the outcome's measures.
    fn measures(&self) -> impl Iterator<Item = &str> {
        self.measures.split_inclusive('\n')
    }
}

/// Appends `value` in prometheus-client's float format (dtoa's shortest round-trip form, such
/// as `1.0` or `1733350000.25`) and a line feed.
fn push_value_line(out: &mut String, value: f64) {
    out.push_str(dtoa::Buffer::new().format(value));
    out.push('\n');
}

/// Encodes the state in the OpenMetrics text format, as `/metrics` serves it.
///
/// The output equals [`super::encode`] of [`super::registry`] for the same state.
pub fn encode_state(state: &State) -> String {
    let now = SystemTime::now();
    state.with_series(|entries, series| {
        let mut writer = Writer {
            out: String::with_capacity(estimated_size(series)),
            series,
        };
        writer.write_checks(entries, now);
        writer.write_exporter(state, entries);
        writer.write_measures(entries);
        writer.out.push_str("# EOF\n");
        writer.out
    })
}

/// Returns an estimate of the exposition's size that is rarely too small, so the output is
/// allocated once instead of growing through a dozen copies at 10,000 checks.
fn estimated_size(series: &SeriesTable) -> usize {
    let labels: usize = (0..series.ends.len())
        .map(|index| 16 * (series.get(index).check.len() + 64))
        .sum();
    series.text.len() + labels + 8 * 1024
}

struct Writer<'a> {
    out: String,
    /// The label sets and intervals of the checks being written, in their order.
    series: &'a SeriesTable,
}

impl<'a> Writer<'a> {
    fn write_checks(&mut self, entries: &'a [Entry], now: SystemTime) {
        let series = self.series;
        let statuses: Vec<Status> = entries.iter().map(|entry| entry.status_at(now)).collect();

        self.per_check(
            "readiness_check_success",
            "1 when the check's last result is a pass, 0 otherwise",
            None,
            entries,
            // The float format of 1 and 0, as dtoa writes them.
            |i, _| {
                Some(if statuses[i] == Status::Pass {
                    "1.0\n"
                } else {
                    "0.0\n"
                })
            },
        );

        self.descriptor(
            "readiness_check_result",
            "The check's current result as a state set over pass, fail, error and unknown",
            None,
            "gauge",
        );
        // The end of each state's line after the check label, for a value of 0 and of 1.
        let line_ends = Status::ALL.map(|candidate| {
            [0, 1].map(|value| format!(",result=\"{}\"}} {value}\n", candidate.as_str()))
        });
        for (index, status) in statuses.iter().enumerate() {
            let check = self.series.get(index).check;
            for (candidate, ends) in Status::ALL.iter().zip(&line_ends) {
                self.out.push_str("readiness_check_result{");
                self.out.push_str(check);
                self.out.push_str(&ends[usize::from(*status == *candidate)]);
            }
        }

        self.descriptor(
            "readiness_check_info",
            "Metadata of each check; always 1, joined on the check label",
            None,
            "gauge",
        );
        for index in 0..entries.len() {
            self.out.push_str("readiness_check_info{");
            self.out.push_str(self.series.get(index).info);
            self.out.push_str("} 1\n");
        }

        self.per_check(
            "readiness_check_duration",
            "Duration of the check's last run",
            Some("seconds"),
            entries,
            |_, entry| Some(entry.run_values.as_ref()?.duration()),
        );
        self.per_check(
            "readiness_check_interval",
            "Configured interval between runs of the check",
            Some("seconds"),
            entries,
            |index, _| Some(series.get(index).interval),
        );
        self.per_check(
            "readiness_check_last_run_timestamp",
            "When the check's last run finished, as a Unix timestamp",
            Some("seconds"),
            entries,
            |_, entry| Some(entry.run_values.as_ref()?.finished()),
        );
        self.per_check(
            "readiness_check_last_success_timestamp",
            "When the check last passed, as a Unix timestamp",
            Some("seconds"),
            entries,
            |_, entry| entry.run_values.as_ref()?.last_success(),
        );

        self.descriptor(
            "readiness_check_failures",
            "Runs of the check that did not pass, by reason",
            None,
            "counter",
        );
        for (index, entry) in entries.iter().enumerate() {
            for (reason, count) in &entry.failures {
                self.out.push_str("readiness_check_failures_total{");
                self.out.push_str(self.series.get(index).check);
                self.out.push_str(",reason=\"");
                self.out.push_str(reason.as_str());
                self.out.push_str("\"} ");
                self.out.push_str(itoa::Buffer::new().format(*count));
                self.out.push('\n');
            }
        }

        let gate_open = entries
            .iter()
            .zip(&statuses)
            .all(|(entry, status)| !entry.def.blocking || *status == Status::Pass);
        self.scalar(
            "readiness_gate_open",
            "1 when every blocking check passes",
            None,
            f64::from(u8::from(gate_open)),
        );
    }

    fn write_exporter(&mut self, state: &State, entries: &[Entry]) {
        self.descriptor(
            "readiness_exporter_build_info",
            "Version and git revision of the exporter, and the URL of its status page; always 1",
            None,
            "gauge",
        );
        let external_url = state.external_url().unwrap_or_default();
        self.out.push_str("readiness_exporter_build_info{");
        push_label(&mut self.out, "version", VERSION);
        self.out.push(',');
        push_label(&mut self.out, "revision", REVISION);
        self.out.push(',');
        push_label(&mut self.out, "external_url", &external_url);
        self.out.push_str("} 1\n");

        self.scalar(
            "readiness_exporter_start_time",
            "When the exporter started, as a Unix timestamp",
            Some("seconds"),
            seconds(state.started),
        );
        self.scalar(
            "readiness_exporter_checks",
            "Number of configured checks",
            None,
            entries.len() as f64,
        );
        let reload = state.reload_status();
        self.scalar(
            "readiness_exporter_config_last_reload_successful",
            "1 when the last configuration reload was applied",
            None,
            f64::from(u8::from(reload.successful)),
        );
        self.scalar(
            "readiness_exporter_config_last_reload_success_timestamp",
            "When a configuration was last applied, as a Unix timestamp",
            Some("seconds"),
            seconds(reload.last_success),
        );
        self.descriptor(
            "readiness_exporter_config_reloads",
            "Configuration reloads since start, by result: success (applied) or failure (rejected)",
            None,
            "counter",
        );
        for (result, count) in [("success", reload.successes), ("failure", reload.failures)] {
            self.out
                .push_str("readiness_exporter_config_reloads_total{");
            push_label(&mut self.out, "result", result);
            self.out.push_str("} ");
            self.out.push_str(&count.to_string());
            self.out.push('\n');
        }
    }

    /// Writes each kind's measure families in the order of [`measure_families`], with the series
    /// of one family together and families without series left out.
    fn write_measures(&mut self, entries: &'a [Entry]) {
        let families = measure_families();
        let mut series: Vec<Vec<(usize, &Measure, &str)>> = vec![Vec::new(); families.len()];
        // Checks of one kind report the same families, so the previous match is tried first.
        let mut previous = 0;
        for (index, entry) in entries.iter().enumerate() {
            let (Some(last), Some(values)) = (&entry.last, &entry.run_values) else {
                continue;
            };
            for (measure, value) in last.outcome.measures.iter().zip(values.measures()) {
                let Some(family) = family_index(&families, measure.family, previous) else {
                    continue;
                };
                previous = family;
                series[family].push((index, measure, value));
            }
        }

        for (family, series) in families.iter().zip(series) {
            if series.is_empty() {
                continue;
            }
            let unit = unit_of(family);
            let unit = unit.as_ref().map(|unit| unit.as_str());
            self.descriptor(family.name, family.help, unit, "gauge");
            let name = full_name(family.name, unit);
            for (index, measure, value) in series {
                self.out.push_str(&name);
                self.out.push('{');
                self.out.push_str(self.series.get(index).check);
                for (label, label_value) in family.labels.iter().zip(&measure.label_values) {
                    self.out.push(',');
                    push_label(&mut self.out, label, label_value);
                }
                self.out.push_str("} ");
                self.out.push_str(value);
            }
        }
    }

    /// Writes a gauge family with one series per check, labelled `check`. `value` returns a
    /// check's formatted value with its line feed, or `None` for a check without a series.
    fn per_check(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&str>,
        entries: &'a [Entry],
        value: impl Fn(usize, &'a Entry) -> Option<&'a str>,
    ) {
        self.descriptor(name, help, unit, "gauge");
        let mut series_start = full_name(name, unit);
        series_start.push('{');
        for (i, entry) in entries.iter().enumerate() {
            let Some(value) = value(i, entry) else {
                continue;
            };
            self.out.push_str(&series_start);
            self.out.push_str(self.series.get(i).check);
            self.out.push_str("} ");
            self.out.push_str(value);
        }
    }

    fn scalar(&mut self, name: &str, help: &str, unit: Option<&str>, value: f64) {
        self.descriptor(name, help, unit, "gauge");
        self.out.push_str(&full_name(name, unit));
        self.push_f64(value);
        self.out.push('\n');
    }

    /// Writes the `# HELP`, `# TYPE` and, with a unit, `# UNIT` lines of a family.
    fn descriptor(&mut self, name: &str, help: &str, unit: Option<&str>, metric_type: &str) {
        let full = full_name(name, unit);
        for line in [("# HELP ", help), ("# TYPE ", metric_type)] {
            self.out.push_str(line.0);
            self.out.push_str(&full);
            self.out.push(' ');
            self.out.push_str(line.1);
            self.out.push('\n');
        }
        if let Some(unit) = unit {
            self.out.push_str("# UNIT ");
            self.out.push_str(&full);
            self.out.push(' ');
            self.out.push_str(unit);
            self.out.push('\n');
        }
    }

    /// Writes a space and `value` in prometheus-client's float format (dtoa's shortest
    /// round-trip form, such as `1.0` or `1733350000.25`).
    fn push_f64(&mut self, value: f64) {
        self.out.push(' ');
        self.out.push_str(dtoa::Buffer::new().format(value));
    }
}

/// Returns the position of `family` in `families`, trying `hint` first.
fn family_index(
    families: &[&'static MeasureFamily],
    family: &'static MeasureFamily,
    hint: usize,
) -> Option<usize> {
    if families
        .get(hint)
        .is_some_and(|candidate| std::ptr::eq(*candidate, family))
    {
        return Some(hint);
    }
    families
        .iter()
        .position(|candidate| std::ptr::eq(*candidate, family))
}

fn full_name(name: &str, unit: Option<&str>) -> String {
    match unit {
        Some(unit) => format!("{name}_{unit}"),
        None => name.to_string(),
    }
}

/// Appends `name="value"`, escaping the value as the OpenMetrics format requires: backslash,
/// double quote and line feed.
fn push_label(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    let mut start = 0;
    for (index, byte) in value.bytes().enumerate() {
        let escaped = match byte {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        out.push_str(&value[start..index]);
        out.push_str(escaped);
        start = index + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::check::scripted::{Behaviour, Counters, ScriptedCheck};
    use crate::check::{http, tls, Kind, Outcome, Reason};
    use crate::config::Severity;
    use crate::state::CheckResult;

    fn def(id: &str, title: &str, blocking: bool, runbook_url: Option<&str>) -> Arc<CheckDef> {
        Arc::new(CheckDef {
            id: id.to_string(),
            title: title.to_string(),
            section: "Sección \"II\"".to_string(),
            severity: Severity::Critical,
            blocking,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            jitter: Duration::ZERO,
            runbook_url: runbook_url.map(str::to_string),
            kind: Kind::Scripted(ScriptedCheck {
                behaviour: Behaviour::Panic,
                counters: Arc::new(Counters::default()),
            }),
            definition: serde_json::json!({ "id": id, "title": title }).into(),
        })
    }

    fn result(outcome: Outcome, age: Duration) -> CheckResult {
        CheckResult {
            outcome,
            started: SystemTime::now() - age,
            duration: Duration::from_micros(2_345_678),
        }
    }

    /// Builds a state with every status, repeated failure reasons, measures with and without
    /// labels, and label values that need escaping.
    fn varied_state() -> Arc<State> {
        let passing = def(
            "passing",
            "Plain title",
            true,
            Some("https://runbooks.example.com/a"),
        );
        let failing = def(
            "failing",
            "Title with \"quotes\", a back\\slash\nand a line feed",
            true,
            Some("https://runbooks.example.com/b?x=\"y\""),
        );
        let never = def("never_run", "Not run yet", false, None);
        let stale = def("stale", "Last result is old", true, None);
        let state = Arc::new(State::new());
        state.set_checks(&[passing.clone(), failing.clone(), never, stale.clone()]);
        state.set_external_url(Some("https://status.example.com/?q=\"a\\b\"".to_string()));
        state.set_reload(false, SystemTime::now());

        let status = |code| vec![Measure::new(&http::STATUS_CODE, code)];
        state.record(
            &passing,
            result(
                Outcome::pass("fine").with_measures(status(200.0)),
                Duration::ZERO,
            ),
        );
        for reason in [
            Reason::UnexpectedStatus,
            Reason::Timeout,
            Reason::UnexpectedStatus,
        ] {
            let measures = vec![
                Measure::new(&tls::NOT_AFTER, 1_767_225_600.5),
                Measure {
                    family: &tls::VERSION_INFO,
                    label_values: vec!["1.\"3\"\\\n".to_string()],
                    value: 1.0,
                },
                Measure::new(&http::STATUS_CODE, 503.0),
            ];
            let outcome = Outcome::fail(reason, "not met").with_measures(measures);
            state.record(&failing, result(outcome, Duration::from_secs(1)));
        }
        let outcome = Outcome::error(Reason::ConnectionRefused, "refused");
        state.record(&stale, result(outcome, Duration::from_secs(3600)));
        state
    }

    #[test]
    fn writer_matches_prometheus_client() {
        let state = varied_state();

        let written = encode_state(&state);
        let reference = crate::metrics::encode(&crate::metrics::registry(state));

        let written_lines: Vec<&str> = written.lines().collect();
        let reference_lines: Vec<&str> = reference.lines().collect();
        for (number, (line, expected)) in written_lines.iter().zip(&reference_lines).enumerate() {
            assert_eq!(line, expected, "line {} differs", number + 1);
        }
        assert_eq!(written_lines.len(), reference_lines.len());
        assert_eq!(written, reference);
    }

    #[test]
    fn writer_covers_every_status_and_escape() {
        let written = encode_state(&varied_state());

        for expected in [
            "readiness_check_result{check=\"passing\",result=\"pass\"} 1",
            "readiness_check_result{check=\"failing\",result=\"fail\"} 1",
            "readiness_check_result{check=\"never_run\",result=\"unknown\"} 1",
            "readiness_check_result{check=\"stale\",result=\"unknown\"} 1",
            "readiness_check_failures_total{check=\"failing\",reason=\"unexpected_status\"} 2",
            "title=\"Title with \\\"quotes\\\", a back\\\\slash\\nand a line feed\"",
            "readiness_tls_version_info{check=\"failing\",version=\"1.\\\"3\\\"\\\\\\n\"} 1.0",
            "readiness_exporter_config_last_reload_successful 0.0",
            "readiness_gate_open 0.0",
        ] {
            assert!(
                written.contains(expected),
                "missing `{expected}` in:\n{written}"
            );
        }
    }

    #[test]
    fn changed_definition_renders_new_labels() {
        let state = State::new();
        state.set_checks(&[def("api", "Old title", true, None)]);
        assert!(encode_state(&state).contains("title=\"Old title\""));

        state.set_checks(&[def("api", "New title", true, None)]);

        let written = encode_state(&state);
        assert!(written.contains("title=\"New title\""));
        assert!(!written.contains("Old title"));
    }

    #[test]
    fn reload_reorder_keeps_labels() {
        let state = varied_state();
        let mut defs: Vec<Arc<CheckDef>> = Vec::new();
        state.for_each(|entry| defs.push(entry.def.clone()));
        // Reversed, without the first check, and with a new one at the front.
        let mut reordered = vec![def("added", "Added later", false, None)];
        reordered.extend(defs.iter().skip(1).rev().cloned());
        state.set_checks(&reordered);

        let written = encode_state(&state);
        let reference = crate::metrics::encode(&crate::metrics::registry(state.clone()));
        assert_eq!(written, reference);
        assert!(!written.contains(r#"check="passing""#));
        let info = written
            .lines()
            .find(|line| line.starts_with(r#"readiness_check_info{check="failing""#))
            .expect("info series of the kept check");
        assert!(
            info.contains(r#"runbook_url="https://runbooks.example.com/b?x=\"y\"""#),
            "{info}"
        );
    }
}
