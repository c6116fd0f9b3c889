//! A checked walk of one segment's log with positioned reads (nothing is mapped), used by
//! recovery after a crash and by the offline tools.
//!
//! Every batch is parsed, CRC-checked and offset-checked (offsets never go backwards). At a
//! bad batch the walk looks for the next good one with an offset at least the expected one,
//! trying every byte position (the bad batch's own length field may be the damaged bytes):
//! recovery uses the first damage found to tell a torn tail (nothing good follows) from
//! corruption in the middle; the tools go on and report every damaged region of a file.
//!
//! Zeros from a batch boundary to the end of the file are not damage: they are the
//! zero-filled space the writer keeps ahead of an active segment's data (`docs/FORMAT.md`
//! §2.1), left by a crash ([`SegmentScan::zero_tail`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::IndexRule;
use crate::batch::{self, BatchHeader};
use crate::format::*;

/// Bytes read at once from a log file.
const READ_WINDOW_BYTES: usize = 4 * 1024 * 1024;

/// A log file read through a read-ahead window with positioned reads.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl LogFile {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(LogFile { file, len, buf: Vec::new(), buf_start: 0 })
    }

    /// Length of the file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes `[pos, pos + n)`, which must lie within the file.
    pub fn slice(&mut self, pos: u64, n: usize) -> io::Result<&[u8]> {
        let end = pos.checked_add(n as u64).filter(|&e| e <= self.len).ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, format!("read of {n} bytes at {pos} past the end"))
        })?;
        let buffered = pos >= self.buf_start && end <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            let want = n.max(READ_WINDOW_BYTES).min(usize::try_from(self.len - pos).unwrap_or(usize::MAX));
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let off = (pos - self.buf_start) as usize;
        Ok(&self.buf[off..off + n])
    }

    /// Whether every byte from `pos` to the end of the file is zero.
    pub fn zeros_from(&mut self, pos: u64) -> io::Result<bool> {
        zeros_to_end(&self.file, pos, self.len)
    }

    /// Checks the batch at `pos`: header, whole batch present, CRC, and offset at least
    /// `min_offset`. `Ok(Err(reason))` if it is not a good batch.
    pub fn batch_at(&mut self, pos: u64, min_offset: u64) -> io::Result<Result<BatchHeader, String>> {
        let remaining = self.len - pos;
        if remaining < BATCH_HEADER_LEN as u64 {
            return Ok(Err(format!("{remaining} trailing bytes, shorter than a batch header")));
        }
        let header = match BatchHeader::parse(self.slice(pos, BATCH_HEADER_LEN)?) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let total = header.total_len();
        if total as u64 > remaining {
            return Ok(Err(format!("batch of {total} bytes runs past the end of the file ({remaining} left)")));
        }
        let header = match batch::verify(self.slice(pos, total)?) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if header.base_offset < min_offset {
            return Ok(Err(format!("batch offset {} is below the expected {min_offset}", header.base_offset)));
        }
        Ok(Ok(header))
    }

    /// The first position after `pos` where a good batch with offset at least `min_offset`
    /// starts, trying every byte (a damaged length field cannot be trusted to skip by). A
    /// cheap magic-byte check comes first; the CRC only for candidates that pass it.
    pub fn resync(&mut self, pos: u64, min_offset: u64) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut at = pos + 1;
        while at + BATCH_HEADER_LEN as u64 <= self.len {
            if self.slice(at + MAGIC_POS as u64, 1)?[0] == BATCH_MAGIC {
                if let Ok(h) = self.batch_at(at, min_offset)? {
                    return Ok(Some((at, h)));
                }
            }
            at += 1;
        }
        Ok(None)
    }
}

