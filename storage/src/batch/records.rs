//! Decoding a batch's records section: [`DecodedBatch`] (decompressing zstd batches within
//! [`DECOMPRESSED_BYTES_MAX`]), the [`RecordIter`] that checks every record's framing
//! against the header as it goes, and [`check_client_batch`], the rules a client-built batch
//! must meet before the server appends it. The record layout is in `docs/FORMAT.md` §4.

use std::borrow::Cow;
use std::io::Read;

use super::{verify, BatchError, BatchHeader, VerifiedBatch};
use crate::format::*;
use crate::varint;

/// One record as stored, borrowing from its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: u64,
    pub timestamp: i64,
    /// `None`: no key.
    pub key: Option<&'a [u8]>,
    /// `None`: a null value (a tombstone on compacted topics).
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, &'a [u8])>,
}

impl Record<'_> {
    /// The message size that `max_message_bytes` limits: key, value, header names and
    /// header values, in bytes.
    pub fn size(&self) -> usize {
        self.key.map_or(0, <[u8]>::len)
            + self.value.map_or(0, <[u8]>::len)
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }
}

/// A batch whose records section is ready to iterate (decompressed if it was compressed).
#[derive(Debug)]
pub struct DecodedBatch<'a> {
    pub header: BatchHeader,
    records: Cow<'a, [u8]>,
}

impl<'a> DecodedBatch<'a> {
    /// Checks `batch` (header, length, CRC) and decompresses its records if needed.
    /// `batch` must be exactly one batch.
    pub fn new(batch: &'a [u8]) -> Result<Self, BatchError> {
        let header = verify(batch)?;
        if header.total_len() != batch.len() {
            return Err(BatchError::BadLength(batch.len() as u64));
        }
        Self::trusting_crc(batch, header)
    }

    /// As [`DecodedBatch::new`] for a batch whose CRC the caller already checked.
    pub fn trusting_crc(batch: &'a [u8], header: BatchHeader) -> Result<Self, BatchError> {
        let section = &batch[BATCH_HEADER_LEN..header.total_len()];
        let records = if header.is_compressed() { Cow::Owned(decompress(section)?) } else { Cow::Borrowed(section) };
        Ok(DecodedBatch { header, records })
    }

    /// Iterates the records in offset order. Each item is an error if the records section is
    /// malformed; iteration stops after the first error.
    pub fn records(&self) -> RecordIter<'_> {
        RecordIter {
            buf: &self.records,
            pos: 0,
            remaining: self.header.record_count,
            header: self.header,
            prev_delta: None,
            failed: false,
        }
    }

    /// Decodes every record, checking the whole section: record count, strictly increasing
    /// offset deltas ending at `last_offset_delta`, no trailing bytes.
    pub fn collect_checked(&self) -> Result<Vec<Record<'_>>, BatchError> {
        let mut out = Vec::with_capacity(self.header.record_count.min(4096) as usize);
        self.for_each_checked(|r| out.push(r))?;
        Ok(out)
    }

    /// Calls `f` on every record, with the checks of [`DecodedBatch::collect_checked`], but
    /// without collecting them.
    pub fn for_each_checked<'s>(&'s self, mut f: impl FnMut(Record<'s>)) -> Result<(), BatchError> {
        let mut last = None;
        let mut it = self.records();
        for r in &mut it {
            let r = r?;
            last = Some(r.offset);
            f(r);
        }
        if it.pos != it.buf.len() {
            return Err(BatchError::BadRecords("trailing bytes after the last record"));
        }
        if last != Some(self.header.last_offset()) {
            return Err(BatchError::BadRecords("last record offset does not match last_offset_delta"));
        }
        Ok(())
    }
}

fn decompress(section: &[u8]) -> Result<Vec<u8>, BatchError> {
    let decoder =
        zstd::stream::read::Decoder::with_buffer(section).map_err(|e| BatchError::Decompress(e.to_string()))?;
    let mut out = Vec::new();
    decoder
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Decompress(e.to_string()))?;
    if out.len() > DECOMPRESSED_BYTES_MAX {
        return Err(BatchError::Decompress("decompressed records exceed the limit".into()));
    }
    Ok(out)
}

