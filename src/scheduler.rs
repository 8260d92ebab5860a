//! Runs every check on its own schedule.
//!
//! Each check has one task that sleeps until its next slot, waits for a permit of the global
//! concurrency limit, runs the check inside its timeout and stores the result. Because one task
//! owns a check, two runs of the same check never overlap.
//!
//! The first run starts right after start-up. Each later slot is a fixed phase within the
//! interval, derived from the check id, plus whole intervals and a random jitter. So checks with
//! equal intervals spread over the interval instead of all running in the same second, and the
//! spread is the same after a restart. A check does not drift however long its runs take, and a
//! slot missed while waiting for a permit is skipped, not queued.
//!
//! [`Scheduler::drain`] stops the schedule for a graceful shutdown: no new run starts, and runs
//! in flight finish and store their results.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use rand::Rng;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn, Instrument};

use crate::check::{format_duration, Outcome, Reason, Status};
use crate::config::{CheckDef, Config};
use crate::state::{CheckResult, State};

struct Task {
    def: Arc<CheckDef>,
    handle: JoinHandle<()>,
}

/// Owns the tasks that run the configured checks.
pub struct Scheduler {
    state: Arc<State>,
    semaphore: Arc<Semaphore>,
    permits: Mutex<usize>,
    tasks: Mutex<HashMap<String, Task>>,
    /// True once a drain has begun; every task returns at its next wait instead of running.
    stopping: watch::Sender<bool>,
    /// Runs in flight at this moment.
    in_flight: Arc<AtomicUsize>,
}

/// What [`Scheduler::drain`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Runs in flight when the drain began.
    pub in_flight: usize,
    /// Runs still in flight when the drain's limit passed; they were cancelled.
    pub cancelled: usize,
}

