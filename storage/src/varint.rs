//! Unsigned LEB128 variable-length integers, as used inside records.
//!
//! Seven bits per byte, least significant group first, high bit set on every byte but the
//! last. A `u64` takes at most 10 bytes; longer encodings are rejected so a hostile input
//! cannot make the decoder loop or overflow.

/// Most bytes a `u64` varint may take.
pub const VARINT_LEN_MAX: usize = 10;

/// Appends `value` to `out`.
#[inline]
pub fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Number of bytes `put` writes for `value`.
#[inline]
pub fn encoded_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a varint from the front of `input`, returning it and the bytes it used, or `None`
/// when the input ends early or the encoding is longer than 10 bytes or overflows.
#[inline]
pub fn get(input: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().take(VARINT_LEN_MAX).enumerate() {
        let low = u64::from(byte & 0x7f);
        if i == VARINT_LEN_MAX - 1 && byte > 1 {
            return None;
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut out = Vec::new();
        put(&mut out, 0);
        put(&mut out, 127);
        put(&mut out, 128);
        put(&mut out, 300);
        assert_eq!(out, [0x00, 0x7f, 0x80, 0x01, 0xac, 0x02]);
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        assert_eq!(get(&[0x80]), None);
        assert_eq!(get(&[0xff; 11]), None);
        // 10th byte may only carry the top bit of a u64.
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(get(&max), Some((u64::MAX, 10)));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(get(&over), None);
    }

    proptest! {
        #[test]
        fn round_trip(v in any::<u64>()) {
            let mut out = Vec::new();
            put(&mut out, v);
            prop_assert_eq!(out.len(), encoded_len(v));
            prop_assert_eq!(get(&out), Some((v, out.len())));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = get(&bytes);
        }
    }
}
