//! Record batches: the unit of append, storage, replication of bytes to readers, and CRC.
//!
//! A batch is a fixed 43-byte header followed by a records section (optionally one zstd
//! frame). The layout is specified in `docs/FORMAT.md` and its positions are the constants of
//! [`crate::format`]. This module encodes batches ([`BatchBuilder`]), checks them
//! ([`BatchHeader::parse`], [`verify`]) and decodes their records ([`DecodedBatch`]). It is
//! pure: no I/O, no allocation that an input can make unbounded, no panics on any input.

use std::borrow::Cow;

use crate::format::*;
use crate::varint;

mod records;

pub use records::{
    check_client_batch, check_client_batch_owned, ClientBatchError, ClientBatchInfo, DecodedBatch, Record, RecordIter,
};

/// Why a batch (or a byte range that should hold one) is not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("truncated: needs {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("unknown batch format version {0}")]
    BadMagic(u8),
    #[error("batch length {0} out of range")]
    BadLength(u64),
    #[error("unknown compression codec {0}")]
    UnknownCodec(u16),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("bad record count {0}")]
    BadRecordCount(u64),
    #[error("malformed records: {0}")]
    BadRecords(&'static str),
    #[error("zstd: {0}")]
    Decompress(String),
    #[error("zstd compression failed: {0}")]
    Compress(String),
}

/// Compression applied to a batch's records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    #[default]
    None,
    /// zstd at the given level (1..=22).
    Zstd(i32),
}

/// The fixed-size header at the front of every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    /// Bytes after the length field: the batch is `LENGTH_PREFIX_LEN + batch_length` long.
    pub batch_length: u32,
    pub magic: u8,
    pub crc: u32,
    pub attributes: u16,
    /// Offset of the last record minus `base_offset` (greater than `record_count - 1` when
    /// compaction removed records in between).
    pub last_offset_delta: u32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: u32,
}

fn u16_at(b: &[u8], pos: usize) -> u16 {
    u16::from_le_bytes([b[pos], b[pos + 1]])
}
fn u32_at(b: &[u8], pos: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[pos..pos + 4]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], pos: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[pos..pos + 8]);
    u64::from_le_bytes(a)
}

impl BatchHeader {
    /// Parses and sanity-checks the header at the front of `buf` (which may hold more than
    /// one batch, or only the header). Does not check the CRC.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated { needed: BATCH_HEADER_LEN, available: buf.len() });
        }
        let header = BatchHeader {
            base_offset: u64_at(buf, BASE_OFFSET_POS),
            batch_length: u32_at(buf, LENGTH_POS),
            magic: buf[MAGIC_POS],
            crc: u32_at(buf, CRC_POS),
            attributes: u16_at(buf, ATTRIBUTES_POS),
            last_offset_delta: u32_at(buf, LAST_OFFSET_DELTA_POS),
            first_timestamp: u64_at(buf, FIRST_TIMESTAMP_POS) as i64,
            max_timestamp: u64_at(buf, MAX_TIMESTAMP_POS) as i64,
            record_count: u32_at(buf, RECORD_COUNT_POS),
        };
        if header.magic != BATCH_MAGIC {
            return Err(BatchError::BadMagic(header.magic));
        }
        let total = header.total_len();
        if !(BATCH_HEADER_LEN..=BATCH_BYTES_MAX).contains(&total) {
            return Err(BatchError::BadLength(u64::from(header.batch_length)));
        }
        let codec = header.attributes & ATTR_COMPRESSION_MASK;
        if codec != CODEC_NONE && codec != CODEC_ZSTD || header.attributes & !ATTR_COMPRESSION_MASK != 0 {
            return Err(BatchError::UnknownCodec(header.attributes));
        }
        if header.record_count == 0
            || header.record_count > BATCH_RECORDS_MAX
            || header.last_offset_delta < header.record_count - 1
        {
            return Err(BatchError::BadRecordCount(u64::from(header.record_count)));
        }
        if header.base_offset.checked_add(u64::from(header.last_offset_delta) + 1).is_none() {
            // `next_offset` must exist: a base offset near 2^64 would overflow every offset
            // computed from it (found by tests/fuzz_decode.rs).
            return Err(BatchError::BadRecords("base_offset + last_offset_delta overflows"));
        }
        if header.max_timestamp < header.first_timestamp {
            return Err(BatchError::BadRecords("max_timestamp before first_timestamp"));
        }
        Ok(header)
    }

    /// Total size of the batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        LENGTH_PREFIX_LEN + self.batch_length as usize
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// Offset just past the batch.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    /// Whether the records section is zstd-compressed.
    pub fn is_compressed(&self) -> bool {
        self.attributes & ATTR_COMPRESSION_MASK == CODEC_ZSTD
    }
}

