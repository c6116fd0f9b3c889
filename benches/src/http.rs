//! A minimal keep-alive HTTP/1.1 client connection on hyper 1, for load generation: one TCP
//! connection, one request at a time, no pooling or redirects (each load task owns one).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Error;

/// One request to send, cheap to clone (the body is a shared `Bytes`).
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Self {
        Req { method: Method::GET, path: path.into(), content_type: None, headers: Vec::new(), body: Bytes::new() }
    }

    pub fn post(path: impl Into<String>, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Req {
            method: Method::POST,
            path: path.into(),
            content_type: Some(content_type),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Result<Self, Error> {
        self.headers.push((HeaderName::from_static(name), HeaderValue::from_str(value)?));
        Ok(self)
    }
}

/// A reply: status, headers and the whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    /// Sends `req` and reads the whole reply.
    pub async fn send(&mut self, req: &Req) -> Result<Reply, Error> {
        self.sender.ready().await?;
        let mut builder =
            Request::builder().method(req.method.clone()).uri(req.path.as_str()).header(HOST, "127.0.0.1");
        if let Some(ct) = req.content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let request = builder.body(Full::new(req.body.clone()))?;
        let resp = self.sender.send_request(request).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }

    /// Sends `req` and reads the reply frame by frame without gathering it: returns the status,
    /// the headers, the body's length and its last `tail` bytes (for bulk reads, where a copy
    /// of the whole body would be the client's main cost). Fails unless the reply is 2xx.
    pub async fn send_counting(&mut self, req: &Req, tail: usize) -> Result<(HeaderMap, u64, Vec<u8>), Error> {
        self.sender.ready().await?;
        let request = self.build(req)?;
        let resp = self.sender.send_request(request).await?;
        let (parts, mut body) = resp.into_parts();
        let (mut len, mut last) = (0u64, Vec::with_capacity(tail * 2));
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                len += data.len() as u64;
                let keep = data.len().min(tail);
                last.extend_from_slice(&data[data.len() - keep..]);
                if last.len() > tail {
                    last.drain(..last.len() - tail);
                }
            }
        }
        if !parts.status.is_success() {
            return Err(
                format!("{} {} -> {}: {}", req.method, req.path, parts.status, String::from_utf8_lossy(&last)).into()
            );
        }
        Ok((parts.headers, len, last))
    }

    fn build(&self, req: &Req) -> Result<Request<Full<Bytes>>, Error> {
        let mut builder =
            Request::builder().method(req.method.clone()).uri(req.path.as_str()).header(HOST, "127.0.0.1");
        if let Some(ct) = req.content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        Ok(builder.body(Full::new(req.body.clone()))?)
    }

    /// Sends `req` and fails unless the reply is 2xx.
    pub async fn send_ok(&mut self, req: &Req) -> Result<Reply, Error> {
        let reply = self.send(req).await?;
        if !reply.status.is_success() {
            return Err(format!(
                "{} {} -> {}: {}",
                req.method,
                req.path,
                reply.status,
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
            )
            .into());
        }
        Ok(reply)
    }
}
