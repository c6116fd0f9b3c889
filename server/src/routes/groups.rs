//! `/v1/groups/...`: consumer groups over HTTP — config, list, describe, delete, cursor-style
//! offsets and reset, and queue-style fetch / ack / nack / extend / reject.
//!
//! Handlers only parse, bound and name-check; the work is `crate::groups::GroupEngine`'s.
//! Changes reply after they are durable (`204` for ack/nack/extend/reject).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_storage::Record;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{objects, parse_json, read_body, ApiPath, ApiQuery};
use crate::groups::{Delivered, FetchParams, GroupConfig, MessageRef, ResetTo};
use crate::media;
use crate::names::check_user_name;
use crate::read::query::Encoding;
use crate::read::render;
use crate::state::AppState;

/// Default `max_messages` of a fetch.
pub const FETCH_MESSAGES_DEFAULT: usize = 10;
/// Largest `max_messages` of a fetch.
pub const FETCH_MESSAGES_MAX: usize = 10_000;
/// Longest `wait_ms` of a fetch (as for reads).
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;
/// Most messages one ack / nack / extend / reject may name.
pub const MESSAGE_REFS_MAX: usize = 10_000;
/// Longest nack delay: 12 hours.
pub const NACK_DELAY_MS_MAX: u64 = 12 * 3600 * 1000;

/// A group request's JSON body (`415 unsupported_media_type` for a non-JSON `Content-Type`, as
/// for topic bodies; no `Content-Type` is taken as JSON). With `empty_ok`, an empty body is `{}`.
async fn json_body<T: for<'de> Deserialize<'de>>(state: &AppState, req: Request, empty_ok: bool) -> ApiResult<T> {
    let (parts, body) = req.into_parts();
    media::require_json(&parts.headers)?;
    let bytes = read_body(&parts, body, state.settings.body_bytes_max).await?;
    if empty_ok && bytes.iter().all(u8::is_ascii_whitespace) {
        return parse_json(b"{}");
    }
    parse_json(&bytes)
}

/// `PUT /v1/groups/{group}`.
pub async fn put_config(
    State(state): State<AppState>,
    ApiPath(group): ApiPath<String>,
    req: Request,
) -> ApiResult<Json<GroupConfig>> {
    check_user_name(&group)?;
    let config: GroupConfig = json_body(&state, req, true).await?;
    Ok(Json(state.groups.put_config(&group, config).await?))
}

/// `GET /v1/groups`.
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "groups": state.groups.list() }))
}

/// `GET /v1/groups/{group}`.
pub async fn describe(State(state): State<AppState>, ApiPath(group): ApiPath<String>) -> ApiResult<Response> {
    check_user_name(&group)?;
    Ok(Json(state.groups.describe(&group)?).into_response())
}

