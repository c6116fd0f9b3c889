//! Produce: from a request body to acknowledged offsets.
//!
//! 1. [`plan`] parses the body (see [`parse`]), checks every message (partition exists,
//!    size within `max_message_bytes`) and builds **one batch per partition** — all before
//!    anything is appended, so a bad message means nothing is written. Raw record batches
//!    (`application/vnd.cairn.records`) are checked (CRC, limits) and kept as they are.
//! 2. [`execute`] queues every batch with `append_async` and waits for all the
//!    acknowledgements (per the topic's `sync`), then maps each message to its offset, in
//!    request order.
//!
//! Partition choice is in [`crate::partitioner`].

pub mod parse;

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_storage::batch::check_client_batch_owned;
use cairn_storage::{Appended, BatchBuilder, Codec, Topic, TopicConfig, VerifiedBatch};
use tokio::sync::oneshot;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::ProducedOffset;
use crate::media::BodyKind;
use crate::metrics::Metrics;
use crate::partitioner::{partition_for_key, round_robin_partition, RoundRobin};
use parse::Message;

/// What a produce needs to know about its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicShape {
    pub name: String,
    pub partitions: u32,
    pub max_message_bytes: usize,
    pub codec: Codec,
}

impl TopicShape {
    pub fn of(topic: &Topic) -> Self {
        Self::from_config(topic.name(), topic.partition_count(), &topic.config())
    }

    /// The shape a topic auto-created with the defaults will have.
    pub fn defaults(name: &str) -> Self {
        let config = TopicConfig::default();
        Self::from_config(name, config.partitions, &config)
    }

    fn from_config(name: &str, partitions: u32, config: &TopicConfig) -> Self {
        TopicShape {
            name: name.to_string(),
            partitions,
            max_message_bytes: usize::try_from(config.max_message_bytes).unwrap_or(usize::MAX),
            codec: config.codec(),
        }
    }

    fn check_partition(&self, p: u64) -> ApiResult<u32> {
        if p >= u64::from(self.partitions) {
            return Err(ApiError::partition_not_found(&self.name, p).with("partitions", self.partitions));
        }
        Ok(p as u32)
    }
}

/// Request headers that shape a produce.
#[derive(Debug, Clone, Default)]
pub struct ProduceOptions {
    /// `Cairn-Key` (octet-stream bodies).
    pub key: Option<Vec<u8>>,
    /// `Cairn-Partition` (octet-stream and raw record bodies).
    pub partition: Option<u64>,
}

/// One batch to append to one partition.
#[derive(Debug)]
pub struct PartitionBatch {
    pub partition: u32,
    /// Checked (or built) here, so the storage engine does not hash it again.
    pub batch: VerifiedBatch,
}

/// Everything to append for one request, checked.
#[derive(Debug)]
pub struct Plan {
    pub batches: Vec<PartitionBatch>,
    /// For each message, in request order: (index into `batches`, index within the batch).
    pub slots: Vec<(u32, u32)>,
}

impl Plan {
    pub fn bytes(&self) -> u64 {
        self.batches.iter().map(|b| b.batch.len() as u64).sum()
    }
}

/// Parses and checks a produce body and builds its batches. CPU only; no I/O.
pub fn plan(
    kind: BodyKind,
    body: Bytes,
    opts: &ProduceOptions,
    shape: &TopicShape,
    rr: &RoundRobin,
) -> ApiResult<Plan> {
    let messages = match kind {
        BodyKind::Json => parse::json(&body)?,
        BodyKind::Ndjson => parse::ndjson(&body)?,
        BodyKind::OctetStream => vec![parse::octet_stream(&body, opts.key.as_deref(), opts.partition)],
        BodyKind::Records => return plan_raw(body, opts.partition, shape, rr),
    };
    plan_messages(&messages, shape, rr)
}

