//! Helpers for the `cairn` binary tests: running the binary, building data directories with
//! the real storage engine, and damaging their files.

#![allow(dead_code)]

pub mod server;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

use cairn_storage::{BatchBuilder, Catalog, CatalogOptions, TopicConfig};

/// Held while a child process starts and while an in-process catalog lets go of its data
/// directory's lock. The lock is an `flock`, which belongs to the open file: a child started
/// by a parallel test holds a copy of every descriptor from its fork until its `exec` closes
/// them, so a catalog dropped in that window stays locked a little longer, and the next open
/// of its directory (in-process, or by a `cairn` child) failed with "in use" now and then on
/// a loaded machine. `Command::spawn` returns after the child's `exec`, so the two never
/// overlap under this guard.
static FORK_GUARD: Mutex<()> = Mutex::new(());

pub fn fork_guard() -> MutexGuard<'static, ()> {
    FORK_GUARD.lock().unwrap_or_else(|p| p.into_inner())
}

/// Closes `catalog` cleanly and releases its directory lock (under [`fork_guard`]).
pub fn close_catalog(catalog: Catalog) {
    let _guard = fork_guard();
    catalog.close().expect("close catalog");
    drop(catalog);
}

/// Runs `cairn` with `args` (no stdin) and returns its output.
pub fn cairn(args: &[&str]) -> Output {
    let child = {
        let _guard = fork_guard();
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("CAIRN_URL")
            .spawn()
            .expect("run cairn")
    };
    child.wait_with_output().expect("wait for cairn")
}

/// Stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A data directory written by the storage engine and closed cleanly: topic `events` with
/// 2 partitions and 8 KiB segments (so several segments each), `batches` batches of 5
/// records per partition; and topic `small` with one batch.
pub fn make_data_dir(batches: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::open(dir.path(), CatalogOptions::default()).expect("open catalog");
    let config = TopicConfig { partitions: 2, segment_bytes: 8192, ..TopicConfig::default() };
    let topic = catalog.create_topic("events", config).expect("create topic");
    for p in topic.partitions() {
        for i in 0..batches {
            let mut b = BatchBuilder::new();
            for j in 0..5 {
                let value = format!(
                    "{{\"partition\":{},\"batch\":{i},\"n\":{j},\"pad\":\"{}\"}}",
                    p.partition(),
                    "x".repeat(60)
                );
                b.push(Some(format!("key-{j}").as_bytes()), Some(value.as_bytes()), [("trace", &b"abc"[..])]);
            }
            p.append(b.finish(0, 0).expect("batch")).expect("append");
        }
    }
    let small = catalog.create_topic("small", TopicConfig::default()).expect("create topic");
    let mut b = BatchBuilder::new();
    b.push(None, Some(b"hello"), []);
    small.partition(0).expect("partition 0").append(b.finish(0, 0).expect("batch")).expect("append");
    close_catalog(catalog);
    dir
}

/// Segment files (`.log`) of a partition, sorted.
pub fn logs(data: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    let dir = data.join("topics").join(topic).join(partition.to_string());
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Flips one bit of the byte at `pos` of `path`.
pub fn flip(path: &Path, pos: usize) {
    let mut bytes = fs::read(path).expect("read");
    bytes[pos] ^= 0x04;
    fs::write(path, bytes).expect("write");
}

/// Appends garbage to `path` (a torn write).
pub fn append_garbage(path: &Path, bytes: &[u8]) {
    let mut data = fs::read(path).expect("read");
    data.extend_from_slice(bytes);
    fs::write(path, data).expect("write");
}
