//! Parsing produce bodies into messages, for every content type but raw records.
//!
//! JSON (`{"messages": [...]}`), NDJSON (one message object per line) and octet-stream (the
//! body is one value; `Cairn-Key` / `Cairn-Partition` headers). Values given as JSON are
//! stored as their compact text; `value_base64` as the decoded bytes; neither means a null
//! value (a tombstone). A field the format does not know, in a message or at the top level
//! of a JSON body, is a `400 bad_request` naming it (nothing is appended). Parsing borrows
//! from the body where it can.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{ApiError, ApiResult};
use crate::extract::Object;
use crate::json_text;

/// Most messages one produce request may carry (a batch's record limit).
pub const MESSAGES_MAX: usize = cairn_storage::format::BATCH_RECORDS_MAX as usize;

/// One message to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub key: Option<Cow<'a, [u8]>>,
    /// `None`: a null value (tombstone).
    pub value: Option<Cow<'a, [u8]>>,
    pub headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)>,
    /// The partition asked for, not yet checked against the topic.
    pub partition: Option<u64>,
}

impl Message<'_> {
    /// The size `max_message_bytes` limits: key, value, header names and values.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }
}

/// A message as written in JSON. Unknown fields are refused: a misspelt `value` would
/// otherwise store a null value (on a compacted topic, a tombstone deleting the key).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonMessage<'a> {
    #[serde(default)]
    key: Option<String>,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    value_base64: Option<String>,
    #[serde(default, deserialize_with = "headers_in_order")]
    headers: Vec<(String, String)>,
    #[serde(default)]
    partition: Option<i64>,
}

/// The `application/json` body; unknown top-level fields are refused, as on every other body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody<'a> {
    #[serde(borrow, deserialize_with = "bounded_messages")]
    messages: Vec<JsonMessage<'a>>,
}

/// `headers`: an object of string values, kept in the order given; `null` is none.
fn headers_in_order<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of string header values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_option(V)
}

/// `messages`: an array of at most [`MESSAGES_MAX`] messages (refused while parsing, so a
/// huge array cannot make us allocate for all of it).
fn bounded_messages<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<JsonMessage<'de>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<JsonMessage<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of messages")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(Object(m)) = seq.next_element()? {
                if out.len() == MESSAGES_MAX {
                    return Err(de::Error::custom(format!("more than {MESSAGES_MAX} messages in one request")));
                }
                out.push(m);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

fn convert<'a>(m: JsonMessage<'a>, index: usize) -> ApiResult<Message<'a>> {
    let at = |what: String| ApiError::bad_request(format!("message {index}: {what}")).with("index", index);
    let value = match (m.value, m.value_base64) {
        (Some(_), Some(_)) => return Err(at("give value or value_base64, not both".into())),
        (Some(raw), None) => Some(match json_text::minify(raw.get()) {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }),
        (None, Some(b64)) => Some(Cow::Owned(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| at(format!("value_base64 is not valid base64: {e}")))?,
        )),
        (None, None) => None,
    };
    let partition = match m.partition {
        Some(p) if p < 0 => return Err(at(format!("partition must be >= 0, got {p}"))),
        p => p.map(|p| p as u64),
    };
    Ok(Message {
        key: m.key.map(|k| Cow::Owned(k.into_bytes())),
        value,
        headers: m.headers.into_iter().map(|(n, v)| (Cow::Owned(n), Cow::Owned(v.into_bytes()))).collect(),
        partition,
    })
}

fn empty() -> ApiError {
    ApiError::bad_request("the request holds no messages")
}

/// Parses an `application/json` produce body.
pub fn json(body: &[u8]) -> ApiResult<Vec<Message<'_>>> {
    let Object(parsed): Object<JsonBody<'_>> =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid produce body: {e}")))?;
    if parsed.messages.is_empty() {
        return Err(empty());
    }
    parsed.messages.into_iter().enumerate().map(|(i, m)| convert(m, i)).collect()
}

/// Parses an `application/x-ndjson` produce body: one message object per non-blank line.
pub fn ndjson(body: &[u8]) -> ApiResult<Vec<Message<'_>>> {
    let mut out = Vec::new();
    for (line_no, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if out.len() == MESSAGES_MAX {
            return Err(ApiError::bad_request(format!("more than {MESSAGES_MAX} messages in one request")));
        }
        let Object(m): Object<JsonMessage<'_>> = serde_json::from_slice(line)
            .map_err(|e| ApiError::bad_request(format!("line {}: invalid message: {e}", line_no + 1)))?;
        out.push(convert(m, out.len())?);
    }
    if out.is_empty() {
        return Err(empty());
    }
    Ok(out)
}

