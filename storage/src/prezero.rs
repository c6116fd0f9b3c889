//! The zero-filled horizon of an active segment, and the thread that extends it.
//!
//! An `fdatasync` after an append that grows the file must also write the inode (size, block
//! map): 3 device writes (data, metadata, flush) instead of 2 for an overwrite of space that
//! is already allocated and whose size is already durable. So, for `sync: always`
//! partitions with small group commits, the [`Zeroer`] thread writes zeros past the writer's
//! end (positioned writes, never moving the writer's cursor) and syncs them, ahead of the
//! appends; appends then land in that space. PostgreSQL zero-fills its WAL segments for the
//! same reason. `docs/FORMAT.md` §2.1 says what the zeros look like on disk.
//!
//! The handshake ([`Horizon`]): before writing a run at `[end, end + n)` the writer claims it
//! ([`Horizon::claim`]); the filler writes a piece only from `max(zeros written, claimed
//! end)` upwards, and marks the piece busy while it writes it, so the writer never writes
//! into a piece being zero-filled (it waits for that one piece, at most [`PIECE_BYTES`])
//! and the filler never writes at or below the writer's end. The writer never waits for
//! the horizon to grow: past it, appends grow the file as before. Truncations of the
//! active file (undoing a failed write, sealing, closing) happen with no piece in flight.
//! Any error while zero-filling (a full disk) just stops filling this segment: nothing
//! depends on the zeros being there.
//!
//! The filler syncs through its own file descriptor: a writeback error it is told about is
//! still reported to the writer's descriptor (errors are tracked per open file), so the
//! writer's own `fdatasync` cannot miss an error the filler saw.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::faults;
use crate::format::{PREZERO_AHEAD_BYTES, PREZERO_AHEAD_MIN_BYTES};

/// Zeros written by one positioned write: the longest the writer may wait for the filler.
pub(crate) const PIECE_BYTES: u64 = 64 * 1024;

/// How much zero-filled space to keep past a writer's end at `end`: as much as the segment
/// holds (zeros at most double a small segment), within the bounds of `docs/FORMAT.md` §2.1.
fn ahead_goal(end: u64) -> u64 {
    end.clamp(PREZERO_AHEAD_MIN_BYTES, PREZERO_AHEAD_BYTES)
}

static ZEROS: [u8; PIECE_BYTES as usize] = [0; PIECE_BYTES as usize];

#[derive(Debug, Default)]
struct State {
    /// End of everything the writer has written or is writing: zeros never go below it.
    claimed_end: u64,
    /// Zeros are written (not necessarily synced) up to here, where above `claimed_end`.
    zeros_to: u64,
    /// ... and synced up to here.
    durable_to: u64,
    /// A piece starting at `zeros_to` is being written.
    busy: bool,
    /// A fill is queued on, or running in, the zeroer.
    queued: bool,
    /// No more fills: the segment is sealed or closed, or a fill failed.
    stopped: bool,
    /// The fill never goes past this (the mapped capacity and the segment size).
    limit: u64,
}

/// The zero-filled space past the active segment's end, shared by its writer and the zeroer.
#[derive(Debug)]
pub(crate) struct Horizon {
    path: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
}

