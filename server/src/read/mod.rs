//! Stateless reads: where a read starts, long-polling until enough is there, running the
//! blocking collection off the async workers, and what a read whose topic is deleted under it
//! answers (`404 topic_not_found`).
//!
//! The reply formats are assembled in `crate::routes::read` (JSON, NDJSON, raw records) and
//! `crate::sse` (follow mode); the query in [`query`], the message JSON in [`render`], the
//! limits in [`collect`].

pub mod collect;
pub mod query;
pub mod render;

use std::sync::Arc;

use cairn_storage::{Catalog, PartitionLog, Topic};
use tokio::time::Instant;

use crate::error::{ApiError, ApiResult};
use crate::state::State;
use query::{ReadQuery, Start};

/// Runs blocking storage work on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?
}

/// The first offset a read returns, from its query (or `resume_at`, given by SSE's
/// `Last-Event-ID`, which wins). Checked against the partition's range: outside
/// `[start_offset, end_offset]` is `416 offset_out_of_range`.
pub async fn start_offset(state: &State, log: &PartitionLog, start: &Start, resume_at: Option<u64>) -> ApiResult<u64> {
    let offset = match (resume_at, start) {
        (Some(o), _) => o,
        (None, Start::Offset(o)) => *o,
        (None, Start::Earliest | Start::Unspecified) => log.start_offset(),
        (None, Start::Latest) => log.end_offset(),
        (None, Start::Timestamp(ts)) => {
            let (log, ts) = (log.clone(), *ts);
            blocking(move || log.offset_for_timestamp(ts).map_err(ApiError::from)).await?
        }
        (None, Start::Group(g)) => state.groups.position(g, log.topic(), log.partition())?,
    };
    let (start, end) = (log.start_offset(), log.end_offset());
    if offset < start || offset > end {
        return Err(cairn_storage::Error::OffsetOutOfRange { requested: offset, start, end }.into());
    }
    Ok(offset)
}

/// Long-poll: waits until `min_messages` offsets are available from `from`, the query's
/// `wait_ms` passes, or shutdown starts. Returns at once when `wait_ms` is 0;
/// `404 topic_not_found` if the topic is deleted while it waits.
pub async fn wait_for_messages(state: &State, log: &PartitionLog, from: u64, q: &ReadQuery) -> ApiResult<()> {
    if q.wait.is_zero() {
        return Ok(());
    }
    let target = from.saturating_add(q.min_messages);
    match state.ends.wait_for_end(log, target, Instant::now() + q.wait, &state.shutdown).await {
        Some(_) => Ok(()),
        None => Err(topic_deleted(log.topic())),
    }
}

/// `404 topic_not_found`: what a read of a topic deleted under it answers.
fn topic_deleted(topic: &str) -> ApiError {
    cairn_storage::Error::TopicNotFound(topic.to_string()).into()
}

/// A failed read of `topic`, as the client sees it. If the topic is no longer the catalog's
/// (deleted, or deleted and created again, since the read looked it up), the failure came from
/// its files going away under the read (an I/O error, a `500 internal`): the reply is then
/// `404 topic_not_found`, as for a long-poll whose topic is deleted while it waits. Any other
/// failure is returned as it is.
pub fn read_failure(catalog: &Catalog, topic: &Arc<Topic>, e: ApiError) -> ApiError {
    if catalog.topic(topic.name()).is_some_and(|current| Arc::ptr_eq(&current, topic)) {
        e
    } else {
        topic_deleted(topic.name())
    }
}

#[cfg(test)]
mod tests {
    use cairn_storage::{BatchBuilder, TopicConfig};

    use super::*;

    /// The race the mapping exists for, made deterministic: the read holds the topic and its
    /// log from before a delete (as a handler does between its lookup and the read).
    #[test]
    fn a_read_of_a_deleted_topic_is_topic_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), Default::default()).unwrap();
        let topic = catalog.create_topic("t", TopicConfig::default()).unwrap();
        let log = topic.partition(0).unwrap();
        let mut b = BatchBuilder::new();
        b.push(None, Some(b"x"), []);
        log.append(b.finish(0, 0).unwrap()).unwrap();

        // Live: a failure passes through as it is.
        let e = read_failure(&catalog, &topic, ApiError::internal("disk on fire"));
        assert_eq!((e.status().as_u16(), e.code.as_str()), (500, "internal"));

        catalog.delete_topic("t").unwrap();
        let failed = log.read(0, 1 << 20).map(drop).map_err(ApiError::from).unwrap_err();
        assert_eq!(failed.status().as_u16(), 500, "the read under a delete fails as a server error: {failed:?}");
        let e = read_failure(&catalog, &topic, failed);
        assert_eq!((e.status().as_u16(), e.code.as_str()), (404, "topic_not_found"));

        // Deleted and created again: the read's topic is still gone.
        catalog.create_topic("t", TopicConfig::default()).unwrap();
        let e = read_failure(&catalog, &topic, ApiError::internal("gone"));
        assert_eq!((e.status().as_u16(), e.code.as_str()), (404, "topic_not_found"));
        catalog.close().unwrap();
    }
}
