//! `cairn verify` and `cairn dump` on data directories written by the real storage engine:
//! clean, damaged (bit flip, torn tail, bad index), locked; `--repair`; and offline `compact`.

mod common;

use std::fs;

use cairn_storage::{Catalog, CatalogOptions};
use common::*;

#[test]
fn verify_clean_dir_passes() {
    let dir = make_data_dir(40);
    let data = dir.path().to_str().unwrap();
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK:"), "{}", text(&out));
    assert!(stdout.contains("events"), "{}", text(&out));
    assert!(logs(dir.path(), "events", 0).len() > 2, "test data should span several segments");

    let out = cairn(&["verify", "--data-dir", data, "--deep", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify --json is JSON");
    assert_eq!(report["ok"], true);
    assert_eq!(report["partitions"].as_array().unwrap().len(), 3);
    let records: u64 = report["partitions"].as_array().unwrap().iter().map(|p| p["records"].as_u64().unwrap()).sum();
    assert_eq!(records, 2 * 40 * 5 + 1);
}

#[test]
fn bit_flip_in_the_middle_is_reported_with_file_and_position() {
    let dir = make_data_dir(40);
    let data = dir.path().to_str().unwrap();
    let first = &logs(dir.path(), "events", 1)[0];
    let len = fs::metadata(first).unwrap().len() as usize;
    flip(first, len / 2);
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("DAMAGED ")).unwrap_or_else(|| panic!("{}", text(&out)));
    assert!(line.contains(&first.display().to_string()), "{line}");
    assert!(line.contains("at byte "), "{line}");
    assert!(line.contains("CORRUPTION"), "{line}");

    let out = cairn(&["verify", "--data-dir", data, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let problem = &report["problems"][0];
    assert_eq!(problem["kind"], "corruption");
    assert_eq!(problem["file"], first.display().to_string());
    let pos = problem["position"].as_u64().unwrap() as usize;
    assert!(pos <= len / 2 && len / 2 - pos < 1024, "position {pos} should be the batch holding byte {}", len / 2);

    // Without --force the repair refuses to cut acknowledged data and the damage remains.
    let out = cairn(&["verify", "--data-dir", data, "--repair"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("needs --force"), "{}", text(&out));
    // With --force the damaged batch is cut out; the rest stays readable.
    let out = cairn(&["verify", "--data-dir", data, "--repair", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("are absent"), "the cut offsets are a gap: {}", text(&out));

    // The engine opens the repaired directory; every offset but the cut batch's still reads.
    let catalog = Catalog::open(dir.path(), CatalogOptions::default()).expect("open repaired dir");
    let p = catalog.topic("events").unwrap().partition(1).unwrap();
    assert_eq!(p.end_offset(), 200);
    close_catalog(catalog);
}

#[test]
fn torn_tail_is_reported_and_repaired() {
    let dir = make_data_dir(40);
    let data = dir.path().to_str().unwrap();
    let last = logs(dir.path(), "events", 0).pop().unwrap();
    let good_len = fs::metadata(&last).unwrap().len();
    append_garbage(&last, &[0x5a; 30]);
    // After a clean shutdown everything was synced: a bad tail is not a torn write.
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[CORRUPTION]"), "{}", text(&out));
    // After a crash (no clean-shutdown marker) it is a torn tail, cut without --force.
    fs::remove_file(dir.path().join(".clean-shutdown")).expect("the catalog closed cleanly");
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!("DAMAGED {} at byte {good_len}: [torn tail]", last.display());
    assert!(stdout.contains(&expected), "expected {expected:?} in\n{}", text(&out));

    let out = cairn(&["verify", "--data-dir", data, "--repair"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fs::metadata(&last).unwrap().len(), good_len);
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The engine opens the repaired directory and sees every message.
    let catalog = Catalog::open(dir.path(), CatalogOptions::default()).expect("open repaired dir");
    let p = catalog.topic("events").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 200);
    close_catalog(catalog);
}

/// The acceptance check of the contract: a byte flipped in a segment and one in another
/// segment's index are two damaged files, each printed with its path and position, exit 1.
/// `dump` shows the damaged range where it is in the log, between the batches around it
/// (it was listed after the segment's last batch).
#[test]
fn a_flipped_byte_in_a_log_and_in_an_index_are_each_reported_and_dumped_in_place() {
    let dir = make_data_dir(40);
    let data = dir.path().to_str().unwrap();
    let segments = logs(dir.path(), "events", 0);
    let (log, index) = (&segments[0], segments[1].with_extension("index"));
    let len = fs::metadata(log).unwrap().len() as usize;
    flip(log, len / 2);
    flip(&index, 5); // the position of the first entry
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let damaged: Vec<&str> = stdout.lines().filter(|l| l.starts_with("DAMAGED ")).collect();
    assert_eq!(damaged.len(), 2, "{}", text(&out));
    assert!(damaged.iter().any(|l| l.starts_with(&format!("DAMAGED {} at byte ", log.display()))), "{damaged:?}");
    assert!(damaged.iter().any(|l| l.starts_with(&format!("DAMAGED {} at byte 0: ", index.display()))), "{damaged:?}");

    let out = cairn(&["dump", "--data-dir", data, "--topic", "events", "--partition", "0", "--no-indexes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let at = lines.iter().position(|l| l.starts_with("DAMAGED bytes ")).unwrap_or_else(|| panic!("{stdout}"));
    let range = lines[at].trim_start_matches("DAMAGED bytes ").split(':').next().unwrap();
    let (start, end) = range.split_once("..").unwrap();
    assert!(lines[at - 1].starts_with("batch at byte "), "a batch before the damage:\n{stdout}");
    assert!(lines[at + 1].starts_with(&format!("batch at byte {end}:")), "the batch after it next:\n{stdout}");
    assert!(start.parse::<usize>().unwrap() <= len / 2 && len / 2 < end.parse().unwrap(), "{}", lines[at]);
}

#[test]
fn damaged_index_is_reported_and_rebuilt() {
    let dir = make_data_dir(40);
    let data = dir.path().to_str().unwrap();
    let first = logs(dir.path(), "events", 0).remove(0);
    let index = first.with_extension("index");
    let bytes = fs::read(&index).unwrap();
    assert!(bytes.len() >= 8, "a sealed 8 KiB segment has index entries");
    // Point the first entry one byte after its batch start.
    let mut damaged = bytes.clone();
    damaged[4] = damaged[4].wrapping_add(1);
    fs::write(&index, &damaged).unwrap();
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let expected = format!("DAMAGED {} at byte 0: [index]", index.display());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected), "expected {expected:?} in\n{}", text(&out));

    let out = cairn(&["verify", "--data-dir", data, "--repair"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fs::read(&index).unwrap(), bytes, "rebuilt index equals the engine's");

    // A time-index entry whose timestamp disagrees with its batch; and garbage after the end.
    let timeindex = first.with_extension("timeindex");
    let time_bytes = fs::read(&timeindex).unwrap();
    let mut damaged = time_bytes.clone();
    damaged[0] ^= 0x01;
    damaged.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    fs::write(&timeindex, &damaged).unwrap();
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first_entry = format!("DAMAGED {} at byte 0: [time index]", timeindex.display());
    let stray = format!("DAMAGED {} at byte {}: [time index]", timeindex.display(), time_bytes.len() + 12);
    assert!(stdout.contains(&first_entry) && stdout.contains(&stray), "{}", text(&out));
    let out = cairn(&["verify", "--data-dir", data, "--repair"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fs::read(&timeindex).unwrap(), time_bytes, "rebuilt time index equals the engine's");
}

#[test]
fn offline_commands_refuse_a_locked_dir() {
    let dir = make_data_dir(2);
    let data = dir.path().to_str().unwrap();
    let catalog = Catalog::open(dir.path(), CatalogOptions::default()).expect("open catalog");
    for args in [
        vec!["verify", "--data-dir", data],
        vec!["dump", "--data-dir", data],
        vec!["compact", "--data-dir", data, "--topic", "events"],
    ] {
        let out = cairn(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("is in use") && stderr.contains(data), "{args:?}: {}", text(&out));
    }
    close_catalog(catalog);
}

#[test]
fn offline_compact_then_reopen_and_read() {
    use cairn_storage::{BatchBuilder, CleanupPolicy, DecodedBatch, TopicConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut latest = std::collections::BTreeMap::new();
    {
        let catalog = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
        let cfg = TopicConfig { cleanup_policy: CleanupPolicy::Compact, segment_bytes: 4096, ..TopicConfig::default() };
        let p = catalog.create_topic("kv", cfg).unwrap().partition(0).unwrap();
        for round in 0..15 {
            for k in 0..8 {
                let mut b = BatchBuilder::new();
                let value = format!("{round}-{}", "v".repeat(300));
                b.push(Some(format!("k{k}").as_bytes()), Some(value.as_bytes()), []);
                let a = p.append(b.finish(0, 0).unwrap()).unwrap();
                latest.insert(format!("k{k}"), (a.base_offset, value));
            }
        }
        close_catalog(catalog);
    }
    let data = dir.path().to_str().unwrap();
    let out = cairn(&["compact", "--data-dir", data, "--topic", "kv", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("compact --json is JSON");
    assert_eq!(stats["messages_before"], 120);
    assert!(stats["messages_after"].as_u64().unwrap() < 120, "{stats}");
    assert!(stats["segments_after"].as_u64().unwrap() < stats["segments_before"].as_u64().unwrap(), "{stats}");

    let out = cairn(&["compact", "--data-dir", data, "--topic", "kv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("compacted topic kv"), "{}", text(&out));
    let out = cairn(&["compact", "--data-dir", data, "--topic", "missing"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no topic missing"), "{}", text(&out));
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(0), "compacted data verifies: {}", text(&out));

    let catalog = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
    assert!(catalog.opened_clean(), "offline compact closes the directory cleanly");
    let p = catalog.topic("kv").unwrap().partition(0).unwrap();
    for (key, (offset, value)) in &latest {
        let read = p.read(*offset, 1).unwrap();
        let batch = DecodedBatch::new(&read.batches[0].bytes).unwrap();
        let rec =
            batch.collect_checked().unwrap().into_iter().find(|r| r.offset == *offset).expect("latest value kept");
        assert_eq!(rec.key, Some(key.as_bytes()));
        assert_eq!(rec.value, Some(value.as_bytes()));
    }
    close_catalog(catalog);
}

#[test]
fn dump_json_parses_and_shows_records() {
    let dir = make_data_dir(3);
    let data = dir.path().to_str().unwrap();
    let out = cairn(&["dump", "--data-dir", data, "--records", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).expect("dump --json is JSON");
    let topics = dump["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 2);
    let small = topics.iter().find(|t| t["name"] == "small").unwrap();
    let record = &small["partitions"][0]["segments"][0]["batches"][0]["records"][0];
    assert_eq!(record["value"], "hello");
    assert_eq!(record["key"], serde_json::Value::Null);
    let events = topics.iter().find(|t| t["name"] == "events").unwrap();
    let batch = &events["partitions"][1]["segments"][0]["batches"][1];
    assert_eq!(batch["base_offset"], 5);
    assert_eq!(batch["records"][4]["headers"]["trace"], "abc");

    let out = cairn(&["dump", "--data-dir", data, "--topic", "small", "--records"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("value hello"), "{}", text(&out));
}

#[test]
fn usage_errors_exit_2() {
    let out = cairn(&["verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = cairn(&["produce", "t", "--header", "novalue", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // An offset is one partition's position: it applied to every partition, and the first one
    // shorter than it ended the read (416) before the others were read.
    let out = cairn(&["consume", "t", "--offset", "5"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--partition"), "{}", text(&out));
    let out = cairn(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));
}

#[test]
fn every_command_has_help_with_examples() {
    let commands: [&[&str]; 20] = [
        &["topics"],
        &["topics", "create"],
        &["topics", "list"],
        &["topics", "describe"],
        &["topics", "alter"],
        &["tail"],
        &["topics", "delete"],
        &["produce"],
        &["consume"],
        &["groups"],
        &["groups", "list"],
        &["groups", "describe"],
        &["groups", "config"],
        &["groups", "reset"],
        &["groups", "delete"],
        &["compact"],
        &["verify"],
        &["dump"],
        &["bench"],
        &[],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = cairn(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Example"), "{args:?} --help has no example:\n{help}");
        assert!(help.contains(&format!("cairn {}", cmd.join(" "))), "{args:?}: an example of this command:\n{help}");
        // The options every command takes come after the command's own, under their heading.
        let global = help.find("Global options:").unwrap_or_else(|| panic!("{args:?}: no global options:\n{help}"));
        assert!(help[global..].contains("--url <URL>"), "{args:?}:\n{help}");
        if let Some(own) = help.find("Options:") {
            assert!(own < global && !help[own..global].contains("--url <URL>"), "{args:?}:\n{help}");
        }
    }
    let compact = String::from_utf8_lossy(&cairn(&["compact", "--help"]).stdout).into_owned();
    assert!(compact.contains("--topic <TOPIC>"), "{compact}");
    let create = String::from_utf8_lossy(&cairn(&["topics", "create", "--help"]).stdout).into_owned();
    for default in ["[server default: 1]", "[server default: 604800000, 7 days]", "[server default: always]"] {
        assert!(create.contains(default), "{default}:\n{create}");
    }
}

/// A server that is not there is one line naming it and the cause (reqwest's wrapping, which
/// repeated the URL three times, left out), exit 1. A bare HOST:PORT is an http URL, as
/// `cairnd --listen` takes it; a URL that does not parse is a usage error (2).
#[test]
fn an_unreachable_server_is_one_clear_error_and_exit_1() {
    for url in ["http://127.0.0.1:1", "127.0.0.1:1", "http://127.0.0.1:1/"] {
        let out = cairn(&["--url", url, "topics", "list"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: cannot reach the server at http://127.0.0.1:1: connection refused"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("error sending request"), "{stderr}");
    }
    for url in ["http://[::1", "ftp://127.0.0.1:7420", "http://"] {
        let out = cairn(&["--url", url, "topics", "list"]);
        assert_eq!(out.status.code(), Some(2), "{url}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: --url"), "{}", text(&out));
    }
}

/// `cairn dump | head` (or any reader that stops early) ends cairn quietly with status 0, as
/// it does a C tool; before, the closed pipe was a Rust panic with a backtrace on stderr.
#[test]
fn a_reader_that_stops_early_ends_cairn_quietly() {
    let dir = make_data_dir(200);
    let child = {
        let _guard = fork_guard();
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["dump", "--records", "--data-dir"])
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run cairn")
    };
    let mut child = child;
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("read a line");
    assert!(first.starts_with("topic "), "{first}");
    drop(stdout); // far more than a pipe's buffer is still to come
    let out = child.wait_with_output().expect("wait cairn");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing on stderr");
}

/// Zeros from the last batch to the end of a log are the zero-filled space a crash leaves
/// ahead of the active segment's data (docs/FORMAT.md §2.1): a note, not damage; `dump`
/// shows them. A bad batch before zeros is still a torn tail.
#[test]
fn zero_filled_tail_is_noted_not_damage() {
    let dir = make_data_dir(40);
    let data = dir.path().to_str().unwrap();
    fs::remove_file(dir.path().join(".clean-shutdown")).expect("the catalog closed cleanly");
    let last = logs(dir.path(), "events", 0).pop().unwrap();
    let good_len = fs::metadata(&last).unwrap().len();
    append_garbage(&last, &[0; 3000]);

    let out = cairn(&["verify", "--data-dir", data, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["ok"], true);
    let note = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["file"] == last.display().to_string())
        .unwrap_or_else(|| panic!("no note on the zero tail: {report}"));
    assert!(note["message"].as_str().unwrap().contains("3000 zero byte(s)"), "{note}");
    let records: u64 = report["partitions"].as_array().unwrap().iter().map(|p| p["records"].as_u64().unwrap()).sum();
    assert_eq!(records, 2 * 40 * 5 + 1);

    let out = cairn(&["dump", "--data-dir", data, "--topic", "events", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let seg = dump["topics"][0]["partitions"][0]["segments"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(seg["zero_tail"], serde_json::json!({"position": good_len, "bytes": 3000}));
    assert_eq!(seg["damage"], serde_json::json!([]));
    let out = cairn(&["dump", "--data-dir", data, "--topic", "events", "--no-indexes"]);
    let expected = format!("zero-filled tail bytes {good_len}..{}", good_len + 3000);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected), "{}", text(&out));

    // The engine cuts the zeros at open.
    let catalog = Catalog::open(dir.path(), CatalogOptions::default()).expect("open");
    assert_eq!(catalog.topic("events").unwrap().partition(0).unwrap().end_offset(), 200);
    close_catalog(catalog);
    assert_eq!(fs::metadata(&last).unwrap().len(), good_len);

    // A torn batch, then zeros: a torn tail.
    fs::remove_file(dir.path().join(".clean-shutdown")).unwrap();
    append_garbage(&last, &[0x5a; 30]);
    append_garbage(&last, &[0; 3000]);
    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let expected = format!("DAMAGED {} at byte {good_len}: [torn tail]", last.display());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected), "expected {expected:?} in\n{}", text(&out));
    let out = cairn(&["verify", "--data-dir", data, "--repair"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fs::metadata(&last).unwrap().len(), good_len);
}

/// A power-loss tail (damage followed by a valid batch in a partition's last segment after
/// an unclean shutdown, docs/FORMAT.md §6): `verify` reports it as such, `--repair` cuts it
/// as the server's open would, keeping the bytes in a quarantine file; `verify` then notes
/// that file (not a failure) and `dump` shows it, batch by batch, after the segments.
#[test]
fn power_loss_tail_is_cut_into_a_quarantine_file_that_verify_notes_and_dump_shows() {
    let dir = make_data_dir(40);
    let data = dir.path().to_str().unwrap();
    fs::remove_file(dir.path().join(".clean-shutdown")).expect("the catalog closed cleanly");
    let last = logs(dir.path(), "events", 0).pop().unwrap();
    let mut batches = Vec::new();
    let mut log = cairn_storage::inspect::LogFile::open(&last).unwrap();
    cairn_storage::inspect::scan_segment(&mut log, 0, false, |pos, _, h| batches.push((pos, h.base_offset))).unwrap();
    assert!(batches.len() >= 3, "the last segment holds several batches");
    let (pos, lost_from) = batches[batches.len() - 3];
    // The header of a batch gone to zeros (a page never written), two valid batches after it.
    let mut bytes = fs::read(&last).unwrap();
    bytes[pos as usize..pos as usize + 40].fill(0);
    fs::write(&last, &bytes).unwrap();

    let out = cairn(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let expected = format!("DAMAGED {} at byte {pos}: [power-loss tail]", last.display());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected), "expected {expected:?} in\n{}", text(&out));

    let out = cairn(&["verify", "--data-dir", data, "--repair"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fs::metadata(&last).unwrap().len(), pos);
    let quarantine = cairn_storage::inspect::cut_file_path(&last, pos, 1);
    assert_eq!(fs::read(&quarantine).unwrap(), &bytes[pos as usize..], "the cut bytes are kept");

    let out = cairn(&["verify", "--data-dir", data, "--json"]);
    assert_eq!(out.status.code(), Some(0), "a quarantine file is a note, not a failure: {}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let note = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["file"] == quarantine.display().to_string())
        .unwrap_or_else(|| panic!("no note on the quarantine file: {report}"));
    assert!(note["message"].as_str().unwrap().contains("quarantine file"), "{note}");

    let out = cairn(&["dump", "--data-dir", data, "--topic", "events", "--partition", "0", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let cut = &dump["topics"][0]["partitions"][0]["quarantine_files"][0];
    assert_eq!(cut["cut_at_position"], pos, "{dump}");
    assert_eq!(cut["bytes"], bytes.len() as u64 - pos);
    let offsets: Vec<u64> =
        cut["batches"].as_array().unwrap().iter().map(|b| b["base_offset"].as_u64().unwrap()).collect();
    assert_eq!(
        offsets,
        vec![batches[batches.len() - 2].1, batches[batches.len() - 1].1],
        "the valid batches past the damage"
    );
    assert_eq!(cut["damage"][0]["position"], 0);
    let out = cairn(&["dump", "--data-dir", data, "--topic", "events", "--partition", "0", "--no-indexes"]);
    let expected = format!("quarantine file {}", quarantine.display());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected), "{}", text(&out));

    // The engine opens it: the log ends at the damaged batch, the quarantine file stays.
    let catalog = Catalog::open(dir.path(), CatalogOptions::default()).expect("open");
    assert_eq!(catalog.topic("events").unwrap().partition(0).unwrap().end_offset(), lost_from);
    close_catalog(catalog);
    assert!(quarantine.exists());
}

/// `dump --partition`/`--segment` that match nothing are an error naming what was asked for
/// (they printed the topic headers and nothing else, exit 0, as if the partition were empty).
#[test]
fn dump_of_a_partition_or_segment_that_does_not_exist_is_an_error() {
    let dir = make_data_dir(1);
    let data = dir.path().to_str().unwrap();
    let out = cairn(&["dump", "--data-dir", data, "--topic", "events", "--partition", "7"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: no partition 7 in topic events"),
        "{}",
        text(&out)
    );
    let out = cairn(&["dump", "--data-dir", data, "--segment", "12345"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no segment with base offset 12345"), "{}", text(&out));
    let out = cairn(&["dump", "--data-dir", data, "--topic", "small", "--partition", "0", "--segment", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("batch at byte 0"), "{}", text(&out));
}

/// `cairn compact --data-dir data` (a bare relative name, run from the directory holding it)
/// works: the storage engine's open failed on it ("open directory : No such file or
/// directory", fsyncing the parent "" of a one-component path; `fsutil::create_dir_durable`
/// takes the current directory as that parent now).
#[test]
fn offline_compact_takes_a_bare_relative_data_dir() {
    let dir = make_data_dir(4);
    let (parent, name) = (dir.path().parent().expect("parent"), dir.path().file_name().expect("name"));
    let child = {
        let _guard = fork_guard();
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .current_dir(parent)
            .args(["compact", "--topic", "events", "--data-dir"])
            .arg(name)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run cairn")
    };
    let out = child.wait_with_output().expect("wait cairn");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("compacted topic events"), "{}", text(&out));
}
