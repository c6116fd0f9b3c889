//! One stored record as a message JSON object, written straight into the reply buffer:
//! `{"partition","offset","timestamp","key","value" | "value_base64","headers"}`.
//!
//! `key` is the key as a string (`null` when absent; a key that is not UTF-8 is `null` with
//! `key_base64`). With `encoding=json`, `value` is the stored bytes as compact JSON where
//! they are valid JSON, else `value_base64` holds them; with `encoding=base64` it is always
//! `value_base64`. A null value (tombstone) is `"value": null`. The output never contains a
//! newline, so it can be an NDJSON line or an SSE `data:` line as is.

use std::io::Write as _;

use base64::Engine as _;
use cairn_storage::Record;

use crate::json_text;
use crate::read::query::Encoding;

fn string(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = base64::engine::general_purpose::STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

/// Appends the JSON object of `record` (of `partition`) to `out`.
pub fn message(out: &mut Vec<u8>, partition: u32, record: &Record<'_>, encoding: Encoding) {
    let _ = write!(
        out,
        "{{\"partition\":{partition},\"offset\":{},\"timestamp\":{},\"key\":",
        record.offset, record.timestamp
    );
    match record.key.map(std::str::from_utf8) {
        None => out.extend_from_slice(b"null"),
        Some(Ok(k)) => string(out, k),
        Some(Err(_)) => {
            out.extend_from_slice(b"null,\"key_base64\":");
            base64(out, record.key.unwrap_or_default());
        }
    }
    match (record.value, encoding) {
        (None, Encoding::Json) => out.extend_from_slice(b",\"value\":null"),
        (None, Encoding::Base64) => out.extend_from_slice(b",\"value\":null,\"value_base64\":null"),
        (Some(v), Encoding::Json) => match json_text::as_json(v) {
            Some(text) => {
                out.extend_from_slice(b",\"value\":");
                out.extend_from_slice(text.as_bytes());
            }
            None => {
                out.extend_from_slice(b",\"value_base64\":");
                base64(out, v);
            }
        },
        (Some(v), Encoding::Base64) => {
            out.extend_from_slice(b",\"value_base64\":");
            base64(out, v);
        }
    }
    out.extend_from_slice(b",\"headers\":{");
    for (i, (name, value)) in record.headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        string(out, &String::from_utf8_lossy(value));
    }
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn render(r: &Record<'_>, e: Encoding) -> Value {
        let mut out = Vec::new();
        message(&mut out, 3, r, e);
        assert!(!out.contains(&b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    fn rec<'a>(key: Option<&'a [u8]>, value: Option<&'a [u8]>) -> Record<'a> {
        Record { offset: 41, timestamp: 1_764_000_000_000, key, value, headers: vec![("trace", &b"abc"[..])] }
    }

    #[test]
    fn json_values_are_embedded() {
        let v = render(&rec(Some(b"user-42"), Some(b"{\"any\": \"json\"}")), Encoding::Json);
        assert_eq!(
            v,
            json!({"partition": 3, "offset": 41, "timestamp": 1_764_000_000_000i64, "key": "user-42",
                   "value": {"any": "json"}, "headers": {"trace": "abc"}})
        );
    }

    #[test]
    fn other_values_are_base64() {
        let v = render(&rec(None, Some(b"plain text")), Encoding::Json);
        assert_eq!(v["key"], Value::Null);
        assert_eq!(v["value_base64"], "cGxhaW4gdGV4dA==");
        assert!(v.get("value").is_none());
        let v = render(&rec(None, Some(b"{}")), Encoding::Base64);
        assert_eq!(v["value_base64"], "e30=");
    }

    #[test]
    fn tombstones_and_binary_keys() {
        let v = render(&rec(Some(&[0xff]), None), Encoding::Json);
        assert_eq!(v["value"], Value::Null);
        assert_eq!(v["key"], Value::Null);
        assert_eq!(v["key_base64"], "/w==");
    }
}
