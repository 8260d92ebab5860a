//! The latest result of every check. Every output reads this and nothing else.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::check::{Outcome, Reason, Status};
use crate::config::CheckDef;
use crate::metrics::{RunValues, SeriesTable};

/// How many intervals a result stays current before it counts as unknown.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// One finished run of a check.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// The verdict of the run.
    pub outcome: Outcome,
    /// When the run started.
    pub started: SystemTime,
    /// How long the run took.
    pub duration: Duration,
}

impl CheckResult {
    /// When the run finished.
    pub fn finished(&self) -> SystemTime {
        self.started + self.duration
    }
}

/// Everything the state keeps about one check.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The check's current definition.
    pub def: Arc<CheckDef>,
    /// The last finished run.
    pub last: Option<CheckResult>,
    /// When the check last passed.
    pub last_success: Option<SystemTime>,
    /// Non-passing runs by reason, since the check was defined as it is now.
    pub failures: BTreeMap<Reason, u64>,
    /// The `/metrics` sample values of the last run, formatted when its result was stored.
    pub(crate) run_values: Option<RunValues>,
    /// When the last result becomes stale, or `None` before the first run or when that time
    /// is past what `SystemTime` can hold.
    stale_at: Option<SystemTime>,
}

impl Entry {
    fn new(def: Arc<CheckDef>) -> Self {
        Entry {
            def,
            last: None,
            last_success: None,
            failures: BTreeMap::new(),
            run_values: None,
            stale_at: None,
        }
    }

    /// Returns the status that outputs show at `now`, as [`Entry::effective`] does, without
    /// building the message.
    pub fn status_at(&self, now: SystemTime) -> Status {
        // Equal to a test of `stale_age`, which a scrape would run for every check: a result is
        // stale when it finished more than the limit before `now`.
        match &self.last {
            None => Status::Unknown,
            Some(_) if self.stale_at.is_some_and(|stale_at| now > stale_at) => Status::Unknown,
            Some(last) => last.outcome.status,
        }
    }

    /// Returns the age of `last` at `now` when it is older than the staleness limit.
    fn stale_age(&self, last: &CheckResult, now: SystemTime) -> Option<Duration> {
        let age = now.duration_since(last.finished()).unwrap_or_default();
        (age > self.def.interval * STALE_AFTER_INTERVALS).then_some(age)
    }

    /// Returns the status that outputs show at `now`: a missing or stale result is unknown.
    pub fn effective(&self, now: SystemTime) -> (Status, Reason, String) {
        let Some(last) = &self.last else {
            return (Status::Unknown, Reason::NotRun, "not run yet".to_string());
        };
        if let Some(age) = self.stale_age(last, now) {
            let message = format!(
                "last result is {} old, more than {STALE_AFTER_INTERVALS} intervals; the exporter may be overloaded",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            );
            return (Status::Unknown, Reason::Stale, message);
        }
        let outcome = &last.outcome;
        (outcome.status, outcome.reason, outcome.message.clone())
    }
}

/// The outcome of the last configuration reload.
#[derive(Clone, Copy, Debug)]
pub struct ReloadStatus {
    /// Whether the last reload was applied.
    pub successful: bool,
    /// When a configuration was last applied.
    pub last_success: SystemTime,
    /// Reloads applied since start.
    pub successes: u64,
    /// Reloads rejected since start.
    pub failures: u64,
}

/// The result of the deploy gate.
#[derive(Debug)]
pub struct Gate {
    /// True when every blocking check in scope passes.
    pub open: bool,
    /// Blocking checks in scope that do not pass, in configuration order.
    pub blocking_failures: Vec<GateFailure>,
    /// How many blocking checks are in scope.
    pub blocking_checks: usize,
}

/// A blocking check that keeps the gate closed.
#[derive(Debug)]
pub struct GateFailure {
    /// The check.
    pub def: Arc<CheckDef>,
    /// Its status at the time of the request.
    pub status: Status,
    /// Why.
    pub reason: Reason,
    /// The human message.
    pub message: String,
}

#[derive(Default)]
struct Checks {
    /// Every entry in configuration order, so outputs walk them without a lookup per check.
    entries: Vec<Entry>,
    /// The position of each check id in `entries`.
    index: HashMap<String, usize>,
    /// The parts of each check's `/metrics` series that change only with its definition, in the
    /// order of `entries`.
    series: SeriesTable,
}

/// Shared, thread-safe store of results.
pub struct State {
    checks: RwLock<Checks>,
    reload: Mutex<ReloadStatus>,
    external_url: Mutex<Option<String>>,
    /// When the exporter started.
    pub started: SystemTime,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// Creates an empty state.
    pub fn new() -> Self {
        let now = SystemTime::now();
        State {
            checks: RwLock::new(Checks::default()),
            reload: Mutex::new(ReloadStatus {
                successful: true,
                last_success: now,
                successes: 0,
                failures: 0,
            }),
            external_url: Mutex::new(None),
            started: now,
        }
    }

