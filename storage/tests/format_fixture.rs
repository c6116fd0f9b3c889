//! Golden test of the on-disk format (`docs/FORMAT.md`): a small data directory checked in
//! under `tests/fixtures/v1` is opened and read back, and exact bytes of its files are
//! checked against the layout. Any change to the format fails this test; a deliberate
//! change needs a new format version, a new fixture and an update of `docs/FORMAT.md`.
//!
//! The fixture was made once by the ignored test `generate_fixture` below
//! (`cargo test -p cairn-storage --test format_fixture -- --ignored generate_fixture`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use cairn_storage::format::*;
use cairn_storage::*;
use common::*;

const T0: i64 = 1_764_000_000_000;
const TOPIC: &str = "fixture";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn le_u32(b: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap())
}
fn le_u64(b: &[u8], pos: usize) -> u64 {
    u64::from_le_bytes(b[pos..pos + 8].try_into().unwrap())
}

/// Writes the fixture: segment 0 holds three plain batches (headers, a null key, a
/// tombstone, and a 4 KB value so that the third batch gets an index entry); segment 5,
/// rolled by age, holds one zstd batch. Closed cleanly; the active segment's preallocated
/// index files are trimmed to their (zero) entries to keep the fixture small.
#[test]
#[ignore = "writes the checked-in fixture; run by hand after a deliberate format change"]
fn generate_fixture() {
    let out = fixture_dir();
    let _ = fs::remove_dir_all(&out);
    let clock = TestClock::new(T0);
    let cat = open(&out, Some(&clock)).unwrap();
    let cfg = TopicConfig { segment_bytes: 1 << 20, segment_ms: 1000, retention_ms: None, ..TopicConfig::default() };
    let p = cat.create_topic(TOPIC, cfg).unwrap().partition(0).unwrap();
    let mut a = BatchBuilder::new();
    a.push(Some(b"user-1"), Some(b"hello"), [("trace", &b"abc"[..]), ("empty", &b""[..])]);
    a.push(None, Some(b"no key"), []);
    a.push(Some(b"user-1"), None, []);
    assert_eq!(p.append(a.finish(0, 0).unwrap()).unwrap().base_offset, 0);
    clock.advance(5);
    let mut b = BatchBuilder::new();
    b.push(Some(b"big"), Some(&[b'x'; 4000][..]), []);
    assert_eq!(p.append(b.finish(0, 0).unwrap()).unwrap().base_offset, 3);
    clock.advance(5);
    let mut c = BatchBuilder::new();
    c.push(Some(b"after-index"), Some(b"c"), []);
    assert_eq!(p.append(c.finish(0, 0).unwrap()).unwrap().base_offset, 4);
    clock.advance(2000);
    let mut d = BatchBuilder::with_codec(Codec::Zstd(3));
    d.push(Some(b"z1"), Some(b"compressed one"), []);
    d.push(None, Some(b"compressed two"), [("h", &b"v"[..])]);
    d.push(Some(b"z1"), None, []);
    assert_eq!(p.append(d.finish(0, 0).unwrap()).unwrap().base_offset, 5);
    assert_eq!(p.segment_count(), 2);
    cat.close().unwrap();
    drop(cat);
    let part = part_dir(&out, TOPIC, 0);
    for suffix in [INDEX_SUFFIX, TIMEINDEX_SUFFIX] {
        let f = fs::OpenOptions::new().write(true).open(part.join(format!("{}.{suffix}", segment_stem(5)))).unwrap();
        f.set_len(0).unwrap();
    }
    fs::remove_file(out.join(LOCK_FILE)).unwrap();
}

/// Copies the fixture to a temp dir (opening writes to it).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), dir.path());
    dir
}

fn check_content(p: &PartitionLog) {
    assert_eq!((p.start_offset(), p.end_offset(), p.segment_count()), (0, 8, 2));
    let r = p.read(0, usize::MAX).unwrap();
    let mut recs = Vec::new();
    for b in &r.batches {
        let d = DecodedBatch::new(&b.bytes).unwrap();
        for rec in d.collect_checked().unwrap() {
            let headers: Vec<(String, Vec<u8>)> =
                rec.headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
            recs.push((rec.offset, rec.timestamp, rec.key.map(<[u8]>::to_vec), rec.value.map(<[u8]>::to_vec), headers));
        }
    }
    let s = |x: &str| Some(x.as_bytes().to_vec());
    let h = |n: &str, v: &str| (n.to_string(), v.as_bytes().to_vec());
    let expected = vec![
        (0, T0, s("user-1"), s("hello"), vec![h("trace", "abc"), h("empty", "")]),
        (1, T0, None, s("no key"), vec![]),
        (2, T0, s("user-1"), None, vec![]),
        (3, T0 + 5, s("big"), Some(vec![b'x'; 4000]), vec![]),
        (4, T0 + 10, s("after-index"), s("c"), vec![]),
        (5, T0 + 2010, s("z1"), s("compressed one"), vec![]),
        (6, T0 + 2010, None, s("compressed two"), vec![h("h", "v")]),
        (7, T0 + 2010, s("z1"), None, vec![]),
    ];
    assert_eq!(recs, expected);
    assert!(r.batches[3].header.is_compressed());
    assert_eq!(p.offset_for_timestamp(T0 + 1).unwrap(), 3);
    assert_eq!(p.offset_for_timestamp(T0 + 6).unwrap(), 4);
    assert_eq!(p.offset_for_timestamp(T0 + 11).unwrap(), 5);
    assert_eq!(p.offset_for_timestamp(T0 + 2011).unwrap(), 8);
}

