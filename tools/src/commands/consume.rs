//! `cairn consume`: read messages — a range of each partition, a live tail over server-sent
//! events (`--follow`, which also picks up partitions added meanwhile), or queue-style as a
//! group (`--group`: fetch, print, acknowledge).
//!
//! Human output is one line per message: `p<partition>@<offset>  <time>  <key>  <value>
//! [headers]`; values are printed as their exact bytes (reads ask for `encoding=base64`)
//! when they are text, else as hex. `--json` prints the server's message objects as NDJSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::signal::unix::Signal;
use tokio::sync::mpsc;

use crate::api::{seg, stream_error, Api, ApiError, ApiResult, SseEvent};
use crate::cli::{ConsumeArgs, FromArg};
use crate::outcome::{interrupts, Outcome, UsageError};
use crate::table;

/// How often `--follow` on all partitions looks for partitions added to the topic.
const PARTITIONS_WATCH: Duration = Duration::from_secs(2);
/// Long-poll wait of a group fetch in `--follow` mode.
const GROUP_WAIT_MS: u64 = 10_000;

pub async fn run(api: &Api, args: ConsumeArgs, json: bool) -> anyhow::Result<Outcome> {
    let printer = Printer { json };
    let mut interrupts = interrupts()?;
    if let Some(group) = args.group.clone() {
        if args.partition.is_some() {
            return Err(
                UsageError("--partition cannot be used with --group (a group fetch spans partitions)".into()).into()
            );
        }
        return consume_group(api, &args, &group, printer, &mut interrupts).await;
    }
    // A read has nothing to finish: Ctrl-C stops it where it is.
    let printed = AtomicU64::new(0);
    tokio::select! {
        done = read(api, &args, printer, &printed) => done,
        _ = interrupts.recv() => {
            eprintln!("interrupted: {} message(s) printed", printed.load(Ordering::Relaxed));
            Ok(Outcome::Interrupted)
        }
    }
}

/// A read of a range, or a live tail; counts the messages it prints in `printed`.
async fn read(api: &Api, args: &ConsumeArgs, printer: Printer, printed: &AtomicU64) -> anyhow::Result<Outcome> {
    let partitions = match args.partition {
        Some(p) => vec![p],
        None => {
            let desc = api.get(&format!("/v1/topics/{}", seg(&args.topic))).await?;
            partition_numbers(&desc)
        }
    };
    if args.follow {
        follow(api, args, &partitions, printer, printed).await
    } else {
        read_range(api, args, &partitions, printer, printed).await
    }
}

/// The start query of the first read: `offset=`, `from=` or `timestamp=` (default earliest).
fn start_query(args: &ConsumeArgs) -> String {
    match (args.offset, args.from, args.timestamp) {
        (Some(o), _, _) => format!("offset={o}"),
        (_, Some(FromArg::Latest), _) => "from=latest".into(),
        (_, _, Some(ts)) => format!("timestamp={ts}"),
        _ => "from=earliest".into(),
    }
}

fn messages_path(args: &ConsumeArgs, partition: u32) -> String {
    format!("/v1/topics/{}/partitions/{partition}/messages", seg(&args.topic))
}

/// Reads each partition from the start position to its end offset at the time of reading.
async fn read_range(
    api: &Api,
    args: &ConsumeArgs,
    partitions: &[u32],
    printer: Printer,
    count: &AtomicU64,
) -> anyhow::Result<Outcome> {
    let mut printed = 0u64;
    let limit = args.max_messages.unwrap_or(u64::MAX);
    let encoding = if printer.json { "" } else { "&encoding=base64" };
    for &p in partitions {
        let mut query = start_query(args);
        // The partition's end when the read began: what arrives later is for --follow, so a
        // partition written faster than it is read still ends.
        let mut stop: Option<u64> = None;
        while printed < limit {
            let want = (limit - printed).min(u64::from(args.batch));
            let path = format!("{}?{query}&max_messages={want}{encoding}", messages_path(args, p));
            let page = api.get(&path).await?;
            let end = page.get("end_offset").and_then(Value::as_u64);
            let stop = *stop.get_or_insert(end.unwrap_or(u64::MAX));
            let messages = page.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let before_stop = |m: &&Value| m.get("offset").and_then(Value::as_u64).is_none_or(|o| o < stop);
            for m in messages.iter().filter(before_stop).take((limit - printed) as usize) {
                printer.print(m)?;
                printed += 1;
                count.store(printed, Ordering::Relaxed);
            }
            match page.get("next_offset").and_then(Value::as_u64) {
                Some(next) if !messages.is_empty() && next < stop => query = format!("offset={next}"),
                _ => break,
            }
        }
    }
    if !printer.json && printed == 0 {
        eprintln!("no messages");
    }
    Ok(Outcome::Ok)
}

