//! Fault injection: named failpoints on the engine's I/O steps, for tests.
//!
//! With the `failpoints` cargo feature each hook asks the `fail` crate whether its point is
//! configured (`fail::cfg(name, "return(enospc)")`, `"1*return(eio)"`, ...) and, if so, fails
//! the step the way the argument says instead of (or, for a short write, as well as) doing
//! it. Without the feature every hook is the plain system call, inlined: release builds
//! carry no failpoints and no `fail` crate.
//!
//! Arguments of `return(...)`: `eio` (the default), `enospc`, and for `append.write` also
//! `short` (write only the first half of the first buffer and report that, as a short write
//! does; the caller must go on writing), and `pass` (count the hit, do the step: see
//! `passed`). `<arg>@<suffix>` fires only for paths ending in
//! `<suffix>`, so one point can target one file (`atomic.fsync` of `@.clean-shutdown`).
//! [`FAILPOINTS`] lists every point; docs/ARCHITECTURE.md says what each test asserts.

use std::fs::File;
use std::io::{self, IoSlice};
use std::path::Path;

/// Every failpoint, with the step it fails.
pub const FAILPOINTS: &[(&str, &str)] = &[
    ("append.write", "a group commit's write(2) to the active segment (eio, enospc, short)"),
    ("append.fdatasync", "a group commit's fdatasync (sync = always)"),
    ("append.undo", "truncating the unacknowledged tail of a failed group commit"),
    ("flush.fdatasync", "the flusher's fdatasync of an interval-sync partition"),
    ("roll.fdatasync", "syncing the old segment before a roll (sync = interval)"),
    ("seal.truncate", "cutting the zero-filled tail of a segment being sealed or closed"),
    ("seal.fsync", "the fsync after cutting a sealed segment's zero-filled tail (roll)"),
    ("prezero.write", "a zero-fill write past the active segment's end (zeroer thread)"),
    ("prezero.fdatasync", "the zeroer's fdatasync of the zeros it wrote"),
    ("segment.create", "creating (or opening) a segment's log file"),
    ("index.create", "creating an index file"),
    ("index.preallocate", "preallocating an index file (posix_fallocate)"),
    ("index.msync", "msync of an index map (seal, close)"),
    ("index.trim", "trimming a sealed segment's index to its entries"),
    ("index.fsync", "fsync of an index file (seal, close)"),
    ("close.fdatasync", "the fdatasync of the active segment at close"),
    ("dir.fsync", "every directory fsync (roll, atomic replace, compaction swap, removals)"),
    ("atomic.create", "creating the temp file of an atomic replace"),
    ("atomic.write", "writing the temp file of an atomic replace"),
    ("atomic.fsync", "fsync of the temp file of an atomic replace"),
    ("atomic.rename", "renaming the temp file over the target"),
    ("topic.rename", "renaming a deleted topic's directory aside (the delete's first step)"),
    ("compact.write", "writing a cleaned segment's log (compaction)"),
    ("compact.fsync", "fsync of a cleaned segment's files (compaction)"),
    ("swap.rename", "a compaction swap's renames (.cleaned to .swap, .swap into place)"),
    ("swap.remove", "removing the segments a committed compaction swap replaced"),
    ("quarantine.write", "creating the quarantine file of a power-loss cut at open (recovery)"),
    ("quarantine.fsync", "fsync of the quarantine file of a power-loss cut at open (recovery)"),
    ("quarantine.rename", "renaming the quarantine file of a power-loss cut into place (recovery)"),
];

#[cfg(feature = "failpoints")]
mod active {
    use std::collections::HashMap;
    use std::io;
    use std::path::Path;
    use std::sync::Mutex;

    static FIRED: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
    static PASSED: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

    /// What a configured point asks for, if it fires for `path`.
    pub(super) fn eval(name: &str, path: &Path) -> Option<String> {
        let arg = fail::eval(name, |arg| arg.unwrap_or_default())?;
        let (what, suffix) = match arg.split_once('@') {
            Some((w, s)) => (w.to_string(), Some(s.to_string())),
            None => (arg, None),
        };
        if let Some(s) = suffix {
            if !path.as_os_str().to_string_lossy().ends_with(&s) {
                return None;
            }
        }
        let counter = if what == "pass" { &PASSED } else { &FIRED };
        let mut counts = counter.lock().unwrap_or_else(|p| p.into_inner());
        *counts.get_or_insert_with(HashMap::new).entry(name.to_string()).or_default() += 1;
        (what != "pass").then_some(what)
    }

    pub(super) fn error(what: &str) -> io::Error {
        match what {
            "enospc" => io::Error::from_raw_os_error(libc::ENOSPC),
            _ => io::Error::from_raw_os_error(libc::EIO),
        }
    }

    fn count(counter: &Mutex<Option<HashMap<String, u64>>>, name: &str) -> u64 {
        counter.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|m| m.get(name).copied()).unwrap_or(0)
    }

    /// How many times `name` has failed a step in this process.
    pub fn fired(name: &str) -> u64 {
        count(&FIRED, name)
    }

    /// How many times `name` was reached with `return(pass)` (counted, not failed): tests
    /// count a point's hits in a run, then fail each hit in turn.
    pub fn passed(name: &str) -> u64 {
        count(&PASSED, name)
    }
}

#[cfg(feature = "failpoints")]
pub use active::{fired, passed};

/// Fails if the point `name` fires for `path`; otherwise does nothing.
#[inline(always)]
pub(crate) fn check(name: &str, path: &Path) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some(what) = active::eval(name, path) {
        return Err(active::error(&what));
    }
    let _ = (name, path);
    Ok(())
}

/// `file.sync_data()`, unless the point `name` fires (then the data is not synced).
#[inline(always)]
pub(crate) fn sync_data(name: &str, file: &File, path: &Path) -> io::Result<()> {
    check(name, path)?;
    file.sync_data()
}

/// `file.sync_all()`, unless the point `name` fires (then nothing is synced).
#[inline(always)]
pub(crate) fn sync_all(name: &str, file: &File, path: &Path) -> io::Result<()> {
    check(name, path)?;
    file.sync_all()
}

/// `opts.open(path)`, unless the point `name` fires.
#[inline(always)]
pub(crate) fn open(name: &str, opts: &std::fs::OpenOptions, path: &Path) -> io::Result<File> {
    check(name, path)?;
    opts.open(path)
}

/// `file.set_len(len)`, unless the point `name` fires.
#[inline(always)]
pub(crate) fn set_len(name: &str, file: &File, path: &Path, len: u64) -> io::Result<()> {
    check(name, path)?;
    file.set_len(len)
}

/// One `write_vectored` at the file's cursor; the point `name` may fail it or make it short.
#[inline(always)]
pub(crate) fn write_vectored(name: &str, mut file: &File, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    use std::io::Write;
    #[cfg(feature = "failpoints")]
    if let Some(what) = active::eval(name, Path::new("")) {
        return match (what.as_str(), slices.iter().find(|s| !s.is_empty())) {
            ("short", Some(first)) => file.write(&first[..first.len().div_ceil(2)]),
            ("short", None) => file.write_vectored(slices),
            (what, _) => Err(active::error(what)),
        };
    }
    let _ = name;
    file.write_vectored(slices)
}
