//! Durability under SIGKILL: every acknowledged message survives, in place, with no holes.

use cairn_tests::*;

const PARTITIONS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_six_concurrent_producers_loses_nothing_acknowledged() {
    let mut s = Cairnd::start().await;
    // Small segments so the log rolls while we crash it.
    s.create_topic("crashy", json!({"partitions": PARTITIONS, "segment_bytes": 16384})).await;
    let bodies = [Body::Json, Body::Json, Body::Ndjson, Body::Ndjson, Body::Records, Body::Records];
    let mut load = Load::start(&s, "crashy", PARTITIONS, &bodies);
    let mut previous_ends = vec![0; PARTITIONS as usize];
    for round in 0..3 {
        // Kill while the producers are in full flow: some hundreds acknowledged since the last round.
        let target = load.acked_count() + 1500;
        load.wait_for_acked(target).await;
        let status = s.sigkill().await;
        assert!(!status.success(), "round {round}: SIGKILL should not look like a clean exit");
        // Nothing more can be acknowledged now; this is the set that must survive.
        let acked = load.acked();
        s.start_again().await;
        load.server_restarted();
        let ends = verify_acked(&s, "crashy", PARTITIONS, &acked).await;
        eprintln!("round {round}: {} acknowledged before the kill; partition ends after restart {ends:?}", acked.len());
        for (p, (end, prev)) in ends.iter().zip(&previous_ends).enumerate() {
            assert!(end >= prev, "round {round}: partition {p} end went back from {prev} to {end}");
        }
        previous_ends = ends;
    }
    // Producers keep going on the recovered server; then a final check of everything.
    let target = load.acked_count() + 100;
    load.wait_for_acked(target).await;
    let acked = load.stop().await;
    let producers: std::collections::BTreeSet<usize> = acked.iter().map(|a| a.producer).collect();
    assert_eq!(producers.len(), 6, "every producer got messages acknowledged");
    verify_acked(&s, "crashy", PARTITIONS, &acked).await;
}

#[tokio::test]
async fn a_torn_tail_after_sigkill_is_cut_and_acknowledged_data_stays() {
    let mut s = Cairnd::start().await;
    s.create_topic("torn", json!({})).await;
    let offs = s.produce_n("torn", 0, 40, "t").await;
    assert_eq!(offs, (0..40).collect::<Vec<_>>());
    s.sigkill().await;
    // A write that was cut short: half a batch header of garbage after the last batch.
    let mut segs = Vec::new();
    let mut stack = vec![s.data_dir().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "log") && e.path().to_string_lossy().contains("torn") {
                segs.push(e.path());
            }
        }
    }
    segs.sort();
    let active = segs.last().expect("a segment file");
    let len = std::fs::metadata(active).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(active).unwrap();
    std::io::Write::write_all(&mut f, &[0x17, 0, 0, 0, 0, 0, 0, 0, 0x99, 0x01, 0, 0, 1, 0xde, 0xad]).unwrap();
    drop(f);
    assert!(std::fs::metadata(active).unwrap().len() > len);
    s.start_again().await;
    let acked: Vec<Acked> = (0..40).map(|i| Acked::value_only(0, i, format!("\"t-{i}\""))).collect();
    let ends = verify_acked(&s, "torn", 1, &acked).await;
    assert_eq!(ends, vec![40], "the torn tail is not a message");
    // Appends go on at the next offset.
    let next = s.produce_n("torn", 0, 2, "after").await;
    assert_eq!(next, vec![40, 41]);
    assert_eq!(s.read("torn", 0, "offset=40").await["messages"][1]["value"], json!("after-1"));
}

