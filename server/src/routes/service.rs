//! Service endpoints: health, Prometheus metrics, the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// `GET /v1/health`: the store is open (the server only listens once it is).
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render(&state.catalog);
    state.groups.write_metrics(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// The OpenAPI document of the router being served (built once, from its route table).
#[derive(Debug, Clone)]
pub struct OpenApiDocument(pub Arc<Value>);

/// `GET /v1/openapi.json`
pub async fn openapi(Extension(doc): Extension<OpenApiDocument>) -> Json<Value> {
    Json(Value::clone(&doc.0))
}
