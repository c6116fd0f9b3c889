//! The bounded key map of a compaction pass: 128-bit key hash → latest offset.
//!
//! Memory is bounded by [`CompactionOptions::keys_max`](super::CompactionOptions) entries
//! (about 40 bytes each with the hash table's overhead: 1,000,000 keys ≈ 40 MB), whatever
//! the size of the log. Keys themselves are never stored: two different keys with the same
//! 128-bit hash would make compaction drop the older one's record, a chance of about
//! n² / 2¹²⁹ for n distinct keys (negligible: below 10⁻²⁴ for a billion keys).
//! When a log has more distinct keys than the map holds, the map covers offsets
//! `[from, limit)` only and the pass is repeated from `limit` (see `super`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};

/// Hashes a record key to 128 bits (two SipHash-1-3 runs with different prefixes).
pub fn key_hash(key: &[u8]) -> u128 {
    let mut a = DefaultHasher::new();
    a.write_u8(0);
    a.write(key);
    let mut b = DefaultHasher::new();
    b.write_u8(1);
    b.write(key);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// A hasher for keys that are already uniformly distributed hashes: takes their low bits.
#[derive(Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Key hash → the latest offset seen for it, holding at most `cap` keys.
#[derive(Debug)]
pub struct KeyMap {
    map: HashMap<u128, u64, BuildHasherDefault<PrehashedHasher>>,
    cap: usize,
}

impl KeyMap {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        KeyMap { map: HashMap::with_capacity_and_hasher(cap.min(1 << 20), Default::default()), cap }
    }

    /// Records `offset` as the latest for `hash`: `Some(previous latest)` (`Some(None)` for a
    /// new key), or `None`, changing nothing, if the key is new and the map is full.
    pub fn insert(&mut self, hash: u128, offset: u64) -> Option<Option<u64>> {
        if let Some(slot) = self.map.get_mut(&hash) {
            return Some(Some(std::mem::replace(slot, offset)));
        }
        if self.map.len() >= self.cap {
            return None;
        }
        self.map.insert(hash, offset);
        Some(None)
    }

    pub fn get(&self, hash: u128) -> Option<u64> {
        self.map.get(&hash).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_latest_wins() {
        let mut m = KeyMap::new(2);
        assert_eq!(m.insert(key_hash(b"a"), 1), Some(None));
        assert_eq!(m.insert(key_hash(b"b"), 2), Some(None));
        assert_eq!(m.insert(key_hash(b"a"), 3), Some(Some(1)), "known keys update when full");
        assert_eq!(m.insert(key_hash(b"c"), 4), None, "a new key does not fit");
        assert_eq!(m.get(key_hash(b"a")), Some(3));
        assert_eq!(m.get(key_hash(b"c")), None);
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
        assert_ne!(key_hash(b""), key_hash(b"\0"));
    }
}
