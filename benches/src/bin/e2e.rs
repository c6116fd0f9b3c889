//! End-to-end benchmark: Cairn over HTTP against the disk's limits, the loopback HTTP ceiling
//! and peer brokers, all in one run on this machine. See `docs/BENCHMARKS.md`, section
//! "End to end (HTTP) vs peers". Usually started by `bash benches/run.sh [--quick]`, which
//! builds `cairnd` and this binary in release first.
//!
//! Options: `--quick` (shorter runs, 200 MB replay), `--cairnd PATH`, `--peers DIR`
//! (default `../shared/peers`), `--no-peers` (Cairn only), `--no-rabbitmq`,
//! `--only a,b` (Cairn scenarios: produce, single, scale, replay, queue, commit, latency),
//! `--secs N` (seconds per closed-loop measurement), `--svg PATH` (default
//! `docs/bench/e2e.svg`; `-` for none), `--report PATH` (markdown table, default
//! `target-bench/e2e-report.md`), `--wrap "CMD ARGS"` (start cairnd under e.g. valgrind or
//! perf), `--dev vda` (block device whose write requests are counted), `--raw-first` (measure
//! raw-records produce before JSON produce, to check order effects), `--latency-rate R` (run
//! the latency scenario's open loop at R requests/s instead of half the closed-loop peak).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use cairn_benches::chart::{self, Bar, Panel};
use cairn_benches::http::{Conn, Req};
use cairn_benches::open_loop::{self, Protocol};
use cairn_benches::resp;
use cairn_benches::stats::{latency_histogram, Percentiles};
use cairn_benches::{disk_writes, parse_results, Probe};
use cairn_storage::BatchBuilder;
use hdrhistogram::Histogram;

const RAW: &str = "application/vnd.cairn.records";
const JSON: &str = "application/json";

// ------------------------------------------------------------------------------------------
// Options and results

struct Opts {
    quick: bool,
    cairnd: PathBuf,
    peers: PathBuf,
    no_peers: bool,
    rabbitmq: bool,
    only: Option<Vec<String>>,
    secs: f64,
    svg: Option<PathBuf>,
    report: PathBuf,
    wrap: Vec<String>,
    dev: String,
    raw_first: bool,
    /// Open-loop rate of the latency scenario (default: half the closed-loop peak).
    latency_rate: Option<f64>,
}

impl Opts {
    fn parse() -> Result<Opts> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut o = Opts {
            quick: false,
            cairnd: root.join("target-bench/release/cairnd"),
            peers: root.join("../shared/peers"),
            no_peers: false,
            rabbitmq: true,
            only: None,
            secs: 0.0,
            svg: Some(root.join("docs/bench/e2e.svg")),
            report: root.join("target-bench/e2e-report.md"),
            wrap: Vec::new(),
            dev: "vda".into(),
            raw_first: false,
            latency_rate: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut val = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
            match a.as_str() {
                "--quick" => o.quick = true,
                "--raw-first" => o.raw_first = true,
                "--latency-rate" => o.latency_rate = Some(val()?.parse()?),
                "--cairnd" => o.cairnd = val()?.into(),
                "--peers" => o.peers = val()?.into(),
                "--no-peers" => o.no_peers = true,
                "--no-rabbitmq" => o.rabbitmq = false,
                "--only" => o.only = Some(val()?.split(',').map(str::to_string).collect()),
                "--secs" => o.secs = val()?.parse()?,
                "--svg" => {
                    let v = val()?;
                    o.svg = (v != "-").then(|| v.into());
                }
                "--report" => o.report = val()?.into(),
                "--wrap" => o.wrap = val()?.split_whitespace().map(str::to_string).collect(),
                "--dev" => o.dev = val()?,
                "-h" | "--help" => {
                    println!("see the top of benches/src/bin/e2e.rs and docs/BENCHMARKS.md");
                    std::process::exit(0);
                }
                other => bail!("unknown option {other}"),
            }
        }
        if o.secs <= 0.0 {
            o.secs = if o.quick { 2.0 } else { 5.0 };
        }
        Ok(o)
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.as_ref().is_none_or(|l| l.iter().any(|s| s == scenario))
    }
}

/// Every figure of the run by name: value and unit.
#[derive(Default)]
struct Results(BTreeMap<String, (f64, String)>);

impl Results {
    fn set(&mut self, name: &str, value: f64, unit: &str) {
        println!("RESULT name={name} value={value:.1} unit={unit}");
        self.0.insert(name.to_string(), (value, unit.to_string()));
    }
    fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).map(|v| v.0)
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn phase(name: &str) {
    eprintln!("\n=== {name}  (loadavg {})", loadavg());
}

// ------------------------------------------------------------------------------------------
// Peer scripts

/// Runs a peer script with `env`, echoes its note lines, and returns its RESULT lines.
fn run_script(peers: &Path, script: &str, env: &[(&str, &str)], res: &mut Results) -> Result<()> {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(peers.join(script))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {script}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().chain(stdout.lines()).filter(|l| l.starts_with("note")) {
        eprintln!("  [{script}] {line}");
    }
    if !out.status.success() {
        eprintln!(
            "  [{script}] FAILED ({}): {}",
            out.status,
            stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    }
    for (name, value, unit) in parse_results(&stdout) {
        res.set(&name, value, &unit);
    }
    eprintln!("  [{script}] {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

// ------------------------------------------------------------------------------------------
// cairnd

struct Cairnd {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Cairnd {
    fn start(o: &Opts) -> Result<Cairnd> {
        let dir = tempfile::Builder::new().prefix("cairn-e2e.").tempdir()?;
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("cairnd.log"))?;
        let mut cmd = match o.wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&o.cairnd);
                c
            }
            None => Command::new(&o.cairnd),
        };
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", o.cairnd.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if !sent {
                    if let Some(a) = line.strip_prefix("cairnd listening on ") {
                        let _ = tx.send(a.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().with_context(|| format!("bad address {a}"))?,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.path().join("cairnd.log")).unwrap_or_default();
                bail!("cairnd did not print its address; log:\n{log}");
            }
        };
        eprintln!("  cairnd pid {} on {addr}, data in {}", child.id(), data.display());
        Ok(Cairnd { child, addr, _dir: dir })
    }

    fn data_path(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }
}

impl Drop for Cairnd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..600 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------
// Load generation

/// Outcome of one measurement window.
struct Run {
    reqs: u64,
    msgs: u64,
    secs: f64,
    hist: Histogram<u64>,
    disk_writes: u64,
    /// CPU seconds cairnd used during the window.
    cpu_secs: f64,
}