#[test]
fn fixture_reads_back_after_a_clean_open() {
    let dir = fixture_copy();
    let cat = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
    assert!(cat.opened_clean());
    let t = cat.topic(TOPIC).unwrap();
    assert_eq!(t.config().segment_ms, 1000);
    check_content(&t.partition(0).unwrap());
}

#[test]
fn fixture_recovery_rebuilds_identical_indexes() {
    let dir = fixture_copy();
    let part = part_dir(dir.path(), TOPIC, 0);
    let sealed_index = part.join(format!("{}.{INDEX_SUFFIX}", segment_stem(0)));
    let sealed_time = part.join(format!("{}.{TIMEINDEX_SUFFIX}", segment_stem(0)));
    let (index, time) = (fs::read(&sealed_index).unwrap(), fs::read(&sealed_time).unwrap());
    // A crash (no marker), no recovery point, no indexes: everything is scanned and rebuilt.
    fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
    fs::remove_file(part.join(RECOVERY_POINT_FILE)).unwrap();
    fs::remove_file(&sealed_index).unwrap();
    fs::remove_file(&sealed_time).unwrap();
    let cat = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
    assert!(!cat.opened_clean());
    check_content(&cat.topic(TOPIC).unwrap().partition(0).unwrap());
    assert_eq!(fs::read(&sealed_index).unwrap(), index);
    assert_eq!(fs::read(&sealed_time).unwrap(), time);
}

#[test]
fn fixture_bytes_match_the_documented_layout() {
    let root = fixture_dir();
    assert!(root.join(CLEAN_SHUTDOWN_FILE).exists());
    assert_eq!(fs::read(root.join(CLEAN_SHUTDOWN_FILE)).unwrap(), b"");
    let topic_json: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join(TOPICS_DIR).join(TOPIC).join(TOPIC_CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!(topic_json["segment_ms"], 1000);
    assert_eq!(topic_json["sync"], "always");
    let part = part_dir(&root, TOPIC, 0);
    let mut names: Vec<String> =
        fs::read_dir(&part).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000000000000000.index",
            "00000000000000000000.log",
            "00000000000000000000.timeindex",
            "00000000000000000005.index",
            "00000000000000000005.log",
            "00000000000000000005.timeindex",
            "recovery-point",
        ]
    );

    // recovery-point: offset 5 (u64 LE), then CRC-32 of those 8 bytes (u32 LE).
    let rp = fs::read(part.join(RECOVERY_POINT_FILE)).unwrap();
    assert_eq!(rp.len(), RECOVERY_POINT_LEN);
    assert_eq!(&rp[..8], &5u64.to_le_bytes());
    assert_eq!(le_u32(&rp, 8), crc32fast::hash(&5u64.to_le_bytes()));

    // Segment 0, batch A: the header field by field.
    let log = fs::read(part.join("00000000000000000000.log")).unwrap();
    assert_eq!(le_u64(&log, BASE_OFFSET_POS), 0);
    let a_len = le_u32(&log, LENGTH_POS) as usize + LENGTH_PREFIX_LEN;
    assert_eq!(log[MAGIC_POS], 1);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&log[..CRC_POS]);
    crc.update(&log[CRC_START..a_len]);
    assert_eq!(le_u32(&log, CRC_POS), crc.finalize(), "CRC covers every byte but its own field");
    assert_eq!(u16::from_le_bytes([log[ATTRIBUTES_POS], log[ATTRIBUTES_POS + 1]]), 0);
    assert_eq!(le_u32(&log, LAST_OFFSET_DELTA_POS), 2);
    assert_eq!(le_u64(&log, FIRST_TIMESTAMP_POS) as i64, T0);
    assert_eq!(le_u64(&log, MAX_TIMESTAMP_POS) as i64, T0);
    assert_eq!(le_u32(&log, RECORD_COUNT_POS), 3);
    // Its first record, byte for byte: length 34, attributes 0, timestamp delta 0, offset
    // delta 0, key "user-1" (6 + 1), value "hello" (5 + 1), 2 headers: "trace" = "abc",
    // "empty" = "".
    let mut rec = vec![34u8, 0, 0, 0, 7];
    rec.extend_from_slice(b"user-1");
    rec.push(6);
    rec.extend_from_slice(b"hello");
    rec.extend_from_slice(&[2, 5]);
    rec.extend_from_slice(b"trace");
    rec.push(3);
    rec.extend_from_slice(b"abc");
    rec.push(5);
    rec.extend_from_slice(b"empty");
    rec.push(0);
    assert_eq!(rec.len(), 35);
    assert_eq!(&log[BATCH_HEADER_LEN..BATCH_HEADER_LEN + rec.len()], &rec[..]);
    // Second record: null key (0), value "no key"; third: a tombstone (value 0).
    let r2 = BATCH_HEADER_LEN + rec.len();
    assert_eq!(&log[r2..r2 + 13], b"\x0c\x00\x00\x01\x00\x07no key\x00");
    let r3 = r2 + 13;
    assert_eq!(&log[r3..a_len], b"\x0c\x00\x00\x02\x07user-1\x00\x00");

    // Offset index of segment 0: one entry, (relative offset 4, position of batch C).
    let positions = batch_positions(&part.join("00000000000000000000.log"));
    assert_eq!(positions.len(), 3);
    let c_pos = positions[2].0;
    assert!(c_pos >= INDEX_INTERVAL_BYTES);
    let index = fs::read(part.join("00000000000000000000.index")).unwrap();
    assert_eq!(index.len(), INDEX_ENTRY_LEN);
    assert_eq!((le_u32(&index, 0), le_u32(&index, 4)), (4, c_pos as u32));
    // Time index: one entry, (timestamp of batch C, relative offset 4).
    let time = fs::read(part.join("00000000000000000000.timeindex")).unwrap();
    assert_eq!(time.len(), TIMEINDEX_ENTRY_LEN);
    assert_eq!((le_u64(&time, 0) as i64, le_u32(&time, 8)), (T0 + 10, 4));

    // Segment 5: one zstd batch; its records section is one zstd frame (magic 28 b5 2f fd).
    let log5 = fs::read(part.join("00000000000000000005.log")).unwrap();
    assert_eq!(le_u64(&log5, BASE_OFFSET_POS), 5);
    assert_eq!(
        u16::from_le_bytes([log5[ATTRIBUTES_POS], log5[ATTRIBUTES_POS + 1]]) & ATTR_COMPRESSION_MASK,
        CODEC_ZSTD
    );
    assert_eq!(&log5[BATCH_HEADER_LEN..BATCH_HEADER_LEN + 4], &[0x28, 0xb5, 0x2f, 0xfd]);
    assert_eq!(log5.len(), le_u32(&log5, LENGTH_POS) as usize + LENGTH_PREFIX_LEN);
}

