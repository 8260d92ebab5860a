//! A day of schedule for 10,000 checks on the paused tokio clock: memory and the task count
//! stay flat, and every run starts within its jitter after its slot.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{phase, Scheduler};
use crate::check::scripted::{Behaviour, Counters, ScriptedCheck};
use crate::check::Kind;
use crate::config::{CheckDef, Config, Global, Severity};
use crate::state::State;

const CHECKS: usize = 10_000;
const HOURS: u32 = 24;
/// Intervals of the checks, in turn: a typical checklist's spread.
const INTERVALS: [Duration; 3] = [
    Duration::from_secs(600),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
];
/// How long each run takes, so that runs overlap as they do against real targets.
const RUN_TIME: Duration = Duration::from_secs(2);
/// tokio's timer fires at millisecond granularity, so a slot's sleep may end up to 1 ms late.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);
/// The growth of resident memory from the first to the last hour that counts as flat. The day
/// has about 720,000 runs, so a leak of 12 bytes per run exceeds it; the measured growth was
/// 256 KiB.
const RESIDENT_GROWTH_LIMIT: u64 = 8 * 1024 * 1024;

fn soak_check(i: usize) -> (Arc<CheckDef>, Arc<Counters>) {
    let id = format!("soak_{i}");
    let interval = INTERVALS[i % INTERVALS.len()];
    let counters = Arc::new(Counters::for_schedule(phase(&id, interval), interval));
    let def = CheckDef {
        title: id.clone(),
        section: "Soak".to_string(),
        severity: Severity::Warning,
        blocking: false,
        interval,
        timeout: interval / 2,
        jitter: interval / 10,
        runbook_url: None,
        kind: Kind::Scripted(ScriptedCheck {
            behaviour: Behaviour::Sleep(RUN_TIME),
            counters: counters.clone(),
        }),
        definition: serde_json::json!({ "id": id }).into(),
        id,
    };
    (Arc::new(def), counters)
}

/// Resident memory of this process from `/proc/self/statm`, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // NOTE: assumes 4 KiB pages, the size on x86-64 and most aarch64 Linux systems.
    pages * 4096
}

/// Runs that start within `elapsed` of the first, without and with the full jitter.
fn expected_runs(id: &str, interval: Duration, jitter: Duration, elapsed: Duration) -> (u64, u64) {
    let origin = phase(id, interval);
    let count = |limit: Duration| {
        1 + (1u32..)
            .take_while(|k| origin + interval * *k <= limit)
            .count() as u64
    };
    (count(elapsed.saturating_sub(jitter)), count(elapsed))
}

#[tokio::test(start_paused = true)]
async fn day_of_schedule_stays_flat() {
    let (defs, counters): (Vec<_>, Vec<_>) = (0..CHECKS).map(soak_check).unzip();
    let state = Arc::new(State::new());
    let scheduler = Scheduler::new(state.clone());
    scheduler.apply(&Config {
        global: Global {
            listen_address: "127.0.0.1:0".parse().unwrap(),
            interval: Duration::from_secs(600),
            timeout: Duration::from_secs(300),
            jitter: None,
            max_concurrent_checks: CHECKS,
            external_url: None,
        },
        checks: defs.clone(),
        vault: None,
        warnings: Vec::new(),
    });
    let runtime = tokio::runtime::Handle::current();

    let mut resident = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..HOURS {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        resident.push(resident_bytes());
        tasks.push(runtime.metrics().num_alive_tasks());
    }

    // One task per check, plus the runs in flight (each in a task of its own), and nothing
    // that piles up from hour to hour.
    let in_flight_bound = CHECKS + 2 * scheduler.in_flight() + 16;
    for (hour, count) in tasks.iter().enumerate() {
        assert!(
            (CHECKS..=CHECKS * 2).contains(count),
            "hour {}: {count} tasks alive",
            hour + 1
        );
    }
    assert!(
        tasks[HOURS as usize - 1] <= in_flight_bound,
        "{} tasks alive at the end, {} runs in flight",
        tasks[HOURS as usize - 1],
        scheduler.in_flight()
    );
    let growth = resident[HOURS as usize - 1].saturating_sub(resident[0]);
    assert!(
        growth <= RESIDENT_GROWTH_LIMIT,
        "resident memory grew by {growth} bytes from hour 1 to hour {HOURS}: {resident:?}"
    );
    assert_eq!(state.entries().len(), CHECKS);

    let elapsed = Duration::from_secs(3600) * HOURS;
    let mut total_runs = 0;
    for (def, counters) in defs.iter().zip(&counters) {
        let timeline = counters.timeline.lock().unwrap();
        let timeline = timeline.as_ref().unwrap();
        assert_eq!(
            timeline.early, 0,
            "{}: a run started before its slot",
            def.id
        );
        assert!(
            timeline.max_late < def.jitter + TIMER_RESOLUTION,
            "{}: a run started {:?} after its slot, jitter is {:?}",
            def.id,
            timeline.max_late,
            def.jitter
        );
        let (min, max) = expected_runs(&def.id, def.interval, def.jitter, elapsed);
        assert!(
            (min..=max).contains(&timeline.starts),
            "{}: {} runs, expected {min} to {max}",
            def.id,
            timeline.starts
        );
        assert_eq!(counters.max_running.load(Ordering::SeqCst), 1);
        total_runs += timeline.starts;
    }
    eprintln!(
        "{total_runs} runs of {CHECKS} checks in {HOURS} h; resident memory per hour: {resident:?}; tasks per hour: {tasks:?}"
    );
}
