//! Consumer groups through the real binary: queue style (fetch, ack, nack, extend, reject,
//! dead letters, ordered mode), cursor style (commit, offsets, reads with `group=`, reset),
//! every error code of the contract's groups section, and durability across SIGKILL.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use cairn_tests::*;

async fn fetch(s: &Cairnd, group: &str, topic: &str, body: Value) -> Vec<Value> {
    let r = s.post_json(&format!("/v1/groups/{group}/topics/{topic}/fetch"), &body).await;
    r.expect_status(200);
    r.json()["messages"].as_array().cloned().unwrap_or_default()
}

fn refs(msgs: &[Value]) -> Value {
    let refs: Vec<Value> = msgs.iter().map(|m| json!({"partition": m["partition"], "offset": m["offset"]})).collect();
    json!({ "messages": refs })
}

async fn op(s: &Cairnd, group: &str, topic: &str, verb: &str, body: &Value) {
    s.post_json(&format!("/v1/groups/{group}/topics/{topic}/{verb}"), body).await.expect_status(204);
}

fn ids(msgs: &[Value]) -> Vec<(u64, u64)> {
    msgs.iter().map(|m| (m["partition"].as_u64().unwrap(), m["offset"].as_u64().unwrap())).collect()
}

#[tokio::test]
async fn competing_consumers_get_disjoint_messages_and_drain_the_topic() {
    let s = Cairnd::start().await;
    s.create_topic("jobs", json!({"partitions": 3})).await;
    let msgs: Vec<Value> = (0..60).map(|i| json!({"value": {"task": i}, "partition": i % 3})).collect();
    s.produce("jobs", Value::Array(msgs)).await;
    let mut seen = BTreeSet::new();
    let mut workers = ["w1", "w2", "w3"].iter().cycle();
    loop {
        let consumer = workers.next().unwrap();
        let got = fetch(&s, "g", "jobs", json!({"max_messages": 7, "consumer": consumer})).await;
        if got.is_empty() {
            break;
        }
        for m in &got {
            assert_eq!(m["delivery"], json!(1), "first delivery: {m}");
            assert!(
                seen.insert((m["partition"].as_u64().unwrap(), m["offset"].as_u64().unwrap())),
                "delivered twice: {m}"
            );
        }
        op(&s, "g", "jobs", "ack", &refs(&got)).await;
    }
    assert_eq!(seen.len(), 60);
    let offsets = s.get("/v1/groups/g/offsets?topic=jobs").await;
    offsets.expect_status(200);
    for o in offsets.json()["offsets"].as_array().unwrap() {
        assert_eq!(
            (o["offset"].clone(), o["end_offset"].clone(), o["lag"].clone()),
            (json!(20), json!(20), json!(0)),
            "{o}"
        );
    }
    let d = s.get("/v1/groups/g").await;
    d.expect_status(200);
    assert_eq!(d.json()["config"]["max_deliveries"], json!(5));
    // The config's fields also at the top level, as PUT replies with them.
    assert_eq!(d.json()["max_deliveries"], json!(5));
    assert_eq!(d.json()["ack_timeout_ms"], d.json()["config"]["ack_timeout_ms"]);
    let listed = s.get("/v1/groups").await.json();
    let g = listed["groups"].as_array().unwrap().iter().find(|g| g["name"] == "g").unwrap().clone();
    assert_eq!((g["config"]["start"].clone(), g["start"].clone()), (json!("earliest"), json!("earliest")));
}

#[tokio::test]
async fn a_fetch_spreads_over_partitions_oldest_first() {
    let s = Cairnd::start().await;
    s.create_topic("fair", json!({"partitions": 2})).await;
    s.produce_n("fair", 0, 10, "a").await;
    s.produce_n("fair", 1, 10, "b").await;
    let got = fetch(&s, "g", "fair", json!({"max_messages": 4})).await;
    let by_part: HashMap<u64, Vec<u64>> = ids(&got).into_iter().fold(HashMap::new(), |mut m, (p, o)| {
        m.entry(p).or_default().push(o);
        m
    });
    assert_eq!(by_part.get(&0), Some(&vec![0, 1]), "{got:?}");
    assert_eq!(by_part.get(&1), Some(&vec![0, 1]), "{got:?}");
}