/// The constants are the documented values (a change here must come with a format version
/// bump and a FORMAT.md update).
#[test]
fn format_constants_are_the_documented_values() {
    assert_eq!((BASE_OFFSET_POS, LENGTH_POS, MAGIC_POS, CRC_POS, CRC_START, ATTRIBUTES_POS), (0, 8, 12, 13, 17, 17));
    assert_eq!((LAST_OFFSET_DELTA_POS, FIRST_TIMESTAMP_POS, MAX_TIMESTAMP_POS, RECORD_COUNT_POS), (19, 23, 31, 39));
    assert_eq!((BATCH_HEADER_LEN, LENGTH_PREFIX_LEN, BATCH_MAGIC), (43, 12, 1));
    assert_eq!((ATTR_COMPRESSION_MASK, CODEC_NONE, CODEC_ZSTD), (7, 0, 1));
    assert_eq!((INDEX_ENTRY_LEN, TIMEINDEX_ENTRY_LEN, INDEX_INTERVAL_BYTES), (8, 12, 4096));
    assert_eq!((BATCH_BYTES_MAX, BATCH_RECORDS_MAX), (64 << 20, 1_000_000));
    assert_eq!((DECOMPRESSED_BYTES_MAX, RECORD_HEADERS_MAX), (128 << 20, 1024));
    assert_eq!((SEGMENT_NAME_WIDTH, RECOVERY_POINT_LEN), (20, 12));
    assert_eq!((SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX), (4096, 1 << 30));
    assert_eq!((NAME_LEN_MAX, PARTITIONS_MAX), (249, 4096));
}

/// Every constant in `format.rs` appears in the tables of `docs/FORMAT.md` with its value.
#[test]
fn format_doc_lists_every_constant() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/FORMAT.md")).unwrap();
    let src = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/format.rs")).unwrap();
    let mut checked = 0;
    for line in src.lines() {
        let Some(rest) = line.strip_prefix("pub const ") else { continue };
        let name = rest.split(':').next().unwrap().trim();
        assert!(doc.contains(&format!("`{name}`")), "docs/FORMAT.md does not mention `{name}`");
        checked += 1;
    }
    assert!(checked > 30);
}
