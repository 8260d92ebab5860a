//! A check kind for unit tests of the scheduler: it sleeps, panics or passes as scripted, and
//! counts how many runs overlap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
