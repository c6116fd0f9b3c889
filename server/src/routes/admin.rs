//! Admin operations: `POST /v1/topics/{topic}/compact` compacts a topic now.
//!
//! The work (retention, then rewriting sealed segments; see `cairn_storage::compaction`)
//! runs on the blocking pool and the reply is its statistics. On a `compact` topic the
//! latest message per key is kept and expired tombstones go; on a `delete` topic nothing is
//! dropped by key, but retention is applied and small sealed segments are merged (and
//! recompressed with the topic's codec). Produces and reads go on meanwhile. Any request
//! body is ignored.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cairn_storage::CompactionStats;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;
use crate::read::blocking;
use crate::state::AppState;

/// `POST /v1/topics/{topic}/compact` → `200` with [`CompactionStats`].
pub async fn compact(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<CompactionStats>> {
    state.user_topic(&name)?;
    let catalog = Arc::clone(&state.catalog);
    let stats = blocking(move || catalog.compact_topic(&name).map_err(ApiError::from)).await?;
    Ok(Json(stats))
}
