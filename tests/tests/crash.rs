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
    let acked: Vec<Acked> = (0..40)
        .map(|i| Acked { producer: 0, partition: 0, offset: i, value: format!("\"t-{i}\"").into_bytes() })
        .collect();
    let ends = verify_acked(&s, "torn", 1, &acked).await;
    assert_eq!(ends, vec![40], "the torn tail is not a message");
    // Appends go on at the next offset.
    let next = s.produce_n("torn", 0, 2, "after").await;
    assert_eq!(next, vec![40, 41]);
    assert_eq!(s.read("torn", 0, "offset=40").await["messages"][1]["value"], json!("after-1"));
}
