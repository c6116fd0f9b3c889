//! Swapping a cleaned segment in place of the group of segments it was made from, so that a
//! crash at any step leaves a complete, readable log, and readers never see half of it.
//!
//! Steps (`docs/FORMAT.md` §6):
//! 1. `<b>.{index,timeindex,log}.cleaned` are written and synced, the directory fsynced
//!    ([`super::clean`]). A crash here: the open removes `*.cleaned`; the old group stays.
//! 2. They are renamed to `.swap`; directory fsync. A crash: `.swap` files without a
//!    manifest are removed at open; the old group stays.
//! 3. The manifest `<b>.swap` (the group's base offsets, CRC-protected) is written
//!    atomically (temp, fsync, rename, directory fsync). **This is the commit point.** From
//!    here on, the open completes the swap: it deletes the group's other segments, renames
//!    whatever `.swap` files remain into place, then removes the manifest. Every step of that
//!    is idempotent, so a crash during it is completed the same way.
//! 4. Under the partition's segments lock (readers wait a few renames): the old segments are
//!    marked retired, the other members' files unlinked, the `.swap` files renamed into
//!    place, and the segment list replaced. Readers that already mapped an old segment keep
//!    reading it (its inode lives while mapped; nothing is truncated); one that had not yet
//!    mapped it finds it retired and retries with the new list.
//! 5. Directory fsync, manifest removed, directory fsync.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::clean::Cleaned;
use crate::error::{Error, Result};
use crate::format::SWAP_SUFFIX;
use crate::fsutil;
use crate::inspect::{encode_swap_manifest, swap_manifest_path, with_suffix, PendingSwap, SegmentFiles};
use crate::partition::Shared;
use crate::segment::Segment;

/// The steps after which a test may simulate a crash.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SwapStep {
    CleanedWritten,
    SwapRenamed,
    ManifestWritten,
    OldFilesRemoved,
    FirstRenamedIntoPlace,
    AllRenamedIntoPlace,
}

#[cfg(test)]
thread_local! {
    static CRASH_AT: std::cell::Cell<Option<SwapStep>> = const { std::cell::Cell::new(None) };
}

/// Makes the next swap on this thread stop dead after `step`, as a crash would (nothing is
/// cleaned up; the caller then drops the catalog without closing it and reopens).
#[cfg(test)]
pub(crate) fn crash_at(step: Option<SwapStep>) {
    CRASH_AT.with(|c| c.set(step));
}

#[cfg(test)]
fn reached(step: SwapStep) -> Result<()> {
    if CRASH_AT.with(|c| c.get()) == Some(step) {
        CRASH_AT.with(|c| c.set(None));
        return Err(Error::Poisoned(format!("simulated crash after {step:?}")));
    }
    Ok(())
}

fn rename(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    crate::faults::check("swap.rename", from)
        .and_then(|()| std::fs::rename(from, to))
        .map_err(|e| Error::io("rename", from, e))
}

