//! The client against a real `cairnd`: admin calls, producing (raw and JSON paths, batching,
//! idempotency), reading (positions, long-poll, raw vs JSON) and following the log across
//! segment rolls.

mod common;

use std::time::Duration;

use cairn_consumer::{
    Codec, Error, NewMessage, NewTopic, ProduceEncoding, Producer, ProducerConfig, ReadOptions, Reader, StartAt,
};
use common::Server;
use futures_util::StreamExt;

#[tokio::test]
async fn topic_admin_round_trip_and_typed_errors() {
    let s = Server::start().await;
    let c = s.client();
    c.health().await.unwrap();
    let t = c.create_topic(&NewTopic::new("orders").partitions(2).segment_bytes(4096)).await.unwrap();
    assert_eq!(t.name, "orders");
    assert_eq!(t.partitions.len(), 2);
    let d = c.describe_topic("orders").await.unwrap();
    assert_eq!(d.partitions[1].end_offset, 0);
    assert_eq!(d.config["segment_bytes"], 4096);
    assert!(c.list_topics().await.unwrap().iter().any(|t| t.name == "orders"));

    let e = c.create_topic(&NewTopic::new("orders")).await.unwrap_err();
    assert!(matches!(&e, Error::Api { status: 409, code, .. } if code == "topic_exists"), "{e:?}");
    let e = c.create_topic(&NewTopic::new("bad/name")).await.unwrap_err();
    assert_eq!(e.status().map(|s| s / 100), Some(4), "{e:?}");
    let e = c.describe_topic("missing").await.unwrap_err();
    assert_eq!(e.code(), Some("topic_not_found"));
    assert!(!e.is_retryable());

    c.delete_topic("orders").await.unwrap();
    assert_eq!(c.describe_topic("orders").await.unwrap_err().code(), Some("topic_not_found"));
}

#[tokio::test]
async fn produce_raw_and_json_paths_read_back_exactly() {
    let s = Server::start().await;
    let c = s.client();
    c.create_topic(&NewTopic::new("t").partitions(2)).await.unwrap();
    let p = Producer::new(c.clone());
    let binary = vec![0u8, 0xff, 0x10, b'{'];
    let msgs = vec![
        NewMessage::new(binary.clone()).with_key("k1").with_header("trace", "abc").to_partition(1),
        NewMessage::tombstone("k2").to_partition(1),
        NewMessage::new("{\"json\": true}").to_partition(1),
        NewMessage::new("no partition").with_key("k3"),
    ];
    let at = p.send_batch("t", msgs).await.unwrap();
    assert_eq!(at.len(), 4);
    assert_eq!((at[0].partition, at[0].offset), (1, 0));
    assert_eq!((at[1].partition, at[1].offset), (1, 1));
    assert_eq!((at[2].partition, at[2].offset), (1, 2));

    let r = Reader::new(c.clone(), "t", 1);
    let raw = r.read(&StartAt::Earliest).await.unwrap();
    assert_eq!(raw.next_offset, 3);
    assert_eq!(raw.end_offset, 3);
    let m = &raw.messages;
    assert_eq!(m.len(), 3);
    assert_eq!(m[0].value.as_deref(), Some(&binary[..]));
    assert_eq!(m[0].key_str(), Some("k1"));
    assert_eq!(m[0].header_str("trace"), Some("abc"));
    assert_eq!(m[1].value, None);
    assert_eq!(m[2].value_str(), Some("{\"json\": true}"));
    let json = r.read_json(&StartAt::Earliest).await.unwrap();
    assert_eq!(json, raw, "raw and JSON reads agree");

    // The key-hashed message is in whichever partition the server chose.
    let other = Reader::new(c.clone(), "t", at[3].partition).read(&StartAt::Offset(at[3].offset)).await.unwrap();
    assert_eq!(other.messages[0].value_str(), Some("no partition"));

    // Single sends on both encodings.
    let one = p.send("t", NewMessage::new("single").to_partition(0)).await.unwrap();
    let json_p =
        Producer::with_config(c.clone(), ProducerConfig { encoding: ProduceEncoding::Json, ..Default::default() });
    let two = json_p.send("t", NewMessage::new("json single").to_partition(0)).await.unwrap();
    assert_eq!(two.offset, one.offset + 1);
    let page = Reader::new(c, "t", 0).read(&StartAt::Offset(one.offset)).await.unwrap();
    let values: Vec<_> = page.messages.iter().filter_map(|m| m.value_str()).collect();
    assert_eq!(&values[values.len() - 2..], ["single", "json single"]);
}

