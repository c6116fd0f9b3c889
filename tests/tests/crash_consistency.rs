//! Crash consistency under mixed load: rounds of producers, a group of queue workers
//! fetching and acking, and a cursor consumer committing, each ended by a SIGKILL of
//! `cairnd` at a random moment, a restart, and checks that nothing acknowledged was lost:
//!
//! - every acknowledged message is at its offset with its bytes, offsets without holes
//!   ([`verify_acked`]);
//! - every acknowledged commit is intact: after the restart the cursor group's committed
//!   offset per partition is exactly its last acknowledged commit, or the commit that was in
//!   flight when the server died (durable but unanswered);
//! - a message whose ack got its `204` is never delivered again (to a fetch sent after it);
//! - every message a worker held unacked (leased, no ack sent) at the kill is delivered
//!   again after the restart, nothing a worker was shown disappears, no message is delivered
//!   twice within one server life (the leases are long), and in the end the queue group has
//!   done every offset of every partition.
//!
//! Rounds: 10 by default; `CAIRN_CRASH_ROUNDS=200` for a soak run, `CAIRN_CRASH_SEED=N` to
//! replay the random kill points of a run (the seed is printed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_tests::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TOPIC: &str = "mixed";
const PARTITIONS: u64 = 3;
const QUEUE_GROUP: &str = "workers";
const CURSOR_GROUP: &str = "cursor";
const WORKERS: usize = 3;
/// Leases far longer than the test: a message comes back only because the server restarted.
const ACK_TIMEOUT_MS: u64 = 3_600_000;

/// xorshift64*: enough randomness for kill points, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A message handed to a worker by a fetch.
#[derive(Debug, Clone)]
struct Delivery {
    partition: u64,
    offset: u64,
    value: Option<Vec<u8>>,
    /// The server life that leased it, when known for sure (the life did not change while
    /// the fetch was out).
    life: Option<u64>,
    /// The life current when the reply arrived (an upper bound of the leasing life).
    life_after: u64,
    /// Event-clock reading taken before the fetch was sent.
    sent: u64,
}

/// An ack that got its `204`.
#[derive(Debug, Clone)]
struct AckDone {
    partition: u64,
    offset: u64,
    /// Event-clock reading taken after the reply arrived.
    received: u64,
}

/// What the consumers observed, shared by their tasks.
#[derive(Default)]
struct Record {
    deliveries: Vec<Delivery>,
    /// Per message, the event-clock readings of the acks sent for it (answered or not).
    ack_sent: HashMap<(u64, u64), Vec<u64>>,
    acks: Vec<AckDone>,
    /// Problems found by the cursor consumer's own checks after a restart.
    violations: Vec<String>,
}

/// What the consumer tasks share: the server address, the server life (bumped right after
/// each kill, before the restart) and the life that is up (set once the new server is
/// ready), a stop flag, an event clock and the record. A reply from life `n` can only
/// arrive after `life` became `n`, so a reply to a request sent while `life` was `n` and
/// received while it still is `n` comes from life `n`.
#[derive(Clone)]
struct Shared {
    base: String,
    life: watch::Receiver<u64>,
    up: watch::Receiver<u64>,
    stop: Arc<AtomicBool>,
    clock: Arc<AtomicU64>,
    record: Arc<Mutex<Record>>,
    /// Queue acks and cursor commits answered so far (for kill points).
    acks_done: watch::Sender<u64>,
    commits_done: watch::Sender<u64>,
    /// The last generation the cursor consumer has checked its position in.
    cursor_checked: watch::Sender<u64>,
}

impl Shared {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn life(&self) -> u64 {
        *self.life.borrow()
    }

    fn up(&self) -> u64 {
        *self.up.borrow()
    }

    /// After a failed request sent while life `up_before` was up: waits for a newer server
    /// (or stop), then uses a fresh client.
    async fn await_restart(&self, up_before: u64, client: &mut reqwest::Client) {
        let mut up = self.up.clone();
        let stop = self.stop.clone();
        let _ = up.wait_for(|u| *u > up_before || stop.load(Ordering::SeqCst)).await;
        *client = reqwest::Client::new();
    }
}

