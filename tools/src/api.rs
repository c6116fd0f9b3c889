//! A thin HTTP client for the `cairnd` API (`shared/API.md`), as the CLI needs it.
//!
//! Replies are kept as `serde_json::Value`, so `--json` prints exactly what the server said
//! (fields a newer server adds are not lost) and tables pick the fields they show. Errors
//! keep the server's `{"code","message"}`. The `cairn-consumer` crate has a typed client, but
//! its descriptions are not serialisable and it has no compaction or server-sent-events
//! call; this module is the small part of it the CLI needs, with those added.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

/// Timeout of one request (a long-poll's wait is added to it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout for establishing a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Media type of raw record batches.
pub const RECORDS_MEDIA_TYPE: &str = "application/vnd.cairn.records";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No reply: the connection could not be made, broke, or timed out. One line: the
    /// server's address and the root cause (reqwest's own wrapping, which repeats the URL,
    /// is left out).
    #[error("{}", transport_text(.url, .cause))]
    Transport { url: String, cause: reqwest::Error },
    #[error("{code}: {message} (HTTP {status}){}", status_hint(*.status))]
    Status { status: u16, code: String, message: String },
    /// An `event: error` that ended an event stream (the stream's status was 200).
    #[error("{code}: {message} (the server ended the event stream)")]
    Stream { code: String, message: String },
    #[error("unexpected reply from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ApiError {
    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Status { code, .. } | ApiError::Stream { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Result of an API call.
pub type ApiResult<T> = Result<T, ApiError>;

/// A connection to one `cairnd`; cheap to clone (one shared connection pool).
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// A client for the server at `base` (`http://host:port` or `https://host:port`), sending
    /// `token` as a bearer token and trusting the PEM certificates in `ca_cert` as well as the
    /// web PKI roots.
    pub fn new(base: &str, token: Option<&str>, ca_cert: Option<&std::path::Path>) -> anyhow::Result<Api> {
        let base = base_url(base)?;
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| crate::outcome::UsageError("--token has characters a header cannot carry".into()))?;
            value.set_sensitive(true);
            http = http.default_headers(HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]));
        }
        if let Some(path) = ca_cert {
            let pem =
                std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read --ca-cert {}: {e}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build()?;
        Ok(Api { http, base })
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the default timeout plus `wait` (for long-polls).
    pub fn request(&self, method: Method, path: &str, wait: Duration) -> RequestBuilder {
        self.http.request(method, self.url(path)).timeout(REQUEST_TIMEOUT + wait)
    }

    /// A request without a total timeout (only the connect timeout): for replies that come
    /// when long work is done, such as a compaction's.
    pub fn request_untimed(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Sends a request; a non-2xx reply becomes [`ApiError::Status`].
    pub async fn send(&self, rb: RequestBuilder) -> ApiResult<Response> {
        let (client, request) = rb.build_split();
        let request = request.map_err(|cause| ApiError::Transport { url: self.base.clone(), cause })?;
        let url = request.url().to_string();
        let resp = client.execute(request).await.map_err(|cause| ApiError::Transport { url: url.clone(), cause })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        Err(status_error(status, &body))
    }

    /// Sends a request and parses its JSON reply (`Value::Null` for an empty body, e.g. 204).
    pub async fn call(&self, rb: RequestBuilder) -> ApiResult<Value> {
        let resp = self.send(rb).await?;
        let url = resp.url().to_string();
        let body = resp.bytes().await.map_err(|cause| ApiError::Transport { url: url.clone(), cause })?;
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::Protocol { url, reason: format!("not JSON: {e}") })
    }

    /// `GET path` → JSON.
    pub async fn get(&self, path: &str) -> ApiResult<Value> {
        self.call(self.request(Method::GET, path, Duration::ZERO)).await
    }

    /// `method path` with a JSON body → JSON.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> ApiResult<Value> {
        self.call(self.request(method, path, Duration::ZERO).json(body)).await
    }

    /// `POST path` with a JSON body, waiting up to `wait` on the server → JSON.
    pub async fn post_waiting(&self, path: &str, body: &Value, wait: Duration) -> ApiResult<Value> {
        self.call(self.request(Method::POST, path, wait).json(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> ApiResult<Value> {
        self.call(self.request(Method::DELETE, path, Duration::ZERO)).await
    }

    /// `POST path` with raw record batches for `partition` → JSON.
    pub async fn post_records(&self, path: &str, partition: u32, batch: impl Into<reqwest::Body>) -> ApiResult<Value> {
        let rb = self
            .request(Method::POST, path, Duration::ZERO)
            .header(CONTENT_TYPE, RECORDS_MEDIA_TYPE)
            .header("Cairn-Partition", partition.to_string())
            .body(batch);
        self.call(rb).await
    }

    /// `GET path` asking for raw record batches → the reply's headers and body.
    pub async fn get_records(&self, path: &str) -> ApiResult<(HeaderMap, bytes::Bytes)> {
        let resp =
            self.send(self.request(Method::GET, path, Duration::ZERO).header(ACCEPT, RECORDS_MEDIA_TYPE)).await?;
        let headers = resp.headers().clone();
        let url = resp.url().to_string();
        let body = resp.bytes().await.map_err(|cause| ApiError::Transport { url, cause })?;
        Ok((headers, body))
    }

    /// `GET path` as server-sent events: sends each event to `events` until the server ends
    /// the stream (then `Ok`) or the receiver is dropped (also `Ok`).
    pub async fn follow(&self, path: &str, events: &mpsc::Sender<ApiResult<SseEvent>>) -> ApiResult<()> {
        let rb = self.http.get(self.url(path)).header(ACCEPT, "text/event-stream");
        let resp = self.send(rb).await?;
        let url = resp.url().to_string();
        let mut stream = resp.bytes_stream();
        let mut parser = SseParser::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|cause| ApiError::Transport { url: url.clone(), cause })?;
            for event in parser.push(&chunk) {
                if events.send(Ok(event)).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// The server's base URL from `--url`: `http://` or `https://` and a host, with an optional
/// port; a bare `host:port` (the form `cairnd --listen` takes) means `http://host:port`.
/// Anything else is a usage error.
pub fn base_url(given: &str) -> Result<String, crate::outcome::UsageError> {
    let usage = |why: String| crate::outcome::UsageError(format!("--url {given:?} {why}"));
    let with_scheme = if given.contains("://") { given.to_string() } else { format!("http://{given}") };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| usage(format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(usage("must be http:// or https://".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(usage("has no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(usage("must not have a query or fragment".into()));
    }
    Ok(with_scheme.trim_end_matches('/').to_string())
}

/// One line for a request that got no reply: where, and the innermost cause.
fn transport_text(url: &str, err: &reqwest::Error) -> String {
    let server = reqwest::Url::parse(url).map_or_else(|_| url.to_string(), |u| u.origin().ascii_serialization());
    if err.is_timeout() {
        return format!("no reply from the server at {server} in time (request to {url} timed out)");
    }
    let mut root: &dyn std::error::Error = err;
    while let Some(next) = root.source() {
        root = next;
    }
    let io_kind = root.downcast_ref::<std::io::Error>().map(std::io::Error::kind);
    let cause = match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            "connection refused (is cairnd running there? the address is --url or CAIRN_URL)".to_string()
        }
        _ => {
            let text = root.to_string();
            match hint(url.starts_with("https:"), &text) {
                Some(hint) => format!("{text} ({hint})"),
                None => text,
            }
        }
    };
    if err.is_connect() {
        format!("cannot reach the server at {server}: {cause}")
    } else {
        format!("request to {url} failed: {cause}")
    }
}

/// What a CLI user does about a status, after the server's own message.
fn status_hint(status: u16) -> &'static str {
    match status {
        401 => "; cairn sends the token given with --token or CAIRN_TOKEN",
        _ => "",
    }
}

/// What to do about the usual TLS mix-ups, recognised by the root cause's text (rustls' and
/// hyper's wording).
fn hint(https: bool, cause: &str) -> Option<&'static str> {
    if https && cause.contains("InvalidContentType") {
        Some("the server speaks plain HTTP there? use http://")
    } else if !https && cause.contains("invalid HTTP version") {
        Some("the server speaks HTTPS there? use https://")
    } else if cause.contains("UnknownIssuer") {
        Some("a self-signed or private CA's certificate: trust it with --ca-cert FILE")
    } else if cause.contains("CaUsedAsEndEntity") {
        Some("the server's certificate is a CA certificate (basicConstraints CA:TRUE); give the server an end-entity one, docs/OPERATIONS.md, TLS")
    } else if cause.contains("NotValidForName") {
        Some("the certificate does not name the host in --url; use a name it has, such as localhost")
    } else {
        None
    }
}

/// Text of a non-2xx reply whose body is not the API's JSON error (a proxy's HTML page, say):
/// whitespace collapsed to one line, at most [`FOREIGN_BODY_CHARS_MAX`] characters.
fn foreign_body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= FOREIGN_BODY_CHARS_MAX {
        return line;
    }
    let head: String = line.chars().take(FOREIGN_BODY_CHARS_MAX).collect();
    format!("{head}…")
}

/// Characters of a foreign error body shown.
const FOREIGN_BODY_CHARS_MAX: usize = 200;

/// The `code` and `message` of an API error body (`{"code","message"}`), where present.
fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| parsed.as_ref().and_then(|v| v.get(name)).and_then(Value::as_str).map(str::to_string);
    (field("code"), field("message"))
}

fn status_error(status: StatusCode, body: &[u8]) -> ApiError {
    let (code, message) = error_fields(body);
    ApiError::Status {
        status: status.as_u16(),
        code: code.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase()),
        message: message.unwrap_or_else(|| foreign_body_text(body)),
    }
}

/// The error an `event: error` of an event stream carries (the API's `{"code","message"}`).
pub fn stream_error(data: &str) -> ApiError {
    let (code, message) = error_fields(data.as_bytes());
    ApiError::Stream {
        code: code.unwrap_or_else(|| "error".into()),
        message: message.unwrap_or_else(|| foreign_body_text(data.as_bytes())),
    }
}

/// A path segment, percent-encoded except for the characters names may hold.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Incremental parser of a `text/event-stream` body (comments and unknown fields ignored).
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line_done(&String::from_utf8_lossy(&line), &mut out);
        }
        out
    }

    fn line_done(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.current));
            }
            self.current = SseEvent::default();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.current.id = Some(value.to_string()),
            "event" => self.current.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": keepalive\n\nid: 4\nevent: mess").is_empty());
        let events = p.push(b"age\ndata: {\"a\":1}\r\n\nid: 5\ndata: x\ndata: y\n\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], SseEvent { id: Some("4".into()), event: "message".into(), data: "{\"a\":1}".into() });
        assert_eq!(events[1].data, "x\ny");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("orders.v1_x-y"), "orders.v1_x-y");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn a_foreign_error_body_is_one_short_line() {
        let html = format!("<html>\n  <body>\n    <h1>502 Bad Gateway</h1>{}\n</body></html>", "x".repeat(500));
        let ApiError::Status { code, message, status } = status_error(StatusCode::BAD_GATEWAY, html.as_bytes()) else {
            panic!("a status error");
        };
        assert_eq!((status, code.as_str()), (502, "bad gateway"));
        assert!(message.starts_with("<html> <body> <h1>502 Bad Gateway</h1>xxx"), "{message}");
        assert!(!message.contains('\n') && message.chars().count() == FOREIGN_BODY_CHARS_MAX + 1, "{message}");
        let ApiError::Status { code, message, .. } =
            status_error(StatusCode::NOT_FOUND, br#"{"code":"topic_not_found","message":"topic t not found"}"#)
        else {
            panic!("a status error");
        };
        assert_eq!((code.as_str(), message.as_str()), ("topic_not_found", "topic t not found"));
    }

    #[test]
    fn base_urls() {
        assert_eq!(base_url("http://127.0.0.1:7420/").unwrap(), "http://127.0.0.1:7420");
        assert_eq!(base_url("https://cairn.example").unwrap(), "https://cairn.example");
        assert_eq!(base_url("127.0.0.1:7420").unwrap(), "http://127.0.0.1:7420");
        assert_eq!(base_url("localhost:7420").unwrap(), "http://localhost:7420");
        for bad in ["http://[::1", "ftp://host", "http://", "", "http://h:99999", "http://h/?x=1"] {
            assert!(base_url(bad).is_err(), "{bad:?}");
        }
    }
}
