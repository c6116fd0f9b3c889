//! Produce: the four body types, partition choice, validation before append, idempotency,
//! limits, and concurrent producers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_storage::{BatchBuilder, Codec};
use cairn_tests::*;

fn offsets_of(offs: &[Value]) -> Vec<u64> {
    offs.iter().map(|o| o["offset"].as_u64().unwrap_or_else(|| panic!("no offset in {o}"))).collect()
}

#[tokio::test]
async fn json_produce_replies_offsets_in_request_order() {
    let s = Cairnd::start().await;
    s.create_topic("orders", json!({})).await;
    let before = now_ms();
    let r = s
        .produce_raw(
            "orders",
            json!([
                {"key": "user-42", "value": {"any": "json"}, "headers": {"trace": "abc"}},
                {"value": [1, 2, 3]},
                {"value": "text", "partition": 0},
            ]),
        )
        .await;
    r.expect_status(200);
    assert_eq!(r.media_type(), "application/json");
    let body = r.json();
    assert_eq!(body["duplicate"], json!(false));
    let offs = body["offsets"].as_array().unwrap();
    assert_eq!(offsets_of(offs), vec![0, 1, 2]);
    let after = now_ms();
    for o in offs {
        assert_eq!(o["partition"], json!(0));
        let ts = o["timestamp"].as_i64().unwrap_or_else(|| panic!("no timestamp in {o}"));
        // Server and test share the clock; allow for coarse clocks but not garbage.
        assert!(ts >= before - 1000 && ts <= after + 1000, "timestamp {ts} not within [{before}, {after}]");
    }
    let read = s.read("orders", 0, "offset=0").await;
    let m = read["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0]["key"], json!("user-42"));
    assert_eq!(m[0]["value"], json!({"any": "json"}));
    assert_eq!(m[0]["headers"], json!({"trace": "abc"}));
    assert_eq!(m[0]["timestamp"], offs[0]["timestamp"]);
    assert!(m[1].get("key").is_some_and(|k| k.is_null()), "a message without a key has key null: {}", m[1]);
    assert_eq!(m[1]["value"], json!([1, 2, 3]));
    assert_eq!(m[2]["value"], json!("text"));
}

#[tokio::test]
async fn json_values_are_stored_as_compact_text_and_bytes_as_given() {
    let s = Cairnd::start().await;
    let raw: &[u8] = &[0xff, 0x00, 0xfe, 0x80, b'{'];
    let offs = s
        .produce(
            "values",
            json!([
                {"value": {"a": 1, "b": [true, null, 2.5]}},
                {"value_base64": b64(raw)},
                {"value_base64": b64(br#"{"parsed":true}"#)},
                {"key": "gone"},
                {"value": 42},
                {"value": "", "key": ""},
            ]),
        )
        .await;
    assert_eq!(offsets_of(&offs), vec![0, 1, 2, 3, 4, 5]);
    let b = s.read("values", 0, "offset=0&encoding=base64").await;
    let m = b["messages"].as_array().unwrap();
    for msg in m {
        assert!(msg.get("value").is_none() || msg["value"].is_null(), "encoding=base64 gives value_base64: {msg}");
    }
    assert_eq!(value_bytes(&m[0]).unwrap(), br#"{"a":1,"b":[true,null,2.5]}"#.to_vec());
    assert_eq!(value_bytes(&m[1]).unwrap(), raw.to_vec());
    assert_eq!(value_bytes(&m[2]).unwrap(), br#"{"parsed":true}"#.to_vec());
    assert_eq!(value_bytes(&m[3]), None, "neither value nor value_base64: a null value");
    assert_eq!(value_bytes(&m[4]).unwrap(), b"42".to_vec());
    assert_eq!(value_bytes(&m[5]).unwrap(), b"\"\"".to_vec());
    // encoding=json: valid JSON bytes come back parsed, others as value_base64.
    let j = s.read("values", 0, "offset=0").await;
    let m = j["messages"].as_array().unwrap();
    assert_eq!(m[0]["value"], json!({"a": 1, "b": [true, null, 2.5]}));
    assert_eq!(m[1]["value_base64"].as_str().map(unb64), Some(raw.to_vec()), "{}", m[1]);
    assert_eq!(m[2]["value"], json!({"parsed": true}));
    assert!(m[3].get("value").is_some_and(|v| v.is_null()), "a tombstone has value null: {}", m[3]);
    assert_eq!(m[3]["key"], json!("gone"));
    assert_eq!(m[5]["key"], json!(""), "an empty key is a key, not null");
}

#[tokio::test]
async fn a_large_ndjson_upload() {
    let s = Cairnd::start().await;
    s.create_topic("bulk", json!({})).await;
    let n = 20_000;
    let body: String = (0..n).map(|i| format!("{{\"key\":\"k{}\",\"value\":{{\"i\":{i}}}}}\n", i % 97)).collect();
    let r = s.post_raw("/v1/topics/bulk/messages", NDJSON, body).await;
    r.expect_status(200);
    let offs = offsets_of(r.json()["offsets"].as_array().unwrap());
    assert_eq!(offs, (0..n as u64).collect::<Vec<_>>());
    let all = s.read_all("bulk", 0).await;
    assert_eq!(all.len(), n);
    assert_eq!(value_bytes(&all[12345]).unwrap(), br#"{"i":12345}"#.to_vec());
    assert_eq!(all[12345]["key"], json!(format!("k{}", 12345 % 97)));
}

#[tokio::test]
async fn ndjson_produce() {
    let s = Cairnd::start().await;
    s.create_topic("lines", json!({"partitions": 2})).await;
    let body = concat!(
        r#"{"key": "k1", "value": {"n": 1}, "partition": 1}"#,
        "\n",
        r#"{"value_base64": "AAEC", "partition": 1, "headers": {"h": "v"}}"#,
        "\n",
        r#"{"value": "three", "partition": 1}"#,
        "\n"
    );
    let r = s.post_raw("/v1/topics/lines/messages", NDJSON, body).await;
    r.expect_status(200);
    let offs = r.json()["offsets"].as_array().unwrap().clone();
    assert_eq!(offsets_of(&offs), vec![0, 1, 2]);
    assert!(offs.iter().all(|o| o["partition"] == json!(1)));
    let m = s.read("lines", 1, "offset=0&encoding=base64").await["messages"].as_array().unwrap().clone();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0]["key"], json!("k1"));
    assert_eq!(value_bytes(&m[0]).unwrap(), br#"{"n":1}"#.to_vec());
    assert_eq!(value_bytes(&m[1]).unwrap(), vec![0, 1, 2]);
    assert_eq!(m[1]["headers"], json!({"h": "v"}));
    assert_eq!(value_bytes(&m[2]).unwrap(), br#""three""#.to_vec());
    // Without a trailing newline too.
    let r = s.post_raw("/v1/topics/lines/messages", NDJSON, r#"{"value": 4, "partition": 0}"#).await;
    r.expect_status(200);
    assert_eq!(offsets_of(r.json()["offsets"].as_array().unwrap()), vec![0]);
}

#[tokio::test]
async fn octet_stream_produce_with_key_and_partition_headers() {
    let s = Cairnd::start().await;
    s.create_topic("blobs", json!({"partitions": 3})).await;
    let blob: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let r = send(
        s.request(reqwest::Method::POST, "/v1/topics/blobs/messages")
            .header("content-type", "application/octet-stream")
            .header("Cairn-Key", "blob-key")
            .header("Cairn-Partition", "2")
            .body(blob.clone()),
    )
    .await;
    r.expect_status(200);
    let offs = r.json()["offsets"].as_array().unwrap().clone();
    assert_eq!(offs.len(), 1);
    assert_eq!(offs[0]["partition"], json!(2));
    assert_eq!(offs[0]["offset"], json!(0));
    let m = s.read("blobs", 2, "encoding=base64").await["messages"][0].clone();
    assert_eq!(m["key"], json!("blob-key"));
    assert_eq!(value_bytes(&m).unwrap(), blob);
    // No headers: some partition, no key.
    let r = s.post_raw("/v1/topics/blobs/messages", "application/octet-stream", "plain").await;
    r.expect_status(200);
    let o = r.json()["offsets"][0].clone();
    let p = o["partition"].as_u64().unwrap() as u32;
    assert!(p < 3);
    let m = s.read("blobs", p, &format!("offset={}", o["offset"])).await["messages"][0].clone();
    assert!(m["key"].is_null());
    assert_eq!(value_bytes(&m).unwrap(), b"plain".to_vec());
    // Bad partition header values.
    let bad = |v: &'static str| {
        send(
            s.request(reqwest::Method::POST, "/v1/topics/blobs/messages")
                .header("content-type", "application/octet-stream")
                .header("Cairn-Partition", v)
                .body("x"),
        )
    };
    bad("abc").await.expect_error(400, "bad_request");
    bad("-1").await.expect_error(400, "bad_request");
    // Rust's integer parser takes a leading '+'; the API's integers are digits only.
    bad("+1").await.expect_error(400, "bad_request");
    bad("3").await.expect_error(404, "partition_not_found");
}

/// (key, value, headers) of one record to build.
type Rec<'a> = (Option<&'a str>, Option<&'a [u8]>, &'a [(&'a str, &'a [u8])]);

fn batch(records: &[Rec<'_>], codec: Codec) -> Vec<u8> {
    let mut b = BatchBuilder::with_codec(codec);
    for (k, v, h) in records {
        b.push(k.map(str::as_bytes), *v, h.iter().copied());
    }
    b.finish(0, 0).unwrap()
}

async fn post_records(s: &Cairnd, topic: &str, partition: Option<&str>, body: Vec<u8>) -> Resp {
    let mut rb =
        s.request(reqwest::Method::POST, &format!("/v1/topics/{topic}/messages")).header("content-type", RECORDS);
    if let Some(p) = partition {
        rb = rb.header("Cairn-Partition", p);
    }
    send(rb.body(body)).await
}

#[tokio::test]
async fn records_produce_appends_client_built_batches() {
    let s = Cairnd::start().await;
    s.create_topic("rec", json!({"partitions": 2})).await;
    let plain = batch(
        &[
            (Some("k0"), Some(b"v0"), &[("h", b"1")]),
            (None, Some(&[0xff, 0x01]), &[]),
            (Some("k2"), None, &[("a", b""), ("b", b"2")]),
        ],
        Codec::None,
    );
    let r = post_records(&s, "rec", Some("1"), plain).await;
    r.expect_status(200);
    let body = r.json();
    assert_eq!(body["duplicate"], json!(false));
    let offs = body["offsets"].as_array().unwrap().clone();
    assert_eq!(offsets_of(&offs), vec![0, 1, 2], "one offset per record: {body}");
    assert!(offs.iter().all(|o| o["partition"] == json!(1)), "{body}");
    let ts = offs[0]["timestamp"].as_i64().unwrap();
    assert!((ts - now_ms()).abs() < 60_000, "the server assigns timestamps: {ts}");
    // A zstd-compressed batch follows at the next offsets.
    let values: Vec<Vec<u8>> = (0..50).map(|i| format!("compressible value number {i}").into_bytes()).collect();
    let mut b = BatchBuilder::with_codec(Codec::Zstd(3));
    for v in &values {
        b.push(Some(b"z"), Some(v), [("n", b"x" as &[u8])]);
    }
    let r = post_records(&s, "rec", Some("1"), b.finish(0, 0).unwrap()).await;
    r.expect_status(200);
    assert_eq!(offsets_of(r.json()["offsets"].as_array().unwrap()), (3..53).collect::<Vec<_>>());
    // Read back through JSON.
    let m = s.read("rec", 1, "offset=0&encoding=base64").await["messages"].as_array().unwrap().clone();
    assert_eq!(m.len(), 53);
    assert_eq!(m[0]["key"], json!("k0"));
    assert_eq!(value_bytes(&m[0]).unwrap(), b"v0".to_vec());
    assert_eq!(m[0]["headers"], json!({"h": "1"}));
    assert!(m[1]["key"].is_null());
    assert_eq!(value_bytes(&m[1]).unwrap(), vec![0xff, 0x01]);
    assert_eq!(value_bytes(&m[2]), None);
    assert_eq!(m[2]["headers"], json!({"a": "", "b": "2"}));
    for (i, v) in values.iter().enumerate() {
        assert_eq!(m[3 + i]["offset"], json!(3 + i));
        assert_eq!(value_bytes(&m[3 + i]).unwrap(), *v);
    }
    // And through the raw path: the batches come back with server offsets and timestamps.
    let raw = send(s.request(reqwest::Method::GET, &read_path("rec", 1, "offset=0")).header("accept", RECORDS)).await;
    raw.expect_status(200);
    let batches = decode_batches(&raw.body);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].0.base_offset, 0);
    assert_eq!(batches[0].0.first_timestamp, ts);
    assert_eq!(batches[1].0.base_offset, 3);
    assert!(batches[1].0.is_compressed(), "appended without re-encoding: still zstd");
    assert_eq!(batches[1].1.len(), 50);
    assert_eq!(batches[1].1[49].value.as_deref(), Some(values[49].as_slice()));
}

#[tokio::test]
async fn records_produce_rejects_bad_batches_and_writes_nothing() {
    let s = Cairnd::start().await;
    s.create_topic("rec", json!({"partitions": 2, "max_message_bytes": 1000})).await;
    let good = batch(&[(Some("k"), Some(b"value"), &[]), (None, Some(b"v2"), &[])], Codec::None);
    // A flipped bit in the records: CRC mismatch.
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    post_records(&s, "rec", Some("0"), flipped).await.expect_error(400, "bad_request");
    // Truncated.
    post_records(&s, "rec", Some("0"), good[..good.len() - 3].to_vec()).await.expect_error(400, "bad_request");
    // Garbage, empty, trailing bytes.
    post_records(&s, "rec", Some("0"), b"not a batch at all, definitely not".to_vec())
        .await
        .expect_error(400, "bad_request");
    post_records(&s, "rec", Some("0"), Vec::new()).await.expect_error(400, "bad_request");
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    post_records(&s, "rec", Some("0"), trailing).await.expect_error(400, "bad_request");
    // A record over max_message_bytes.
    let big = vec![7u8; 2000];
    let too_big = batch(&[(None, Some(b"small"), &[]), (None, Some(&big), &[])], Codec::None);
    post_records(&s, "rec", Some("0"), too_big).await.expect_error(413, "message_too_large");
    // Bad partition header.
    post_records(&s, "rec", Some("9"), good.clone()).await.expect_error(404, "partition_not_found");
    post_records(&s, "rec", Some("x"), good.clone()).await.expect_error(400, "bad_request");
    assert_eq!(s.end_offset("rec", 0).await, 0, "nothing was written");
    assert_eq!(s.end_offset("rec", 1).await, 0, "nothing was written");
    // The good one still goes in.
    post_records(&s, "rec", Some("0"), good).await.expect_status(200);
    assert_eq!(s.end_offset("rec", 0).await, 2);
}

#[tokio::test]
async fn explicit_partitions_are_honoured_and_checked() {
    let s = Cairnd::start().await;
    s.create_topic("parts", json!({"partitions": 3})).await;
    let offs = s
        .produce(
            "parts",
            json!([{"value": 1, "partition": 2}, {"value": 2, "partition": 0}, {"value": 3, "partition": 2}]),
        )
        .await;
    let got: Vec<(u64, u64)> =
        offs.iter().map(|o| (o["partition"].as_u64().unwrap(), o["offset"].as_u64().unwrap())).collect();
    assert_eq!(got, vec![(2, 0), (0, 0), (2, 1)], "in request order");
    s.produce_raw("parts", json!([{"value": 1, "partition": -1}])).await.expect_error(400, "bad_request");
    s.produce_raw("parts", json!([{"value": 1, "partition": "1"}])).await.expect_error(400, "bad_request");
    s.produce_raw("parts", json!([{"value": 1, "partition": 3}])).await.expect_error(404, "partition_not_found");
    // The valid messages before a bad partition are not written either.
    s.produce_raw(
        "parts",
        json!([{"value": 1, "partition": 0}, {"value": 1, "partition": 1}, {"value": 1, "partition": 99}]),
    )
    .await
    .expect_error(404, "partition_not_found");
    assert_eq!(s.end_offset("parts", 0).await, 1);
    assert_eq!(s.end_offset("parts", 1).await, 0);
    assert_eq!(s.end_offset("parts", 2).await, 2);
}

#[tokio::test]
async fn a_key_always_maps_to_the_same_partition() {
    let mut s = Cairnd::start().await;
    s.create_topic("keyed", json!({"partitions": 8})).await;
    let keys: Vec<String> = (0..24).map(|i| format!("user-{i}")).collect();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut check = |offs: &[Value], keys: &[&String]| {
        for (o, k) in offs.iter().zip(keys) {
            let p = o["partition"].as_u64().unwrap();
            let prev = *seen.entry(k.to_string()).or_insert(p);
            assert_eq!(prev, p, "key {k} went to partition {p} after {prev}");
        }
    };
    // All keys in one request, twice, then one key per request.
    for _ in 0..2 {
        let msgs: Vec<Value> = keys.iter().map(|k| json!({"key": k, "value": 1})).collect();
        let offs = s.produce("keyed", Value::Array(msgs)).await;
        check(&offs, &keys.iter().collect::<Vec<_>>());
    }
    for k in &keys {
        let offs = s.produce("keyed", json!([{"key": k, "value": 2}])).await;
        check(&offs, &[k]);
    }
    // Octet-stream with Cairn-Key hashes the same way.
    for k in keys.iter().take(6) {
        let r = send(
            s.request(reqwest::Method::POST, "/v1/topics/keyed/messages")
                .header("content-type", "application/octet-stream")
                .header("Cairn-Key", k.as_str())
                .body("3"),
        )
        .await;
        r.expect_status(200);
        check(r.json()["offsets"].as_array().unwrap(), &[k]);
    }
    // Stable across restarts (a documented hash, not a per-process random seed).
    s.restart().await;
    for k in &keys {
        let offs = s.produce("keyed", json!([{"key": k, "value": 4}])).await;
        check(&offs, &[k]);
    }
    let used: BTreeSet<u64> = seen.values().copied().collect();
    assert!(used.len() > 1, "24 keys over 8 partitions all hashed to {used:?}");
}

#[tokio::test]
async fn messages_without_key_or_partition_are_spread() {
    let s = Cairnd::start().await;
    s.create_topic("spread", json!({"partitions": 4})).await;
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for i in 0..48 {
        let offs = s.produce("spread", json!([{ "value": i }])).await;
        *counts.entry(offs[0]["partition"].as_u64().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.len(), 4, "48 single-message produces to 4 partitions: {counts:?}");
    assert!(counts.keys().all(|p| *p < 4));
}

#[tokio::test]
async fn one_bad_message_rejects_the_whole_request() {
    let s = Cairnd::start().await;
    s.create_topic("whole", json!({"partitions": 2, "max_message_bytes": 1024})).await;
    let ok = |p: u32| json!({"value": "fine", "partition": p});
    let cases: [(Value, &[u16], &str); 7] = [
        (json!({"value": 1, "value_base64": "AA=="}), &[400], "bad_request"),
        (json!({"value_base64": "***not base64***"}), &[400, 422], "bad_request"),
        (json!({"value": 1, "key": 5}), &[400], "bad_request"),
        (json!({"value": 1, "headers": {"h": 1}}), &[400], "bad_request"),
        (json!({"value": 1, "headers": ["h"]}), &[400], "bad_request"),
        (json!("just a string"), &[400], "bad_request"),
        (json!({"value": "z".repeat(2000)}), &[413], "message_too_large"),
    ];
    for (bad, statuses, code) in cases {
        let r = s.produce_raw("whole", json!([ok(0), ok(1), bad.clone(), ok(0)])).await;
        let body = r.expect_error_in(statuses, code);
        assert!(body["message"].is_string(), "{bad}");
    }
    // NDJSON with one bad line.
    let nd = format!("{}\n{}\nnot json\n", ok(0), ok(1));
    s.post_raw("/v1/topics/whole/messages", NDJSON, nd).await.expect_error(400, "bad_request");
    assert_eq!(s.end_offset("whole", 0).await, 0, "nothing was appended");
    assert_eq!(s.end_offset("whole", 1).await, 0, "nothing was appended");
    // A message exactly at the limit is fine (the value alone is 1024 bytes).
    let offs = s.produce("whole", json!([{ "value_base64": b64(&[1u8; 1024]), "partition": 1 }])).await;
    assert_eq!(offs[0]["offset"], json!(0));
}

#[tokio::test]
async fn malformed_produce_bodies_are_400() {
    let s = Cairnd::start().await;
    s.create_topic("strict", json!({})).await;
    let path = "/v1/topics/strict/messages";
    for body in [
        "",
        "{",
        "{\"messages\": ",
        "[1,2",
        "\u{0}\u{1}",
        "{\"messages\": 5}",
        "{\"messages\": {}}",
        "{\"msgs\": []}",
        "[]",
    ] {
        let r = s.post_raw(path, "application/json", body).await;
        assert!(r.status == 400 || r.status == 422, "body {body:?}: {} {}", r.status, r.text());
        r.expect_error(r.status, "bad_request");
    }
    s.post_raw(path, "text/plain", "hello").await.expect_error(415, "unsupported_media_type");
    s.post_raw(path, "application/xml", "<m/>").await.expect_error(415, "unsupported_media_type");
    assert_eq!(s.end_offset("strict", 0).await, 0);
    s.get("/v1/health").await.expect_status(200);
}

/// A misspelt field must not be dropped: `{"key": "k", "vaule": 2}` would otherwise store a
/// null value, which on a compacted topic is a tombstone deleting the key.
#[tokio::test]
async fn unknown_message_fields_are_400_naming_the_field_and_append_nothing() {
    let s = Cairnd::start().await;
    s.create_topic("typos", json!({"cleanup_policy": "compact"})).await;
    s.produce("typos", json!([{"key": "k", "value": 1}])).await;
    let path = "/v1/topics/typos/messages";
    for (body, field) in [
        (json!({"messages": [{"key": "k", "vaule": 2}]}), "vaule"),
        (json!({"messages": [{"key": "k", "value": 2}, {"key": "k", "value": 3, "header": {"a": "b"}}]}), "header"),
        (json!({"messages": [{"key": "k", "value": 2}], "partiton": 0}), "partiton"),
    ] {
        let e = s.post_json(path, &body).await.expect_error(400, "bad_request");
        assert!(e["message"].as_str().unwrap().contains(&format!("`{field}`")), "{body}: {e}");
    }
    let nd = "{\"key\": \"k\", \"value\": 2}\n{\"key\": \"k\", \"valu\": 3}\n";
    let e = s.post_raw(path, NDJSON, nd).await.expect_error(400, "bad_request");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("line 2") && message.contains("`valu`"), "{e}");
    assert_eq!(s.end_offset("typos", 0).await, 1, "nothing was appended");
    let messages = s.read("typos", 0, "").await["messages"].clone();
    assert_eq!(messages.as_array().unwrap().len(), 1);
    assert_eq!(messages[0]["value"], json!(1), "the key's value is intact");
}

#[tokio::test]
async fn idempotency_keys_must_be_visible_ascii() {
    let s = Cairnd::start().await;
    s.create_topic("idem-keys", json!({})).await;
    let post = |key: reqwest::header::HeaderValue| {
        send(
            s.request(reqwest::Method::POST, "/v1/topics/idem-keys/messages")
                .header("Idempotency-Key", key)
                .json(&json!({"messages": [{"value": 1}]})),
        )
    };
    let long = "k".repeat(257);
    for bad in [&b"order 1001"[..], b"a\tb", "caf\u{e9}".as_bytes(), long.as_bytes()] {
        let value = reqwest::header::HeaderValue::from_bytes(bad).unwrap();
        let e = post(value).await.expect_error(400, "bad_request");
        assert!(e["message"].as_str().unwrap().to_ascii_lowercase().contains("idempotency-key"), "{e}");
    }
    assert_eq!(s.end_offset("idem-keys", 0).await, 0, "nothing was appended");
    // The edges of what is allowed: every visible character, and 256 bytes.
    let visible: String = ('!'..='~').collect();
    for good in [visible, "k".repeat(256)] {
        post(reqwest::header::HeaderValue::from_str(&good).unwrap()).await.expect_status(200);
    }
    assert_eq!(s.end_offset("idem-keys", 0).await, 2);
}

#[tokio::test]
async fn vendor_json_media_type_is_accepted_for_produce() {
    let s = Cairnd::start().await;
    let r =
        s.post_raw("/v1/topics/vnd/messages", "application/vnd.cairn+json", r#"{"messages":[{"value":"v"}]}"#).await;
    r.expect_status(200);
    assert_eq!(r.json()["offsets"][0]["offset"], json!(0));
}

#[tokio::test]
async fn message_too_large_at_the_default_limit() {
    let s = Cairnd::start().await;
    s.create_topic("limits", json!({})).await;
    // Default max_message_bytes is 1 MiB.
    let big = vec![b'q'; 1024 * 1024 + 100];
    s.post_raw("/v1/topics/limits/messages", "application/octet-stream", big)
        .await
        .expect_error(413, "message_too_large");
    let fits = vec![b'q'; 1000 * 1024];
    s.post_raw("/v1/topics/limits/messages", "application/octet-stream", fits).await.expect_status(200);
    assert_eq!(s.end_offset("limits", 0).await, 1);
}

#[tokio::test]
async fn bodies_over_32_mib_are_413_payload_too_large() {
    let s = Cairnd::start().await;
    s.create_topic("huge", json!({})).await;
    let chunk = vec![b'a'; 1024 * 1024];
    let total = 33 * 1024 * 1024;
    // With a Content-Length.
    let head = format!(
        "POST /v1/topics/huge/messages HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n",
        s.addr()
    );
    let (status, body) = within(GENEROUS, raw_http(s.addr(), head, vec![chunk.clone(); 33])).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    assert_eq!(v["code"], json!("payload_too_large"));
    // Streamed (chunked, no length): NDJSON of many small messages adding up to > 32 MiB.
    let line = format!("{}\n", json!({"value": "v".repeat(1000)}));
    let lines_per_chunk = (1024 * 1024) / line.len();
    let piece = line.repeat(lines_per_chunk);
    let mut chunks = Vec::new();
    for _ in 0..34 {
        chunks.push(format!("{:x}\r\n{piece}\r\n", piece.len()).into_bytes());
    }
    chunks.push(b"0\r\n\r\n".to_vec());
    let head = format!(
        "POST /v1/topics/huge/messages HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.addr()
    );
    let (status, body) = within(GENEROUS, raw_http(s.addr(), head, chunks)).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], json!("payload_too_large"));
    assert_eq!(s.end_offset("huge", 0).await, 0, "nothing was written");
    s.get("/v1/health").await.expect_status(200);
}

#[tokio::test]
async fn idempotency_key_dedups_and_survives_a_restart() {
    let mut s = Cairnd::start().await;
    s.create_topic("idem", json!({"partitions": 2})).await;
    s.create_topic("other", json!({})).await;
    let produce = |topic: &'static str, key: &'static str, s: &Cairnd| {
        let body = json!({"messages": [{"value": "a", "partition": 1}, {"value": "b", "partition": 0}]});
        send(
            s.request(reqwest::Method::POST, &format!("/v1/topics/{topic}/messages"))
                .header("Idempotency-Key", key)
                .json(&body),
        )
    };
    let first = produce("idem", "req-1", &s).await;
    first.expect_status(200);
    let first = first.json();
    assert_eq!(first["duplicate"], json!(false));
    let again = produce("idem", "req-1", &s).await;
    again.expect_status(200);
    let again = again.json();
    assert_eq!(again["duplicate"], json!(true));
    assert_eq!(again["offsets"], first["offsets"], "the original offsets are repeated");
    assert_eq!(s.end_offset("idem", 0).await, 1);
    assert_eq!(s.end_offset("idem", 1).await, 1);
    // Another key appends; the same key on another topic is not a duplicate.
    let other_key = produce("idem", "req-2", &s).await.json();
    assert_eq!(other_key["duplicate"], json!(false));
    assert_eq!(other_key["offsets"][0]["offset"], json!(1));
    let r = send(
        s.request(reqwest::Method::POST, "/v1/topics/other/messages")
            .header("Idempotency-Key", "req-1")
            .json(&json!({"messages": [{"value": "c"}]})),
    )
    .await;
    r.expect_status(200);
    assert_eq!(r.json()["duplicate"], json!(false));
    // The dedup state is durable: after a restart (and after a crash) it still dedups.
    s.restart().await;
    let after = produce("idem", "req-1", &s).await.json();
    assert_eq!(after["duplicate"], json!(true), "{after}");
    assert_eq!(after["offsets"], first["offsets"]);
    s.sigkill().await;
    s.start_again().await;
    let after = produce("idem", "req-2", &s).await.json();
    assert_eq!(after["duplicate"], json!(true), "{after}");
    assert_eq!(after["offsets"], other_key["offsets"]);
    assert_eq!(s.end_offset("idem", 0).await, 2);
    assert_eq!(s.end_offset("idem", 1).await, 2);
}

#[tokio::test]
async fn concurrent_producers_get_unique_contiguous_offsets() {
    let s = Cairnd::start().await;
    s.create_topic("busy", json!({"partitions": 2})).await;
    let producers = 8;
    let requests = 20;
    let per_request = 5;
    let mut tasks = Vec::new();
    for t in 0..producers {
        let client = s.client().clone();
        let url = s.url("/v1/topics/busy/messages");
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for r in 0..requests {
                let msgs: Vec<Value> =
                    (0..per_request).map(|i| json!({"value": format!("t{t}-r{r}-m{i}"), "partition": 0})).collect();
                let resp = send(client.post(&url).json(&json!({ "messages": msgs }))).await;
                resp.expect_status(200);
                let offs = offsets_of(resp.json()["offsets"].as_array().unwrap());
                assert!(offs.windows(2).all(|w| w[1] == w[0] + 1), "one request's offsets are contiguous: {offs:?}");
                for (i, o) in offs.into_iter().enumerate() {
                    got.push((o, format!("t{t}-r{r}-m{i}")));
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(within(GENEROUS, t).await.unwrap());
    }
    all.sort();
    let total = producers * requests * per_request;
    let offsets: Vec<u64> = all.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..total as u64).collect::<Vec<_>>(), "unique and contiguous");
    assert_eq!(s.end_offset("busy", 0).await, total as u64);
    let stored = s.read_all("busy", 0).await;
    assert_eq!(stored.len(), total);
    let mut last_ts = i64::MIN;
    for ((o, v), m) in all.iter().zip(&stored) {
        assert_eq!(m["offset"], json!(o));
        assert_eq!(value_bytes(m).unwrap(), serde_json::to_vec(&json!(v)).unwrap(), "value at {o}");
        let ts = m["timestamp"].as_i64().unwrap();
        assert!(ts >= last_ts, "timestamps are non-decreasing within a partition");
        last_ts = ts;
    }
}

#[tokio::test]
async fn records_produce_ignores_client_offsets_and_timestamps() {
    let s = Cairnd::start().await;
    s.create_topic("assigned", json!({})).await;
    s.produce_n("assigned", 0, 3, "first").await;
    let mut b = BatchBuilder::new();
    b.push(Some(b"k"), Some(b"v"), std::iter::empty());
    b.push(None, Some(b"w"), std::iter::empty());
    // A client claiming offset 1000 and a timestamp in 1970.
    let r = post_records(&s, "assigned", Some("0"), b.finish(1000, 5).unwrap()).await;
    r.expect_status(200);
    let offs = r.json()["offsets"].as_array().unwrap().clone();
    assert_eq!(offsets_of(&offs), vec![3, 4]);
    let ts = offs[0]["timestamp"].as_i64().unwrap();
    assert!((ts - now_ms()).abs() < 60_000, "server-assigned timestamp, not the client's: {ts}");
    let m = s.read("assigned", 0, "offset=3").await;
    assert_eq!(m["messages"][0]["offset"], json!(3));
    assert_eq!(m["messages"][0]["timestamp"], json!(ts));
    assert_eq!(m["next_offset"], json!(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_idempotency_key_append_once() {
    let s = Cairnd::start().await;
    s.create_topic("retry", json!({})).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let rb = s
            .client()
            .post(s.url("/v1/topics/retry/messages"))
            .header("Idempotency-Key", "same-request")
            .json(&json!({"messages": [{"value": "once"}, {"value": "twice"}]}));
        tasks.push(tokio::spawn(send(rb)));
    }
    let mut replies = Vec::new();
    for t in tasks {
        let r = within(GENEROUS, t).await.unwrap();
        r.expect_status(200);
        replies.push(r.json());
    }
    assert_eq!(s.end_offset("retry", 0).await, 2, "the request was appended once: {replies:?}");
    let originals = replies.iter().filter(|r| r["duplicate"] == json!(false)).count();
    assert_eq!(originals, 1, "{replies:?}");
    assert!(replies.iter().all(|r| r["offsets"] == replies[0]["offsets"]), "{replies:?}");
}

#[tokio::test]
async fn a_failed_produce_does_not_burn_its_idempotency_key() {
    let s = Cairnd::start().await;
    s.create_topic("retry-after-fix", json!({"partitions": 2})).await;
    let post = |body: Value| {
        send(
            s.request(reqwest::Method::POST, "/v1/topics/retry-after-fix/messages")
                .header("Idempotency-Key", "fix-me")
                .json(&body),
        )
    };
    post(json!({"messages": [{"value": 1, "partition": 7}]})).await.expect_error(404, "partition_not_found");
    post(json!({"messages": [{"value": 1, "value_base64": "AA=="}]})).await.expect_error(400, "bad_request");
    let ok = post(json!({"messages": [{"value": 1, "partition": 1}]})).await;
    ok.expect_status(200);
    assert_eq!(ok.json()["duplicate"], json!(false), "the failed attempts did not succeed, so this is no duplicate");
    let again = post(json!({"messages": [{"value": 1, "partition": 1}]})).await;
    assert_eq!(again.json()["duplicate"], json!(true));
    assert_eq!(again.json()["offsets"], ok.json()["offsets"]);
    assert_eq!(s.end_offset("retry-after-fix", 1).await, 1);
}

#[tokio::test]
async fn idempotency_applies_to_every_body_type() {
    let s = Cairnd::start().await;
    s.create_topic("idem-bodies", json!({})).await;
    let mut b = BatchBuilder::new();
    b.push(None, Some(b"rec"), std::iter::empty());
    let batch = b.finish(0, 0).unwrap();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/octet-stream", b"blob".to_vec()),
        (NDJSON, b"{\"value\": 1}\n{\"value\": 2}\n".to_vec()),
        (RECORDS, batch),
    ];
    for (i, (ct, body)) in bodies.into_iter().enumerate() {
        let key = format!("body-{i}");
        let post = || {
            send(
                s.request(reqwest::Method::POST, "/v1/topics/idem-bodies/messages")
                    .header("content-type", ct)
                    .header("Cairn-Partition", "0")
                    .header("Idempotency-Key", key.as_str())
                    .body(body.clone()),
            )
        };
        let first = post().await;
        first.expect_status(200);
        let end = s.end_offset("idem-bodies", 0).await;
        let second = post().await;
        second.expect_status(200);
        assert_eq!(second.json()["duplicate"], json!(true), "{ct}");
        assert_eq!(second.json()["offsets"], first.json()["offsets"], "{ct}");
        assert_eq!(s.end_offset("idem-bodies", 0).await, end, "{ct}: nothing appended");
    }
}

#[tokio::test]
async fn media_type_parameters_are_accepted() {
    let s = Cairnd::start().await;
    let r = s
        .post_raw("/v1/topics/charset/messages", "application/json; charset=utf-8", r#"{"messages":[{"value":"é"}]}"#)
        .await;
    r.expect_status(200);
    let r = s.post_raw("/v1/topics/charset/messages", "Application/JSON", r#"{"messages":[{"value":"x"}]}"#).await;
    r.expect_status(200);
    let r = s.post_raw("/v1/topics/charset/messages", "application/x-ndjson; charset=utf-8", "{\"value\":2}\n").await;
    r.expect_status(200);
    let r = s.post_raw("/v1/topics", "application/json; charset=utf-8", r#"{"name":"with-charset"}"#).await;
    r.expect_status(201);
    let m = s.read("charset", 0, "").await;
    assert_eq!(m["messages"][0]["value"], json!("é"));
    assert_eq!(m["messages"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn zstd_topics_round_trip() {
    let s = Cairnd::start().await;
    s.create_topic("squeezed", json!({"compression": "zstd", "segment_bytes": 4096})).await;
    let values: Vec<Value> = (0..60).map(|i| json!({"n": i, "pad": "abc".repeat(100)})).collect();
    for chunk in values.chunks(20) {
        let msgs: Vec<Value> = chunk.iter().map(|v| json!({ "value": v })).collect();
        s.produce("squeezed", Value::Array(msgs)).await;
    }
    let m = s.read("squeezed", 0, "max_messages=100").await;
    let got: Vec<Value> = m["messages"].as_array().unwrap().iter().map(|m| m["value"].clone()).collect();
    assert_eq!(got, values);
    let raw =
        send(s.request(reqwest::Method::GET, &read_path("squeezed", 0, "offset=0")).header("accept", RECORDS)).await;
    raw.expect_status(200);
    let recs: usize = decode_batches(&raw.body).iter().map(|(_, r)| r.len()).sum();
    assert!(recs >= 20);
}