/// CRC-32 of a whole batch: every byte except the CRC field itself (`[0, CRC_POS)` then
/// `[CRC_START, end)`), so a flipped base offset or length is caught like a flipped value.
pub fn compute_crc(batch: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&batch[..CRC_POS]);
    h.update(&batch[CRC_START..]);
    h.finalize()
}

/// Parses the header at the front of `buf`, checks that the whole batch is present and that
/// its CRC matches. Returns the header; the batch is `&buf[..header.total_len()]`.
pub fn verify(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let total = header.total_len();
    if buf.len() < total {
        return Err(BatchError::Truncated { needed: total, available: buf.len() });
    }
    let computed = compute_crc(&buf[..total]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch { stored: header.crc, computed });
    }
    Ok(header)
}

/// As [`verify`] for a batch that must be exactly `buf`, also returning the CRC-32 of its
/// records section, so that the writer can re-stamp the header ([`restamp`]) without
/// reading the records again. (CRC-32 is linear: the batch's CRC is the header's combined
/// with the section's.)
pub fn verify_with_section_crc(buf: &[u8]) -> Result<(BatchHeader, u32), BatchError> {
    let header = BatchHeader::parse(buf)?;
    if buf.len() != header.total_len() {
        return Err(BatchError::BadLength(buf.len() as u64));
    }
    let section = crc32fast::hash(&buf[BATCH_HEADER_LEN..]);
    let computed = crc_with_section(buf, section);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch { stored: header.crc, computed });
    }
    Ok((header, section))
}

/// Records sections shorter than this are hashed again rather than combined: crc32fast's
/// `combine` costs ~4,700 instructions (a GF(2) matrix power), hashing costs well under one
/// instruction per byte. For a one-message batch the combine was 11 % of cairnd's
/// instructions per produce request (docs/BENCHMARKS.md, profile).
/// (Measured break-even ≈ 6.7 KiB: hashing runs at ≈ 0.7 instructions per byte.)
pub const COMBINE_SECTION_MIN: usize = 4 * 1024;

/// The batch CRC from its header bytes and the CRC of its records section.
fn crc_with_section(batch: &[u8], section_crc: u32) -> u32 {
    if batch.len() - BATCH_HEADER_LEN < COMBINE_SECTION_MIN {
        return compute_crc(batch);
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&batch[..CRC_POS]);
    h.update(&batch[CRC_START..BATCH_HEADER_LEN]);
    let section_len = (batch.len() - BATCH_HEADER_LEN) as u64;
    h.combine(&crc32fast::Hasher::new_with_initial_len(section_crc, section_len));
    h.finalize()
}

fn set_stamp_fields(batch: &mut [u8], base_offset: u64, first_timestamp: i64) {
    debug_assert!(batch.len() >= BATCH_HEADER_LEN);
    let spread = (u64_at(batch, MAX_TIMESTAMP_POS) as i64).saturating_sub(u64_at(batch, FIRST_TIMESTAMP_POS) as i64);
    batch[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&base_offset.to_le_bytes());
    batch[FIRST_TIMESTAMP_POS..FIRST_TIMESTAMP_POS + 8].copy_from_slice(&first_timestamp.to_le_bytes());
    let max = first_timestamp.saturating_add(spread);
    batch[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&max.to_le_bytes());
}

/// One batch whose header, length and CRC were checked, with what the writer needs to
/// re-stamp it cheaply: the CRC of its records section when that section is large enough
/// for combining CRCs to beat hashing it again ([`COMBINE_SECTION_MIN`]). Only
/// [`VerifiedBatch::new`], [`BatchBuilder::finish_verified`] and
/// [`crate::batch::check_client_batch_owned`] make one, so holding one proves the check and
/// nobody needs to check (hash) the batch again before appending it.
#[derive(Debug, Clone)]
pub struct VerifiedBatch {
    bytes: Vec<u8>,
    header: BatchHeader,
    section_crc: Option<u32>,
}