/// A power loss (simulated after a SIGKILL: docs/FORMAT.md §6) that left the last, unsynced
/// write run torn out of order: its first batch's page never written (zeros), later batches
/// persisted. `cairnd` starts (it used to refuse), keeps every acknowledged message, moves the
/// cut bytes to a quarantine file, says so in its log, and appends go on at the next offset.
#[tokio::test]
async fn a_power_loss_tail_after_a_crash_is_quarantined_and_cairnd_starts() {
    let mut s = Cairnd::start().await;
    s.create_topic("pl", json!({})).await;
    let offs = s.produce_n("pl", 0, 40, "t").await;
    assert_eq!(offs, (0..40).collect::<Vec<_>>());
    s.sigkill().await;
    let part = s.data_dir().join("topics").join("pl").join("0");
    let active = part.join(format!("{}.log", cairn_storage::segment_stem(0)));
    let mut log = cairn_storage::inspect::LogFile::open(&active).unwrap();
    let scan = cairn_storage::inspect::scan_segment(&mut log, 0, false, |_, _, _| {}).unwrap();
    assert_eq!((scan.next_offset, scan.damage.len()), (40, 0));
    // The in-flight run: offsets 40..46 written after the data, then the first one's header zeroed.
    let end = scan.good_len;
    let mut run = Vec::new();
    for offset in 40..46u64 {
        let mut b = cairn_storage::BatchBuilder::new();
        b.push(None, Some(format!("\"unacked-{offset}\"").as_bytes()), []);
        run.extend(b.finish(offset, now_ms()).unwrap());
    }
    run[..60].fill(0);
    let f = std::fs::OpenOptions::new().write(true).open(&active).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &run, end).unwrap();
    drop(f);
    s.start_again().await;
    let acked: Vec<Acked> = (0..40).map(|i| Acked::value_only(0, i, format!("\"t-{i}\""))).collect();
    let ends = verify_acked(&s, "pl", 1, &acked).await;
    assert_eq!(ends, vec![40], "the log ends at the damaged batch");
    let quarantine = cairn_storage::inspect::cut_file_path(&active, end, 1);
    let kept = std::fs::read(&quarantine).expect("the quarantine file");
    assert_eq!(kept[..run.len()], run[..], "the cut bytes are kept (zero-filled space may follow)");
    assert!(s.logs().contains("power-loss tail"), "logged: {}", s.logs());
    let next = s.produce_n("pl", 0, 2, "after").await;
    assert_eq!(next, vec![40, 41]);
    assert_eq!(s.read("pl", 0, "offset=40").await["messages"][1]["value"], json!("after-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_interval_topics_survive_a_process_crash() {
    // `sync: {"interval_ms": N}` replies once the write reaches the OS: a process crash
    // (unlike a power loss) must not lose anything acknowledged.
    let mut s = Cairnd::start().await;
    s.create_topic("lazy", json!({"partitions": 2, "sync": {"interval_ms": 60000}})).await;
    let mut load = Load::start(&s, "lazy", 2, &[Body::Json, Body::Records, Body::Ndjson, Body::Json]);
    for _ in 0..2 {
        let target = load.acked_count() + 1000;
        load.wait_for_acked(target).await;
        s.sigkill().await;
        let acked = load.acked();
        s.start_again().await;
        load.server_restarted();
        verify_acked(&s, "lazy", 2, &acked).await;
    }
    let acked = load.stop().await;
    verify_acked(&s, "lazy", 2, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_reader_saw_before_a_crash_is_still_there_after_it() {
    let mut s = Cairnd::start().await;
    s.create_topic("seen", json!({"partitions": 1})).await;
    let mut load = Load::start(&s, "seen", 1, &[Body::Json, Body::Records, Body::Ndjson]);
    for round in 0..2 {
        // A follower long-polls from where it is, recording everything it is shown.
        let client = reqwest::Client::new();
        let base = s.base_url();
        let start = s.end_offset("seen", 0).await;
        let reader = tokio::spawn(async move {
            let mut seen: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut next = start;
            loop {
                let url =
                    format!("{base}{}", read_path("seen", 0, &format!("offset={next}&wait_ms=1000&encoding=base64")));
                let Ok(resp) = client.get(url).send().await else { break };
                if resp.status() != 200 {
                    break;
                }
                let Ok(body) = resp.bytes().await else { break };
                let body: Value = serde_json::from_slice(&body).unwrap();
                for m in body["messages"].as_array().unwrap() {
                    let o = m["offset"].as_u64().unwrap();
                    assert_eq!(o, next, "a follower sees offsets in order, without holes");
                    seen.push((o, value_bytes(m).unwrap()));
                    next = o + 1;
                }
            }
            seen
        });
        let target = load.acked_count() + 1000;
        load.wait_for_acked(target).await;
        s.sigkill().await;
        let seen = within(GENEROUS, reader).await.unwrap();
        assert!(!seen.is_empty(), "round {round}: the follower saw nothing");
        s.start_again().await;
        load.server_restarted();
        let stored = s.read_all("seen", 0).await;
        for (o, v) in &seen {
            let m = stored.get(*o as usize).unwrap_or_else(|| panic!("round {round}: offset {o} was seen, then lost"));
            assert_eq!(value_bytes(m).as_ref(), Some(v), "round {round}: offset {o} changed after the crash");
        }
    }
    let acked = load.stop().await;
    verify_acked(&s, "seen", 1, &acked).await;
}

#[tokio::test]
async fn topic_changes_acknowledged_before_a_sigkill_are_kept() {
    let mut s = Cairnd::start().await;
    s.create_topic("made", json!({"partitions": 2, "retention_ms": 1234})).await;
    s.create_topic("grown", json!({})).await;
    s.create_topic("gone", json!({})).await;
    s.produce_n("gone", 0, 5, "g").await;
    s.patch_json("/v1/topics/grown", &json!({"partitions": 4, "max_message_bytes": 5000})).await.expect_status(200);
    s.delete("/v1/topics/gone").await.expect_status(204);
    s.sigkill().await;
    s.start_again().await;
    let made = s.describe("made").await;
    assert_eq!(made["config"]["partitions"], json!(2));
    assert_eq!(made["config"]["retention_ms"], json!(1234));
    let grown = s.describe("grown").await;
    assert_eq!(grown["config"]["partitions"], json!(4));
    assert_eq!(grown["config"]["max_message_bytes"], json!(5000));
    assert_eq!(grown["partitions"].as_array().unwrap().len(), 4);
    s.get("/v1/topics/gone").await.expect_error(404, "topic_not_found");
}
