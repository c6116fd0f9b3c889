//! Consumer groups against a real `cairnd`: admin and offsets, the lease calls, the worker
//! loop (ack / retry / dead letter, lease extension, concurrency, shutdown, a killed worker)
//! and the cursor consumer.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_consumer::{
    CancellationToken, Client, CursorConfig, CursorConsumer, Delivery, Error, GroupConfig, GroupConsumer,
    GroupConsumerConfig, HandlerError, Message, NewMessage, NewTopic, Producer, Reader, ResetTo, RetryPolicy, StartAt,
};
use common::Server;
use tokio::sync::{mpsc, Notify};

async fn topic_with(c: &Client, name: &str, n: usize) {
    c.create_topic(&NewTopic::new(name)).await.unwrap();
    let msgs = (0..n).map(|i| NewMessage::new(format!("job {i}")).with_key(format!("k{i}")).to_partition(0)).collect();
    Producer::new(c.clone()).send_batch(name, msgs).await.unwrap();
}

fn config(group: &str, topic: &str) -> GroupConsumerConfig {
    GroupConsumerConfig {
        fetch_wait: Duration::from_millis(200),
        nack_backoff: RetryPolicy {
            attempts_max: u32::MAX,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
        },
        ..GroupConsumerConfig::new(group, topic)
    }
}

#[tokio::test]
async fn group_admin_offsets_and_reset() {
    let s = Server::start().await;
    let c = s.client();
    topic_with(&c, "orders", 10).await;
    assert_eq!(c.describe_group("g").await.unwrap_err().code(), Some("group_not_found"));
    let cfg = GroupConfig { ack_timeout_ms: 5_000, max_deliveries: 3, ..Default::default() };
    assert_eq!(c.configure_group("g", &cfg).await.unwrap(), cfg);
    c.commit_offsets("g", "orders", &[(0, 4)]).await.unwrap();
    let offsets = c.group_offsets("g", "orders").await.unwrap();
    assert_eq!((offsets[0].offset, offsets[0].end_offset, offsets[0].lag), (4, 10, 6));
    let d = c.describe_group("g").await.unwrap();
    assert_eq!(d.config, cfg);
    assert_eq!(d.partitions[0].committed, 4);
    assert!(c.list_groups().await.unwrap().iter().any(|g| g.name == "g"));

    // A read from the group's position starts at its committed offset.
    let page = Reader::new(c.clone(), "orders", 0).read(&StartAt::Group("g".into())).await.unwrap();
    assert_eq!(page.messages.first().map(|m| m.offset), Some(4));

    let r = c.reset_group("g", "orders", ResetTo::Offset(7), None).await.unwrap();
    assert_eq!(r[0].offset, 7);
    assert_eq!(c.reset_group("g", "orders", ResetTo::Earliest, Some(&[0])).await.unwrap()[0].offset, 0);
    assert_eq!(c.reset_group("g", "orders", ResetTo::Latest, None).await.unwrap()[0].offset, 10);
    let e = c.reset_group("g", "orders", ResetTo::Offset(99), Some(&[0])).await.unwrap_err();
    assert_eq!(e.code(), Some("offset_out_of_range"));
    // Without a partition list the server clamps to each partition's range.
    assert_eq!(c.reset_group("g", "orders", ResetTo::Offset(99), None).await.unwrap()[0].offset, 10);
    assert_eq!(c.commit_offsets("g", "nope", &[(0, 1)]).await.unwrap_err().code(), Some("topic_not_found"));
    c.delete_group("g").await.unwrap();
    assert_eq!(c.describe_group("g").await.unwrap_err().code(), Some("group_not_found"));
}

#[tokio::test]
async fn fetch_ack_nack_extend_reject() {
    let s = Server::start().await;
    let c = s.client();
    topic_with(&c, "q", 3).await;
    let g = GroupConsumer::with_config(c.clone(), config("workers", "q"));
    let batch = g.fetch(10, Duration::ZERO).await.unwrap();
    assert_eq!(batch.len(), 3);
    assert!(batch.iter().all(|d| d.delivery == 1 && d.topic == "q"));
    assert_eq!(batch[1].message.value_str(), Some("job 1"));
    assert!(g.fetch(10, Duration::ZERO).await.unwrap().is_empty(), "all leased");
    g.extend(&[batch[0].id()], Duration::from_secs(60)).await.unwrap();
    g.ack(&[batch[0].id()]).await.unwrap();
    g.ack(&[batch[0].id()]).await.unwrap(); // twice is harmless
    g.reject(&[batch[1].id()], "bad payload").await.unwrap();
    g.nack(&[(batch[2].id(), Duration::ZERO)]).await.unwrap();
    let again = g.fetch(10, Duration::from_secs(10)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].message.offset, again[0].delivery), (2, 2));
    g.ack(&[again[0].id()]).await.unwrap();
    let d = c.describe_group("workers").await.unwrap();
    assert_eq!(d.partitions[0].committed, 3);

    let dlq = Reader::new(c, "q.dlq", 0).read(&StartAt::Earliest).await.unwrap();
    assert_eq!(dlq.messages.len(), 1);
    let dead = &dlq.messages[0];
    assert_eq!(dead.value_str(), Some("job 1"));
    assert_eq!(dead.header_str("cairn-origin-offset"), Some("1"));
    assert_eq!(dead.header_str("cairn-reason"), Some("bad payload"));
}