fn remove(path: &std::path::Path) -> Result<()> {
    match crate::faults::check("swap.remove", path).and_then(|()| std::fs::remove_file(path)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Swaps `cleaned` in for `group` (steps 2–5 above).
pub(crate) fn swap_in(sh: &Arc<Shared>, group: &[Arc<Segment>], cleaned: Cleaned) -> Result<()> {
    #[cfg(test)]
    reached(SwapStep::CleanedWritten)?;
    let dir = &sh.dir;
    let target = &cleaned.target;
    let swaps = target.paths().map(|p| with_suffix(p, SWAP_SUFFIX));
    let staged = (|| {
        for (from, to) in cleaned.files.iter().zip(&swaps) {
            rename(from, to)?;
        }
        fsutil::sync_dir(dir)
    })();
    if let Err(e) = staged {
        for p in cleaned.files.iter().chain(&swaps) {
            let _ = remove(p);
        }
        return Err(e);
    }
    #[cfg(test)]
    reached(SwapStep::SwapRenamed)?;
    let bases: Vec<u64> = group.iter().map(|s| s.base_offset).collect();
    let manifest = swap_manifest_path(dir, target.base);
    if let Err(e) = fsutil::write_atomic(&manifest, &encode_swap_manifest(&bases)) {
        // The atomic write can fail after its rename (the directory fsync), leaving the
        // manifest in place: the swap may be committed. Take the manifest back before
        // removing the files it names, or the next open would delete the group's other
        // segments with nothing to replace them. If even that fails, keep everything for
        // the open to complete, and refuse to go on.
        match fsutil::remove_file_durable(&manifest) {
            Ok(()) => {
                for p in &swaps {
                    let _ = remove(p);
                }
            }
            Err(re) => sh.poison(format!("compaction manifest {} may be committed: {e}; {re}", manifest.display())),
        }
        return Err(e);
    }
    #[cfg(test)]
    reached(SwapStep::ManifestWritten)?;
    // Committed: from here a failure leaves the partition's files and segment list half
    // swapped. The manifest makes the next open complete the swap, so the partition refuses
    // writes (and further compaction) until then rather than go on from an unknown state.
    install(sh, group, &cleaned, &swaps, &manifest).map_err(|e| {
        if !matches!(e, Error::Poisoned(_)) {
            sh.poison(format!("compaction swap to {} committed but not completed: {e}", manifest.display()));
        }
        e
    })
}

/// Steps 4 and 5: the committed swap applied to the files and the segment list.
fn install(
    sh: &Arc<Shared>,
    group: &[Arc<Segment>],
    cleaned: &Cleaned,
    swaps: &[std::path::PathBuf; 3],
    manifest: &std::path::Path,
) -> Result<()> {
    let dir = &sh.dir;
    let target = &cleaned.target;
    let fresh = Arc::new(Segment::new(dir, target.base));
    fresh.set_recovered(cleaned.len, cleaned.next_offset, cleaned.first_ts, cleaned.max_ts);
    fresh.sealed.store(true, Ordering::Release);
    {
        let mut segs = sh.segments.write().unwrap_or_else(|p| p.into_inner());
        for old in group {
            old.retired.store(true, Ordering::Release);
        }
        for old in &group[1..] {
            for p in SegmentFiles::new(dir, old.base_offset).paths() {
                remove(p)?;
            }
        }
        #[cfg(test)]
        reached(SwapStep::OldFilesRemoved)?;
        for (i, (from, to)) in swaps.iter().zip(target.paths()).enumerate() {
            rename(from, to)?;
            #[cfg(test)]
            if i == 0 {
                reached(SwapStep::FirstRenamedIntoPlace)?;
            }
            let _ = i;
        }
        for old in &group[1..] {
            segs.remove(&old.base_offset);
        }
        segs.insert(target.base, fresh);
        sh.swaps.fetch_add(1, Ordering::AcqRel);
    }
    for old in group {
        sh.ctx.cache.forget(old);
    }
    #[cfg(test)]
    reached(SwapStep::AllRenamedIntoPlace)?;
    fsutil::sync_dir(dir)?;
    fsutil::remove_file_durable(manifest)
}

/// Completes a committed swap found at open (step 3 onwards), idempotently.
pub(crate) fn complete_swap(dir: &std::path::Path, swap: &PendingSwap) -> Result<()> {
    tracing::warn!(dir = %dir.display(), base = swap.base, "completing an interrupted compaction swap");
    let target = SegmentFiles::new(dir, swap.base);
    for &b in swap.replaces.iter().filter(|&&b| b != swap.base) {
        for p in SegmentFiles::new(dir, b).paths() {
            remove(p)?;
        }
    }
    for to in target.paths() {
        let from = with_suffix(to, SWAP_SUFFIX);
        if from.exists() {
            rename(&from, to)?;
        }
    }
    fsutil::sync_dir(dir)?;
    fsutil::remove_file_durable(&swap.manifest)
}
