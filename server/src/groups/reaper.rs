//! The lease reaper: a thread that ends expired leases when they expire, not at the next
//! fetch. Without it an unacknowledged message stayed "in flight" past its `ack_timeout_ms`,
//! and one out of deliveries (`max_deliveries`) reached its dead-letter topic only when some
//! consumer of the group fetched from the topic again.
//!
//! Fetches tell the reaper when their leases next fall due ([`Reaper::due_at`]); the thread
//! sleeps until then (at most [`IDLE_CHECK`], to notice that the engine is gone) and runs
//! [`GroupEngine::reap`]. Long-polling fetches keep expiring leases themselves as well.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::engine::GroupEngine;

/// Longest sleep of the reaper thread: how soon it exits after the engine is dropped.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// When the reaper should next run, and the signal that wakes it for an earlier time.
#[derive(Default)]
pub(crate) struct Reaper {
    due: Mutex<Option<Instant>>,
    wake: Condvar,
}

impl Reaper {
    /// Asks for a run at `at` (or earlier, if one is already due sooner).
    pub fn due_at(&self, at: Instant) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        if due.is_none_or(|d| at < d) {
            *due = Some(at);
            self.wake.notify_one();
        }
    }

    /// Blocks until a run is due (`true`), or the engine is gone (`false`).
    fn wait(&self, engine: &Weak<GroupEngine>) -> bool {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if engine.strong_count() == 0 {
                return false;
            }
            let now = Instant::now();
            let sleep = match *due {
                Some(at) if at <= now => {
                    *due = None;
                    return true;
                }
                Some(at) => (at - now).min(IDLE_CHECK),
                None => IDLE_CHECK,
            };
            due = self.wake.wait_timeout(due, sleep).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// Starts the reaper thread of `engine`; it ends within [`IDLE_CHECK`] of the engine's drop.
pub(crate) fn spawn(engine: Weak<GroupEngine>, reaper: Arc<Reaper>) {
    let spawned = std::thread::Builder::new().name("cairn-groups-reaper".into()).spawn(move || {
        while reaper.wait(&engine) {
            let Some(engine) = engine.upgrade() else { return };
            engine.reap(Instant::now());
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("could not start the lease reaper (leases then expire at the next fetch): {e}");
    }
}