/// POSTs JSON; `None` if the server did not answer (it died), else (status, body).
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Option<(u16, Vec<u8>)> {
    let r = client.post(url).json(body).send().await.ok()?;
    let status = r.status().as_u16();
    let body = r.bytes().await.ok()?;
    Some((status, body.to_vec()))
}

async fn get(client: &reqwest::Client, url: &str) -> Option<(u16, Vec<u8>)> {
    let r = client.get(url).send().await.ok()?;
    let status = r.status().as_u16();
    let body = r.bytes().await.ok()?;
    Some((status, body.to_vec()))
}

fn refs_body(msgs: &[(u64, u64)]) -> Value {
    let refs: Vec<Value> = msgs.iter().map(|(p, o)| json!({"partition": p, "offset": o})).collect();
    json!({ "messages": refs })
}

/// A queue worker: fetches a batch, then acks the batch it fetched before, so at any moment
/// it holds one batch leased and not yet acked. On stop it acks what it holds.
async fn worker(sh: Shared, id: usize) {
    let fetch_url = format!("{}/v1/groups/{QUEUE_GROUP}/topics/{TOPIC}/fetch", sh.base);
    let ack_url = format!("{}/v1/groups/{QUEUE_GROUP}/topics/{TOPIC}/ack", sh.base);
    let mut client = reqwest::Client::new();
    let mut held: Vec<(u64, u64)> = Vec::new();
    loop {
        let up = sh.up();
        let stopping = sh.stop.load(Ordering::SeqCst);
        let mut fetched = Vec::new();
        if !stopping {
            let life = sh.life();
            let sent = sh.tick();
            let body = json!({"max_messages": 25, "wait_ms": 300, "consumer": format!("w{id}"), "encoding": "base64"});
            let Some((status, reply)) = post(&client, &fetch_url, &body).await else {
                // The server died: every lease is gone with it.
                held.clear();
                sh.await_restart(up, &mut client).await;
                continue;
            };
            let life_after = sh.life();
            let known = (life == life_after).then_some(life);
            assert_eq!(status, 200, "fetch: {}", String::from_utf8_lossy(&reply));
            let reply: Value = serde_json::from_slice(&reply).unwrap();
            let mut rec = sh.record.lock().unwrap();
            for m in reply["messages"].as_array().unwrap() {
                let (p, o) = (m["partition"].as_u64().unwrap(), m["offset"].as_u64().unwrap());
                let value = value_bytes(m);
                rec.deliveries.push(Delivery { partition: p, offset: o, value, life: known, life_after, sent });
                fetched.push((p, o));
            }
        }
        let to_ack = if stopping { std::mem::take(&mut held) } else { std::mem::replace(&mut held, fetched) };
        if !to_ack.is_empty() {
            {
                let sent = sh.tick();
                let mut rec = sh.record.lock().unwrap();
                for &id in &to_ack {
                    rec.ack_sent.entry(id).or_default().push(sent);
                }
            }
            match post(&client, &ack_url, &refs_body(&to_ack)).await {
                Some((204, _)) => {
                    let received = sh.tick();
                    let mut rec = sh.record.lock().unwrap();
                    rec.acks.extend(to_ack.iter().map(|&(partition, offset)| AckDone { partition, offset, received }));
                    drop(rec);
                    sh.acks_done.send_modify(|n| *n += 1);
                }
                Some((status, body)) => panic!("ack: {status} {}", String::from_utf8_lossy(&body)),
                None => {
                    held.clear();
                    sh.await_restart(up, &mut client).await;
                    continue;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// A cursor consumer: reads each partition from its position and commits the next offset.
/// After each restart it reads the committed offsets back and checks them against what it
/// knows: its last answered commit, or the one in flight when the server died.
async fn cursor(sh: Shared) {
    let mut client = reqwest::Client::new();
    let commit_url = format!("{}/v1/groups/{CURSOR_GROUP}/offsets", sh.base);
    let mut acked: BTreeMap<u64, u64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let mut pos = acked.clone();
    let mut in_flight: Option<(u64, u64)> = None;
    'life: loop {
        let generation = sh.up();
        if generation > 0 && *sh.cursor_checked.borrow() < generation {
            // A new server life: where does the group stand?
            let url = format!("{}/v1/groups/{CURSOR_GROUP}/offsets?topic={TOPIC}", sh.base);
            let Some((status, body)) = get(&client, &url).await else {
                sh.await_restart(generation, &mut client).await;
                continue;
            };
            let body: Value = serde_json::from_slice(&body).unwrap();
            let mut rec = sh.record.lock().unwrap();
            if status != 200 {
                rec.violations.push(format!("generation {generation}: offsets {status}: {body}"));
            }
            for o in body["offsets"].as_array().into_iter().flatten() {
                let (p, committed) = (o["partition"].as_u64().unwrap(), o["offset"].as_u64().unwrap());
                let ok = committed == acked[&p] || in_flight == Some((p, committed));
                if !ok {
                    rec.violations.push(format!(
                        "generation {generation}: partition {p} committed {committed}, last acknowledged commit {}, \
                         in flight {in_flight:?}",
                        acked[&p]
                    ));
                }
                acked.insert(p, committed);
                pos.insert(p, committed);
            }
            drop(rec);
            in_flight = None;
            sh.cursor_checked.send_replace(generation);
        }
        for p in 0..PARTITIONS {
            if sh.stop.load(Ordering::SeqCst) {
                return;
            }
            let url =
                format!("{}{}", sh.base, read_path(TOPIC, p as u32, &format!("offset={}&max_messages=200", pos[&p])));
            let Some((status, body)) = get(&client, &url).await else {
                sh.await_restart(generation, &mut client).await;
                continue 'life;
            };
            assert_eq!(status, 200, "cursor read: {}", String::from_utf8_lossy(&body));
            let body: Value = serde_json::from_slice(&body).unwrap();
            let msgs = body["messages"].as_array().unwrap();
            if let Some(first) = msgs.first() {
                assert_eq!(first["offset"], json!(pos[&p]), "partition {p}: a read starts where it was asked");
            }
            let next = body["next_offset"].as_u64().unwrap();
            if next == pos[&p] {
                continue;
            }
            in_flight = Some((p, next));
            let commit = json!({"topic": TOPIC, "offsets": [{"partition": p, "offset": next}]});
            match post(&client, &commit_url, &commit).await {
                Some((200, _)) => {
                    acked.insert(p, next);
                    pos.insert(p, next);
                    in_flight = None;
                    sh.commits_done.send_modify(|n| *n += 1);
                }
                Some((status, body)) => panic!("commit: {status} {}", String::from_utf8_lossy(&body)),
                None => {
                    sh.await_restart(generation, &mut client).await;
                    continue 'life;
                }
            }
        }
        // Caught up everywhere: long-poll the first partition instead of spinning.
        let url = format!("{}{}", sh.base, read_path(TOPIC, 0, &format!("offset={}&wait_ms=300", pos[&0])));
        if get(&client, &url).await.is_none() {
            sh.await_restart(generation, &mut client).await;
        }
    }
}

fn rounds() -> usize {
    std::env::var("CAIRN_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_of_sigkill_under_mixed_load_lose_no_acknowledged_message_ack_or_commit() {
    let rounds = rounds();
    let seed = std::env::var("CAIRN_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("crash consistency: {rounds} rounds, CAIRN_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let mut s = Cairnd::start().await;
    s.create_topic(TOPIC, json!({"partitions": PARTITIONS, "segment_bytes": 16384})).await;
    s.request(reqwest::Method::PUT, &format!("/v1/groups/{QUEUE_GROUP}"))
        .json(&json!({"ack_timeout_ms": ACK_TIMEOUT_MS, "max_deliveries": 0}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();

    let (life_tx, life_rx) = watch::channel(0u64);
    let (up_tx, up_rx) = watch::channel(0u64);
    let sh = Shared {
        base: s.base_url(),
        life: life_rx,
        up: up_rx,
        stop: Arc::new(AtomicBool::new(false)),
        clock: Arc::new(AtomicU64::new(0)),
        record: Arc::new(Mutex::new(Record::default())),
        acks_done: watch::channel(0).0,
        commits_done: watch::channel(0).0,
        cursor_checked: watch::channel(0).0,
    };
    let bodies = [Body::Json, Body::Ndjson, Body::Records, Body::Json];
    let mut load = Load::start(&s, TOPIC, PARTITIONS, &bodies);
    let mut tasks: Vec<JoinHandle<()>> = (0..WORKERS).map(|i| tokio::spawn(worker(sh.clone(), i))).collect();
    tasks.push(tokio::spawn(cursor(sh.clone())));

    let mut previous_ends = vec![0; PARTITIONS as usize];
    for round in 1..=rounds as u64 {
        // A random kill point, once every kind of client has made progress in this life.
        let produced = load.acked_count() + rng.between(100, 1500) as usize;
        let acks = *sh.acks_done.borrow() + rng.between(1, 20);
        let commits = *sh.commits_done.borrow() + rng.between(1, 10);
        load.wait_for_acked(produced).await;
        within(GENEROUS, sh.acks_done.subscribe().wait_for(|n| *n >= acks)).await.unwrap();
        within(GENEROUS, sh.commits_done.subscribe().wait_for(|n| *n >= commits)).await.unwrap();
        let status = s.sigkill().await;
        assert!(!status.success(), "round {round}: SIGKILL is not a clean exit");
        life_tx.send_replace(round);
        let acked = load.acked();
        s.start_again().await;
        load.server_restarted();
        up_tx.send_replace(round);
        let ends = verify_acked(&s, TOPIC, PARTITIONS, &acked).await;
        for (p, (end, prev)) in ends.iter().zip(&previous_ends).enumerate() {
            assert!(end >= prev, "round {round}: partition {p} end went back from {prev} to {end}");
        }
        previous_ends = ends;
        // The cursor consumer checks its committed offsets in the new life.
        within(GENEROUS, sh.cursor_checked.subscribe().wait_for(|g| *g >= round)).await.unwrap();
        let rec = sh.record.lock().unwrap();
        assert!(rec.violations.is_empty(), "round {round}: acknowledged commits lost: {:#?}", rec.violations);
        eprintln!(
            "round {round}: {} messages acknowledged to producers, {} deliveries, {} acks; ends {previous_ends:?}",
            acked.len(),
            rec.deliveries.len(),
            rec.acks.len()
        );
    }

    // Wind down: producers, then consumers (workers ack what they hold), then drain the group.
    let acked = load.stop().await;
    sh.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        within(GENEROUS, t).await.expect("consumer task panicked");
    }
    let ends = verify_acked(&s, TOPIC, PARTITIONS, &acked).await;
    let last_life = rounds as u64;
    let client = s.client().clone();
    let fetch_url = s.url(&format!("/v1/groups/{QUEUE_GROUP}/topics/{TOPIC}/fetch"));
    let ack_url = s.url(&format!("/v1/groups/{QUEUE_GROUP}/topics/{TOPIC}/ack"));
    loop {
        let sent = sh.tick();
        let body = json!({"max_messages": 1000, "encoding": "base64"});
        let (status, body) = within(GENEROUS, post(&client, &fetch_url, &body)).await.expect("drain fetch");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let body: Value = serde_json::from_slice(&body).unwrap();
        let msgs = body["messages"].as_array().unwrap();
        if msgs.is_empty() {
            break;
        }
        let ids: Vec<(u64, u64)> =
            msgs.iter().map(|m| (m["partition"].as_u64().unwrap(), m["offset"].as_u64().unwrap())).collect();
        {
            let mut rec = sh.record.lock().unwrap();
            for (m, &(partition, offset)) in msgs.iter().zip(&ids) {
                let value = value_bytes(m);
                let d = Delivery { partition, offset, value, life: Some(last_life), life_after: last_life, sent };
                rec.deliveries.push(d);
            }
            let ack_sent = sh.tick();
            for &id in &ids {
                rec.ack_sent.entry(id).or_default().push(ack_sent);
            }
        }
        let (status, _) = within(GENEROUS, post(&client, &ack_url, &refs_body(&ids))).await.expect("drain ack");
        assert_eq!(status, 204);
        let received = sh.tick();
        let mut rec = sh.record.lock().unwrap();
        rec.acks.extend(ids.iter().map(|&(partition, offset)| AckDone { partition, offset, received }));
    }

    // The queue group has done every offset of every partition.
    let offsets = s.get(&format!("/v1/groups/{QUEUE_GROUP}/offsets?topic={TOPIC}")).await;
    offsets.expect_status(200);
    for o in offsets.json()["offsets"].as_array().unwrap() {
        let p = o["partition"].as_u64().unwrap();
        assert_eq!(o["offset"], json!(ends[p as usize]), "queue group's committed offset in partition {p}: {o}");
    }
    let mut stored: HashMap<(u64, u64), Option<Vec<u8>>> = HashMap::new();
    for p in 0..PARTITIONS {
        for m in s.read_all(TOPIC, p as u32).await {
            stored.insert((p, m["offset"].as_u64().unwrap()), value_bytes(&m));
        }
    }
    let rec = sh.record.lock().unwrap();
    // What a worker was shown is what is stored; each message once per server life; every
    // offset delivered at least once.
    let mut per_life: HashSet<(u64, u64, u64)> = HashSet::new();
    let mut delivered: HashSet<(u64, u64)> = HashSet::new();
    for d in &rec.deliveries {
        let id = (d.partition, d.offset);
        let have = stored.get(&id).unwrap_or_else(|| panic!("delivered {id:?} is not stored after the crashes"));
        assert_eq!(have, &d.value, "delivered {id:?} changed after a crash");
        if let Some(life) = d.life {
            assert!(per_life.insert((life, d.partition, d.offset)), "{id:?} delivered twice in life {life}");
        }
        delivered.insert(id);
    }
    for p in 0..PARTITIONS {
        for o in 0..ends[p as usize] {
            assert!(delivered.contains(&(p, o)), "{p}/{o} was never delivered to the queue group");
        }
    }
    // A message whose ack was answered is never delivered to a fetch sent after that.
    let mut first_ack: HashMap<(u64, u64), u64> = HashMap::new();
    for a in &rec.acks {
        let t = first_ack.entry((a.partition, a.offset)).or_insert(a.received);
        *t = (*t).min(a.received);
    }
    for d in &rec.deliveries {
        if let Some(&acked_at) = first_ack.get(&(d.partition, d.offset)) {
            assert!(
                d.sent < acked_at,
                "{}/{} delivered again (fetch sent at {}) after its ack was answered (at {acked_at})",
                d.partition,
                d.offset,
                d.sent
            );
        }
    }
    // A lease a worker held without sending an ack when its server died comes back later:
    // a delivery with no ack sent before the next delivery of the same message (or ever)
    // must have a next delivery, in a later life.
    let mut by_id: HashMap<(u64, u64), Vec<&Delivery>> = HashMap::new();
    for d in &rec.deliveries {
        by_id.entry((d.partition, d.offset)).or_default().push(d);
    }
    let mut held_at_kill = 0;
    for (id, ds) in &mut by_id {
        ds.sort_by_key(|d| d.sent);
        let acks = rec.ack_sent.get(id).map(Vec::as_slice).unwrap_or_default();
        for (k, d) in ds.iter().enumerate() {
            let next = ds.get(k + 1);
            let until = next.map_or(u64::MAX, |n| n.sent);
            if acks.iter().any(|&t| t > d.sent && t < until) {
                continue;
            }
            let Some(life) = d.life else { continue };
            held_at_kill += 1;
            let next = next.unwrap_or_else(|| {
                panic!("{id:?} was leased unacked when life {life} ended and never delivered again")
            });
            assert!(next.life_after > life, "{id:?} delivered again in life {life} while its lease was held");
        }
    }
    let redelivered = rec.deliveries.len() - delivered.len();
    eprintln!(
        "crash consistency: {rounds} rounds survived; {} acknowledged messages checked, {} deliveries \
         ({redelivered} redeliveries, {held_at_kill} leases held at a kill), {} acks; ends {ends:?}",
        acked.len(),
        rec.deliveries.len(),
        rec.acks.len()
    );
    assert!(held_at_kill > 0 || rounds == 0, "no kill happened while a worker held a lease");
}
