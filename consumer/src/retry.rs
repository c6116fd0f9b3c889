//! Retries with exponential backoff.
//!
//! A request is retried only when [`crate::Error::is_retryable`] says so (connection errors,
//! timeouts, 5xx). Produce requests are safe to retry because they carry the same
//! `Idempotency-Key` on every attempt; reads and group operations are naturally idempotent.
//! The same curve also spaces out redeliveries of failed messages ([`RetryPolicy::delay`]).
//!
//! ```
//! let p = cairn_consumer::RetryPolicy::default();
//! assert!(p.delay(2) > p.delay(1));
//! ```

use std::future::Future;
use std::time::Duration;

use crate::error::Result;

/// How often and how patiently to retry.
///
/// ```
/// use std::time::Duration;
/// use cairn_consumer::RetryPolicy;
///
/// let p = RetryPolicy { attempts_max: 5, backoff_initial: Duration::from_millis(100),
///                       backoff_max: Duration::from_secs(2) };
/// assert_eq!(p.delay(1), Duration::from_millis(100));
/// assert_eq!(p.delay(3), Duration::from_millis(400));
/// assert_eq!(p.delay(30), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: never retry).
    pub attempts_max: u32,
    /// Delay after the first failure; doubled after each further one.
    pub backoff_initial: Duration,
    /// Largest delay.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 100 ms doubling up to 5 s (about 8 s of retrying in all).
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 6,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    ///
    /// ```
    /// assert_eq!(cairn_consumer::RetryPolicy::none().attempts_max, 1);
    /// ```
    pub fn none() -> Self {
        RetryPolicy { attempts_max: 1, ..Self::default() }
    }

    /// The delay after the `attempt`-th failure (1-based): `backoff_initial * 2^(attempt-1)`,
    /// at most `backoff_max`.
    ///
    /// ```
    /// let p = cairn_consumer::RetryPolicy::default();
    /// assert!(p.delay(2) > p.delay(1));
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.backoff_initial.saturating_mul(1u32 << exp).min(self.backoff_max)
    }

    /// The delay with up to 25 % random jitter removed, so that many clients failing at once
    /// do not retry in lockstep.
    fn jittered(&self, attempt: u32) -> Duration {
        let d = self.delay(attempt);
        let r = getrandom::u32().unwrap_or(0) % 1000;
        d.saturating_sub(d.mul_f64(f64::from(r) / 4000.0))
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or `attempts_max`
    /// attempts have failed (then the last error is returned).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), cairn_consumer::Error> {
    /// let client = cairn_consumer::Client::new("http://127.0.0.1:7420")?;
    /// let topics = cairn_consumer::RetryPolicy::default().run(|| client.list_topics()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < self.attempts_max && e.is_retryable() => {
                    let wait = self.jittered(attempt);
                    tracing::debug!(attempt, ?wait, error = %e, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn server_error() -> Error {
        crate::error::api_error(503, br#"{"code":"internal","message":"busy"}"#)
    }

    #[tokio::test]
    async fn retries_5xx_until_success_and_stops_on_4xx() {
        let p = RetryPolicy {
            attempts_max: 4,
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let r = p
            .run(|| async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err(server_error())
                } else {
                    Ok(n)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 2);
        let calls = AtomicU32::new(0);
        let r: Result<()> = p
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(crate::error::api_error(400, br#"{"code":"bad_request","message":"no"}"#))
            })
            .await;
        assert_eq!(r.unwrap_err().code(), Some("bad_request"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let r: Result<()> = p
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(server_error())
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