/// `DELETE /v1/groups/{group}`.
pub async fn delete(State(state): State<AppState>, ApiPath(group): ApiPath<String>) -> ApiResult<StatusCode> {
    check_user_name(&group)?;
    state.groups.delete(&group).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionOffset {
    partition: u32,
    offset: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitBody {
    topic: String,
    #[serde(deserialize_with = "objects")]
    offsets: Vec<PartitionOffset>,
}

/// `POST /v1/groups/{group}/offsets`: commit; replies with the new positions.
pub async fn commit(
    State(state): State<AppState>,
    ApiPath(group): ApiPath<String>,
    req: Request,
) -> ApiResult<Json<serde_json::Value>> {
    check_user_name(&group)?;
    let body: CommitBody = json_body(&state, req, false).await?;
    check_user_name(&body.topic)?;
    if body.offsets.is_empty() || body.offsets.len() > MESSAGE_REFS_MAX {
        return Err(ApiError::bad_request(format!("offsets must name 1 to {MESSAGE_REFS_MAX} partitions")));
    }
    let offsets: Vec<(u32, u64)> = body.offsets.iter().map(|o| (o.partition, o.offset)).collect();
    state.groups.commit(&group, &body.topic, &offsets).await?;
    let all = state.groups.offsets(&group, Some(&body.topic))?;
    let committed: Vec<_> = all.into_iter().filter(|v| offsets.iter().any(|(p, _)| *p == v.partition)).collect();
    Ok(Json(json!({ "offsets": committed })))
}

/// Unknown query parameters are ignored, as on every other route.
#[derive(Deserialize)]
pub struct OffsetsQuery {
    topic: Option<String>,
}

/// `GET /v1/groups/{group}/offsets[?topic=T]`.
pub async fn offsets(
    State(state): State<AppState>,
    ApiPath(group): ApiPath<String>,
    ApiQuery(q): ApiQuery<OffsetsQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    check_user_name(&group)?;
    if let Some(t) = &q.topic {
        check_user_name(t)?;
    }
    Ok(Json(json!({ "offsets": state.groups.offsets(&group, q.topic.as_deref())? })))
}

#[derive(Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum ResetTarget {
    Word(String),
    Offset { offset: u64 },
    Timestamp { timestamp: i64 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    topic: String,
    to: ResetTarget,
    partitions: Option<Vec<u32>>,
}

/// `POST /v1/groups/{group}/reset`.
pub async fn reset(
    State(state): State<AppState>,
    ApiPath(group): ApiPath<String>,
    req: Request,
) -> ApiResult<Json<serde_json::Value>> {
    check_user_name(&group)?;
    let body: ResetBody = json_body(&state, req, false).await?;
    check_user_name(&body.topic)?;
    let to = match body.to {
        ResetTarget::Word(w) if w == "earliest" => ResetTo::Earliest,
        ResetTarget::Word(w) if w == "latest" => ResetTo::Latest,
        ResetTarget::Word(w) => {
            return Err(ApiError::bad_request(format!(
                r#"to must be "earliest", "latest", {{"offset": N}} or {{"timestamp": MS}}, got {w:?}"#
            )))
        }
        ResetTarget::Offset { offset } => ResetTo::Offset(offset),
        ResetTarget::Timestamp { timestamp } => ResetTo::Timestamp(timestamp),
    };
    // A partition named twice is reset (and reported) once.
    let partitions = body.partitions.map(|mut p| {
        p.sort_unstable();
        p.dedup();
        p
    });
    let views = state.groups.reset(&group, &body.topic, to, partitions.as_deref()).await?;
    Ok(Json(json!({ "offsets": views })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FetchBody {
    max_messages: Option<usize>,
    wait_ms: Option<u64>,
    ack_timeout_ms: Option<u64>,
    consumer: Option<String>,
    encoding: Option<String>,
}

/// `POST /v1/groups/{group}/topics/{topic}/fetch`.
pub async fn fetch(
    State(state): State<AppState>,
    ApiPath((group, topic)): ApiPath<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    check_user_name(&group)?;
    check_user_name(&topic)?;
    let body: FetchBody = json_body(&state, req, true).await?;
    let max_messages = body.max_messages.unwrap_or(FETCH_MESSAGES_DEFAULT);
    if max_messages == 0 || max_messages > FETCH_MESSAGES_MAX {
        return Err(ApiError::bad_request(format!("max_messages must be between 1 and {FETCH_MESSAGES_MAX}")));
    }
    let wait_ms = body.wait_ms.unwrap_or(0);
    if wait_ms > FETCH_WAIT_MS_MAX {
        return Err(ApiError::bad_request(format!("wait_ms must be at most {FETCH_WAIT_MS_MAX}")));
    }
    let encoding = match body.encoding.as_deref() {
        None | Some("json") => Encoding::Json,
        Some("base64") => Encoding::Base64,
        Some(other) => return Err(ApiError::bad_request(format!("encoding must be json or base64, got {other:?}"))),
    };
    let params = FetchParams {
        max_messages,
        wait: Duration::from_millis(wait_ms),
        ack_timeout_ms: body.ack_timeout_ms,
        consumer: body.consumer,
        shutdown: Some(state.shutdown.clone()),
    };
    let engine = state.groups.clone();
    let delivered = engine.fetch(&group, &topic, params).await?;
    let mut out = Vec::with_capacity(64 + delivered.len() * 128);
    out.extend_from_slice(b"{\"messages\":[");
    for (i, d) in delivered.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        delivered_json(&mut out, d, encoding);
    }
    out.extend_from_slice(b"]}");
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from(out)).into_response())
}

/// A leased message: the read format plus `"delivery"`.
fn delivered_json(out: &mut Vec<u8>, d: &Delivered, encoding: Encoding) {
    let record = Record {
        offset: d.offset,
        timestamp: d.timestamp,
        key: d.key.as_deref(),
        value: d.value.as_deref(),
        headers: d.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref())).collect(),
    };
    render::message(out, d.partition, &record, encoding);
    if out.last() == Some(&b'}') {
        out.pop();
        out.extend_from_slice(format!(",\"delivery\":{}}}", d.delivery).as_bytes());
    }
}