impl Run {
    fn msgs_per_s(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
    fn reqs_per_s(&self) -> f64 {
        self.reqs as f64 / self.secs
    }
}

async fn create_topic(addr: SocketAddr, name: &str, partitions: u32) -> Result<()> {
    let mut c = Conn::connect(addr).await.map_err(|e| anyhow!(e))?;
    let body = format!(r#"{{"name":"{name}","partitions":{partitions},"sync":"always"}}"#);
    c.send_ok(&Req::post("/v1/topics", JSON, body)).await.map_err(|e| anyhow!(e))?;
    Ok(())
}

/// `n` messages of `size` stored bytes each, as a JSON produce body. Each value is a JSON
/// string (stored as its compact text, quotes included), so a value of `size` bytes is a string
/// of `size - 2` characters.
fn json_body(n: usize, size: usize) -> Bytes {
    let v = "x".repeat(size.saturating_sub(2));
    let msgs: Vec<String> = (0..n).map(|_| format!(r#"{{"value":"{v}"}}"#)).collect();
    Bytes::from(format!(r#"{{"messages":[{}]}}"#, msgs.join(",")))
}

/// A raw record batch of `n` records without key whose values are JSON strings of `size` bytes.
fn raw_batch(n: usize, size: usize) -> Result<Bytes> {
    let mut value = vec![b'x'; size];
    if size >= 2 {
        value[0] = b'"';
        value[size - 1] = b'"';
    }
    let mut b = BatchBuilder::new();
    for _ in 0..n {
        b.push(None, Some(&value[..]), []);
    }
    Ok(Bytes::from(b.finish(0, 0)?))
}

fn raw_req(topic: &str, batch: Bytes) -> Result<Req> {
    Req::post(format!("/v1/topics/{topic}/messages"), RAW, batch).header("cairn-partition", "0").map_err(|e| anyhow!(e))
}

/// Closed loop: `conns` connections each sending `req` back to back. Nothing is counted during
/// the first `warm`; then for `secs` every completed request is counted and its latency
/// recorded. Disk write requests are sampled at the window's edges.
async fn closed_loop(
    addr: SocketAddr,
    conns: usize,
    warm: f64,
    secs: f64,
    req: Req,
    msgs_per_req: u64,
    probe: &Probe,
) -> Result<Run> {
    let mut conn_list = Vec::with_capacity(conns);
    for _ in 0..conns {
        conn_list.push(Conn::connect(addr).await.map_err(|e| anyhow!(e))?);
    }
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(warm);
    let end = from + Duration::from_secs_f64(secs);
    let req = Arc::new(req);
    let mut tasks = Vec::new();
    for mut c in conn_list {
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = latency_histogram()?;
            let mut n = 0u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                c.send_ok(&req).await?;
                if t >= from {
                    let now = Instant::now();
                    if now <= end {
                        n += 1;
                        h.saturating_record((now - t).as_micros() as u64);
                    }
                }
            }
            Ok::<_, cairn_benches::Error>((n, h))
        }));
    }
    let probe2 = probe.clone();
    let disk = tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let s0 = probe2.sample();
        tokio::time::sleep_until(end.into()).await;
        probe2.since(s0)
    });
    let mut hist = latency_histogram().map_err(|e| anyhow!(e))?;
    let mut reqs = 0;
    for t in tasks {
        let (n, h) = t.await?.map_err(|e| anyhow!(e))?;
        reqs += n;
        hist.add(&h)?;
    }
    let d = disk.await?;
    Ok(Run { reqs, msgs: reqs * msgs_per_req, secs, hist, disk_writes: d.disk_writes, cpu_secs: d.cpu_secs })
}

/// An open-loop run (`cairn_benches::open_loop`: `conns` connections over 2 client threads,
/// each thread's requests released by one timer with a 100 µs tick) at `rate` requests/s for
/// `secs`, with the server's CPU time and the block device's writes over the window, and how
/// busy the whole machine was.
async fn open_loop(
    addr: SocketAddr,
    request: Bytes,
    protocol: Protocol,
    conns: usize,
    rate: f64,
    secs: f64,
    probe: &Probe,
) -> Result<(Run, Load)> {
    let spec =
        open_loop::Spec { addr, request, protocol, conns, threads: 2, rate, secs, tick: Duration::from_micros(100) };
    let s0 = probe.sample();
    let busy0 = cpu_busy_idle();
    let me = std::process::id();
    let client0 = cairn_benches::cpu_secs(me).unwrap_or(0.0);
    let out = tokio::task::spawn_blocking(move || open_loop::run(&spec)).await?.map_err(|e| anyhow!(e))?;
    let d = probe.since(s0);
    let client_cpu = cairn_benches::cpu_secs(me).unwrap_or(0.0) - client0;
    let busy = match (busy0, cpu_busy_idle()) {
        (Some((b0, i0)), Some((b1, i1))) if b1 + i1 > b0 + i0 => (b1 - b0) as f64 / ((b1 + i1) - (b0 + i0)) as f64,
        _ => f64::NAN,
    };
    let secs = out.elapsed.as_secs_f64().max(secs);
    let run = Run {
        reqs: out.requests,
        msgs: out.requests,
        secs,
        hist: out.hist,
        disk_writes: d.disk_writes,
        cpu_secs: d.cpu_secs,
    };
    let load = Load { machine_busy: busy, client_cpu_us_per_req: client_cpu * 1e6 / run.reqs.max(1) as f64 };
    Ok((run, load))
}

/// How loaded the machine was during an open-loop run.
struct Load {
    /// Fraction of all CPUs' time not idle (0..1).
    machine_busy: f64,
    /// CPU time of the load generator (this process) per request.
    client_cpu_us_per_req: f64,
}

impl Load {
    fn record(&self, res: &mut Results, name: &str) {
        res.set(&format!("{name}_machine_busy"), self.machine_busy * 100.0, "%");
        res.set(&format!("{name}_client_cpu_us_per_req"), self.client_cpu_us_per_req, "us/req");
    }
}

/// The machine's busy and idle (idle + iowait) clock ticks so far, from `/proc/stat`.
fn cpu_busy_idle() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let idle = f.get(3)? + f.get(4)?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = f.iter().take(8).sum::<u64>() - idle;
    Some((busy, idle))
}

/// A process's resident memory in MB: (anonymous, file-backed) from `/proc/<pid>/status`.
/// File-backed pages are the mapped log segments the page cache holds, not heap.
fn memory_mb(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
    };
    Some((kb("RssAnon:")? / 1024.0, kb("RssFile:")? / 1024.0))
}

/// `wrk -t2 -c64` POSTing `size` bytes of `content_type` to `path` for `secs` (as
/// `../shared/peers/hello_http.sh` loads the hello-world server). Returns requests/s and the
/// server's CPU µs per request; fails if wrk is missing or any reply was not 2xx.
fn wrk_post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    size: usize,
    secs: f64,
    probe: &Probe,
) -> Result<(f64, f64)> {
    let lua = tempfile::Builder::new().suffix(".lua").tempfile()?;
    std::fs::write(
        lua.path(),
        format!("wrk.method=\"POST\"\nwrk.body=string.rep(\"x\",{size})\nwrk.headers[\"Content-Type\"]=\"{content_type}\"\n"),
    )?;
    let s0 = probe.sample();
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{}s", secs.ceil() as u64), "-s"])
        .arg(lua.path())
        .arg(format!("http://{addr}{path}"))
        .output()
        .context("running wrk")?;
    let d = probe.since(s0);
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        bail!("wrk saw non-2xx replies:\n{text}");
    }
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| anyhow!("no Requests/sec in wrk output:\n{text}"))?;
    let total = rps * secs.ceil();
    Ok((rps, d.cpu_secs * 1e6 / total.max(1.0)))
}

fn record_run(res: &mut Results, name: &str, run: &Run) {
    let p = Percentiles::of(&run.hist);
    res.set(name, run.msgs_per_s(), "msgs/s");
    res.set(&format!("{name}_reqs"), run.reqs_per_s(), "req/s");
    res.set(&format!("{name}_p50"), p.p50, "us");
    res.set(&format!("{name}_p99"), p.p99, "us");
    res.set(&format!("{name}_p999"), p.p999, "us");
    res.set(&format!("{name}_diskw_per_req"), run.disk_writes as f64 / run.reqs.max(1) as f64, "writes/req");
    res.set(&format!("{name}_diskw"), run.disk_writes as f64 / run.secs, "writes/s");
    if run.cpu_secs > 0.0 {
        res.set(&format!("{name}_cpu_us_per_req"), run.cpu_secs * 1e6 / run.reqs.max(1) as f64, "us/req");
        res.set(&format!("{name}_cpus"), run.cpu_secs / run.secs, "CPUs");
    }
}

