//! Collecting messages from a partition within a read's limits. Blocking (it touches the
//! memory maps, which may fault cold pages in): run it on the blocking pool.
//!
//! Storage returns whole batches; the first may start before the requested offset, so
//! records below it are skipped. At most `max_messages` messages are taken, and the reply
//! stops before the message that would take it past `max_bytes` (key + value + headers),
//! but always holds at least one message if one is available. A batch that fails its CRC
//! is `500 data_corrupted` if nothing was collected before it; otherwise the reply ends
//! before it (the next read from there reports it).

use std::io::Write as _;

use bytes::Bytes;
use cairn_storage::{DecodedBatch, PartitionLog};

use crate::error::{ApiError, ApiResult};
use crate::read::query::Encoding;
use crate::read::render;

/// How collected messages are framed in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Comma-separated (inside the JSON reply's `messages` array).
    JsonArray,
    /// One object per line.
    Ndjson,
    /// One server-sent event per message.
    Sse,
}

/// Read limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

/// The outcome of a read.
#[derive(Debug, Default)]
pub struct Collected {
    pub messages: usize,
    /// Message bytes (key + value + headers) returned.
    pub bytes: u64,
    pub next_offset: u64,
    pub start_offset: u64,
    pub end_offset: u64,
}

fn corrupt(file: &std::path::Path, position: u64, e: impl ToString) -> ApiError {
    ApiError::from(cairn_storage::Error::Corruption { file: file.to_path_buf(), position, reason: e.to_string() })
}

/// Where [`collect`] renders messages: a buffer it writes one message into at a time.
pub trait Sink {
    /// The buffer the next message goes into.
    fn buf(&mut self) -> &mut Vec<u8>;
    /// Called after each message.
    fn message_done(&mut self) {}
}

impl Sink for Vec<u8> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self
    }
}

/// Size at which a [`ChunkedBody`] starts a new chunk.
const CHUNK_BYTES: usize = 256 * 1024;

/// A reply body built as a list of chunks of about [`CHUNK_BYTES`], sent as they are: a
/// 16 MiB read never needs one contiguous buffer grown by doubling (each doubling copies
/// everything so far, and buffers that large are fresh mappings the kernel faults in page by
/// page).
#[derive(Debug, Default)]
pub struct ChunkedBody {
    done: Vec<bytes::Bytes>,
    cur: Vec<u8>,
    len: usize,
}

impl ChunkedBody {
    pub fn new() -> Self {
        ChunkedBody { done: Vec::new(), cur: Vec::with_capacity(4096), len: 0 }
    }

    /// Total bytes written.
    pub fn len(&self) -> usize {
        self.len + self.cur.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks, in order.
    pub fn into_chunks(mut self) -> Vec<bytes::Bytes> {
        if !self.cur.is_empty() {
            self.done.push(bytes::Bytes::from(self.cur));
        }
        self.done
    }
}

impl Sink for ChunkedBody {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.cur
    }

    fn message_done(&mut self) {
        if self.cur.len() >= CHUNK_BYTES {
            let full = std::mem::replace(&mut self.cur, Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4));
            self.len += full.len();
            self.done.push(bytes::Bytes::from(full));
        }
    }
}

/// Renders messages from offset `from` into `sink`.
pub fn collect(
    log: &PartitionLog,
    from: u64,
    limits: Limits,
    framing: Framing,
    encoding: Encoding,
    sink: &mut impl Sink,
) -> ApiResult<Collected> {
    let partition = log.partition();
    let mut c = Collected { next_offset: from, ..Collected::default() };
    let mut done = false;
    while !done && c.messages < limits.max_messages {
        let read = match log.read(c.next_offset, limits.max_bytes) {
            Ok(r) => r,
            Err(e) if c.messages == 0 => return Err(e.into()),
            Err(_) => break,
        };
        c.start_offset = read.start_offset;
        c.end_offset = read.end_offset;
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            let decoded = DecodedBatch::trusting_crc(&batch.bytes, batch.header)
                .map_err(|e| corrupt(&batch.file, batch.position, e))?;
            for record in decoded.records() {
                let record = record.map_err(|e| corrupt(&batch.file, batch.position, e))?;
                if record.offset < c.next_offset {
                    continue;
                }
                let size = record.size() as u64;
                if c.messages == limits.max_messages || (c.messages > 0 && c.bytes + size > limits.max_bytes as u64) {
                    done = true;
                    break;
                }
                let out = sink.buf();
                match framing {
                    Framing::JsonArray if c.messages > 0 => out.push(b','),
                    Framing::JsonArray | Framing::Ndjson => {}
                    Framing::Sse => {
                        let _ = write!(out, "id: {}\nevent: message\ndata: ", record.offset);
                    }
                }
                render::message(out, partition, &record, encoding);
                match framing {
                    Framing::JsonArray => {}
                    Framing::Ndjson => out.push(b'\n'),
                    Framing::Sse => out.extend_from_slice(b"\n\n"),
                }
                sink.message_done();
                c.messages += 1;
                c.bytes += size;
                c.next_offset = record.offset + 1;
            }
            if done {
                break;
            }
            c.next_offset = c.next_offset.max(batch.header.next_offset());
        }
        if c.next_offset >= c.end_offset {
            break;
        }
    }
    if c.end_offset == 0 {
        (c.start_offset, c.end_offset) = (log.start_offset(), log.end_offset());
    }
    Ok(c)
}