#[tokio::test]
async fn typed_4xx_errors_are_not_retried() {
    let s = Server::start().await;
    let c = s.client();
    c.create_topic(&NewTopic::new("one")).await.unwrap();
    let p = Producer::new(c.clone());
    let e = p.send("one", NewMessage::new("x").to_partition(5)).await.unwrap_err();
    assert_eq!(e.code(), Some("partition_not_found"));
    assert_eq!(e.status(), Some(404));
    let e = Reader::new(c.clone(), "one", 0).read(&StartAt::Offset(10)).await.unwrap_err();
    match e {
        Error::Api { status: 416, code, details, .. } => {
            assert_eq!(code, "offset_out_of_range");
            assert_eq!(details["end_offset"], 0);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_same_idempotency_key_never_appends_twice() {
    let s = Server::start().await;
    let c = s.client();
    c.create_topic(&NewTopic::new("pay").partitions(2)).await.unwrap();
    let p = Producer::new(c.clone());
    for (key, msgs) in [
        ("raw-1", vec![NewMessage::new("a").to_partition(0), NewMessage::new("b").to_partition(0)]),
        ("json-1", vec![NewMessage::new("c").with_key("k")]),
        ("mixed-1", vec![NewMessage::new("d").to_partition(1), NewMessage::new("e")]),
    ] {
        let first = p.send_batch_with_key("pay", msgs.clone(), key).await.unwrap();
        assert!(!first.duplicate);
        let ends_before: Vec<u64> =
            c.describe_topic("pay").await.unwrap().partitions.iter().map(|p| p.end_offset).collect();
        // What a retry after a lost reply sends: the same body with the same key.
        let again = p.send_batch_with_key("pay", msgs, key).await.unwrap();
        assert!(again.duplicate, "{key}");
        assert_eq!(again.offsets, first.offsets, "{key}");
        let ends_after: Vec<u64> =
            c.describe_topic("pay").await.unwrap().partitions.iter().map(|p| p.end_offset).collect();
        assert_eq!(ends_before, ends_after, "{key}: nothing appended by the repeat");
    }
    // Fresh keys per call: the same messages are appended again.
    let a = p.send_batch("pay", vec![NewMessage::new("x").to_partition(0)]).await.unwrap();
    let b = p.send_batch("pay", vec![NewMessage::new("x").to_partition(0)]).await.unwrap();
    assert_eq!(b[0].offset, a[0].offset + 1);
}

#[tokio::test]
async fn read_positions_and_skipping_inside_a_batch() {
    let s = Server::start().await;
    let c = s.client();
    c.create_topic(&NewTopic::new("pos")).await.unwrap();
    let p = Producer::new(c.clone());
    let first: Vec<NewMessage> = (0..10).map(|i| NewMessage::new(format!("m{i}")).to_partition(0)).collect();
    let at = p.send_batch("pos", first).await.unwrap();
    let r = Reader::new(c.clone(), "pos", 0);
    // One stored batch of 10: reading from 5 must not return 0..5.
    let page = r.read(&StartAt::Offset(5)).await.unwrap();
    let offsets: Vec<u64> = page.messages.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [5, 6, 7, 8, 9]);
    let latest = r.read(&StartAt::Latest).await.unwrap();
    assert!(latest.messages.is_empty());
    assert_eq!(latest.next_offset, 10);
    let by_time = r.read(&StartAt::Timestamp(at[0].timestamp)).await.unwrap();
    assert_eq!(by_time.messages.first().map(|m| m.offset), Some(0));
    let future = r.read(&StartAt::Timestamp(at[0].timestamp + 3_600_000)).await.unwrap();
    assert!(future.messages.is_empty());
    let small = r.clone().with_options(ReadOptions { max_messages: 3, ..Default::default() });
    let page = small.read_json(&StartAt::Earliest).await.unwrap();
    assert_eq!(page.messages.len(), 3);
    assert_eq!(page.next_offset, 3);
}

#[tokio::test]
async fn long_poll_read_returns_when_a_message_arrives() {
    let s = Server::start().await;
    let c = s.client();
    c.create_topic(&NewTopic::new("lp")).await.unwrap();
    let r = Reader::new(c.clone(), "lp", 0)
        .with_options(ReadOptions { wait: Duration::from_secs(20), ..Default::default() });
    // Offset 0 == end: the read waits until the produce lands, whichever happens first.
    let waiting = tokio::spawn(async move { r.read(&StartAt::Offset(0)).await });
    Producer::new(c).send("lp", NewMessage::new("wake").to_partition(0)).await.unwrap();
    let page = waiting.await.unwrap().unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].value_str(), Some("wake"));
}

#[tokio::test]
async fn background_batching_sends_everything_in_order() {
    let s = Server::start().await;
    let c = s.client();
    c.create_topic(&NewTopic::new("b")).await.unwrap();
    let cfg = ProducerConfig { linger: Duration::from_millis(20), batch_messages_max: 16, ..Default::default() };
    let p = Producer::with_config(c.clone(), cfg);
    let sends = (0..50).map(|i| {
        let p = p.clone();
        async move { p.send("b", NewMessage::new(format!("{i}")).to_partition(0)).await }
    });
    let results = futures_util::future::join_all(sends).await;
    let mut offsets: Vec<u64> = results.into_iter().map(|r| r.unwrap().offset).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..50).collect::<Vec<u64>>());
    p.flush().await.unwrap();
    assert_eq!(c.describe_topic("b").await.unwrap().partitions[0].end_offset, 50);
}

