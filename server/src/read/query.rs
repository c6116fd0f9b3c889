//! The read query string: where to start, how much to return, how long to wait, how to
//! encode values. Every value is checked here; anything malformed or out of bounds is a
//! `400 bad_request` naming the parameter.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::decimal;

/// Default `max_messages`.
pub const MAX_MESSAGES_DEFAULT: usize = 100;
/// Largest `max_messages`.
pub const MAX_MESSAGES_LIMIT: usize = 10_000;
/// Default `max_bytes`: 1 MiB.
pub const MAX_BYTES_DEFAULT: usize = 1024 * 1024;
/// Largest `max_bytes`: 64 MiB (the largest batch).
pub const MAX_BYTES_LIMIT: usize = cairn_storage::format::BATCH_BYTES_MAX;
/// Largest `wait_ms`.
pub const WAIT_MS_MAX: u64 = 30_000;

/// The query exactly as sent (all text, checked by [`ReadQuery::parse`]).
#[derive(Debug, Default, Deserialize)]
pub struct RawReadQuery {
    pub offset: Option<String>,
    pub from: Option<String>,
    pub timestamp: Option<String>,
    pub group: Option<String>,
    pub max_messages: Option<String>,
    pub max_bytes: Option<String>,
    pub wait_ms: Option<String>,
    pub min_messages: Option<String>,
    pub encoding: Option<String>,
}

/// Where a read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Offset(u64),
    Earliest,
    Latest,
    Timestamp(i64),
    Group(String),
    /// Nothing asked: the earliest offset (or, for SSE, after `Last-Event-ID`).
    Unspecified,
}

/// How message values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `value` as JSON where the bytes are valid JSON, else `value_base64`.
    Json,
    /// Always `value_base64`.
    Base64,
}

/// A checked read query.
#[derive(Debug, Clone)]
pub struct ReadQuery {
    pub start: Start,
    pub max_messages: usize,
    pub max_bytes: usize,
    pub wait: Duration,
    pub min_messages: u64,
    pub encoding: Encoding,
}

fn number<T: std::str::FromStr>(name: &str, value: &str, what: &str) -> ApiResult<T> {
    decimal(value.trim()).ok_or_else(|| ApiError::bad_request(format!("{name} must be {what}, got {value:?}")))
}

fn bounded(name: &str, value: Option<&str>, default: u64, min: u64, max: u64) -> ApiResult<u64> {
    let Some(v) = value else { return Ok(default) };
    let n: u64 = number(name, v, "a non-negative integer")?;
    if n < min || n > max {
        return Err(ApiError::bad_request(format!("{name} must be between {min} and {max}, got {n}")));
    }
    Ok(n)
}