/// Produces `total_bytes` of 100 x `size` raw batches into partition 0 of `topic` on 8 connections.
async fn fill(addr: SocketAddr, topic: &str, total_msgs: u64, size: usize) -> Result<f64> {
    let batch = raw_batch(100, size)?;
    let req = Arc::new(raw_req(topic, batch)?);
    let batches = total_msgs.div_ceil(100);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (req, next) = (req.clone(), next.clone());
        let mut c = Conn::connect(addr).await.map_err(|e| anyhow!(e))?;
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < batches {
                c.send_ok(&req).await?;
            }
            Ok::<_, cairn_benches::Error>(())
        }));
    }
    for task in tasks {
        task.await?.map_err(|e| anyhow!(e))?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Finds `"key":<integer>` in a JSON text (the last occurrence, searched from the end: the
/// read reply puts `next_offset` after the messages) without parsing the rest.
fn json_u64_field(body: &[u8], key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let pos = body.windows(pat.len()).rposition(|w| w == pat.as_bytes())? + pat.len();
    let digits: String = body[pos..].iter().take_while(|b| b.is_ascii_digit()).map(|&b| b as char).collect();
    digits.parse().ok()
}

/// Reads partition 0 of `topic` from offset 0 to `end` on one connection, counting the reply
/// bytes as they arrive (the client does not decode them). Returns
/// (seconds, reply body bytes, messages).
async fn replay(addr: SocketAddr, topic: &str, end: u64, raw: bool) -> Result<(f64, u64, u64)> {
    let mut c = Conn::connect(addr).await.map_err(|e| anyhow!(e))?;
    let accept = if raw { RAW } else { JSON };
    let t = Instant::now();
    let (mut offset, mut bytes) = (0u64, 0u64);
    while offset < end {
        let req = Req::get(format!(
            "/v1/topics/{topic}/partitions/0/messages?offset={offset}&max_messages=10000&max_bytes=16777216"
        ))
        .header("accept", accept)
        .map_err(|e| anyhow!(e))?;
        let (headers, len, tail) = c.send_counting(&req, 128).await.map_err(|e| anyhow!(e))?;
        bytes += len;
        let next = if raw {
            headers
                .get("cairn-next-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("raw reply without Cairn-Next-Offset"))?
        } else {
            json_u64_field(&tail, "next_offset").ok_or_else(|| anyhow!("JSON reply without next_offset"))?
        };
        if next <= offset {
            bail!("replay stuck at offset {offset}");
        }
        offset = next;
    }
    Ok((t.elapsed().as_secs_f64(), bytes, offset))
}

/// Queue work: `workers` connections fetching up to 100 messages and acking them, until the
/// topic's `total` messages are all acked. Returns (seconds, messages acked, cycle histogram).
async fn queue_work(
    addr: SocketAddr,
    topic: &str,
    group: &str,
    workers: usize,
    total: u64,
) -> Result<(f64, u64, Histogram<u64>)> {
    let fetch =
        Arc::new(Req::post(format!("/v1/groups/{group}/topics/{topic}/fetch"), JSON, r#"{"max_messages":100}"#));
    let ack_path = Arc::new(format!("/v1/groups/{group}/topics/{topic}/ack"));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (fetch, ack_path, done) = (fetch.clone(), ack_path.clone(), done.clone());
        let mut c = Conn::connect(addr).await.map_err(|e| anyhow!(e))?;
        tasks.push(tokio::spawn(async move {
            let mut h = latency_histogram()?;
            let mut n = 0u64;
            while done.load(std::sync::atomic::Ordering::Relaxed) < total {
                let t0 = Instant::now();
                let reply = c.send_ok(&fetch).await?;
                let v: serde_json::Value = serde_json::from_slice(&reply.body)?;
                let msgs = v["messages"].as_array().cloned().unwrap_or_default();
                if msgs.is_empty() {
                    // every message is leased or acked; others may still be acking
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let ids: Vec<serde_json::Value> = msgs
                    .iter()
                    .map(|m| serde_json::json!({"partition": m["partition"], "offset": m["offset"]}))
                    .collect();
                let body = serde_json::to_vec(&serde_json::json!({ "messages": ids }))?;
                c.send_ok(&Req::post(ack_path.as_str(), JSON, body)).await?;
                n += msgs.len() as u64;
                done.fetch_add(msgs.len() as u64, std::sync::atomic::Ordering::Relaxed);
                h.saturating_record(t0.elapsed().as_micros() as u64);
            }
            Ok::<_, cairn_benches::Error>((n, h))
        }));
    }
    let mut hist = latency_histogram().map_err(|e| anyhow!(e))?;
    let mut acked = 0;
    for task in tasks {
        let (n, h) = task.await?.map_err(|e| anyhow!(e))?;
        acked += n;
        hist.add(&h)?;
    }
    Ok((t.elapsed().as_secs_f64(), acked, hist))
}

/// Cursor-style commits: `conns` connections, each committing increasing offsets of its own
/// group on `topic` partition 0 (offsets stay below `end`). Returns commits/s.
async fn commits(addr: SocketAddr, topic: &str, conns: usize, secs: f64, end: u64, probe: &Probe) -> Result<Run> {
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(secs);
    let s0 = probe.sample();
    let mut tasks = Vec::new();
    for i in 0..conns {
        let mut c = Conn::connect(addr).await.map_err(|e| anyhow!(e))?;
        let (topic, path) = (topic.to_string(), format!("/v1/groups/cursor-{i}/offsets"));
        tasks.push(tokio::spawn(async move {
            let mut h = latency_histogram()?;
            let mut n = 0u64;
            while Instant::now() < stop {
                let off = 1 + n % end.max(1);
                let body = format!(r#"{{"topic":"{topic}","offsets":[{{"partition":0,"offset":{off}}}]}}"#);
                let t0 = Instant::now();
                c.send_ok(&Req::post(path.as_str(), JSON, body)).await?;
                h.saturating_record(t0.elapsed().as_micros() as u64);
                n += 1;
            }
            Ok::<_, cairn_benches::Error>((n, h))
        }));
    }
    let mut hist = latency_histogram().map_err(|e| anyhow!(e))?;
    let mut reqs = 0;
    for task in tasks {
        let (n, h) = task.await?.map_err(|e| anyhow!(e))?;
        reqs += n;
        hist.add(&h)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let d = probe.since(s0);
    Ok(Run { reqs, msgs: reqs, secs, hist, disk_writes: d.disk_writes, cpu_secs: d.cpu_secs })
}

async fn cairn(o: &Opts, res: &mut Results) -> Result<()> {
    phase("cairnd");
    let server = Cairnd::start(o)?;
    let addr = server.addr;
    let dev = o.dev.as_str();
    let probe = Probe { dev: o.dev.clone(), pid: Some(server.child.id()) };
    let warm = if o.quick { 0.5 } else { 1.0 };

    if o.wants("produce") {
        for (size, tag) in [(100usize, "100b"), (1024, "1k")] {
            let order = if o.raw_first { [true, false] } else { [false, true] };
            for raw in order {
                let kind = if raw { "raw" } else { "json" };
                let name = format!("cairn_produce_{kind}_100x{tag}");
                phase(&name);
                let topic = format!("p-{kind}-{tag}");
                create_topic(addr, &topic, 1).await?;
                let req = if raw {
                    raw_req(&topic, raw_batch(100, size)?)?
                } else {
                    Req::post(format!("/v1/topics/{topic}/messages"), JSON, json_body(100, size))
                };
                let run = closed_loop(addr, 32, warm, o.secs, req, 100, &probe).await?;
                record_run(res, &name, &run);
                res.set(&format!("{name}_mb"), run.msgs_per_s() * size as f64 / 1e6, "MB/s");
                if raw && size == 100 && o.wants("latency") {
                    // The batched workload's latency at half its peak, as the single one's.
                    let lname = "cairn_latency_raw_100x100b_50pct";
                    phase(lname);
                    let rate = run.reqs_per_s() * 0.5;
                    let path = format!("/v1/topics/{topic}/messages");
                    let request = open_loop::http_post(&path, RAW, &[("cairn-partition", "0")], &raw_batch(100, size)?);
                    let (lrun, load) = open_loop(addr, request, Protocol::Http, 32, rate, o.secs * 2.0, &probe).await?;
                    res.set(&format!("{lname}_target_rate"), rate, "req/s");
                    record_run(res, lname, &lrun);
                    load.record(res, lname);
                }
            }
        }
    }

    if o.wants("single") || o.wants("latency") {
        for (kind, ct) in [("octet", "application/octet-stream"), ("json", JSON)] {
            let name = format!("cairn_produce_single_{kind}_100b");
            phase(&name);
            let topic = format!("s-{kind}");
            create_topic(addr, &topic, 1).await?;
            let body = if kind == "json" { json_body(1, 100) } else { Bytes::from(vec![b'x'; 100]) };
            let req = Req::post(format!("/v1/topics/{topic}/messages"), ct, body);
            let run = closed_loop(addr, 64, warm, o.secs, req.clone(), 1, &probe).await?;
            record_run(res, &name, &run);
            if kind == "octet" {
                // The same load generator as the hello-world ceiling (hello_http.sh): wrk.
                match wrk_post(
                    addr,
                    &format!("/v1/topics/{topic}/messages"),
                    "application/octet-stream",
                    100,
                    o.secs,
                    &probe,
                ) {
                    Ok((rps, cpu_us)) => {
                        res.set(&format!("{name}_wrk"), rps, "req/s");
                        res.set(&format!("{name}_wrk_cpu_us_per_req"), cpu_us, "us/req");
                    }
                    Err(e) => eprintln!("  note: no wrk measurement: {e}"),
                }
                phase("sync floor (hyper + group-committed fdatasync) under wrk");
                let floor = match Control::sync_floor().await {
                    Ok(c) => wrk_post(c.addr, "/", "application/octet-stream", 100, o.secs, &c.probe(&o.dev)),
                    Err(e) => Err(e),
                };
                match floor {
                    Ok((rps, cpu_us)) => {
                        res.set("floor_single_wrk", rps, "req/s");
                        res.set("floor_single_wrk_cpu_us_per_req", cpu_us, "us/req");
                    }
                    Err(e) => eprintln!("  note: no sync-floor measurement: {e:#}"),
                }
            }
            if kind == "octet" && o.wants("latency") {
                let rate = o.latency_rate.unwrap_or(run.reqs_per_s() * 0.5);
                let lname = "cairn_latency_single_octet_50pct";
                phase(lname);
                let request = open_loop::http_post(
                    &format!("/v1/topics/{topic}/messages"),
                    "application/octet-stream",
                    &[],
                    &[b'x'; 100],
                );
                let (lrun, load) = open_loop(addr, request, Protocol::Http, 64, rate, o.secs * 2.0, &probe).await?;
                res.set(&format!("{lname}_target_rate"), rate, "req/s");
                record_run(res, lname, &lrun);
                load.record(res, lname);
                control_latencies(rate, o.secs * 2.0, &o.dev, res).await;
            }
        }
    }

    if o.wants("scale") {
        let pid = server.child.id();
        for partitions in [1u32, 4, 16] {
            let name = format!("cairn_scale_raw_100x100b_{partitions}p");
            phase(&name);
            let topic = format!("scale-{partitions}p");
            create_topic(addr, &topic, partitions).await?;
            // No Cairn-Partition header: batches go round-robin over the partitions.
            let req = Req::post(format!("/v1/topics/{topic}/messages"), RAW, raw_batch(100, 100)?);
            let run = closed_loop(addr, 32, warm, o.secs, req, 100, &probe).await?;
            record_run(res, &name, &run);
        }
        create_topic(addr, "scale-conns", 1).await?;
        for conns in [4usize, 16, 64, 256] {
            let name = format!("cairn_scale_single_octet_{conns}c");
            phase(&name);
            let req = Req::post("/v1/topics/scale-conns/messages", "application/octet-stream", vec![b'x'; 100]);
            let run = closed_loop(addr, conns, warm, o.secs, req, 1, &probe).await?;
            record_run(res, &name, &run);
        }
        if let Some(m) = memory_mb(pid) {
            res.set("cairn_rss_anon_after_scale", m.0, "MB");
        }
    }

    if o.wants("replay") {
        let pid = server.child.id();
        let mb: u64 = if o.quick { 200 } else { 1000 };
        let msgs = mb * 1_000_000 / 1024;
        phase(&format!("cairn_replay ({mb} MB of 1 KiB messages)"));
        create_topic(addr, "replay", 1).await?;
        // Filled in quarters, sampling cairnd's anonymous memory after each: it should stay
        // flat as the log grows (the log is in mapped files, not on the heap).
        let mut secs = 0.0;
        for quarter in 1..=4u64 {
            secs += fill(addr, "replay", msgs / 4, 1024).await?;
            if let Some((anon, file)) = memory_mb(pid) {
                res.set(&format!("cairn_rss_anon_fill_{}pct", quarter * 25), anon, "MB");
                res.set(&format!("cairn_rss_file_fill_{}pct", quarter * 25), file, "MB");
            }
        }
        let end = (msgs / 4).div_ceil(100) * 100 * 4;
        res.set("cairn_replay_fill", end as f64 * 1024.0 / 1e6 / secs, "MB/s");
        for raw in [true, false] {
            let kind = if raw { "raw" } else { "json" };
            let (secs, body, n) = replay(addr, "replay", end, raw).await?;
            res.set(&format!("cairn_replay_{kind}"), n as f64 * 1024.0 / 1e6 / secs, "MB/s");
            res.set(&format!("cairn_replay_{kind}_wire"), body as f64 / 1e6 / secs, "MB/s");
            res.set(&format!("cairn_replay_{kind}_msgs"), n as f64 / secs, "msgs/s");
        }
        if let Some((anon, file)) = memory_mb(pid) {
            res.set("cairn_rss_anon_after_replay", anon, "MB");
            res.set("cairn_rss_file_after_replay", file, "MB");
        }
        // jemalloc hands freed pages back after `dirty_decay_ms` (1 s, .cargo/config.toml):
        // what stays resident once that has passed is what the replay really kept.
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some((anon, _)) = memory_mb(pid) {
            res.set("cairn_rss_anon_after_replay_2s", anon, "MB");
        }
    }

    if o.wants("queue") {
        let total: u64 = if o.quick { 50_000 } else { 200_000 };
        phase(&format!("cairn_queue ({total} x 100 B, 4 workers, fetch 100 + ack)"));
        create_topic(addr, "jobs", 1).await?;
        fill(addr, "jobs", total, 100).await?;
        let w0 = disk_writes(dev).unwrap_or(0);
        let (secs, acked, hist) = queue_work(addr, "jobs", "workers", 4, total).await?;
        let w = disk_writes(dev).unwrap_or(0).saturating_sub(w0);
        if acked < total {
            bail!("queue work acked {acked} of {total}");
        }
        res.set("cairn_queue_4w", acked as f64 / secs, "msgs/s");
        let p = Percentiles::of(&hist);
        res.set("cairn_queue_4w_cycle_p50", p.p50, "us");
        res.set("cairn_queue_4w_cycle_p99", p.p99, "us");
        res.set("cairn_queue_4w_diskw_per_cycle", w as f64 / (acked as f64 / 100.0), "writes/cycle");
    }

    if o.wants("commit") {
        let end: u64 = 100_000;
        create_topic(addr, "cursor", 1).await?;
        fill(addr, "cursor", end, 100).await?;
        for conns in [4usize, 32] {
            let name = format!("cairn_commit_{conns}c");
            phase(&name);
            let run = commits(addr, "cursor", conns, o.secs, end, &probe).await?;
            record_run(res, &name, &run);
        }
    }
    let log = server.data_path().join("cairnd.log");
    drop(server);
    if let Ok(text) = std::fs::read_to_string(&log) {
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).take(5).collect();
        if !errors.is_empty() {
            eprintln!("  cairnd log warnings/errors:\n    {}", errors.join("\n    "));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Redis queue work (XREADGROUP + XACK)

/// Starts `redis-server` with an append-only file synced per `fsync`, fills a stream with
/// `total` entries of 100 B, then `workers` threads each loop `XREADGROUP ... COUNT 100` +
/// `XACK` of what they got until the stream is drained. Returns messages/s.
fn redis_queue(total: u64, workers: usize, fsync: &str, dev: &str, res: &mut Results) -> Result<()> {
    let port: u16 = 16391;
    let _server = RedisServer::start(port, fsync)?;
    let result = (|| -> Result<()> {
        let mut c = resp::Client::connect(port).map_err(|e| anyhow!(e))?;
        let value = vec![b'x'; 100];
        let mut left = total;
        while left > 0 {
            let k = left.min(1000);
            for _ in 0..k {
                c.queue(&[&b"XADD"[..], b"s", b"*", b"f", &value]);
            }
            c.flush().map_err(|e| anyhow!(e))?;
            for _ in 0..k {
                c.read().map_err(|e| anyhow!(e))?;
            }
            left -= k;
        }
        c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]).map_err(|e| anyhow!(e))?;
        let w0 = disk_writes(dev).unwrap_or(0);
        let t = Instant::now();
        let handles: Vec<_> = (0..workers)
            .map(|i| {
                std::thread::spawn(move || -> Result<u64, cairn_benches::Error> {
                    let mut c = resp::Client::connect(port)?;
                    let me = format!("w{i}");
                    let mut n = 0u64;
                    loop {
                        let r = c.cmd(&["XREADGROUP", "GROUP", "g", &me, "COUNT", "100", "STREAMS", "s", ">"])?;
                        let entries = r
                            .items()
                            .first()
                            .and_then(|s| s.items().get(1))
                            .map(|e| e.items().to_vec())
                            .unwrap_or_default();
                        if entries.is_empty() {
                            return Ok(n);
                        }
                        let mut args: Vec<Vec<u8>> = vec![b"XACK".to_vec(), b"s".to_vec(), b"g".to_vec()];
                        for e in &entries {
                            let id = e.items().first().and_then(|v| v.bytes()).ok_or("entry without id")?;
                            args.push(id.to_vec());
                        }
                        c.cmd(&args)?;
                        n += entries.len() as u64;
                    }
                })
            })
            .collect();
        let mut acked = 0;
        for h in handles {
            acked += h.join().map_err(|_| anyhow!("redis worker panicked"))?.map_err(|e| anyhow!(e))?;
        }
        let secs = t.elapsed().as_secs_f64();
        let w = disk_writes(dev).unwrap_or(0).saturating_sub(w0);
        if acked != total {
            bail!("redis workers acked {acked} of {total}");
        }
        let pending = c.cmd(&["XPENDING", "s", "g"]).map_err(|e| anyhow!(e))?;
        if pending.items().first() != Some(&resp::Value::Int(0)) {
            bail!("redis: entries still pending after the run: {pending:?}");
        }
        eprintln!("  note: {w} disk write requests on {dev} during the run ({} XREADGROUP+XACK cycles)", acked / 100);
        res.set(&format!("redis_queue_{fsync}_4w"), acked as f64 / secs, "msgs/s");
        res.set(&format!("redis_queue_{fsync}_4w_diskw_per_cycle"), w as f64 / (acked as f64 / 100.0), "writes/cycle");
        Ok(())
    })();
    result
}

/// A `redis-server` on `port` with an append-only file synced per `fsync` (`always`,
/// `everysec`) in a temp dir; stopped when dropped.
struct RedisServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts it and waits until it answers.
    fn start(port: u16, fsync: &str) -> Result<RedisServer> {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("port {port} is already in use (not ours)");
        }
        let dir = tempfile::Builder::new().prefix("cairn-e2e-redis.").tempdir()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", fsync])
            .args(["--save", "", "--daemonize", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let server = RedisServer { child, _dir: dir };
        for _ in 0..100 {
            if let Ok(mut c) = resp::Client::connect(port) {
                if c.cmd(&["PING"]).is_ok() {
                    return Ok(server);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("redis-server did not come up")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// Redis `XADD` of 100 B (appendfsync always, pipeline 1) in the same open loop as Cairn's
/// latency run: 64 connections at half of Redis's own P1 peak measured by `redis.sh`.
async fn redis_latency(peak: f64, secs: f64, dev: &str, res: &mut Results) -> Result<()> {
    let port: u16 = 16392;
    let server = RedisServer::start(port, "always")?;
    let probe = Probe { dev: dev.to_string(), pid: Some(server.pid()) };
    let rate = peak * 0.5;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (run, load) =
        open_loop(addr, open_loop::resp_xadd("s", &[b'x'; 100]), Protocol::Resp, 64, rate, secs, &probe).await?;
    res.set("redis_latency_p1_50pct_target_rate", rate, "req/s");
    load.record(res, "redis_latency_p1_50pct");
    record_run(res, "redis_latency_p1_50pct", &run);
    Ok(())
}

/// A control server for the single-message runs: a binary that takes its port as the first
/// argument (then `args`), killed when dropped.
struct Control {
    child: Child,
    addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl Control {
    /// The hyper hello-world server of `hello_http.sh` (built there; `HELLO_DIR`, default
    /// `/tmp/cairn-peer-hello`): the null server.
    async fn hello() -> Result<Control> {
        let dir = std::env::var_os("HELLO_DIR").map_or_else(|| PathBuf::from("/tmp/cairn-peer-hello"), PathBuf::from);
        let bin = dir.join("target/release/hello");
        if !bin.exists() {
            bail!("{} is not built (hello_http.sh builds it)", bin.display());
        }
        Control::start(&bin, None).await
    }

    /// The sync floor (`benches/src/bin/sync_floor.rs`, built beside this binary): hyper plus
    /// a group-committed `fdatasync` and nothing else, writing in a temp dir like `cairnd`'s.
    async fn sync_floor() -> Result<Control> {
        let bin = std::env::current_exe()?.with_file_name("sync_floor");
        if !bin.exists() {
            bail!("{} is not built (benches/run.sh builds it)", bin.display());
        }
        let dir = tempfile::Builder::new().prefix("cairn-e2e-floor.").tempdir()?;
        Control::start(&bin, Some(dir)).await
    }

    async fn start(bin: &Path, dir: Option<tempfile::TempDir>) -> Result<Control> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(bin);
        cmd.arg(port.to_string()).stdout(Stdio::null());
        if let Some(d) = &dir {
            cmd.arg(d.path());
        }
        let mut control = Control { child: cmd.spawn()?, addr: SocketAddr::from(([127, 0, 0, 1], port)), _dir: dir };
        for _ in 0..500 {
            if std::net::TcpStream::connect(control.addr).is_ok() {
                return Ok(control);
            }
            if let Some(status) = control.child.try_wait()? {
                bail!("{} exited ({status}) before listening", bin.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("{} did not listen on {}", bin.display(), control.addr)
    }

    fn probe(&self, dev: &str) -> Probe {
        Probe { dev: dev.to_string(), pid: Some(self.child.id()) }
    }

    /// This server's latency for 100 B POSTs in the latency run's open loop at `rate`,
    /// recorded as `name`.
    async fn latency(&self, name: &str, rate: f64, secs: f64, dev: &str, res: &mut Results) -> Result<()> {
        let request = open_loop::http_post("/", "application/octet-stream", &[], &[b'x'; 100]);
        let (run, load) = open_loop(self.addr, request, Protocol::Http, 64, rate, secs, &self.probe(dev)).await?;
        record_run(res, name, &run);
        load.record(res, name);
        Ok(())
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The controls of the latency run, in the same open loop at the same rate as Cairn: the null
/// server (what the load generator, loopback TCP and scheduling cost on this machine alone) and
/// the sync floor (what the architecture costs with no Cairn logic).
async fn control_latencies(rate: f64, secs: f64, dev: &str, res: &mut Results) {
    phase("null server (hyper hello) in the same open loop at the same rate");
    match Control::hello().await {
        Ok(c) => {
            if let Err(e) = c.latency("hello_latency_same_rate", rate, secs, dev, res).await {
                eprintln!("  note: no null-server latency: {e:#}");
            }
        }
        Err(e) => eprintln!("  note: no null-server latency: {e:#}"),
    }
    phase("sync floor (hyper + group-committed fdatasync) in the same open loop at the same rate");
    match Control::sync_floor().await {
        Ok(c) => {
            if let Err(e) = c.latency("floor_latency_same_rate", rate, secs, dev, res).await {
                eprintln!("  note: no sync-floor latency: {e:#}");
            }
        }
        Err(e) => eprintln!("  note: no sync-floor latency: {e:#}"),
    }
}

// ------------------------------------------------------------------------------------------
// Report

struct Row {
    what: &'static str,
    cairn: Option<f64>,
    base_name: &'static str,
    base: Option<f64>,
    unit: &'static str,
    target: Option<f64>,
}

fn rows(r: &Results) -> Vec<Row> {
    let g = |n: &str| r.get(n);
    let row = |what, cairn: &str, base_name, base: &str, unit, target| Row {
        what,
        cairn: g(cairn),
        base_name,
        base: g(base),
        unit,
        target,
    };
    vec![
        row(
            "batched JSON 100x100 B, 32 conns",
            "cairn_produce_json_100x100b",
            "Redis XADD P100",
            "redis_xadd_always_p100_100b",
            "msgs/s",
            Some(1.5),
        ),
        row(
            "batched raw 100x100 B, 32 conns",
            "cairn_produce_raw_100x100b",
            "Redis XADD P100",
            "redis_xadd_always_p100_100b",
            "msgs/s",
            Some(3.0),
        ),
        row(
            "batched JSON 100x100 B, 32 conns",
            "cairn_produce_json_100x100b",
            "Iggy HTTP, fsync per batch, 8 conns",
            "iggy_http_fsynctrue_save1_b100_100b",
            "msgs/s",
            Some(2.0),
        ),
        row(
            "batched raw 100x100 B, 32 conns",
            "cairn_produce_raw_100x100b",
            "Redis XADD P100, everysec (no fsync before ack)",
            "redis_xadd_everysec_p100_100b",
            "msgs/s",
            None,
        ),
        row(
            "batched raw 100x100 B, 32 conns",
            "cairn_produce_raw_100x100b",
            "NATS JetStream publish (no fsync before ack)",
            "nats_js_100b",
            "msgs/s",
            None,
        ),
        row(
            "batched JSON 100x1 KiB, 32 conns",
            "cairn_produce_json_100x1k",
            "Redis XADD P100 1 KiB",
            "redis_xadd_always_p100_1024b",
            "msgs/s",
            None,
        ),
        row(
            "batched raw 100x1 KiB, 32 conns",
            "cairn_produce_raw_100x1k",
            "Redis XADD P100 1 KiB",
            "redis_xadd_always_p100_1024b",
            "msgs/s",
            None,
        ),
        row(
            "batched raw 100x1 KiB, 32 conns",
            "cairn_produce_raw_100x1k_mb",
            "disk 64 KiB appends+fdatasync",
            "fdatasync_64k",
            "MB/s",
            None,
        ),
        row(
            "single msg (octet) 100 B, wrk 64 conns",
            "cairn_produce_single_octet_100b_wrk",
            "Redis XADD P1",
            "redis_xadd_always_p1_100b",
            "msgs/s",
            Some(1.5),
        ),
        row(
            "single msg (octet) 100 B, wrk 64 conns",
            "cairn_produce_single_octet_100b_wrk",
            "hyper hello POST 1 KiB (wrk)",
            "hello_post_1k",
            "req/s",
            Some(0.6),
        ),
        row(
            "single msg (octet) 100 B, wrk 64 conns",
            "cairn_produce_single_octet_100b_wrk",
            "sync floor: hyper + group-committed fdatasync, no Cairn logic (wrk)",
            "floor_single_wrk",
            "req/s",
            None,
        ),
        row(
            "sync floor (no Cairn logic), wrk 64 conns",
            "floor_single_wrk",
            "hyper hello POST 1 KiB (wrk)",
            "hello_post_1k",
            "req/s",
            None,
        ),
        row(
            "sync floor (no Cairn logic), wrk 64 conns",
            "floor_single_wrk",
            "Redis XADD P1",
            "redis_xadd_always_p1_100b",
            "req/s vs msgs/s",
            None,
        ),
        row(
            "single msg (octet) 100 B, own client 64 conns",
            "cairn_produce_single_octet_100b",
            "hyper hello POST 1 KiB (wrk)",
            "hello_post_1k",
            "req/s",
            None,
        ),
        row(
            "single msg (JSON) 100 B, 64 conns",
            "cairn_produce_single_json_100b",
            "Redis XADD P1",
            "redis_xadd_always_p1_100b",
            "msgs/s",
            Some(1.5),
        ),
        row(
            "single msg (JSON) 100 B, 64 conns",
            "cairn_produce_single_json_100b",
            "hyper hello POST 1 KiB",
            "hello_post_1k",
            "req/s",
            Some(0.6),
        ),
        row(
            "single msg (octet): requests",
            "cairn_produce_single_octet_100b",
            "disk 4 KiB appends+fdatasync",
            "append_4k_ops",
            "req/s vs ops/s",
            None,
        ),
        row(
            "replay raw records (1 KiB values)",
            "cairn_replay_raw",
            "page-cache read (fio)",
            "cached_read",
            "MB/s",
            None,
        ),
        row("replay JSON (1 KiB values)", "cairn_replay_json", "page-cache read (fio)", "cached_read", "MB/s", None),
        row(
            "queue: 4 workers fetch 100 + ack",
            "cairn_queue_4w",
            "Redis XREADGROUP+XACK",
            "redis_queue_always_4w",
            "msgs/s",
            Some(1.0),
        ),
        row(
            "queue: 4 workers fetch 100 + ack",
            "cairn_queue_4w",
            "RabbitMQ quorum, prefetch 100, ack multiple",
            "rabbitmq_queue_quorum_4w",
            "msgs/s",
            Some(2.0),
        ),
        row(
            "queue: 4 workers fetch 100 + ack",
            "cairn_queue_4w",
            "RabbitMQ classic, prefetch 100, ack multiple",
            "rabbitmq_queue_classic_4w",
            "msgs/s",
            None,
        ),
        row(
            "p99 single produce at 50 % load",
            "cairn_latency_single_octet_50pct_p99",
            "disk append_4k p99 fdatasync",
            "append_4k_p99",
            "µs",
            None,
        ),
        row(
            "p99 batched raw 100x100 B produce at 50 % load",
            "cairn_latency_raw_100x100b_50pct_p99",
            "disk append_4k p99 fdatasync",
            "append_4k_p99",
            "µs",
            None,
        ),
        row(
            "p99 single produce at 50 % load",
            "cairn_latency_single_octet_50pct_p99",
            "null server (hyper hello) p99, same open loop and rate",
            "hello_latency_same_rate_p99",
            "µs",
            None,
        ),
        row(
            "p99 single produce at 50 % load",
            "cairn_latency_single_octet_50pct_p99",
            "sync floor p99, same open loop and rate",
            "floor_latency_same_rate_p99",
            "µs",
            None,
        ),
        row(
            "sync floor (no Cairn logic) p99, same rate",
            "floor_latency_same_rate_p99",
            "disk append_4k p99 fdatasync",
            "append_4k_p99",
            "µs",
            None,
        ),
        row(
            "p99 single produce at 50 % load",
            "cairn_latency_single_octet_50pct_p99",
            "Redis XADD always P1, p99 at 50 % of its peak (same open loop)",
            "redis_latency_p1_50pct_p99",
            "µs",
            None,
        ),
        row(
            "p50 single produce at 50 % load",
            "cairn_latency_single_octet_50pct_p50",
            "Redis XADD always P1, p50 at 50 % of its peak (same open loop)",
            "redis_latency_p1_50pct_p50",
            "µs",
            None,
        ),
    ]
}

fn report(o: &Opts, r: &Results) -> Result<()> {
    let mut md = String::new();
    md.push_str(
        "| workload | Cairn | baseline | baseline value | ratio | target | met? |\n|---|---:|---|---:|---:|---:|---|\n",
    );
    println!(
        "\n{:<38} {:>12}  {:<32} {:>12} {:>7} {:>7}  met?",
        "workload", "Cairn", "baseline", "value", "ratio", "target"
    );
    let f = |v: Option<f64>| v.map(chart::human).unwrap_or_else(|| "-".into());
    for row in rows(r) {
        let ratio = match (row.cairn, row.base) {
            (Some(c), Some(b)) if b > 0.0 => Some(c / b),
            _ => None,
        };
        let met = match (ratio, row.target) {
            (Some(x), Some(t)) => {
                if x >= t {
                    "met"
                } else {
                    "MISSED"
                }
            }
            (None, Some(_)) => "n/a",
            _ => "",
        };
        let rs = ratio.map(|x| format!("{x:.2}x")).unwrap_or_else(|| "-".into());
        let ts = row.target.map(|t| format!(">={t}x")).unwrap_or_default();
        println!(
            "{:<38} {:>12}  {:<32} {:>12} {:>7} {:>7}  {met}",
            row.what,
            f(row.cairn),
            row.base_name,
            f(row.base),
            rs,
            ts
        );
        md.push_str(&format!(
            "| {} ({}) | {} | {} | {} | {} | {} | {} |\n",
            row.what,
            row.unit,
            f(row.cairn),
            row.base_name,
            f(row.base),
            rs,
            ts,
            met
        ));
    }
    if let Some(v) = r.get("cairn_replay_raw") {
        let met = if v >= 1000.0 { "met" } else { "MISSED" };
        println!("raw replay {v:.0} MB/s, target >= 1000 MB/s: {met}");
        md.push_str(&format!(
            "| replay raw records (MB/s) | {} | target | 1000 | {:.2}x | >=1x | {met} |\n",
            f(Some(v)),
            v / 1000.0
        ));
    }
    md.push_str("\nAll figures:\n\n```\n");
    for (k, (v, u)) in &r.0 {
        md.push_str(&format!("{k} {v:.1} {u}\n"));
    }
    md.push_str("```\n");
    if let Some(dir) = o.report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&o.report, md)?;
    eprintln!("report written to {}", o.report.display());
    Ok(())
}

fn svg(o: &Opts, r: &Results) -> Result<()> {
    let Some(path) = &o.svg else { return Ok(()) };
    const CAIRN: &str = "#d9822b";
    const REDIS: &str = "#a41e11";
    const LIMIT: &str = "#777777";
    const RABBIT: &str = "#2b6cb0";
    const OTHER: &str = "#2f855a";
    let bar = |label: &str, name: &str, color| r.get(name).map(|value| Bar { label: label.to_string(), value, color });
    let panels = vec![
        Panel {
            title: "Produce, batches of 100 x 100 B, fsync before ack".into(),
            unit: "messages/s".into(),
            bars: [
                bar("Cairn JSON, 32 conns", "cairn_produce_json_100x100b", CAIRN),
                bar("Cairn raw records, 32 conns", "cairn_produce_raw_100x100b", CAIRN),
                bar("Redis XADD always, pipeline 100", "redis_xadd_always_p100_100b", REDIS),
                bar("Iggy HTTP, fsync per batch of 100", "iggy_http_fsynctrue_save1_b100_100b", OTHER),
                bar("Redis XADD everysec, P100 (no fsync before ack)", "redis_xadd_everysec_p100_100b", REDIS),
                bar("NATS JetStream (no fsync before ack)", "nats_js_100b", OTHER),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
        Panel {
            title: "Produce, batches of 100 x 1 KiB, fsync before ack".into(),
            unit: "messages/s".into(),
            bars: [
                bar("Cairn JSON, 32 conns", "cairn_produce_json_100x1k", CAIRN),
                bar("Cairn raw records, 32 conns", "cairn_produce_raw_100x1k", CAIRN),
                bar("Redis XADD always, pipeline 100", "redis_xadd_always_p100_1024b", REDIS),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
        Panel {
            title: "One 100 B message per request, fsync before ack".into(),
            unit: "messages/s (hello: requests/s)".into(),
            bars: [
                bar("Cairn octet-stream, wrk 64 conns", "cairn_produce_single_octet_100b_wrk", CAIRN),
                bar("Cairn octet-stream, own client 64 conns", "cairn_produce_single_octet_100b", CAIRN),
                bar("Cairn JSON, 64 conns", "cairn_produce_single_json_100b", CAIRN),
                bar("Redis XADD always, pipeline 1", "redis_xadd_always_p1_100b", REDIS),
                bar("RabbitMQ quorum, confirms", "rabbitmq_amqp_quorum_100b", RABBIT),
                bar("RabbitMQ classic, confirms", "rabbitmq_amqp_classic_100b", RABBIT),
                bar("sync floor: hyper + fdatasync group commit (wrk)", "floor_single_wrk", LIMIT),
                bar("hyper hello-world POST (no disk)", "hello_post_1k", LIMIT),
                bar("disk: 4 KiB appends + fdatasync", "append_4k_ops", LIMIT),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
        Panel {
            title: "Queue work: 4 workers, fetch 100 + ack, durable acks".into(),
            unit: "messages/s".into(),
            bars: [
                bar("Cairn fetch + ack", "cairn_queue_4w", CAIRN),
                bar("Redis XREADGROUP + XACK (always)", "redis_queue_always_4w", REDIS),
                bar("RabbitMQ quorum, prefetch 100 + ack", "rabbitmq_queue_quorum_4w", RABBIT),
                bar("RabbitMQ classic, prefetch 100 + ack", "rabbitmq_queue_classic_4w", RABBIT),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
        Panel {
            title: "Replay from page cache, one connection, 1 KiB values".into(),
            unit: "MB/s of values".into(),
            bars: [bar("Cairn raw records", "cairn_replay_raw", CAIRN), bar("Cairn JSON", "cairn_replay_json", CAIRN)]
                .into_iter()
                .flatten()
                .collect(),
        },
        Panel {
            title: "Single-message produce latency at 50 % of peak (open loop)".into(),
            unit: "µs".into(),
            bars: [
                bar("Cairn p50", "cairn_latency_single_octet_50pct_p50", CAIRN),
                bar("Cairn p99", "cairn_latency_single_octet_50pct_p99", CAIRN),
                bar("Cairn p99.9", "cairn_latency_single_octet_50pct_p999", CAIRN),
                bar("null server (hello) p99, same rate", "hello_latency_same_rate_p99", LIMIT),
                bar("sync floor p99, same rate", "floor_latency_same_rate_p99", LIMIT),
                bar("Redis XADD always P1 p50", "redis_latency_p1_50pct_p50", REDIS),
                bar("Redis XADD always P1 p99", "redis_latency_p1_50pct_p99", REDIS),
                bar("Redis XADD always P1 p99.9", "redis_latency_p1_50pct_p999", REDIS),
                bar("disk fdatasync p50 (4 KiB append)", "append_4k_p50", LIMIT),
                bar("disk fdatasync p99 (4 KiB append)", "append_4k_p99", LIMIT),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
    ];
    let panels: Vec<Panel> = panels.into_iter().filter(|p| !p.bars.is_empty()).collect();
    let subtitle = format!(
        "One run on a shared 2-core VM ({}{}); compare bars within a panel, same run. Orange: Cairn, red: Redis, blue: RabbitMQ, grey: limits.",
        if o.quick { "--quick, " } else { "" },
        std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
    );
    let text = chart::render("Cairn end to end (HTTP) vs peers", &subtitle, &panels);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    eprintln!("chart written to {}", path.display());
    Ok(())
}

// ------------------------------------------------------------------------------------------

fn main() -> Result<()> {
    let o = Opts::parse()?;
    if !o.cairnd.exists() {
        bail!("no cairnd at {} (build it: bash benches/run.sh does)", o.cairnd.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut res = Results::default();
    let started = Instant::now();
    let peers = !o.no_peers && o.only.is_none();
    if peers {
        phase("limits.sh (disk)");
        let tmp = std::env::temp_dir();
        let tmp = tmp.to_string_lossy().to_string();
        run_script(&o.peers, "limits.sh", &[("DIR", tmp.as_str())], &mut res)?;
        phase("hello_http.sh (loopback HTTP ceiling)");
        run_script(&o.peers, "hello_http.sh", &[], &mut res)?;
        for payload in ["100", "1024"] {
            phase(&format!("redis.sh FSYNC=always PAYLOAD={payload} PIPELINES='1 100'"));
            run_script(
                &o.peers,
                "redis.sh",
                &[("FSYNC", "always"), ("PAYLOAD", payload), ("PIPELINES", "1 100")],
                &mut res,
            )?;
        }
        phase("redis queue: XREADGROUP COUNT 100 + XACK, 4 workers, appendfsync always");
        let total = if o.quick { 50_000 } else { 200_000 };
        if let Err(e) = redis_queue(total, 4, "always", &o.dev, &mut res) {
            eprintln!("  redis queue FAILED: {e:#}");
        }
    }
    rt.block_on(cairn(&o, &mut res))?;
    if let (true, Some(peak)) = (peers, res.get("redis_xadd_always_p1_100b")) {
        phase("redis latency: XADD P1 at 50 % of its peak, open loop, 64 conns, appendfsync always");
        if let Err(e) = rt.block_on(redis_latency(peak, o.secs * 2.0, &o.dev, &mut res)) {
            eprintln!("  redis latency FAILED: {e:#}");
        }
    }
    if peers && o.rabbitmq {
        phase("rabbitmq.sh QTYPES='classic quorum' PAYLOADS=100 STREAMPROTO=0");
        run_script(
            &o.peers,
            "rabbitmq.sh",
            &[("QTYPES", "classic quorum"), ("PAYLOADS", "100"), ("STREAMPROTO", "0"), ("QUIET_WAIT", "10")],
            &mut res,
        )?;
        let n = if o.quick { "50000" } else { "200000" };
        phase(&format!("benches/peers/rabbitmq_queue.sh N={n} WORKERS=4 (consumers: prefetch 100, ack multiple)"));
        let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
        run_script(&ours, "rabbitmq_queue.sh", &[("N", n), ("WORKERS", "4"), ("QUIET_WAIT", "10")], &mut res)?;
    }
    if peers {
        // Redis with appendfsync everysec (acknowledged before the fsync: up to 1 s of acked
        // writes lost on a crash; compare with Cairn's interval sync, shown for scale).
        phase("redis.sh FSYNC=everysec PAYLOAD=100 PIPELINES='1 100'");
        run_script(
            &o.peers,
            "redis.sh",
            &[("FSYNC", "everysec"), ("PAYLOAD", "100"), ("PIPELINES", "1 100")],
            &mut res,
        )?;
        // NATS JetStream: nats-server 2.9 has no sync-before-ack setting (its file store syncs
        // on a timer); the Python client is the limit. Shown for scale, not as a like-for-like peer.
        phase("nats.sh PAYLOAD=100 (JetStream file store, acks without fsync)");
        run_script(&o.peers, "nats.sh", &[("PAYLOAD", "100")], &mut res)?;
        let iggy = std::env::var("IGGY_BIN").unwrap_or_else(|_| "/tmp/iggy/target/release/iggy-server".into());
        if Path::new(&iggy).exists() {
            // enforce_fsync with messages_required_to_save=1: each acknowledged batch is fsynced.
            phase("iggy.sh FSYNC=true SAVE_MSGS=1 BATCH=100 WORKERS=8 PAYLOAD=100 (HTTP, fsync before ack)");
            let env = [
                ("IGGY_BIN", iggy.as_str()),
                ("FSYNC", "true"),
                ("SAVE_MSGS", "1"),
                ("BATCH", "100"),
                ("WORKERS", "8"),
                ("PAYLOAD", "100"),
            ];
            run_script(&o.peers, "iggy.sh", &env, &mut res)?;
        } else {
            eprintln!("note: Iggy skipped: no built iggy-server at {iggy} (building it takes ~11 min; see ../shared/peers/README.md)");
        }
    }
    eprintln!("\nrun took {:.0} s (loadavg now {})", started.elapsed().as_secs_f64(), loadavg());
    report(&o, &res)?;
    svg(&o, &res)?;
    Ok(())
}
