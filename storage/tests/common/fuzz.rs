//! Helpers of the bounded fuzz tests (`fuzz_decode.rs`, `fuzz_recovery.rs`): byte-level
//! mutations of valid inputs, and running a test's cases in a child process whose address
//! space is capped, so that an allocation sized from a hostile length field aborts it.
#![allow(dead_code)]

use std::process::Command;

use cairn_storage::format::*;
use proptest::prelude::*;

/// Address-space cap of the child that runs the cases.
const ADDRESS_SPACE_MAX: &str = "1073741824";
const INNER_ENV: &str = "CAIRN_FUZZ_CAPPED";

/// Runs test `name` again in a child capped by `prlimit --as` (unless this is the child, or
/// `prlimit` is missing: then the cases run here, uncapped, and say so). Returns true if
/// the caller should run the cases itself.
pub fn run_capped(name: &str) -> bool {
    if std::env::var_os(INNER_ENV).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("prlimit")
        .arg(format!("--as={ADDRESS_SPACE_MAX}"))
        .arg("--")
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, "1")
        .output();
    match out {
        Ok(o) if o.status.success() => false,
        Ok(o) => panic!(
            "{name} failed under prlimit --as={ADDRESS_SPACE_MAX} ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{name}: prlimit unavailable ({e}): running without a memory cap");
            true
        }
    }
}

/// The case budget: `default`, or `FUZZ_CASES`.
pub fn cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One mutation of a file or buffer (positions wrap around its length).
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip {
        at: usize,
        mask: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    /// A little-endian u32 or u64 of an extreme value at a position (header fields live at
    /// fixed positions; record varints anywhere after the header).
    Wide {
        at: usize,
        value: u64,
        width: usize,
    },
    /// A varint of `value` (up to 10 bytes) written over the bytes at `at`.
    Varint {
        at: usize,
        value: u64,
    },
    Cut {
        len: usize,
    },
    Extend {
        bytes: Vec<u8>,
    },
    /// Bytes `[from, from+len)` copied to `to`.
    Splice {
        from: usize,
        len: usize,
        to: usize,
    },
}

pub fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::from(u32::MAX)),
        Just(u64::from(u32::MAX) - 1),
        Just(0x8000_0000),
        Just(4 * 1024 * 1024 * 1024),
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(BATCH_BYTES_MAX as u64),
        Just(BATCH_BYTES_MAX as u64 + 1),
        Just(u64::from(BATCH_RECORDS_MAX)),
        Just(RECORD_HEADERS_MAX + 1),
        any::<u64>(),
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), extreme(), prop_oneof![Just(4usize), Just(8)]).prop_map(|(at, value, width)| Mutation::Wide {
            at,
            value,
            width
        }),
        (any::<usize>(), extreme()).prop_map(|(at, value)| Mutation::Varint { at, value }),
        any::<usize>().prop_map(|len| Mutation::Cut { len }),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(|bytes| Mutation::Extend { bytes }),
        (any::<usize>(), 1usize..32, any::<usize>()).prop_map(|(from, len, to)| Mutation::Splice { from, len, to }),
    ]
}

/// Header field positions, so `Wide` often hits a field exactly.
pub const FIELDS: [usize; 8] = [
    BASE_OFFSET_POS,
    LENGTH_POS,
    CRC_POS,
    ATTRIBUTES_POS,
    LAST_OFFSET_DELTA_POS,
    FIRST_TIMESTAMP_POS,
    MAX_TIMESTAMP_POS,
    RECORD_COUNT_POS,
];

pub fn apply(b: &mut Vec<u8>, m: &Mutation) {
    let n = b.len().max(1);
    match m {
        Mutation::Flip { at, mask } => {
            if let Some(x) = b.get_mut(at % n) {
                *x ^= mask;
            }
        }
        Mutation::Set { at, byte } => {
            if let Some(x) = b.get_mut(at % n) {
                *x = *byte;
            }
        }
        Mutation::Wide { at, value, width } => {
            // Half the time exactly on a header field.
            let pos = if at % 2 == 0 { FIELDS[(at / 2) % FIELDS.len()] } else { at % n };
            let bytes = value.to_le_bytes();
            for (i, x) in bytes[..*width].iter().enumerate() {
                if let Some(y) = b.get_mut(pos + i) {
                    *y = *x;
                }
            }
        }
        Mutation::Varint { at, value } => {
            let mut buf = Vec::new();
            let mut v = *value;
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    buf.push(byte);
                    break;
                }
                buf.push(byte | 0x80);
            }
            // Mostly inside the records section, where the varints are.
            let pos = BATCH_HEADER_LEN.min(n - 1) + at % n.saturating_sub(BATCH_HEADER_LEN).max(1);
            for (i, x) in buf.iter().enumerate() {
                if let Some(y) = b.get_mut(pos + i) {
                    *y = *x;
                }
            }
        }
        Mutation::Cut { len } => b.truncate(len % n),
        Mutation::Extend { bytes } => b.extend_from_slice(bytes),
        Mutation::Splice { from, len, to } => {
            let from = from % n;
            let chunk: Vec<u8> = b[from.min(b.len())..(from + len).min(b.len())].to_vec();
            let to = to % n;
            for (i, x) in chunk.iter().enumerate() {
                if let Some(y) = b.get_mut(to + i) {
                    *y = *x;
                }
            }
        }
    }
}
