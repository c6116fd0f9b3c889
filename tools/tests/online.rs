//! The online commands against a real `cairnd`: topics, produce (arguments and stdin),
//! consume (range, follow over SSE, queue group), groups, compact, bench; and an offline
//! command refused while the server holds the data directory.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use common::server::Server;
use common::text;
use serde_json::Value;

fn run(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_URL", &server.url)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn")
}

fn ok(server: &Server, args: &[&str]) -> String {
    let out = run(server, args);
    assert_eq!(out.status.code(), Some(0), "cairn {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(server: &Server, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(server, &all)).unwrap_or_else(|e| panic!("cairn {args:?} --json: {e}"))
}

fn ndjson(server: &Server, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    ok(server, &all).lines().map(|l| serde_json::from_str(l).expect("NDJSON line")).collect()
}

fn produce_stdin(server: &Server, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_URL", &server.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait cairn")
}

#[test]
fn online_commands_against_cairnd() {
    let server = Server::start();

    // topics
    let created = json(&server, &["topics", "create", "orders", "--partitions", "2"]);
    assert_eq!(created["name"], "orders");
    let list = json(&server, &["topics", "list"]);
    assert!(list["topics"].as_array().unwrap().iter().any(|t| t["name"] == "orders"), "{list}");
    assert!(ok(&server, &["topics", "list"]).contains("orders"));
    assert!(ok(&server, &["topics", "describe", "orders"]).contains("PARTITION"));

    // produce: arguments, with key and header, to one partition; then stdin lines
    let produced = json(&server, &["produce", "orders", "a", "b", "c", "--key", "k1", "-H", "trace=abc", "-p", "0"]);
    assert_eq!(produced["produced"], 3);
    let out = produce_stdin(&server, &["produce", "orders", "--partition", "1"], "x\ny\nz\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("produced 3 message(s)"), "{}", text(&out));

    // consume: everything, as NDJSON and as text
    let all = ndjson(&server, &["consume", "orders"]);
    assert_eq!(all.len(), 6, "{all:?}");
    let first = all.iter().find(|m| m["partition"] == 0 && m["offset"] == 0).expect("p0@0");
    assert_eq!(first["key"], "k1");
    assert_eq!(first["headers"]["trace"], "abc");
    let human = ok(&server, &["consume", "orders", "--partition", "1"]);
    assert!(human.contains("p1@0") && human.contains("  x"), "{human}");
    // Text shows a value's exact bytes, as a group consumer too (it showed JSON re-encoded).
    ok(&server, &["produce", "spaced", r#"{"a": 1,  "b": [1, 2]}"#]);
    for args in [&["consume", "spaced"][..], &["consume", "spaced", "--group", "g-spaced"]] {
        let human = ok(&server, args);
        assert!(human.contains(r#"  {"a": 1,  "b": [1, 2]}"#), "{args:?}: {human}");
    }
    let from_one = ndjson(&server, &["consume", "orders", "-p", "0", "--offset", "1", "-n", "1"]);
    assert_eq!(from_one.len(), 1);
    assert_eq!(from_one[0]["offset"], 1);

    // follow over server-sent events until --max-messages
    let followed = ndjson(&server, &["consume", "orders", "--follow", "--max-messages", "6"]);
    assert_eq!(followed.len(), 6);

    // queue group: fetch, print, ack; then the group has no lag
    let leased = ndjson(&server, &["consume", "orders", "--group", "billing"]);
    assert_eq!(leased.len(), 6);
    let desc = json(&server, &["groups", "describe", "billing"]);
    let parts = desc["partitions"].as_array().expect("partitions");
    let committed: u64 = parts.iter().map(|p| p["committed"].as_u64().unwrap()).sum();
    assert_eq!(committed, 6, "{desc}");
    assert!(parts.iter().all(|p| p["lag"] == 0), "{desc}");
    assert!(ok(&server, &["groups", "describe", "billing"]).contains("COMMITTED"));
    assert!(ok(&server, &["groups", "list"]).contains("billing"));
    let reset = json(&server, &["groups", "reset", "billing", "--topic", "orders", "--to-earliest"]);
    let lag: u64 = reset["offsets"].as_array().unwrap().iter().map(|o| o["lag"].as_u64().unwrap()).sum();
    assert_eq!(lag, 6, "{reset}");

    // compact: online through the API, the statistics as a before/after table or as JSON
    let table = ok(&server, &["compact", "orders"]);
    assert!(table.contains("compacted topic orders"), "{table}");
    assert!(table.contains("BEFORE") && table.contains("messages") && table.contains("duration_ms"), "{table}");
    let stats = json(&server, &["compact", "orders"]);
    assert!(stats["messages_before"].is_u64() && stats["duration_ms"].is_u64(), "{stats}");
    assert_eq!(stats["messages_after"], stats["messages_before"], "a delete topic keeps every message: {stats}");
    let out = run(&server, &["compact", "missing"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("topic_not_found"), "{}", text(&out));

    // an offline command on the live server's data directory is refused
    let out = run(&server, &["verify", "--data-dir", server.data.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is in use"), "{}", text(&out));

    // errors from the server exit 1 with its code
    let out = run(&server, &["topics", "describe", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("topic_not_found"), "{}", text(&out));

    // bench: both phases, small
    let bench = json(&server, &["bench", "--messages", "2000", "--size", "64", "--batch", "100", "--connections", "2"]);
    let phases = bench["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 2, "{bench}");
    for p in phases {
        assert_eq!(p["messages"], 2000, "{bench}");
        assert!(p["latency_ms"]["p99"].as_f64().unwrap() > 0.0, "{bench}");
    }

    ok(&server, &["topics", "delete", "orders"]);
    let list = json(&server, &["topics", "list"]);
    assert!(!list["topics"].as_array().unwrap().iter().any(|t| t["name"] == "orders"), "{list}");
}

/// `cairn tail` (the contract's "consume/tail") is `consume --follow`: it prints what is stored,
/// then keeps printing new messages instead of exiting at the end.
#[test]
fn tail_follows_a_topic() {
    let server = Server::start();
    ok(&server, &["topics", "create", "live"]);
    ok(&server, &["produce", "live", "one"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--json", "tail", "live", "--max-messages", "3"])
        .env("CAIRN_URL", &server.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn tail");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first: Value = serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("NDJSON");
    assert_eq!(first["offset"], 0, "{first}");
    // The stored message is printed; the tail is still running and gets the next ones.
    ok(&server, &["produce", "live", "two", "three"]);
    let rest: Vec<Value> = lines.map(|l| serde_json::from_str(&l.expect("read")).expect("NDJSON")).collect();
    let status = child.wait().expect("wait cairn tail");
    assert_eq!(status.code(), Some(0));
    let offsets: Vec<u64> = rest.iter().map(|m| m["offset"].as_u64().expect("offset")).collect();
    assert_eq!(offsets, [1, 2], "{rest:?}");
}

#[test]
fn verify_passes_on_a_stopped_servers_data_dir() {
    let mut server = Server::start();
    ok(&server, &["topics", "create", "ev", "--partitions", "2", "--segment-bytes", "8192"]);
    ok(&server, &["bench", "--topic", "ev", "--keep", "--mode", "produce", "-n", "3000", "-s", "40", "-b", "10"]);
    assert_eq!(ndjson(&server, &["consume", "ev", "--group", "g", "-n", "50"]).len(), 50);
    let status = server.stop();
    assert!(status.success(), "cairnd stopped with {status}");
    let data = server.data.path().to_str().unwrap().to_string();
    let report = json(&server, &["verify", "--data-dir", &data, "--deep"]);
    assert_eq!(report["ok"], true, "{report}");
    let ev: u64 = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == "ev")
        .map(|p| p["records"].as_u64().unwrap())
        .sum();
    assert_eq!(ev, 3000, "{report}");
    let dump = json(&server, &["dump", "--data-dir", &data, "--topic", "ev", "--partition", "0"]);
    let segments = dump["topics"][0]["partitions"][0]["segments"].as_array().unwrap();
    assert!(segments.len() > 1, "several segments expected");
}

/// `--token` / `CAIRN_TOKEN` and an https `--url` with `--ca-cert` for a self-signed server.
#[test]
fn token_and_https_url() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key, config) = (dir.path().join("c.pem"), dir.path().join("k.pem"), dir.path().join("auth.toml"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    // sha256("tok-admin"), as `cairnd hash-token` prints it.
    std::fs::write(
        &config,
        "[[auth.tokens]]\nname = \"ops\"\n\
         sha256 = \"df6adb0b23fa33235f4aee6a0d62c118b00d71c07c81be87067b4f5892e66dbc\"\nscopes = [\"admin\"]\n",
    )
    .unwrap();
    let args = [
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ];
    let server = Server::start_with(&args, true);
    let cairn = |extra: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(["--url", &server.url, "--ca-cert"]).arg(&cert).args(extra).stdin(Stdio::null());
        if let Some(t) = token {
            cmd.env("CAIRN_TOKEN", t);
        }
        cmd.output().expect("run cairn")
    };
    let denied = cairn(&["topics", "list"], None);
    assert_eq!(denied.status.code(), Some(1), "{}", text(&denied));
    assert!(text(&denied).contains("unauthorized"), "{}", text(&denied));
    assert!(text(&denied).contains("--token or CAIRN_TOKEN"), "{}", text(&denied));
    let out = cairn(&["produce", "orders", "over-tls"], Some("tok-admin"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = cairn(&["--token", "tok-admin", "--json", "consume", "orders"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // "over-tls" is not JSON, so --json shows it as base64.
    assert!(String::from_utf8_lossy(&out.stdout).contains("b3Zlci10bHM="), "{}", text(&out));

    // The usual mix-ups are one line that says what to do.
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().expect("run cairn");
    let plain = server.url.replacen("https://", "http://", 1);
    let out = run(&["--url", &plain, "topics", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use https://"), "{}", text(&out));
    let out = run(&["--url", &server.url, "topics", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trust it with --ca-cert") && stderr.lines().count() == 1, "{}", text(&out));
}

fn spawn(server: &Server, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_URL", &server.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn")
}

/// Ctrl-C, as a terminal sends it.
fn interrupt(child: &std::process::Child) {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -INT failed");
}

/// Runs `cairn args`, waits for `lines` lines of its output, sends SIGINT and returns how it
/// ended, checking the exit status is 130 (what a shell shows for Ctrl-C).
fn interrupt_after_lines(server: &Server, args: &[&str], lines: usize) -> std::process::Output {
    let mut child = spawn(server, args);
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for _ in 0..lines {
        out.next().expect("a message").expect("read");
    }
    interrupt(&child);
    let out = child.wait_with_output().expect("wait cairn");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    out
}

/// Ctrl-C stops a group consumer cleanly: exit 130 (what a shell shows for Ctrl-C), and the
/// messages it printed are acknowledged, not delivered again. A tail stops with 130 as well.
/// (Before, SIGINT killed the process wherever it was: no exit status, printed messages
/// possibly unacknowledged.)
#[test]
fn ctrl_c_stops_consumers_cleanly() {
    let server = Server::start();
    ok(&server, &["topics", "create", "jobs", "--partitions", "2"]);
    ok(&server, &["produce", "jobs", "a", "b", "c"]);

    let out = interrupt_after_lines(&server, &["--json", "consume", "jobs", "--group", "workers", "--follow"], 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted: 3 message(s)"), "{}", text(&out));
    let desc = json(&server, &["groups", "describe", "workers"]);
    let parts = desc["partitions"].as_array().expect("partitions");
    assert!(parts.iter().all(|p| p["lag"] == 0 && p["in_flight"] == 0), "printed means acknowledged: {desc}");

    interrupt_after_lines(&server, &["--json", "tail", "jobs"], 3);
}

/// Ctrl-C during `bench` deletes the topic the bench created (it was left behind before).
#[test]
fn ctrl_c_during_bench_deletes_its_topic() {
    let server = Server::start();
    let child = spawn(&server, &["--json", "bench", "--messages", "1000000000", "--batch", "10", "-c", "1"]);
    let bench_topics = |server: &Server| -> Vec<String> {
        let list = json(server, &["topics", "list"]);
        let names = list["topics"].as_array().expect("topics").iter().filter_map(|t| t["name"].as_str());
        names.filter(|n| n.starts_with("cairn-bench-")).map(str::to_string).collect()
    };
    // The bench's topic appears once it runs (nothing to wait on but the server's list).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while bench_topics(&server).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no bench topic appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    interrupt(&child);
    let out = child.wait_with_output().expect("wait cairn");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("deleted"), "{}", text(&out));
    assert_eq!(bench_topics(&server), Vec::<String>::new());
}

/// A produce from standard input that fails part way says how many messages were stored
/// before the failure (a rerun must skip them).
#[test]
fn a_failed_stdin_produce_says_what_was_stored() {
    let server = Server::start();
    let input: String = (0..600).map(|i| format!("{i}\n")).collect::<String>() + "not json\n";
    let out = produce_stdin(&server, &["produce", "nums", "--value-format", "json", "--batch", "100"], &input);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stored = json(&server, &["topics", "describe", "nums"])["partitions"][0]["end_offset"].as_u64().unwrap();
    assert!(stored > 0, "{}", text(&out));
    assert!(stderr.contains(&format!("stopped after {stored} message(s) were produced to nums")), "{stderr}");
    assert!(stderr.contains("message 601 is not valid JSON"), "{stderr}");
}

/// `bench --mode consume` reads an existing topic and counts at most `--messages` (a read
/// returns whole batches: it counted every record of them, 20 for `-n 7` here); without
/// `--topic` it is a usage error (it benchmarked a new, empty topic: 0 messages, exit 0).
#[test]
fn bench_consume_mode_reads_an_existing_topic_up_to_messages() {
    let server = Server::start();
    let values: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let mut args = vec!["produce", "stored"];
    args.extend(values.iter().map(String::as_str));
    ok(&server, &args);
    let bench = json(&server, &["bench", "--mode", "consume", "--topic", "stored", "--messages", "7"]);
    assert_eq!(bench["phases"][0]["messages"], 7, "{bench}");
    // Not on a terminal: the summary table, and no progress bar on stderr.
    let out = run(&server, &["bench", "--mode", "consume", "--topic", "stored"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("MSG/S") && table.contains("P99 MS") && table.contains("consume"), "{table}");
    assert!(out.stderr.is_empty(), "{}", text(&out));
    let out = run(&server, &["bench", "--mode", "consume"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--topic"), "{}", text(&out));
    let out = run(&server, &["bench", "--mode", "consume", "--topic", "missing"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("topic_not_found"), "{}", text(&out));
    let topics = json(&server, &["topics", "list"]);
    assert_eq!(topics["topics"].as_array().map(Vec::len), Some(1), "no topic made: {topics}");
}

/// `topics alter` changes a topic (PATCH; partitions only grow, the server's 400 shown), and a
/// tail of every partition follows partitions added while it runs (it followed only those of
/// its start, so messages to a new partition never showed).
#[test]
fn topics_alter_and_a_tail_follows_added_partitions() {
    let server = Server::start();
    ok(&server, &["topics", "create", "growing"]);
    let mut child = spawn(&server, &["--json", "tail", "growing", "--max-messages", "2"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    ok(&server, &["produce", "growing", "first", "-p", "0"]);
    let first: Value = serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("NDJSON");
    assert_eq!(first["partition"], 0, "{first}");

    let altered = json(&server, &["topics", "alter", "growing", "--partitions", "3", "--retention-ms", "60000"]);
    assert_eq!(altered["partitions"].as_array().map(Vec::len), Some(3), "{altered}");
    assert_eq!(altered["config"]["retention_ms"], 60000, "{altered}");
    let out = run(&server, &["topics", "alter", "growing", "--partitions", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_request"), "{}", text(&out));
    let out = run(&server, &["topics", "alter", "growing"]);
    assert_eq!(out.status.code(), Some(2), "nothing to change: {}", text(&out));

    ok(&server, &["produce", "growing", "second", "-p", "2"]);
    let second: Value = serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("NDJSON");
    assert_eq!((&second["partition"], &second["offset"]), (&Value::from(2), &Value::from(0)), "{second}");
    let status = child.wait().expect("wait cairn tail");
    assert_eq!(status.code(), Some(0));
}

/// A topic deleted under a tail ends its event stream with `event: error`: the tail exits 1
/// showing the server's code and message (it ignored the event and reported only that the
/// server closed the stream).
#[test]
fn a_tail_shows_the_error_that_ended_its_stream() {
    let server = Server::start();
    ok(&server, &["produce", "doomed", "one"]);
    let mut child = spawn(&server, &["--json", "tail", "doomed", "--partition", "0"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    lines.next().expect("a line").expect("read");
    ok(&server, &["topics", "delete", "doomed"]);
    let out = child.wait_with_output().expect("wait cairn tail");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: topic_not_found: ") && stderr.lines().count() == 1, "{stderr}");
}

/// `groups config` changes only the settings given: PUT replaces the whole config, so the
/// tool merges the flags into the current one ("default" is a null dead-letter topic).
#[test]
fn groups_config_changes_only_what_is_given() {
    let server = Server::start();
    let first = json(&server, &["groups", "config", "workers", "--max-deliveries", "3", "--ack-timeout-ms", "5000"]);
    assert_eq!((&first["max_deliveries"], &first["ack_timeout_ms"]), (&Value::from(3), &Value::from(5000)), "{first}");
    let second = json(&server, &["groups", "config", "workers", "--ordered", "true", "--dead-letter-topic", "dl"]);
    assert_eq!(second["max_deliveries"], 3, "kept: {second}");
    assert_eq!(second["ack_timeout_ms"], 5000, "kept: {second}");
    assert_eq!((&second["ordered"], &second["dead_letter_topic"]), (&Value::from(true), &Value::from("dl")));
    let third = json(&server, &["groups", "config", "workers", "--dead-letter-topic", "default"]);
    assert!(third["dead_letter_topic"].is_null() && third["ordered"] == true, "{third}");
    assert!(ok(&server, &["groups", "describe", "workers"]).contains("<topic>.dlq (default)"));
    let out = run(&server, &["groups", "config", "workers"]);
    assert_eq!(out.status.code(), Some(2), "nothing to change: {}", text(&out));
    let out = run(&server, &["groups", "config", "workers", "--ack-timeout-ms", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: bad_request: "), "{}", text(&out));
}

/// A read without --follow ends at each partition's end as of its first page: messages
/// produced meanwhile are for --follow (it followed the end as it moved, so a partition
/// written faster than it was read never ended). The reader is held back by not reading its
/// output (a pipe holds 64 KiB; the output is about 300 KiB) while more is produced.
#[test]
fn a_read_ends_at_the_end_it_started_with() {
    let server = Server::start();
    let value = "v".repeat(100);
    let input: String = (0..2000).map(|i| format!("{i:04}{value}\n")).collect();
    let out = produce_stdin(&server, &["produce", "busy"], &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut child = spawn(&server, &["consume", "busy", "--batch", "100"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    lines.next().expect("a line").expect("read"); // its first page is read: the end is fixed
    let out = produce_stdin(&server, &["produce", "busy"], &input[..input.len() / 2]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rest = lines.count();
    let status = child.wait().expect("wait cairn");
    assert_eq!(status.code(), Some(0));
    assert_eq!(rest + 1, 2000, "the 1,000 messages produced during the read are not part of it");
}