#[tokio::test]
async fn worker_acks_retries_and_dead_letters() {
    let s = Server::start().await;
    let c = s.client();
    c.create_topic(&NewTopic::new("mail")).await.unwrap();
    let msgs = ["ok", "flaky", "poison", "ok"].map(|v| NewMessage::new(v).to_partition(0)).to_vec();
    Producer::new(c.clone()).send_batch("mail", msgs).await.unwrap();
    let g = GroupConsumer::with_config(c.clone(), config("mailer", "mail"));
    let stop = CancellationToken::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let handler = move |d: Delivery| {
        let done = done_tx.clone();
        async move {
            let r = match (d.message.value_str(), d.delivery) {
                (Some("flaky"), 1) => Err(HandlerError::retry("smtp busy")),
                (Some("poison"), _) => Err(HandlerError::permanent("no such mailbox")),
                _ => Ok(()),
            };
            let _ = done.send((d.message.offset, d.delivery, r.is_ok()));
            r
        }
    };
    let run = tokio::spawn({
        let (g, stop) = (g.clone(), stop.clone());
        async move { g.run(handler, stop).await }
    });
    let mut seen = Vec::new();
    while seen.iter().filter(|(_, _, ok)| *ok).count() < 3 {
        seen.push(done_rx.recv().await.unwrap());
    }
    stop.cancel();
    let stats = run.await.unwrap().unwrap();
    assert_eq!((stats.acked, stats.nacked, stats.rejected, stats.settle_errors), (3, 1, 1, 0), "{seen:?}");
    assert!(seen.contains(&(1, 2, true)), "flaky succeeded on its second delivery: {seen:?}");
    let d = c.describe_group("mailer").await.unwrap();
    assert_eq!(d.partitions[0].committed, 4);
    let dlq = Reader::new(c, "mail.dlq", 0).read(&StartAt::Earliest).await.unwrap();
    assert_eq!(dlq.messages[0].value_str(), Some("poison"));
}

#[tokio::test]
async fn killed_worker_message_goes_to_another_worker_after_the_lease() {
    let s = Server::start().await;
    let c = s.client();
    topic_with(&c, "thumbs", 1).await;
    let short = GroupConsumerConfig { ack_timeout: Duration::from_millis(600), ..config("thumbnailer", "thumbs") };
    let a = GroupConsumer::with_config(c.clone(), short.clone());
    let started = Arc::new(Notify::new());
    let worker_a = tokio::spawn({
        let started = started.clone();
        async move {
            a.run(
                move |_d: Delivery| {
                    let started = started.clone();
                    async move {
                        started.notify_one();
                        std::future::pending::<Result<(), HandlerError>>().await
                    }
                },
                CancellationToken::new(),
            )
            .await
        }
    });
    started.notified().await;
    // Kill worker A mid-task: no ack, no nack, no more lease extensions.
    worker_a.abort();
    assert!(worker_a.await.unwrap_err().is_cancelled());

    // Worker B long-polls; the fetch is answered when A's lease expires.
    let b = GroupConsumer::with_config(c.clone(), short);
    let got = b.fetch(1, Duration::from_secs(20)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].message.offset, got[0].delivery), (0, 2));
    b.ack(&[got[0].id()]).await.unwrap();
    assert_eq!(c.describe_group("thumbnailer").await.unwrap().partitions[0].committed, 1);
}

#[tokio::test]
async fn leases_are_extended_while_a_slow_handler_runs() {
    let s = Server::start().await;
    let c = s.client();
    topic_with(&c, "slow", 1).await;
    let cfg = GroupConsumerConfig { ack_timeout: Duration::from_millis(800), ..config("slowpoke", "slow") };
    let g = GroupConsumer::with_config(c.clone(), cfg.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let (calls, started, stop) = (calls.clone(), started.clone(), stop.clone());
        async move {
            g.run(
                move |_d: Delivery| {
                    let (calls, started, tx) = (calls.clone(), started.clone(), tx.clone());
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        started.notify_one();
                        // The work itself: three lease lengths.
                        tokio::time::sleep(Duration::from_millis(2400)).await;
                        let _ = tx.send(());
                        Ok(())
                    }
                },
                stop,
            )
            .await
        }
    });
    started.notified().await;
    // Another consumer polling meanwhile gets nothing: the lease never lapses.
    let other = GroupConsumer::with_config(c.clone(), cfg);
    let stolen = other.fetch(1, Duration::from_millis(2000)).await.unwrap();
    assert!(stolen.is_empty(), "the lease of a running handler expired: {stolen:?}");
    rx.recv().await.unwrap();
    stop.cancel();
    let stats = run.await.unwrap().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(stats.acked, 1);
    assert!(stats.extended >= 2, "{stats:?}");
}

