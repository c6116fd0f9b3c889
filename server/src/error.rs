//! The API's error type and the single mapping from storage errors to HTTP.
//!
//! Every failure a handler returns is an [`ApiError`]: a stable snake_case [`ErrorCode`] (the
//! contract's `code`), a human message and optional extra fields (for example `start_offset`
//! and `end_offset` on `416 offset_out_of_range`). It renders as
//! `{"code": .., "message": .., ..extra}` with the code's status. Storage errors become API
//! errors in exactly one place, `impl From<cairn_storage::Error> for ApiError`, so the same
//! engine failure always gets the same status everywhere.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_storage::batch::ClientBatchError;
use serde_json::{Map, Value};

/// The contract's error codes (plus `method_not_allowed` and `unavailable`, which it allows
/// us to add).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    InvalidName,
    TopicNotFound,
    TopicExists,
    PartitionNotFound,
    GroupNotFound,
    OffsetOutOfRange,
    MessageTooLarge,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unauthorized,
    Forbidden,
    InsufficientStorage,
    NotFound,
    MethodNotAllowed,
    DataCorrupted,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The `code` field of the error body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::TopicNotFound => "topic_not_found",
            ErrorCode::TopicExists => "topic_exists",
            ErrorCode::PartitionNotFound => "partition_not_found",
            ErrorCode::GroupNotFound => "group_not_found",
            ErrorCode::OffsetOutOfRange => "offset_out_of_range",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InsufficientStorage => "insufficient_storage",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::DataCorrupted => "data_corrupted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status this code is always sent with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidName => StatusCode::BAD_REQUEST,
            ErrorCode::TopicNotFound
            | ErrorCode::PartitionNotFound
            | ErrorCode::GroupNotFound
            | ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::TopicExists => StatusCode::CONFLICT,
            ErrorCode::OffsetOutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::MessageTooLarge | ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::DataCorrupted | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error reply: `{"code", "message", ..extra}` with the code's status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), extra: Map::new() }
    }

    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// `500 internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// `404 topic_not_found`.
    pub fn topic_not_found(topic: &str) -> Self {
        Self::new(ErrorCode::TopicNotFound, format!("topic {topic} not found"))
    }

    /// `404 partition_not_found`.
    pub fn partition_not_found(topic: &str, partition: u64) -> Self {
        Self::new(ErrorCode::PartitionNotFound, format!("partition {partition} of topic {topic} not found"))
    }

    /// Adds an extra field to the body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("code".into(), self.code.as_str().into());
        body.insert("message".into(), self.message.clone().into());
        for (k, v) in &self.extra {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(code = self.code.as_str(), "{}", self.message);
        } else {
            tracing::debug!(code = self.code.as_str(), "{}", self.message);
        }
        (self.status(), Json(self.body())).into_response()
    }
}

/// The one mapping from engine failures to API errors.
impl From<cairn_storage::Error> for ApiError {
    fn from(e: cairn_storage::Error) -> Self {
        use cairn_storage::Error as E;
        let message = e.to_string();
        match e {
            E::OffsetOutOfRange { requested, start, end } => ApiError::new(ErrorCode::OffsetOutOfRange, message)
                .with("offset", requested)
                .with("start_offset", start)
                .with("end_offset", end),
            E::StorageFull { .. } => ApiError::new(ErrorCode::InsufficientStorage, message),
            E::Corruption { file, position, .. } => ApiError::new(ErrorCode::DataCorrupted, message)
                .with("file", file.display().to_string())
                .with("position", position),
            E::TopicExists(_) => ApiError::new(ErrorCode::TopicExists, message),
            E::TopicNotFound(_) => ApiError::new(ErrorCode::TopicNotFound, message),
            E::PartitionNotFound { .. } => ApiError::new(ErrorCode::PartitionNotFound, message),
            E::InvalidName(_) => ApiError::new(ErrorCode::InvalidName, message),
            E::InvalidConfig(_) | E::InvalidBatch(_) => ApiError::bad_request(message),
            E::Closed => ApiError::new(ErrorCode::Unavailable, "the server is shutting down"),
            E::Io { .. } | E::Locked { .. } | E::Poisoned(_) => ApiError::internal(message),
        }
    }
}

