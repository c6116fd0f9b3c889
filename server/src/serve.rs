//! The HTTP/1.1 server loop: accepting connections within limits, serving each with hyper,
//! and draining on shutdown.
//!
//! Limits (all in `docs/OPERATIONS.md`): at most `connections_max` open connections (further
//! clients wait in the kernel's listen backlog until one closes); a request head must arrive
//! within `header_read_timeout` (hyper's timer also closes keep-alive connections idle that
//! long between requests) and fit in `header_bytes_max` (else `431`, which, like hyper's other
//! own error replies, `crate::canned` gives a JSON body); a connection that moves no byte for
//! `idle_timeout` is closed. A connection the server closes (an error reply sent before the
//! body was read, `Connection: close`) lingers: FIN first, then what the client still sends
//! is read and dropped for up to 2 s / 4 MiB, so the reply is not lost to a TCP
//! reset. On shutdown the accept loop stops, every connection finishes its in-flight request
//! and closes, and [`serve`] returns once all are gone or `shutdown_grace` has passed. With
//! TLS (`crate::tls`) the handshake happens inside the connection's slot, bounded by
//! `header_read_timeout` and abandoned on shutdown; the activity counter sits under TLS, so
//! the idle timeout counts encrypted bytes.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::activity::{Activity, ActivityIo};
use crate::canned::JsonErrors;
use crate::config::ConnectionLimits;
use crate::dispatch::Dispatch;
use crate::shutdown::Shutdown;
use crate::watchdog::{Stop, Watchdog};

/// Most headers in one request. hyper parses the head into arrays of this many entries that
/// live on the stack up to 100 (its default); a larger limit puts two arrays (≈ 6 KiB for 128)
/// on the heap for every request, which showed up as 10 % of the single-message produce
/// profile (glibc's large-chunk paths: `_int_malloc`, `malloc_consolidate`, `unlink_chunk`).
pub const HEADERS_MAX: usize = 100;
/// Pause after an accept error (for example too many open files) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown`, then drains
/// (bounded by `grace`).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Dispatch,
    limits: ConnectionLimits,
    shutdown: Shutdown,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let limits = Arc::new(limits);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.wait() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracing::trace!(%peer, "connection accepted");
                let (app, limits, shutdown) = (app.clone(), Arc::clone(&limits), shutdown.clone());
                tokio::spawn(accepted_connection(stream, tls.clone(), app, limits, shutdown, permit));
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
    drop(listener);
    let all = u32::try_from(limits.connections_max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(grace, slots.acquire_many(all)).await;
    match drained {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("shutdown grace period over with connections still open"),
    }
}

/// Wraps an accepted socket (activity clock, then TLS if configured) and serves it.
async fn accepted_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    app: Dispatch,
    limits: Arc<ConnectionLimits>,
    shutdown: Shutdown,
    permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let io = ActivityIo::new(stream, Arc::clone(&activity));
    let Some(tls) = tls else {
        return connection(io, activity, app, limits, shutdown, permit).await;
    };
    let handshake = tokio::select! {
        r = tokio::time::timeout(limits.header_read_timeout, tls.accept(io)) => r,
        _ = shutdown.wait() => return,
    };
    match handshake {
        Ok(Ok(io)) => connection(io, activity, app, limits, shutdown, permit).await,
        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
        Err(_) => tracing::debug!("TLS handshake not done within {:?}", limits.header_read_timeout),
    }
}

/// Serves one connection until it closes, idles out, or shutdown completes it.
async fn connection<S>(
    stream: S,
    activity: Arc<Activity>,
    app: Dispatch,
    limits: Arc<ConnectionLimits>,
    shutdown: Shutdown,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(JsonErrors::new(stream, limits.header_bytes_max));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.header_bytes_max)
        .max_headers(HEADERS_MAX)
        .keep_alive(true);
    let mut conn = builder.serve_connection(io, app);
    let mut watchdog = Watchdog::start(activity, limits.idle_timeout, shutdown);
    let mut draining = false;
    loop {
        tokio::select! {
            // The connection first: it is what wakes the task almost every time.
            biased;
            // Without hyper's own shutdown of the socket, so that a close can linger (below).
            result = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                match result {
                    Ok(()) if !draining => break,
                    Ok(()) => return,
                    Err(e) => {
                        tracing::debug!("connection ended: {e}");
                        return;
                    }
                }
            }
            stop = std::future::poll_fn(|cx| watchdog.poll_stop(cx)) => match stop {
                Stop::Drain => {
                    draining = true;
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                }
                Stop::Close => return,
            },
        }
    }
    drop(watchdog);
    linger(conn.into_parts().io.into_inner().into_inner()).await;
}

/// How long a closing connection keeps reading what the client still sends.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How much a closing connection reads and discards at most.
const LINGER_BYTES_MAX: usize = 4 << 20;

/// Closes a connection the server ended (a reply with `Connection: close`, or an error reply
/// such as `413` sent before the request body was read) the way nginx's lingering close does:
/// send FIN, then read and discard what the client is still sending for a bounded time and
/// amount. Closing a socket with unread input makes the kernel answer with a reset, and a
/// reset can reach the client before it has read the reply, which it then never sees.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    if io.shutdown().await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut left = LINGER_BYTES_MAX;
    let drain = async {
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
