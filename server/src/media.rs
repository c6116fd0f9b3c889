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
    require_identity(headers)?;
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
    require_identity(headers)?;
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

/// Whether the body comes without a content coding (no `Content-Encoding`, or `identity`): the
/// server decodes none, so a compressed body is `415 unsupported_media_type` (as HTTP says for
/// an unsupported content coding) rather than a puzzling parse error. Record batches carry
/// their own zstd compression inside the format.
fn require_identity(headers: &HeaderMap) -> Result<(), ApiError> {
    for v in headers.get_all(header::CONTENT_ENCODING) {
        let text = v.to_str().unwrap_or("?");
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !coding.eq_ignore_ascii_case("identity") {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!("unsupported content encoding {coding:?}: send the body uncompressed"),
                ));
            }
        }
    }
    Ok(())
}

fn unsupported(got: &str, want: &str) -> ApiError {
    ApiError::new(ErrorCode::UnsupportedMediaType, format!("unsupported content type {got:?}: use {want}"))
}

/// The reply format a read asked for: of the types in `Accept` that we serve, the one with
/// the highest `q` (ties: the first listed; `q=0` means "not this one"); a wildcard
/// (`*/*`, `application/*`) stands for JSON and loses ties to a named type. JSON by default,
/// also when nothing listed is served.
pub fn reply_kind(headers: &HeaderMap) -> ReplyKind {
    // (q in thousandths, named type, kind); the best so far.
    let mut best: Option<(u16, bool, ReplyKind)> = None;
    let accept = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok());
    for item in accept.flat_map(|v| v.split(',')) {
        let (named, kind) = match essence(item).as_ref() {
            JSON | CAIRN_JSON => (true, ReplyKind::Json),
            NDJSON | "application/ndjson" | "application/jsonl" => (true, ReplyKind::Ndjson),
            EVENT_STREAM => (true, ReplyKind::EventStream),
            RECORDS => (true, ReplyKind::Records),
            "*/*" | "application/*" => (false, ReplyKind::Json),
            _ => continue,
        };
        let q = quality(item);
        if q > 0 && best.is_none_or(|(bq, bnamed, _)| q > bq || (q == bq && named && !bnamed)) {
            best = Some((q, named, kind));
        }
    }
    best.map_or(ReplyKind::Json, |(_, _, kind)| kind)
}

/// The `q` parameter of one `Accept` item in thousandths (1000 when absent or unreadable).
fn quality(item: &str) -> u16 {
    item.split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
        .and_then(|(_, v)| v.trim().parse::<f32>().ok())
        .filter(|q| (0.0..=1.0).contains(q))
        .map_or(1000, |q| (q * 1000.0).round() as u16)
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
        // A content coding other than identity is refused whatever the type.
        assert_eq!(body_kind(&with(header::CONTENT_ENCODING, "gzip")).unwrap_err().status().as_u16(), 415);
        assert_eq!(require_json(&with(header::CONTENT_ENCODING, "identity, br")).unwrap_err().status().as_u16(), 415);
        assert!(require_json(&with(header::CONTENT_ENCODING, "Identity")).is_ok());
    }

    #[test]
    fn reply_kinds() {
        assert_eq!(reply_kind(&HeaderMap::new()), ReplyKind::Json);
        assert_eq!(reply_kind(&with(header::ACCEPT, "*/*")), ReplyKind::Json);
        assert_eq!(reply_kind(&with(header::ACCEPT, "text/event-stream")), ReplyKind::EventStream);
        assert_eq!(reply_kind(&with(header::ACCEPT, "text/html, application/x-ndjson;q=0.9")), ReplyKind::Ndjson);
        assert_eq!(reply_kind(&with(header::ACCEPT, RECORDS)), ReplyKind::Records);
        // q-values are weighed; q=0 refuses a type; named types win ties over wildcards.
        let ndjson_low = "application/x-ndjson;q=0.1, application/json";
        assert_eq!(reply_kind(&with(header::ACCEPT, ndjson_low)), ReplyKind::Json);
        assert_eq!(
            reply_kind(&with(header::ACCEPT, "application/json;q=0.5, text/event-stream")),
            ReplyKind::EventStream
        );
        assert_eq!(
            reply_kind(&with(header::ACCEPT, "text/event-stream;q=0, application/x-ndjson;q=0.2")),
            ReplyKind::Ndjson
        );
        assert_eq!(reply_kind(&with(header::ACCEPT, "*/*, application/x-ndjson")), ReplyKind::Ndjson);
        assert_eq!(reply_kind(&with(header::ACCEPT, "application/x-ndjson;q=0.5, */*")), ReplyKind::Json);
        assert_eq!(reply_kind(&with(header::ACCEPT, "text/event-stream;q=0")), ReplyKind::Json);
        assert_eq!(reply_kind(&with(header::ACCEPT, "application/x-ndjson; Q=1.0 ; charset=utf-8")), ReplyKind::Ndjson);
    }
}
