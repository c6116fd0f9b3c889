//! Engine tests on a real catalogue in a temp directory: delivery, redelivery, dead
//! letters, ordering, replay, restart, and the journal's bound.

use std::sync::Arc;
use std::time::Duration;

use cairn_storage::{BatchBuilder, Catalog, CatalogOptions, DecodedBatch, TopicConfig};

use super::*;

struct Env {
    dir: tempfile::TempDir,
    catalog: Arc<Catalog>,
    engine: Arc<GroupEngine>,
}

fn open(dir: tempfile::TempDir) -> Env {
    let catalog = Arc::new(Catalog::open(dir.path(), CatalogOptions::default()).unwrap());
    let engine = GroupEngine::open(Arc::clone(&catalog), dir.path()).unwrap();
    Env { dir, catalog, engine }
}

fn env() -> Env {
    open(tempfile::tempdir().unwrap())
}

impl Env {
    fn produce(&self, topic: &str, partitions: u32, n: u32) {
        let t = match self.catalog.topic(topic) {
            Some(t) => t,
            None => self.catalog.create_topic(topic, TopicConfig { partitions, ..TopicConfig::default() }).unwrap(),
        };
        for i in 0..n {
            let mut b = BatchBuilder::new();
            b.push(Some(format!("k{i}").as_bytes()), Some(format!("v{i}").as_bytes()), [("h", &b"x"[..])]);
            t.partition(i % partitions).unwrap().append(b.finish(0, 0).unwrap()).unwrap();
        }
    }

    fn restart(self) -> Env {
        let Env { dir, catalog, engine } = self;
        drop(engine);
        match Arc::try_unwrap(catalog) {
            Ok(c) => drop(c), // no clean close: a crash, as far as the engine knows
            Err(_) => panic!("catalog still shared"),
        }
        open(dir)
    }
}

fn params(max: usize) -> FetchParams {
    FetchParams {
        max_messages: max,
        wait: Duration::ZERO,
        ack_timeout_ms: None,
        consumer: Some("w".into()),
        shutdown: None,
    }
}

