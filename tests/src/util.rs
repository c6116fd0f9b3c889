//! Small helpers: base64, raw record batches, SSE parsing, raw HTTP, timeouts.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_storage::{BatchHeader, DecodedBatch};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `fut`, failing the test if it takes longer than `limit` (bounds hangs; not a
/// performance assertion).
#[track_caller]
pub fn within<F: Future>(limit: Duration, fut: F) -> impl Future<Output = F::Output> {
    let caller = std::panic::Location::caller();
    async move {
        match tokio::time::timeout(limit, fut).await {
            Ok(v) => v,
            Err(_) => panic!("did not finish within {limit:?} ({caller})"),
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(B64[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64 (standard or URL-safe alphabet, padding optional). Panics on bad input.
pub fn unb64(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => panic!("invalid base64 {s:?}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The value bytes of a message object of a read reply: `value_base64` decoded, or the
/// compact JSON text of `value`; `None` for a null value.
pub fn value_bytes(msg: &serde_json::Value) -> Option<Vec<u8>> {
    if let Some(s) = msg.get("value_base64").and_then(|v| v.as_str()) {
        return Some(unb64(s));
    }
    match msg.get("value") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(serde_json::to_vec(v).unwrap()),
    }
}

/// One record of a raw (`application/vnd.cairn.records`) reply, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Splits a raw records reply into batches, checking each one's CRC and layout with
/// [`DecodedBatch`]. Returns (header, records) per batch. Panics on anything malformed.
pub fn decode_batches(mut body: &[u8]) -> Vec<(BatchHeader, Vec<RawRecord>)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let header = BatchHeader::parse(body).unwrap_or_else(|e| panic!("bad batch header: {e}"));
        let len = header.total_len();
        assert!(len <= body.len(), "batch of {len} bytes but only {} left", body.len());
        let batch = DecodedBatch::new(&body[..len]).unwrap_or_else(|e| panic!("bad batch: {e}"));
        let records = batch
            .collect_checked()
            .unwrap_or_else(|e| panic!("bad records: {e}"))
            .into_iter()
            .map(|r| RawRecord {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                headers: r.headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
            })
            .collect();
        out.push((header, records));
        body = &body[len..];
    }
    out
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Reads server-sent events from a streaming reply.
pub struct SseReader {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    buf: Vec<u8>,
    /// Comment lines seen so far (e.g. `: keepalive`).
    pub comments: Vec<String>,
    /// The transport error that ended the stream, if it did not end cleanly.
    pub error: Option<String>,
}

impl SseReader {
    pub fn new(resp: reqwest::Response) -> Self {
        SseReader { stream: resp.bytes_stream().boxed(), buf: Vec::new(), comments: Vec::new(), error: None }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some(String::from_utf8(line).expect("SSE line is UTF-8"));
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    self.error = Some(format!("{e:?}"));
                    return None;
                }
                None => return None,
            }
        }
    }

    /// The next event (comments are recorded in [`SseReader::comments`], not returned);
    /// `None` at the end of the stream (see [`SseReader::error`] for why it ended).
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            match self.next_item().await? {
                SseItem::Event(ev) => return Some(ev),
                SseItem::Comment(_) => {}
            }
        }
    }

    /// The next event or comment line; `None` at the end of the stream.
    pub async fn next_item(&mut self) -> Option<SseItem> {
        let mut ev = SseEvent::default();
        let mut has_data = false;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                if has_data || ev.id.is_some() {
                    return Some(SseItem::Event(ev));
                }
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                let c = c.trim().to_string();
                self.comments.push(c.clone());
                if !has_data && ev.id.is_none() && ev.event.is_none() {
                    return Some(SseItem::Comment(c));
                }
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "id" => ev.id = Some(value.to_string()),
                "event" => ev.event = Some(value.to_string()),
                "data" => {
                    if has_data {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
    }
}

/// An event or a comment line of an SSE stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event(SseEvent),
    Comment(String),
}

/// A raw HTTP/1.1 exchange over TCP, for requests a normal client cannot make (huge bodies
/// that the server may reject before reading them). Writes `head` then `body` (in a separate
/// task, ignoring write errors once the server has answered) and reads the reply until the
/// server closes or the reply's `Content-Length` is complete. Returns (status, body).
pub async fn raw_http(addr: SocketAddr, head: String, body: Vec<Vec<u8>>) -> (u16, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for chunk in body {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = wr.flush().await;
    });
    let mut reply = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (status, body) = loop {
        let n = match rd.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if reply.is_empty() => panic!("reading reply: {e}"),
            Err(_) => 0,
        };
        reply.extend_from_slice(&buf[..n]);
        if let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&reply[..end]).to_string();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line: {head}"));
            let len = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
            });
            let have = reply.len() - end - 4;
            if len.is_some_and(|l| have >= l) || n == 0 {
                let body_end = len.map_or(reply.len(), |l| end + 4 + l);
                break (status, reply[end + 4..body_end].to_vec());
            }
        } else if n == 0 {
            panic!("connection closed before a reply: {:?}", String::from_utf8_lossy(&reply));
        }
    };
    writer.abort();
    (status, body)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A bound for "returns within" checks that must not be mistaken for performance targets.
pub const GENEROUS: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(b64(b""), "");
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(&[0xff, 0x00, 0xfe, 0x01]), "/wD+AQ==");
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37).wrapping_add(200)).collect();
            assert_eq!(unb64(&b64(&data)), data);
        }
        assert_eq!(unb64("_wD-AQ"), vec![0xff, 0x00, 0xfe, 0x01]);
    }
}
