//! Disk full: `507 insufficient_storage`, nothing acknowledged lost, reads keep working, and
//! produces work again once space returns.
//!
//! Needs a small filesystem: the test mounts a 16 MiB tmpfs, which takes root (or
//! CAP_SYS_ADMIN). It is ignored by default; run it with
//! `cargo test -p cairn-tests --test disk_full -- --ignored` where that is available.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_tests::*;

/// A tmpfs mounted for the test, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr));
        SmallFs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test]
#[ignore = "mounts a tmpfs: needs root; run with --ignored"]
async fn a_full_disk_is_507_loses_nothing_and_recovers_when_space_returns() {
    let fs = SmallFs::mount("16m");
    let ballast: PathBuf = fs.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 6 * 1024 * 1024]).unwrap();
    let data = fs.path().join("data");
    let mut s = Cairnd::builder().data_dir(&data).start().await;
    s.create_topic("full", json!({"segment_bytes": 1048576})).await;
    let value = "f".repeat(100 * 1024);
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..400u64 {
        let r = s.produce_raw("full", json!([{ "value": format!("{i}-{value}") }])).await;
        if r.status == 200 {
            let o = r.json()["offsets"][0]["offset"].as_u64().unwrap();
            acked.push(Acked::value_only(0, o, serde_json::to_vec(&json!(format!("{i}-{value}"))).unwrap()));
        } else {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("16 MiB filled without a refusal");
    r.expect_error(507, "insufficient_storage");
    assert!(acked.len() > 10, "only {} messages fit", acked.len());
    // Reads keep working and everything acknowledged is there.
    s.get("/v1/health").await.expect_status(200);
    verify_acked(&s, "full", 1, &acked).await;
    // Still full: still refused, nothing half-written.
    let end = s.end_offset("full", 0).await;
    let r = s.produce_raw("full", json!([{ "value": value }])).await;
    r.expect_error(507, "insufficient_storage");
    assert_eq!(s.end_offset("full", 0).await, end);
    // Space returns: produces work again, at the next offset.
    std::fs::remove_file(&ballast).unwrap();
    let offs = s.produce("full", json!([{ "value": "after" }])).await;
    assert_eq!(offs[0]["offset"], json!(end));
    acked.push(Acked::value_only(0, end, b"\"after\"".to_vec()));
    // And it all survives a restart.
    s.restart().await;
    verify_acked(&s, "full", 1, &acked).await;
    drop(s);
    drop(fs);
}
