//! `POST /v1/topics/{topic}/messages`: the produce handler.
//!
//! Resolves the topic, claims the `Idempotency-Key` if one is given, reads the body within
//! the size limit, plans the batches (on the blocking pool for large bodies), creates the
//! topic if it is missing and auto-create is on (only once the request passed its checks),
//! appends, waits for the acknowledgement and replies with the offsets.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{decimal, read_body, ApiPath};
use crate::idempotency::{self, Claim, ProducedOffset};
use crate::media;
use crate::produce::{self, Plan, ProduceOptions, TopicShape};
use crate::read::blocking;
use crate::state::AppState;

/// Bodies up to this size are parsed on the async worker; larger ones on the blocking pool.
const INLINE_PARSE_BYTES_MAX: usize = 64 * 1024;

/// The produce headers, parsed once (looking a header up by `&str` parses and hashes the name
/// on every request).
static CAIRN_PARTITION: HeaderName = HeaderName::from_static("cairn-partition");
static CAIRN_KEY: HeaderName = HeaderName::from_static("cairn-key");
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> ApiResult<Option<&'a str>> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| ApiError::bad_request(format!("{name} must be visible ASCII"))))
        .transpose()
}

fn options(headers: &HeaderMap) -> ApiResult<ProduceOptions> {
    let partition = match header_str(headers, &CAIRN_PARTITION)? {
        None => None,
        Some(p) => Some(decimal::<u64>(p.trim()).ok_or_else(|| {
            ApiError::bad_request(format!("Cairn-Partition must be a non-negative integer, got {p:?}"))
        })?),
    };
    let key = headers.get(&CAIRN_KEY).map(|v| v.as_bytes().to_vec());
    Ok(ProduceOptions { key, partition })
}