/// Iterator over a decoded batch's records.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: u32,
    header: BatchHeader,
    prev_delta: Option<u64>,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    #[inline]
    fn varint(&mut self, end: usize) -> Result<u64, BatchError> {
        // Fast path: most varints in a record (deltas, short lengths) are one byte.
        if self.pos < end {
            let b = self.buf[self.pos];
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        let (v, used) = varint::get(&self.buf[self.pos..end]).ok_or(BatchError::BadRecords("bad varint"))?;
        self.pos += used;
        Ok(v)
    }

    #[inline]
    fn bytes(&mut self, len: u64, end: usize) -> Result<&'a [u8], BatchError> {
        let len = usize::try_from(len).map_err(|_| BatchError::BadRecords("length overflows"))?;
        if len > end - self.pos {
            return Err(BatchError::BadRecords("field runs past the record"));
        }
        let buf: &'a [u8] = self.buf;
        let out = &buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    #[inline]
    fn nullable(&mut self, end: usize) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint(end)? {
            0 => Ok(None),
            n => self.bytes(n - 1, end).map(Some),
        }
    }

    fn next_record(&mut self) -> Result<Record<'a>, BatchError> {
        let len = self.varint(self.buf.len())?;
        let len = usize::try_from(len).map_err(|_| BatchError::BadRecords("record length overflows"))?;
        if len > self.buf.len() - self.pos {
            return Err(BatchError::BadRecords("record runs past the batch"));
        }
        let end = self.pos + len;
        if end == self.pos {
            return Err(BatchError::BadRecords("empty record"));
        }
        self.pos += 1; // attributes
        let ts_delta = self.varint(end)?;
        let offset_delta = self.varint(end)?;
        if offset_delta > u64::from(self.header.last_offset_delta) || self.prev_delta.is_some_and(|p| offset_delta <= p)
        {
            return Err(BatchError::BadRecords("offset deltas not increasing within the batch"));
        }
        let timestamp = self.header.first_timestamp.saturating_add(i64::try_from(ts_delta).unwrap_or(i64::MAX));
        if timestamp > self.header.max_timestamp {
            return Err(BatchError::BadRecords("record timestamp after max_timestamp"));
        }
        self.prev_delta = Some(offset_delta);
        let key = self.nullable(end)?;
        let value = self.nullable(end)?;
        let header_count = self.varint(end)?;
        if header_count > RECORD_HEADERS_MAX {
            return Err(BatchError::BadRecords("too many headers"));
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let n = self.varint(end)?;
            let name = std::str::from_utf8(self.bytes(n, end)?)
                .map_err(|_| BatchError::BadRecords("header name is not UTF-8"))?;
            let v = self.varint(end)?;
            headers.push((name, self.bytes(v, end)?));
        }
        if self.pos != end {
            return Err(BatchError::BadRecords("record length does not match its fields"));
        }
        Ok(Record { offset: self.header.base_offset + offset_delta, timestamp, key, value, headers })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let r = self.next_record();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Checks a batch built by a client for the raw produce path: header, CRC, records well
/// formed with contiguous offset deltas from 0 and zero timestamp deltas, and every record
/// within `max_message_bytes`. Returns the header and the size of the largest record.
pub fn check_client_batch(batch: &[u8], max_message_bytes: usize) -> Result<ClientBatchInfo, ClientBatchError> {
    check_client_records(&DecodedBatch::new(batch)?, max_message_bytes)
}

/// As [`check_client_batch`], taking the bytes and returning them as a [`VerifiedBatch`]
/// ready to append: the CRC is checked once for both.
pub fn check_client_batch_owned(
    batch: Vec<u8>,
    max_message_bytes: usize,
) -> Result<(VerifiedBatch, ClientBatchInfo), ClientBatchError> {
    let verified = VerifiedBatch::new(batch)?;
    let info =
        check_client_records(&DecodedBatch::trusting_crc(verified.bytes(), *verified.header())?, max_message_bytes)?;
    Ok((verified, info))
}

fn check_client_records(
    decoded: &DecodedBatch<'_>,
    max_message_bytes: usize,
) -> Result<ClientBatchInfo, ClientBatchError> {
    let header = decoded.header;
    if header.last_offset_delta != header.record_count - 1 {
        return Err(BatchError::BadRecords("client batches must have contiguous offset deltas").into());
    }
    if header.max_timestamp != header.first_timestamp {
        return Err(BatchError::BadRecords("client batches must have zero timestamp deltas").into());
    }
    let mut largest = 0;
    decoded.for_each_checked(|r| largest = largest.max(r.size()))?;
    if largest > max_message_bytes {
        return Err(ClientBatchError::MessageTooLarge { size: largest, max: max_message_bytes });
    }
    Ok(ClientBatchInfo { header, largest_record: largest })
}

/// What [`check_client_batch`] learnt about an acceptable batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientBatchInfo {
    pub header: BatchHeader,
    pub largest_record: usize,
}

/// Why a client-built batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBatchError {
    #[error("invalid record batch: {0}")]
    Invalid(#[from] BatchError),
    #[error("a message of {size} bytes exceeds the topic's max_message_bytes ({max})")]
    MessageTooLarge { size: usize, max: usize },
}
