//! Topic administration: create, list, describe, change, delete.
//!
//! Bodies are topic config objects with the contract's field names (the storage
//! `TopicConfig`, serialised as is); unknown fields are refused so that a typo is not
//! silently ignored. Create, update and delete sync metadata to disk, so they run on the
//! blocking pool. Internal topics (`__…`) are never listed nor addressable.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_storage::{Topic, TopicConfig};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, read_body, ApiPath};
use crate::read::blocking;
use crate::state::AppState;
use crate::{media, names};

/// One partition in a topic description.
#[derive(Debug, Serialize)]
pub struct PartitionDescription {
    pub partition: u32,
    pub start_offset: u64,
    pub end_offset: u64,
    pub size_bytes: u64,
    pub segments: usize,
}

/// A topic as the API shows it.
#[derive(Debug, Serialize)]
pub struct TopicDescription {
    pub name: String,
    pub config: TopicConfig,
    pub partitions: Vec<PartitionDescription>,
}

impl TopicDescription {
    pub fn of(topic: &Topic) -> Self {
        TopicDescription {
            name: topic.name().to_string(),
            config: topic.config(),
            partitions: topic
                .partitions()
                .iter()
                .map(|p| PartitionDescription {
                    partition: p.partition(),
                    start_offset: p.start_offset(),
                    end_offset: p.end_offset(),
                    size_bytes: p.size_bytes(),
                    segments: p.segment_count(),
                })
                .collect(),
        }
    }
}

/// Reads a JSON object body.
async fn object_body(state: &AppState, request: Request) -> ApiResult<Map<String, Value>> {
    let (parts, body): (_, Body) = request.into_parts();
    media::require_json(&parts.headers)?;
    let bytes = read_body(&parts, body, state.settings.body_bytes_max).await?;
    match parse_json::<Value>(&bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

/// Applies config fields from `fields` over `base`; unknown fields and wrong types are
/// `400 bad_request`.
fn apply_config(base: &TopicConfig, fields: Map<String, Value>) -> ApiResult<TopicConfig> {
    let Value::Object(mut merged) = serde_json::to_value(base).map_err(|e| ApiError::internal(e.to_string()))? else {
        return Err(ApiError::internal("topic config is not an object"));
    };
    for (k, v) in fields {
        if !merged.contains_key(&k) {
            let known: Vec<&str> = merged.keys().map(String::as_str).collect();
            return Err(ApiError::bad_request(format!(
                "unknown topic config field {k:?} (known: {})",
                known.join(", ")
            )));
        }
        merged.insert(k, v);
    }
    serde_json::from_value(Value::Object(merged))
        .map_err(|e| ApiError::bad_request(format!("invalid topic config: {e}")))
}

/// `POST /v1/topics`
pub async fn create(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let mut fields = object_body(&state, request).await?;
    let name = match fields.remove("name") {
        Some(Value::String(n)) => n,
        Some(_) => return Err(ApiError::bad_request("name must be a string")),
        None => return Err(ApiError::bad_request("name is required")),
    };
    names::check_user_name(&name)?;
    let config = apply_config(&TopicConfig::default(), fields)?;
    let catalog = Arc::clone(&state.catalog);
    let topic = blocking(move || catalog.create_topic(&name, config).map_err(ApiError::from)).await?;
    tracing::info!(topic = topic.name(), "topic created");
    Ok((StatusCode::CREATED, Json(TopicDescription::of(&topic))).into_response())
}

/// `GET /v1/topics`
///
/// With authentication on, only the topics the caller's token may produce to or consume from
/// are listed (`admin` sees all).
pub async fn list(State(state): State<AppState>, principal: Option<Extension<Arc<Principal>>>) -> Json<Value> {
    let visible = |name: &str| principal.as_ref().is_none_or(|Extension(p)| p.can_see(name));
    let topics: Vec<TopicDescription> = state
        .catalog
        .topics()
        .iter()
        .filter(|t| !names::is_internal(t.name()) && visible(t.name()))
        .map(|t| TopicDescription::of(t))
        .collect();
    Json(serde_json::json!({ "topics": topics }))
}

/// `GET /v1/topics/{topic}`
pub async fn describe(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<TopicDescription>> {
    let topic = state.user_topic(&name)?;
    Ok(Json(TopicDescription::of(&topic)))
}

/// `PATCH /v1/topics/{topic}`
pub async fn update(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    request: Request,
) -> ApiResult<Json<TopicDescription>> {
    let topic = state.user_topic(&name)?;
    let mut fields = object_body(&state, request).await?;
    match fields.remove("name") {
        None => {}
        Some(Value::String(n)) if n == name => {}
        Some(_) => return Err(ApiError::bad_request("a topic cannot be renamed")),
    }
    let config = apply_config(&topic.config(), fields)?;
    let catalog = Arc::clone(&state.catalog);
    let topic = blocking(move || catalog.update_topic(&name, config).map_err(ApiError::from)).await?;
    tracing::info!(topic = topic.name(), "topic updated");
    Ok(Json(TopicDescription::of(&topic)))
}

/// `DELETE /v1/topics/{topic}`
pub async fn delete(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    state.user_topic(&name)?;
    let catalog = Arc::clone(&state.catalog);
    let owned = name.clone();
    blocking(move || catalog.delete_topic(&owned).map_err(ApiError::from)).await?;
    state.ends.forget_topic(&name);
    state.idempotency.forget_topic(&name);
    if let Err(e) = state.groups.forget_topic(&name).await {
        // The topic is gone either way; only the groups' record of forgetting it failed.
        tracing::warn!(topic = %name, "groups could not durably forget the deleted topic: {e}");
    }
    tracing::info!(topic = %name, "topic deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn config_fields_apply_over_a_base() {
        let c = apply_config(
            &TopicConfig::default(),
            fields(json!({"partitions": 3, "retention_ms": null, "sync": {"interval_ms": 50}})),
        )
        .unwrap();
        assert_eq!(c.partitions, 3);
        assert_eq!(c.retention_ms, None);
        assert_eq!(c.sync, cairn_storage::SyncPolicy::Interval { interval_ms: 50 });
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused() {
        for bad in [
            json!({"partition": 3}),
            json!({"partitions": "three"}),
            json!({"partitions": -1}),
            json!({"compression": "lz4"}),
        ] {
            let e = apply_config(&TopicConfig::default(), fields(bad.clone())).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{bad}");
        }
    }
}