/// The reply body `{"offsets":[{"partition":P,"offset":O,"timestamp":T},...],"duplicate":B}`,
/// written directly: it holds only integers, and building it through serde and axum's `Json`
/// was the largest single cost of a produce after the HTTP parsing (docs/BENCHMARKS.md).
fn reply_body(offsets: &[ProducedOffset], duplicate: bool) -> Vec<u8> {
    const ENTRY_MAX: usize = r#"{"partition":,"offset":,"timestamp":},"#.len() + 10 + 20 + 20;
    let mut out = Vec::with_capacity(40 + offsets.len() * ENTRY_MAX);
    out.extend_from_slice(br#"{"offsets":["#);
    let mut num = itoa::Buffer::new();
    // The messages of one batch share partition and timestamp: their text is written once per
    // run, then copied from where it was first written (no buffers of its own to allocate).
    let (mut head, mut tail) = (0..0, 0..0);
    let mut run = None;
    for (i, o) in offsets.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if run != Some((o.partition, o.timestamp)) {
            run = Some((o.partition, o.timestamp));
            let start = out.len();
            out.extend_from_slice(br#"{"partition":"#);
            out.extend_from_slice(num.format(o.partition).as_bytes());
            out.extend_from_slice(br#","offset":"#);
            head = start..out.len();
            out.extend_from_slice(num.format(o.offset).as_bytes());
            let start = out.len();
            out.extend_from_slice(br#","timestamp":"#);
            out.extend_from_slice(num.format(o.timestamp).as_bytes());
            out.push(b'}');
            tail = start..out.len();
        } else {
            out.extend_from_within(head.clone());
            out.extend_from_slice(num.format(o.offset).as_bytes());
            out.extend_from_within(tail.clone());
        }
    }
    out.extend_from_slice(if duplicate { br#"],"duplicate":true}"# } else { br#"],"duplicate":false}"# });
    out
}

fn reply(offsets: &[ProducedOffset], duplicate: bool) -> Response {
    let mut response = Response::new(Body::from(reply_body(offsets, duplicate)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Plans on the async worker for small bodies, on the blocking pool for large ones.
async fn plan(
    state: &AppState,
    kind: media::BodyKind,
    body: Bytes,
    opts: &ProduceOptions,
    shape: &TopicShape,
) -> ApiResult<Plan> {
    if body.len() <= INLINE_PARSE_BYTES_MAX {
        return produce::plan(kind, body, opts, shape, &state.round_robin);
    }
    let (state, opts, shape) = (state.clone(), opts.clone(), shape.clone());
    blocking(move || produce::plan(kind, body, &opts, &shape, &state.round_robin)).await
}

/// The produce route's path template (its label in the request metrics).
pub const PRODUCE_PATH: &str = "/v1/topics/{topic}/messages";

/// The produce handler, as the router calls it.
pub async fn produce(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    request: Request,
) -> ApiResult<Response> {
    produce_to(&state, name, request).await
}

/// Produces the request's body to topic `name` (the path's decoded `{topic}`): the produce
/// handler proper, also called directly by `crate::dispatch`.
pub async fn produce_to(state: &AppState, name: String, request: Request) -> ApiResult<Response> {
    let (parts, body): (_, Body) = request.into_parts();
    let kind = media::body_kind(&parts.headers)?;
    let opts = options(&parts.headers)?;
    let idempotency_key = header_str(&parts.headers, &IDEMPOTENCY_KEY)?.map(str::to_string);
    if let Some(k) = &idempotency_key {
        idempotency::check_key(k)?;
    }
    let existing = state.topic_for_produce(&name)?;
    let claim = match &idempotency_key {
        Some(k) => match state.idempotency.claim(&name, k).await {
            Claim::Duplicate(offsets) => {
                state.metrics.produce_duplicates.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(reply(&offsets, true));
            }
            Claim::Owner(guard) => Some(guard),
        },
        None => None,
    };
    let body = read_body(&parts, body, state.settings.body_bytes_max).await?;
    // The head's URI and header values are slices of hyper's read buffer: let go of them
    // before the append's wait rather than after it (`read_body` copied the body out). hyper
    // still allocates a fresh read buffer per request, as its keep-alive read runs before this
    // handler does (docs/BENCHMARKS.md, session 3).
    drop(parts);
    let (topic, plan) = match existing {
        // The body is moved into the plan: a raw batch then becomes the appended buffer
        // without a copy.
        Some(t) => {
            let plan = plan(state, kind, body, &opts, &TopicShape::of(&t)).await?;
            (t, plan)
        }
        None => {
            // The whole request is checked before a missing topic is created.
            let shape = TopicShape::defaults(&name);
            let mut plan = plan(state, kind, body.clone(), &opts, &shape).await?;
            let t = state.create_for_produce(&name).await?;
            let actual = TopicShape::of(&t);
            if actual != shape {
                // Created concurrently with another configuration: check again against it.
                plan = self::plan(state, kind, body, &opts, &actual).await?;
            }
            (t, plan)
        }
    };
    let (messages, bytes) = (plan.slots.len() as u64, plan.bytes());
    let offsets = produce::execute(plan, &topic, &state.metrics).await?;
    state.metrics.produced(messages, bytes);
    if let Some(guard) = claim {
        state.idempotency.complete(guard, &offsets).await;
    }
    Ok(reply(&offsets, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_body_is_the_serde_shape() {
        let offsets = [
            ProducedOffset { partition: 0, offset: 0, timestamp: 0 },
            ProducedOffset { partition: u32::MAX, offset: u64::MAX, timestamp: i64::MIN },
            ProducedOffset { partition: 3, offset: 12345, timestamp: 1_764_000_000_000 },
            ProducedOffset { partition: 3, offset: 12346, timestamp: 1_764_000_000_000 },
            ProducedOffset { partition: 2, offset: 12346, timestamp: 1_764_000_000_000 },
            ProducedOffset { partition: 2, offset: 7, timestamp: 1 },
        ];
        for n in 0..=offsets.len() {
            for duplicate in [false, true] {
                let got: serde_json::Value = serde_json::from_slice(&reply_body(&offsets[..n], duplicate)).unwrap();
                let want = serde_json::json!({ "offsets": &offsets[..n], "duplicate": duplicate });
                assert_eq!(got, want);
            }
        }
    }
}