#[tokio::test]
async fn replay_follows_the_log_in_order_across_segment_rolls() {
    let s = Server::start().await;
    let c = s.client();
    c.create_topic(&NewTopic::new("replay").segment_bytes(4096)).await.unwrap();
    let zstd = ProducerConfig { codec: Codec::Zstd(3), ..Default::default() };
    let producers = [Producer::new(c.clone()), Producer::with_config(c.clone(), zstd)];
    let total = 2000u64;
    for chunk in 0..total / 50 {
        let msgs = (chunk * 50..(chunk + 1) * 50)
            .map(|i| {
                NewMessage::new(format!("message {i:06} {}", "x".repeat(80))).with_key(format!("k{i}")).to_partition(0)
            })
            .collect();
        producers[(chunk % 2) as usize].send_batch("replay", msgs).await.unwrap();
    }
    let d = c.describe_topic("replay").await.unwrap();
    assert!(d.partitions[0].segments > 10, "expected many segments, got {}", d.partitions[0].segments);

    let reader = Reader::new(c.clone(), "replay", 0).with_options(ReadOptions {
        max_messages: 137,
        max_bytes: 8192,
        wait: Duration::from_secs(10),
    });
    let mut stream = std::pin::pin!(reader.stream(StartAt::Earliest));
    for i in 0..total {
        let m = stream.next().await.unwrap().unwrap();
        assert_eq!(m.offset, i);
        assert_eq!(m.key_str(), Some(format!("k{i}").as_str()));
        assert!(m.value_str().unwrap().starts_with(&format!("message {i:06} ")));
    }
    // Still following: a message produced now arrives on the same stream.
    Producer::new(c).send("replay", NewMessage::new("live").to_partition(0)).await.unwrap();
    let live = stream.next().await.unwrap().unwrap();
    assert_eq!((live.offset, live.value_str()), (total, Some("live")));
}

/// `sha256("tok-admin")` and `sha256("tok-reader")`, as `cairnd hash-token` prints them.
const AUTH_TOML: &str = "[[auth.tokens]]\nname = \"ops\"\n\
    sha256 = \"df6adb0b23fa33235f4aee6a0d62c118b00d71c07c81be87067b4f5892e66dbc\"\nscopes = [\"admin\"]\n\
    [[auth.tokens]]\nname = \"reader\"\n\
    sha256 = \"3c2af53df95747a2fe651f3fe20729bc5cfeab3bb28b3028402355409f177579\"\nscopes = [\"consume:*\"]\n";

#[tokio::test]
async fn bearer_token_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key, config) = (dir.path().join("c.pem"), dir.path().join("k.pem"), dir.path().join("auth.toml"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    std::fs::write(&config, AUTH_TOML).unwrap();
    let args = ["--tls-cert".as_ref(), cert.as_os_str(), "--tls-key".as_ref(), key.as_os_str()];
    let s = Server::start_with(&[&args[..], &["--config".as_ref(), config.as_os_str()]].concat(), true).await;
    assert!(s.base_url.starts_with("https://"));
    let pem = ck.cert.pem().into_bytes();
    let builder = |token: Option<&str>| {
        let b = cairn_consumer::Client::builder(s.base_url.clone()).root_certificate_pem(pem.clone());
        match token {
            Some(t) => b.bearer_token(t),
            None => b,
        }
        .retry(cairn_consumer::RetryPolicy::none())
        .build()
        .unwrap()
    };

    let e = builder(None).list_topics().await.unwrap_err();
    assert!(matches!(&e, Error::Api { status: 401, code, .. } if code == "unauthorized"), "{e:?}");
    let reader = builder(Some("tok-reader"));
    let e = reader.create_topic(&NewTopic::new("t")).await.unwrap_err();
    assert!(matches!(&e, Error::Api { status: 403, code, .. } if code == "forbidden"), "{e:?}");
    assert!(!e.is_retryable());

    let admin = builder(Some("tok-admin"));
    admin.create_topic(&NewTopic::new("t")).await.unwrap();
    let at = Producer::new(admin.clone()).send("t", NewMessage::new("secret").to_partition(0)).await.unwrap();
    let page = Reader::new(reader, "t", 0).read(&StartAt::Offset(at.offset)).await.unwrap();
    assert_eq!(page.messages[0].value_str(), Some("secret"));

    // Without the CA the handshake fails: the client does not trust a self-signed certificate.
    let untrusting =
        cairn_consumer::Client::builder(s.base_url.clone()).retry(cairn_consumer::RetryPolicy::none()).build().unwrap();
    assert!(matches!(untrusting.health().await.unwrap_err(), Error::Transport(_)));
}
