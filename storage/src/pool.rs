//! Background threads of the engine: the writer pool that runs group commits, and the
//! flusher that syncs partitions with an interval sync policy.
//!
//! Partitions do not own threads. A partition with appends waiting is queued here once;
//! a pool thread takes it, runs one group commit (everything waiting: one write, one
//! `fdatasync`, then every waiter completed), and queues it again at the back if more
//! arrived meanwhile, so many partitions share a few threads fairly and syncs of different
//! partitions overlap.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::partition::Shared;

/// Default number of writer threads.
pub const WRITER_THREADS_DEFAULT: usize = 4;

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Arc<Shared>>,
    shutdown: bool,
}

/// Threads that run partitions' group commits.
#[derive(Default)]
pub(crate) struct WriterPool {
    state: Mutex<PoolState>,
    wake: Condvar,
}

impl WriterPool {
    /// Starts `threads` writer threads.
    pub fn start(threads: usize) -> std::io::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        let pool = Arc::new(WriterPool::default());
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let p = Arc::clone(&pool);
            handles.push(std::thread::Builder::new().name(format!("cairn-writer-{i}")).spawn(move || p.run())?);
        }
        Ok((pool, handles))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a partition that has appends waiting (the caller marked it scheduled).
    pub fn schedule(&self, partition: Arc<Shared>) {
        let mut st = self.lock();
        if st.shutdown {
            drop(st);
            // No thread will run it: run it here so no waiter hangs.
            while partition.run_group() {}
            return;
        }
        st.queue.push_back(partition);
        drop(st);
        self.wake.notify_one();
    }

    /// Puts a partition that has more appends waiting at the back of the queue, from a pool
    /// thread that takes the next item itself right after (it runs even during shutdown: the
    /// threads drain the queue before they stop). Another thread is woken only if other
    /// partitions are waiting too; waking one for the partition this thread takes anyway cost
    /// a futex wake and two context switches per group commit under steady load.
    fn requeue(&self, partition: Arc<Shared>) {
        let mut st = self.lock();
        st.queue.push_back(partition);
        let others_waiting = st.queue.len() > 1;
        drop(st);
        if others_waiting {
            self.wake.notify_one();
        }
    }

    /// Stops the threads once the queue is empty.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    fn run(&self) {
        loop {
            let next = {
                let mut st = self.lock();
                loop {
                    if let Some(p) = st.queue.pop_front() {
                        break Some(p);
                    }
                    if st.shutdown {
                        break None;
                    }
                    st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            };
            let Some(partition) = next else { return };
            if partition.run_group() {
                self.requeue(partition);
            }
        }
    }
}

/// Starts a background thread named `name` that runs `run` on a fresh `T` it shares with the
/// caller (the flusher, the zeroer: each a queue under a mutex and a condvar to wake on).
pub(crate) fn start_service<T: Default + Send + Sync + 'static>(
    name: &str,
    run: fn(&T),
) -> std::io::Result<(Arc<T>, JoinHandle<()>)> {
    let service = Arc::new(T::default());
    let me = Arc::clone(&service);
    let handle = std::thread::Builder::new().name(name.into()).spawn(move || run(&me))?;
    Ok((service, handle))
}

#[derive(Default)]
struct FlushState {
    due: Vec<(Instant, Weak<Shared>)>,
    shutdown: bool,
}

/// Syncs partitions whose sync policy is an interval, at most `interval_ms` after their
/// first unsynced write.
#[derive(Default)]
pub(crate) struct Flusher {
    state: Mutex<FlushState>,
    wake: Condvar,
}

impl Flusher {
    pub fn start() -> std::io::Result<(Arc<Self>, JoinHandle<()>)> {
        start_service("cairn-flusher", Flusher::run)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FlushState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for `partition` to be synced within `after`.
    pub fn register(&self, partition: &Arc<Shared>, after: Duration) {
        self.lock().due.push((Instant::now() + after, Arc::downgrade(partition)));
        self.wake.notify_one();
    }

    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    fn run(&self) {
        loop {
            let ready: Vec<Weak<Shared>> = {
                let mut st = self.lock();
                loop {
                    if st.shutdown {
                        return;
                    }
                    let now = Instant::now();
                    if st.due.iter().any(|(t, _)| *t <= now) {
                        let (ready, later): (Vec<_>, Vec<_>) = st.due.drain(..).partition(|(t, _)| *t <= now);
                        st.due = later;
                        break ready.into_iter().map(|(_, w)| w).collect();
                    }
                    let wait = st.due.iter().map(|(t, _)| *t - now).min().unwrap_or(Duration::from_secs(3600));
                    st = self.wake.wait_timeout(st, wait).unwrap_or_else(|p| p.into_inner()).0;
                }
            };
            for p in ready.iter().filter_map(Weak::upgrade) {
                p.flush_interval();
            }
        }
    }
}