/// Whether every byte of `file` in `[pos, len)` is zero (read in pieces, stopping at the
/// first non-zero one).
pub fn zeros_to_end(file: &File, mut pos: u64, len: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    while pos < len {
        let n = usize::try_from(len - pos).unwrap_or(usize::MAX).min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// A damaged byte range of a log: no good batch starts in `[start, end)`.
#[derive(Debug, Clone)]
pub struct Damage {
    pub start: u64,
    /// Where the next good batch starts, or the file's length.
    pub end: u64,
    pub reason: String,
    /// The offset expected at `start`: the first offset lost.
    pub lost_from: u64,
    /// Base offset of the good batch at `end`, if one follows in this file.
    pub resumes_at: Option<u64>,
}

/// Offsets skipped between batches (expected `expected`, found `found` at `position`).
#[derive(Debug, Clone, Copy)]
pub struct Gap {
    pub position: u64,
    pub expected: u64,
    pub found: u64,
}

/// What a scan of one segment's log found.
#[derive(Debug, Clone, Default)]
pub struct SegmentScan {
    pub len: u64,
    /// Bytes of the good batches before the first damage (the length a torn tail is cut to).
    pub good_len: u64,
    /// Zero bytes from the end of the last batch to the end of the file: zero-filled space
    /// ahead of an active segment's data, not data and not damage (the engine cuts it at
    /// open).
    pub zero_tail: u64,
    pub batches: u64,
    pub records: u64,
    pub first_offset: Option<u64>,
    /// The offset after the last good batch (the segment's base if none).
    pub next_offset: u64,
    pub first_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub damage: Vec<Damage>,
    pub gaps: Vec<Gap>,
    /// The offset-index entries the engine writes for this file: (relative, position).
    pub index: Vec<(u32, u32)>,
    /// The time-index entries the engine writes: (timestamp, relative).
    pub time: Vec<(i64, u32)>,
}

/// Reads every batch of a segment's log, calling `visit(position, batch bytes, header)` for
/// each good one, and records damaged regions, offset gaps and the index entries it should
/// have. With `stop_at_damage` the walk ends at the first damage (after finding whether good
/// data follows it: [`Damage::resumes_at`]), as recovery needs.
pub fn scan_segment(
    log: &mut LogFile,
    base: u64,
    stop_at_damage: bool,
    mut visit: impl FnMut(u64, &[u8], &BatchHeader),
) -> io::Result<SegmentScan> {
    let len = log.len();
    let mut scan = SegmentScan { len, next_offset: base, ..SegmentScan::default() };
    let mut rule = IndexRule::default();
    let (mut pos, mut expected) = (0u64, base);
    while pos < len {
        match log.batch_at(pos, expected)? {
            Ok(h) => {
                if h.base_offset > expected {
                    scan.gaps.push(Gap { position: pos, expected, found: h.base_offset });
                }
                rule.observe(pos, h.base_offset, h.first_timestamp, base);
                visit(pos, log.slice(pos, h.total_len())?, &h);
                scan.batches += 1;
                scan.records += u64::from(h.record_count);
                scan.first_offset.get_or_insert(h.base_offset);
                scan.first_timestamp.get_or_insert(h.first_timestamp);
                scan.max_timestamp = Some(scan.max_timestamp.map_or(h.max_timestamp, |m| m.max(h.max_timestamp)));
                expected = h.next_offset();
                scan.next_offset = expected;
                pos += h.total_len() as u64;
                if scan.damage.is_empty() {
                    scan.good_len = pos;
                }
            }
            Err(_) if log.zeros_from(pos)? => {
                scan.zero_tail = len - pos;
                break;
            }
            Err(reason) => {
                let next = log.resync(pos, expected)?;
                let damage = Damage {
                    start: pos,
                    end: next.map_or(len, |(at, _)| at),
                    reason,
                    lost_from: expected,
                    resumes_at: next.map(|(_, h)| h.base_offset),
                };
                if let Some((_, h)) = next {
                    expected = h.base_offset;
                }
                pos = damage.end;
                scan.damage.push(damage);
                if stop_at_damage {
                    break;
                }
            }
        }
    }
    scan.index = rule.index;
    scan.time = rule.time;
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchBuilder;

    fn batch(base: u64, n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            b.push(Some(b"k"), Some(format!("value {i}").as_bytes()), []);
        }
        b.finish(base, 1_764_000_000_000).unwrap()
    }

    #[test]
    fn scan_finds_damage_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for i in 0..5 {
            starts.push(bytes.len());
            bytes.extend(batch(i * 3, 3));
        }
        bytes[starts[2] + 50] ^= 0x10;
        bytes.extend_from_slice(&[0xAB; 10]);
        std::fs::write(&path, &bytes).unwrap();
        let mut log = LogFile::open(&path).unwrap();
        let scan = scan_segment(&mut log, 0, false, |_, _, _| {}).unwrap();
        assert_eq!(scan.batches, 4);
        assert_eq!(scan.damage.len(), 2);
        assert_eq!(scan.good_len, starts[2] as u64);
        let d = &scan.damage[0];
        assert_eq!((d.start, d.end, d.lost_from, d.resumes_at), (starts[2] as u64, starts[3] as u64, 6, Some(9)));
        assert!(d.reason.contains("CRC"), "{}", d.reason);
        let tail = &scan.damage[1];
        assert_eq!((tail.end, tail.resumes_at), (bytes.len() as u64, None));
        assert_eq!(scan.next_offset, 15);
        assert!(scan.gaps.is_empty());

        let mut log = LogFile::open(&path).unwrap();
        let first = scan_segment(&mut log, 0, true, |_, _, _| {}).unwrap();
        assert_eq!((first.batches, first.damage.len(), first.next_offset), (2, 1, 6));
    }
}
