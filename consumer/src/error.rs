//! The crate's one error type.
//!
//! Every non-2xx reply of `cairnd` carries `{"code", "message"}` (API.md, "Conventions");
//! it becomes [`Error::Api`] with the HTTP status, the code and the message, and any extra
//! fields of the body (e.g. `start_offset`/`end_offset` of `offset_out_of_range`) in
//! `details`. 4xx errors are the caller's to fix and never retried; connection errors and
//! 5xx are retried by [`crate::retry`] (see [`Error::is_retryable`]).
//!
//! ```
//! let e = cairn_consumer::Error::Closed;
//! assert!(!e.is_retryable());
//! assert_eq!(e.code(), None);
//! ```

use std::sync::Arc;

use cairn_storage::BatchError;

/// A `Result` with this crate's [`Error`].
///
/// ```
/// fn parse(n: &str) -> cairn_consumer::Result<u64> {
///     n.parse().map_err(|_| cairn_consumer::Error::InvalidInput(format!("not a number: {n}")))
/// }
/// assert!(parse("x").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed error returned by user code (handlers).
///
/// ```
/// let e: cairn_consumer::error::BoxError = "thumbnail failed".into();
/// assert_eq!(e.to_string(), "thumbnail failed");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to `cairnd`.
///
/// ```
/// use cairn_consumer::Error;
///
/// let e = Error::Api { status: 404, code: "topic_not_found".into(), message: "no topic x".into(),
///                      details: serde_json::Value::Null };
/// assert_eq!(e.code(), Some("topic_not_found"));
/// assert!(!e.is_retryable());
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server replied with a non-2xx status and a contract error body.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// The contract's snake_case error code (`topic_not_found`, `bad_request`, ...).
        code: String,
        /// Human-readable explanation from the server.
        message: String,
        /// The whole error body (extra fields such as `start_offset`), or `Null`.
        details: serde_json::Value,
    },
    /// Connecting, sending or receiving failed (including timeouts).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// A record batch in a raw read reply failed its checks (CRC, lengths, records).
    #[error("corrupt record batch at byte {position} of the reply: {source}")]
    Corrupt {
        /// Position of the batch within the reply body.
        position: usize,
        /// What was wrong.
        source: BatchError,
    },
    /// The server's reply did not have the expected shape.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// The caller's input cannot be sent (e.g. a non-UTF-8 key on the JSON path).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The same failure, shared by every message of a background batch.
    #[error("{0}")]
    Batch(Arc<Error>),
    /// A user handler failed (cursor consumers stop on the first failure).
    #[error("handler failed: {0}")]
    Handler(BoxError),
    /// The producer or consumer was closed.
    #[error("closed")]
    Closed,
}

impl Error {
    /// The contract error code of an [`Error::Api`] (also through [`Error::Batch`]).
    ///
    /// ```
    /// let e = cairn_consumer::Error::Protocol("odd reply".into());
    /// assert_eq!(e.code(), None);
    /// ```
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            Error::Batch(e) => e.code(),
            _ => None,
        }
    }

    /// The HTTP status of an [`Error::Api`] (also through [`Error::Batch`]).
    ///
    /// ```
    /// let e = cairn_consumer::Error::Api { status: 503, code: "unavailable".into(), message: "busy".into(),
    ///                                      details: serde_json::Value::Null };
    /// assert_eq!(e.status(), Some(503));
    /// ```
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::Batch(e) => e.status(),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed: transport errors and 5xx replies,
    /// except `data_corrupted` (the bytes on disk will not heal).
    ///
    /// ```
    /// let e = cairn_consumer::Error::Api { status: 503, code: "unavailable".into(), message: "busy".into(),
    ///                                      details: serde_json::Value::Null };
    /// assert!(e.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport(e) => !e.is_builder() && !e.is_decode(),
            Error::Api { status, code, .. } => *status >= 500 && code != "data_corrupted",
            Error::Batch(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Builds an [`Error::Api`] from a non-2xx status and its body. A body that is not the
/// contract's JSON keeps the status with code `unknown` and the body text as message.
pub(crate) fn api_error(status: u16, body: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct Body {
        code: String,
        #[serde(default)]
        message: String,
    }
    let details: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    match serde_json::from_value::<Body>(details.clone()) {
        Ok(b) => Error::Api { status, code: b.code, message: b.message, details },
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            Error::Api { status, code: "unknown".into(), message: text, details }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_contract_bodies() {
        let e = api_error(416, br#"{"code":"offset_out_of_range","message":"no","start_offset":3,"end_offset":9}"#);
        assert_eq!(e.code(), Some("offset_out_of_range"));
        assert_eq!(e.status(), Some(416));
        match &e {
            Error::Api { details, .. } => assert_eq!(details["end_offset"], 9),
            other => panic!("{other:?}"),
        }
        assert!(!e.is_retryable());
        let e = api_error(502, b"<html>bad gateway</html>");
        assert_eq!(e.code(), Some("unknown"));
        assert!(e.is_retryable());
        assert!(!api_error(500, br#"{"code":"data_corrupted","message":"x"}"#).is_retryable());
    }
}
