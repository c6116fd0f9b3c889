//! Concurrent producers that record every acknowledged message, for the crash and shutdown
//! tests, and the check that a partition holds all of them with no holes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cairn_storage::BatchBuilder;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::server::Cairnd;
use crate::util::{value_bytes, within, GENEROUS};

/// One acknowledged message: where the server said it put it, and the bytes it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub producer: usize,
    pub partition: u64,
    pub offset: u64,
    /// The stored value bytes (compact JSON text for JSON bodies, raw bytes for records).
    pub value: Vec<u8>,
    /// The key, if the message had one (checked: `key` must be this or null).
    pub key: Option<String>,
    /// The headers, if they are to be checked.
    pub headers: Option<Value>,
}

impl Acked {
    /// A message with a value only (no key; headers not checked).
    pub fn value_only(partition: u64, offset: u64, value: impl Into<Vec<u8>>) -> Acked {
        Acked { producer: 0, partition, offset, value: value.into(), key: None, headers: None }
    }
}

/// How a producer sends its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Json,
    Ndjson,
    Records,
}

/// A fleet of producers writing to one topic until stopped, surviving server restarts: a
/// request that fails (the server is down) is not acknowledged; the producer then waits for
/// the next generation (bumped with [`Load::server_restarted`]) and goes on with a new client.
pub struct Load {
    stop: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    acked_count: watch::Receiver<usize>,
    acked: Arc<Mutex<Vec<Acked>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `bodies.len()` producers on `topic` (which must have `partitions` partitions);
    /// producer `i` writes to partition `i % partitions` with `bodies[i]`.
    pub fn start(server: &Cairnd, topic: &str, partitions: u64, bodies: &[Body]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (count_tx, acked_count) = watch::channel(0usize);
        let count_tx = Arc::new(count_tx);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let url = server.url(&format!("/v1/topics/{topic}/messages"));
        let tasks = bodies
            .iter()
            .enumerate()
            .map(|(id, &body)| {
                let p = Producer {
                    id,
                    body,
                    partition: id as u64 % partitions,
                    url: url.clone(),
                    stop: stop.clone(),
                    generation: generation.subscribe(),
                    count: count_tx.clone(),
                    acked: acked.clone(),
                };
                tokio::spawn(p.run())
            })
            .collect();
        Load { stop, generation, acked_count, acked, tasks }
    }

    /// Number of messages acknowledged so far.
    pub fn acked_count(&self) -> usize {
        *self.acked_count.borrow()
    }

    /// Waits until at least `n` messages in total have been acknowledged.
    pub async fn wait_for_acked(&mut self, n: usize) {
        within(GENEROUS, self.acked_count.wait_for(|c| *c >= n)).await.expect("producers are gone");
    }

    /// A copy of every acknowledged message so far.
    pub fn acked(&self) -> Vec<Acked> {
        self.acked.lock().unwrap().clone()
    }

