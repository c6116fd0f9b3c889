//! `cairn produce`: append messages given as arguments, or one per line of standard input.
//!
//! Values are sent as `value_base64` by default, so the stored bytes are exactly the bytes
//! given (a JSON `value` would be stored as its compact JSON text, quoting plain strings);
//! `--value-format json` sends each value as JSON. Standard input is read on its own thread
//! and sent in requests of up to `--batch` lines: whatever has arrived when a request goes,
//! so a slow pipe (`tail -f`) is sent line by line and a file in large requests.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal as _};

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
    let mut produced = Produced::new(json);
    if !args.values.is_empty() {
        let messages = args
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| message(&args, v.as_bytes(), i + 1))
            .collect::<anyhow::Result<Vec<_>>>()?;
        produced.add(send(api, &path, messages).await?);
    } else if let Err(e) = produce_stdin(api, &args, &path, &mut produced).await {
        // Earlier lines are stored: say how many, so a rerun can skip them.
        return Err(match produced.count {
            0 => e,
            n => e.context(format!("stopped after {n} message(s) were produced to {}", args.topic)),
        });
    }
    produced.report(&args.topic)?;
    Ok(Outcome::Ok)
}

/// Produces the lines of standard input, in requests of up to `--batch` lines.
async fn produce_stdin(api: &Api, args: &ProduceArgs, path: &str, produced: &mut Produced) -> anyhow::Result<()> {
    if std::io::stdin().is_terminal() {
        // Typed by hand: say why nothing happens yet (each line is sent when it is entered).
        eprintln!("reading messages from standard input, one per line; Ctrl-D to finish");
    }
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
            messages.push(message(args, &line, line_no)?);
        }
        if !messages.is_empty() {
            produced.add(send(api, path, messages).await?);
        }
    }
    Ok(())
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

/// What was produced, kept as the report needs it: a line of standard input at a time can go
/// on for days (`tail -f app.log | cairn produce logs`), so the text report keeps the first
/// [`TABLE_ROWS_MAX`] offsets and a range per partition, not every offset. `--json` lists
/// every offset (its output is the server's replies).
#[derive(Debug)]
struct Produced {
    json: bool,
    count: u64,
    first: Vec<Value>,
    all: Vec<Value>,
    /// Per partition: first offset, last offset, messages.
    ranges: BTreeMap<i64, (i64, i64, u64)>,
}

impl Produced {
    fn new(json: bool) -> Self {
        Produced { json, count: 0, first: Vec::new(), all: Vec::new(), ranges: BTreeMap::new() }
    }

    fn add(&mut self, offsets: Vec<Value>) {
        for o in offsets {
            self.count += 1;
            let (p, off) = (field(&o, "partition"), field(&o, "offset"));
            let e = self.ranges.entry(p).or_insert((off, off, 0));
            e.0 = e.0.min(off);
            e.1 = e.1.max(off);
            e.2 += 1;
            if self.json {
                self.all.push(o);
            } else if self.first.len() < TABLE_ROWS_MAX {
                self.first.push(o);
            }
        }
    }

    fn report(self, topic: &str) -> anyhow::Result<()> {
        if self.json {
            return table::print_json(&json!({"topic": topic, "produced": self.count, "offsets": self.all}));
        }
        if self.count <= TABLE_ROWS_MAX as u64 {
            outln!("produced {} message(s) to {topic}", self.count);
            let mut t = Table::new(&["PARTITION", "OFFSET", "TIMESTAMP"]);
            for o in &self.first {
                t.row(vec![
                    field(o, "partition").to_string(),
                    field(o, "offset").to_string(),
                    table::timestamp(field(o, "timestamp")),
                ]);
            }
            if !t.is_empty() {
                t.print();
            }
            return Ok(());
        }
        outln!("produced {} messages to {topic}", table::count(self.count));
        let mut t = Table::new(&["PARTITION", "MESSAGES", "FIRST OFFSET", "LAST OFFSET"]);
        for (p, (first, last, n)) in self.ranges {
            t.row(vec![p.to_string(), table::count(n), first.to_string(), last.to_string()]);
        }
        t.print();
        Ok(())
    }
}

fn field(o: &Value, f: &str) -> i64 {
    o.get(f).and_then(Value::as_i64).unwrap_or(-1)
}
