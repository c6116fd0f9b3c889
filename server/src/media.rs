//! Media types: what a produce body is (`Content-Type`) and what a read reply should be
//! (`Accept`).

use std::borrow::Cow;

use axum::http::{header, HeaderMap};

use crate::error::{ApiError, ErrorCode};

/// `application/json`.
pub const JSON: &str = "application/json";
/// `application/vnd.cairn+json`, accepted as JSON.
pub const CAIRN_JSON: &str = "application/vnd.cairn+json";
/// Newline-delimited JSON.
pub const NDJSON: &str = "application/x-ndjson";
/// One raw message value.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// Record batches in the on-disk format.
pub const RECORDS: &str = "application/vnd.cairn.records";
/// Server-sent events.
pub const EVENT_STREAM: &str = "text/event-stream";

/// The kinds of produce body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Ndjson,
    OctetStream,
    Records,
}

/// The kinds of read reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Json,
    Ndjson,
    EventStream,
    Records,
}

/// The `type/subtype` of a media type, lower-cased, without parameters (borrowed when it is
/// lower case already, as it nearly always is: no allocation per request).
fn essence(value: &str) -> Cow<'_, str> {
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(essence.to_ascii_lowercase())
    } else {
        Cow::Borrowed(essence)
    }
}

/// Whether a JSON body's `Content-Type` is acceptable: absent (JSON is the default) or a JSON
/// type; otherwise `415 unsupported_media_type` (curl users: `-H 'content-type: application/json'`).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::CONTENT_TYPE) {
        None => Ok(()),
        Some(v) => match essence(v.to_str().unwrap_or("")).as_ref() {
            JSON | CAIRN_JSON => Ok(()),
            other => Err(unsupported(other, "application/json")),
        },
    }
}

/// The kind of a produce body; a missing `Content-Type` means JSON.
pub fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Json);
    };
    match essence(v.to_str().unwrap_or("")).as_ref() {
        JSON | CAIRN_JSON => Ok(BodyKind::Json),
        NDJSON | "application/ndjson" | "application/jsonl" => Ok(BodyKind::Ndjson),
        OCTET_STREAM => Ok(BodyKind::OctetStream),
        RECORDS => Ok(BodyKind::Records),
        other => Err(unsupported(
            other,
            "application/json, application/x-ndjson, application/octet-stream or application/vnd.cairn.records",
        )),
    }
}

fn unsupported(got: &str, want: &str) -> ApiError {
    ApiError::new(ErrorCode::UnsupportedMediaType, format!("unsupported content type {got:?}: use {want}"))
}

/// The reply format a read asked for: the first type of `Accept` that we serve, in the
/// client's order (q-values are not weighed); JSON by default.
pub fn reply_kind(headers: &HeaderMap) -> ReplyKind {
    let accept = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok());
    for value in accept {
        for item in value.split(',') {
            match essence(item).as_ref() {
                JSON | CAIRN_JSON => return ReplyKind::Json,
                NDJSON | "application/ndjson" | "application/jsonl" => return ReplyKind::Ndjson,
                EVENT_STREAM => return ReplyKind::EventStream,
                RECORDS => return ReplyKind::Records,
                _ => {}
            }
        }
    }
    ReplyKind::Json
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn body_kinds() {
        assert_eq!(body_kind(&HeaderMap::new()).unwrap(), BodyKind::Json);
        assert_eq!(body_kind(&with(header::CONTENT_TYPE, "application/json; charset=utf-8")).unwrap(), BodyKind::Json);
        assert_eq!(body_kind(&with(header::CONTENT_TYPE, "Application/X-NDJSON")).unwrap(), BodyKind::Ndjson);
        assert_eq!(body_kind(&with(header::CONTENT_TYPE, RECORDS)).unwrap(), BodyKind::Records);
        let e = body_kind(&with(header::CONTENT_TYPE, "text/plain")).unwrap_err();
        assert_eq!(e.status().as_u16(), 415);
        assert!(require_json(&with(header::CONTENT_TYPE, "text/csv")).is_err());
    }

    #[test]
    fn reply_kinds() {
        assert_eq!(reply_kind(&HeaderMap::new()), ReplyKind::Json);
        assert_eq!(reply_kind(&with(header::ACCEPT, "*/*")), ReplyKind::Json);
        assert_eq!(reply_kind(&with(header::ACCEPT, "text/event-stream")), ReplyKind::EventStream);
        assert_eq!(reply_kind(&with(header::ACCEPT, "text/html, application/x-ndjson;q=0.9")), ReplyKind::Ndjson);
        assert_eq!(reply_kind(&with(header::ACCEPT, RECORDS)), ReplyKind::Records);
    }
}