    /// Tells the producers that the server is up again.
    pub fn server_restarted(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Stops the producers and returns every acknowledged message.
    pub async fn stop(self) -> Vec<Acked> {
        self.stop.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
        for t in self.tasks {
            within(GENEROUS, t).await.expect("producer task panicked");
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

struct Producer {
    id: usize,
    body: Body,
    partition: u64,
    url: String,
    stop: Arc<AtomicBool>,
    generation: watch::Receiver<u64>,
    count: Arc<watch::Sender<usize>>,
    acked: Arc<Mutex<Vec<Acked>>>,
}

impl Producer {
    fn payload(&self, seq: u64) -> Vec<u8> {
        // Unique per producer and sequence number, of varying length.
        let fill = "abcdefghijklmnopqrstuvwxyz".repeat(1 + (seq as usize * 7 + self.id) % 12);
        format!("producer-{}-seq-{seq}-{fill}", self.id).into_bytes()
    }

    async fn run(mut self) {
        let mut client = reqwest::Client::new();
        let mut seq = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            let n = 1 + (seq % 9);
            let payloads: Vec<Vec<u8>> = (seq..seq + n).map(|s| self.payload(s)).collect();
            let keys: Vec<String> = (seq..seq + n).map(|s| format!("p{}-k{}", self.id, s % 5)).collect();
            let headers: Vec<Value> =
                (seq..seq + n).map(|s| json!({"producer": self.id.to_string(), "seq": s.to_string()})).collect();
            let generation = *self.generation.borrow_and_update();
            let rb = client.post(&self.url);
            let (rb, stored): (_, Vec<Vec<u8>>) = match self.body {
                Body::Json | Body::Ndjson => {
                    let msgs: Vec<Value> = payloads
                        .iter()
                        .zip(keys.iter().zip(&headers))
                        .map(|(v, (k, h))| {
                            json!({"value": String::from_utf8(v.clone()).unwrap(), "partition": self.partition, "key": k, "headers": h})
                        })
                        .collect();
                    let stored = payloads
                        .iter()
                        .map(|v| serde_json::to_vec(&Value::String(String::from_utf8(v.clone()).unwrap())).unwrap())
                        .collect();
                    let rb = if self.body == Body::Json {
                        rb.json(&json!({ "messages": msgs }))
                    } else {
                        let text: String = msgs.iter().map(|m| format!("{m}\n")).collect();
                        rb.header("content-type", "application/x-ndjson").body(text)
                    };
                    (rb, stored)
                }
                Body::Records => {
                    let mut b = BatchBuilder::new();
                    for ((v, k), h) in payloads.iter().zip(&keys).zip(&headers) {
                        let hs: Vec<(&str, &[u8])> = h
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_str().unwrap().as_bytes()))
                            .collect();
                        b.push(Some(k.as_bytes()), Some(v), hs);
                    }
                    let rb = rb
                        .header("content-type", "application/vnd.cairn.records")
                        .header("Cairn-Partition", self.partition.to_string())
                        .body(b.finish(0, 0).unwrap());
                    (rb, payloads.clone())
                }
            };
            match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = match resp.bytes().await {
                        Ok(b) => b,
                        // Killed while sending the reply: not acknowledged.
                        Err(_) => {
                            self.await_restart(generation, &mut client).await;
                            continue;
                        }
                    };
                    // A server shutting down gracefully may refuse new work with a 503.
                    if status == 503 {
                        self.await_restart(generation, &mut client).await;
                        continue;
                    }
                    assert_eq!(status, 200, "producer {}: {}", self.id, String::from_utf8_lossy(&body));
                    let reply: Value = serde_json::from_slice(&body).unwrap();
                    let offsets = reply["offsets"].as_array().unwrap();
                    assert_eq!(offsets.len(), stored.len(), "one offset per message: {reply}");
                    let mut acked = self.acked.lock().unwrap();
                    for (((o, value), key), h) in offsets.iter().zip(stored).zip(&keys).zip(&headers) {
                        assert_eq!(o["partition"], json!(self.partition), "{reply}");
                        acked.push(Acked {
                            producer: self.id,
                            partition: self.partition,
                            offset: o["offset"].as_u64().unwrap(),
                            value,
                            key: Some(key.clone()),
                            headers: Some(h.clone()),
                        });
                    }
                    drop(acked);
                    self.count.send_modify(|c| *c += offsets.len());
                    seq += n;
                }
                Err(_) => self.await_restart(generation, &mut client).await,
            }
        }
    }

    /// Waits for a server generation newer than `seen` (or stop), then uses a fresh client
    /// so no connection to the dead server is reused.
    async fn await_restart(&mut self, seen: u64, client: &mut reqwest::Client) {
        let stop = self.stop.clone();
        let _ = self.generation.wait_for(|g| *g > seen || stop.load(Ordering::SeqCst)).await;
        *client = reqwest::Client::new();
    }
}

/// Reads every partition of `topic` from 0 to its end and checks, for the acknowledged
/// messages `acked`: the offsets 0..end are each present exactly once (no holes, no
/// repeats), every acknowledged message is at its offset with identical bytes, and each
/// producer's messages are in the order it was acknowledged. Returns the end offsets.
pub async fn verify_acked(server: &Cairnd, topic: &str, partitions: u64, acked: &[Acked]) -> Vec<u64> {
    let mut ends = Vec::new();
    for p in 0..partitions {
        let stored = server.read_all(topic, p as u32).await;
        let end = stored.len() as u64;
        let mut last_ts = i64::MIN;
        for (i, m) in stored.iter().enumerate() {
            assert_eq!(m["offset"], json!(i), "partition {p}: offsets 0..{end} must each appear once, in order");
            assert_eq!(m["partition"], json!(p));
            let ts = m["timestamp"].as_i64().unwrap_or_else(|| panic!("no timestamp: {m}"));
            assert!(ts >= last_ts, "partition {p}: timestamp at {i} ({ts}) before the previous one ({last_ts})");
            last_ts = ts;
        }
        let mut last_by_producer: BTreeMap<usize, u64> = BTreeMap::new();
        for a in acked.iter().filter(|a| a.partition == p) {
            assert!(
                a.offset < end,
                "acknowledged message at {p}/{} is past the end {end} (lost after restart)",
                a.offset
            );
            let got = value_bytes(&stored[a.offset as usize]);
            assert_eq!(
                got.as_deref(),
                Some(a.value.as_slice()),
                "partition {p} offset {}: stored value differs from the acknowledged one",
                a.offset
            );
            let m = &stored[a.offset as usize];
            assert_eq!(
                m["key"],
                a.key.as_ref().map_or(Value::Null, |k| json!(k)),
                "partition {p} offset {}: key",
                a.offset
            );
            if let Some(h) = &a.headers {
                assert_eq!(&m["headers"], h, "partition {p} offset {}: headers", a.offset);
            }
            if let Some(prev) = last_by_producer.insert(a.producer, a.offset) {
                assert!(prev < a.offset, "producer {}: offset {} acknowledged after {prev}", a.producer, a.offset);
            }
        }
        ends.push(end);
    }
    // Each acknowledged offset was given out once.
    let mut seen = std::collections::HashSet::new();
    for a in acked {
        assert!(seen.insert((a.partition, a.offset)), "offset {}/{} acknowledged twice", a.partition, a.offset);
    }
    ends
}
