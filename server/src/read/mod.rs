//! Stateless reads: where a read starts, long-polling until enough is there, and running
//! the blocking collection off the async workers.
//!
//! The reply formats are assembled in `crate::routes::read` (JSON, NDJSON, raw records) and
//! `crate::sse` (follow mode); the query in [`query`], the message JSON in [`render`], the
//! limits in [`collect`].

pub mod collect;
pub mod query;
pub mod render;

use cairn_storage::PartitionLog;
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
        None => Err(cairn_storage::Error::TopicNotFound(log.topic().to_string()).into()),
    }
}