impl VerifiedBatch {
    /// Checks that `bytes` is exactly one batch with a valid CRC (one pass over the bytes).
    pub fn new(bytes: Vec<u8>) -> Result<Self, BatchError> {
        if bytes.len().saturating_sub(BATCH_HEADER_LEN) >= COMBINE_SECTION_MIN {
            let (header, section) = verify_with_section_crc(&bytes)?;
            return Ok(VerifiedBatch { bytes, header, section_crc: Some(section) });
        }
        let header = verify(&bytes)?;
        if header.total_len() != bytes.len() {
            return Err(BatchError::BadLength(bytes.len() as u64));
        }
        Ok(VerifiedBatch { bytes, header, section_crc: None })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The bytes, the header and the section CRC (if kept), for the writer.
    pub(crate) fn into_parts(self) -> (Vec<u8>, BatchHeader, Option<u32>) {
        (self.bytes, self.header, self.section_crc)
    }
}

/// Stamps a verified batch's offset and timestamps, recomputing its CRC from the section CRC
/// when one was kept (only the 43 header bytes are read then), else by hashing the batch.
pub(crate) fn restamp(batch: &mut [u8], base_offset: u64, first_timestamp: i64, section_crc: Option<u32>) {
    set_stamp_fields(batch, base_offset, first_timestamp);
    let crc = match section_crc {
        Some(section) => crc_with_section(batch, section),
        None => compute_crc(batch),
    };
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Sets a batch's base offset and timestamps (keeping the spread between first and max
/// timestamp) and recomputes its CRC. The batch must have passed [`verify`] or come from
/// [`BatchBuilder::finish`].
pub fn stamp(batch: &mut [u8], base_offset: u64, first_timestamp: i64) {
    restamp(batch, base_offset, first_timestamp, None);
}

/// Builds one batch from records pushed in offset order.
#[derive(Debug, Default, Clone)]
pub struct BatchBuilder {
    records: Vec<u8>,
    count: u32,
    last_offset_delta: u32,
    max_timestamp_delta: u64,
    codec: Codec,
}

impl BatchBuilder {
    /// An empty builder for an uncompressed batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder whose batch is compressed with `codec`.
    pub fn with_codec(codec: Codec) -> Self {
        BatchBuilder { codec, ..Self::default() }
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size the batch would have uncompressed, header included.
    pub fn uncompressed_len(&self) -> usize {
        BATCH_HEADER_LEN + self.records.len()
    }

    /// Appends a record at the next offset with the batch's timestamp (the usual case: the
    /// server assigns one timestamp to a whole produce request).
    pub fn push<'h, H>(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, headers: H)
    where
        H: IntoIterator<Item = (&'h str, &'h [u8])> + Clone,
    {
        let delta = if self.count == 0 { 0 } else { self.last_offset_delta + 1 };
        self.push_at(delta, 0, key, value, headers);
    }

    /// Appends a record with an explicit offset delta (strictly greater than the previous
    /// one) and timestamp delta; used by compaction, which keeps offsets and timestamps.
    pub fn push_at<'h, H>(
        &mut self,
        offset_delta: u32,
        timestamp_delta: u64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) where
        H: IntoIterator<Item = (&'h str, &'h [u8])> + Clone,
    {
        debug_assert!(self.count == 0 || offset_delta > self.last_offset_delta);
        let nullable_len = |b: Option<&[u8]>| match b {
            None => 1,
            Some(b) => varint::encoded_len(b.len() as u64 + 1) + b.len(),
        };
        let mut header_count = 0u64;
        let mut headers_len = 0usize;
        for (name, val) in headers.clone() {
            header_count += 1;
            headers_len += varint::encoded_len(name.len() as u64) + name.len();
            headers_len += varint::encoded_len(val.len() as u64) + val.len();
        }
        let body_len = 1
            + varint::encoded_len(timestamp_delta)
            + varint::encoded_len(u64::from(offset_delta))
            + nullable_len(key)
            + nullable_len(value)
            + varint::encoded_len(header_count)
            + headers_len;
        let out = &mut self.records;
        out.reserve(body_len + varint::VARINT_LEN_MAX);
        varint::put(out, body_len as u64);
        out.push(0); // record attributes, reserved
        varint::put(out, timestamp_delta);
        varint::put(out, u64::from(offset_delta));
        for field in [key, value] {
            match field {
                None => varint::put(out, 0),
                Some(b) => {
                    varint::put(out, b.len() as u64 + 1);
                    out.extend_from_slice(b);
                }
            }
        }
        varint::put(out, header_count);
        for (name, val) in headers {
            varint::put(out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
            varint::put(out, val.len() as u64);
            out.extend_from_slice(val);
        }
        self.count += 1;
        self.last_offset_delta = offset_delta;
        self.max_timestamp_delta = self.max_timestamp_delta.max(timestamp_delta);
    }

    /// Encodes the batch with the given base offset and first timestamp (clients pass 0 for
    /// both: the server assigns them). Fails only if zstd fails or the batch is empty or
    /// larger than [`BATCH_BYTES_MAX`].
    pub fn finish(self, base_offset: u64, first_timestamp: i64) -> Result<Vec<u8>, BatchError> {
        self.finish_verified(base_offset, first_timestamp).map(VerifiedBatch::into_bytes)
    }

    /// As [`BatchBuilder::finish`], as a [`VerifiedBatch`] ready to append (its CRC is
    /// computed here, once).
    pub fn finish_verified(self, base_offset: u64, first_timestamp: i64) -> Result<VerifiedBatch, BatchError> {
        if self.count == 0 {
            return Err(BatchError::BadRecordCount(0));
        }
        let (attributes, section): (u16, Cow<[u8]>) = match self.codec {
            Codec::None => (CODEC_NONE, Cow::Borrowed(&self.records)),
            Codec::Zstd(level) => {
                let packed =
                    zstd::bulk::compress(&self.records, level).map_err(|e| BatchError::Compress(e.to_string()))?;
                (CODEC_ZSTD, Cow::Owned(packed))
            }
        };
        let total = BATCH_HEADER_LEN + section.len();
        if total > BATCH_BYTES_MAX {
            return Err(BatchError::BadLength(total as u64));
        }
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&base_offset.to_le_bytes());
        out.extend_from_slice(&((total - LENGTH_PREFIX_LEN) as u32).to_le_bytes());
        out.push(BATCH_MAGIC);
        out.extend_from_slice(&[0; 4]); // CRC, filled below
        out.extend_from_slice(&attributes.to_le_bytes());
        out.extend_from_slice(&self.last_offset_delta.to_le_bytes());
        out.extend_from_slice(&first_timestamp.to_le_bytes());
        let max_ts = first_timestamp.saturating_add(self.max_timestamp_delta as i64);
        out.extend_from_slice(&max_ts.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        debug_assert_eq!(out.len(), BATCH_HEADER_LEN);
        out.extend_from_slice(&section);
        let section_crc = (section.len() >= COMBINE_SECTION_MIN).then(|| crc32fast::hash(&section));
        let crc = match section_crc {
            Some(s) => crc_with_section(&out, s),
            None => compute_crc(&out),
        };
        out[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_le_bytes());
        let header = BatchHeader::parse(&out)?;
        Ok(VerifiedBatch { bytes: out, header, section_crc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(codec: Codec) -> Vec<u8> {
        let mut b = BatchBuilder::with_codec(codec);
        b.push(Some(b"k1"), Some(b"hello"), [("trace", &b"abc"[..])]);
        b.push(None, None, []);
        b.push(Some(b""), Some(&[0xff, 0x00][..]), []);
        b.finish(100, 1_764_000_000_000).unwrap()
    }

    #[test]
    fn round_trip_plain_and_zstd() {
        for codec in [Codec::None, Codec::Zstd(3)] {
            let bytes = sample(codec);
            let d = DecodedBatch::new(&bytes).unwrap();
            assert_eq!(d.header.base_offset, 100);
            assert_eq!(d.header.record_count, 3);
            assert_eq!(d.header.last_offset(), 102);
            let recs = d.collect_checked().unwrap();
            assert_eq!(recs[0].key, Some(&b"k1"[..]));
            assert_eq!(recs[0].value, Some(&b"hello"[..]));
            assert_eq!(recs[0].headers, vec![("trace", &b"abc"[..])]);
            assert_eq!(recs[1].key, None);
            assert_eq!(recs[1].value, None);
            assert_eq!(recs[2].key, Some(&b""[..]));
            assert_eq!(recs[2].offset, 102);
            assert!(recs.iter().all(|r| r.timestamp == 1_764_000_000_000));
        }
    }

    #[test]
    fn stamp_rewrites_offset_time_and_crc() {
        let mut bytes = sample(Codec::None);
        stamp(&mut bytes, 7, 42);
        let h = verify(&bytes).unwrap();
        assert_eq!((h.base_offset, h.first_timestamp, h.max_timestamp), (7, 42, 42));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = sample(Codec::None);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(DecodedBatch::new(&b).is_err(), "flip at byte {i} bit {bit} undetected");
            }
        }
    }

    #[test]
    fn client_batch_rules() {
        let ok = sample(Codec::Zstd(1));
        let info = check_client_batch(&ok, 1024).unwrap();
        assert_eq!(info.largest_record, 15);
        assert_eq!(check_client_batch(&ok, 5), Err(ClientBatchError::MessageTooLarge { size: 15, max: 5 }));
        let mut gappy = BatchBuilder::new();
        gappy.push_at(0, 0, None, Some(b"a"), []);
        gappy.push_at(5, 0, None, Some(b"b"), []);
        assert!(check_client_batch(&gappy.finish(0, 0).unwrap(), 1024).is_err());
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(d) = DecodedBatch::new(&bytes) {
                let _ = d.collect_checked();
            }
            let _ = BatchHeader::parse(&bytes);
        }

        #[test]
        fn decoder_never_panics_on_valid_crc(body in proptest::collection::vec(any::<u8>(), 0..256), count in 1u32..5, zstd in any::<bool>()) {
            // Valid header and CRC around arbitrary record bytes: only the record parser is tested.
            let mut b = Vec::new();
            b.extend_from_slice(&0u64.to_le_bytes());
            b.extend_from_slice(&((BATCH_HEADER_LEN - LENGTH_PREFIX_LEN + body.len()) as u32).to_le_bytes());
            b.push(BATCH_MAGIC);
            b.extend_from_slice(&[0; 4]);
            b.extend_from_slice(&(if zstd { CODEC_ZSTD } else { CODEC_NONE }).to_le_bytes());
            b.extend_from_slice(&(count - 1).to_le_bytes());
            b.extend_from_slice(&0i64.to_le_bytes());
            b.extend_from_slice(&0i64.to_le_bytes());
            b.extend_from_slice(&count.to_le_bytes());
            b.extend_from_slice(&body);
            let crc = compute_crc(&b);
            b[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_le_bytes());
            if let Ok(d) = DecodedBatch::new(&b) {
                let _ = d.collect_checked();
            }
        }

        #[test]
        fn stamping_with_the_section_crc_equals_a_full_stamp(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            base in any::<u64>(), ts in any::<i64>(), zstd in any::<bool>()) {
            let mut b = BatchBuilder::with_codec(if zstd { Codec::Zstd(1) } else { Codec::None });
            for v in &values {
                b.push(None, Some(v), []);
            }
            let mut full = b.finish(0, 0).unwrap();
            let (h, section) = verify_with_section_crc(&full).unwrap();
            prop_assert_eq!(h, verify(&full).unwrap());
            let mut fast = full.clone();
            stamp(&mut full, base, ts);
            restamp(&mut fast, base, ts, Some(section));
            prop_assert_eq!(&fast, &full);
            prop_assert!(verify(&fast).is_ok());
            fast[BATCH_HEADER_LEN] ^= 1;
            prop_assert!(verify_with_section_crc(&fast).is_err());
        }

        #[test]
        fn stamping_large_batches_combines_crcs_correctly(
            sizes in proptest::collection::vec(1usize..40_000, 1..4), base in any::<u64>(), ts in any::<i64>()) {
            // Sections of 16 KiB and more take the combine path of `crc_with_section`.
            let mut b = BatchBuilder::new();
            for (i, n) in sizes.iter().enumerate() {
                b.push(None, Some(&vec![i as u8; *n]), []);
            }
            let mut full = b.finish(0, 0).unwrap();
            let (_, section) = verify_with_section_crc(&full).unwrap();
            let mut fast = full.clone();
            stamp(&mut full, base, ts);
            restamp(&mut fast, base, ts, Some(section));
            prop_assert_eq!(&fast, &full);
            let last = fast.len() - 1;
            fast[last] ^= 0x40;
            prop_assert!(verify_with_section_crc(&fast).is_err());
        }

        #[test]
        fn builder_round_trips(recs in proptest::collection::vec(
            (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
             proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))), 1..20), zstd in any::<bool>()) {
            let mut b = BatchBuilder::with_codec(if zstd { Codec::Zstd(1) } else { Codec::None });
            for (k, v) in &recs {
                b.push(k.as_deref(), v.as_deref(), []);
            }
            let bytes = b.finish(5, 9).unwrap();
            let d = DecodedBatch::new(&bytes).unwrap();
            let got = d.collect_checked().unwrap();
            prop_assert_eq!(got.len(), recs.len());
            for (i, (r, (k, v))) in got.iter().zip(&recs).enumerate() {
                prop_assert_eq!(r.offset, 5 + i as u64);
                prop_assert_eq!(r.key, k.as_deref());
                prop_assert_eq!(r.value, v.as_deref());
            }
        }
    }
}
