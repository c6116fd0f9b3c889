//! Decoding a raw read reply (`application/vnd.cairn.records`): a concatenation of whole
//! record batches in the on-disk format, decoded with `cairn-storage`'s batch code.
//!
//! Every batch's CRC and structure are checked ([`DecodedBatch::new`] and
//! [`DecodedBatch::collect_checked`]); a damaged or truncated batch is an
//! [`Error::Corrupt`], never data. Values of uncompressed batches share the reply buffer
//! (no copy); compressed batches are decompressed once and their fields copied out.
//!
//! The server sends whole batches, so the first batch may begin before the requested
//! position; [`Skip`] drops those leading records.
//!
//! ```
//! use cairn_consumer::decode::{decode_batches, Skip};
//! let mut b = cairn_storage::BatchBuilder::new();
//! b.push(None, Some(b"hello"), []);
//! let body = bytes::Bytes::from(b.finish(0, 0).unwrap());
//! assert_eq!(decode_batches(&body, 0, Skip::Nothing).unwrap()[0].value_str(), Some("hello"));
//! ```

use bytes::Bytes;
use cairn_storage::{BatchError, BatchHeader, DecodedBatch, Record};

use crate::error::{Error, Result};
use crate::message::Message;

/// Which leading records of a reply the caller did not ask for.
///
/// ```
/// use cairn_consumer::decode::Skip;
/// assert!(Skip::BelowOffset(5).drops(4, 0));
/// assert!(!Skip::BeforeTimestamp(100).drops(0, 100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Keep everything.
    Nothing,
    /// Drop records with an offset below this one.
    BelowOffset(u64),
    /// Drop records with a timestamp below this one (timestamps never decrease within a
    /// partition, so these are exactly the leading ones).
    BeforeTimestamp(i64),
}

impl Skip {
    /// Whether a record at `offset` with `timestamp` is dropped.
    ///
    /// ```
    /// assert!(!cairn_consumer::decode::Skip::Nothing.drops(0, 0));
    /// ```
    pub fn drops(&self, offset: u64, timestamp: i64) -> bool {
        match *self {
            Skip::Nothing => false,
            Skip::BelowOffset(o) => offset < o,
            Skip::BeforeTimestamp(t) => timestamp < t,
        }
    }
}

/// The part of `buf` that `part` is, shared without a copy when `part` lies inside it.
fn share(buf: &Bytes, part: &[u8]) -> Bytes {
    let range = buf.as_ptr_range();
    let p = part.as_ptr_range();
    if !part.is_empty() && range.start <= p.start && p.end <= range.end {
        buf.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

fn to_message(buf: &Bytes, partition: u32, r: &Record<'_>) -> Message {
    Message {
        partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key.map(|k| share(buf, k)),
        value: r.value.map(|v| share(buf, v)),
        headers: r.headers.iter().map(|(n, v)| ((*n).to_string(), share(buf, v))).collect(),
    }
}

/// Splits `body` into batches, checks each one and returns its records as messages of
/// `partition`, without those that `skip` drops.
///
/// ```
/// use bytes::Bytes;
/// use cairn_consumer::decode::{decode_batches, Skip};
/// use cairn_storage::BatchBuilder;
///
/// let mut b = BatchBuilder::new();
/// b.push(Some(b"k"), Some(b"v0"), []);
/// b.push(None, Some(b"v1"), []);
/// let body = Bytes::from(b.finish(10, 1_000).unwrap());
/// let msgs = decode_batches(&body, 0, Skip::BelowOffset(11)).unwrap();
/// assert_eq!(msgs.len(), 1);
/// assert_eq!(msgs[0].offset, 11);
/// ```
pub fn decode_batches(body: &Bytes, partition: u32, skip: Skip) -> Result<Vec<Message>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let rest = &body[pos..];
        let corrupt = |source: BatchError| Error::Corrupt { position: pos, source };
        let header = BatchHeader::parse(rest).map_err(corrupt)?;
        let len = header.total_len();
        if rest.len() < len {
            return Err(corrupt(BatchError::Truncated { needed: len, available: rest.len() }));
        }
        let decoded = DecodedBatch::new(&rest[..len]).map_err(corrupt)?;
        for r in decoded.collect_checked().map_err(corrupt)? {
            if !skip.drops(r.offset, r.timestamp) {
                out.push(to_message(body, partition, &r));
            }
        }
        pos += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage::{BatchBuilder, Codec};

    fn batch(base: u64, codec: Codec, values: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::with_codec(codec);
        for v in values {
            b.push(Some(b"key"), Some(v.as_bytes()), [("h", &b"x"[..])]);
        }
        b.finish(base, 1_764_000_000_000).unwrap()
    }

    fn body() -> Vec<u8> {
        let mut body = batch(0, Codec::None, &["a", "b", "c"]);
        body.extend(batch(3, Codec::Zstd(3), &["d", "e"]));
        body
    }

    #[test]
    fn decodes_several_batches_and_skips_leading_records() {
        let body = Bytes::from(body());
        let all = decode_batches(&body, 2, Skip::Nothing).unwrap();
        let offsets: Vec<u64> = all.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 4]);
        assert_eq!(all[4].value_str(), Some("e"));
        assert_eq!(all[0].header_str("h"), Some("x"));
        assert_eq!(all[0].partition, 2);
        let some = decode_batches(&body, 0, Skip::BelowOffset(2)).unwrap();
        assert_eq!(some.first().map(|m| m.offset), Some(2));
        assert!(decode_batches(&Bytes::new(), 0, Skip::Nothing).unwrap().is_empty());
    }

    #[test]
    fn rejects_corrupted_batches() {
        let good = body();
        let first_len = batch(0, Codec::None, &["a", "b", "c"]).len();
        // A flipped bit in a value of the first batch, and in the compressed second batch.
        for at in [first_len - 3, first_len + 50] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let err = decode_batches(&Bytes::from(bad), 0, Skip::Nothing).unwrap_err();
            match err {
                Error::Corrupt { position, source: BatchError::CrcMismatch { .. } } => {
                    assert_eq!(position, if at < first_len { 0 } else { first_len });
                }
                other => panic!("expected a CRC error, got {other:?}"),
            }
        }
        // A truncated reply.
        let cut = Bytes::copy_from_slice(&good[..good.len() - 1]);
        assert!(matches!(
            decode_batches(&cut, 0, Skip::Nothing),
            Err(Error::Corrupt { source: BatchError::Truncated { .. }, .. })
        ));
        // Garbage.
        assert!(decode_batches(
            &Bytes::from_static(b"not a batch at all, not at all......................"),
            0,
            Skip::Nothing
        )
        .is_err());
    }
}