fn refs(msgs: &[Delivered]) -> Vec<MessageRef> {
    msgs.iter()
        .map(|m| MessageRef { partition: m.partition, offset: m.offset, delay_ms: None, delivery: Some(m.delivery) })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_get_disjoint_messages_and_drain() {
    let e = env();
    e.produce("jobs", 3, 30);
    let a = e.engine.fetch("g", "jobs", params(10)).await.unwrap();
    let b = e.engine.fetch("g", "jobs", params(100)).await.unwrap();
    assert_eq!(a.len(), 10);
    assert_eq!(b.len(), 20);
    let mut all: Vec<(u32, u64)> = a.iter().chain(&b).map(|m| (m.partition, m.offset)).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30, "disjoint");
    let parts: std::collections::BTreeSet<u32> = a.iter().map(|m| m.partition).collect();
    assert_eq!(parts.len(), 3, "a small fetch is spread over partitions");
    assert!(e.engine.fetch("g", "jobs", params(10)).await.unwrap().is_empty());
    e.engine.ack("g", "jobs", &refs(&a)).await.unwrap();
    e.engine.ack("g", "jobs", &refs(&b)).await.unwrap();
    let offs = e.engine.offsets("g", Some("jobs")).unwrap();
    assert!(offs.iter().all(|o| o.offset == 10 && o.lag == 0), "{offs:?}");
    let e = e.restart();
    let offs = e.engine.offsets("g", Some("jobs")).unwrap();
    assert!(offs.iter().all(|o| o.offset == 10), "commits survive a crash: {offs:?}");
    assert!(e.engine.fetch("g", "jobs", params(10)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_leases_are_redelivered_after_restart_and_acks_are_not() {
    let e = env();
    e.produce("jobs", 1, 5);
    let got = e.engine.fetch("g", "jobs", params(5)).await.unwrap();
    e.engine.ack("g", "jobs", &refs(&got[1..2])).await.unwrap();
    e.engine.ack("g", "jobs", &refs(&got[3..4])).await.unwrap();
    let e = e.restart();
    let again = e.engine.fetch("g", "jobs", params(10)).await.unwrap();
    let offsets: Vec<u64> = again.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, vec![0, 2, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_wakes_a_waiting_fetch_with_the_next_delivery() {
    let e = env();
    e.produce("jobs", 1, 1);
    let first = e.engine.fetch("g", "jobs", FetchParams { ack_timeout_ms: Some(50), ..params(1) }).await.unwrap();
    assert_eq!(first[0].delivery, 1);
    let waited = e.engine.fetch("g", "jobs", FetchParams { wait: Duration::from_secs(20), ..params(1) }).await.unwrap();
    assert_eq!(waited.len(), 1, "woken by the lease expiry");
    assert_eq!((waited[0].offset, waited[0].delivery), (0, 2));
    let d = e.engine.describe("g").unwrap();
    assert_eq!(d.partitions[0].redeliveries, 1);
    assert_eq!(d.partitions[0].in_flight, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_fetch_is_woken_by_a_new_message() {
    let e = env();
    e.produce("jobs", 1, 0);
    let engine = Arc::clone(&e.engine);
    let waiter = tokio::spawn(async move {
        engine.fetch("g", "jobs", FetchParams { wait: Duration::from_secs(20), ..params(1) }).await.unwrap()
    });
    // The fetch may or may not be waiting yet; either way it must return the message.
    tokio::task::yield_now().await;
    e.produce("jobs", 1, 1);
    let got = tokio::time::timeout(Duration::from_secs(15), waiter).await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
}

async fn dlq_messages(e: &Env, topic: &str) -> Vec<(Option<Vec<u8>>, Vec<(String, String)>)> {
    let t = e.catalog.topic(topic).expect("dead-letter topic created");
    let p = t.partition(0).unwrap();
    let r = p.read(0, 1 << 20).unwrap();
    let mut out = Vec::new();
    for b in &r.batches {
        for rec in DecodedBatch::new(&b.bytes).unwrap().collect_checked().unwrap() {
            let headers =
                rec.headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned())).collect();
            out.push((rec.value.map(<[u8]>::to_vec), headers));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_deliveries_and_reject_dead_letter_with_headers() {
    let e = env();
    e.engine.put_config("g", GroupConfig { max_deliveries: 2, ..GroupConfig::default() }).await.unwrap();
    e.produce("jobs", 1, 2);
    for _ in 0..2 {
        let got = e.engine.fetch("g", "jobs", params(1)).await.unwrap();
        assert_eq!(got[0].offset, 0);
        e.engine.nack("g", "jobs", &refs(&got)).await.unwrap();
    }
    let next = e.engine.fetch("g", "jobs", params(1)).await.unwrap();
    assert_eq!(next[0].offset, 1, "offset 0 went to the dead-letter topic");
    e.engine.reject("g", "jobs", &refs(&next), Some("bad payload")).await.unwrap();
    let dlq = dlq_messages(&e, "jobs.dlq").await;
    assert_eq!(dlq.len(), 2);
    assert_eq!(dlq[0].0.as_deref(), Some(&b"v0"[..]));
    let h0: std::collections::HashMap<_, _> = dlq[0].1.iter().cloned().collect();
    assert_eq!(h0["cairn-origin-topic"], "jobs");
    assert_eq!(h0["cairn-origin-partition"], "0");
    assert_eq!(h0["cairn-origin-offset"], "0");
    assert_eq!(h0["cairn-deliveries"], "2");
    assert_eq!(h0["h"], "x", "original headers are kept");
    let h1: std::collections::HashMap<_, _> = dlq[1].1.iter().cloned().collect();
    assert_eq!(h1["cairn-reason"], "bad payload");
    let offs = e.engine.offsets("g", Some("jobs")).unwrap();
    assert_eq!(offs[0].offset, 2, "dead-lettered messages count as done");
    assert_eq!(e.engine.describe("g").unwrap().partitions[0].dead_lettered, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_delay_and_extend() {
    let e = env();
    e.produce("jobs", 1, 1);
    let got = e.engine.fetch("g", "jobs", params(1)).await.unwrap();
    let delayed = [MessageRef { partition: 0, offset: 0, delay_ms: Some(60_000), delivery: None }];
    e.engine.nack("g", "jobs", &delayed).await.unwrap();
    assert!(e.engine.fetch("g", "jobs", params(1)).await.unwrap().is_empty(), "not before its delay");
    e.engine.reset("g", "jobs", ResetTo::Earliest, None).await.unwrap();
    let got2 = e.engine.fetch("g", "jobs", FetchParams { ack_timeout_ms: Some(100), ..params(1) }).await.unwrap();
    assert_eq!(got2[0].offset, got[0].offset);
    e.engine.extend("g", "jobs", &refs(&got2), Some(60_000)).await.unwrap();
    let waited =
        e.engine.fetch("g", "jobs", FetchParams { wait: Duration::from_millis(300), ..params(1) }).await.unwrap();
    assert!(waited.is_empty(), "extended lease did not expire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_groups_lease_a_partition_to_one_consumer() {
    let e = env();
    e.engine.put_config("g", GroupConfig { ordered: true, ..GroupConfig::default() }).await.unwrap();
    e.produce("jobs", 1, 4);
    let a = e.engine.fetch("g", "jobs", params(2)).await.unwrap();
    assert_eq!(a.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![0, 1]);
    assert!(e.engine.fetch("g", "jobs", params(2)).await.unwrap().is_empty(), "partition busy");
    e.engine.ack("g", "jobs", &refs(&a[1..])).await.unwrap();
    e.engine.nack("g", "jobs", &refs(&a[..1])).await.unwrap();
    let b = e.engine.fetch("g", "jobs", params(1)).await.unwrap();
    assert_eq!((b[0].offset, b[0].delivery), (0, 2), "the oldest undone message comes first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_replays_and_commit_validates() {
    let e = env();
    e.produce("jobs", 2, 10);
    e.engine.commit("g", "jobs", &[(0, 5), (1, 5)]).await.unwrap();
    assert!(matches!(e.engine.commit("g", "jobs", &[(0, 6)]).await, Err(GroupError::OffsetOutOfRange { end: 5, .. })));
    assert!(matches!(e.engine.commit("g", "jobs", &[(7, 1)]).await, Err(GroupError::PartitionNotFound { .. })));
    assert!(matches!(e.engine.commit("g", "nope", &[(0, 1)]).await, Err(GroupError::TopicNotFound(_))));
    assert!(e.engine.fetch("g", "jobs", params(10)).await.unwrap().is_empty());
    let v = e.engine.reset("g", "jobs", ResetTo::Offset(2), Some(&[0])).await.unwrap();
    assert_eq!(
        v,
        vec![OffsetView { topic: "jobs".into(), partition: 0, offset: 2, end_offset: 5, lag: 3, in_flight: 0 }]
    );
    assert_eq!(e.engine.fetch("g", "jobs", params(10)).await.unwrap().len(), 3);
    assert_eq!(e.engine.position("g", "jobs", 0).unwrap(), 2);
    assert!(matches!(e.engine.position("nobody", "jobs", 0), Err(GroupError::GroupNotFound(_))));
    e.engine.delete("g").await.unwrap();
    assert!(matches!(e.engine.describe("g"), Err(GroupError::GroupNotFound(_))));
    let e = e.restart();
    assert!(matches!(e.engine.describe("g"), Err(GroupError::GroupNotFound(_))), "deletion is durable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_commits_keep_the_journal_small() {
    let e = env();
    e.produce("jobs", 1, 1);
    let tasks: Vec<_> = (0..500)
        .map(|w| {
            let engine = Arc::clone(&e.engine);
            tokio::spawn(async move {
                for i in 0..2000u64 {
                    engine.commit(&format!("g{}", w % 50), "jobs", &[(0, (i + w) % 2)]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    e.engine.snapshot_now().unwrap();
    let bytes = e.engine.journal_bytes();
    assert!(bytes < 4 * 1024 * 1024, "journal holds {bytes} bytes after 1,000,000 commits");
    let before = e.engine.offsets("g7", Some("jobs")).unwrap();
    let e = e.restart();
    assert_eq!(e.engine.offsets("g7", Some("jobs")).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_holder_cannot_nack_extend_or_reject_the_next_holders_lease() {
    let e = env();
    e.produce("jobs", 1, 1);
    let first = e.engine.fetch("g", "jobs", FetchParams { ack_timeout_ms: Some(50), ..params(1) }).await.unwrap();
    let second = e.engine.fetch("g", "jobs", FetchParams { wait: Duration::from_secs(20), ..params(1) }).await.unwrap();
    assert_eq!(second[0].delivery, 2);
    // The first holder wakes up late: its nack, extend and reject name delivery 1.
    e.engine.nack("g", "jobs", &refs(&first)).await.unwrap();
    e.engine.extend("g", "jobs", &refs(&first), Some(1)).await.unwrap();
    e.engine.reject("g", "jobs", &refs(&first), Some("stale")).await.unwrap();
    assert!(e.engine.fetch("g", "jobs", params(1)).await.unwrap().is_empty(), "still leased to the second holder");
    assert!(e.catalog.topic("jobs.dlq").is_none(), "not dead-lettered by the stale reject");
    let d = e.engine.describe("g").unwrap();
    assert_eq!(d.partitions[0].in_flight, 1);
    // Without a delivery number the request acts on whoever holds it (the old behaviour).
    let any = [MessageRef { partition: 0, offset: 0, delay_ms: None, delivery: None }];
    e.engine.nack("g", "jobs", &any).await.unwrap();
    assert_eq!(e.engine.fetch("g", "jobs", params(1)).await.unwrap()[0].delivery, 3);
    // A late ack from the first holder is taken: the work was done.
    e.engine.ack("g", "jobs", &refs(&first)).await.unwrap();
    assert_eq!(e.engine.offsets("g", Some("jobs")).unwrap()[0].offset, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_past_the_end_of_a_cut_log_is_reset_to_its_end() {
    let e = env();
    e.produce("t", 1, 10);
    // A group committed to 10, another acked offsets 7 and 8 above its committed 0.
    e.engine.commit("c", "t", &[(0, 10)]).await.unwrap();
    let got = e.engine.fetch("q", "t", params(10)).await.unwrap();
    e.engine.ack("q", "t", &refs(&got[7..9])).await.unwrap();
    // The log loses offsets 5..9, as a cut after a power loss under `sync: interval` would.
    let (file, position) = {
        let read = e.catalog.topic("t").unwrap().partition(0).unwrap().read(5, 1 << 20).unwrap();
        (read.batches[0].file.to_path_buf(), read.batches[0].position)
    };
    let Env { dir, catalog, engine } = e;
    drop(engine);
    drop(Arc::try_unwrap(catalog).unwrap_or_else(|_| panic!("catalog still shared")));
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(position).unwrap();
    let e = open(dir);
    assert_eq!(e.catalog.topic("t").unwrap().partition(0).unwrap().end_offset(), 5);
    assert_eq!(e.engine.offsets("c", Some("t")).unwrap()[0].offset, 5, "committed 10 > end 5: reset to 5");
    e.produce("t", 1, 3);
    let c: Vec<u64> = e.engine.fetch("c", "t", params(10)).await.unwrap().iter().map(|m| m.offset).collect();
    assert_eq!(c, vec![5, 6, 7], "the messages appended after the cut are delivered, not skipped");
    let q: Vec<u64> = e.engine.fetch("q", "t", params(10)).await.unwrap().iter().map(|m| m.offset).collect();
    assert_eq!(q, (0..8).collect::<Vec<u64>>(), "acks of offsets the log lost are forgotten");
    // Durable, and not done again once the positions are inside the log.
    let e = e.restart();
    assert_eq!(e.engine.offsets("c", Some("t")).unwrap()[0].offset, 5);
}