#[tokio::test]
async fn concurrency_is_limited() {
    let s = Server::start().await;
    let c = s.client();
    topic_with(&c, "many", 12).await;
    let cfg = GroupConsumerConfig { concurrency: 3, ..config("pool", "many") };
    let g = GroupConsumer::with_config(c.clone(), cfg);
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let (now, max, stop) = (now.clone(), max.clone(), stop.clone());
        async move {
            g.run(
                move |_d: Delivery| {
                    let (now, max, tx) = (now.clone(), max.clone(), tx.clone());
                    async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        let _ = tx.send(());
                        Ok(())
                    }
                },
                stop,
            )
            .await
        }
    });
    for _ in 0..12 {
        rx.recv().await.unwrap();
    }
    stop.cancel();
    let stats = run.await.unwrap().unwrap();
    assert_eq!(stats.acked, 12);
    let max = max.load(Ordering::SeqCst);
    assert!((1..=3).contains(&max), "{max} handlers ran at once");
}

#[tokio::test]
async fn shutdown_releases_unfinished_work_at_once() {
    let s = Server::start().await;
    let c = s.client();
    topic_with(&c, "stuck", 1).await;
    let cfg = GroupConsumerConfig { shutdown_grace: Duration::from_millis(100), ..config("graceful", "stuck") };
    let g = GroupConsumer::with_config(c.clone(), cfg.clone());
    let started = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let (started, stop) = (started.clone(), stop.clone());
        async move {
            g.run(
                move |_d: Delivery| {
                    let started = started.clone();
                    async move {
                        started.notify_one();
                        std::future::pending::<Result<(), HandlerError>>().await
                    }
                },
                stop,
            )
            .await
        }
    });
    started.notified().await;
    stop.cancel();
    let stats = run.await.unwrap().unwrap();
    assert_eq!((stats.acked, stats.nacked), (0, 1));
    // Released without delay: the default 30 s lease has not expired, yet it is available.
    let again = GroupConsumer::with_config(c, cfg).fetch(1, Duration::ZERO).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery, 2);
}

#[tokio::test]
async fn cursor_commits_and_resumes() {
    let s = Server::start().await;
    let c = s.client();
    topic_with(&c, "log", 25).await;
    let cfg = CursorConfig { commit_every_messages: 10, ..CursorConfig::new("indexer", "log", 0) };
    let cursor = CursorConsumer::with_config(c.clone(), cfg.clone());
    assert_eq!(cursor.committed().await.unwrap(), None);

    let collect = |upto: u64, stop: CancellationToken, seen: mpsc::UnboundedSender<u64>| {
        move |m: Message| {
            let (stop, seen) = (stop.clone(), seen.clone());
            async move {
                let _ = seen.send(m.offset);
                if m.offset + 1 == upto {
                    stop.cancel();
                }
                Ok::<(), std::io::Error>(())
            }
        }
    };
    let stop = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let at = cursor.run(collect(25, stop.clone(), tx), stop).await.unwrap();
    assert_eq!(at, Some(25));
    let mut seen = Vec::new();
    while let Ok(o) = rx.try_recv() {
        seen.push(o);
    }
    assert_eq!(seen, (0..25).collect::<Vec<u64>>());
    assert_eq!(c.group_offsets("indexer", "log").await.unwrap()[0].offset, 25);

    // More messages; a new cursor (a restarted service) resumes at 25.
    let more = (25..30).map(|i| NewMessage::new(format!("job {i}")).to_partition(0)).collect();
    Producer::new(c.clone()).send_batch("log", more).await.unwrap();
    let stop = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let resumed = CursorConsumer::with_config(c.clone(), cfg.clone());
    assert_eq!(resumed.run(collect(30, stop.clone(), tx), stop).await.unwrap(), Some(30));
    let mut seen = Vec::new();
    while let Ok(o) = rx.try_recv() {
        seen.push(o);
    }
    assert_eq!(seen, (25..30).collect::<Vec<u64>>());

    // A failing handler stops the cursor; the failed message is not committed.
    c.reset_group("indexer", "log", ResetTo::Offset(20), None).await.unwrap();
    let failing = CursorConsumer::with_config(c.clone(), cfg);
    let e = failing
        .run(
            |m: Message| async move {
                if m.offset == 23 {
                    Err(std::io::Error::other("index unavailable"))
                } else {
                    Ok(())
                }
            },
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Handler(_)), "{e:?}");
    assert_eq!(failing.committed().await.unwrap(), Some(23));
}
