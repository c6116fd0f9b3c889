//! A small HTTP client over the contract: whole-body responses and typed helpers.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use crate::server::Cairnd;

/// Bound on any single request made through these helpers (a hang fails the test).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A response read to its end.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body parsed as JSON (panics with the body text if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: body is not JSON ({e}): {:?}", self.status, self.text()))
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header value as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of `Content-Type` without parameters, lower-case ("" if absent).
    pub fn media_type(&self) -> String {
        self.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
    }

    /// A header parsed as an unsigned integer (panics if absent or not a number).
    pub fn header_u64(&self, name: &str) -> u64 {
        let v = self.header(name).unwrap_or_else(|| panic!("missing header {name}; headers: {:?}", self.headers));
        v.trim().parse().unwrap_or_else(|e| panic!("header {name}: {v:?}: {e}"))
    }

    /// Asserts the status, printing the body on mismatch.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self
    }

    /// Asserts a JSON error reply: the status, `Content-Type: application/json`, a `code`
    /// equal to `code` and a non-empty `message`. Returns the body.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        self.expect_error_in(&[status], code)
    }

    /// As [`Resp::expect_error`] where the contract allows any of `statuses` (e.g. 400 or
    /// 422 for a body that parses but breaks a rule).
    #[track_caller]
    pub fn expect_error_in(&self, statuses: &[u16], code: &str) -> Value {
        assert!(
            statuses.contains(&self.status),
            "expected status in {statuses:?} with code {code:?}, got {}: {}",
            self.status,
            self.text()
        );
        assert_eq!(self.media_type(), "application/json", "error content type; body: {}", self.text());
        let body = self.json();
        assert_eq!(body["code"], json!(code), "error code; body: {body}");
        let message = body["message"].as_str().unwrap_or_else(|| panic!("error without a message: {body}"));
        assert!(!message.trim().is_empty(), "empty error message: {body}");
        body
    }
}

/// Sends a request and reads the whole reply (bounded by [`REQUEST_TIMEOUT`]).
pub async fn send(rb: RequestBuilder) -> Resp {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let r = rb.send().await.unwrap_or_else(|e| panic!("request failed: {e:?}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.unwrap_or_else(|e| panic!("reading reply body: {e:?}"));
        Resp { status, headers, body }
    })
    .await
    .unwrap_or_else(|_| panic!("request did not complete within {REQUEST_TIMEOUT:?}"))
}

/// Percent-encodes a path segment or query value (everything outside the unreserved set).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Content type of the raw record batch format.
pub const RECORDS: &str = "application/vnd.cairn.records";
/// Content type of newline-delimited JSON.
pub const NDJSON: &str = "application/x-ndjson";
/// Content type of server-sent events.
pub const SSE: &str = "text/event-stream";

impl Cairnd {
    /// A request builder for `method` on `path`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client().request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Resp {
        send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        send(self.request(Method::DELETE, path)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Resp {
        send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Resp {
        send(self.request(Method::PATCH, path).json(body)).await
    }

    /// POST with an explicit content type and raw body.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Resp {
        send(self.request(Method::POST, path).header("content-type", content_type).body(body)).await
    }

    /// `POST /v1/topics`; returns the reply unchecked.
    pub async fn create_topic_raw(&self, body: &Value) -> Resp {
        self.post_json("/v1/topics", body).await
    }

    /// Creates a topic with `name` and extra config fields (an object); asserts `201`.
    /// Returns the description.
    pub async fn create_topic(&self, name: &str, config: Value) -> Value {
        let mut body = if config.is_null() { json!({}) } else { config };
        body["name"] = json!(name);
        let r = self.create_topic_raw(&body).await;
        r.expect_status(201);
        r.json()
    }

    /// `GET /v1/topics/{topic}`; asserts `200`, returns the description.
    pub async fn describe(&self, topic: &str) -> Value {
        let r = self.get(&format!("/v1/topics/{}", enc(topic))).await;
        r.expect_status(200);
        r.json()
    }

    /// The partition entry of a topic description.
    pub async fn partition_info(&self, topic: &str, p: u32) -> Value {
        let d = self.describe(topic).await;
        d["partitions"]
            .as_array()
            .and_then(|ps| ps.iter().find(|x| x["partition"] == json!(p)).cloned())
            .unwrap_or_else(|| panic!("partition {p} not in description {d}"))
    }

    /// `end_offset` of a partition from the topic description.
    pub async fn end_offset(&self, topic: &str, p: u32) -> u64 {
        let info = self.partition_info(topic, p).await;
        info["end_offset"].as_u64().unwrap_or_else(|| panic!("no end_offset in {info}"))
    }

    /// `POST /v1/topics/{topic}/messages` with a JSON body `{"messages": messages}`;
    /// returns the reply unchecked.
    pub async fn produce_raw(&self, topic: &str, messages: Value) -> Resp {
        self.post_json(&format!("/v1/topics/{}/messages", enc(topic)), &json!({ "messages": messages })).await
    }

    /// Produces JSON messages; asserts `200` and returns the `offsets` array.
    pub async fn produce(&self, topic: &str, messages: Value) -> Vec<Value> {
        let r = self.produce_raw(topic, messages).await;
        r.expect_status(200);
        let body = r.json();
        body["offsets"].as_array().unwrap_or_else(|| panic!("no offsets array in {body}")).clone()
    }

    /// Produces `n` messages with values `"<prefix>-<i>"` to partition `p`; returns their offsets.
    pub async fn produce_n(&self, topic: &str, p: u32, n: usize, prefix: &str) -> Vec<u64> {
        let msgs: Vec<Value> = (0..n).map(|i| json!({"value": format!("{prefix}-{i}"), "partition": p})).collect();
        self.produce(topic, Value::Array(msgs)).await.iter().map(|o| o["offset"].as_u64().unwrap()).collect()
    }

    /// `GET /v1/topics/{topic}/partitions/{p}/messages?<query>`, unchecked.
    pub async fn read_raw(&self, topic: &str, p: u32, query: &str) -> Resp {
        self.get(&read_path(topic, p, query)).await
    }

    /// A JSON read; asserts `200` and `application/json`, returns the body.
    pub async fn read(&self, topic: &str, p: u32, query: &str) -> Value {
        let r = self.read_raw(topic, p, query).await;
        r.expect_status(200);
        assert_eq!(r.media_type(), "application/json", "read reply content type");
        r.json()
    }

    /// Reads every message of a partition from offset 0 to its current end, following
    /// `next_offset` (JSON, `encoding=base64`). Returns the message objects.
    pub async fn read_all(&self, topic: &str, p: u32) -> Vec<Value> {
        let end = self.end_offset(topic, p).await;
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < end {
            let body = self.read(topic, p, &format!("offset={offset}&max_messages=10000&encoding=base64")).await;
            let msgs = body["messages"].as_array().unwrap();
            assert!(!msgs.is_empty(), "read at {offset} < end {end} returned nothing: {body}");
            out.extend(msgs.iter().cloned());
            let next = body["next_offset"].as_u64().unwrap();
            assert!(next > offset, "next_offset {next} did not advance past {offset}");
            offset = next;
        }
        out
    }
}

/// The path of a stateless read.
pub fn read_path(topic: &str, p: u32, query: &str) -> String {
    if query.is_empty() {
        format!("/v1/topics/{}/partitions/{p}/messages", enc(topic))
    } else {
        format!("/v1/topics/{}/partitions/{p}/messages?{query}", enc(topic))
    }
}
