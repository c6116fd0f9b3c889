//! `GET /v1/topics/{topic}/partitions/{p}/messages`: the read handler and its reply formats.
//!
//! JSON (`{"messages", "next_offset", "start_offset", "end_offset"}`), NDJSON (one message
//! per line), raw record batches (`application/vnd.cairn.records`, the stored bytes sent as
//! they are from the memory map) — each with `Cairn-Next-Offset`, `Cairn-Start-Offset` and
//! `Cairn-End-Offset` headers — or SSE follow mode (`crate::sse`).

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cairn_storage::{PartitionLog, Topic};
use futures_util::stream;

use crate::error::{ApiError, ApiResult};
use crate::extract::{decimal, ApiPath, ApiQuery};
use crate::media::{self, ReplyKind};
use crate::read::collect::{collect, collect_raw, ChunkedBody, Framing, Limits, Sink as _};
use crate::read::query::{RawReadQuery, ReadQuery};
use crate::read::{blocking, read_failure, start_offset, wait_for_messages};
use crate::routes::parse_partition;
use crate::sse;
use crate::state::AppState;

/// `Cairn-Next-Offset`: where the next read should start.
pub const NEXT_OFFSET: HeaderName = HeaderName::from_static("cairn-next-offset");
/// `Cairn-Start-Offset`: the partition's first stored offset.
pub const START_OFFSET: HeaderName = HeaderName::from_static("cairn-start-offset");
/// `Cairn-End-Offset`: the partition's high watermark.
pub const END_OFFSET: HeaderName = HeaderName::from_static("cairn-end-offset");

fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(v) = headers.get("last-event-id") else { return Ok(None) };
    let text = v.to_str().unwrap_or("").trim();
    let id: u64 =
        decimal(text).ok_or_else(|| ApiError::bad_request(format!("Last-Event-ID must be an offset, got {text:?}")))?;
    Ok(Some(id.saturating_add(1)))
}

fn with_offsets(mut resp: Response, content_type: &'static str, next: u64, start: u64, end: u64) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(NEXT_OFFSET, HeaderValue::from(next));
    h.insert(START_OFFSET, HeaderValue::from(start));
    h.insert(END_OFFSET, HeaderValue::from(end));
    resp
}

/// The read handler.
pub async fn read(
    State(state): State<AppState>,
    ApiPath((topic, p)): ApiPath<(String, String)>,
    ApiQuery(raw): ApiQuery<RawReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = ReadQuery::parse(raw)?;
    let topic = state.user_topic(&topic)?;
    let partition = parse_partition(&p)?;
    let log = u32::try_from(partition)
        .ok()
        .and_then(|p| topic.partition(p))
        .ok_or_else(|| ApiError::partition_not_found(topic.name(), partition))?;
    let kind = media::reply_kind(&headers);
    let resume_at = if kind == ReplyKind::EventStream { last_event_id(&headers)? } else { None };
    read_log(&state, &topic, log, query, kind, resume_at).await.map_err(|e| read_failure(&state.catalog, &topic, e))
}

/// The read of partition `log` of `topic` once the request is checked; its failures go
/// through [`read_failure`] (a topic deleted under the read is `404 topic_not_found`).
async fn read_log(
    state: &AppState,
    topic: &Arc<Topic>,
    log: PartitionLog,
    query: ReadQuery,
    kind: ReplyKind,
    resume_at: Option<u64>,
) -> ApiResult<Response> {
    let from = start_offset(state, &log, &query.start, resume_at).await?;
    if kind == ReplyKind::EventStream {
        return Ok(sse::response(state.clone(), Arc::clone(topic), log, from, query));
    }
    wait_for_messages(state, &log, from, &query).await?;
    let limits = Limits { max_messages: query.max_messages, max_bytes: query.max_bytes };
    if kind == ReplyKind::Records {
        let r = blocking(move || collect_raw(&log, from, limits)).await?;
        state.metrics.read(r.messages as u64, r.bytes);
        // The batches go out as they are, zero-copy from the map, with a known length.
        let length = r.bytes;
        let chunks = stream::iter(r.batches.into_iter().map(Ok::<Bytes, Infallible>));
        let mut resp = Body::from_stream(chunks).into_response();
        resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        return Ok(with_offsets(resp, media::RECORDS, r.next_offset, r.start_offset, r.end_offset));
    }
    let (encoding, json) = (query.encoding, kind == ReplyKind::Json);
    let (out, c) = blocking(move || {
        let mut out = ChunkedBody::new();
        if json {
            out.buf().extend_from_slice(b"{\"messages\":[");
        }
        let framing = if json { Framing::JsonArray } else { Framing::Ndjson };
        let c = collect(&log, from, limits, framing, encoding, &mut out)?;
        if json {
            let _ = write!(
                out.buf(),
                "],\"next_offset\":{},\"start_offset\":{},\"end_offset\":{}}}",
                c.next_offset,
                c.start_offset,
                c.end_offset
            );
        }
        Ok((out, c))
    })
    .await?;
    state.metrics.read(c.messages as u64, c.bytes);
    let content_type = if json { media::JSON } else { media::NDJSON };
    let length = out.len() as u64;
    let chunks = stream::iter(out.into_chunks().into_iter().map(Ok::<Bytes, Infallible>));
    let mut resp = Body::from_stream(chunks).into_response();
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(with_offsets(resp, content_type, c.next_offset, c.start_offset, c.end_offset))
}
