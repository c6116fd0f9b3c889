//! Offline commands on the data directory of a stopped server: `verify` (with `--repair`)
//! and `dump`. They never run beside a live server: each takes the data directory's lock
//! (`.lock`, an exclusive `flock`, the same one `cairnd` holds while it runs) first and
//! refuses with a clear message if it is held.

pub mod dump;
pub mod repair;
pub mod report;
pub mod verify;
pub mod walk;

use std::path::Path;

use anyhow::Context as _;
use cairn_storage::format::{LOCK_FILE, TOPICS_DIR};
use cairn_storage::{DirLock, Error as StorageError};

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
    match DirLock::acquire(dir, LOCK_FILE) {
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
