//! `cairn produce`: append messages given as arguments, or one per line of standard input.
//!
//! Values are sent as `value_base64` by default, so the stored bytes are exactly the bytes
//! given (a JSON `value` would be stored as its compact JSON text, quoting plain strings);
//! `--value-format json` sends each value as JSON. Standard input is read on its own thread
//! and sent in requests of up to `--batch` lines: whatever has arrived when a request goes,
//! so a slow pipe (`tail -f`) is sent line by line and a file in large requests.

use std::io::BufRead;

use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::api::{seg, Api};
use crate::cli::{ProduceArgs, ValueFormat};
use crate::outcome::Outcome;
use crate::table::{self, Table};

/// Lines read ahead of the requests.
const STDIN_QUEUE_LINES: usize = 10_000;
/// At most this many produced offsets are listed in a table (more: a summary per partition).
const TABLE_ROWS_MAX: usize = 20;

pub async fn run(api: &Api, args: ProduceArgs, json: bool) -> anyhow::Result<Outcome> {
    let path = format!("/v1/topics/{}/messages", seg(&args.topic));
    let mut offsets: Vec<Value> = Vec::new();
    if !args.values.is_empty() {
        let messages = args
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| message(&args, v.as_bytes(), i + 1))
            .collect::<anyhow::Result<Vec<_>>>()?;
        offsets.extend(send(api, &path, messages).await?);
    } else {
        let mut lines = spawn_stdin_reader();
        let mut line_no = 0usize;
        while let Some(first) = lines.recv().await {
            let mut batch = vec![first?];
            while batch.len() < args.batch as usize {
                match lines.try_recv() {
                    Ok(line) => batch.push(line?),
                    Err(_) => break,
                }
            }
            let mut messages = Vec::with_capacity(batch.len());
            for line in batch {
                line_no += 1;
                if args.value_format == ValueFormat::Json && line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                messages.push(message(&args, &line, line_no)?);
            }
            if !messages.is_empty() {
                offsets.extend(send(api, &path, messages).await?);
            }
        }
    }
    report(&args.topic, &offsets, json)?;
    Ok(Outcome::Ok)
}

/// Reads standard input on a thread, one item per line (without its line ending).
fn spawn_stdin_reader() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE_LINES);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// One message object of the JSON produce body.
fn message(args: &ProduceArgs, value: &[u8], n: usize) -> anyhow::Result<Value> {
    let mut m = Map::new();
    match args.value_format {
        ValueFormat::Raw => {
            m.insert("value_base64".into(), json!(base64::engine::general_purpose::STANDARD.encode(value)));
        }
        ValueFormat::Json => {
            let v: Value = serde_json::from_slice(value)
                .map_err(|e| anyhow::anyhow!("message {n} is not valid JSON ({e}); use --value-format raw"))?;
            m.insert("value".into(), v);
        }
    }
    if let Some(k) = &args.key {
        m.insert("key".into(), json!(k));
    }
    if !args.headers.is_empty() {
        let headers: Map<String, Value> = args.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        m.insert("headers".into(), Value::Object(headers));
    }
    if let Some(p) = args.partition {
        m.insert("partition".into(), json!(p));
    }
    Ok(Value::Object(m))
}

async fn send(api: &Api, path: &str, messages: Vec<Value>) -> anyhow::Result<Vec<Value>> {
    let reply = api.send_json(reqwest::Method::POST, path, &json!({ "messages": messages })).await?;
    Ok(reply.get("offsets").and_then(Value::as_array).cloned().unwrap_or_default())
}

fn report(topic: &str, offsets: &[Value], json: bool) -> anyhow::Result<()> {
    if json {
        return table::print_json(&json!({"topic": topic, "produced": offsets.len(), "offsets": offsets}));
    }
    let field = |o: &Value, f: &str| o.get(f).and_then(Value::as_i64).unwrap_or(-1);
    if offsets.len() <= TABLE_ROWS_MAX {
        let mut t = Table::new(&["PARTITION", "OFFSET", "TIMESTAMP"]);
        for o in offsets {
            t.row(vec![
                field(o, "partition").to_string(),
                field(o, "offset").to_string(),
                table::timestamp(field(o, "timestamp")),
            ]);
        }
        println!("produced {} message(s) to {topic}", offsets.len());
        if !t.is_empty() {
            t.print();
        }
        return Ok(());
    }
    let mut ranges: std::collections::BTreeMap<i64, (i64, i64, u64)> = Default::default();
    for o in offsets {
        let off = field(o, "offset");
        let e = ranges.entry(field(o, "partition")).or_insert((off, off, 0));
        e.0 = e.0.min(off);
        e.1 = e.1.max(off);
        e.2 += 1;
    }
    println!("produced {} messages to {topic}", table::count(offsets.len() as u64));
    let mut t = Table::new(&["PARTITION", "MESSAGES", "FIRST OFFSET", "LAST OFFSET"]);
    for (p, (first, last, n)) in ranges {
        t.row(vec![p.to_string(), table::count(n), first.to_string(), last.to_string()]);
    }
    t.print();
    Ok(())
}
