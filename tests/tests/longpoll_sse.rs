//! Long-poll reads and SSE follow mode.

use std::time::{Duration, Instant};

use cairn_tests::*;

/// Well under the 30 s wait the long-polls below ask for: a reply before this bound came
/// from the arriving message, not from the wait ending.
const EARLY: Duration = Duration::from_secs(20);

#[tokio::test]
async fn long_poll_returns_as_soon_as_a_message_arrives() {
    let s = Cairnd::start().await;
    s.create_topic("lp", json!({"partitions": 2})).await;
    s.produce_n("lp", 0, 3, "old").await;
    let client = s.client().clone();
    let url = s.url(&read_path("lp", 0, "offset=3&wait_ms=30000"));
    let poll = tokio::spawn(async move { send(client.get(url)).await });
    // Give the poll a head start (a round trip on another connection; not a guarantee, the
    // assertions hold either way).
    s.get("/v1/health").await.expect_status(200);
    // A message to another partition does not satisfy the poll.
    s.produce_n("lp", 1, 1, "elsewhere").await;
    s.produce("lp", json!([{"value": "new", "partition": 0}])).await;
    let r = within(EARLY, poll).await.unwrap();
    r.expect_status(200);
    let b = r.json();
    let msgs = b["messages"].as_array().unwrap();
    assert!(!msgs.is_empty(), "long-poll returned before its wait ended but without the message: {b}");
    assert_eq!(msgs[0]["offset"], json!(3));
    assert_eq!(msgs[0]["value"], json!("new"));
    assert_eq!(b["next_offset"], json!(3 + msgs.len()));
}

#[tokio::test]
async fn long_poll_waits_for_min_messages() {
    let s = Cairnd::start().await;
    s.create_topic("lp", json!({})).await;
    let client = s.client().clone();
    let url = s.url(&read_path("lp", 0, "offset=0&wait_ms=30000&min_messages=3"));
    let poll = tokio::spawn(async move { send(client.get(url)).await });
    for i in 0..3 {
        s.produce("lp", json!([{ "value": i }])).await;
    }
    let r = within(EARLY, poll).await.unwrap();
    r.expect_status(200);
    let b = r.json();
    assert_eq!(b["messages"].as_array().unwrap().len(), 3, "replied with fewer than min_messages: {b}");
}

