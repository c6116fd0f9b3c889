//! Partition choice for produced messages.
//!
//! In order: the message's explicit `partition`; else the key's hash; else round-robin.
//! The key hash is Kafka's: **murmur2** (seed `0x9747b28c`, the 32-bit variant Kafka's
//! `Utils.murmur2` implements) over the key's bytes, made non-negative by masking the sign bit
//! (`& 0x7fffffff`), modulo the partition count. So a key always lands on the same partition
//! for a given count, and Cairn agrees with Kafka's default partitioner on where a key goes.
//! Keyless messages take consecutive values of one shared counter, modulo the count, so
//! they spread evenly over partitions across requests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Kafka's murmur2 hash of `data`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed message: `(murmur2(key) & 0x7fffffff) % partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    debug_assert!(partitions > 0);
    ((murmur2(key) as u32) & 0x7fff_ffff) % partitions.max(1)
}

/// Round-robin assignment of keyless messages.
#[derive(Debug, Default)]
pub struct RoundRobin(AtomicU64);

impl RoundRobin {
    /// Reserves `n` consecutive slots; message `i` of them goes to `(first + i) % partitions`.
    pub fn reserve(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::Relaxed)
    }
}

/// The partition of the `i`-th keyless message of a reservation starting at `first`.
pub fn round_robin_partition(first: u64, i: u64, partitions: u32) -> u32 {
    (first.wrapping_add(i) % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn same_key_same_partition_and_in_range() {
        for n in 1..20u32 {
            for key in ["a", "user-42", "", "ünïcødé"] {
                let p = partition_for_key(key.as_bytes(), n);
                assert!(p < n);
                assert_eq!(p, partition_for_key(key.as_bytes(), n));
            }
        }
    }

    #[test]
    fn round_robin_spreads_evenly() {
        let rr = RoundRobin::default();
        let mut counts = [0u32; 3];
        for _ in 0..4 {
            let first = rr.reserve(3);
            for i in 0..3 {
                counts[round_robin_partition(first, i, 3) as usize] += 1;
            }
        }
        assert_eq!(counts, [4, 4, 4]);
    }
}
