//! Helpers shared by the storage integration tests: catalogs in temp dirs, batch builders,
//! a controllable clock, reading a partition back, and damaging files on disk.
#![allow(dead_code)]

pub mod fuzz;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use cairn_storage::format::*;
use cairn_storage::*;

/// (offset, value) pairs as written or read back.
pub type Values = Vec<(u64, Option<Vec<u8>>)>;

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn new(start_ms: i64) -> Self {
        TestClock(Arc::new(AtomicI64::new(start_ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) -> i64 {
        self.0.fetch_add(ms, Ordering::SeqCst) + ms
    }
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn clock(&self) -> Clock {
        let c = Arc::clone(&self.0);
        Arc::new(move || c.load(Ordering::SeqCst))
    }
}

/// Options with one writer thread and, if given, a test clock.
pub fn opts(clock: Option<&TestClock>) -> CatalogOptions {
    let mut o = CatalogOptions { writer_threads: 1, ..CatalogOptions::default() };
    if let Some(c) = clock {
        o.clock = c.clock();
    }
    o
}

pub fn open(dir: &Path, clock: Option<&TestClock>) -> Result<Catalog> {
    Catalog::open(dir, opts(clock))
}

/// Config with small segments and no retention.
pub fn small(segment_bytes: u64) -> TopicConfig {
    TopicConfig { segment_bytes, retention_ms: None, ..TopicConfig::default() }
}

/// One batch of `values` (key `k`, no headers).
pub fn batch(values: &[&[u8]]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for v in values {
        b.push(Some(b"k"), Some(v), []);
    }
    b.finish(0, 0).unwrap()
}

/// A one-record batch of exactly `total` bytes whose value is `fill` repeated.
pub fn batch_of_len(total: usize, fill: u8) -> Vec<u8> {
    for v in 0..total {
        let mut b = BatchBuilder::new();
        b.push(None, Some(&vec![fill; v]), []);
        let out = b.finish(0, 0).unwrap();
        if out.len() == total {
            return out;
        }
    }
    panic!("no one-record batch is exactly {total} bytes");
}

/// Every (offset, value) from `from` to the end, decoding every batch.
pub fn read_values(p: &PartitionLog, from: u64) -> Values {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let r = p.read(next, 64 * 1024).unwrap();
        if r.batches.is_empty() {
            return out;
        }
        for b in &r.batches {
            let d = DecodedBatch::new(&b.bytes).unwrap();
            for rec in d.collect_checked().unwrap() {
                if rec.offset >= from {
                    out.push((rec.offset, rec.value.map(<[u8]>::to_vec)));
                }
            }
        }
        next = r.next_offset;
    }
}

/// The partition directory of `topic`/`p` under data dir `dir`.
pub fn part_dir(dir: &Path, topic: &str, p: u32) -> PathBuf {
    dir.join(TOPICS_DIR).join(topic).join(p.to_string())
}

/// Log files of a partition directory, oldest first.
pub fn logs(part: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(part)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == LOG_SUFFIX))
        .collect();
    v.sort();
    v
}

/// Start positions and headers of the batches of a log file.
pub fn batch_positions(log: &Path) -> Vec<(u64, BatchHeader)> {
    let bytes = fs::read(log).unwrap();
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + BATCH_HEADER_LEN <= bytes.len() {
        let Ok(h) = BatchHeader::parse(&bytes[pos..]) else { break };
        if pos + h.total_len() > bytes.len() {
            break;
        }
        out.push((pos as u64, h));
        pos += h.total_len();
    }
    out
}

/// XORs the byte at `pos` of `path` with `mask`.
pub fn flip(path: &Path, pos: u64, mask: u8) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, pos).unwrap();
    b[0] ^= mask;
    f.write_all_at(&b, pos).unwrap();
}

/// Writes `bytes` at `pos` of `path`.
pub fn overwrite(path: &Path, pos: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, pos).unwrap();
}

/// Truncates `path` to `len` bytes.
pub fn cut(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}
