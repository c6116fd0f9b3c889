//! Error replies: every bad input is a 4xx `{"code","message"}`, never a 5xx, hang or crash,
//! and never damages data.

use cairn_tests::*;
use reqwest::Method;

#[tokio::test]
async fn malformed_topic_bodies_are_400_bad_request() {
    let s = Cairnd::start().await;
    for body in ["", "{", "nul", "{\"name\": \"x\",}", "\"just a string\"", "{\"name\": \"x\"} trailing", "\u{7f}\u{0}"]
    {
        let r = s.post_raw("/v1/topics", "application/json", body).await;
        r.expect_error(400, "bad_request");
    }
    let r = s.post_raw("/v1/topics", "application/json", vec![0xff, 0xfe, 0x00]).await;
    r.expect_error(400, "bad_request");
    // Not JSON at all.
    s.post_raw("/v1/topics", "text/plain", "name=x").await.expect_error(415, "unsupported_media_type");
    s.post_raw("/v1/topics", "application/x-www-form-urlencoded", "name=x")
        .await
        .expect_error(415, "unsupported_media_type");
    assert_eq!(s.get("/v1/topics").await.json()["topics"], json!([]));
}

#[tokio::test]
async fn deeply_nested_and_odd_json_is_refused_cleanly() {
    let s = Cairnd::start().await;
    s.create_topic("odd", json!({})).await;
    // 100 000 levels of nesting: a 4xx (or stored as a value if the server allows it), never a crash.
    let deep = format!("{{\"messages\": [{{\"value\": {}{}}}]}}", "[".repeat(100_000), "]".repeat(100_000));
    let r = s.post_raw("/v1/topics/odd/messages", "application/json", deep).await;
    assert!(r.status == 200 || (400..500).contains(&r.status), "deep nesting: {} {}", r.status, r.text());
    if r.status != 200 {
        let code = r.json()["code"].as_str().unwrap_or_default().to_string();
        assert!(["bad_request", "message_too_large", "payload_too_large"].contains(&code.as_str()), "code {code}");
    }
    // Duplicate keys, huge numbers, unicode escapes: still JSON, so accepted as values.
    let r =
        s.post_raw("/v1/topics/odd/messages", "application/json", r#"{"messages": [{"value": {"n": 1e400}}]}"#).await;
    assert!(r.status == 200 || r.status == 400 || r.status == 422, "{} {}", r.status, r.text());
    let r =
        s.post_raw("/v1/topics/odd/messages", "application/json", r#"{"messages": [{"value": "\ud83d\ude00"}]}"#).await;
    r.expect_status(200);
    s.get("/v1/health").await.expect_status(200);
}

#[tokio::test]
async fn bad_queries_are_400_and_bad_routes_404() {
    let s = Cairnd::start().await;
    s.create_topic("q", json!({})).await;
    s.produce_n("q", 0, 3, "q").await;
    for q in
        ["offset=1.5", "offset=", "max_messages=1e3", "wait_ms=-5", "offset=0&offset=zz", "encoding=", "max_bytes=-1"]
    {
        s.read_raw("q", 0, q).await.expect_error(400, "bad_request");
    }
    // A non-numeric partition in the path: 4xx, not a 5xx.
    let r = s.get("/v1/topics/q/partitions/zero/messages").await;
    assert!(r.status == 400 || r.status == 404, "{} {}", r.status, r.text());
    assert!(r.json()["code"].is_string());
    s.get("/v1/topics/q/partitions/0").await.expect_error(404, "not_found");
    s.get("/v1/topic").await.expect_error(404, "not_found");
    // Data untouched by all of it.
    assert_eq!(s.read("q", 0, "").await["messages"].as_array().unwrap().len(), 3);
}

/// Integers in queries, paths and headers are decimal digits: a leading '+' (which Rust's
/// integer parser takes) is a 400 naming the parameter. In a query string '+' means a space,
/// so the sign is sent as `%2B`.
#[tokio::test]
async fn a_leading_plus_on_an_integer_is_400() {
    let s = Cairnd::start().await;
    s.create_topic("plus", json!({})).await;
    s.produce_n("plus", 0, 3, "p").await;
    for name in ["offset", "timestamp", "max_messages", "max_bytes", "wait_ms", "min_messages"] {
        let e = s.read_raw("plus", 0, &format!("{name}=%2B1")).await.expect_error(400, "bad_request");
        assert!(e["message"].as_str().unwrap().contains(name), "{name}: {e}");
    }
    for p in ["+0", "%2B0"] {
        let e = s.get(&format!("/v1/topics/plus/partitions/{p}/messages")).await.expect_error(400, "bad_request");
        assert!(e["message"].as_str().unwrap().contains("partition"), "{p}: {e}");
    }
    let r = send(s.request(Method::GET, &read_path("plus", 0, "")).header("Accept", SSE).header("Last-Event-ID", "+0"))
        .await;
    let e = r.expect_error(400, "bad_request");
    assert!(e["message"].as_str().unwrap().contains("Last-Event-ID"), "{e}");
    // Without the sign, the same values are fine.
    assert_eq!(s.read("plus", 0, "offset=1&max_messages=1").await["messages"][0]["offset"], json!(1));
    s.get("/v1/topics/plus/partitions/0/messages").await.expect_status(200);
}

#[tokio::test]
async fn every_error_reply_is_json_with_code_and_message() {
    let s = Cairnd::start().await;
    s.create_topic("e", json!({"max_message_bytes": 100})).await;
    s.produce_n("e", 0, 1, "e").await;
    let cases: Vec<(Resp, u16, &str)> = vec![
        (s.get("/v1/nowhere").await, 404, "not_found"),
        (s.get("/v1/topics/none").await, 404, "topic_not_found"),
        (s.create_topic_raw(&json!({"name": "e"})).await, 409, "topic_exists"),
        (s.create_topic_raw(&json!({"name": "__internal"})).await, 400, "invalid_name"),
        (s.read_raw("e", 5, "").await, 404, "partition_not_found"),
        (s.read_raw("e", 0, "group=g").await, 404, "group_not_found"),
        (s.read_raw("e", 0, "offset=2").await, 416, "offset_out_of_range"),
        (s.produce_raw("e", json!([{ "value": "x".repeat(200) }])).await, 413, "message_too_large"),
        (s.post_raw("/v1/topics/e/messages", "text/csv", "a,b").await, 415, "unsupported_media_type"),
        (s.post_raw("/v1/topics/e/messages", "application/json", "{").await, 400, "bad_request"),
    ];
    for (r, status, code) in cases {
        let allowed: &[u16] = if status == 400 && code == "invalid_name" { &[400, 422] } else { &[status] };
        r.expect_error_in(allowed, code);
    }
}

#[tokio::test]
async fn a_barrage_of_bad_requests_leaves_the_server_and_data_intact() {
    let mut s = Cairnd::start().await;
    s.create_topic("safe", json!({"partitions": 2})).await;
    s.produce_n("safe", 1, 50, "safe").await;
    let before = s.read_all("safe", 1).await;
    let bodies: &[&[u8]] =
        &[b"", b"{", b"[]", b"null", b"{\"messages\": null}", &[0xff; 64], b"{\"messages\": [{\"partition\": 1e99}]}"];
    let types =
        ["application/json", NDJSON, "application/octet-stream", RECORDS, "application/vnd.cairn+json", "image/png"];
    for ct in types {
        for body in bodies {
            let r = send(
                s.request(Method::POST, "/v1/topics/safe/messages")
                    .header("content-type", ct)
                    .header("Cairn-Partition", "1")
                    .body(body.to_vec()),
            )
            .await;
            assert!(r.status < 500, "{ct} {body:?}: {} {}", r.status, r.text());
            if r.status >= 400 {
                assert!(r.json()["code"].is_string(), "{ct} {body:?}: {}", r.text());
            }
        }
    }
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let r = send(s.request(method.clone(), "/v1/topics/safe/messages").body("x")).await;
        assert!((400..500).contains(&r.status), "{method} messages: {} {}", r.status, r.text());
    }
    s.get("/v1/health").await.expect_status(200);
    // Octet-stream accepted the non-JSON bodies as values in partition 1: count what went in.
    let after = s.read_all("safe", 1).await;
    assert_eq!(&after[..50], &before[..], "the existing messages are unchanged");
    // And everything is still there after a restart.
    s.restart().await;
    assert_eq!(s.read_all("safe", 1).await, after);
}

/// serde's derived structs also read a JSON array of the fields in order; the contract wants a
/// body of the wrong type to be `400 bad_request`. Each of these used to be taken as a request
/// (`["k", 1]` was stored as a message with key "k" and value 1), now none is, and nothing changes.
#[tokio::test]
async fn arrays_where_objects_belong_are_400_and_change_nothing() {
    let s = Cairnd::start().await;
    s.create_topic("arr", json!({"partitions": 2})).await;
    s.produce_n("arr", 0, 2, "arr").await;
    let cases: &[(&str, &str, &str)] = &[
        ("/v1/topics/arr/messages", "application/json", r#"{"messages": [["k", 1]]}"#),
        ("/v1/topics/arr/messages", "application/json", r#"[[{"value": 1}]]"#),
        ("/v1/topics/arr/messages", NDJSON, r#"["k", 1]"#),
        ("/v1/groups/g/offsets", "application/json", r#"["arr", [[0, 1]]]"#),
        ("/v1/groups/g/offsets", "application/json", r#"{"topic": "arr", "offsets": [[0, 1]]}"#),
        ("/v1/groups/g/topics/arr/fetch", "application/json", "[]"),
        ("/v1/groups/g/topics/arr/ack", "application/json", r#"{"messages": [[0, 0]]}"#),
        ("/v1/groups/g/topics/arr/nack", "application/json", r#"[[[0, 0]]]"#),
        ("/v1/groups/g/reset", "application/json", r#"{"topic": "arr", "to": {"offset": 1, "timestamp": 5}}"#),
    ];
    for (path, ct, body) in cases {
        let r = s.post_raw(path, ct, *body).await;
        assert_eq!(r.status, 400, "{path} {body}: {} {}", r.status, r.text());
        assert_eq!(r.json()["code"], "bad_request", "{path} {body}: {}", r.text());
    }
    let r =
        send(s.request(Method::PUT, "/v1/groups/g").header("content-type", "application/json").body("[\"latest\"]"))
            .await;
    r.expect_error(400, "bad_request");
    // Nothing was appended, and no group came into being.
    assert_eq!(s.end_offset("arr", 0).await + s.end_offset("arr", 1).await, 2);
    s.get("/v1/groups/g").await.expect_error(404, "group_not_found");
}

/// Group bodies are JSON as topic bodies are: another declared type is `415`, as for
/// `POST /v1/topics`; no `Content-Type` at all is taken as JSON.
#[tokio::test]
async fn group_bodies_with_a_non_json_content_type_are_415() {
    let s = Cairnd::start().await;
    s.create_topic("ct", json!({})).await;
    s.produce_n("ct", 0, 1, "ct").await;
    for path in
        ["/v1/groups/g/topics/ct/fetch", "/v1/groups/g/topics/ct/ack", "/v1/groups/g/offsets", "/v1/groups/g/reset"]
    {
        s.post_raw(path, "text/plain", "{}").await.expect_error(415, "unsupported_media_type");
    }
    let put = send(s.request(Method::PUT, "/v1/groups/g").header("content-type", "text/plain").body("{}")).await;
    put.expect_error(415, "unsupported_media_type");
    s.get("/v1/groups/g").await.expect_error(404, "group_not_found");
    // Without a Content-Type, and with the vendor JSON type, the same bodies work.
    let r = send(s.request(Method::POST, "/v1/groups/g/topics/ct/fetch").body("{}")).await;
    assert_eq!(r.json()["messages"].as_array().map(Vec::len), Some(1), "{}", r.text());
    s.post_raw(
        "/v1/groups/g/topics/ct/ack",
        "application/vnd.cairn+json",
        r#"{"messages": [{"partition": 0, "offset": 0}]}"#,
    )
    .await
    .expect_status(204);
}

/// The server decodes no content coding: a compressed body is `415 unsupported_media_type`
/// (not a parse error) and changes nothing; `identity` is no coding at all.
#[tokio::test]
async fn a_compressed_body_is_415_and_changes_nothing() {
    let s = Cairnd::start().await;
    let coded = |method: Method, path: &str, ct: &str, coding: &str, body: &'static str| {
        s.request(method, path).header("content-type", ct).header("content-encoding", coding).body(body)
    };
    let produce = r#"{"messages": [{"value": 1}]}"#;
    for (ct, body) in
        [("application/json", produce), ("application/x-ndjson", "{\"value\": 1}\n"), ("application/octet-stream", "x")]
    {
        let r = send(coded(Method::POST, "/v1/topics/zipped/messages", ct, "gzip", body)).await;
        r.expect_error(415, "unsupported_media_type");
    }
    send(coded(Method::POST, "/v1/topics", "application/json", "br", r#"{"name": "zipped"}"#))
        .await
        .expect_error(415, "unsupported_media_type");
    send(coded(Method::PUT, "/v1/groups/zg", "application/json", "deflate", "{}"))
        .await
        .expect_error(415, "unsupported_media_type");
    s.get("/v1/topics/zipped").await.expect_error(404, "topic_not_found");
    s.get("/v1/groups/zg").await.expect_error(404, "group_not_found");
    send(coded(Method::POST, "/v1/topics/zipped/messages", "application/json", "identity", produce))
        .await
        .expect_status(200);
}
