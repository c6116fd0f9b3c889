//! JSON text helpers shared by produce and read.
//!
//! A JSON `value` is stored as its compact text (no whitespace outside strings), so the same
//! document always stores the same bytes; and a stored value that is valid JSON is embedded
//! in replies as compact text, so an NDJSON line or an SSE `data:` line never holds a newline.

use std::borrow::Cow;

use serde_json::value::RawValue;

/// `text` without whitespace outside strings. `text` must be valid JSON; borrowed when it
/// already is compact (the common case).
pub fn minify(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(is_json_whitespace) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !(c.is_ascii() && is_json_whitespace(c as u8)) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// The compact JSON text of `bytes` if they hold exactly one valid JSON document.
pub fn as_json(bytes: &[u8]) -> Option<Cow<'_, str>> {
    let raw: &RawValue = serde_json::from_slice(bytes).ok()?;
    Some(minify(raw.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_strings() {
        assert_eq!(minify(r#"{"a": 1, "b" : [1, 2]}"#), r#"{"a":1,"b":[1,2]}"#);
        assert_eq!(minify(r#"{ "s": "a b\" c\\" }"#), r#"{"s":"a b\" c\\"}"#);
        assert!(matches!(minify(r#"{"a":"x y"}"#), Cow::Owned(_)));
        assert!(matches!(minify(r#"{"a":1}"#), Cow::Borrowed(_)));
        assert_eq!(minify("\n[\t\"ü  ö\" ]\r\n"), "[\"ü  ö\"]");
    }

    #[test]
    fn as_json_accepts_only_documents() {
        assert_eq!(as_json(b" {\"a\" : 1}\n").as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(as_json(b"42").as_deref(), Some("42"));
        assert_eq!(as_json(b"hello"), None);
        assert_eq!(as_json(b"{\"a\":1} x"), None);
        assert_eq!(as_json(&[0xff, 0xfe]), None);
        assert_eq!(as_json(b""), None);
    }
}
