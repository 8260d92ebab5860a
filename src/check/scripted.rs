//! A check kind for unit tests of the scheduler: it sleeps, panics or passes as scripted, and
//! counts how many runs overlap and how far each run started from its slot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Outcome;

/// What a run of the scripted check does.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Sleeps for the duration, then passes.
    Sleep(Duration),
    /// Panics.
    Panic,
}

/// Counters shared between a test and its scripted checks.
#[derive(Debug, Default)]
pub struct Counters {
    pub runs: AtomicUsize,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    /// Where runs started against the schedule, when the counters belong to one check.
    pub timeline: Mutex<Option<Timeline>>,
}

impl Counters {
    /// Counters for one check whose slots lie `phase` plus whole multiples of `interval` after
    /// its first run, so each start is compared with its slot.
    pub fn for_schedule(phase: Duration, interval: Duration) -> Counters {
        Counters {
            timeline: Mutex::new(Some(Timeline {
                phase,
                interval,
                first: None,
                starts: 0,
                max_late: Duration::ZERO,
                early: 0,
            })),
            ..Counters::default()
        }
    }
}

/// How far the runs of one check started from their slots; constant in size however many
/// runs there are.
#[derive(Debug)]
pub struct Timeline {
    phase: Duration,
    interval: Duration,
    first: Option<Instant>,
    /// Runs started, the first one included.
    pub starts: u64,
    /// The latest start after its slot.
    pub max_late: Duration,
    /// Runs that started before their slot.
    pub early: u64,
}

impl Timeline {
    fn record(&mut self, now: Instant) {
        let Some(first) = self.first else {
            self.first = Some(now);
            self.starts = 1;
            return;
        };
        let slot = first + self.phase + self.interval * self.starts as u32;
        match now.checked_duration_since(slot) {
            Some(late) => self.max_late = self.max_late.max(late),
            None => self.early += 1,
        }
        self.starts += 1;
    }
}

#[derive(Debug)]
pub struct ScriptedCheck {
    pub behaviour: Behaviour,
    pub counters: Arc<Counters>,
}

impl ScriptedCheck {
    pub async fn run(&self) -> Outcome {
        let counters = &self.counters;
        counters.runs.fetch_add(1, Ordering::SeqCst);
        let running = counters.running.fetch_add(1, Ordering::SeqCst) + 1;
        counters.max_running.fetch_max(running, Ordering::SeqCst);
        if let Some(timeline) = counters
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            timeline.record(Instant::now());
        }
        let _guard = RunningGuard(counters.clone());
        match self.behaviour {
            Behaviour::Sleep(duration) => {
                tokio::time::sleep(duration).await;
                Outcome::pass("slept")
            }
            Behaviour::Panic => panic!("scripted panic"),
        }
    }
}

/// Decrements the running count even when the run is cancelled by its timeout.
struct RunningGuard(Arc<Counters>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}
