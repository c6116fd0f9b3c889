//! A connection's watchdog: a small task beside each connection that watches for the server's
//! shutdown and for the connection going idle, and tells the connection loop (`crate::serve`)
//! to drain or to close.
//!
//! The loop used to wait on the shutdown notification and the idle ticker itself; tokio's
//! `select!` polls every branch each time the connection task wakes (about three times per
//! request), and polling a timer and a notification cost more than a thousand instructions per
//! request, a twentieth of a single-message produce (docs/BENCHMARKS.md). Now the loop polls
//! one atomic, and the timer lives in a task that wakes once per tick.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::task::JoinHandle;

use crate::activity::{Activity, IdleClock};
use crate::shutdown::Shutdown;

/// What the watchdog asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The server is shutting down: finish the request in flight, then close.
    Drain,
    /// No byte moved for the idle timeout: close now.
    Close,
}

const DRAIN: u8 = 1;
const CLOSE: u8 = 2;

/// The raised signals and the connection task to wake when one is raised.
#[derive(Default)]
struct Signal {
    raised: AtomicU8,
    waker: AtomicWaker,
}

impl Signal {
    fn raise(&self, bit: u8) {
        self.raised.fetch_or(bit, Ordering::Release);
        self.waker.wake();
    }
}

/// The connection's side of its watchdog; dropping it stops the watchdog task.
pub struct Watchdog {
    signal: Arc<Signal>,
    /// Signals already returned by [`Watchdog::poll_stop`].
    seen: u8,
    task: JoinHandle<()>,
}

impl Watchdog {
    /// Starts watching: a connection whose [`Activity`] does not move for `idle_timeout` is
    /// told to close (checked every quarter of it, at least every 10 ms, so within 1.25 ×
    /// `idle_timeout`); every connection is told to drain once `shutdown` starts.
    pub fn start(activity: Arc<Activity>, idle_timeout: Duration, shutdown: Shutdown) -> Self {
        let signal = Arc::new(Signal::default());
        let task = tokio::spawn(watch(Arc::clone(&signal), IdleClock::new(activity), idle_timeout, shutdown));
        Watchdog { signal, seen: 0, task }
    }

    /// The next signal not returned before (`Close` first if both are up).
    pub fn poll_stop(&mut self, cx: &mut Context<'_>) -> Poll<Stop> {
        let mut fresh = self.signal.raised.load(Ordering::Acquire) & !self.seen;
        if fresh == 0 {
            self.signal.waker.register(cx.waker());
            // Raised between the load and the registration: seen now, or woken later.
            fresh = self.signal.raised.load(Ordering::Acquire) & !self.seen;
            if fresh == 0 {
                return Poll::Pending;
            }
        }
        let bit = if fresh & CLOSE != 0 { CLOSE } else { DRAIN };
        self.seen |= bit;
        Poll::Ready(if bit == CLOSE { Stop::Close } else { Stop::Drain })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch(signal: Arc<Signal>, mut idle: IdleClock, idle_timeout: Duration, shutdown: Shutdown) {
    let mut ticker = tokio::time::interval((idle_timeout / 4).max(Duration::from_millis(10)));
    let shutdown_started = shutdown.wait();
    tokio::pin!(shutdown_started);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = &mut shutdown_started, if !draining => {
                draining = true;
                signal.raise(DRAIN);
            }
            _ = ticker.tick() => {
                let idle = idle.idle_for();
                if idle >= idle_timeout {
                    tracing::debug!("closing a connection idle for {idle:?}");
                    signal.raise(CLOSE);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::Shutdown;

    async fn next(w: &mut Watchdog) -> Stop {
        std::future::poll_fn(|cx| w.poll_stop(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_told_to_close_once_the_timeout_passed() {
        let (_trigger, shutdown) = Shutdown::new();
        let activity = Activity::new();
        let started = tokio::time::Instant::now();
        let mut w = Watchdog::start(activity, Duration::from_millis(400), shutdown);
        assert_eq!(next(&mut w).await, Stop::Close);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(400) && waited <= Duration::from_millis(500), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_asks_for_a_drain_and_idleness_still_closes_after_it() {
        let (trigger, shutdown) = Shutdown::new();
        let mut w = Watchdog::start(Activity::new(), Duration::from_secs(60), shutdown);
        let poll_now = |w: &mut Watchdog| {
            let waker = futures_util::task::noop_waker();
            w.poll_stop(&mut Context::from_waker(&waker))
        };
        tokio::task::yield_now().await;
        assert_eq!(poll_now(&mut w), Poll::Pending);
        trigger.trigger();
        assert_eq!(next(&mut w).await, Stop::Drain);
        assert_eq!(poll_now(&mut w), Poll::Pending, "a signal is returned once");
        assert_eq!(next(&mut w).await, Stop::Close);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_watchdog_stops_its_task() {
        let (_trigger, shutdown) = Shutdown::new();
        let w = Watchdog::start(Activity::new(), Duration::from_secs(1), shutdown);
        let signal = Arc::downgrade(&w.signal);
        drop(w);
        // The aborted task lets go of its handle on the signal at its next scheduling.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(signal.upgrade().is_none());
    }
}
