//! Writing one group of sealed segments as a cleaned segment aside (`<base>.*.cleaned`):
//! the records the keep rule keeps, re-batched with their original offsets and timestamps
//! in the topic's codec, with the indexes of the engine's index rule; everything synced.
//! Also the [`Control`] a compaction checks as it goes: its I/O rate limit (the arithmetic
//! is [`super::throttle`]'s) and the stop signal.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::throttle::RateLimit;
use super::{stopped, KeepRule, COMPACTION_BATCH_BYTES, THROTTLE_SLICE};
use crate::batch::{BatchBuilder, Codec, DecodedBatch};
use crate::error::{Error, Result};
use crate::format::{BATCH_RECORDS_MAX, CLEANED_SUFFIX};
use crate::fsutil;
use crate::inspect::{encode_offset_index, encode_time_index, with_suffix, IndexRule, SegmentFiles};
use crate::partition::{lock, PartitionLog};
use crate::segment::Segment;

/// A stop signal shared with the catalog: `true` once it is closing.
pub(crate) type Stop = Arc<(Mutex<bool>, Condvar)>;

/// Rate limit and stop signal of one compaction.
pub(crate) struct Control {
    limit: Option<RateLimit>,
    started: Instant,
    stop: Option<Stop>,
}

impl Control {
    pub fn new(bytes_per_sec: Option<u64>, stop: Option<Stop>) -> Self {
        Control { limit: bytes_per_sec.and_then(RateLimit::new), started: Instant::now(), stop }
    }

    /// Fails with [`Error::Closed`] once the catalog is closing.
    pub fn check_stop(&self) -> Result<()> {
        match &self.stop {
            Some(s) if *lock(&s.0) => Err(stopped()),
            _ => Ok(()),
        }
    }

    /// Counts `n` bytes of I/O and, past the rate limit, waits (on the stop signal, so a
    /// closing catalog interrupts the wait) until the average rate is back under it.
    pub fn account(&mut self, n: u64) -> Result<()> {
        let Some(limit) = self.limit.as_mut() else { return self.check_stop() };
        limit.account(n);
        while let Some(pause) = limit.pause(self.started.elapsed(), THROTTLE_SLICE) {
            match &self.stop {
                Some(s) => {
                    let g = lock(&s.0);
                    let (g, _) = s.1.wait_timeout_while(g, pause, |stop| !*stop).unwrap_or_else(|p| p.into_inner());
                    if *g {
                        return Err(stopped());
                    }
                }
                // Rate limiting, not synchronisation: nothing to wait for but time.
                None => std::thread::sleep(pause),
            }
        }
        self.check_stop()
    }
}

/// A cleaned segment written aside and synced, ready to swap in.
#[derive(Debug)]
pub(crate) struct Cleaned {
    /// The segment it becomes (the group's first base offset).
    pub target: SegmentFiles,
    /// Its `.cleaned` files, in [`SegmentFiles::paths`] order.
    pub files: [PathBuf; 3],
    pub len: u64,
    /// Offset after its last batch (its base offset if empty).
    pub next_offset: u64,
    pub first_ts: Option<i64>,
    pub max_ts: Option<i64>,
}

/// The output log being written.
struct Out {
    log: BufWriter<File>,
    path: PathBuf,
    pos: u64,
    rule: IndexRule,
    base: u64,
    next_offset: u64,
    first_ts: Option<i64>,
    max_ts: Option<i64>,
}

impl Out {
    fn write_batch(&mut self, bytes: &[u8], ctl: &mut Control) -> Result<()> {
        let h = crate::batch::BatchHeader::parse(bytes).map_err(Error::InvalidBatch)?;
        if self.pos + bytes.len() as u64 > u64::from(u32::MAX) {
            return Err(Error::InvalidConfig(format!(
                "compacted segment {} would pass 4 GiB (index positions are u32)",
                self.path.display()
            )));
        }
        self.rule.observe(self.pos, h.base_offset, h.first_timestamp, self.base);
        crate::faults::check("compact.write", &self.path)
            .and_then(|()| self.log.write_all(bytes))
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.pos += bytes.len() as u64;
        self.next_offset = h.next_offset();
        self.first_ts.get_or_insert(h.first_timestamp);
        self.max_ts = Some(self.max_ts.map_or(h.max_timestamp, |m| m.max(h.max_timestamp)));
        ctl.account(bytes.len() as u64)
    }
}

/// Records being re-batched: the first one's offset and timestamp are the batch's.
struct Pending {
    builder: BatchBuilder,
    base: u64,
    first_ts: i64,
}

