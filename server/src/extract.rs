//! Request extraction with contract-shaped errors.
//!
//! axum's own extractors reject with plain-text bodies; these wrappers turn every rejection
//! into an [`ApiError`] (`400 bad_request`, `413 payload_too_large`) so that no malformed
//! request ever gets anything but `{"code","message"}`. [`decimal`] is the one parser of the
//! integers written in headers, paths and query strings.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::header;
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::{value::MapAccessDeserializer, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::{ApiError, ErrorCode};

/// A decimal integer as a client writes one in a header, a path or a query string: ASCII
/// digits, with a leading `-` for signed types. `None` for anything else, including a leading
/// `+`, which Rust's `FromStr` for integers accepts and the contract does not.
pub fn decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.starts_with('+') {
        return None;
    }
    text.parse().ok()
}

/// Query parameters, `400 bad_request` if they do not parse.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))
    }
}

/// Path parameters, `400 bad_request` if they do not parse.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, format!("request body exceeds the limit of {limit} bytes"))
        .with("limit_bytes", limit)
}

/// Reads a whole request body of at most `limit` bytes (`413 payload_too_large` beyond,
/// refused from `Content-Length` before reading when it is declared).
pub async fn read_body(parts: &Parts, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Parses a JSON body into `T`, `400 bad_request` naming what is wrong. The body must be a
/// JSON object (see [`Object`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice::<Object<T>>(bytes)
        .map(|Object(t)| t)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A `T` that must be written as a JSON object.
///
/// serde's derived struct impls also accept a JSON array of the fields in declaration order
/// (`["orders", [[0, 42]]]` for `{"topic": "orders", "offsets": [{"partition": 0, "offset": 42}]}`),
/// which would let a body of the wrong type through as a valid request. Deserializing through
/// `Object` asks for a map only, so an array (or anything else) is `invalid type`.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// `deserialize_with` for a field holding an array of objects (each element as [`Object`]).
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of JSON objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(Object(t)) = seq.next_element::<Object<T>>()? {
                out.push(t);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimals_are_digits_with_an_optional_minus() {
        assert_eq!(decimal::<u64>("0"), Some(0));
        assert_eq!(decimal::<u64>("18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal::<i64>("-5"), Some(-5));
        for bad in ["", "+1", "+0", "-1", "1.0", " 1", "1e3", "0x1", "18446744073709551616", "++1", "+-1"] {
            assert_eq!(decimal::<u64>(bad), None, "{bad:?}");
        }
        assert_eq!(decimal::<i64>("+5"), None);
    }
}
