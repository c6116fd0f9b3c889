//! Messages: [`Message`] as read or leased from the log, [`NewMessage`] to produce.
//!
//! Keys, values and header values are bytes ([`Bytes`]; values decoded from raw batches
//! share the reply buffer, no copy). The JSON paths of the API carry keys and header values
//! as strings; the raw record path carries bytes as they are.
//!
//! ```
//! let m = cairn_consumer::NewMessage::new("hello").with_key("user-42").with_header("trace", "abc");
//! assert_eq!(m.size(), 5 + 7 + 5 + 3);
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;

use crate::error::{Error, Result};

/// One stored message of a partition.
///
/// ```
/// use cairn_consumer::Message;
///
/// let m = Message { partition: 0, offset: 7, timestamp: 1_764_000_000_000,
///                   key: Some("user-42".into()), value: Some("{\"n\":1}".into()),
///                   headers: vec![("trace".into(), "abc".into())] };
/// assert_eq!(m.key_str(), Some("user-42"));
/// assert_eq!(m.header_str("trace"), Some("abc"));
/// let v: serde_json::Value = m.json().unwrap();
/// assert_eq!(v["n"], 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Partition the message is stored in.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// Append time, ms since the Unix epoch (assigned by the server).
    pub timestamp: i64,
    /// `None`: no key.
    pub key: Option<Bytes>,
    /// `None`: a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers in stored order.
    pub headers: Vec<(String, Bytes)>,
}

impl Message {
    /// The key as UTF-8 text, if present and valid.
    ///
    /// ```
    /// # let m = cairn_consumer::Message { partition: 0, offset: 0, timestamp: 0, key: None, value: None, headers: vec![] };
    /// assert_eq!(m.key_str(), None);
    /// ```
    pub fn key_str(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value as UTF-8 text, if present and valid.
    ///
    /// ```
    /// # let m = cairn_consumer::Message { partition: 0, offset: 0, timestamp: 0, key: None, value: Some("hi".into()), headers: vec![] };
    /// assert_eq!(m.value_str(), Some("hi"));
    /// ```
    pub fn value_str(&self) -> Option<&str> {
        self.value.as_deref().and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value parsed as JSON into `T` (a null value is an error).
    ///
    /// ```
    /// # let m = cairn_consumer::Message { partition: 0, offset: 0, timestamp: 0, key: None, value: Some("[1,2]".into()), headers: vec![] };
    /// let v: Vec<u32> = m.json().unwrap();
    /// assert_eq!(v, [1, 2]);
    /// ```
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let v = self.value.as_deref().ok_or_else(|| Error::InvalidInput("the message has a null value".into()))?;
        serde_json::from_slice(v).map_err(|e| Error::InvalidInput(format!("value is not the expected JSON: {e}")))
    }

    /// The first header called `name`.
    ///
    /// ```
    /// # let m = cairn_consumer::Message { partition: 0, offset: 0, timestamp: 0, key: None, value: None, headers: vec![("a".into(), "1".into())] };
    /// assert_eq!(m.header("a"), Some(&b"1"[..]));
    /// ```
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| &v[..])
    }

    /// The first header called `name`, as UTF-8 text.
    ///
    /// ```
    /// # let m = cairn_consumer::Message { partition: 0, offset: 0, timestamp: 0, key: None, value: None, headers: vec![("a".into(), "1".into())] };
    /// assert_eq!(m.header_str("a"), Some("1"));
    /// ```
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// A message to produce.
///
/// ```
/// use cairn_consumer::NewMessage;
///
/// let m = NewMessage::new("payload").with_key("user-42").with_header("trace", "abc").to_partition(0);
/// assert_eq!(m.partition, Some(0));
/// let j = NewMessage::json(&serde_json::json!({"n": 1})).unwrap();
/// assert_eq!(j.value.as_deref(), Some(&b"{\"n\":1}"[..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// Key: chooses the partition by hash when `partition` is `None`.
    pub key: Option<Bytes>,
    /// Value bytes; `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers. The JSON path needs UTF-8 values; the raw path takes any bytes.
    pub headers: Vec<(String, Bytes)>,
    /// Explicit partition; `None` lets the server choose (key hash, else spread).
    pub partition: Option<u32>,
}

