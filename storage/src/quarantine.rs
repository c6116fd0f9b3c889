//! Quarantine files: the bytes recovery cuts from the end of an active segment after a power
//! loss, copied aside (durably) before the segment is truncated, so that nothing is
//! destroyed without a trace (`docs/FORMAT.md` §6).
//!
//! A quarantine file is named after the segment and the cut position
//! ([`crate::inspect::cut_file_path`]) and is not part of the log: the engine never reads it
//! and never removes it (the listing sorts it out of the segments and leftovers); deleting
//! the topic removes it with the directory. An operator inspects it (`cairn dump`) and
//! deletes it.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::{self, AtomicSteps};
use crate::inspect::cut_file_path;

/// Bytes copied (or compared) at once.
const CHUNK_BYTES: usize = 1 << 20;

/// Copies the bytes `[from, end of file)` of the segment log `log` to a quarantine file next
/// to it and makes the copy durable (written to `<name>.tmp`, fsynced, renamed into place,
/// directory fsynced) before returning its path and the number of bytes. Only then may the
/// caller truncate the segment.
///
/// A recovery that crashed after the copy but before the truncation finds the same damage
/// again: a quarantine file already holding exactly these bytes is reused. A different file
/// under the name (an earlier power loss cut at the same position) is kept, and the next
/// free name (`…-2`, `…-3`, …) is used. Also used by `cairn verify --repair`, which cuts a
/// power-loss tail as the open would.
pub fn quarantine_tail(log: &Path, from: u64) -> Result<(PathBuf, u64)> {
    let src = File::open(log).map_err(|e| Error::io("open segment", log, e))?;
    let len = src.metadata().map_err(|e| Error::io("stat segment", log, e))?.len();
    let bytes = len.saturating_sub(from);
    let mut n = 1;
    loop {
        let path = cut_file_path(log, from, n);
        match holds_same_bytes(&src, from, len, &path) {
            Ok(true) => return Ok((path, bytes)),
            Ok(false) => n += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                copy_durably(&src, log, from, len, &path)?;
                return Ok((path, bytes));
            }
            Err(e) => return Err(Error::io("read quarantine file", &path, e)),
        }
    }
}

/// Whether the file at `path` holds exactly the bytes `[from, len)` of `src`.
fn holds_same_bytes(src: &File, from: u64, len: u64, path: &Path) -> io::Result<bool> {
    let other = File::open(path)?;
    if other.metadata()?.len() != len - from {
        return Ok(false);
    }
    let (mut a, mut b) = (vec![0u8; CHUNK_BYTES], vec![0u8; CHUNK_BYTES]);
    let mut pos = from;
    while pos < len {
        let n = usize::try_from(len - pos).unwrap_or(usize::MAX).min(CHUNK_BYTES);
        src.read_exact_at(&mut a[..n], pos)?;
        other.read_exact_at(&mut b[..n], pos - from)?;
        if a[..n] != b[..n] {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

fn copy_durably(src: &File, log: &Path, from: u64, len: u64, path: &Path) -> Result<()> {
    const STEPS: AtomicSteps =
        AtomicSteps { create: "quarantine.write", fsync: "quarantine.fsync", rename: "quarantine.rename" };
    fsutil::write_atomic_with(path, &STEPS, |out, tmp| {
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut pos = from;
        while pos < len {
            let n = usize::try_from(len - pos).unwrap_or(usize::MAX).min(CHUNK_BYTES);
            src.read_exact_at(&mut buf[..n], pos).map_err(|e| Error::io("read segment", log, e))?;
            out.write_all(&buf[..n]).map_err(|e| Error::io("write", tmp, e))?;
            pos += n as u64;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn copies_the_tail_reuses_its_own_copy_and_never_overwrites_another() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("00000000000000000000.log");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&log, &content).unwrap();
        let (first, n) = quarantine_tail(&log, 1000).unwrap();
        assert_eq!((first.clone(), n), (cut_file_path(&log, 1000, 1), 2_999_000));
        assert_eq!(fs::read(&first).unwrap(), &content[1000..]);
        // The same cut again (a crash before the truncation): the same file.
        assert_eq!(quarantine_tail(&log, 1000).unwrap().0, first);
        // Other bytes at the same position: a second file; the first is kept.
        fs::write(&log, &content[..5000]).unwrap();
        let (second, n) = quarantine_tail(&log, 1000).unwrap();
        assert_eq!((second.clone(), n), (cut_file_path(&log, 1000, 2), 4000));
        assert_eq!(fs::read(&second).unwrap(), &content[1000..5000]);
        assert_eq!(fs::read(&first).unwrap(), &content[1000..]);
        assert!(!fsutil::tmp_path(&second).exists());
    }
}
