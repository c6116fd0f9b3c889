//! A socket wrapper that records that bytes moved, for the connection idle timeout.
//!
//! hyper's header read timeout covers a client that is slow to send a request head; this
//! covers the rest (a body trickling in, a reply the client stops reading). Every successful
//! read or write of at least one byte bumps a counter; the connection's watchdog
//! (`crate::watchdog`) looks at it on its ticker ([`IdleClock`]) and has connections whose
//! counter has not moved for `idle_timeout_ms` closed. Counting instead of stamping the time
//! keeps clock reads off the per-request path (a `clock_gettime` per read and per write showed
//! up in the profile).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How many reads and writes moved bytes on a connection.
#[derive(Debug, Default)]
pub struct Activity {
    moves: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity::default())
    }

    /// One task polls a connection's socket at a time, so a load and a store suffice (no
    /// read-modify-write); the ticker only needs to see that the value changed.
    fn touch(&self) {
        self.moves.store(self.moves.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }
}

/// The watchdog's view of an [`Activity`]: when its counter last changed, as seen at
/// the ticks (so idleness is known to within one tick).
#[derive(Debug)]
pub struct IdleClock {
    activity: Arc<Activity>,
    seen: u64,
    since: Instant,
}

impl IdleClock {
    pub fn new(activity: Arc<Activity>) -> Self {
        let seen = activity.moves();
        IdleClock { activity, seen, since: Instant::now() }
    }

    /// How long no byte has moved, as of now.
    pub fn idle_for(&mut self) -> Duration {
        let now = Instant::now();
        let moves = self.activity.moves();
        if moves != self.seen {
            self.seen = moves;
            self.since = now;
        }
        now - self.since
    }
}

/// `T` with its reads and writes recorded in an [`Activity`].
#[derive(Debug)]
pub struct ActivityIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> ActivityIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        ActivityIo { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_time_counts_from_the_last_tick_that_saw_bytes_move() {
        let activity = Activity::new();
        let mut clock = IdleClock::new(Arc::clone(&activity));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(clock.idle_for(), Duration::from_secs(5));
        activity.touch();
        assert_eq!(clock.idle_for(), Duration::ZERO, "a move restarts the idle time");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(clock.idle_for(), Duration::from_secs(2));
        assert_eq!(clock.idle_for(), Duration::from_secs(2), "looking twice is not a move");
    }
}