impl Pending {
    /// Whether a record at `offset`/`ts` can join this batch.
    fn takes(&self, offset: u64, ts: i64) -> bool {
        self.builder.len() < BATCH_RECORDS_MAX
            && self.builder.uncompressed_len() < COMPACTION_BATCH_BYTES
            && ts >= self.first_ts
            && offset - self.base <= u64::from(u32::MAX)
    }
}

fn flush(pending: &mut Option<Pending>, out: &mut Out, ctl: &mut Control) -> Result<()> {
    if let Some(p) = pending.take() {
        let bytes = p.builder.finish(p.base, p.first_ts)?;
        out.write_batch(&bytes, ctl)?;
    }
    Ok(())
}

/// Writes the kept records of `group` to `<first base>.*.cleaned`, synced. On failure the
/// `.cleaned` files are removed (a crash leaves them for the next open to remove).
pub(crate) fn write_cleaned(
    log: &PartitionLog,
    group: &[Arc<Segment>],
    rule: &KeepRule,
    codec: Codec,
    ctl: &mut Control,
) -> Result<Cleaned> {
    let dir = log.dir();
    let base = group[0].base_offset;
    let target = SegmentFiles::new(dir, base);
    let files = target.paths().map(|p| with_suffix(p, CLEANED_SUFFIX));
    let result = write_files(log, group, rule, codec, ctl, &target, &files);
    if result.is_err() {
        for f in &files {
            let _ = std::fs::remove_file(f);
        }
    }
    result
}

fn create(path: &Path) -> Result<File> {
    File::create(path).map_err(|e| Error::io("create", path, e))
}

fn write_files(
    log: &PartitionLog,
    group: &[Arc<Segment>],
    rule: &KeepRule,
    codec: Codec,
    ctl: &mut Control,
    target: &SegmentFiles,
    files: &[PathBuf; 3],
) -> Result<Cleaned> {
    let [index_path, time_path, log_path] = files;
    let mut out = Out {
        log: BufWriter::with_capacity(1 << 20, create(log_path)?),
        path: log_path.clone(),
        pos: 0,
        rule: IndexRule::default(),
        base: target.base,
        next_offset: target.base,
        first_ts: None,
        max_ts: None,
    };
    let mut pending: Option<Pending> = None;
    for seg in group {
        log.for_each_batch(seg, |bytes, h| {
            ctl.account(bytes.len() as u64)?;
            let at = |e| seg.corruption(0, format!("batch at offset {}: {e}", h.base_offset));
            let d = DecodedBatch::new(bytes).map_err(at)?;
            let records = d.collect_checked().map_err(at)?;
            let kept = records.iter().filter(|r| rule.keeps(r.offset, r.timestamp, r.key, r.value)).count();
            if kept == records.len() && codec == Codec::None && !h.is_compressed() {
                // Unchanged and already in the topic's codec: copied as is.
                flush(&mut pending, &mut out, ctl)?;
                return out.write_batch(bytes, ctl);
            }
            for r in records.iter().filter(|r| rule.keeps(r.offset, r.timestamp, r.key, r.value)) {
                if !pending.as_ref().is_some_and(|p| p.takes(r.offset, r.timestamp)) {
                    flush(&mut pending, &mut out, ctl)?;
                    pending = Some(Pending {
                        builder: BatchBuilder::with_codec(codec),
                        base: r.offset,
                        first_ts: r.timestamp,
                    });
                }
                if let Some(p) = pending.as_mut() {
                    let headers = r.headers.iter().map(|(n, v)| (*n, *v));
                    p.builder.push_at(
                        (r.offset - p.base) as u32,
                        (r.timestamp - p.first_ts) as u64,
                        r.key,
                        r.value,
                        headers,
                    );
                }
            }
            Ok(())
        })?;
    }
    flush(&mut pending, &mut out, ctl)?;
    let file = out.log.into_inner().map_err(|e| Error::io("write", log_path, e.into_error()))?;
    crate::faults::check("compact.fsync", log_path)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("fsync", log_path, e))?;
    for (path, bytes) in
        [(index_path, encode_offset_index(&out.rule.index)), (time_path, encode_time_index(&out.rule.time))]
    {
        let mut f = create(path)?;
        f.write_all(&bytes).map_err(|e| Error::io("write", path, e))?;
        crate::faults::check("compact.fsync", path)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("fsync", path, e))?;
    }
    fsutil::sync_dir(log.dir())?;
    Ok(Cleaned {
        target: target.clone(),
        files: files.clone(),
        len: out.pos,
        next_offset: out.next_offset,
        first_ts: out.first_ts,
        max_ts: out.max_ts,
    })
}