/// Whole stored batches from offset `from`, for the raw records reply.
#[derive(Debug, Default)]
pub struct RawBatches {
    pub batches: Vec<Bytes>,
    pub messages: usize,
    pub bytes: u64,
    pub next_offset: u64,
    pub start_offset: u64,
    pub end_offset: u64,
}

/// Takes whole batches from `from`: at least one if any is available, then more while the
/// total stays within `max_bytes` and fewer than `max_messages` records were taken.
pub fn collect_raw(log: &PartitionLog, from: u64, limits: Limits) -> ApiResult<RawBatches> {
    let read = log.read(from, limits.max_bytes)?;
    let mut out = RawBatches {
        next_offset: from,
        start_offset: read.start_offset,
        end_offset: read.end_offset,
        ..RawBatches::default()
    };
    for batch in read.batches {
        let len = batch.bytes.len() as u64;
        if !out.batches.is_empty() && (out.bytes + len > limits.max_bytes as u64 || out.messages >= limits.max_messages)
        {
            break;
        }
        let below = from.saturating_sub(batch.header.base_offset);
        out.messages += (batch.header.record_count as u64).saturating_sub(below) as usize;
        out.bytes += len;
        out.next_offset = batch.header.next_offset();
        out.batches.push(batch.bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage::{BatchBuilder, Catalog, TopicConfig};

    fn setup(batches: &[&[&str]]) -> (tempfile::TempDir, Catalog, PartitionLog) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), Default::default()).unwrap();
        let log = catalog.create_topic("t", TopicConfig::default()).unwrap().partition(0).unwrap();
        for values in batches {
            let mut b = BatchBuilder::new();
            for v in *values {
                b.push(None, Some(v.as_bytes()), []);
            }
            log.append(b.finish(0, 0).unwrap()).unwrap();
        }
        (dir, catalog, log)
    }

    #[test]
    fn chunked_bodies_hold_the_same_bytes_in_bounded_chunks() {
        let big = "y".repeat(50_000);
        let values: Vec<&str> = (0..40).map(|_| big.as_str()).collect();
        let (_d, catalog, log) = setup(&[&values[..20], &values[20..]]);
        let all = Limits { max_messages: 100, max_bytes: 16 << 20 };
        let mut flat = Vec::new();
        collect(&log, 0, all, Framing::JsonArray, Encoding::Json, &mut flat).unwrap();
        let mut chunked = ChunkedBody::new();
        let c = collect(&log, 0, all, Framing::JsonArray, Encoding::Json, &mut chunked).unwrap();
        assert_eq!(c.messages, 40);
        assert_eq!(chunked.len(), flat.len());
        let chunks = chunked.into_chunks();
        assert!(chunks.len() > 1, "a 2.7 MB body comes in several chunks");
        assert!(
            chunks.iter().all(|c| c.len() < CHUNK_BYTES + 70_000),
            "a chunk ends at the first message past the size"
        );
        assert_eq!(chunks.concat(), flat);
        catalog.close().unwrap();
    }

    fn offsets(out: &[u8]) -> Vec<u64> {
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice::<serde_json::Value>(l).unwrap()["offset"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn skips_below_the_offset_and_honours_limits() {
        let (_d, catalog, log) = setup(&[&["1", "2", "3"], &["4", "5"]]);
        let mut out = Vec::new();
        let all = Limits { max_messages: 100, max_bytes: 1 << 20 };
        let c = collect(&log, 1, all, Framing::Ndjson, Encoding::Json, &mut out).unwrap();
        assert_eq!(offsets(&out), vec![1, 2, 3, 4]);
        assert_eq!((c.messages, c.next_offset, c.end_offset), (4, 5, 5));

        out.clear();
        let two = Limits { max_messages: 2, max_bytes: 1 << 20 };
        let c = collect(&log, 2, two, Framing::Ndjson, Encoding::Json, &mut out).unwrap();
        assert_eq!(offsets(&out), vec![2, 3]);
        assert_eq!(c.next_offset, 4);

        out.clear();
        let tiny = Limits { max_messages: 100, max_bytes: 1 };
        let c = collect(&log, 0, tiny, Framing::Ndjson, Encoding::Json, &mut out).unwrap();
        assert_eq!(offsets(&out), vec![0], "at least one message");
        assert_eq!(c.next_offset, 1);

        out.clear();
        let c = collect(&log, 5, all, Framing::Ndjson, Encoding::Json, &mut out).unwrap();
        assert_eq!((c.messages, c.next_offset), (0, 5));
        assert!(collect(&log, 6, all, Framing::Ndjson, Encoding::Json, &mut out).is_err());
        catalog.close().unwrap();
    }

    #[test]
    fn raw_takes_whole_batches() {
        let (_d, catalog, log) = setup(&[&["1", "2", "3"], &["4", "5"]]);
        let r = collect_raw(&log, 1, Limits { max_messages: 100, max_bytes: 1 }).unwrap();
        assert_eq!((r.batches.len(), r.next_offset, r.messages), (1, 3, 2));
        let r = collect_raw(&log, 0, Limits { max_messages: 100, max_bytes: 1 << 20 }).unwrap();
        assert_eq!((r.batches.len(), r.next_offset, r.end_offset), (2, 5, 5));
        catalog.close().unwrap();
    }
}
