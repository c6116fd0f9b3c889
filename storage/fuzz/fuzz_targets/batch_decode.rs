//! libFuzzer target: arbitrary bytes through every batch decoding path (header parse, CRC,
//! records, zstd, the raw-produce client check), as given and with the length field and
//! CRC fixed up (so that coverage reaches the record parser). Must never panic.
#![no_main]

use cairn_storage::batch::{check_client_batch, compute_crc, verify};
use cairn_storage::format::{BATCH_HEADER_LEN, CRC_POS, LENGTH_POS, LENGTH_PREFIX_LEN};
use cairn_storage::{BatchHeader, DecodedBatch};
use libfuzzer_sys::fuzz_target;

fn decode(data: &[u8]) {
    let _ = BatchHeader::parse(data);
    let _ = verify(data);
    if let Ok(d) = DecodedBatch::new(data) {
        for r in d.records() {
            if r.is_err() {
                break;
            }
        }
        let _ = d.collect_checked();
    }
    let _ = check_client_batch(data, 1 << 20);
}

fuzz_target!(|data: &[u8]| {
    decode(data);
    if data.len() >= BATCH_HEADER_LEN {
        let mut fixed = data.to_vec();
        let len = (fixed.len() - LENGTH_PREFIX_LEN) as u32;
        fixed[LENGTH_POS..LENGTH_POS + 4].copy_from_slice(&len.to_le_bytes());
        let crc = compute_crc(&fixed);
        fixed[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_le_bytes());
        decode(&fixed);
    }
});
