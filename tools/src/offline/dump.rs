//! `cairn dump`: print the segments, index entries and batches (and with `--records` every
//! record) of a stopped server's data directory, as text or JSON.
//!
//! Damaged regions are shown where they are, between the batches around them (byte range and
//! reason), and the dump goes on after them, so `dump` is also a way to look at what `verify`
//! reported. A zero-filled
//! tail (space ahead of an active segment's data, `docs/FORMAT.md` §2.1) is shown as such.
//! A partition's quarantine files (bytes the server cut after a power loss, `docs/FORMAT.md`
//! §6) are shown after its segments, batch by batch, marked as not part of the log.

use std::path::Path;

use base64::Engine as _;
use cairn_storage::format::{INDEX_ENTRY_LEN, TIMEINDEX_ENTRY_LEN};
use cairn_storage::{BatchHeader, DecodedBatch};
use serde_json::{json, Value};

use super::lock_data_dir;
use crate::cli::DumpArgs;
use crate::outcome::Outcome;
use crate::table;
use cairn_storage::inspect::{self as walk, LogFile, SegmentFiles};

pub fn run(args: &DumpArgs, json: bool) -> anyhow::Result<Outcome> {
    let _lock = lock_data_dir(&args.data_dir)?;
    let (mut topics, _) = walk::topics(&args.data_dir)?;
    if let Some(only) = &args.topic {
        topics.retain(|t| &t.name == only);
        if topics.is_empty() {
            anyhow::bail!("no topic {only} in {}", args.data_dir.display());
        }
    }
    let mut out = Vec::new();
    // What --partition and --segment matched: nothing is an error, not an empty dump.
    let (mut partitions_seen, mut segments_seen) = (0usize, 0usize);
    for topic in &topics {
        let config = topic.config().map_or(Value::Null, |c| serde_json::to_value(c).unwrap_or(Value::Null));
        if !json {
            outln!("topic {}  {}", topic.name, topic.config_path().display());
            if !config.is_null() {
                outln!("  config {config}");
            }
        }
        let mut partitions = Vec::new();
        for (p, dir) in walk::partitions(topic)? {
            if args.partition.is_some_and(|only| only != p) {
                continue;
            }
            partitions_seen += 1;
            if !json {
                outln!("  partition {p}  {}", dir.display());
            }
            let mut segments = Vec::new();
            let listing = walk::list_segments(&dir)?;
            // As verify does: a committed compaction swap is shown as the open will complete it.
            for seg in listing.segments_after_swaps() {
                if args.segment.is_some_and(|only| only != seg.base) {
                    continue;
                }
                segments_seen += 1;
                segments.push(dump_segment(&seg, args, json)?);
            }
            let mut cut_files = Vec::new();
            for cut in listing.cut_files.iter().filter(|c| args.segment.is_none_or(|only| only == c.base)) {
                cut_files.push(dump_cut_file(cut, args, json)?);
            }
            partitions.push(json!({"partition": p, "dir": dir, "segments": segments, "quarantine_files": cut_files}));
        }
        out.push(json!({"name": topic.name, "config": config, "partitions": partitions}));
    }
    let scope = args.topic.as_ref().map_or_else(|| "any topic".to_string(), |t| format!("topic {t}"));
    if let Some(p) = args.partition.filter(|_| partitions_seen == 0) {
        anyhow::bail!("no partition {p} in {scope} of {}", args.data_dir.display());
    }
    if let Some(base) = args.segment.filter(|_| segments_seen == 0) {
        anyhow::bail!(
            "no segment with base offset {base} in {scope} of {} (`cairn dump` without --segment lists them)",
            args.data_dir.display()
        );
    }
    if json {
        table::print_json(&json!({"data_dir": args.data_dir, "topics": out}))?;
    }
    Ok(Outcome::Ok)
}

/// Dumps one segment: printed as it goes in text mode, returned as JSON (empty in text mode).
fn dump_segment(seg: &SegmentFiles, args: &DumpArgs, json: bool) -> anyhow::Result<Value> {
    let mut log = LogFile::open(&seg.log)?;
    if !json {
        outln!("    segment {}  base offset {}  {} bytes", seg.log.display(), seg.base, table::count(log.len()));
    }
    let (index, timeindex) = if args.no_indexes { (Value::Null, Value::Null) } else { dump_indexes(seg, json)? };
    let (scan, batches) = scan_batches(&mut log, seg.base, json, args.records, true)?;
    if !json {
        return Ok(Value::Null);
    }
    let damage: Vec<Value> = scan
        .damage
        .iter()
        .map(|d| json!({"position": d.start, "end": d.end, "reason": d.reason, "lost_from_offset": d.lost_from}))
        .collect();
    let zero_from = scan.len - scan.zero_tail;
    Ok(json!({
        "base_offset": seg.base, "log": seg.log, "log_bytes": scan.len, "next_offset": scan.next_offset,
        "index": index, "timeindex": timeindex, "batches": batches, "damage": damage,
        "zero_tail": (scan.zero_tail > 0).then(|| json!({"position": zero_from, "bytes": scan.zero_tail})),
    }))
}