/// Builds the single message of an `application/octet-stream` produce.
pub fn octet_stream<'a>(body: &'a [u8], key: Option<&'a [u8]>, partition: Option<u64>) -> Message<'a> {
    Message { key: key.map(Cow::Borrowed), value: Some(Cow::Borrowed(body)), headers: Vec::new(), partition }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_messages() {
        let body = br#"{"messages": [
            {"key": "user-42", "value": {"any": "json"}, "headers": {"trace": "abc", "a": "b"}, "partition": 0},
            {"value_base64": "AP8="},
            {"key": null},
            {"value": "text"}
        ]}"#;
        let m = json(body).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].key.as_deref(), Some(&b"user-42"[..]));
        assert_eq!(m[0].value.as_deref(), Some(&br#"{"any":"json"}"#[..]));
        assert_eq!(m[0].headers[0].0, "trace");
        assert_eq!(m[0].headers[1].0, "a");
        assert_eq!(m[0].partition, Some(0));
        assert_eq!(m[1].value.as_deref(), Some(&[0u8, 0xff][..]));
        assert_eq!(m[2].value, None);
        assert_eq!(m[2].key, None);
        assert_eq!(m[3].value.as_deref(), Some(&b"\"text\""[..]));
    }

    #[test]
    fn json_errors_are_bad_requests() {
        for body in [
            &b"not json"[..],
            br#"{"messages": {}}"#,
            br#"{"messages": []}"#,
            br#"{}"#,
            br#"{"messages": [{"value": 1, "value_base64": "AA=="}]}"#,
            br#"{"messages": [{"value_base64": "%%%"}]}"#,
            br#"{"messages": [{"partition": -1}]}"#,
            br#"{"messages": [{"partition": "0"}]}"#,
            br#"{"messages": [{"partition": 1.5}]}"#,
            br#"{"messages": [{"key": 5}]}"#,
            br#"{"messages": [{"headers": {"a": 1}}]}"#,
            br#"{"messages": [{"headers": []}]}"#,
            br#"[1, 2]"#,
            // Arrays in place of objects (serde's structs would read them as the fields in order).
            br#"[[{"value": 1}]]"#,
            br#"{"messages": [["k", 1]]}"#,
        ] {
            let e = json(body).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        for (body, field) in [
            (&br#"{"messages": [{"vaule": 1}]}"#[..], "vaule"),
            (br#"{"messages": [{"key": "k", "value": 1}, {"key": "k", "Value": 2}]}"#, "Value"),
            (br#"{"messages": [{"value": 1}], "partition": 0}"#, "partition"),
        ] {
            let e = json(body).unwrap_err();
            assert_eq!(e.status().as_u16(), 400);
            assert!(e.message.contains(&format!("unknown field `{field}`")), "{}", e.message);
        }
        let e = ndjson(b"{\"value\": 1}\n{\"key\": \"k\", \"headerz\": {}}\n").unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert!(e.message.contains("line 2") && e.message.contains("unknown field `headerz`"), "{}", e.message);
    }

    #[test]
    fn ndjson_lines() {
        let body = b"{\"value\": 1}\n\n{\"key\":\"k\",\"value\":[1, 2]}\r\n";
        let m = ndjson(body).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].value.as_deref(), Some(&b"1"[..]));
        assert_eq!(m[1].value.as_deref(), Some(&b"[1,2]"[..]));
        let e = ndjson(b"{\"value\":1}\n{oops}\n").unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
        assert!(ndjson(b"\n \n").is_err());
    }

    #[test]
    fn sizes() {
        let m = octet_stream(b"hello", Some(b"k"), None);
        assert_eq!(m.size(), 6);
    }

    mod hostile {
        use proptest::prelude::*;

        use super::super::*;

        /// A parser's error must map to a 4xx reply.
        fn client_error(e: &ApiError) -> bool {
            e.status().is_client_error()
        }

        /// Fragments of produce bodies (see [`crate::test_support::jsonish`]).
        fn jsonish() -> impl Strategy<Value = String> {
            crate::test_support::jsonish(&[
                "\"messages\"",
                "\"value\"",
                "\"value_base64\"",
                "\"key\"",
                "\"headers\"",
                "\"partition\"",
                "\"\\ud800\"",
                "18446744073709551616",
            ])
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn json_bodies_of_arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Err(e) = json(&body) {
                    prop_assert!(client_error(&e), "{e}");
                }
            }

            #[test]
            fn ndjson_bodies_of_arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Err(e) = ndjson(&body) {
                    prop_assert!(client_error(&e), "{e}");
                }
            }

            #[test]
            fn jsonish_bodies_parse_or_are_bad_requests(body in jsonish()) {
                for result in [json(body.as_bytes()), ndjson(body.as_bytes())] {
                    match result {
                        Ok(msgs) => prop_assert!(!msgs.is_empty()),
                        Err(e) => prop_assert_eq!(e.status().as_u16(), 400, "{}", e),
                    }
                }
            }

            #[test]
            fn messages_with_arbitrary_fields_are_kept_or_refused_whole(
                key in proptest::option::of(".{0,20}"),
                value in proptest::option::of(".{0,20}"),
                b64 in proptest::option::of("[A-Za-z0-9+/=%]{0,12}"),
                partition in proptest::option::of(any::<i64>()),
                extra in proptest::option::of("[a-z_]{1,12}".prop_filter("an unknown field", |f| {
                    !["key", "value", "value_base64", "headers", "partition"].contains(&f.as_str())
                })),
            ) {
                let mut m = serde_json::Map::new();
                if let Some(f) = &extra { m.insert(f.clone(), serde_json::Value::Null); }
                if let Some(k) = &key { m.insert("key".into(), k.clone().into()); }
                if let Some(v) = &value { m.insert("value".into(), v.clone().into()); }
                if let Some(b) = &b64 { m.insert("value_base64".into(), b.clone().into()); }
                if let Some(p) = partition { m.insert("partition".into(), p.into()); }
                let body = serde_json::json!({ "messages": [m] }).to_string();
                match json(body.as_bytes()) {
                    Ok(msgs) => {
                        prop_assert_eq!(msgs.len(), 1);
                        prop_assert_eq!(msgs[0].key.as_deref(), key.as_deref().map(str::as_bytes));
                        prop_assert_eq!(msgs[0].partition, partition.map(|p| p as u64));
                        prop_assert!(partition.is_none_or(|p| p >= 0));
                        prop_assert!(value.is_none() || b64.is_none());
                        prop_assert!(extra.is_none(), "kept a message with an unknown field");
                    }
                    Err(e) => {
                        prop_assert_eq!(e.status().as_u16(), 400);
                        prop_assert!(
                            (value.is_some() && b64.is_some())
                                || partition.is_some_and(|p| p < 0)
                                || b64.is_some()
                                || extra.is_some(),
                            "refused a valid message: {}", e
                        );
                    }
                }
            }
        }

        /// Values are kept as raw JSON text (parsed without recursion), so a deeply nested
        /// value is stored as it is; nesting anywhere else, or unbalanced, is a bad request
        /// (serde_json's recursion limit), never a stack overflow.
        #[test]
        fn deep_nesting_never_overflows_the_stack() {
            let depth = 100_000;
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let body = format!("{{\"messages\": [{{\"value\": {nested}}}]}}");
            assert_eq!(json(body.as_bytes()).unwrap()[0].value.as_deref(), Some(nested.as_bytes()));
            let line = format!("{{\"value\": {nested}}}\n");
            assert_eq!(ndjson(line.as_bytes()).unwrap()[0].value.as_deref(), Some(nested.as_bytes()));
            let open = "[".repeat(depth);
            assert_eq!(json(open.as_bytes()).unwrap_err().status().as_u16(), 400);
            assert_eq!(ndjson(open.as_bytes()).unwrap_err().status().as_u16(), 400);
            for bad in [
                format!("{{\"value\": {open}}}"),
                format!("{{\"key\": {nested}}}"),
                format!("{{\"headers\": {{\"h\": {nested}}}}}"),
                format!("{{\"partition\": {nested}}}"),
            ] {
                let body = format!("{{\"messages\": [{bad}]}}");
                assert_eq!(json(body.as_bytes()).unwrap_err().status().as_u16(), 400);
                assert_eq!(ndjson(bad.as_bytes()).unwrap_err().status().as_u16(), 400);
            }
            let deep_list = format!("{{\"messages\": {nested}}}");
            assert_eq!(json(deep_list.as_bytes()).unwrap_err().status().as_u16(), 400);
        }
    }
}
