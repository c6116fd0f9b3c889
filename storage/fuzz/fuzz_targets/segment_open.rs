//! libFuzzer target: a partition whose single segment's log (or, from the first input
//! byte, its offset index or time index) is the fuzz input, opened after a crash or a
//! clean shutdown and read to its end. Must never panic or hang; errors are fine.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cairn_storage::format::*;
use cairn_storage::{Catalog, CatalogOptions, DecodedBatch, TopicConfig};
use libfuzzer_sys::fuzz_target;

fn opts() -> CatalogOptions {
    CatalogOptions { writer_threads: 1, ..CatalogOptions::default() }
}

/// Where the cases run: a RAM file system if there is one (fsyncs are free there).
fn base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Two data directories with topic `t` (one partition, nothing written): closed cleanly,
/// and not (as after a crash). Made once per fuzzing process, under a `cairn-fuzz-` prefix;
/// libFuzzer never drops statics, so they stay behind (under 1 MB; `rm -r
/// /dev/shm/cairn-fuzz-*` after a run).
fn templates() -> &'static (tempfile::TempDir, tempfile::TempDir) {
    static T: OnceLock<(tempfile::TempDir, tempfile::TempDir)> = OnceLock::new();
    T.get_or_init(|| {
        let make = |clean: bool| {
            let dir = tempfile::Builder::new().prefix("cairn-fuzz-").tempdir_in(base()).unwrap();
            let cat = Catalog::open(dir.path(), opts()).unwrap();
            cat.create_topic("t", TopicConfig { segment_bytes: 1 << 20, ..TopicConfig::default() }).unwrap();
            if clean {
                cat.close().unwrap();
            }
            dir
        };
        (make(true), make(false))
    })
}

fn copy_tree(from: &Path, to: &Path) {
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

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (clean, crashed) = templates();
    let dir = tempfile::tempdir_in(base()).unwrap();
    copy_tree(if mode & 4 != 0 { clean.path() } else { crashed.path() }, dir.path());
    let part = dir.path().join(TOPICS_DIR).join("t").join("0");
    let stem = format!("{:020}", 0);
    let target = match mode & 3 {
        0 | 1 => part.join(format!("{stem}.{LOG_SUFFIX}")),
        2 => part.join(format!("{stem}.{INDEX_SUFFIX}")),
        _ => part.join(format!("{stem}.{TIMEINDEX_SUFFIX}")),
    };
    fs::write(&target, rest).unwrap();
    let Ok(cat) = Catalog::open(dir.path(), opts()) else { return };
    let Some(p) = cat.topic("t").and_then(|t| t.partition(0)) else { return };
    let mut next = p.start_offset();
    while next < p.end_offset() {
        let Ok(r) = p.read(next, 1 << 16) else { return };
        if r.batches.is_empty() {
            return;
        }
        assert!(r.next_offset > next, "a read at {next} made no progress");
        for b in &r.batches {
            if let Ok(d) = DecodedBatch::new(&b.bytes) {
                let _ = d.collect_checked();
            }
        }
        next = r.next_offset;
    }
});
