//! The open-loop load generator of the latency runs, and its one-request-at-a-time raw
//! connections (HTTP/1.1 or Redis RESP).
//!
//! Request `k` is due at `start + k / rate` and goes to connection `k % conns`, whatever the
//! replies do. The connections are spread over a few client threads, each with a
//! single-threaded runtime, so a request goes out from the thread that owns its socket with no
//! hand-over between threads. Each thread's pacer sleeps on a `timerfd` (microsecond
//! deadlines; tokio's timer wheel fires on millisecond ticks, which released every request due
//! within a millisecond in one burst) for at least a tick (100 µs in the harness) and then
//! releases every request that is due: one wake-up per tick at most, not one per request. A
//! load generator that is cheap per request matters on a 2-vCPU virtual machine, where its
//! CPU time, and every wake-up from idle, is taken from the server under test. When a
//! connection is still busy with an earlier reply at a request's due time, the latency counts
//! from the due time, so queueing behind a slow reply is included (no coordinated omission).
//!
//! Replies are read raw (status line, `content-length`, body; or one RESP reply) instead of
//! through hyper's client, whose connection task doubled the client's wake-ups per request.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::latency_histogram;
use crate::Error;

/// How a reply is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with a `content-length` body; a non-2xx status is an error.
    Http,
    /// One Redis RESP2 reply (simple string, integer or bulk string); `-ERR` is an error.
    Resp,
}

/// An HTTP/1.1 request as bytes on the wire: `POST path` with a content type, more headers
/// and a body.
pub fn http_post(path: &str, content_type: &str, headers: &[(&str, &str)], body: &[u8]) -> Bytes {
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: {content_type}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// A Redis `XADD <stream> * f <value>` command as bytes on the wire.
pub fn resp_xadd(stream: &str, value: &[u8]) -> Bytes {
    let mut out =
        format!("*5\r\n$4\r\nXADD\r\n${}\r\n{stream}\r\n$1\r\n*\r\n$1\r\nf\r\n${}\r\n", stream.len(), value.len())
            .into_bytes();
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// One keep-alive connection sending the same request again and again, one at a time.
pub struct RawConn {
    stream: TcpStream,
    request: Bytes,
    protocol: Protocol,
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr, request: Bytes, protocol: Protocol) -> Result<RawConn, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawConn { stream, request, protocol, buf: Vec::with_capacity(1024) })
    }

    /// Sends the request and reads its whole reply.
    pub async fn round_trip(&mut self) -> Result<(), Error> {
        self.stream.write_all(&self.request).await?;
        self.buf.clear();
        loop {
            if let Some(len) = reply_len(self.protocol, &self.buf)? {
                if self.buf.len() > len {
                    return Err("bytes after the reply to a one-at-a-time request".into());
                }
                return Ok(());
            }
            if self.buf.len() == self.buf.capacity() {
                self.buf.reserve(self.buf.len());
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err("the server closed the connection".into());
            }
        }
    }
}

/// The length of the complete reply at the start of `buf`, `None` while it is incomplete.
fn reply_len(protocol: Protocol, buf: &[u8]) -> Result<Option<usize>, Error> {
    match protocol {
        Protocol::Http => http_reply_len(buf),
        Protocol::Resp => resp_reply_len(buf),
    }
}

fn http_reply_len(buf: &[u8]) -> Result<Option<usize>, Error> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "a reply head that is not UTF-8")?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if !status.starts_with('2') {
        return Err(format!("non-2xx reply: {}", head.lines().next().unwrap_or("")).into());
    }
    let body_len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
        })
        .ok_or("a reply without content-length (chunked replies are not read here)")?;
    Ok((buf.len() >= head_end + body_len).then_some(head_end + body_len))
}

fn resp_reply_len(buf: &[u8]) -> Result<Option<usize>, Error> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
    match buf.first() {
        Some(b'+' | b':') => Ok(Some(eol + 2)),
        Some(b'$') => {
            let len: i64 = std::str::from_utf8(&buf[1..eol])
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or("bad bulk length from redis")?;
            let total = if len < 0 { eol + 2 } else { eol + 2 + len as usize + 2 };
            Ok((buf.len() >= total).then_some(total))
        }
        _ => Err(format!("unexpected reply from redis: {:?}", String::from_utf8_lossy(buf)).into()),
    }
}