impl ReadQuery {
    pub fn parse(raw: RawReadQuery) -> ApiResult<Self> {
        let mut starts = Vec::new();
        if let Some(v) = &raw.offset {
            starts.push(Start::Offset(number("offset", v, "a non-negative integer")?));
        }
        if let Some(v) = &raw.from {
            starts.push(match v.as_str() {
                "earliest" => Start::Earliest,
                "latest" => Start::Latest,
                other => return Err(ApiError::bad_request(format!("from must be earliest or latest, got {other:?}"))),
            });
        }
        if let Some(v) = &raw.timestamp {
            starts.push(Start::Timestamp(number("timestamp", v, "an integer (ms since the Unix epoch)")?));
        }
        if let Some(g) = raw.group {
            crate::names::check_user_name(&g)?;
            starts.push(Start::Group(g));
        }
        if starts.len() > 1 {
            return Err(ApiError::bad_request("give at most one of offset, from, timestamp and group"));
        }
        let start = starts.pop().unwrap_or(Start::Unspecified);
        let max_messages = bounded(
            "max_messages",
            raw.max_messages.as_deref(),
            MAX_MESSAGES_DEFAULT as u64,
            1,
            MAX_MESSAGES_LIMIT as u64,
        )? as usize;
        let max_bytes =
            bounded("max_bytes", raw.max_bytes.as_deref(), MAX_BYTES_DEFAULT as u64, 1, MAX_BYTES_LIMIT as u64)?
                as usize;
        let wait_ms = bounded("wait_ms", raw.wait_ms.as_deref(), 0, 0, WAIT_MS_MAX)?;
        let min_messages = bounded("min_messages", raw.min_messages.as_deref(), 1, 1, max_messages as u64)?;
        let encoding = match raw.encoding.as_deref() {
            None | Some("json") => Encoding::Json,
            Some("base64") => Encoding::Base64,
            Some(other) => {
                return Err(ApiError::bad_request(format!("encoding must be json or base64, got {other:?}")))
            }
        };
        Ok(ReadQuery { start, max_messages, max_bytes, wait: Duration::from_millis(wait_ms), min_messages, encoding })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> ApiResult<ReadQuery> {
        let mut raw = RawReadQuery::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "offset" => raw.offset = v,
                "from" => raw.from = v,
                "timestamp" => raw.timestamp = v,
                "group" => raw.group = v,
                "max_messages" => raw.max_messages = v,
                "max_bytes" => raw.max_bytes = v,
                "wait_ms" => raw.wait_ms = v,
                "min_messages" => raw.min_messages = v,
                "encoding" => raw.encoding = v,
                _ => unreachable!(),
            }
        }
        ReadQuery::parse(raw)
    }

    #[test]
    fn defaults() {
        let r = q(&[]).unwrap();
        assert_eq!(r.start, Start::Unspecified);
        assert_eq!((r.max_messages, r.max_bytes, r.wait, r.min_messages), (100, 1 << 20, Duration::ZERO, 1));
        assert_eq!(r.encoding, Encoding::Json);
    }

    #[test]
    fn starts() {
        assert_eq!(q(&[("offset", "42")]).unwrap().start, Start::Offset(42));
        assert_eq!(q(&[("from", "latest")]).unwrap().start, Start::Latest);
        assert_eq!(q(&[("timestamp", "1764000000000")]).unwrap().start, Start::Timestamp(1_764_000_000_000));
        assert_eq!(q(&[("group", "g")]).unwrap().start, Start::Group("g".into()));
    }

    #[test]
    fn bad_values() {
        for bad in [
            &[("offset", "-1")][..],
            &[("offset", "abc")],
            &[("offset", "")],
            &[("from", "middle")],
            &[("offset", "1"), ("from", "earliest")],
            &[("max_messages", "0")],
            &[("max_messages", "10001")],
            &[("wait_ms", "30001")],
            &[("max_bytes", "0")],
            &[("min_messages", "5"), ("max_messages", "2")],
            &[("encoding", "hex")],
            &[("group", "bad name")],
            // Rust's integer `FromStr` takes a leading '+'; the API does not.
            &[("offset", "+1")],
            &[("timestamp", "+1764000000000")],
            &[("max_messages", "+5")],
            &[("max_bytes", "+5")],
            &[("wait_ms", "+0")],
            &[("min_messages", "+1")],
        ] {
            let e = q(bad).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{bad:?}");
        }
    }

    mod hostile {
        use axum::extract::Query;
        use axum::http::Uri;
        use proptest::prelude::*;

        use super::super::*;

        fn param() -> impl Strategy<Value = Option<String>> {
            proptest::option::of(prop_oneof![
                ".{0,12}",
                "[0-9]{0,25}",
                "[-+]?[0-9]{1,5}",
                Just("earliest".to_string()),
                Just("latest".to_string()),
                Just("base64".to_string()),
            ])
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_parameters_parse_within_bounds_or_are_bad_requests(
                offset in param(), from in param(), timestamp in param(), group in param(),
                max_messages in param(), max_bytes in param(), wait_ms in param(), min_messages in param(),
                encoding in param(),
            ) {
                let raw = RawReadQuery {
                    offset, from, timestamp, group, max_messages, max_bytes, wait_ms, min_messages, encoding,
                };
                match ReadQuery::parse(raw) {
                    Ok(q) => {
                        prop_assert!((1..=MAX_MESSAGES_LIMIT).contains(&q.max_messages));
                        prop_assert!((1..=MAX_BYTES_LIMIT).contains(&q.max_bytes));
                        prop_assert!(q.wait <= Duration::from_millis(WAIT_MS_MAX));
                        prop_assert!(q.min_messages >= 1 && q.min_messages <= q.max_messages as u64);
                    }
                    Err(e) => prop_assert_eq!(e.status().as_u16(), 400, "{}", e),
                }
            }

            /// Whole query strings of arbitrary bytes, percent-encoded or not, through the
            /// same extraction the handler uses: never a panic.
            #[test]
            fn arbitrary_query_strings_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
                let mut query = String::new();
                for b in bytes {
                    if b.is_ascii_alphanumeric() || b"=&%+-._~".contains(&b) {
                        query.push(b as char);
                    } else {
                        query.push_str(&format!("%{b:02X}"));
                    }
                }
                let Ok(uri) = format!("/x?{query}").parse::<Uri>() else { return Ok(()) };
                if let Ok(Query(raw)) = Query::<RawReadQuery>::try_from_uri(&uri) {
                    if let Err(e) = ReadQuery::parse(raw) {
                        prop_assert_eq!(e.status().as_u16(), 400);
                    }
                }
            }
        }
    }
}
