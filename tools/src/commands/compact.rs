//! `cairn compact`: compact a topic now.
//!
//! Online (`cairn compact TOPIC`): `POST /v1/topics/{topic}/compact`, then the statistics the
//! server replies with as a before/after table. The reply's exact fields are the server's
//! (segments, bytes, messages before and after, time taken); the table is built from any
//! `before`/`after` objects or `<name>_before`/`<name>_after` pairs it finds, and shows other
//! fields as they are.
//!
//! Offline (`--data-dir DIR --topic T`): the storage engine's own compaction
//! (`Catalog::compact_topic`) on a stopped server's data directory, with the same statistics;
//! refused with a clear message while a server holds the directory's lock.
//!
//! Both show a spinner with the current step and the time so far while they run (on a
//! terminal only), then the statistics table.

use std::collections::BTreeMap;

use anyhow::Context as _;
use cairn_storage::{Catalog, CatalogOptions, Error as StorageError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::api::{seg, Api, ApiError};
use crate::cli::CompactArgs;
use crate::offline;
use crate::outcome::Outcome;
use crate::table::{self, Table};

pub async fn run_online(api: &Api, args: &CompactArgs, json: bool) -> anyhow::Result<Outcome> {
    let topic = args.topic();
    let spinner = spinner(json);
    spinner.set_message(format!("compacting topic {topic} on the server"));
    // The reply comes when the compaction is done, which on a large topic takes longer than
    // any request timeout: no timeout (Ctrl-C stops waiting; the server finishes regardless).
    let path = format!("/v1/topics/{}/compact", seg(topic));
    let replied = api.call(api.request_untimed(Method::POST, &path).json(&json!({}))).await;
    spinner.finish_and_clear();
    let reply = match replied {
        Ok(reply) => reply,
        Err(e @ ApiError::Status { status: 404 | 405, .. }) if e.code() != Some("topic_not_found") => {
            return Err(anyhow::Error::new(e).context("this server does not offer compaction (no compact endpoint)"));
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        table::print_json(&reply)?;
    } else {
        outln!("compacted topic {topic}");
        print_stats(&reply);
    }
    Ok(Outcome::Ok)
}

/// Compacts a topic of a stopped server's data directory with the storage engine itself
/// (opening the directory recovers it first, exactly as the server would), then closes it
/// cleanly.
pub fn run_offline(args: &CompactArgs, json: bool) -> anyhow::Result<Outcome> {
    let dir = args.data_dir.as_deref().unwrap_or(std::path::Path::new("."));
    // The engine takes the lock itself; this first gives the clear refusal of every
    // offline command while a server holds the directory.
    drop(offline::lock_data_dir(dir)?);
    let topic = args.topic();
    let spinner = spinner(json);
    spinner.set_message(format!("opening data directory {}", dir.display()));
    let opts = CatalogOptions { writer_threads: 1, ..CatalogOptions::default() };
    let catalog = Catalog::open(dir, opts).with_context(|| format!("cannot open data directory {}", dir.display()))?;
    spinner.set_message(format!("compacting topic {topic}"));
    let compacted = catalog.compact_topic(topic);
    // Closed cleanly whatever happened, so the next open needs no recovery.
    spinner.set_message(format!("closing data directory {}", dir.display()));
    let closed = catalog.close();
    spinner.finish_and_clear();
    let stats = match compacted {
        Ok(stats) => stats,
        Err(StorageError::TopicNotFound(_)) => anyhow::bail!("no topic {topic} in {}", dir.display()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("compacting {topic}"))),
    };
    closed.with_context(|| format!("closing data directory {}", dir.display()))?;
    let reply = serde_json::to_value(stats)?;
    if json {
        table::print_json(&reply)?;
    } else {
        outln!("compacted topic {topic} in {}", dir.display());
        print_stats(&reply);
    }
    Ok(Outcome::Ok)
}

/// The progress shown while an offline compaction runs (the engine reports no fraction done,
/// so a spinner with the step and the time so far). On stderr, and only on a terminal:
/// indicatif draws nothing when stderr is not one.
fn spinner(json: bool) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// Prints compaction statistics: a before/after table, then any other fields.
fn print_stats(reply: &Value) {
    let Some(obj) = reply.as_object() else {
        outln!("{reply}");
        return;
    };
    let mut pairs: BTreeMap<String, (Option<Value>, Option<Value>)> = BTreeMap::new();
    let mut rest: Vec<(String, Value)> = Vec::new();
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("before" | "after", Value::Object(m)) => add_side(&mut pairs, m, k == "before"),
            _ => {
                if let Some(name) = k.strip_suffix("_before") {
                    pairs.entry(name.to_string()).or_default().0 = Some(v.clone());
                } else if let Some(name) = k.strip_suffix("_after") {
                    pairs.entry(name.to_string()).or_default().1 = Some(v.clone());
                } else {
                    rest.push((k.clone(), v.clone()));
                }
            }
        }
    }
    if !pairs.is_empty() {
        let mut t = Table::new(&["", "BEFORE", "AFTER", "CHANGE"]);
        for (name, (before, after)) in &pairs {
            let change = match (before.as_ref().and_then(Value::as_f64), after.as_ref().and_then(Value::as_f64)) {
                (Some(b), Some(a)) if b != 0.0 => format!("{:+.1}%", (a - b) / b * 100.0),
                _ => String::new(),
            };
            t.row(vec![name.clone(), stat(name, before.as_ref()), stat(name, after.as_ref()), change]);
        }
        t.print();
    }
    let rest: Vec<(&str, String)> = rest.iter().map(|(k, v)| (k.as_str(), stat(k, Some(v)))).collect();
    if !rest.is_empty() {
        outln!();
        table::print_pairs(&rest);
    }
}

fn add_side(pairs: &mut BTreeMap<String, (Option<Value>, Option<Value>)>, side: &Map<String, Value>, before: bool) {
    for (k, v) in side {
        let e = pairs.entry(k.clone()).or_default();
        if before {
            e.0 = Some(v.clone());
        } else {
            e.1 = Some(v.clone());
        }
    }
}

/// A statistic as text: byte counts in binary units, other numbers with separators.
fn stat(name: &str, v: Option<&Value>) -> String {
    match v {
        None => "-".into(),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) if name.contains("bytes") => table::bytes(u),
            Some(u) if name.ends_with("_ms") => format!("{u} ms"),
            Some(u) => table::count(u),
            None => n.to_string(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