impl Scheduler {
    /// A scheduler with no checks that stores results in `state`.
    pub fn new(state: Arc<State>) -> Self {
        Scheduler {
            state,
            semaphore: Arc::new(Semaphore::new(0)),
            permits: Mutex::new(0),
            tasks: Mutex::new(HashMap::new()),
            stopping: watch::Sender::new(false),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Returns the number of runs in flight at this moment.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Starts, restarts and stops tasks so that exactly the checks of `config` run.
    ///
    /// A check whose definition is unchanged keeps its task, its schedule and its results.
    pub fn apply(&self, config: &Config) {
        self.set_concurrency(config.global.max_concurrent_checks);
        self.state.set_checks(&config.checks);

        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let mut old = std::mem::take(&mut *tasks);
        for def in &config.checks {
            match old.remove(&def.id) {
                Some(task) if task.def.definition == def.definition => {
                    tasks.insert(def.id.clone(), task);
                }
                previous => {
                    if let Some(task) = previous {
                        task.handle.abort();
                    }
                    let handle = tokio::spawn(run_loop(
                        def.clone(),
                        self.state.clone(),
                        self.semaphore.clone(),
                        Runs {
                            stopping: self.stopping.subscribe(),
                            in_flight: self.in_flight.clone(),
                        },
                    ));
                    tasks.insert(
                        def.id.clone(),
                        Task {
                            def: def.clone(),
                            handle,
                        },
                    );
                }
            }
        }
        for (_, task) in old {
            task.handle.abort();
        }
    }

    /// Stops the schedule and waits until the runs in flight have finished and stored their
    /// results. No new run starts once the drain begins.
    ///
    /// The scheduler ends every run at its timeout, so the wait normally ends within the longest
    /// timeout of the configured checks. The drain gives up one second after that and cancels
    /// what is still running; the report counts those runs.
    pub async fn drain(&self) -> DrainReport {
        let in_flight = self.in_flight();
        self.stopping.send_replace(true);
        let tasks: Vec<Task> = {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.drain().map(|(_, task)| task).collect()
        };
        let limit = tasks
            .iter()
            .map(|task| task.def.timeout)
            .max()
            .unwrap_or_default()
            + DRAIN_MARGIN;
        let (handles, aborts): (Vec<_>, Vec<_>) = tasks
            .into_iter()
            .map(|task| {
                let abort = task.handle.abort_handle();
                (task.handle, abort)
            })
            .unzip();
        let finished = tokio::time::timeout(limit, futures_util::future::join_all(handles)).await;
        let cancelled = if finished.is_ok() {
            0
        } else {
            let cancelled = self.in_flight();
            for abort in aborts {
                abort.abort();
            }
            cancelled
        };
        DrainReport {
            in_flight,
            cancelled,
        }
    }

    /// Stops every task. Runs in flight are cancelled.
    pub fn stop(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (_, task) in tasks.drain() {
            task.handle.abort();
        }
    }

    fn set_concurrency(&self, wanted: usize) {
        let mut permits = self.permits.lock().unwrap_or_else(|e| e.into_inner());
        if wanted > *permits {
            self.semaphore.add_permits(wanted - *permits);
        } else if wanted < *permits {
            // Permits held by running checks come back later; take the surplus as they do.
            let surplus = (*permits - wanted) as u32;
            let semaphore = self.semaphore.clone();
            tokio::spawn(async move {
                if let Ok(taken) = semaphore.acquire_many(surplus).await {
                    taken.forget();
                }
            });
        }
        *permits = wanted;
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long [`Scheduler::drain`] waits beyond the longest check timeout.
const DRAIN_MARGIN: Duration = Duration::from_secs(1);

/// What a check's task shares with the scheduler besides the state and the permits.
struct Runs {
    stopping: watch::Receiver<bool>,
    in_flight: Arc<AtomicUsize>,
}

/// Decrements the in-flight count when a run ends, also when its task is cancelled.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn run_loop(
    def: Arc<CheckDef>,
    state: Arc<State>,
    semaphore: Arc<Semaphore>,
    mut runs: Runs,
) {
    let start = Instant::now();
    let interval_nanos = def.interval.as_nanos().max(1) as u64;
    // Slot k (k >= 1) starts k intervals after `origin`; slot 0 is the first run at `start`.
    let origin = start + phase(&def.id, def.interval);
    let mut slot: u64 = 0;
    let mut missed_runs = MissedRuns::default();
    loop {
        let at = if slot == 0 {
            start
        } else {
            let offset = Duration::from_nanos(interval_nanos.saturating_mul(slot));
            origin + offset + random_jitter(def.jitter)
        };
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = runs.stopping.wait_for(|stopping| *stopping) => return,
        }

        let permit = tokio::select! {
            permit = semaphore.acquire() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = runs.stopping.wait_for(|stopping| *stopping) => return,
        };
        let running = InFlight::start(&runs.in_flight);
        let result = execute(&def).await;
        drop(running);
        drop(permit);

        log_result(&def, &result, state.record(&def, result.clone()));
        let elapsed = Instant::now().saturating_duration_since(origin).as_nanos() as u64;
        let next = elapsed / interval_nanos + 1;
        if let Some(missed) = missed_runs.record(next.saturating_sub(slot + 1), Instant::now()) {
            warn!(
                check = %def.id,
                missed,
                "Check missed scheduled runs: it waited for a free slot of max_concurrent_checks, or ran longer than its interval; raise global.max_concurrent_checks or lengthen the interval. Further misses of this check are logged at most every 5 minutes"
            );
        }
        slot = next;
    }
}

/// How often a check that keeps missing runs logs it. An exporter with more checks than its
/// concurrency limit can serve misses runs of most of them on every interval, and a warning per
/// run would flood the log.
const MISSED_RUNS_LOG_INTERVAL: Duration = Duration::from_secs(300);

/// One check's missed runs that were not logged yet, and when they were last logged.
#[derive(Debug, Default)]
struct MissedRuns {
    unlogged: u64,
    last_logged: Option<Instant>,
}

impl MissedRuns {
    /// Adds `missed` runs and returns the number to log now: every run missed since the last
    /// warning, on the first miss and then at most once per [`MISSED_RUNS_LOG_INTERVAL`].
    fn record(&mut self, missed: u64, now: Instant) -> Option<u64> {
        self.unlogged += missed;
        if self.unlogged == 0 {
            return None;
        }
        let due = self
            .last_logged
            .is_none_or(|last| now.saturating_duration_since(last) >= MISSED_RUNS_LOG_INTERVAL);
        if !due {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// The offset of a check's slots within its interval: a hash of the id (FNV-1a), so it is
/// spread evenly over the interval and stable across restarts.
pub(crate) fn phase(id: &str, interval: Duration) -> Duration {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let interval_nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(hash % interval_nanos)
}

fn random_jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = rand::rng().random_range(0..max.as_nanos() as u64);
    Duration::from_nanos(nanos)
}

/// Runs a check once inside its timeout. A panic in the check becomes an `error` result.
///
/// The check runs in a task of its own, so the timeout holds even when the check blocks in a
/// way that never yields to the timer, and a panic unwinds that task only.
pub async fn execute(def: &Arc<CheckDef>) -> CheckResult {
    let started = SystemTime::now();
    let clock = Instant::now();
    let span = tracing::debug_span!("check", check = %def.id, kind = def.kind.name());
    let task_def = def.clone();
    let mut handle = tokio::spawn(
        async move {
            std::panic::AssertUnwindSafe(task_def.kind.run(task_def.timeout))
                .catch_unwind()
                .await
        }
        .instrument(span),
    );
    let outcome = match tokio::time::timeout(def.timeout, &mut handle).await {
        Ok(Ok(Ok(outcome))) => outcome,
        Ok(Ok(Err(panic))) => {
            let detail = panic_text(panic.as_ref());
            error!(check = %def.id, kind = def.kind.name(), error = %detail, "Check panicked");
            Outcome::error(
                Reason::InternalError,
                format!(
                    "check panicked ({detail}); this is a bug in the exporter, please report it"
                ),
            )
        }
        Ok(Err(_)) => Outcome::error(Reason::InternalError, "check task was cancelled"),
        Err(_) => {
            handle.abort();
            Outcome::error(
                Reason::Timeout,
                format!(
                    "no result within the {} timeout",
                    format_duration(def.timeout)
                ),
            )
        }
    };
    CheckResult {
        outcome,
        started,
        duration: clock.elapsed(),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_string());
    text.chars().take(200).collect()
}

/// Logs a run at the level the logging policy sets: a change to failing is a warning, a
/// recovery is info, every run is debug.
fn log_result(def: &CheckDef, result: &CheckResult, previous: Option<Status>) {
    let outcome = &result.outcome;
    let status = outcome.status;
    let elapsed = format_duration(result.duration);
    let kind = def.kind.name();
    let changed = previous != Some(status);
    match status {
        Status::Pass if changed && previous.is_some() => {
            info!(check = %def.id, kind, elapsed, "Check recovered");
        }
        Status::Fail | Status::Error if changed => {
            warn!(check = %def.id, kind, status = %status, reason = %outcome.reason, detail = %outcome.message, elapsed, "Check is not passing");
        }
        _ => {}
    }
    debug!(check = %def.id, kind, status = %status, reason = %outcome.reason, detail = %outcome.message, elapsed, "Check ran");
}

/// Runs every check once, at most `max_concurrent` at a time, and returns the results in the
/// order of `checks`.
pub async fn run_all_once(checks: &[Arc<CheckDef>], max_concurrent: usize) -> Vec<CheckResult> {
    let semaphore = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let handles: Vec<_> = checks
        .iter()
        .map(|def| {
            let def = def.clone();
            let semaphore = semaphore.clone();
            tokio::spawn(async move {
                let _permit = semaphore.acquire().await;
                execute(&def).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap_or_else(|_| CheckResult {
            outcome: Outcome::error(Reason::InternalError, "check task failed"),
            started: SystemTime::now(),
            duration: Duration::ZERO,
        }));
    }
    results
}

#[cfg(test)]
mod soak;

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::check::scripted::{Behaviour, Counters, ScriptedCheck};
    use crate::check::Kind;
    use crate::config::{Global, Severity};

    fn def(
        id: &str,
        interval: u64,
        timeout: u64,
        behaviour: Behaviour,
        counters: &Arc<Counters>,
    ) -> Arc<CheckDef> {
        Arc::new(CheckDef {
            id: id.to_string(),
            title: id.to_string(),
            section: "S".to_string(),
            severity: Severity::Critical,
            blocking: true,
            interval: Duration::from_secs(interval),
            timeout: Duration::from_secs(timeout),
            jitter: Duration::ZERO,
            runbook_url: None,
            kind: Kind::Scripted(ScriptedCheck {
                behaviour,
                counters: counters.clone(),
            }),
            definition: serde_json::json!({ "id": id, "interval": interval, "timeout": timeout })
                .into(),
        })
    }

    #[test]
    fn missed_runs_logged_once_per_period() {
        let start = Instant::now();
        let mut missed = MissedRuns::default();

        assert_eq!(missed.record(0, start), None);
        assert_eq!(missed.record(2, start), Some(2));
        assert_eq!(missed.record(1, start + Duration::from_secs(1)), None);
        assert_eq!(missed.record(0, start + Duration::from_secs(2)), None);
        assert_eq!(missed.record(3, start + Duration::from_secs(299)), None);
        // The warning after the period counts every run missed since the last one.
        assert_eq!(missed.record(0, start + MISSED_RUNS_LOG_INTERVAL), Some(4));
        assert_eq!(missed.record(0, start + 2 * MISSED_RUNS_LOG_INTERVAL), None);
    }

    fn config(checks: Vec<Arc<CheckDef>>, max_concurrent_checks: usize) -> Config {
        Config {
            global: Global {
                listen_address: "127.0.0.1:0".parse().unwrap(),
                interval: Duration::from_secs(60),
                timeout: Duration::from_secs(10),
                jitter: None,
                max_concurrent_checks,
                external_url: None,
            },
            checks,
            vault: None,
            warnings: Vec::new(),
        }
    }

    fn quick(seconds: u64) -> Behaviour {
        Behaviour::Sleep(Duration::from_secs(seconds))
    }

    /// Runs that start within `elapsed` of start-up when the jitter is zero.
    fn expected_runs(id: &str, interval: u64, elapsed: Duration) -> usize {
        let interval = Duration::from_secs(interval);
        let origin = phase(id, interval);
        1 + (1..)
            .take_while(|k| origin + interval * *k <= elapsed)
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn runs_once_per_interval() {
        let counters = Arc::new(Counters::default());
        let scheduler = Scheduler::new(Arc::new(State::new()));
        scheduler.apply(&config(vec![def("a", 10, 5, quick(1), &counters)], 4));

        let elapsed = Duration::from_millis(45_500);
        tokio::time::sleep(elapsed).await;

        let runs = counters.runs.load(Ordering::SeqCst);
        assert_eq!(runs, expected_runs("a", 10, elapsed));
        assert!(
            (4..=5).contains(&runs),
            "{runs} runs in 45.5 s at a 10 s interval"
        );
    }

    #[test]
    fn phases_spread_over_interval() {
        let interval = Duration::from_secs(60);
        let mut buckets = [0usize; 6];
        for i in 0..6000 {
            let offset = phase(&format!("check_{i}"), interval);
            assert!(offset < interval);
            buckets[(offset.as_secs() / 10) as usize] += 1;
        }
        for count in buckets {
            assert!((800..1200).contains(&count), "uneven spread: {buckets:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn hung_run_ends_at_timeout() {
        let counters = Arc::new(Counters::default());
        let state = Arc::new(State::new());
        let scheduler = Scheduler::new(state.clone());
        scheduler.apply(&config(vec![def("hung", 10, 2, quick(3600), &counters)], 4));

        tokio::time::sleep(Duration::from_millis(2_500)).await;

        let entry = state.entry("hung").unwrap();
        let last = entry.last.expect("the run ended at its timeout");
        assert_eq!(last.outcome.status, Status::Error);
        assert_eq!(last.outcome.reason, Reason::Timeout);
        assert_eq!(last.duration, Duration::from_secs(2));
        assert_eq!(
            counters.running.load(Ordering::SeqCst),
            0,
            "the timed-out run was cancelled"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn runs_of_one_check_never_overlap() {
        let counters = Arc::new(Counters::default());
        let scheduler = Scheduler::new(Arc::new(State::new()));
        // Each run sleeps past its timeout, the worst case for overlap.
        scheduler.apply(&config(vec![def("slow", 3, 2, quick(100), &counters)], 4));

        tokio::time::sleep(Duration::from_secs(30)).await;

        assert!(counters.runs.load(Ordering::SeqCst) >= 9);
        assert_eq!(counters.max_running.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_limit_caps_runs() {
        let counters = Arc::new(Counters::default());
        let checks = (0..10)
            .map(|i| def(&format!("c{i}"), 60, 50, quick(5), &counters))
            .collect();
        let scheduler = Scheduler::new(Arc::new(State::new()));
        scheduler.apply(&config(checks, 3));

        tokio::time::sleep(Duration::from_secs(30)).await;

        assert_eq!(counters.runs.load(Ordering::SeqCst), 10);
        assert_eq!(counters.max_running.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn panic_becomes_error_and_schedule_continues() {
        let counters = Arc::new(Counters::default());
        let state = Arc::new(State::new());
        let scheduler = Scheduler::new(state.clone());
        scheduler.apply(&config(
            vec![def("boom", 5, 2, Behaviour::Panic, &counters)],
            4,
        ));

        tokio::time::sleep(Duration::from_millis(10_500)).await;

        let last = state.entry("boom").unwrap().last.unwrap();
        assert_eq!(last.outcome.status, Status::Error);
        assert_eq!(last.outcome.reason, Reason::InternalError);
        assert!(
            last.outcome.message.contains("scripted panic"),
            "{}",
            last.outcome.message
        );
        let expected = expected_runs("boom", 5, Duration::from_millis(10_500));
        assert_eq!(counters.runs.load(Ordering::SeqCst), expected);
    }

    #[tokio::test(start_paused = true)]
    async fn apply_keeps_unchanged_and_stops_removed() {
        let kept = Arc::new(Counters::default());
        let removed = Arc::new(Counters::default());
        let state = Arc::new(State::new());
        let scheduler = Scheduler::new(state.clone());
        let keep = def("keep", 10, 5, quick(1), &kept);
        let gone = def("gone", 10, 5, quick(1), &removed);
        scheduler.apply(&config(vec![keep, gone], 4));
        let first = Duration::from_secs(25);
        tokio::time::sleep(first).await;
        let removed_runs = expected_runs("gone", 10, first);
        assert_eq!(removed.runs.load(Ordering::SeqCst), removed_runs);

        // Same definition for `keep`: its task and schedule continue.
        let added = Arc::new(Counters::default());
        let keep = def("keep", 10, 5, quick(1), &kept);
        let new = def("new", 10, 5, quick(1), &added);
        scheduler.apply(&config(vec![keep, new], 4));
        let second = Duration::from_secs(30);
        tokio::time::sleep(second).await;

        let kept_runs = kept.runs.load(Ordering::SeqCst);
        assert_eq!(
            removed.runs.load(Ordering::SeqCst),
            removed_runs,
            "a removed check stops"
        );
        assert_eq!(
            kept_runs,
            expected_runs("keep", 10, first + second),
            "schedule kept"
        );
        assert!(state.entry("gone").is_none());
        assert!(state.entry("keep").unwrap().last.is_some());
        assert_eq!(
            added.runs.load(Ordering::SeqCst),
            expected_runs("new", 10, second)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_runs_in_flight() {
        let counters = Arc::new(Counters::default());
        let state = Arc::new(State::new());
        let scheduler = Scheduler::new(state.clone());
        scheduler.apply(&config(
            vec![
                def("busy", 60, 30, quick(20), &counters),
                def("idle", 60, 30, quick(0), &Arc::new(Counters::default())),
            ],
            4,
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(scheduler.in_flight(), 1);

        let report = scheduler.drain().await;

        assert_eq!(
            report,
            DrainReport {
                in_flight: 1,
                cancelled: 0
            }
        );
        let last = state.entry("busy").unwrap().last.expect("the run finished");
        assert_eq!(last.outcome.status, Status::Pass);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(
            counters.runs.load(Ordering::SeqCst),
            1,
            "no run after drain"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn drain_ends_at_run_timeout() {
        let counters = Arc::new(Counters::default());
        let scheduler = Scheduler::new(Arc::new(State::new()));
        // The run would sleep 1000 s, but its 300 s timeout ends it and so the drain.
        scheduler.apply(&config(
            vec![def("stuck", 600, 300, quick(1000), &counters)],
            4,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;

        let started = Instant::now();
        let report = scheduler.drain().await;

        assert_eq!(report.in_flight, 1);
        assert_eq!(report.cancelled, 0, "the run ended at its 300 s timeout");
        assert_eq!(started.elapsed(), Duration::from_secs(299));
        assert_eq!(counters.running.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn jitter_stays_below_maximum() {
        for _ in 0..1000 {
            assert!(random_jitter(Duration::from_secs(2)) < Duration::from_secs(2));
        }
        assert_eq!(random_jitter(Duration::ZERO), Duration::ZERO);
    }
}
