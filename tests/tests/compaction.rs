//! Compaction through the real binary: `POST /v1/topics/{topic}/compact` and its statistics,
//! and the background compactor driven by `cairnd`'s flags, observed through `/metrics`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_tests::*;

/// 10 rounds of one message per key `k0`..`k5` (about 300 bytes each) in 4 KiB segments:
/// several sealed segments, most values superseded. Returns each key's latest offset and value.
async fn fill(s: &Cairnd, topic: &str) -> BTreeMap<String, (u64, String)> {
    s.create_topic(topic, json!({"cleanup_policy": "compact", "segment_bytes": 4096})).await;
    let mut latest = BTreeMap::new();
    for round in 0..10 {
        let msgs: Vec<Value> = (0..6)
            .map(|k| json!({"key": format!("k{k}"), "value": format!("{round}-{}", "v".repeat(300)), "partition": 0}))
            .collect();
        let offsets = s.produce(topic, Value::Array(msgs.clone())).await;
        for (m, o) in msgs.iter().zip(&offsets) {
            let key = m["key"].as_str().unwrap().to_string();
            latest.insert(key, (o["offset"].as_u64().unwrap(), m["value"].as_str().unwrap().to_string()));
        }
    }
    latest
}

/// Every key's latest value is still readable at its original offset.
async fn check_latest(s: &Cairnd, topic: &str, latest: &BTreeMap<String, (u64, String)>) {
    let all = s.read_all(topic, 0).await;
    for (key, (offset, value)) in latest {
        let m = all
            .iter()
            .find(|m| m["offset"].as_u64() == Some(*offset))
            .unwrap_or_else(|| panic!("{key}'s latest value at {offset} is gone"));
        let k = match m.get("key_base64").and_then(Value::as_str) {
            Some(b) => unb64(b),
            None => m["key"].as_str().unwrap_or_default().as_bytes().to_vec(),
        };
        assert_eq!(k, key.as_bytes(), "{m}");
        // A JSON string value is stored as its JSON text.
        assert_eq!(value_bytes(m), Some(serde_json::to_vec(&json!(value)).unwrap()), "{m}");
    }
}

/// The value of the first metric line starting with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
}

#[tokio::test]
async fn compact_endpoint_replies_with_statistics() {
    let s = Cairnd::start().await;
    let latest = fill(&s, "kv").await;
    let r = s.post_json("/v1/topics/kv/compact", &json!({})).await;
    r.expect_status(200);
    let stats = r.json();
    for f in [
        "segments_before",
        "segments_after",
        "bytes_before",
        "bytes_after",
        "messages_before",
        "messages_after",
        "retention_segments_deleted",
        "duration_ms",
    ] {
        assert!(stats[f].is_u64(), "{f} in {stats}");
    }
    assert_eq!(stats["messages_before"], json!(60), "{stats}");
    let after = stats["messages_after"].as_u64().unwrap();
    assert!((6..60).contains(&after), "superseded values go, the latest stay: {stats}");
    assert!(stats["segments_after"].as_u64() < stats["segments_before"].as_u64(), "{stats}");
    assert!(stats["bytes_after"].as_u64() < stats["bytes_before"].as_u64(), "{stats}");
    check_latest(&s, "kv", &latest).await;
    s.post_json("/v1/topics/missing/compact", &json!({})).await.expect_error(404, "topic_not_found");
}

#[tokio::test]
async fn the_background_compactor_cleans_a_dirty_partition_without_being_asked() {
    let s = Cairnd::builder()
        .arg("--compaction-check-interval-ms")
        .arg("20")
        .arg("--compaction-dirty-ratio")
        .arg("0.2")
        .start()
        .await;
    let latest = fill(&s, "kv").await;
    let segments_written = 60 * 300 / 4096;
    let rounds = |text: &str| metric(text, "cairn_compactor_rounds_total ").expect("rounds metric");
    let first = rounds(&s.get("/metrics").await.text());
    // Over HTTP there is no event to wait on: poll the round counter, with a deadline. Two
    // more rounds than when the writes were done means one started after them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = s.get("/metrics").await.text();
        if rounds(&text) >= first + 2.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "the compactor did not complete 2 rounds in 60 s:\n{}", s.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let dirty = metric(&text, "cairn_partition_dirty_ratio{topic=\"kv\",partition=\"0\"} ").expect("dirty ratio");
    assert_eq!(dirty, 0.0, "compacted by the background compactor");
    let segments = s.partition_info("kv", 0).await["segments"].as_u64().unwrap();
    assert!(segments < segments_written, "{segments} segments, {segments_written} written");
    check_latest(&s, "kv", &latest).await;
}