/// Builds one batch per partition from checked messages.
pub fn plan_messages(messages: &[Message<'_>], shape: &TopicShape, rr: &RoundRobin) -> ApiResult<Plan> {
    let mut partitions = Vec::with_capacity(messages.len());
    let mut keyless = 0u64;
    for (i, m) in messages.iter().enumerate() {
        let size = m.size();
        if size > shape.max_message_bytes {
            return Err(ApiError::new(
                ErrorCode::MessageTooLarge,
                format!("message {i} is {size} bytes; the topic's max_message_bytes is {}", shape.max_message_bytes),
            )
            .with("index", i));
        }
        partitions.push(match (m.partition, &m.key) {
            (Some(p), _) => Some(shape.check_partition(p)?),
            (None, Some(key)) => Some(partition_for_key(key, shape.partitions)),
            (None, None) => {
                keyless += 1;
                None
            }
        });
    }
    let first = if keyless > 0 { rr.reserve(keyless) } else { 0 };
    let mut next_keyless = 0u64;
    // Index of each partition's batch in `builders`, in order of first use.
    let mut batch_of = vec![u32::MAX; shape.partitions as usize];
    let mut builders: Vec<(u32, BatchBuilder)> = Vec::new();
    let mut slots = Vec::with_capacity(messages.len());
    for (m, p) in messages.iter().zip(partitions) {
        let p = p.unwrap_or_else(|| {
            next_keyless += 1;
            round_robin_partition(first, next_keyless - 1, shape.partitions)
        });
        if batch_of[p as usize] == u32::MAX {
            batch_of[p as usize] = builders.len() as u32;
            builders.push((p, BatchBuilder::with_codec(shape.codec)));
        }
        let bi = batch_of[p as usize];
        let builder = &mut builders[bi as usize].1;
        slots.push((bi, builder.len()));
        let headers = m.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
        builder.push(m.key.as_deref(), m.value.as_deref(), headers);
    }
    let batches = builders
        .into_iter()
        .map(|(partition, b)| {
            b.finish_verified(0, 0).map(|batch| PartitionBatch { partition, batch }).map_err(|e| {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the messages for partition {partition} do not fit in one batch: {e}"),
                )
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Plan { batches, slots })
}

/// Checks a client-built record batch; it is appended as is.
pub fn plan_raw(body: Bytes, partition: Option<u64>, shape: &TopicShape, rr: &RoundRobin) -> ApiResult<Plan> {
    let (batch, info) = check_client_batch_owned(Vec::from(body), shape.max_message_bytes)?;
    let partition = match partition {
        Some(p) => shape.check_partition(p)?,
        None => round_robin_partition(rr.reserve(1), 0, shape.partitions),
    };
    let slots = (0..info.header.record_count).map(|i| (0, i)).collect();
    Ok(Plan { batches: vec![PartitionBatch { partition, batch }], slots })
}

/// Appends every batch of `plan` and waits for their acknowledgements. Returns each
/// message's offset in request order.
pub async fn execute(plan: Plan, topic: &Topic, metrics: &Metrics) -> ApiResult<Vec<ProducedOffset>> {
    let mut pending = Vec::with_capacity(plan.batches.len());
    for batch in plan.batches {
        let log = topic
            .partition(batch.partition)
            .ok_or_else(|| ApiError::partition_not_found(topic.name(), u64::from(batch.partition)))?;
        let (tx, rx) = oneshot::channel::<(cairn_storage::Result<Appended>, Duration)>();
        let started = Instant::now();
        log.append_verified_async(
            batch.batch,
            Box::new(move |r| {
                let _ = tx.send((r, started.elapsed()));
            }),
        );
        pending.push((batch.partition, rx));
    }
    let mut appended = Vec::with_capacity(pending.len());
    let mut first_error = None;
    for (partition, rx) in pending {
        match rx.await {
            Ok((Ok(a), took)) => {
                metrics.append_ack.observe(took);
                appended.push((partition, a));
            }
            Ok((Err(e), _)) => {
                first_error.get_or_insert(ApiError::from(e));
            }
            Err(_) => {
                first_error.get_or_insert(ApiError::internal("the append was dropped"));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(plan
        .slots
        .iter()
        .map(|&(bi, i)| {
            let (partition, a) = appended[bi as usize];
            ProducedOffset { partition, offset: a.base_offset + u64::from(i), timestamp: a.timestamp }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage::DecodedBatch;

    fn shape(partitions: u32) -> TopicShape {
        TopicShape { name: "t".into(), partitions, max_message_bytes: 100, codec: Codec::None }
    }

    #[test]
    fn one_batch_per_partition_in_request_order() {
        let body = Bytes::from_static(
            br#"{"messages":[{"value":1,"partition":1},{"value":2,"partition":0},{"value":3,"partition":1}]}"#,
        );
        let p = plan(BodyKind::Json, body, &ProduceOptions::default(), &shape(2), &RoundRobin::default()).unwrap();
        assert_eq!(p.batches.len(), 2);
        assert_eq!(p.batches[0].partition, 1);
        assert_eq!(p.slots, vec![(0, 0), (1, 0), (0, 1)]);
        let d = DecodedBatch::new(p.batches[0].batch.bytes()).unwrap();
        let values: Vec<_> = d.records().map(|r| r.unwrap().value.unwrap().to_vec()).collect();
        assert_eq!(values, vec![b"1".to_vec(), b"3".to_vec()]);
    }

    #[test]
    fn keys_hash_and_keyless_spread() {
        let rr = RoundRobin::default();
        let body = Bytes::from_static(br#"{"messages":[{"key":"a"},{"key":"a"},{},{},{},{}]}"#);
        let p = plan(BodyKind::Json, body, &ProduceOptions::default(), &shape(4), &rr).unwrap();
        let part = |s: (u32, u32)| p.batches[s.0 as usize].partition;
        assert_eq!(part(p.slots[0]), part(p.slots[1]));
        assert_eq!(part(p.slots[0]), partition_for_key(b"a", 4));
        let mut keyless: Vec<u32> = p.slots[2..].iter().map(|s| part(*s)).collect();
        keyless.sort();
        assert_eq!(keyless, vec![0, 1, 2, 3]);
    }

    #[test]
    fn whole_request_is_checked() {
        let rr = RoundRobin::default();
        let opts = ProduceOptions::default();
        let missing = Bytes::from_static(br#"{"messages":[{"value":1},{"value":2,"partition":2}]}"#);
        let e = plan(BodyKind::Json, missing, &opts, &shape(2), &rr).unwrap_err();
        assert_eq!((e.status().as_u16(), e.code), (404, ErrorCode::PartitionNotFound));
        let big = Bytes::from(format!(r#"{{"messages":[{{"value":1}},{{"value":"{}"}}]}}"#, "x".repeat(200)));
        let e = plan(BodyKind::Json, big, &opts, &shape(2), &rr).unwrap_err();
        assert_eq!((e.status().as_u16(), e.code), (413, ErrorCode::MessageTooLarge));
    }

    #[test]
    fn raw_batches_are_checked_and_kept() {
        let mut b = BatchBuilder::new();
        b.push(Some(b"k"), Some(b"v1"), []);
        b.push(None, Some(b"v2"), []);
        let bytes = Bytes::from(b.finish(0, 0).unwrap());
        let opts = ProduceOptions { key: None, partition: Some(1) };
        let p = plan(BodyKind::Records, bytes.clone(), &opts, &shape(2), &RoundRobin::default()).unwrap();
        assert_eq!(p.batches[0].partition, 1);
        assert_eq!(p.batches[0].batch.bytes(), &bytes[..]);
        assert_eq!(p.slots, vec![(0, 0), (0, 1)]);
        let mut corrupt = bytes.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let e = plan(BodyKind::Records, Bytes::from(corrupt), &opts, &shape(2), &RoundRobin::default()).unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
    }
}