/// Dumps a quarantine file (`docs/FORMAT.md` §6): the bytes the server cut from a segment
/// after a power loss, not part of the log. It starts with the damage that ended the log;
/// the batches after it are shown like a segment's (any offsets), and so are its damaged
/// ranges and zero-filled tail.
fn dump_cut_file(cut: &walk::CutFile, args: &DumpArgs, json: bool) -> anyhow::Result<Value> {
    let mut log = LogFile::open(&cut.path)?;
    if !json {
        outln!(
            "    quarantine file {}  cut from segment {} at byte {}  {} bytes (not part of the log)",
            cut.path.display(),
            cut.base,
            cut.position,
            table::count(log.len())
        );
    }
    let (scan, batches) = scan_batches(&mut log, 0, json, args.records, false)?;
    if !json {
        return Ok(Value::Null);
    }
    let zero_from = scan.len - scan.zero_tail;
    let damage: Vec<Value> =
        scan.damage.iter().map(|d| json!({"position": d.start, "end": d.end, "reason": d.reason})).collect();
    Ok(json!({
        "path": cut.path, "segment_base_offset": cut.base, "cut_at_position": cut.position, "bytes": scan.len,
        "batches": batches, "damage": damage,
        "zero_tail": (scan.zero_tail > 0).then(|| json!({"position": zero_from, "bytes": scan.zero_tail})),
    }))
}

fn dump_indexes(seg: &SegmentFiles, json: bool) -> anyhow::Result<(Value, Value)> {
    let index = walk::read_index_entries(&seg.index, INDEX_ENTRY_LEN)?;
    let time = walk::read_index_entries(&seg.timeindex, TIMEINDEX_ENTRY_LEN)?;
    let index_v = index.as_ref().map_or(Value::Null, |f| {
        let entries: Vec<Value> = f
            .entries
            .iter()
            .map(|e| walk::index_entry(e))
            .map(|(rel, pos)| json!({"relative_offset": rel, "offset": seg.base + u64::from(rel), "position": pos}))
            .collect();
        json!({"path": seg.index, "file_bytes": f.file_len, "entries": entries})
    });
    let time_v = time.as_ref().map_or(Value::Null, |f| {
        let entries: Vec<Value> = f
            .entries
            .iter()
            .map(|e| walk::time_entry(e))
            .map(|(ts, rel)| json!({"timestamp": ts, "relative_offset": rel, "offset": seg.base + u64::from(rel)}))
            .collect();
        json!({"path": seg.timeindex, "file_bytes": f.file_len, "entries": entries})
    });
    if !json {
        print_index("index", &seg.index, &index_v, |e| {
            format!("offset {} (relative {}) at byte {}", e["offset"], e["relative_offset"], e["position"])
        });
        print_index("timeindex", &seg.timeindex, &time_v, |e| {
            let ts = e["timestamp"].as_i64().unwrap_or(0);
            format!("{} ({ts}) at offset {} (relative {})", table::timestamp(ts), e["offset"], e["relative_offset"])
        });
    }
    Ok((index_v, time_v))
}

fn print_index(name: &str, path: &Path, v: &Value, line: impl Fn(&Value) -> String) {
    let Some(entries) = v.get("entries").and_then(Value::as_array) else {
        outln!("      {name}: missing ({})", path.display());
        return;
    };
    outln!("      {name}: {} entries, {} bytes", entries.len(), v["file_bytes"]);
    for e in entries {
        outln!("        {}", line(e));
    }
}

fn codec(h: &BatchHeader) -> &'static str {
    if h.is_compressed() {
        "zstd"
    } else {
        "none"
    }
}

