//! Graceful shutdown: SIGTERM / SIGINT exit 0 and keep everything acknowledged.

use cairn_tests::*;

const PARTITIONS: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_0_and_keeps_everything_acknowledged() {
    let mut s = Cairnd::start().await;
    s.create_topic("graceful", json!({"partitions": PARTITIONS, "segment_bytes": 16384})).await;
    let bodies = [Body::Json, Body::Ndjson, Body::Records, Body::Json];
    let mut load = Load::start(&s, "graceful", PARTITIONS, &bodies);
    load.wait_for_acked(300).await;
    let status = s.sigterm().await;
    assert_eq!(status.code(), Some(0), "SIGTERM exit status: {status}; output:\n{}", s.logs());
    let acked = load.acked();
    s.start_again().await;
    load.server_restarted();
    let target = load.acked_count() + 50;
    load.wait_for_acked(target).await;
    verify_acked(&s, "graceful", PARTITIONS, &acked).await;
    let acked = load.stop().await;
    verify_acked(&s, "graceful", PARTITIONS, &acked).await;
}

#[tokio::test]
async fn sigint_exits_0_and_keeps_topics_and_config() {
    let mut s = Cairnd::start().await;
    let d = s.create_topic("int", json!({"partitions": 2, "retention_ms": 5000})).await;
    s.produce_n("int", 1, 10, "i").await;
    let status = s.stop_with(libc::SIGINT).await;
    assert_eq!(status.code(), Some(0), "SIGINT exit status: {status}");
    s.start_again().await;
    let after = s.describe("int").await;
    assert_eq!(after["config"], d["config"]);
    assert_eq!(after["partitions"][1]["end_offset"], json!(10));
}

#[tokio::test]
async fn sigterm_with_an_open_sse_stream_still_exits_0() {
    let mut s = Cairnd::start().await;
    s.create_topic("follow", json!({})).await;
    s.produce_n("follow", 0, 1, "f").await;
    let resp = s
        .client()
        .get(s.url(&read_path("follow", 0, "offset=0")))
        .header("accept", SSE)
        .send()
        .await
        .expect("SSE request");
    assert_eq!(resp.status().as_u16(), 200);
    let mut sse = SseReader::new(resp);
    let ev = within(GENEROUS, sse.next_event()).await.expect("first event");
    assert_eq!(ev.id.as_deref(), Some("0"));
    // The stream is open and idle; shutdown must not wait for the client to go away.
    let status = s.sigterm().await;
    assert_eq!(status.code(), Some(0), "SIGTERM exit status: {status}");
    // The stream ends (the server closed it).
    assert!(within(GENEROUS, sse.next_event()).await.is_none(), "stream goes on after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_an_open_group_fetch_long_poll_at_once() {
    let mut s = Cairnd::start().await;
    s.create_topic("idle", json!({})).await;
    let fetch =
        s.request(reqwest::Method::POST, "/v1/groups/waiter/topics/idle/fetch").json(&json!({"wait_ms": 30000}));
    let started = std::time::Instant::now();
    let poll = tokio::spawn(fetch.send());
    // The fetch has reached the engine (and is waiting) once it has created its group.
    within(GENEROUS, async {
        while s.get("/v1/groups/waiter").await.status != 200 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    let status = s.sigterm().await;
    assert_eq!(status.code(), Some(0), "SIGTERM exit status: {status}");
    let resp = poll.await.expect("fetch task").expect("the fetch is answered, not cut off");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("JSON reply");
    assert_eq!(body, json!({"messages": []}));
    // answered on shutdown, not when its 30 s wait ran out (the grace period is 30 s too)
    assert!(started.elapsed() < std::time::Duration::from_secs(25), "took {:?}", started.elapsed());
}
