//! Offline commands on the data directory of a stopped server: `verify` (with `--repair`),
//! `dump` and `compact`. Walks of the directory come from `cairn_storage::inspect`, the
//! same code the engine opens partitions with.
//!
//! They never run beside a live server: each takes the data directory's lock (`.lock`, an
//! exclusive `flock`, the same one `cairnd` holds while it runs) first and refuses with a clear message if it is held. A lock still held is retried for up to
//! [`LOCK_WAIT_MS`], so a server that is just exiting (or a process that inherited the lock
//! file descriptor for the moment between fork and exec) is waited for, not reported.

pub mod dump;
pub mod repair;
pub mod report;
pub mod verify;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cairn_storage::format::{LOCK_FILE, TOPICS_DIR};
use cairn_storage::{DirLock, Error as StorageError};

/// How long a held lock is retried before the command is refused.
pub const LOCK_WAIT_MS: u64 = 1000;
/// Pause between attempts to take a held lock.
const LOCK_RETRY_MS: u64 = 50;

/// Takes the data directory's lock, or explains why not. Holding the returned value keeps
/// a server from opening the directory meanwhile.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<DirLock> {
    let meta = std::fs::metadata(dir).with_context(|| format!("data directory {}", dir.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    if !dir.join(TOPICS_DIR).is_dir() && !dir.join(LOCK_FILE).exists() {
        anyhow::bail!(
            "{} does not look like a Cairn data directory (no {TOPICS_DIR}/ and no {LOCK_FILE})",
            dir.display()
        );
    }
    let deadline = Instant::now() + Duration::from_millis(LOCK_WAIT_MS);
    let mut attempt = DirLock::acquire(dir, LOCK_FILE);
    while matches!(attempt, Err(StorageError::Locked { .. })) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(LOCK_RETRY_MS));
        attempt = DirLock::acquire(dir, LOCK_FILE);
    }
    match attempt {
        Ok(lock) => Ok(lock),
        Err(StorageError::Locked { .. }) => Err(anyhow::anyhow!(
            "data directory {} is in use: a running server (or another tool) holds its lock {}; \
             stop the server first (offline commands only run on a stopped server's data directory)",
            dir.display(),
            dir.join(LOCK_FILE).display()
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot lock data directory {}", dir.display()))),
    }
}
