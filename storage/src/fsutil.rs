//! Crash-safe file primitives: directory fsync, atomic replace (temp + fsync + rename +
//! directory fsync), and the data-directory lock.
//!
//! Every file the engine creates, renames or deletes goes through here, so the rule "fsync
//! the directory after changing its entries" lives in one place.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::faults;
use crate::format::TMP_SUFFIX;

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
    crate::faults::check("dir.fsync", dir).and_then(|()| f.sync_all()).map_err(|e| Error::io("fsync directory", dir, e))
}

/// Creates `dir` (and missing parents) and makes the new entries durable: `dir` itself, its
/// parent, and the parent of every level it had to create. A relative `dir` of one component
/// (`data`) has the current directory as its parent.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> =
        dir.ancestors().filter(|a| !a.as_os_str().is_empty()).take_while(|a| !a.exists()).collect();
    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    sync_dir(dir)?;
    sync_dir(parent_of(dir))?;
    for created in missing.iter().skip(1) {
        sync_dir(parent_of(created))?;
    }
    Ok(())
}

/// Grows `file` to `len` bytes with its blocks allocated (`posix_fallocate`), so that writes
/// through a memory map of it can never meet a full disk (that would be SIGBUS): a full disk
/// is reported here, as ENOSPC, instead. Falls back to a sparse `set_len` on file systems that
/// cannot allocate.
pub fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let off = libc::off_t::try_from(len).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: posix_fallocate takes plain integers; `file` keeps the descriptor open for the call.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off) } {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// Replaces `path` with `contents` atomically: write `path.tmp`, fsync it, rename it over
/// `path`, fsync the directory. A crash at any step leaves either the old or the new file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    const STEPS: AtomicSteps = AtomicSteps { create: "atomic.create", fsync: "atomic.fsync", rename: "atomic.rename" };
    write_atomic_with(path, &STEPS, |f, tmp| {
        faults::check("atomic.write", path).and_then(|()| f.write_all(contents)).map_err(|e| Error::io("write", tmp, e))
    })
}

/// Failpoint names (`crate::faults`) of the steps of [`write_atomic_with`].
pub(crate) struct AtomicSteps {
    pub create: &'static str,
    pub fsync: &'static str,
    pub rename: &'static str,
}

/// [`write_atomic`] with the contents written by `fill` (given the temp file and its path),
/// for contents streamed rather than held in memory. The temp file is removed on failure.
pub(crate) fn write_atomic_with(
    path: &Path,
    steps: &AtomicSteps,
    fill: impl FnOnce(&mut File, &Path) -> Result<()>,
) -> Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = faults::check(steps.create, path)
            .and_then(|()| File::create(&tmp))
            .map_err(|e| Error::io("create", &tmp, e))?;
        fill(&mut f, &tmp)?;
        faults::sync_data(steps.fsync, &f, path).map_err(|e| Error::io("fsync", &tmp, e))?;
        faults::check(steps.rename, path)
            .and_then(|()| fs::rename(&tmp, path))
            .map_err(|e| Error::io("rename", &tmp, e))?;
        sync_dir(parent_of(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes a file (missing is fine) and fsyncs its directory.
pub fn remove_file_durable(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent_of(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// `path` with `.tmp` appended to its file name.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".");
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An exclusive lock on a data directory, held for as long as this value lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock file `name` in `dir`, failing with [`Error::Locked`] if another process
    /// (or another open catalog in this one) holds it.
    pub fn acquire(dir: &Path, name: &str) -> Result<Self> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path: dir.to_path_buf() }),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
        }
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preallocate_allocates_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("pre")).unwrap();
        preallocate(&f, 1 << 20).unwrap();
        let meta = f.metadata().unwrap();
        assert_eq!(meta.len(), 1 << 20);
        assert!(std::os::unix::fs::MetadataExt::blocks(&meta) * 512 >= 1 << 20, "blocks are allocated");
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(!tmp_path(&p).exists());
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path(), ".lock").unwrap();
        assert!(matches!(DirLock::acquire(dir.path(), ".lock"), Err(Error::Locked { .. })));
        drop(held);
        DirLock::acquire(dir.path(), ".lock").unwrap();
    }
}
