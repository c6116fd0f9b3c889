//! Topics: create, list, describe, patch, delete, names, auto-create.

use std::path::{Path, PathBuf};

use cairn_tests::*;

/// Statuses the contract allows for a body that parses but breaks a rule.
const RULE: &[u16] = &[400, 422];

#[tokio::test]
async fn create_returns_201_with_the_default_config() {
    let s = Cairnd::start().await;
    let d = s.create_topic("orders", json!({})).await;
    assert_eq!(d["name"], json!("orders"));
    let c = &d["config"];
    assert_eq!(c["partitions"], json!(1), "config {c}");
    assert_eq!(c["retention_ms"], json!(604800000), "config {c}");
    assert!(c.get("retention_bytes").is_some_and(|v| v.is_null()), "retention_bytes default null: {c}");
    assert_eq!(c["segment_bytes"], json!(134217728), "config {c}");
    assert_eq!(c["cleanup_policy"], json!("delete"), "config {c}");
    assert_eq!(c["compression"], json!("none"), "config {c}");
    assert_eq!(c["sync"], json!("always"), "config {c}");
    assert_eq!(c["max_message_bytes"], json!(1048576), "config {c}");
    let ps = d["partitions"].as_array().unwrap_or_else(|| panic!("no partitions array: {d}"));
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0]["partition"], json!(0));
    assert_eq!(ps[0]["start_offset"], json!(0));
    assert_eq!(ps[0]["end_offset"], json!(0));
    assert_eq!(ps[0]["size_bytes"], json!(0));
    assert!(ps[0]["segments"].is_u64(), "segments: {}", ps[0]);
    // The same description is served by GET.
    assert_eq!(s.describe("orders").await, d);
}

#[tokio::test]
async fn create_accepts_every_config_field() {
    let s = Cairnd::start().await;
    let config = json!({
        "partitions": 3, "retention_ms": null, "retention_bytes": 1000000, "segment_bytes": 4096,
        "cleanup_policy": "compact", "compression": "zstd", "sync": {"interval_ms": 50},
        "max_message_bytes": 2048
    });
    let d = s.create_topic("full", config.clone()).await;
    for (k, v) in config.as_object().unwrap() {
        assert_eq!(&d["config"][k], v, "config field {k}: {}", d["config"]);
    }
    assert_eq!(d["partitions"].as_array().unwrap().len(), 3);
    for (i, p) in d["partitions"].as_array().unwrap().iter().enumerate() {
        assert_eq!(p["partition"], json!(i));
        assert_eq!(p["end_offset"], json!(0));
    }
    // The vendor JSON media type is accepted too.
    let r = send(
        s.request(reqwest::Method::POST, "/v1/topics")
            .header("content-type", "application/vnd.cairn+json")
            .body(json!({"name": "vendor-json", "partitions": 2}).to_string()),
    )
    .await;
    r.expect_status(201);
    assert_eq!(r.json()["config"]["partitions"], json!(2));
}

