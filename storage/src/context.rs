//! What every partition of a catalog shares: the clock, the segment cache and the
//! background threads' handles. Passed down explicitly; there is no global state.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache::SegmentCache;
use crate::pool::{Flusher, WriterPool};
use crate::prezero::Zeroer;

/// A source of "now" in milliseconds since the Unix epoch. Tests inject their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
}

pub(crate) struct Context {
    pub clock: Clock,
    pub cache: SegmentCache,
    pub pool: Arc<WriterPool>,
    pub flusher: Arc<Flusher>,
    pub zeroer: Arc<Zeroer>,
}

impl Context {
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}
