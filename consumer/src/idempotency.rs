//! `Idempotency-Key` values: 128 random bits in the familiar UUID text form.
//!
//! One key is drawn per produce request and reused on every retry of that request, so the
//! server's dedup window turns a retry of an already-appended request into a repeat of the
//! original offsets instead of a second append.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh random key, e.g. `3f2b8c1e-9a4d-4e7f-b1c2-0d9e8f7a6b5c` (UUID v4 layout).
pub(crate) fn new_key() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        fallback(&mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Without OS randomness: time, process id and a counter, which are still unique per
/// process and request.
fn fallback(b: &mut [u8; 16]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 40);
    b[..8].copy_from_slice(&nanos.to_le_bytes());
    b[8..].copy_from_slice(&n.to_le_bytes());
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_uuid_shaped_and_distinct() {
        let a = super::new_key();
        let b = super::new_key();
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, b);
    }
}