#[tokio::test]
async fn long_poll_ends_empty_when_the_wait_runs_out() {
    let s = Cairnd::start().await;
    s.create_topic("lp", json!({})).await;
    s.produce_n("lp", 0, 2, "x").await;
    let start = Instant::now();
    let b = within(EARLY, s.read("lp", 0, "offset=2&wait_ms=300")).await;
    let waited = start.elapsed();
    assert_eq!(b["messages"], json!([]));
    assert_eq!(b["next_offset"], json!(2));
    assert_eq!(b["end_offset"], json!(2));
    assert!(waited >= Duration::from_millis(300), "replied after {waited:?}, before its wait_ms=300 ended");
    // With messages already there, no waiting at all is needed: the reply has them.
    let b = within(EARLY, s.read("lp", 0, "offset=0&wait_ms=30000")).await;
    assert_eq!(b["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn long_poll_with_ndjson_and_raw_records_wakes_too() {
    let s = Cairnd::start().await;
    s.create_topic("lp", json!({})).await;
    for accept in [NDJSON, RECORDS] {
        let end = s.end_offset("lp", 0).await;
        let rb =
            s.client().get(s.url(&read_path("lp", 0, &format!("offset={end}&wait_ms=30000")))).header("accept", accept);
        let poll = tokio::spawn(send(rb));
        s.produce("lp", json!([{ "value": accept }])).await;
        let r = within(EARLY, poll).await.unwrap();
        r.expect_status(200);
        assert_eq!(r.header_u64("Cairn-Next-Offset"), end + 1, "{accept}");
        assert!(!r.body.is_empty(), "{accept}: empty reply");
    }
}

async fn open_sse(s: &Cairnd, topic: &str, p: u32, query: &str, last_event_id: Option<u64>) -> SseReader {
    let mut rb = s.client().get(s.url(&read_path(topic, p, query))).header("accept", SSE);
    if let Some(id) = last_event_id {
        rb = rb.header("Last-Event-ID", id.to_string());
    }
    let resp = within(EARLY, rb.send()).await.expect("SSE request");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with(SSE), "SSE content type {ct:?}");
    SseReader::new(resp)
}

async fn next_message(sse: &mut SseReader) -> (u64, Value) {
    let ev = within(EARLY, sse.next_event()).await;
    let ev = ev.unwrap_or_else(|| panic!("SSE stream ended: {:?}", sse.error));
    assert_eq!(ev.event.as_deref(), Some("message"), "{ev:?}");
    let id: u64 = ev.id.as_deref().unwrap_or_else(|| panic!("event without id: {ev:?}")).parse().unwrap();
    let data: Value = serde_json::from_str(&ev.data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {ev:?}"));
    assert_eq!(data["offset"], json!(id), "id is the offset");
    (id, data)
}

#[tokio::test]
async fn sse_sends_history_then_follows_new_messages() {
    let s = Cairnd::start().await;
    s.create_topic("live", json!({"partitions": 2})).await;
    s.produce("live", json!([{"value": "h0", "partition": 1, "key": "a"}, {"value": "h1", "partition": 1}])).await;
    let mut sse = open_sse(&s, "live", 1, "offset=0", None).await;
    for want in 0..2 {
        let (id, data) = next_message(&mut sse).await;
        assert_eq!(id, want);
        assert_eq!(data["value"], json!(format!("h{want}")));
        assert_eq!(data["partition"], json!(1));
    }
    // New messages arrive as they are acknowledged, in order; other partitions do not.
    s.produce("live", json!([{"value": "other", "partition": 0}])).await;
    for i in 2..5 {
        s.produce("live", json!([{"value": format!("n{i}"), "partition": 1, "headers": {"i": i.to_string()}}])).await;
        let (id, data) = next_message(&mut sse).await;
        assert_eq!(id, i);
        assert_eq!(data["value"], json!(format!("n{i}")));
        assert_eq!(data["headers"], json!({"i": i.to_string()}));
    }
    // A batch of several.
    s.produce("live", json!([{"value": "b5", "partition": 1}, {"value": "b6", "partition": 1}])).await;
    assert_eq!(next_message(&mut sse).await.0, 5);
    assert_eq!(next_message(&mut sse).await.0, 6);
}

#[tokio::test]
async fn sse_resumes_after_last_event_id() {
    let s = Cairnd::start().await;
    s.create_topic("resume", json!({})).await;
    s.produce_n("resume", 0, 6, "m").await;
    // No start position: Last-Event-ID N resumes at N + 1.
    let mut sse = open_sse(&s, "resume", 0, "", Some(2)).await;
    let (id, data) = next_message(&mut sse).await;
    assert_eq!(id, 3);
    assert_eq!(data["value"], json!("m-3"));
    assert_eq!(next_message(&mut sse).await.0, 4);
    assert_eq!(next_message(&mut sse).await.0, 5);
    s.produce("resume", json!([{"value": "m-6"}])).await;
    assert_eq!(next_message(&mut sse).await, (6, next_message_value(&s, 6).await));
    drop(sse);
    // Without Last-Event-ID or a position: from the earliest.
    let mut sse = open_sse(&s, "resume", 0, "", None).await;
    assert_eq!(next_message(&mut sse).await.0, 0);
    // from=latest: only new ones.
    let mut sse = open_sse(&s, "resume", 0, "from=latest", None).await;
    s.produce("resume", json!([{"value": "m-7"}])).await;
    let (id, data) = next_message(&mut sse).await;
    assert_eq!(id, 7);
    assert_eq!(data["value"], json!("m-7"));
}

async fn next_message_value(s: &Cairnd, offset: u64) -> Value {
    s.read("resume", 0, &format!("offset={offset}&max_messages=1")).await["messages"][0].clone()
}

#[tokio::test]
async fn sse_sends_keepalive_comments_while_idle() {
    let s = Cairnd::start().await;
    s.create_topic("quiet", json!({})).await;
    let mut sse = open_sse(&s, "quiet", 0, "from=latest", None).await;
    let started = Instant::now();
    // Nothing is produced: the stream must still show signs of life within 15 s (the
    // contract's period; the bound below adds a margin for a loaded machine).
    within(Duration::from_secs(20), async {
        loop {
            match sse.next_item().await {
                Some(SseItem::Comment(c)) if c == "keepalive" => {
                    eprintln!("keepalive after {:?}", started.elapsed());
                    break;
                }
                Some(SseItem::Comment(_)) => {}
                other => panic!("expected a keepalive comment on an idle stream, got {other:?}"),
            }
        }
    })
    .await;
}

/// Deleting the topic ends its event streams (with an `error` event naming
/// `topic_not_found`) and answers its long-polls with `404`, instead of leaving them attached
/// to a log that will never grow again (the stream used to send keepalives forever).
#[tokio::test]
async fn deleting_the_topic_ends_its_event_streams_and_long_polls() {
    let s = Cairnd::start().await;
    s.create_topic("gone", json!({})).await;
    s.produce_n("gone", 0, 1, "g").await;
    let mut sse = open_sse(&s, "gone", 0, "", None).await;
    assert_eq!(next_message(&mut sse).await.0, 0);
    let client = s.client().clone();
    let url = s.url(&read_path("gone", 0, "offset=1&wait_ms=30000"));
    let poll = tokio::spawn(async move { send(client.get(url)).await });
    // The poll is registered once a request on another connection has been served (not a
    // guarantee; if the delete comes first, the poll gets the same 404).
    s.get("/v1/health").await.expect_status(200);
    s.delete("/v1/topics/gone").await.expect_status(204);
    let ended = within(EARLY, async {
        let ev = sse.next_event().await;
        (ev, sse.next_event().await)
    })
    .await;
    match ended {
        (Some(ev), None) => {
            assert_eq!(ev.event.as_deref(), Some("error"), "{ev:?}");
            assert!(ev.data.contains("topic_not_found"), "{ev:?}");
        }
        other => panic!("expected one error event and the end of the stream, got {other:?}"),
    }
    // The waiting poll answers 404 at once (it used to wait out its 30 s and then fail with
    // 500 internal, reading the deleted files).
    within(EARLY, poll).await.unwrap().expect_error(404, "topic_not_found");
}