/// Follows every partition over server-sent events until `--max-messages` or interruption.
async fn follow(
    api: &Api,
    args: &ConsumeArgs,
    partitions: &[u32],
    printer: Printer,
    count: &AtomicU64,
) -> anyhow::Result<Outcome> {
    let (tx, mut rx) = mpsc::channel::<ApiResult<SseEvent>>(1024);
    let encoding = if printer.json { "" } else { "&encoding=base64" };
    for &p in partitions {
        let path = format!("{}?{}{encoding}", messages_path(args, p), start_query(args));
        spawn_follower(api, path, p, &tx);
    }
    if args.partition.is_none() {
        // Partitions added while following (`topics alter --partitions`) are followed too, from
        // their start: everything in them arrived after this tail began.
        let (api, tx, topic, mut known) = (api.clone(), tx.clone(), args.topic.clone(), partitions.to_vec());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PARTITIONS_WATCH).await;
                let desc = match api.get(&format!("/v1/topics/{}", seg(&topic))).await {
                    Ok(desc) => desc,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for p in partition_numbers(&desc) {
                    if !known.contains(&p) {
                        known.push(p);
                        let path =
                            format!("/v1/topics/{}/partitions/{p}/messages?from=earliest{encoding}", seg(&topic));
                        spawn_follower(&api, path, p, &tx);
                    }
                }
            }
        });
    }
    drop(tx);
    let limit = args.max_messages.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    while printed < limit {
        match rx.recv().await {
            Some(event) => {
                let event = event?;
                if event.event == "error" {
                    return Err(stream_error(&event.data).into());
                }
                if event.event != "message" && !event.event.is_empty() {
                    continue;
                }
                printer.print(&serde_json::from_str::<Value>(&event.data)?)?;
                printed += 1;
                count.store(printed, Ordering::Relaxed);
            }
            None => break,
        }
    }
    Ok(Outcome::Ok)
}

/// Follows one partition's event stream at `path`, sending its events to `tx`; its end (the
/// server closed it, or an error) is sent as an error.
fn spawn_follower(api: &Api, path: String, partition: u32, tx: &mpsc::Sender<ApiResult<SseEvent>>) {
    let (api, tx) = (api.clone(), tx.clone());
    tokio::spawn(async move {
        let end = match api.follow(&path, &tx).await {
            Ok(()) => ApiError::Protocol {
                url: api.url(&path),
                reason: format!(
                    "the server closed the event stream of partition {partition} (shutting down or restarting?)"
                ),
            },
            Err(e) => e,
        };
        let _ = tx.send(Err(end)).await;
    });
}