/// A message named by an ack, nack, extend or reject. Besides `partition`, `offset`,
/// `delay_ms` and `delivery` it may carry the other fields of a fetched message, ignored, so a
/// client can hand back the messages a fetch gave it as they are; any other field is a 400.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefBody {
    partition: u32,
    offset: u64,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    delivery: Option<u32>,
    #[serde(default, rename = "timestamp")]
    _timestamp: IgnoredAny,
    #[serde(default, rename = "key")]
    _key: IgnoredAny,
    #[serde(default, rename = "value")]
    _value: IgnoredAny,
    #[serde(default, rename = "value_base64")]
    _value_base64: IgnoredAny,
    #[serde(default, rename = "headers")]
    _headers: IgnoredAny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesBody {
    #[serde(deserialize_with = "objects")]
    messages: Vec<RefBody>,
    #[serde(default)]
    ack_timeout_ms: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
}

async fn message_refs(
    state: &AppState,
    group: &str,
    topic: &str,
    req: Request,
) -> ApiResult<(Vec<MessageRef>, MessagesBody)> {
    check_user_name(group)?;
    check_user_name(topic)?;
    let body: MessagesBody = json_body(state, req, false).await?;
    if body.messages.len() > MESSAGE_REFS_MAX {
        return Err(ApiError::bad_request(format!("at most {MESSAGE_REFS_MAX} messages per request")));
    }
    let mut refs = Vec::with_capacity(body.messages.len());
    for m in &body.messages {
        if m.delay_ms.is_some_and(|d| d > NACK_DELAY_MS_MAX) {
            return Err(ApiError::bad_request(format!("delay_ms must be at most {NACK_DELAY_MS_MAX}")));
        }
        refs.push(MessageRef { partition: m.partition, offset: m.offset, delay_ms: m.delay_ms, delivery: m.delivery });
    }
    Ok((refs, body))
}

/// `POST .../ack`.
pub async fn ack(
    State(state): State<AppState>,
    ApiPath((group, topic)): ApiPath<(String, String)>,
    req: Request,
) -> ApiResult<StatusCode> {
    let (refs, _) = message_refs(&state, &group, &topic, req).await?;
    state.groups.ack(&group, &topic, &refs).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../nack`.
pub async fn nack(
    State(state): State<AppState>,
    ApiPath((group, topic)): ApiPath<(String, String)>,
    req: Request,
) -> ApiResult<StatusCode> {
    let (refs, _) = message_refs(&state, &group, &topic, req).await?;
    state.groups.nack(&group, &topic, &refs).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../extend`.
pub async fn extend(
    State(state): State<AppState>,
    ApiPath((group, topic)): ApiPath<(String, String)>,
    req: Request,
) -> ApiResult<StatusCode> {
    let (refs, body) = message_refs(&state, &group, &topic, req).await?;
    state.groups.extend(&group, &topic, &refs, body.ack_timeout_ms).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../reject`.
pub async fn reject(
    State(state): State<AppState>,
    ApiPath((group, topic)): ApiPath<(String, String)>,
    req: Request,
) -> ApiResult<StatusCode> {
    let (refs, body) = message_refs(&state, &group, &topic, req).await?;
    state.groups.reject(&group, &topic, &refs, body.reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every group request body type, parsed as the handlers parse it.
    fn parse_all(bytes: &[u8]) -> Vec<Result<(), ApiError>> {
        vec![
            parse_json::<GroupConfig>(bytes).map(drop),
            parse_json::<CommitBody>(bytes).map(drop),
            parse_json::<ResetBody>(bytes).map(drop),
            parse_json::<FetchBody>(bytes).map(drop),
            parse_json::<MessagesBody>(bytes).map(drop),
        ]
    }

    /// Fragments of the group routes' bodies (see [`crate::test_support::jsonish`]).
    fn jsonish() -> impl Strategy<Value = String> {
        crate::test_support::jsonish(&[
            "\"topic\"",
            "\"offsets\"",
            "\"partition\"",
            "\"offset\"",
            "\"messages\"",
            "\"to\"",
            "\"timestamp\"",
            "\"max_messages\"",
            "\"ack_timeout_ms\"",
            "\"start\"",
            "\"earliest\"",
            "4294967296",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn group_bodies_of_arbitrary_bytes_are_bad_requests_never_panics(
            body in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            for r in parse_all(&body) {
                if let Err(e) = r {
                    prop_assert_eq!(e.status().as_u16(), 400, "{}", e);
                }
            }
        }

        #[test]
        fn jsonish_group_bodies_are_bad_requests_never_panics(body in jsonish()) {
            for r in parse_all(body.as_bytes()) {
                if let Err(e) = r {
                    prop_assert_eq!(e.status().as_u16(), 400, "{}", e);
                }
            }
        }
    }

    #[test]
    fn deeply_nested_group_bodies_are_refused() {
        let deep = format!("{{\"topic\": \"t\", \"to\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        for r in parse_all(deep.as_bytes()) {
            assert_eq!(r.unwrap_err().status().as_u16(), 400);
        }
    }
}