impl Horizon {
    /// The horizon of a segment whose data ends at `end` (nothing zero-filled yet).
    pub fn new(path: &Path, end: u64) -> Self {
        let st = State { claimed_end: end, zeros_to: end, durable_to: end, ..State::default() };
        Horizon { path: path.to_path_buf(), state: Mutex::new(st), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state once no piece is being written (the caller may then change the file's size).
    fn idle(&self) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        while st.busy {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st
    }

    /// Claims `[.., end)` for the writer before it writes there: waits if that range reaches
    /// into a piece being zero-filled. With `want_more`, returns true if the caller must
    /// queue a fill (less than half the goal of zeros left ahead, none queued,
    /// room below `limit`).
    pub fn claim(&self, end: u64, limit: u64, want_more: bool) -> bool {
        let mut st = self.lock();
        while st.busy && end > st.zeros_to {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.claimed_end = st.claimed_end.max(end);
        st.limit = limit;
        let ahead = st.zeros_to.saturating_sub(end);
        let fill =
            want_more && !st.stopped && !st.queued && ahead < ahead_goal(end) / 2 && limit > end.max(st.zeros_to);
        if fill {
            st.queued = true;
        }
        fill
    }

    /// Runs `truncate` (which cuts the file to `len`) with no piece in flight, and resets
    /// the horizon to `len` (the zeros past it are gone).
    pub fn truncated<T>(&self, len: u64, truncate: impl FnOnce() -> T) -> T {
        let mut st = self.idle();
        let out = truncate();
        st.claimed_end = len;
        st.zeros_to = len;
        st.durable_to = len;
        out
    }

    /// Stops filling for good (the segment is being sealed or closed). Returns once no
    /// piece is in flight: the file's size may then be changed.
    pub fn stop(&self) {
        self.idle().stopped = true;
    }

    /// One fill: zeros from the writer's end (or the zeros already there) up to
    /// the goal past the writer's end as it is now, then one `fdatasync`.
    fn fill(&self, shutting_down: &dyn Fn() -> bool) {
        let target = {
            let st = self.lock();
            st.claimed_end.saturating_add(ahead_goal(st.claimed_end)).min(st.limit)
        };
        let file = match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => f,
            Err(e) => return self.give_up(&format!("open: {e}")),
        };
        let mut wrote = false;
        loop {
            let (from, to) = {
                let mut st = self.lock();
                if st.stopped || shutting_down() {
                    st.queued = false;
                    self.changed.notify_all();
                    return;
                }
                let from = st.zeros_to.max(st.claimed_end);
                let to = (from + PIECE_BYTES).min(target);
                if from >= to {
                    break;
                }
                st.busy = true;
                (from, to)
            };
            let written = write_zeros(&file, &self.path, from, to);
            let mut st = self.lock();
            st.busy = false;
            self.changed.notify_all();
            match written {
                Ok(()) => st.zeros_to = to,
                Err(e) => {
                    drop(st);
                    return self.give_up(&format!("write at byte {from}: {e}"));
                }
            }
            wrote = true;
        }
        if !wrote {
            self.lock().queued = false;
            self.changed.notify_all();
            return;
        }
        let synced_to = self.lock().zeros_to;
        if let Err(e) = faults::sync_data("prezero.fdatasync", &file, &self.path) {
            return self.give_up(&format!("fdatasync: {e}"));
        }
        let mut st = self.lock();
        st.queued = false;
        if !st.stopped {
            st.durable_to = st.durable_to.max(synced_to);
        }
        self.changed.notify_all();
    }

    /// Waits until no fill is queued or running, then returns the end of the zeros synced
    /// past the writer's end (the writer's end if none).
    pub fn settle(&self) -> u64 {
        let mut st = self.lock();
        while st.queued {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.durable_to.max(st.claimed_end)
    }

    fn give_up(&self, why: &str) {
        tracing::warn!(file = %self.path.display(), "zero-filling stopped for this segment ({why}); appends go on");
        let mut st = self.lock();
        st.stopped = true;
        st.queued = false;
        self.changed.notify_all();
    }
}

fn write_zeros(file: &File, path: &Path, from: u64, to: u64) -> std::io::Result<()> {
    faults::check("prezero.write", path)?;
    let n = usize::try_from(to - from).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    file.write_all_at(&ZEROS[..n], from)
}

#[derive(Default)]
struct ZeroerState {
    queue: VecDeque<Arc<Horizon>>,
    shutdown: bool,
}

/// The thread that zero-fills horizons, one fill at a time, in the order they were asked.
#[derive(Default)]
pub(crate) struct Zeroer {
    state: Mutex<ZeroerState>,
    wake: Condvar,
}

impl Zeroer {
    pub fn start() -> std::io::Result<(Arc<Self>, JoinHandle<()>)> {
        crate::pool::start_service("cairn-zeroer", Zeroer::run)
    }

    fn lock(&self) -> MutexGuard<'_, ZeroerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a fill of `horizon` (its caller got true from [`Horizon::claim`]).
    pub fn request(&self, horizon: Arc<Horizon>) {
        let mut st = self.lock();
        if st.shutdown {
            drop(st);
            horizon.lock().queued = false;
            horizon.changed.notify_all();
            return;
        }
        st.queue.push_back(horizon);
        drop(st);
        self.wake.notify_one();
    }

    /// Stops the thread after the piece it is writing (fills not done are dropped).
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    fn shutting_down(&self) -> bool {
        self.lock().shutdown
    }

    fn run(&self) {
        loop {
            let next = {
                let mut st = self.lock();
                loop {
                    if st.shutdown {
                        // Fills never run: nobody waits for them (`Horizon::settle`).
                        for h in st.queue.drain(..) {
                            h.lock().queued = false;
                            h.changed.notify_all();
                        }
                        return;
                    }
                    if let Some(h) = st.queue.pop_front() {
                        break h;
                    }
                    st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            };
            next.fill(&|| self.shutting_down());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_stays_above_the_claimed_end_and_below_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        let h = Horizon::new(&path, 1000);
        assert!(h.claim(1000, 1000 + PIECE_BYTES / 2, true));
        assert!(!h.claim(1000, 1000 + PIECE_BYTES / 2, true), "one fill at a time");
        h.fill(&|| false);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, 1000 + PIECE_BYTES / 2, "stops at the limit");
        assert!(bytes[..1000].iter().all(|&b| b == 7), "data below the end untouched");
        assert!(bytes[1000..].iter().all(|&b| b == 0));
        assert_eq!(h.settle(), 1000 + PIECE_BYTES / 2);
        // Nothing left below the limit: no more fills.
        assert!(!h.claim(1100, 1000 + PIECE_BYTES / 2, true));
        h.stop();
        assert!(!h.claim(1200, u64::MAX, true), "stopped");
    }
}
