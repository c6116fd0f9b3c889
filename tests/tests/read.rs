//! Stateless reads: start positions, bounds, encodings, reply formats, range errors.

use cairn_tests::*;

/// Produces `n` messages with values `"v<i>"` and key `"k<i>"` into partition 0 of `topic`,
/// `per_request` per request.
async fn fill(s: &Cairnd, topic: &str, n: usize, per_request: usize) {
    let mut i = 0;
    while i < n {
        let msgs: Vec<Value> =
            (i..n.min(i + per_request)).map(|j| json!({"key": format!("k{j}"), "value": format!("v{j}")})).collect();
        i += msgs.len();
        s.produce(topic, Value::Array(msgs)).await;
    }
}

fn offsets(body: &Value) -> Vec<u64> {
    body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages: {body}"))
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn default_read_starts_at_earliest() {
    let s = Cairnd::start().await;
    s.create_topic("r", json!({})).await;
    fill(&s, "r", 5, 2).await;
    let b = s.read("r", 0, "").await;
    assert_eq!(offsets(&b), vec![0, 1, 2, 3, 4]);
    assert_eq!(b["next_offset"], json!(5));
    assert_eq!(b["start_offset"], json!(0));
    assert_eq!(b["end_offset"], json!(5));
    let m = &b["messages"][3];
    assert_eq!(m["partition"], json!(0));
    assert_eq!(m["key"], json!("k3"));
    assert_eq!(m["value"], json!("v3"));
    assert!(m["timestamp"].is_i64(), "{m}");
}

#[tokio::test]
async fn offset_from_and_end_positions() {
    let s = Cairnd::start().await;
    s.create_topic("r", json!({})).await;
    fill(&s, "r", 10, 5).await;
    // offset=N inside a batch starts at N exactly.
    let b = s.read("r", 0, "offset=2").await;
    assert_eq!(offsets(&b), (2..10).collect::<Vec<_>>());
    assert_eq!(b["messages"][0]["value"], json!("v2"));
    assert_eq!(b["next_offset"], json!(10));
    let b = s.read("r", 0, "offset=7&max_messages=2").await;
    assert_eq!(offsets(&b), vec![7, 8]);
    assert_eq!(b["next_offset"], json!(9));
    let b = s.read("r", 0, "from=earliest").await;
    assert_eq!(offsets(&b).first(), Some(&0));
    // from=latest and offset=end_offset: valid, empty, next_offset = end.
    for q in ["from=latest", "offset=10"] {
        let b = s.read("r", 0, q).await;
        assert_eq!(b["messages"], json!([]), "{q}");
        assert_eq!(b["next_offset"], json!(10), "{q}");
        assert_eq!(b["end_offset"], json!(10), "{q}");
    }
    // An empty partition: offset 0 is its end.
    s.create_topic("empty", json!({})).await;
    let b = s.read("empty", 0, "offset=0").await;
    assert_eq!(b["messages"], json!([]));
    assert_eq!(b["next_offset"], json!(0));
    assert_eq!(b["end_offset"], json!(0));
}

#[tokio::test]
async fn offset_past_the_end_is_416_with_the_range() {
    let s = Cairnd::start().await;
    s.create_topic("r", json!({})).await;
    fill(&s, "r", 4, 4).await;
    for q in ["offset=5", "offset=1000000", "offset=18446744073709551615"] {
        let b = s.read_raw("r", 0, q).await.expect_error(416, "offset_out_of_range");
        assert_eq!(b["start_offset"], json!(0), "{q}: {b}");
        assert_eq!(b["end_offset"], json!(4), "{q}: {b}");
    }
    // The same for the other reply formats.
    for accept in [NDJSON, RECORDS, SSE] {
        let r = send(s.request(reqwest::Method::GET, &read_path("r", 0, "offset=9")).header("accept", accept)).await;
        let b = r.expect_error(416, "offset_out_of_range");
        assert_eq!(b["end_offset"], json!(4), "{accept}");
    }
}

#[tokio::test]
async fn timestamp_reads_start_at_the_first_message_at_or_after() {
    let s = Cairnd::start().await;
    s.create_topic("t", json!({})).await;
    let first = s.produce("t", json!([{"value": "a0"}, {"value": "a1"}])).await;
    let t0 = first[0]["timestamp"].as_i64().unwrap();
    // Produce until the server's clock has moved on (each reply says when it appended).
    let mut later = None;
    for i in 0..10_000 {
        let o = s.produce("t", json!([{ "value": format!("b{i}") }])).await;
        let ts = o[0]["timestamp"].as_i64().unwrap();
        assert!(ts >= t0, "timestamps are non-decreasing");
        if ts > t0 {
            later = Some((o[0]["offset"].as_u64().unwrap(), ts));
            break;
        }
    }
    let (later_offset, t1) = later.expect("the server clock never advanced");
    let b = s.read("t", 0, &format!("timestamp={t1}")).await;
    assert_eq!(offsets(&b).first(), Some(&later_offset), "first message with timestamp >= {t1}: {b}");
    assert!(b["messages"].as_array().unwrap().iter().all(|m| m["timestamp"].as_i64().unwrap() >= t1));
    let b = s.read("t", 0, &format!("timestamp={t0}")).await;
    assert_eq!(offsets(&b).first(), Some(&0));
    let b = s.read("t", 0, "timestamp=0").await;
    assert_eq!(offsets(&b).first(), Some(&0));
    // Later than everything: nothing, positioned at the end.
    let end = s.end_offset("t", 0).await;
    let b = s.read("t", 0, &format!("timestamp={}", t1 + 3_600_000)).await;
    assert_eq!(b["messages"], json!([]));
    assert_eq!(b["next_offset"], json!(end));
}

#[tokio::test]
async fn max_messages_bounds_the_reply() {
    let s = Cairnd::start().await;
    s.create_topic("r", json!({})).await;
    fill(&s, "r", 250, 125).await;
    let b = s.read("r", 0, "offset=0").await;
    assert_eq!(offsets(&b), (0..100).collect::<Vec<_>>(), "default max_messages is 100");
    assert_eq!(b["next_offset"], json!(100));
    let b = s.read("r", 0, "offset=0&max_messages=7").await;
    assert_eq!(offsets(&b), (0..7).collect::<Vec<_>>());
    assert_eq!(b["next_offset"], json!(7));
    let b = s.read("r", 0, "offset=0&max_messages=10000").await;
    assert_eq!(offsets(&b).len(), 250);
    assert_eq!(b["next_offset"], json!(250));
    // More than 10000 is either refused or capped, never more than the limit nor a 5xx.
    let r = s.read_raw("r", 0, "offset=0&max_messages=10001").await;
    assert!(r.status == 200 || r.status == 400, "{} {}", r.status, r.text());
    if r.status == 400 {
        r.expect_error(400, "bad_request");
    }
    for q in [
        "max_messages=abc",
        "max_messages=-1",
        "max_bytes=lots",
        "offset=abc",
        "offset=-1",
        "from=middle",
        "timestamp=soon",
        "wait_ms=x",
        "encoding=rot13",
    ] {
        s.read_raw("r", 0, q).await.expect_error(400, "bad_request");
    }
}

#[tokio::test]
async fn max_bytes_stops_before_the_message_that_would_pass_it_but_returns_one() {
    let s = Cairnd::start().await;
    s.create_topic("r", json!({})).await;
    let big = "b".repeat(1000);
    let msgs: Vec<Value> = (0..10).map(|_| json!({ "value": big })).collect();
    s.produce("r", Value::Array(msgs)).await;
    let b = s.read("r", 0, "offset=0&max_bytes=2500").await;
    let n = offsets(&b).len();
    assert!((1..=2).contains(&n), "1000-byte messages under max_bytes=2500: got {n}");
    assert_eq!(b["next_offset"], json!(n));
    // A single message larger than max_bytes is still returned.
    let b = s.read("r", 0, "offset=3&max_bytes=1").await;
    assert_eq!(offsets(&b), vec![3]);
    assert_eq!(b["next_offset"], json!(4));
    // NDJSON follows the same rule.
    let r = send(s.request(reqwest::Method::GET, &read_path("r", 0, "offset=5&max_bytes=1")).header("accept", NDJSON))
        .await;
    r.expect_status(200);
    assert_eq!(r.text().lines().filter(|l| !l.trim().is_empty()).count(), 1);
    assert_eq!(r.header_u64("Cairn-Next-Offset"), 6);
}

#[tokio::test]
async fn encodings() {
    let s = Cairnd::start().await;
    s.create_topic("enc", json!({})).await;
    s.produce("enc", json!([{"value": {"x": 1}}, {"value_base64": b64(&[0xc3, 0x28])}, {"value": "s"}])).await;
    let j = s.read("enc", 0, "encoding=json").await;
    assert_eq!(j["messages"][0]["value"], json!({"x": 1}));
    assert_eq!(j["messages"][1]["value_base64"], json!(b64(&[0xc3, 0x28])), "invalid UTF-8 is not JSON");
    assert_eq!(j["messages"][2]["value"], json!("s"));
    assert_eq!(s.read("enc", 0, "").await, j, "encoding=json is the default");
    let b = s.read("enc", 0, "encoding=base64").await;
    let m = b["messages"].as_array().unwrap();
    assert_eq!(m[0]["value_base64"], json!(b64(br#"{"x":1}"#)));
    assert_eq!(m[1]["value_base64"], json!(b64(&[0xc3, 0x28])));
    assert_eq!(m[2]["value_base64"], json!(b64(br#""s""#)));
    assert!(m.iter().all(|m| m.get("value").is_none_or(|v| v.is_null())), "{b}");
}

#[tokio::test]
async fn ndjson_reply_with_offset_headers() {
    let s = Cairnd::start().await;
    s.create_topic("nd", json!({})).await;
    fill(&s, "nd", 6, 3).await;
    let r =
        send(s.request(reqwest::Method::GET, &read_path("nd", 0, "offset=1&max_messages=3")).header("accept", NDJSON))
            .await;
    r.expect_status(200);
    assert_eq!(r.media_type(), NDJSON);
    let lines: Vec<Value> =
        r.text().lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|m| m["offset"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(lines[0]["value"], json!("v1"));
    assert_eq!(lines[2]["key"], json!("k3"));
    assert_eq!(r.header_u64("Cairn-Next-Offset"), 4);
    assert_eq!(r.header_u64("Cairn-End-Offset"), 6);
    // At the end: empty body, headers still there.
    let r = send(s.request(reqwest::Method::GET, &read_path("nd", 0, "offset=6")).header("accept", NDJSON)).await;
    r.expect_status(200);
    assert!(r.text().trim().is_empty());
    assert_eq!(r.header_u64("Cairn-Next-Offset"), 6);
    assert_eq!(r.header_u64("Cairn-End-Offset"), 6);
}

/// `Accept` is negotiated by q-value: a type the client ranks lower is not chosen because it
/// comes first, and `q=0` refuses a type.
#[tokio::test]
async fn accept_q_values_choose_the_reply_format() {
    let s = Cairnd::start().await;
    s.create_topic("neg", json!({})).await;
    fill(&s, "neg", 2, 2).await;
    let cases = [
        ("application/x-ndjson;q=0.1, application/json", "application/json"),
        ("application/json;q=0.5, application/x-ndjson", NDJSON),
        ("application/x-ndjson;q=0, */*;q=0.1", "application/json"),
        ("*/*, application/x-ndjson", NDJSON),
    ];
    for (accept, want) in cases {
        let r = send(s.request(reqwest::Method::GET, &read_path("neg", 0, "")).header("accept", accept)).await;
        r.expect_status(200);
        assert_eq!(r.media_type(), want, "Accept: {accept}");
    }
}

#[tokio::test]
async fn raw_records_replay() {
    let s = Cairnd::start().await;
    s.create_topic("raw", json!({"segment_bytes": 4096})).await;
    // 20 requests of 10 messages: 20 batches across several segments.
    for r in 0..20 {
        let msgs: Vec<Value> =
            (0..10).map(|i| json!({"key": format!("k{}", r * 10 + i), "value": "p".repeat(50), "headers": {"r": r.to_string()}})).collect();
        s.produce("raw", Value::Array(msgs)).await;
    }
    let mut offset = 0u64;
    let mut seen = Vec::new();
    let mut requests = 0;
    while offset < 200 {
        requests += 1;
        assert!(requests < 200, "raw replay does not advance");
        let r = send(
            s.request(reqwest::Method::GET, &read_path("raw", 0, &format!("offset={offset}")))
                .header("accept", RECORDS),
        )
        .await;
        r.expect_status(200);
        assert_eq!(r.media_type(), RECORDS);
        assert_eq!(r.header_u64("Cairn-End-Offset"), 200);
        let batches = decode_batches(&r.body);
        assert!(!batches.is_empty());
        for (h, recs) in &batches {
            assert_eq!(h.record_count, 10, "one batch per produce request");
            assert_eq!(h.base_offset, recs[0].offset);
            seen.extend(recs.iter().cloned());
        }
        let next = batches.last().unwrap().0.next_offset();
        assert_eq!(r.header_u64("Cairn-Next-Offset"), next);
        offset = next;
    }
    assert_eq!(seen.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
    for r in &seen {
        assert_eq!(r.key.as_deref(), Some(format!("k{}", r.offset).as_bytes()));
        assert_eq!(r.value.as_deref(), Some(format!("\"{}\"", "p".repeat(50)).as_bytes()));
        assert_eq!(r.headers, vec![("r".to_string(), (r.offset / 10).to_string().into_bytes())]);
    }
    // max_bytes: whole batches, at least one.
    let r =
        send(s.request(reqwest::Method::GET, &read_path("raw", 0, "offset=0&max_bytes=1")).header("accept", RECORDS))
            .await;
    r.expect_status(200);
    let batches = decode_batches(&r.body);
    assert_eq!(batches.len(), 1, "max_bytes=1 gives exactly one whole batch");
    assert_eq!(batches[0].1.len(), 10);
    assert_eq!(r.header_u64("Cairn-Next-Offset"), 10);
    // From the middle of a batch: the stored batch that holds the offset, whole.
    let r =
        send(s.request(reqwest::Method::GET, &read_path("raw", 0, "offset=25&max_bytes=1")).header("accept", RECORDS))
            .await;
    r.expect_status(200);
    let batches = decode_batches(&r.body);
    assert_eq!(batches.len(), 1);
    assert_eq!((batches[0].0.base_offset, batches[0].0.last_offset()), (20, 29));
    assert_eq!(r.header_u64("Cairn-Next-Offset"), 30);
    // At the end: empty.
    let r = send(s.request(reqwest::Method::GET, &read_path("raw", 0, "offset=200")).header("accept", RECORDS)).await;
    r.expect_status(200);
    assert!(r.body.is_empty());
    assert_eq!(r.header_u64("Cairn-Next-Offset"), 200);
}

#[tokio::test]
async fn unknown_partition_topic_and_group() {
    let s = Cairnd::start().await;
    s.create_topic("known", json!({"partitions": 2})).await;
    s.read_raw("known", 2, "").await.expect_error(404, "partition_not_found");
    s.read_raw("known", 77, "").await.expect_error(404, "partition_not_found");
    s.read_raw("unknown", 0, "").await.expect_error(404, "topic_not_found");
    s.read_raw("known", 0, "group=nobody").await.expect_error(404, "group_not_found");
}

#[tokio::test]
async fn reads_after_restart_and_crash_are_identical() {
    let mut s = Cairnd::start().await;
    s.create_topic("kept", json!({"partitions": 2, "segment_bytes": 4096})).await;
    for p in 0..2 {
        s.produce_n("kept", p, 120, &format!("p{p}")).await;
    }
    let before: Vec<Value> = vec![s.read_all("kept", 0).await.into(), s.read_all("kept", 1).await.into()];
    s.restart().await;
    let after: Vec<Value> = vec![s.read_all("kept", 0).await.into(), s.read_all("kept", 1).await.into()];
    assert_eq!(before, after);
    s.sigkill().await;
    s.start_again().await;
    let crashed: Vec<Value> = vec![s.read_all("kept", 0).await.into(), s.read_all("kept", 1).await.into()];
    assert_eq!(before, crashed);
}

/// The segment files (`*.log`) of partition `p` of `topic`, sorted by name (base offset).
fn segment_files(data_dir: &std::path::Path, topic: &str, p: u32) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "log")
                && path.parent().and_then(|d| d.file_name()).is_some_and(|n| n == p.to_string().as_str())
                && path.ancestors().any(|a| a.file_name().is_some_and(|n| n == topic))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

const DAMAGED: &str = "damaged";

fn damaged_value(batch: usize, msg: usize) -> String {
    format!("batch{batch}-msg{msg}-{}", "z".repeat(40))
}

/// A server whose topic `damaged` holds three batches of 5 messages (offsets 0-4, 5-9,
/// 10-14) with one byte flipped in the middle of the second batch's records while it was
/// stopped. Returns the server and the segment file name.
async fn server_with_a_damaged_batch() -> (Cairnd, String) {
    let mut s = Cairnd::start().await;
    s.create_topic(DAMAGED, json!({})).await;
    for b in 0..3 {
        let msgs: Vec<Value> = (0..5).map(|i| json!({ "value": damaged_value(b, i) })).collect();
        s.produce(DAMAGED, Value::Array(msgs)).await;
    }
    let raw = send(s.request(reqwest::Method::GET, &read_path(DAMAGED, 0, "offset=0")).header("accept", RECORDS)).await;
    let sizes: Vec<usize> = decode_batches(&raw.body).iter().map(|(h, _)| h.total_len()).collect();
    assert_eq!(sizes.len(), 3);
    assert_eq!(s.sigterm().await.code(), Some(0));
    let segs = segment_files(s.data_dir(), DAMAGED, 0);
    assert_eq!(segs.len(), 1, "one segment: {segs:?}");
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    let second = sizes[0]..sizes[0] + sizes[1];
    assert_eq!(&bytes[second.clone()], &raw.body[second.clone()], "the segment holds the batches as served");
    bytes[sizes[0] + sizes[1] / 2] ^= 0x5a;
    std::fs::write(&segs[0], &bytes).unwrap();
    s.start_again().await;
    (s, segs[0].file_name().unwrap().to_string_lossy().to_string())
}

#[tokio::test]
async fn a_corrupted_batch_is_500_data_corrupted_naming_the_segment() {
    let (s, seg_name) = server_with_a_damaged_batch().await;
    for accept in ["application/json", NDJSON, RECORDS] {
        let r =
            send(s.request(reqwest::Method::GET, &read_path(DAMAGED, 0, "offset=7")).header("accept", accept)).await;
        let body = r.expect_error(500, "data_corrupted");
        let text = body.to_string();
        assert!(text.contains(&seg_name), "{accept}: the error names the segment file {seg_name}: {body}");
        assert!(!text.contains("batch1-msg"), "{accept}: damaged bytes are never served as data: {body}");
    }
    // Nothing was silently dropped from the middle: the end is where it was.
    assert_eq!(s.end_offset(DAMAGED, 0).await, 15);
    s.get("/v1/health").await.expect_status(200);
}

#[tokio::test]
async fn reads_of_other_positions_work_around_a_corrupted_batch() {
    let (s, _) = server_with_a_damaged_batch().await;
    // Before the damaged batch.
    let b = s.read(DAMAGED, 0, "offset=0&max_messages=5").await;
    assert_eq!(b["messages"].as_array().unwrap().len(), 5);
    assert_eq!(b["messages"][4]["value"], json!(damaged_value(0, 4)));
    // After it.
    let b = s.read(DAMAGED, 0, "offset=10").await;
    assert_eq!(b["messages"].as_array().unwrap().len(), 5, "{b}");
    assert_eq!(b["messages"][0]["value"], json!(damaged_value(2, 0)));
    let r = send(s.request(reqwest::Method::GET, &read_path(DAMAGED, 0, "offset=10")).header("accept", RECORDS)).await;
    r.expect_status(200);
    let batches = decode_batches(&r.body);
    assert_eq!(batches[0].0.base_offset, 10);
}
