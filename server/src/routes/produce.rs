//! `POST /v1/topics/{topic}/messages`: the produce handler.
//!
//! Resolves (or auto-creates) the topic, claims the `Idempotency-Key` if one is given, reads
//! the body within the size limit, plans the batches (on the blocking pool for large
//! bodies), appends them, waits for the acknowledgement and replies with the offsets.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{read_body, ApiPath};
use crate::idempotency::{self, Claim, ProducedOffset};
use crate::media;
use crate::produce::{self, ProduceOptions, TopicShape};
use crate::read::blocking;
use crate::state::AppState;

/// Bodies up to this size are parsed on the async worker; larger ones on the blocking pool.
const INLINE_PARSE_BYTES_MAX: usize = 64 * 1024;

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<Option<&'a str>> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| ApiError::bad_request(format!("{name} must be visible ASCII"))))
        .transpose()
}

fn options(headers: &HeaderMap) -> ApiResult<ProduceOptions> {
    let partition = match header_str(headers, "cairn-partition")? {
        None => None,
        Some(p) => Some(p.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("Cairn-Partition must be a non-negative integer, got {p:?}"))
        })?),
    };
    let key = headers.get("cairn-key").map(|v| v.as_bytes().to_vec());
    Ok(ProduceOptions { key, partition })
}

fn reply(offsets: &[ProducedOffset], duplicate: bool) -> Json<Value> {
    Json(json!({ "offsets": offsets, "duplicate": duplicate }))
}

/// The produce handler.
pub async fn produce(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let (parts, body): (_, Body) = request.into_parts();
    let kind = media::body_kind(&parts.headers)?;
    let opts = options(&parts.headers)?;
    let idempotency_key = header_str(&parts.headers, "idempotency-key")?.map(str::to_string);
    if let Some(k) = &idempotency_key {
        idempotency::check_key(k)?;
    }
    let topic = state.topic_for_produce(&name).await?;
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
    let shape = TopicShape::of(&topic);
    let plan = if body.len() <= INLINE_PARSE_BYTES_MAX {
        produce::plan(kind, body, &opts, &shape, &state.round_robin)?
    } else {
        let state2 = state.clone();
        blocking(move || produce::plan(kind, body, &opts, &shape, &state2.round_robin)).await?
    };
    let (messages, bytes) = (plan.slots.len() as u64, plan.bytes());
    let offsets = produce::execute(plan, &topic, &state.metrics).await?;
    state.metrics.produced(messages, bytes);
    if let Some(guard) = claim {
        state.idempotency.complete(guard, &offsets).await;
    }
    Ok(reply(&offsets, false))
}
