//! Basic append / read / reopen behaviour of the engine through its public API.

use cairn_storage::*;

fn batch(values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for v in values {
        b.push(Some(b"k"), Some(v.as_bytes()), []);
    }
    b.finish(0, 0).unwrap()
}

fn values(log: &PartitionLog, from: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let r = log.read(next, 1 << 20).unwrap();
        if r.batches.is_empty() {
            return out;
        }
        for b in &r.batches {
            let d = DecodedBatch::new(&b.bytes).unwrap();
            for rec in d.collect_checked().unwrap() {
                if rec.offset >= from {
                    out.push((rec.offset, String::from_utf8(rec.value.unwrap().to_vec()).unwrap()));
                }
            }
        }
        next = r.next_offset;
    }
}

#[test]
fn append_read_roll_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TopicConfig { segment_bytes: 4096, ..TopicConfig::default() };
    {
        let cat = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
        let t = cat.create_topic("orders", cfg.clone()).unwrap();
        let p = t.partition(0).unwrap();
        for i in 0..200 {
            let a = p.append(batch(&[&format!("v{i}-a"), &format!("v{i}-b")])).unwrap();
            assert_eq!(a.base_offset, i * 2);
            assert_eq!(a.last_offset, i * 2 + 1);
        }
        assert_eq!(p.end_offset(), 400);
        assert!(p.segment_count() > 3, "rolled: {}", p.segment_count());
        let got = values(&p, 0);
        assert_eq!(got.len(), 400);
        assert_eq!(got[399], (399, "v199-b".to_string()));
        assert_eq!(values(&p, 251)[0], (251, "v125-b".to_string()));
        cat.close().unwrap();
    }
    let cat = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
    assert!(cat.opened_clean());
    let p = cat.topic("orders").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 400);
    assert_eq!(values(&p, 0).len(), 400);
    let a = p.append(batch(&["after"])).unwrap();
    assert_eq!(a.base_offset, 400);
    drop(cat); // no clean close: next open recovers
    let cat = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
    assert!(!cat.opened_clean());
    let p = cat.topic("orders").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 401);
    assert_eq!(values(&p, 399), vec![(399, "v199-b".to_string()), (400, "after".to_string())]);
}