#[tokio::test]
async fn an_expired_lease_is_redelivered_with_the_next_delivery_count() {
    let s = Cairnd::start().await;
    s.create_topic("exp", json!({})).await;
    s.produce_n("exp", 0, 1, "x").await;
    let first = fetch(&s, "g", "exp", json!({"ack_timeout_ms": 200, "consumer": "dies"})).await;
    assert_eq!(ids(&first), vec![(0, 0)]);
    // This long-poll is woken by the lease expiry (not by its 30 s wait).
    let again =
        within(Duration::from_secs(20), fetch(&s, "g", "exp", json!({"wait_ms": 30000, "consumer": "lives"}))).await;
    assert_eq!(ids(&again), vec![(0, 0)]);
    assert_eq!(again[0]["delivery"], json!(2));
    assert_eq!(again[0]["value"], json!("x-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_group_answers_its_waiting_fetch_and_the_group_stays_deleted() {
    let s = Cairnd::start().await;
    s.create_topic("quiet", json!({})).await;
    let waiting = {
        let req =
            s.request(reqwest::Method::POST, "/v1/groups/gone/topics/quiet/fetch").json(&json!({"wait_ms": 30000}));
        tokio::spawn(req.send())
    };
    // The fetch made the group (a position in the topic) before it began to wait.
    within(GENEROUS, async {
        while s.get("/v1/groups/gone").await.status != 200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    s.delete("/v1/groups/gone").await.expect_status(204);
    // Answered by the delete (not by its 30 s wait), empty, and it did not bring the group back.
    let resp = within(Duration::from_secs(20), waiting).await.expect("fetch task").expect("fetch reply");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.expect("JSON"), json!({"messages": []}));
    s.get("/v1/groups/gone").await.expect_error(404, "group_not_found");
}

#[tokio::test]
async fn nack_with_delay_extend_and_reset() {
    let s = Cairnd::start().await;
    s.create_topic("nk", json!({})).await;
    s.produce_n("nk", 0, 2, "m").await;
    let got = fetch(&s, "g", "nk", json!({"max_messages": 2})).await;
    op(&s, "g", "nk", "nack", &json!({"messages": [{"partition": 0, "offset": 0, "delay_ms": 60000}]})).await;
    op(&s, "g", "nk", "nack", &json!({"messages": [{"partition": 0, "offset": 1}]})).await;
    let next = fetch(&s, "g", "nk", json!({"max_messages": 10})).await;
    assert_eq!(ids(&next), vec![(0, 1)], "offset 0 waits for its delay, offset 1 comes back at once");
    assert_eq!(next[0]["delivery"], json!(2));
    op(&s, "g", "nk", "extend", &json!({"messages": [{"partition": 0, "offset": 1}], "ack_timeout_ms": 60000})).await;
    let none = fetch(&s, "g", "nk", json!({"max_messages": 10, "wait_ms": 300})).await;
    assert!(none.is_empty(), "{none:?}");
    // Reset clears the delay and the lease: everything comes back.
    let r = s.post_json("/v1/groups/g/reset", &json!({"topic": "nk", "to": "earliest"})).await;
    r.expect_status(200);
    assert_eq!(r.json()["offsets"][0]["offset"], json!(0));
    let all = fetch(&s, "g", "nk", json!({"max_messages": 10})).await;
    assert_eq!(ids(&all), ids(&got));
}

#[tokio::test]
async fn max_deliveries_and_reject_dead_letter_with_origin_headers() {
    let s = Cairnd::start().await;
    let put = send(
        s.request(reqwest::Method::PUT, "/v1/groups/g")
            .json(&json!({"max_deliveries": 2, "dead_letter_topic": "dead"})),
    )
    .await;
    put.expect_status(200);
    assert_eq!(put.json()["dead_letter_topic"], json!("dead"));
    s.create_topic("dl", json!({})).await;
    s.produce("dl", json!([{"key": "k0", "value": "v0", "headers": {"trace": "t0"}}, {"value": "v1"}])).await;
    for delivery in 1..=2 {
        let got = fetch(&s, "g", "dl", json!({"max_messages": 1})).await;
        assert_eq!((ids(&got), got[0]["delivery"].clone()), (vec![(0, 0)], json!(delivery)));
        op(&s, "g", "dl", "nack", &refs(&got)).await;
    }
    let next = fetch(&s, "g", "dl", json!({"max_messages": 1})).await;
    assert_eq!(ids(&next), vec![(0, 1)], "offset 0 was dead-lettered after 2 deliveries");
    op(&s, "g", "dl", "reject", &json!({"messages": [{"partition": 0, "offset": 1}], "reason": "bad payload"})).await;
    let dead = s.read("dead", 0, "").await;
    let dead = dead["messages"].as_array().unwrap().clone();
    assert_eq!(dead.len(), 2);
    assert_eq!((dead[0]["key"].clone(), dead[0]["value"].clone()), (json!("k0"), json!("v0")));
    let h = &dead[0]["headers"];
    assert_eq!(h["cairn-origin-topic"], json!("dl"));
    assert_eq!(h["cairn-origin-partition"], json!("0"));
    assert_eq!(h["cairn-origin-offset"], json!("0"));
    assert_eq!(h["cairn-deliveries"], json!("2"));
    assert_eq!(h["trace"], json!("t0"));
    assert!(h["cairn-reason"].as_str().unwrap().contains("deliveries"), "{h}");
    assert_eq!(dead[1]["headers"]["cairn-reason"], json!("bad payload"));
    assert_eq!(dead[1]["headers"]["cairn-origin-offset"], json!("1"));
    let d = s.get("/v1/groups/g").await.json();
    assert_eq!(d["partitions"][0]["dead_lettered"], json!(2), "{d}");
    assert_eq!(d["partitions"][0]["committed"], json!(2), "dead-lettered messages are done: {d}");
}

/// A message whose last allowed lease expires is dead-lettered then, without another fetch by
/// anyone (it used to wait for the group's next fetch from the topic, and to count as in
/// flight until then).
#[tokio::test]
async fn a_last_lease_that_expires_is_dead_lettered_without_another_fetch() {
    let s = Cairnd::start().await;
    let put = send(
        s.request(reqwest::Method::PUT, "/v1/groups/g").json(&json!({"max_deliveries": 1, "ack_timeout_ms": 200})),
    )
    .await;
    put.expect_status(200);
    s.create_topic("exp", json!({})).await;
    s.create_topic("exp.dlq", json!({})).await;
    s.produce("exp", json!([{"key": "k", "value": "v"}])).await;
    let got = fetch(&s, "g", "exp", json!({})).await;
    assert_eq!(ids(&got), vec![(0, 0)]);
    // Nobody fetches again: the dead-letter topic gets the message when the lease expires.
    let dead = s.read("exp.dlq", 0, "wait_ms=20000").await;
    let dead = dead["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["key"].clone(), dead[0]["value"].clone()), (json!("k"), json!("v")));
    assert_eq!(dead[0]["headers"]["cairn-deliveries"], json!("1"));
    // The expired lease is no longer in flight.
    let offsets = s.get("/v1/groups/g/offsets?topic=exp").await.json();
    assert_eq!(offsets["offsets"][0]["in_flight"], json!(0), "{offsets}");
}

/// Deleting a topic makes every group forget it (durably): a topic created again under the
/// name is consumed from the start, not from the old topic's committed offset or leases
/// (they used to survive: a commit at 3 hid the new topic's first messages).
#[tokio::test]
async fn a_deleted_and_recreated_topic_is_new_to_every_group() {
    let mut s = Cairnd::start().await;
    s.create_topic("again", json!({})).await;
    s.produce_n("again", 0, 3, "old").await;
    let commit = json!({"topic": "again", "offsets": [{"partition": 0, "offset": 3}]});
    s.post_json("/v1/groups/cursor/offsets", &commit).await.expect_status(200);
    assert_eq!(ids(&fetch(&s, "queue", "again", json!({"max_messages": 2})).await), vec![(0, 0), (0, 1)]);
    s.delete("/v1/topics/again").await.expect_status(204);
    s.create_topic("again", json!({})).await;
    s.produce_n("again", 0, 1, "new").await;
    for restarted in [false, true] {
        if restarted {
            s.restart().await;
        }
        let offsets = s.get("/v1/groups/cursor/offsets?topic=again").await.json();
        assert_eq!(
            (offsets["offsets"][0]["offset"].clone(), offsets["offsets"][0]["lag"].clone()),
            (json!(0), json!(1))
        );
        let read = s.read("again", 0, "group=cursor").await;
        assert_eq!(read["messages"][0]["value"], json!("new-0"), "restarted: {restarted}: {read}");
    }
    let got = fetch(&s, "queue", "again", json!({})).await;
    assert_eq!((ids(&got), got[0]["delivery"].clone()), (vec![(0, 0)], json!(1)), "{got:?}");
}

/// A fetch waiting on a topic that is deleted answers `404 topic_not_found` (it failed with
/// `500 internal`, reading the deleted files).
#[tokio::test]
async fn a_fetch_waiting_on_a_deleted_topic_is_404() {
    let s = Cairnd::start().await;
    s.create_topic("vanish", json!({})).await;
    s.produce_n("vanish", 0, 1, "v").await;
    assert_eq!(fetch(&s, "g", "vanish", json!({})).await.len(), 1);
    let client = s.client().clone();
    let url = s.url("/v1/groups/g/topics/vanish/fetch");
    let waiting = tokio::spawn(async move { send(client.post(url).json(&json!({"wait_ms": 30000}))).await });
    s.get("/v1/health").await.expect_status(200);
    s.delete("/v1/topics/vanish").await.expect_status(204);
    within(Duration::from_secs(20), waiting).await.unwrap().expect_error(404, "topic_not_found");
}

#[tokio::test]
async fn default_dead_letter_topic_is_topic_dot_dlq() {
    let s = Cairnd::start().await;
    s.create_topic("orders", json!({})).await;
    s.produce_n("orders", 0, 1, "o").await;
    let got = fetch(&s, "g", "orders", json!({})).await;
    op(&s, "g", "orders", "reject", &refs(&got)).await;
    let dead = s.read("orders.dlq", 0, "").await;
    assert_eq!(dead["messages"][0]["value"], json!("o-0"));
    assert_eq!(dead["messages"][0]["headers"]["cairn-reason"], json!("rejected"));
}

#[tokio::test]
async fn ordered_groups_hold_a_partition_until_its_messages_are_done() {
    let s = Cairnd::start().await;
    let put = send(s.request(reqwest::Method::PUT, "/v1/groups/o").json(&json!({"ordered": true}))).await;
    put.expect_status(200);
    s.create_topic("seq", json!({})).await;
    s.produce_n("seq", 0, 4, "s").await;
    let a = fetch(&s, "o", "seq", json!({"max_messages": 2, "consumer": "a"})).await;
    assert_eq!(ids(&a), vec![(0, 0), (0, 1)]);
    assert!(fetch(&s, "o", "seq", json!({"max_messages": 2, "consumer": "b"})).await.is_empty(), "partition is busy");
    op(&s, "o", "seq", "ack", &json!({"messages": [{"partition": 0, "offset": 1}]})).await;
    assert!(fetch(&s, "o", "seq", json!({"consumer": "b"})).await.is_empty(), "offset 0 still leased");
    op(&s, "o", "seq", "nack", &json!({"messages": [{"partition": 0, "offset": 0}]})).await;
    let b = fetch(&s, "o", "seq", json!({"max_messages": 5, "consumer": "b"})).await;
    assert_eq!(ids(&b), vec![(0, 0)], "the oldest undone message first, alone");
    op(&s, "o", "seq", "ack", &refs(&b)).await;
    let c = fetch(&s, "o", "seq", json!({"max_messages": 5, "consumer": "b"})).await;
    assert_eq!(ids(&c), vec![(0, 2), (0, 3)]);
}

#[tokio::test]
async fn cursor_commits_reads_from_the_group_and_replays() {
    let s = Cairnd::start().await;
    s.create_topic("cur", json!({"partitions": 2})).await;
    s.produce_n("cur", 0, 10, "c").await;
    let r = s
        .post_json("/v1/groups/reader/offsets", &json!({"topic": "cur", "offsets": [{"partition": 0, "offset": 4}]}))
        .await;
    r.expect_status(200);
    let got = s.get("/v1/groups/reader/offsets?topic=cur").await.json();
    assert_eq!(
        got["offsets"][0],
        json!({"topic": "cur", "partition": 0, "offset": 4, "end_offset": 10, "lag": 6, "in_flight": 0})
    );
    assert_eq!(got["offsets"][1]["lag"], json!(0));
    // The description (and the offsets without `?topic=`) covers every partition of the topic,
    // the untouched one at the group's start position, not only the partition committed in.
    let d = s.get("/v1/groups/reader").await.json();
    let rows: Vec<(Value, Value, Value)> = d["topics"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["partition"].clone(), p["committed"].clone(), p["lag"].clone()))
        .collect();
    assert_eq!(rows, vec![(json!(0), json!(4), json!(6)), (json!(1), json!(0), json!(0))], "{d}");
    assert_eq!(d["partitions"], d["topics"][0]["partitions"], "{d}");
    assert_eq!(s.get("/v1/groups/reader/offsets").await.json(), got);
    // An unknown query parameter is ignored here as on every other route (it was a 400).
    assert_eq!(s.get("/v1/groups/reader/offsets?topic=cur&_=1").await.json(), got);
    let read = s.read("cur", 0, "group=reader&max_messages=2").await;
    assert_eq!(read["messages"][0]["offset"], json!(4));
    let t = s.read("cur", 0, "offset=7").await["messages"][0]["timestamp"].as_i64().unwrap();
    let r = s
        .post_json("/v1/groups/reader/reset", &json!({"topic": "cur", "to": {"timestamp": t}, "partitions": [0]}))
        .await;
    r.expect_status(200);
    assert!(r.json()["offsets"][0]["offset"].as_u64().unwrap() <= 7);
    let r = s.post_json("/v1/groups/reader/reset", &json!({"topic": "cur", "to": {"offset": 2}})).await;
    r.expect_status(200);
    assert_eq!(r.json()["offsets"][0]["offset"], json!(2));
    assert_eq!(r.json()["offsets"][1]["offset"], json!(0), "clamped into the empty partition's range");
    let r =
        s.post_json("/v1/groups/reader/reset", &json!({"topic": "cur", "to": {"offset": 2}, "partitions": [1]})).await;
    r.expect_error(416, "offset_out_of_range");
    let r = s.post_json("/v1/groups/reader/reset", &json!({"topic": "cur", "to": "latest"})).await;
    assert_eq!(r.json()["offsets"][0]["offset"], json!(10));
    // A partition named twice is reset and reported once.
    let r = s
        .post_json("/v1/groups/reader/reset", &json!({"topic": "cur", "to": "earliest", "partitions": [1, 0, 1]}))
        .await;
    let parts: Vec<Value> = r.json()["offsets"].as_array().unwrap().iter().map(|o| o["partition"].clone()).collect();
    assert_eq!(parts, vec![json!(0), json!(1)], "{}", r.text());
    let list = s.get("/v1/groups").await.json();
    assert!(list["groups"].as_array().unwrap().iter().any(|g| g["name"] == json!("reader")), "{list}");
    s.delete("/v1/groups/reader").await.expect_status(204);
    s.get("/v1/groups/reader").await.expect_error(404, "group_not_found");
}

#[tokio::test]
async fn group_errors_follow_the_contract() {
    let s = Cairnd::start().await;
    s.create_topic("err", json!({"partitions": 1})).await;
    s.produce_n("err", 0, 3, "e").await;
    s.get("/v1/groups/never").await.expect_error(404, "group_not_found");
    s.delete("/v1/groups/never").await.expect_error(404, "group_not_found");
    s.get("/v1/groups/never/offsets").await.expect_error(404, "group_not_found");
    s.read_raw("err", 0, "group=never").await.expect_error(404, "group_not_found");
    s.post_json("/v1/groups/g/offsets", &json!({"topic": "nope", "offsets": [{"partition": 0, "offset": 1}]}))
        .await
        .expect_error(404, "topic_not_found");
    s.post_json("/v1/groups/g/offsets", &json!({"topic": "err", "offsets": [{"partition": 5, "offset": 1}]}))
        .await
        .expect_error(404, "partition_not_found");
    let body = s
        .post_json("/v1/groups/g/offsets", &json!({"topic": "err", "offsets": [{"partition": 0, "offset": 99}]}))
        .await
        .expect_error(416, "offset_out_of_range");
    assert_eq!((body["start_offset"].clone(), body["end_offset"].clone()), (json!(0), json!(3)));
    s.post_json("/v1/groups/g/offsets", &json!({"topic": "err", "offsets": [{"partition": 0, "offset": -1}]}))
        .await
        .expect_error(400, "bad_request");
    s.post_json("/v1/groups/g/topics/nope/fetch", &json!({})).await.expect_error(404, "topic_not_found");
    s.post_json("/v1/groups/g/topics/err/fetch", &json!({"max_messages": 0})).await.expect_error(400, "bad_request");
    s.post_json("/v1/groups/g/topics/err/fetch", &json!({"wait_ms": 30001})).await.expect_error(400, "bad_request");
    s.post_json("/v1/groups/g/topics/err/fetch", &json!({"max_messages": "ten"}))
        .await
        .expect_error(400, "bad_request");
    s.post_raw("/v1/groups/g/topics/err/ack", "application/json", "{not json").await.expect_error(400, "bad_request");
    s.post_json("/v1/groups/g/topics/err/ack", &json!({"messages": [{"partition": 0, "offset": 3}]}))
        .await
        .expect_error(416, "offset_out_of_range");
    s.post_json("/v1/groups/g/topics/err/ack", &json!({"messages": [{"partition": 9, "offset": 0}]}))
        .await
        .expect_error(404, "partition_not_found");
    s.post_json("/v1/groups/bad%20name/topics/err/fetch", &json!({})).await.expect_error(400, "invalid_name");
    s.post_json("/v1/groups/__internal/topics/err/fetch", &json!({})).await.expect_error(400, "invalid_name");
    s.post_json("/v1/groups/g/reset", &json!({"topic": "err", "to": "sideways"}))
        .await
        .expect_error(400, "bad_request");
    let put = send(s.request(reqwest::Method::PUT, "/v1/groups/g").json(&json!({"start": "middle"}))).await;
    put.expect_error(400, "bad_request");
    let put = send(s.request(reqwest::Method::PUT, "/v1/groups/g").json(&json!({"ack_timeout_ms": 0}))).await;
    put.expect_error(400, "bad_request");
    // A dead-letter topic is a topic name: the contract's name rules give `invalid_name`.
    for bad in ["__dead", "..", "a/b", ""] {
        let put = send(s.request(reqwest::Method::PUT, "/v1/groups/g").json(&json!({"dead_letter_topic": bad}))).await;
        put.expect_error(400, "invalid_name");
    }
    // Acking twice is harmless.
    let got = fetch(&s, "g", "err", json!({"max_messages": 1})).await;
    op(&s, "g", "err", "ack", &refs(&got)).await;
    op(&s, "g", "err", "ack", &refs(&got)).await;
    // The messages a fetch returned can be handed back as they are (their other fields are
    // ignored); a field no message has is still a 400.
    let got = fetch(&s, "g", "err", json!({"max_messages": 1})).await;
    assert_eq!(got.len(), 1);
    op(&s, "g", "err", "nack", &json!({ "messages": got })).await;
    let again = fetch(&s, "g", "err", json!({"max_messages": 1})).await;
    assert_eq!((again[0]["offset"].clone(), again[0]["delivery"].clone()), (got[0]["offset"].clone(), json!(2)));
    op(&s, "g", "err", "ack", &json!({ "messages": again })).await;
    let typo = json!({"messages": [{"partition": 0, "offset": 2, "delay": 5}]});
    s.post_json("/v1/groups/g/topics/err/nack", &typo).await.expect_error(400, "bad_request");
    let d = s.get("/v1/groups/g").await.json();
    assert_eq!(d["partitions"][0]["committed"], json!(2), "{d}");
}

#[tokio::test]
async fn sigkill_keeps_commits_and_acks_and_redelivers_exactly_the_unacked() {
    let mut s = Cairnd::start().await;
    s.create_topic("dur", json!({"partitions": 2})).await;
    s.produce_n("dur", 0, 10, "a").await;
    s.produce_n("dur", 1, 10, "b").await;
    let got = fetch(&s, "q", "dur", json!({"max_messages": 20})).await;
    assert_eq!(got.len(), 20);
    let acked: Vec<Value> = got.iter().filter(|m| m["offset"].as_u64().unwrap() % 3 != 0).cloned().collect();
    op(&s, "q", "dur", "ack", &refs(&acked)).await;
    s.post_json(
        "/v1/groups/c/offsets",
        &json!({"topic": "dur", "offsets": [{"partition": 0, "offset": 7}, {"partition": 1, "offset": 3}]}),
    )
    .await
    .expect_status(200);
    s.sigkill().await;
    s.start_again().await;
    let again = fetch(&s, "q", "dur", json!({"max_messages": 100})).await;
    let mut expected: Vec<(u64, u64)> = ids(&got).into_iter().filter(|(_, o)| o % 3 == 0).collect();
    expected.sort();
    let mut redelivered = ids(&again);
    redelivered.sort();
    assert_eq!(redelivered, expected, "exactly the unacked messages come back");
    let offsets = s.get("/v1/groups/c/offsets?topic=dur").await.json();
    assert_eq!(offsets["offsets"][0]["offset"], json!(7));
    assert_eq!(offsets["offsets"][1]["offset"], json!(3));
}

#[tokio::test]
async fn a_worker_that_dies_mid_task_has_its_message_done_by_another() {
    let s = Cairnd::start().await;
    s.create_topic("work", json!({})).await;
    s.produce_n("work", 0, 3, "job").await;
    // Worker A takes everything with a short lease, then "dies" (never answers).
    let a = fetch(&s, "pool", "work", json!({"max_messages": 3, "ack_timeout_ms": 300, "consumer": "a"})).await;
    assert_eq!(a.len(), 3);
    // Worker B long-polls and gets them as A's leases expire.
    let mut done = BTreeSet::new();
    while done.len() < 3 {
        let b = within(
            Duration::from_secs(20),
            fetch(&s, "pool", "work", json!({"max_messages": 3, "wait_ms": 30000, "consumer": "b"})),
        )
        .await;
        for m in &b {
            assert_eq!(m["delivery"], json!(2));
            done.insert(m["offset"].as_u64().unwrap());
        }
        op(&s, "pool", "work", "ack", &refs(&b)).await;
    }
    let d = s.get("/v1/groups/pool").await.json();
    assert_eq!(d["partitions"][0]["committed"], json!(3), "{d}");
    assert_eq!(d["partitions"][0]["in_flight"], json!(0), "{d}");
}

#[tokio::test]
async fn group_metrics_are_exported() {
    let s = Cairnd::start().await;
    s.create_topic("met", json!({})).await;
    s.produce_n("met", 0, 5, "m").await;
    let got = fetch(&s, "mg", "met", json!({"max_messages": 2})).await;
    op(&s, "mg", "met", "ack", &refs(&got[..1])).await;
    let text = s.get("/metrics").await.text();
    for needle in [
        "cairn_group_committed_offset{group=\"mg\",topic=\"met\",partition=\"0\"} 1",
        "cairn_group_lag{group=\"mg\",topic=\"met\",partition=\"0\"} 4",
        "cairn_group_in_flight{group=\"mg\",topic=\"met\",partition=\"0\"} 1",
        "cairn_group_dead_lettered_total",
        "cairn_group_redeliveries_total",
    ] {
        assert!(text.contains(needle), "missing {needle} in metrics");
    }
}