    /// Replaces the set of checks. Checks whose definition did not change keep their results;
    /// changed checks start over as unknown; removed checks disappear from every output.
    pub fn set_checks(&self, checks: &[Arc<CheckDef>]) {
        let mut guard = self.checks.write().unwrap_or_else(|e| e.into_inner());
        let mut old: HashMap<String, Entry> = std::mem::take(&mut guard.entries)
            .into_iter()
            .map(|entry| (entry.def.id.clone(), entry))
            .collect();
        guard.index.clear();
        for def in checks {
            let entry = match old.remove(&def.id) {
                Some(mut entry) if entry.def.definition == def.definition => {
                    entry.def = def.clone();
                    entry.stale_at = entry.last.as_ref().and_then(|last| {
                        last.finished()
                            .checked_add(def.interval * STALE_AFTER_INTERVALS)
                    });
                    entry
                }
                _ => Entry::new(def.clone()),
            };
            let position = guard.entries.len();
            guard.index.insert(def.id.clone(), position);
            guard.entries.push(entry);
        }
        guard.series = SeriesTable::render(checks.iter().map(|def| def.as_ref()));
    }

    /// Stores the result of a run and returns the status of the run before it, if any.
    /// A result of a definition that a reload replaced is dropped.
    pub fn record(&self, def: &Arc<CheckDef>, result: CheckResult) -> Option<Status> {
        let mut guard = self.checks.write().unwrap_or_else(|e| e.into_inner());
        let position = *guard.index.get(&def.id)?;
        let entry = &mut guard.entries[position];
        if entry.def.definition != def.definition {
            return None;
        }
        let previous = entry.last.as_ref().map(|last| last.outcome.status);
        if result.outcome.status == Status::Pass {
            entry.last_success = Some(result.finished());
        } else {
            *entry.failures.entry(result.outcome.reason).or_default() += 1;
        }
        entry.run_values = Some(RunValues::render(&result, entry.last_success));
        entry.stale_at = result
            .finished()
            .checked_add(entry.def.interval * STALE_AFTER_INTERVALS);
        entry.last = Some(result);
        previous
    }

    /// Calls `f` with every entry in configuration order, under one read lock.
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        let guard = self.checks.read().unwrap_or_else(|e| e.into_inner());
        for entry in &guard.entries {
            f(entry);
        }
    }

    /// Calls `f` with every entry in configuration order, under one read lock, without copying.
    pub fn with_entries<R>(&self, f: impl FnOnce(&[&Entry]) -> R) -> R {
        let guard = self.checks.read().unwrap_or_else(|e| e.into_inner());
        let entries: Vec<&Entry> = guard.entries.iter().collect();
        f(&entries)
    }

    /// Calls `f` with every entry in configuration order and the parts of their `/metrics`
    /// series, under one read lock.
    pub(crate) fn with_series<R>(&self, f: impl FnOnce(&[Entry], &SeriesTable) -> R) -> R {
        let guard = self.checks.read().unwrap_or_else(|e| e.into_inner());
        f(&guard.entries, &guard.series)
    }

    /// Returns a copy of every entry in configuration order.
    pub fn entries(&self) -> Vec<Entry> {
        let mut entries = Vec::new();
        self.for_each(|entry| entries.push(entry.clone()));
        entries
    }

    /// Returns a copy of one entry.
    pub fn entry(&self, id: &str) -> Option<Entry> {
        let guard = self.checks.read().unwrap_or_else(|e| e.into_inner());
        let position = *guard.index.get(id)?;
        guard.entries.get(position).cloned()
    }

    /// True when every configured check has finished at least one run.
    pub fn all_ran(&self) -> bool {
        let mut all = true;
        self.for_each(|entry| all &= entry.last.is_some());
        all
    }

    /// Evaluates the deploy gate at `now`, over every blocking check or those of one section.
    pub fn gate(&self, now: SystemTime, section: Option<&str>) -> Gate {
        let mut blocking_failures = Vec::new();
        let mut blocking_checks = 0;
        self.for_each(|entry| {
            let def = &entry.def;
            if !def.blocking || section.is_some_and(|s| s != def.section) {
                return;
            }
            blocking_checks += 1;
            let (status, reason, message) = entry.effective(now);
            if status != Status::Pass {
                blocking_failures.push(GateFailure {
                    def: def.clone(),
                    status,
                    reason,
                    message,
                });
            }
        });
        Gate {
            open: blocking_failures.is_empty(),
            blocking_failures,
            blocking_checks,
        }
    }

    /// Records the outcome of a reload.
    pub fn set_reload(&self, successful: bool, now: SystemTime) {
        let mut reload = self.reload.lock().unwrap_or_else(|e| e.into_inner());
        reload.successful = successful;
        if successful {
            reload.last_success = now;
            reload.successes += 1;
        } else {
            reload.failures += 1;
        }
    }

    /// Returns the outcome of the last reload.
    pub fn reload_status(&self) -> ReloadStatus {
        *self.reload.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the URL under which users reach the exporter (`global.external_url`).
    pub fn set_external_url(&self, url: Option<String>) {
        *self.external_url.lock().unwrap_or_else(|e| e.into_inner()) = url;
    }

    /// The URL under which users reach the exporter, when the configuration sets one.
    pub fn external_url(&self) -> Option<String> {
        self.external_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