/// What to run: `conns` connections to `addr` sending `request`, `rate` requests/s in all
/// for `secs`, from `threads` client threads.
#[derive(Clone, Debug)]
pub struct Spec {
    pub addr: SocketAddr,
    pub request: Bytes,
    pub protocol: Protocol,
    pub conns: usize,
    pub threads: usize,
    pub rate: f64,
    pub secs: f64,
    /// The shortest sleep of a thread's pacer (requests due meanwhile go out together).
    pub tick: Duration,
}

/// Outcome of an open-loop run.
pub struct Outcome {
    pub requests: u64,
    pub hist: Histogram<u64>,
    /// From the first due time to the last reply.
    pub elapsed: Duration,
}

/// Runs `spec` (blocking: call it off the async runtime). Every connection is open before the
/// clock starts.
pub fn run(spec: &Spec) -> Result<Outcome, Error> {
    if spec.conns == 0 || spec.rate <= 0.0 || spec.secs <= 0.0 {
        return Err("an open loop needs connections, a rate and a duration".into());
    }
    let threads = spec.threads.clamp(1, spec.conns);
    if !spec.conns.is_multiple_of(threads) {
        return Err("the client threads must divide the connections evenly".into());
    }
    let total = (spec.secs * spec.rate) as u64;
    let ready = Arc::new(Barrier::new(threads + 1));
    let start = Arc::new(OnceLock::<Instant>::new());
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let (spec, ready, start) = (spec.clone(), Arc::clone(&ready), Arc::clone(&start));
        handles.push(
            std::thread::Builder::new()
                .name(format!("open-loop-{t}"))
                .spawn(move || client_thread(&spec, t, threads, total, &ready, &start))?,
        );
    }
    // Every thread passes the barrier once, connected or not, so none is left waiting.
    ready.wait();
    let _ = start.set(Instant::now() + Duration::from_millis(20));
    ready.wait();
    let mut hist = latency_histogram()?;
    let mut requests = 0;
    let mut first_error = None;
    for h in handles {
        match h.join().map_err(|_| Error::from("an open-loop thread panicked"))? {
            Ok((n, h)) => {
                requests += n;
                hist.add(&h)?;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let started = *start.get().ok_or("the open loop never started")?;
    Ok(Outcome { requests, hist, elapsed: started.elapsed() })
}

/// One client thread: requests `t, t + threads, ...` of the run, on connections `t, t +
/// threads, ...` (request `k` on connection `k % conns`; `threads` divides `conns`). A pacer
/// releases every request that is due each time its timer fires, and sleeps at least `tick`:
/// at most one wake-up per tick, not one per request.
fn client_thread(
    spec: &Spec,
    t: usize,
    threads: usize,
    total: u64,
    ready: &Barrier,
    start: &OnceLock<Instant>,
) -> Result<(u64, Histogram<u64>), Error> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build();
    let setup = rt.as_ref().map_err(|e| e.to_string()).and_then(|rt| {
        rt.block_on(async {
            let mut conns = Vec::new();
            for _ in (t..spec.conns).step_by(threads) {
                let conn = RawConn::connect(spec.addr, spec.request.clone(), spec.protocol).await;
                conns.push(conn.map_err(|e| e.to_string())?);
            }
            Ok::<_, String>((conns, Timer::new().map_err(|e| e.to_string())?))
        })
    });
    ready.wait();
    ready.wait();
    let (rt, (conns, mut timer)) = (rt?, setup?);
    let start = *start.get().ok_or("the open loop never started")?;
    let (n_conns, n_threads, rate, tick) = (spec.conns as u64, threads as u64, spec.rate, spec.tick);
    rt.block_on(async move {
        let local = tokio::task::LocalSet::new();
        let mut tasks = Vec::with_capacity(conns.len());
        let mut senders = Vec::with_capacity(conns.len());
        for mut conn in conns {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
            senders.push(tx);
            tasks.push(local.spawn_local(async move {
                let mut h = latency_histogram()?;
                let mut n = 0u64;
                let mut last_done = Instant::now();
                while let Some(due) = rx.recv().await {
                    // Busy with an earlier reply at `due`: count from `due`. Free then: a late
                    // start is the pacer's, so count from the real send.
                    let from = if last_done > due { due } else { Instant::now() };
                    conn.round_trip().await?;
                    last_done = Instant::now();
                    h.saturating_record((last_done - from).as_micros() as u64);
                    n += 1;
                }
                Ok::<_, Error>((n, h))
            }));
        }
        local
            .run_until(async move {
                let due = |k: u64| start + Duration::from_secs_f64(k as f64 / rate);
                let mut k = t as u64;
                while k < total {
                    let now = Instant::now();
                    while k < total && due(k) <= now {
                        // A send fails only if that connection's task ended on an error,
                        // reported below.
                        let _ = senders[((k % n_conns) / n_threads) as usize].send(due(k));
                        k += n_threads;
                    }
                    if k < total {
                        timer.sleep(due(k).saturating_duration_since(now).max(tick)).await?;
                    }
                }
                drop(senders);
                let mut hist = latency_histogram()?;
                let mut n = 0;
                for task in tasks {
                    let (tn, th) = task.await.map_err(|e| Error::from(e.to_string()))??;
                    n += tn;
                    hist.add(&th)?;
                }
                Ok((n, hist))
            })
            .await
    })
}

/// A one-shot `timerfd` (CLOCK_MONOTONIC, like `Instant`) driven by the runtime's reactor.
struct Timer(AsyncFd<OwnedFd>);

impl Timer {
    fn new() -> std::io::Result<Timer> {
        // SAFETY: timerfd_create takes plain integer flags and returns a new descriptor or -1.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an `OwnedFd` keeps its descriptor open and unchanged until it is dropped,
        // which happens only with the `AsyncFd`.
        let registered = unsafe { AsyncFd::register(owned) };
        registered.map(Timer).map_err(std::io::Error::from)
    }

    /// Waits `d` (which must be non-zero: a zero deadline disarms a timerfd).
    async fn sleep(&mut self, d: Duration) -> std::io::Result<()> {
        let d = d.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long },
        };
        let fd = self.0.get_ref().as_raw_fd();
        // SAFETY: `fd` is a live timerfd owned by `self`; `spec` outlives the call; the old
        // value is not asked for (null).
        if unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        loop {
            let mut guard = self.0.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reads at most 8 bytes into the 8-byte buffer from the live timerfd.
            let r = unsafe { libc::read(fd, expirations.as_mut_ptr().cast(), expirations.len()) };
            if r == 8 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::WouldBlock {
                return Err(err);
            }
            guard.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_replies_are_delimited_by_content_length() {
        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\"}";
        assert_eq!(http_reply_len(&reply[..20]).unwrap(), None);
        assert_eq!(http_reply_len(&reply[..reply.len() - 1]).unwrap(), None);
        assert_eq!(http_reply_len(reply).unwrap(), Some(reply.len()));
        assert!(http_reply_len(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_err());
        assert!(http_reply_len(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn resp_replies_are_delimited() {
        assert_eq!(resp_reply_len(b"$15\r\n1764000000000-0\r\n").unwrap(), Some(22));
        assert_eq!(resp_reply_len(b"$15\r\n1764000000000-0").unwrap(), None);
        assert_eq!(resp_reply_len(b"+OK\r\n").unwrap(), Some(5));
        assert!(resp_reply_len(b"-ERR no\r\n").is_err());
    }

    #[test]
    fn requests_are_well_formed() {
        let r = http_post("/v1/topics/t/messages", "application/octet-stream", &[("cairn-partition", "0")], b"xyz");
        assert!(r.starts_with(b"POST /v1/topics/t/messages HTTP/1.1\r\n"));
        assert!(r.ends_with(b"cairn-partition: 0\r\ncontent-length: 3\r\n\r\nxyz"));
        assert_eq!(&resp_xadd("s", b"v")[..], b"*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\nf\r\n$1\r\nv\r\n");
    }

    #[test]
    fn runs_at_the_rate_against_a_local_server() {
        // A tiny HTTP server answering every request with an empty 200.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut buf = [0u8; 4096];
                    let mut have = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf) else { return };
                        if n == 0 {
                            return;
                        }
                        have.extend_from_slice(&buf[..n]);
                        while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                            have.drain(..end + 4);
                            if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let spec = Spec {
            addr,
            request: Bytes::from_static(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"),
            protocol: Protocol::Http,
            conns: 4,
            threads: 2,
            rate: 400.0,
            secs: 0.5,
            tick: Duration::from_micros(100),
        };
        let out = run(&spec).unwrap();
        assert_eq!(out.requests, 200);
        assert_eq!(out.hist.len(), 200);
        assert!(out.elapsed >= Duration::from_millis(490), "{:?}", out.elapsed);
    }
}
