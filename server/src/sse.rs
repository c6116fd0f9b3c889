//! Server-sent events follow mode (`Accept: text/event-stream`).
//!
//! Sends every message from the start position, then each new one as it is acknowledged,
//! until the client disconnects or the server shuts down. Each event is
//! `id: <offset>`, `event: message`, `data: <message JSON>`; a client resumes with
//! `Last-Event-ID: N` (offset N+1). The stream is woken by the partition's end-offset
//! watch — no polling — and sends a `: keepalive` comment whenever it has been idle for the
//! keepalive period (10 s; the contract asks for at least every 15 s). A comment is also
//! sent at once when there is nothing to send yet, so the client gets the response head
//! without waiting. A read failure mid-stream (for example retention removing the position,
//! or a corrupt batch) ends the stream with one `event: error` carrying the error JSON; so
//! does the deletion of the topic (`topic_not_found`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use cairn_storage::{PartitionLog, Topic};
use futures_util::stream;
use tokio::sync::watch;

use crate::ends::TOPIC_DELETED;
use crate::error::{ApiError, ErrorCode};
use crate::media;
use crate::read::collect::{collect, Framing, Limits};
use crate::read::query::ReadQuery;
use crate::read::{blocking, read_failure};
use crate::state::AppState;

const CONNECTED: &[u8] = b": connected\n\n";
const KEEPALIVE: &[u8] = b": keepalive\n\n";

struct Follow {
    state: AppState,
    /// The topic `log` belongs to (a read failure after its deletion is `topic_not_found`).
    topic: Arc<Topic>,
    log: PartitionLog,
    next_offset: u64,
    query: ReadQuery,
    ends: watch::Receiver<u64>,
    said_hello: bool,
    finished: bool,
}

/// The streaming response, starting at `from` (already checked to be in range).
pub fn response(state: AppState, topic: Arc<Topic>, log: PartitionLog, from: u64, query: ReadQuery) -> Response {
    let ends = state.ends.subscribe(&log);
    let follow = Follow { state, topic, log, next_offset: from, query, ends, said_hello: false, finished: false };
    let events = stream::unfold(follow, |mut f| async move {
        let chunk = f.next_chunk().await?;
        Some((Ok::<Bytes, Infallible>(chunk), f))
    });
    let mut resp = Response::new(Body::from_stream(events));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media::EVENT_STREAM));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

impl Follow {
    /// The next bytes to send; `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        loop {
            if self.state.shutdown.is_triggered() {
                return None;
            }
            if *self.ends.borrow_and_update() == TOPIC_DELETED {
                self.finished = true;
                let gone = ApiError::new(ErrorCode::TopicNotFound, format!("topic {} was deleted", self.log.topic()));
                return Some(error_event(&gone));
            }
            if self.log.end_offset() > self.next_offset {
                match self.read().await {
                    Ok(Some(events)) => return Some(events),
                    Ok(None) => {}
                    Err(e) => {
                        self.finished = true;
                        return Some(error_event(&read_failure(&self.state.catalog, &self.topic, e)));
                    }
                }
            }
            if !self.said_hello {
                self.said_hello = true;
                return Some(Bytes::from_static(CONNECTED));
            }
            tokio::select! {
                changed = self.ends.changed() => if changed.is_err() { return None },
                _ = tokio::time::sleep(self.state.settings.keepalive) => return Some(Bytes::from_static(KEEPALIVE)),
                _ = self.state.shutdown.wait() => return None,
            }
        }
    }

    /// Events for the messages from `next_offset`, if there are any.
    async fn read(&mut self) -> Result<Option<Bytes>, ApiError> {
        let (log, from) = (self.log.clone(), self.next_offset);
        let limits = Limits { max_messages: self.query.max_messages, max_bytes: self.query.max_bytes };
        let encoding = self.query.encoding;
        let (out, c) = blocking(move || {
            let mut out = Vec::new();
            let c = collect(&log, from, limits, Framing::Sse, encoding, &mut out)?;
            Ok((out, c))
        })
        .await?;
        self.state.metrics.read(c.messages as u64, c.bytes);
        self.next_offset = c.next_offset.max(self.next_offset);
        self.said_hello = true;
        Ok((c.messages > 0).then(|| Bytes::from(out)))
    }
}

fn error_event(e: &ApiError) -> Bytes {
    Bytes::from(format!("event: error\ndata: {}\n\n", e.body()))
}