/// The partition numbers of a topic description.
fn partition_numbers(desc: &Value) -> Vec<u32> {
    let parts = desc.get("partitions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    parts
        .iter()
        .filter_map(|p| p.get("partition").and_then(Value::as_u64))
        .filter_map(|p| u32::try_from(p).ok())
        .collect()
}

/// Queue mode: lease a batch, print it, acknowledge it; until empty (or forever with --follow).
///
/// Ctrl-C while waiting for messages stops at once (a fetch cut short may have leased
/// messages it never delivered: the server gives them to another consumer after their ack
/// timeout). Ctrl-C while a batch is printed and acknowledged lets the acknowledgement finish
/// first, so what was printed is not delivered again; a second Ctrl-C quits without it.
async fn consume_group(
    api: &Api,
    args: &ConsumeArgs,
    group: &str,
    printer: Printer,
    interrupts: &mut Signal,
) -> anyhow::Result<Outcome> {
    let base = format!("/v1/groups/{}/topics/{}", seg(group), seg(&args.topic));
    let consumer = format!("cairn-cli-{}", std::process::id());
    let limit = args.max_messages.unwrap_or(u64::MAX);
    let wait_ms = if args.follow { GROUP_WAIT_MS } else { 0 };
    let mut printed = 0u64;
    while printed < limit {
        let want = (limit - printed).min(u64::from(args.batch));
        let mut body = json!({"max_messages": want, "wait_ms": wait_ms, "consumer": consumer});
        if !printer.json {
            // Text shows the exact bytes, as reads do (JSON values would come back re-encoded).
            body["encoding"] = json!("base64");
        }
        let fetch_path = format!("{base}/fetch");
        let fetch = api.post_waiting(&fetch_path, &body, Duration::from_millis(wait_ms));
        let reply = tokio::select! {
            biased;
            _ = interrupts.recv() => return Ok(interrupted(printed)),
            reply = fetch => reply?,
        };
        let messages = reply.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
        if messages.is_empty() {
            if args.follow {
                continue;
            }
            break;
        }
        let mut ids = Vec::with_capacity(messages.len());
        for m in &messages {
            printer.print(m)?;
            ids.push(json!({"partition": m.get("partition"), "offset": m.get("offset")}));
        }
        printed += messages.len() as u64;
        if !args.no_ack {
            let (ack_path, ack_body) = (format!("{base}/ack"), json!({ "messages": ids }));
            let ack = api.send_json(Method::POST, &ack_path, &ack_body);
            tokio::pin!(ack);
            let mut stopping = false;
            loop {
                tokio::select! {
                    acked = &mut ack => {
                        acked?;
                        break;
                    }
                    _ = interrupts.recv() => {
                        if stopping {
                            eprintln!("interrupted before the acknowledgement: the last batch will be delivered again");
                            return Ok(interrupted(printed));
                        }
                        stopping = true;
                        eprintln!("stopping after the acknowledgement of the printed messages (Ctrl-C again: now)");
                    }
                }
            }
            if stopping {
                return Ok(interrupted(printed));
            }
        }
    }
    if !printer.json && printed == 0 {
        eprintln!("no messages");
    }
    Ok(Outcome::Ok)
}

fn interrupted(printed: u64) -> Outcome {
    eprintln!("interrupted: {printed} message(s) printed");
    Outcome::Interrupted
}

/// Prints messages as lines of text or NDJSON.
#[derive(Debug, Clone, Copy)]
struct Printer {
    json: bool,
}

impl Printer {
    fn print(&self, m: &Value) -> anyhow::Result<()> {
        if self.json {
            return table::print_json_line(m);
        }
        outln!("{}", message_line(m));
        Ok(())
    }
}

/// One message as a line of text.
fn message_line(m: &Value) -> String {
    let int = |f: &str| m.get(f).and_then(Value::as_i64).unwrap_or(-1);
    let key = match m.get("key") {
        Some(Value::String(k)) => table::text(k.as_bytes()),
        _ => "-".to_string(),
    };
    let value = if let Some(b64) = m.get("value_base64").and_then(Value::as_str) {
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(bytes) => table::text(&bytes),
            Err(_) => format!("(bad base64: {b64})"),
        }
    } else {
        match m.get("value") {
            None | Some(Value::Null) => "(null)".to_string(),
            Some(v) => v.to_string(),
        }
    };
    let mut line =
        format!("p{}@{}  {}  {key}  {value}", int("partition"), int("offset"), table::timestamp(int("timestamp")));
    if let Some(h) = m.get("headers").and_then(Value::as_object).filter(|h| !h.is_empty()) {
        let pairs: Vec<String> = h.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
        line.push_str(&format!("  [{}]", pairs.join(" ")));
    }
    if let Some(d) = m.get("delivery").and_then(Value::as_u64).filter(|&d| d > 1) {
        line.push_str(&format!("  (delivery {d})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_exact_bytes() {
        let m = json!({"partition": 0, "offset": 41, "timestamp": 1_764_000_000_000i64, "key": "user-42",
                       "value_base64": "aGVsbG8=", "headers": {"trace": "abc"}});
        assert_eq!(message_line(&m), "p0@41  2025-11-24T16:00:00.000Z  user-42  hello  [trace=abc]");
        let m = json!({"partition": 1, "offset": 2, "timestamp": 0, "key": null, "value": {"a": 1}});
        assert_eq!(message_line(&m), "p1@2  1970-01-01T00:00:00.000Z  -  {\"a\":1}");
    }
}
