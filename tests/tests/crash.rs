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