impl NewMessage {
    /// A message with this value.
    ///
    /// ```
    /// let m = cairn_consumer::NewMessage::new(vec![1u8, 2, 3]);
    /// assert_eq!(m.value.unwrap().len(), 3);
    /// ```
    pub fn new(value: impl Into<Bytes>) -> Self {
        NewMessage { value: Some(value.into()), ..Self::default() }
    }

    /// A message whose value is `value` serialised as compact JSON.
    ///
    /// ```
    /// let m = cairn_consumer::NewMessage::json(&vec![1, 2]).unwrap();
    /// assert_eq!(m.value.as_deref(), Some(&b"[1,2]"[..]));
    /// ```
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self> {
        let v = serde_json::to_vec(value).map_err(|e| Error::InvalidInput(format!("value does not serialise: {e}")))?;
        Ok(Self::new(v))
    }

    /// A null-valued message (a tombstone for `key` on compacted topics).
    ///
    /// ```
    /// let m = cairn_consumer::NewMessage::tombstone("user-42");
    /// assert!(m.value.is_none());
    /// ```
    pub fn tombstone(key: impl Into<Bytes>) -> Self {
        NewMessage { key: Some(key.into()), ..Self::default() }
    }

    /// Sets the key.
    ///
    /// ```
    /// let m = cairn_consumer::NewMessage::new("v").with_key("k");
    /// assert_eq!(m.key.as_deref(), Some(&b"k"[..]));
    /// ```
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    ///
    /// ```
    /// let m = cairn_consumer::NewMessage::new("v").with_header("trace", "abc");
    /// assert_eq!(m.headers.len(), 1);
    /// ```
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the message to this partition.
    ///
    /// ```
    /// let m = cairn_consumer::NewMessage::new("v").to_partition(2);
    /// assert_eq!(m.partition, Some(2));
    /// ```
    pub fn to_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Bytes of key, value and headers (what `max_message_bytes` limits).
    ///
    /// ```
    /// assert_eq!(cairn_consumer::NewMessage::new("abc").with_key("k").size(), 4);
    /// ```
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }
}

/// A message as the JSON replies show it (reads and group fetches).
#[derive(Debug, Deserialize)]
pub(crate) struct WireMessage {
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<String>,
    pub key_base64: Option<String>,
    pub value: Option<Box<serde_json::value::RawValue>>,
    pub value_base64: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Group fetches only.
    pub delivery: Option<u32>,
}

fn b64(field: &str, s: &str) -> Result<Bytes> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Bytes::from)
        .map_err(|e| Error::Protocol(format!("{field} is not base64: {e}")))
}

impl WireMessage {
    /// Converts to a [`Message`]. A JSON `value` becomes its text as sent (the server sends
    /// stored JSON compacted, so non-compact JSON values may differ in whitespace from what
    /// was produced; the raw read path is byte-exact).
    pub(crate) fn into_message(self) -> Result<Message> {
        let key = match (self.key, self.key_base64) {
            (Some(k), _) => Some(Bytes::from(k)),
            (None, Some(k)) => Some(b64("key_base64", &k)?),
            (None, None) => None,
        };
        let value = match (self.value, self.value_base64) {
            (_, Some(v)) => Some(b64("value_base64", &v)?),
            (Some(raw), None) => Some(Bytes::from(raw.get().to_owned())),
            (None, None) => None,
        };
        let headers = self.headers.into_iter().map(|(n, v)| (n, Bytes::from(v))).collect();
        Ok(Message { partition: self.partition, offset: self.offset, timestamp: self.timestamp, key, value, headers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_messages_decode() {
        let w: WireMessage = serde_json::from_str(
            r#"{"partition":1,"offset":5,"timestamp":9,"key":null,"key_base64":"/w==","value_base64":"aGk=","headers":{"a":"b"},"delivery":2}"#,
        )
        .unwrap();
        assert_eq!(w.delivery, Some(2));
        let m = w.into_message().unwrap();
        assert_eq!(m.key.as_deref(), Some(&[0xff][..]));
        assert_eq!(m.value_str(), Some("hi"));
        let w: WireMessage =
            serde_json::from_str(r#"{"partition":0,"offset":0,"timestamp":0,"key":"k","value":{"x":[1, 2]}}"#).unwrap();
        assert_eq!(w.into_message().unwrap().value_str(), Some(r#"{"x":[1, 2]}"#));
        let w: WireMessage =
            serde_json::from_str(r#"{"partition":0,"offset":0,"timestamp":0,"key":"k","value":null}"#).unwrap();
        assert_eq!(w.into_message().unwrap().value, None);
    }
}