/// Reads every batch of `log` (whose first offset is `base`): printed as it comes for text,
/// collected for JSON. Returns the scan (damage, zero tail) and the collected batches.
///
/// Text shows each damaged range where it is, between the batches around it (a first pass
/// finds the ranges, as the printing pass cannot know a range's reason before it ends), and
/// a zero-filled tail last. `expected_offsets`: the damage lines name the offset expected
/// there (segments; a quarantine file's offsets are whatever was cut).
fn scan_batches(
    log: &mut LogFile,
    base: u64,
    json: bool,
    records: bool,
    expected_offsets: bool,
) -> anyhow::Result<(walk::SegmentScan, Vec<Value>)> {
    let damage = if json { Vec::new() } else { walk::scan_segment(log, base, false, |_, _, _| {})?.damage };
    let mut pending = damage.iter().peekable();
    let print_damage = |d: &walk::Damage| {
        let expected = if expected_offsets { format!(" (expected offset {})", d.lost_from) } else { String::new() };
        outln!("      DAMAGED bytes {}..{}: {}{expected}", d.start, d.end, d.reason);
    };
    let mut batches = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let scan = walk::scan_segment(log, base, false, |pos, bytes, h| match batch_json(pos, bytes, h, records) {
        Ok(b) if json => batches.push(b),
        Ok(b) => {
            while let Some(d) = pending.next_if(|d| d.start < pos) {
                print_damage(d);
            }
            print_batch(&b);
        }
        Err(e) => {
            failure.get_or_insert(e);
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if !json {
        pending.for_each(print_damage);
        if scan.zero_tail > 0 {
            let zero_from = scan.len - scan.zero_tail;
            outln!("      zero-filled tail bytes {zero_from}..{}: space ahead of the data, not data", scan.len);
        }
    }
    Ok((scan, batches))
}

/// A batch as JSON, with its records decoded if asked.
fn batch_json(pos: u64, bytes: &[u8], h: &BatchHeader, records: bool) -> anyhow::Result<Value> {
    let mut b = json!({
        "position": pos, "base_offset": h.base_offset, "last_offset": h.last_offset(),
        "record_count": h.record_count, "bytes": h.total_len(), "codec": codec(h),
        "first_timestamp": h.first_timestamp, "max_timestamp": h.max_timestamp, "crc": format!("{:#010x}", h.crc),
    });
    if records {
        let decoded = DecodedBatch::trusting_crc(bytes, *h)?;
        let list: Vec<Value> = match decoded.collect_checked() {
            Ok(rs) => rs.iter().map(record_json).collect(),
            Err(e) => vec![json!({"error": e.to_string()})],
        };
        b["records"] = Value::Array(list);
    }
    Ok(b)
}

fn bytes_json(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(b)}),
        },
    }
}

fn record_json(r: &cairn_storage::Record<'_>) -> Value {
    let headers: serde_json::Map<String, Value> =
        r.headers.iter().map(|(k, v)| (k.to_string(), bytes_json(Some(v)))).collect();
    json!({
        "offset": r.offset, "timestamp": r.timestamp, "key": bytes_json(r.key), "value": bytes_json(r.value),
        "headers": headers,
    })
}

fn print_batch(b: &Value) {
    outln!(
        "      batch at byte {}: offsets {}..{} ({} record{}), {} bytes, codec {}, time {}, crc {}",
        b["position"],
        b["base_offset"],
        b["last_offset"],
        b["record_count"],
        if b["record_count"] == 1 { "" } else { "s" },
        b["bytes"],
        b["codec"].as_str().unwrap_or("?"),
        table::timestamp(b["first_timestamp"].as_i64().unwrap_or(0)),
        b["crc"].as_str().unwrap_or("?"),
    );
    for r in b.get("records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        if let Some(err) = r.get("error") {
            outln!("        records do not decode: {err}");
            continue;
        }
        let text = |v: &Value| match v {
            Value::Null => "(null)".to_string(),
            Value::String(s) => shorten(table::text(s.as_bytes())),
            other => shorten(other.to_string()),
        };
        let mut line = format!("        {}  key {}  value {}", r["offset"], text(&r["key"]), text(&r["value"]));
        if let Some(h) = r.get("headers").and_then(Value::as_object).filter(|h| !h.is_empty()) {
            let pairs: Vec<String> = h.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
            line.push_str(&format!("  [{}]", pairs.join(" ")));
        }
        outln!("{line}");
    }
}

/// Characters of a key or value shown in a text dump (JSON output is never shortened).
const TEXT_CHARS_MAX: usize = 120;

fn shorten(s: String) -> String {
    let n = s.chars().count();
    if n <= TEXT_CHARS_MAX {
        return s;
    }
    let head: String = s.chars().take(TEXT_CHARS_MAX).collect();
    format!("{head}… ({n} characters)")
}
