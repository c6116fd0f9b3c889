//! JSON bodies for the error replies hyper writes by itself.
//!
//! When a request head cannot be parsed, hyper answers on its own before any service runs —
//! `400` (malformed request line or header), `414` (URI too long) or `431` (head larger than
//! `header_bytes_max`, or more than 100 headers) — with `connection: close`,
//! `content-length: 0` and no body, and offers no hook to change that. The contract says
//! every error carries `{"code","message"}`, so [`JsonErrors`] sits between hyper and the
//! socket and, when hyper writes exactly such a head, writes it with a JSON body
//! (`bad_request`) instead. Nothing else is touched: every reply Cairn's handlers make has a
//! body, so none of them matches.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::serve::HEADERS_MAX;

/// What follows the status line in hyper's own error heads.
const BARE: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";
/// Longest head hyper's own error replies have (status line, the two headers, a date).
const BARE_HEAD_MAX: usize = 160;

/// `S`, with hyper's bodiless error replies given JSON bodies.
#[derive(Debug)]
pub struct JsonErrors<S> {
    inner: S,
    header_bytes_max: usize,
    /// A rewritten reply being written: its bytes, how many are written, and the length of
    /// hyper's original head (what the write reports once the whole rewrite is out).
    rewrite: Option<(Vec<u8>, usize, usize)>,
}

impl<S> JsonErrors<S> {
    pub fn new(inner: S, header_bytes_max: usize) -> Self {
        JsonErrors { inner, header_bytes_max, rewrite: None }
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The reply to write instead of `head`, if `head` is one of hyper's bodiless error heads.
fn with_json_body(head: &[u8], header_bytes_max: usize) -> Option<Vec<u8>> {
    if head.len() > BARE_HEAD_MAX || !head.starts_with(b"HTTP/1.1 4") || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let message = match head.get(9..12)? {
        b"400" => "malformed HTTP request head".to_string(),
        b"414" => "request URI too long".to_string(),
        b"431" => format!("request head too large: at most {header_bytes_max} bytes and {HEADERS_MAX} headers"),
        _ => return None,
    };
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let rest = head[line_end..].strip_prefix(BARE)?;
    let body = format!(r#"{{"code":"bad_request","message":"{message}"}}"#);
    let mut out = Vec::with_capacity(head.len() + body.len() + 48);
    out.extend_from_slice(&head[..line_end]);
    out.extend_from_slice(b"\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(rest);
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    /// Writes the pending rewrite to its end; then reports hyper's head as written.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((bytes, written, reported)) = &mut self.rewrite else {
            return Poll::Ready(Ok(0));
        };
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let reported = *reported;
        self.rewrite = None;
        Poll::Ready(Ok(reported))
    }

    /// Starts rewriting `head` if it is one of hyper's bodiless error heads.
    fn start_rewrite(&mut self, head: &[u8]) -> bool {
        match with_json_body(head, self.header_bytes_max) {
            Some(bytes) => {
                self.rewrite = Some((bytes, 0, head.len()));
                true
            }
            None => false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.rewrite.is_some() || self.start_rewrite(buf) {
            return self.poll_rewrite(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.rewrite.is_some() {
            return self.poll_rewrite(cx);
        }
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            if self.start_rewrite(only) {
                return self.poll_rewrite(cx);
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.rewrite.is_some() {
            ready!(self.poll_rewrite(cx))?;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.rewrite.is_some() {
            ready!(self.poll_rewrite(cx))?;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"date: Sun, 29 Nov 2026 17:18:06 GMT\r\n\r\n";

    fn head(status_line: &str) -> Vec<u8> {
        let mut h = status_line.as_bytes().to_vec();
        h.extend_from_slice(BARE);
        h.extend_from_slice(DATE);
        h
    }

    #[test]
    fn hypers_error_heads_get_a_json_body() {
        for (line, status) in [
            ("HTTP/1.1 400 Bad Request", 400),
            ("HTTP/1.1 414 URI Too Long", 414),
            ("HTTP/1.1 431 Request Header Fields Too Large", 431),
        ] {
            let out = with_json_body(&head(line), 65536).unwrap();
            let text = String::from_utf8(out).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(line), "{head}");
            assert!(head.contains("\r\ncontent-type: application/json\r\n"));
            assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
            assert!(head.contains("\r\nconnection: close\r\n") && head.contains("\r\ndate: "));
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["code"], "bad_request", "{status}");
            assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn other_replies_are_left_alone() {
        // A handler's error reply (it has a body), a bodiless 404, a 200, a partial head.
        let handler = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(with_json_body(handler, 65536).is_none());
        assert!(with_json_body(&head("HTTP/1.1 404 Not Found"), 65536).is_none());
        assert!(with_json_body(&head("HTTP/1.1 200 OK"), 65536).is_none());
        let partial = head("HTTP/1.1 400 Bad Request");
        assert!(with_json_body(&partial[..partial.len() - 2], 65536).is_none());
    }
}