/// Group engine failures, mapped like the storage errors they mirror.
impl From<crate::groups::GroupError> for ApiError {
    fn from(e: crate::groups::GroupError) -> Self {
        use crate::groups::GroupError as G;
        match e {
            G::Storage(e) => ApiError::from(e),
            G::OffsetOutOfRange { requested, start, end } => {
                ApiError::from(cairn_storage::Error::OffsetOutOfRange { requested, start, end })
            }
            G::GroupNotFound(_) => ApiError::new(ErrorCode::GroupNotFound, e.to_string()),
            G::TopicNotFound(_) => ApiError::new(ErrorCode::TopicNotFound, e.to_string()),
            G::PartitionNotFound { .. } => ApiError::new(ErrorCode::PartitionNotFound, e.to_string()),
            G::BadRequest(_) => ApiError::bad_request(e.to_string()),
            G::InvalidName(_) => ApiError::new(ErrorCode::InvalidName, e.to_string()),
        }
    }
}

impl From<ClientBatchError> for ApiError {
    fn from(e: ClientBatchError) -> Self {
        match e {
            ClientBatchError::Invalid(_) => ApiError::bad_request(e.to_string()),
            ClientBatchError::MessageTooLarge { .. } => ApiError::new(ErrorCode::MessageTooLarge, e.to_string()),
        }
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage::Error as E;
    use std::path::PathBuf;

    fn mapped(e: E) -> (u16, Value) {
        let a = ApiError::from(e);
        (a.status().as_u16(), a.body())
    }

    #[test]
    fn offset_out_of_range_carries_the_bounds() {
        let (status, body) = mapped(E::OffsetOutOfRange { requested: 9, start: 2, end: 5 });
        assert_eq!(status, 416);
        assert_eq!(body["code"], "offset_out_of_range");
        assert_eq!(body["start_offset"], 2);
        assert_eq!(body["end_offset"], 5);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    #[test]
    fn corruption_names_file_and_position() {
        let (status, body) = mapped(E::Corruption {
            file: PathBuf::from("/d/0/00000000000000000000.log"),
            position: 77,
            reason: "crc".into(),
        });
        assert_eq!(status, 500);
        assert_eq!(body["code"], "data_corrupted");
        assert_eq!(body["file"], "/d/0/00000000000000000000.log");
        assert_eq!(body["position"], 77);
    }

    #[test]
    fn every_storage_error_has_its_status() {
        let cases: Vec<(E, u16, &str)> = vec![
            (E::StorageFull { op: "write", path: PathBuf::from("x") }, 507, "insufficient_storage"),
            (E::TopicExists("t".into()), 409, "topic_exists"),
            (E::TopicNotFound("t".into()), 404, "topic_not_found"),
            (E::PartitionNotFound { topic: "t".into(), partition: 3 }, 404, "partition_not_found"),
            (E::InvalidName("$".into()), 400, "invalid_name"),
            (E::InvalidConfig("no".into()), 400, "bad_request"),
            (E::Closed, 503, "unavailable"),
            (E::Poisoned("t/0".into()), 500, "internal"),
        ];
        for (e, status, code) in cases {
            let (s, body) = mapped(e);
            assert_eq!((s, body["code"].as_str()), (status, Some(code)));
        }
    }

    #[test]
    fn group_errors() {
        use crate::groups::GroupError as G;
        let cases: Vec<(G, u16, &str)> = vec![
            (G::GroupNotFound("g".into()), 404, "group_not_found"),
            (G::TopicNotFound("t".into()), 404, "topic_not_found"),
            (G::PartitionNotFound { topic: "t".into(), partition: 1 }, 404, "partition_not_found"),
            (G::OffsetOutOfRange { requested: 9, start: 0, end: 1 }, 416, "offset_out_of_range"),
            (G::BadRequest("no".into()), 400, "bad_request"),
            (G::InvalidName("no".into()), 400, "invalid_name"),
            (G::Storage(E::StorageFull { op: "write", path: PathBuf::from("x") }), 507, "insufficient_storage"),
        ];
        for (e, status, code) in cases {
            let a = ApiError::from(e);
            assert_eq!((a.status().as_u16(), a.code.as_str()), (status, code));
        }
    }

    #[test]
    fn client_batch_errors() {
        let too_big = ApiError::from(ClientBatchError::MessageTooLarge { size: 10, max: 5 });
        assert_eq!((too_big.status().as_u16(), too_big.code.as_str()), (413, "message_too_large"));
        let bad = ApiError::from(ClientBatchError::Invalid(cairn_storage::BatchError::BadMagic(9)));
        assert_eq!(bad.status().as_u16(), 400);
    }
}