#[tokio::test]
async fn create_twice_is_409_topic_exists() {
    let s = Cairnd::start().await;
    s.create_topic("twice", json!({"partitions": 2})).await;
    s.create_topic_raw(&json!({"name": "twice", "partitions": 5})).await.expect_error(409, "topic_exists");
    // The first config stands.
    assert_eq!(s.describe("twice").await["partitions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn create_with_bad_values_is_400_and_creates_nothing() {
    let s = Cairnd::start().await;
    // Values of the right type that break a rule: 400 (or 422 per Conventions).
    let rule_breaking = [
        json!({"name": "bad", "partitions": 0}),
        json!({"name": "bad", "segment_bytes": 100}),
        json!({"name": "bad", "cleanup_policy": "nope"}),
        json!({"name": "bad", "compression": "gzip"}),
        json!({"name": "bad", "sync": "sometimes"}),
        json!({"name": "bad", "sync": {"interval_ms": "x"}}),
        json!({"name": "bad", "retention_ms": -5}),
        json!({"name": "bad", "max_message_bytes": 0}),
        json!({"name": "bad", "partitions": -1}),
        json!({"name": "bad", "partitions": 1.5}),
    ];
    for body in &rule_breaking {
        let r = s.create_topic_raw(body).await;
        r.expect_error_in(RULE, "bad_request");
    }
    // No name at all: a 4xx naming the problem.
    let r = s.create_topic_raw(&json!({"partitions": 1})).await;
    assert!(RULE.contains(&r.status), "missing name: {} {}", r.status, r.text());
    let code = r.json()["code"].as_str().unwrap_or("").to_string();
    assert!(code == "bad_request" || code == "invalid_name", "missing name: code {code}");
    // Wrong types: 400 bad_request.
    let wrong_type = [
        json!({"name": "bad", "partitions": "three"}),
        json!({"name": "bad", "segment_bytes": "big"}),
        json!({"name": "bad", "retention_bytes": "none"}),
        json!({"name": 42}),
        json!(["name", "bad"]),
    ];
    for body in &wrong_type {
        let r = s.create_topic_raw(body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let code = r.json()["code"].as_str().unwrap_or("").to_string();
        assert!(code == "bad_request" || code == "invalid_name", "{body}: code {code}");
    }
    s.get("/v1/topics/bad").await.expect_error(404, "topic_not_found");
    let list = s.get("/v1/topics").await.json();
    assert_eq!(list["topics"], json!([]), "nothing was created: {list}");
}

#[tokio::test]
async fn names_are_validated() {
    let s = Cairnd::start().await;
    let long_ok = "a".repeat(249);
    for name in ["a", "A-z_0.9", long_ok.as_str(), "...", "_x", "x__"] {
        s.create_topic(name, json!({})).await;
        assert_eq!(s.describe(name).await["name"], json!(name));
    }
    let too_long = "b".repeat(250);
    for name in ["", ".", "..", too_long.as_str(), "a b", "a/b", "a*b", "ä", "a:b", "__x", "__groups"] {
        let r = s.create_topic_raw(&json!({ "name": name })).await;
        r.expect_error_in(RULE, "invalid_name");
    }
    // Reserved and invalid names are refused on the auto-create path too.
    for name in ["__x", too_long.as_str(), "a*b"] {
        let r = s.produce_raw(name, json!([{"value": 1}])).await;
        r.expect_error_in(RULE, "invalid_name");
    }
    let names: Vec<String> = s.get("/v1/topics").await.json()["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 6, "only the valid names exist: {names:?}");
}

#[tokio::test]
async fn list_returns_every_topic_description() {
    let s = Cairnd::start().await;
    s.create_topic("alpha", json!({"partitions": 2})).await;
    s.create_topic("beta", json!({})).await;
    s.produce_n("beta", 0, 3, "b").await;
    let r = s.get("/v1/topics").await;
    r.expect_status(200);
    assert_eq!(r.media_type(), "application/json");
    let list = r.json();
    let topics = list["topics"].as_array().unwrap_or_else(|| panic!("no topics array: {list}"));
    assert_eq!(topics.len(), 2, "{list}");
    let alpha = topics.iter().find(|t| t["name"] == json!("alpha")).expect("alpha listed");
    let beta = topics.iter().find(|t| t["name"] == json!("beta")).expect("beta listed");
    assert_eq!(alpha["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(alpha["config"]["partitions"], json!(2));
    assert_eq!(beta["partitions"][0]["end_offset"], json!(3));
}

#[tokio::test]
async fn unknown_topics_are_404_topic_not_found() {
    let s = Cairnd::start().await;
    s.get("/v1/topics/ghost").await.expect_error(404, "topic_not_found");
    s.patch_json("/v1/topics/ghost", &json!({"partitions": 2})).await.expect_error(404, "topic_not_found");
    s.delete("/v1/topics/ghost").await.expect_error(404, "topic_not_found");
    s.read_raw("ghost", 0, "").await.expect_error(404, "topic_not_found");
    // Reads do not auto-create.
    s.get("/v1/topics/ghost").await.expect_error(404, "topic_not_found");
}

#[tokio::test]
async fn describe_reports_offsets_sizes_and_segments() {
    let s = Cairnd::start().await;
    s.create_topic("sized", json!({"segment_bytes": 4096, "partitions": 2})).await;
    let payload = "x".repeat(300);
    for _ in 0..10 {
        let msgs: Vec<Value> = (0..5).map(|_| json!({"value": payload, "partition": 0})).collect();
        s.produce("sized", Value::Array(msgs)).await;
    }
    let p0 = s.partition_info("sized", 0).await;
    assert_eq!(p0["start_offset"], json!(0));
    assert_eq!(p0["end_offset"], json!(50));
    assert!(p0["segments"].as_u64().unwrap() > 1, "50 x 300 B in 4 KiB segments makes several: {p0}");
    // size_bytes is exactly the record batch bytes: what a raw replay of everything returns.
    let mut raw_total = 0usize;
    let mut offset = 0u64;
    while offset < 50 {
        let r = send(
            s.request(reqwest::Method::GET, &read_path("sized", 0, &format!("offset={offset}&max_bytes=16777216")))
                .header("accept", RECORDS),
        )
        .await;
        r.expect_status(200);
        raw_total += r.body.len();
        let batches = decode_batches(&r.body);
        offset = batches.last().expect("at least one batch").0.next_offset();
    }
    assert_eq!(p0["size_bytes"].as_u64().unwrap() as usize, raw_total, "size_bytes vs raw batch bytes: {p0}");
    let p1 = s.partition_info("sized", 1).await;
    assert_eq!(p1["end_offset"], json!(0));
    assert_eq!(p1["size_bytes"], json!(0));
}

#[tokio::test]
async fn patch_grows_partitions_and_refuses_to_shrink() {
    let s = Cairnd::start().await;
    s.create_topic("grow", json!({})).await;
    s.produce_n("grow", 0, 2, "g").await;
    let r = s.patch_json("/v1/topics/grow", &json!({"partitions": 3})).await;
    r.expect_status(200);
    let d = r.json();
    assert_eq!(d["name"], json!("grow"));
    assert_eq!(d["config"]["partitions"], json!(3));
    assert_eq!(d["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(s.describe("grow").await, d);
    // The new partition takes messages; the old one kept its data.
    let offs = s.produce("grow", json!([{"value": "new", "partition": 2}])).await;
    assert_eq!(offs[0]["partition"], json!(2));
    assert_eq!(offs[0]["offset"], json!(0));
    assert_eq!(s.end_offset("grow", 0).await, 2);
    // Shrinking: 400 bad_request, nothing changes.
    s.patch_json("/v1/topics/grow", &json!({"partitions": 2})).await.expect_error(400, "bad_request");
    s.patch_json("/v1/topics/grow", &json!({"partitions": 1, "retention_ms": 1000}))
        .await
        .expect_error(400, "bad_request");
    let after = s.describe("grow").await;
    assert_eq!(after["config"]["partitions"], json!(3));
    assert_eq!(after["config"]["retention_ms"], json!(604800000), "a refused patch changes nothing: {after}");
    assert_eq!(after["partitions"].as_array().unwrap().len(), 3);
    // Bad values and wrong types: refused, nothing changes.
    for bad in [json!({"cleanup_policy": "sometimes"}), json!({"segment_bytes": 1}), json!({"sync": "never"})] {
        s.patch_json("/v1/topics/grow", &bad).await.expect_error_in(RULE, "bad_request");
    }
    assert_eq!(s.describe("grow").await, after);
    s.patch_json("/v1/topics/grow", &json!({"partitions": "many"})).await.expect_error(400, "bad_request");
    let r = send(
        s.request(reqwest::Method::PATCH, "/v1/topics/grow").header("content-type", "application/json").body("{oops"),
    )
    .await;
    r.expect_error(400, "bad_request");
}

#[tokio::test]
async fn patch_changes_config_durably() {
    let mut s = Cairnd::start().await;
    s.create_topic("tuned", json!({})).await;
    let r = s.patch_json("/v1/topics/tuned", &json!({"retention_ms": 1000, "max_message_bytes": 4096})).await;
    r.expect_status(200);
    let d = r.json();
    assert_eq!(d["config"]["retention_ms"], json!(1000));
    assert_eq!(d["config"]["max_message_bytes"], json!(4096));
    assert_eq!(d["config"]["segment_bytes"], json!(134217728), "untouched fields keep their values");
    // The new limit applies.
    let big = "y".repeat(5000);
    s.produce_raw("tuned", json!([{ "value": big }])).await.expect_error(413, "message_too_large");
    s.restart().await;
    let d = s.describe("tuned").await;
    assert_eq!(d["config"]["retention_ms"], json!(1000));
    assert_eq!(d["config"]["max_message_bytes"], json!(4096));
}

/// Every path under `root` whose file name is `name`.
fn find_named(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n.to_string_lossy().contains(name)) {
                out.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn delete_removes_the_topic_and_its_data() {
    let mut s = Cairnd::start().await;
    let name = "doomed-topic-7f3a";
    s.create_topic(name, json!({"partitions": 2})).await;
    s.produce_n(name, 1, 20, "d").await;
    assert!(!find_named(s.data_dir(), name).is_empty(), "the topic's directory exists before delete");
    let r = s.delete(&format!("/v1/topics/{name}")).await;
    r.expect_status(204);
    assert!(r.body.is_empty());
    assert_eq!(find_named(s.data_dir(), name), Vec::<PathBuf>::new(), "data left on disk after delete");
    s.get(&format!("/v1/topics/{name}")).await.expect_error(404, "topic_not_found");
    s.read_raw(name, 1, "").await.expect_error(404, "topic_not_found");
    assert_eq!(s.get("/v1/topics").await.json()["topics"], json!([]));
    s.delete(&format!("/v1/topics/{name}")).await.expect_error(404, "topic_not_found");
    // It stays deleted after a restart, and the name can be reused from scratch.
    s.restart().await;
    s.get(&format!("/v1/topics/{name}")).await.expect_error(404, "topic_not_found");
    let d = s.create_topic(name, json!({})).await;
    assert_eq!(d["partitions"][0]["end_offset"], json!(0));
}

#[tokio::test]
async fn topics_and_data_survive_a_restart() {
    let mut s = Cairnd::start().await;
    let before =
        s.create_topic("kept", json!({"partitions": 2, "segment_bytes": 4096, "sync": {"interval_ms": 20}})).await;
    s.produce_n("kept", 1, 30, "k").await;
    s.restart().await;
    let after = s.describe("kept").await;
    assert_eq!(after["config"], before["config"]);
    assert_eq!(after["partitions"][1]["end_offset"], json!(30));
    let msgs = s.read("kept", 1, "offset=0&max_messages=100").await;
    assert_eq!(msgs["messages"].as_array().unwrap().len(), 30);
    assert_eq!(msgs["messages"][29]["value"], json!("k-29"));
}

#[tokio::test]
async fn produce_auto_creates_with_defaults() {
    let s = Cairnd::start().await;
    let offs = s.produce("fresh", json!([{"value": "first"}])).await;
    assert_eq!(offs[0]["offset"], json!(0));
    assert_eq!(offs[0]["partition"], json!(0));
    let d = s.describe("fresh").await;
    assert_eq!(d["config"]["partitions"], json!(1));
    assert_eq!(d["config"]["sync"], json!("always"));
    assert_eq!(d["partitions"][0]["end_offset"], json!(1));
}

#[tokio::test]
async fn auto_create_can_be_turned_off() {
    let s = Cairnd::builder().arg("--no-auto-create-topics").start().await;
    s.produce_raw("nowhere", json!([{"value": 1}])).await.expect_error(404, "topic_not_found");
    let r = s.post_raw("/v1/topics/nowhere/messages", "application/octet-stream", "raw").await;
    r.expect_error(404, "topic_not_found");
    s.get("/v1/topics/nowhere").await.expect_error(404, "topic_not_found");
    // Explicitly created topics still take messages.
    s.create_topic("somewhere", json!({})).await;
    s.produce("somewhere", json!([{"value": 1}])).await;
}

#[tokio::test]
async fn internal_topics_are_not_reachable_through_the_api() {
    let s = Cairnd::start().await;
    // Make sure any internal state exists: an idempotent produce.
    let r = send(
        s.request(reqwest::Method::POST, "/v1/topics/visible/messages")
            .header("Idempotency-Key", "k")
            .json(&json!({"messages": [{"value": 1}]})),
    )
    .await;
    r.expect_status(200);
    for name in ["__idempotency", "__groups", "__anything"] {
        let reqs = vec![
            s.get(&format!("/v1/topics/{name}")).await,
            s.read_raw(name, 0, "").await,
            s.patch_json(&format!("/v1/topics/{name}"), &json!({"retention_ms": 1})).await,
            s.delete(&format!("/v1/topics/{name}")).await,
            s.produce_raw(name, json!([{"value": 1}])).await,
        ];
        for r in reqs {
            assert!((400..500).contains(&r.status), "{name}: {} {}", r.status, r.text());
            let code = r.json()["code"].as_str().unwrap_or_default().to_string();
            assert!(code == "invalid_name" || code == "topic_not_found", "{name}: {code}");
        }
    }
    let names: Vec<Value> =
        s.get("/v1/topics").await.json()["topics"].as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
    assert_eq!(names, vec![json!("visible")], "internal topics are not listed");
    // Idempotency still works (its state was not deleted above).
    let r = send(
        s.request(reqwest::Method::POST, "/v1/topics/visible/messages")
            .header("Idempotency-Key", "k")
            .json(&json!({"messages": [{"value": 1}]})),
    )
    .await;
    assert_eq!(r.json()["duplicate"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_and_auto_creates_of_one_topic() {
    let s = Cairnd::start().await;
    // Explicit creates: exactly one 201, the rest 409.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let rb = s.client().post(s.url("/v1/topics")).json(&json!({"name": "race", "partitions": 1 + i % 3}));
        tasks.push(tokio::spawn(send(rb)));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(within(GENEROUS, t).await.unwrap().status);
    }
    statuses.sort();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
    // Auto-creates: every produce succeeds, one topic, contiguous offsets.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let rb = s.client().post(s.url("/v1/topics/auto-race/messages")).json(&json!({"messages": [{"value": i}]}));
        tasks.push(tokio::spawn(send(rb)));
    }
    let mut offsets = Vec::new();
    for t in tasks {
        let r = within(GENEROUS, t).await.unwrap();
        r.expect_status(200);
        offsets.push(r.json()["offsets"][0]["offset"].as_u64().unwrap());
    }
    offsets.sort();
    assert_eq!(offsets, (0..8).collect::<Vec<_>>());
    assert_eq!(s.describe("auto-race").await["partitions"].as_array().unwrap().len(), 1);
}
