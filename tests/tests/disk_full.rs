//! Disk full, end to end: produce fills a small file system until `507
//! insufficient_storage`; nothing acknowledged is lost, reads keep working, a refused
//! produce changes nothing; deleting another topic frees space and produces resume at the
//! next offset; everything survives a restart.
//!
//! The small file system is a 16 MiB tmpfs the test mounts (and unmounts, whatever
//! happens). Mounting takes root (CAP_SYS_ADMIN); without it the test re-runs itself in a
//! new user and mount namespace (`unshare -rm`), where an unprivileged user may mount a
//! tmpfs. Where neither is allowed it prints why it is skipped (to the real stderr, so the
//! message shows even when test output is captured) and passes without checking anything.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use cairn_tests::*;

const TEST_NAME: &str = "a_full_disk_is_507_loses_nothing_and_recovers_when_space_is_freed";
/// Set in the re-run inside `unshare -rm`: mount there, or fail.
const INNER_ENV: &str = "CAIRN_DISK_FULL_IN_NAMESPACE";
/// `mount` (only try the direct mount), `unshare` (only the namespace), unset: both.
const VIA_ENV: &str = "CAIRN_DISK_FULL_VIA";

/// A tmpfs mounted on a temp dir, unmounted on drop (before the dir is removed).
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Result<SmallFs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs: {}", one_line(&String::from_utf8_lossy(&out.stderr))));
        }
        Ok(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(self.dir.path()).status().is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file open (a cairnd that outlived a panic): detach it.
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints to the process's real stderr, which libtest does not capture.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Re-runs this test inside `unshare -rm`. `Ok(true)`: it ran and passed there;
/// `Ok(false)`: namespaces are not allowed here; `Err`: it ran and failed.
fn run_in_namespace() -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new("unshare")
        .args(["-r", "-m", "--"])
        .arg(exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, "1")
        // Built out here: cargo need not run inside the namespace.
        .env("CAIRND_BIN", cairnd_bin())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            say(&format!("disk_full: cannot run unshare: {e}"));
            return Ok(false);
        }
    };
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        return Ok(true);
    }
    if !stdout.contains("running 1 test") {
        // The test never started: unshare itself was refused.
        say(&format!("disk_full: unshare -rm is not allowed here: {}", one_line(&stderr)));
        return Ok(false);
    }
    Err(format!("the test failed inside unshare -rm:\n{stdout}\n{stderr}"))
}

#[tokio::test]
async fn a_full_disk_is_507_loses_nothing_and_recovers_when_space_is_freed() {
    let inner = std::env::var_os(INNER_ENV).is_some();
    let via = std::env::var(VIA_ENV).unwrap_or_default();
    let direct = if via == "unshare" && !inner {
        Err("skipped (CAIRN_DISK_FULL_VIA=unshare)".into())
    } else {
        SmallFs::mount("16m")
    };
    let fs = match direct {
        Ok(fs) => fs,
        Err(e) if inner => panic!("mount inside unshare -rm failed: {e}"),
        Err(e) => {
            if via != "mount" {
                match run_in_namespace() {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(failure) => panic!("{failure}"),
                }
            }
            let ns = if via == "mount" { "user namespace not tried" } else { "no user namespace either" };
            say(&format!(
                "SKIPPED disk_full::{TEST_NAME}: no small file system to fill ({e}; {ns}). Run as \
                 root, or where unprivileged user namespaces are allowed."
            ));
            return;
        }
    };
    fill_free_and_recover(&fs).await;
    drop(fs);
}

async fn fill_free_and_recover(fs: &SmallFs) {
    let data = fs.path().join("data");
    let mut s = Cairnd::builder().data_dir(&data).start().await;
    let value = "f".repeat(100 * 1024);
    // Another topic holding ~3 MiB: deleting it is how space comes back.
    s.create_topic("other", json!({"segment_bytes": 1048576})).await;
    for i in 0..30 {
        s.produce("other", json!([{ "value": format!("o{i}-{value}") }])).await;
    }
    s.create_topic("full", json!({"segment_bytes": 1048576})).await;
    let mut acked = Vec::new();
    let first = produce_until_full(&s, &mut acked, 0, &value).await;
    assert!(first > 10, "only {first} messages fit");
    // Reads keep working and everything acknowledged is there.
    s.get("/v1/health").await.expect_status(200);
    verify_acked(&s, "full", 1, &acked).await;
    // Still full: still refused, nothing half-written, the end offset unchanged.
    let end = s.end_offset("full", 0).await;
    for _ in 0..3 {
        s.produce_raw("full", json!([{ "value": value }])).await.expect_error(507, "insufficient_storage");
    }
    assert_eq!(s.end_offset("full", 0).await, end);
    // Space returns (an operator deletes a topic): produces resume at the next offset.
    s.delete(&format!("/v1/topics/{}", enc("other"))).await.expect_status(204);
    let offs = s.produce("full", json!([{ "value": "after" }])).await;
    assert_eq!(offs[0]["offset"], json!(end));
    acked.push(Acked::value_only(0, end, b"\"after\"".to_vec()));
    // And the freed space fills up again the same way.
    let second = produce_until_full(&s, &mut acked, 1000, &value).await;
    assert!(second > 10, "only {second} messages fit in the freed space");
    verify_acked(&s, "full", 1, &acked).await;
    // Everything acknowledged survives a restart (on the full disk), and the log ends
    // exactly after the last acknowledged message.
    s.restart().await;
    verify_acked(&s, "full", 1, &acked).await;
    assert_eq!(s.end_offset("full", 0).await, acked.len() as u64);
    // Small synced appends (the active segment then writes into zero-filled space ahead of
    // its data, docs/FORMAT.md §2.1): the zero-filling meets the full disk too.
    s.delete(&format!("/v1/topics/{}", enc("full"))).await.expect_status(204);
    small_batches_until_full(&mut s).await;
    drop(s);
}

/// Fills the disk with batches of 100 small messages (group commits far below the zero-fill
/// threshold) until a `507`; then checks nothing acknowledged is lost, a refused batch
/// changes nothing, and all of it survives a crash (SIGKILL) and a restart on the full disk.
async fn small_batches_until_full(s: &mut Cairnd) {
    s.create_topic("small", json!({"segment_bytes": 1048576, "sync": "always"})).await;
    let mut acked = Vec::new();
    let mut full = false;
    for b in 0..2000u64 {
        let values: Vec<String> = (0..100).map(|i| format!("s{b}-{i}-{}", "z".repeat(120))).collect();
        let batch: Vec<Value> = values.iter().map(|v| json!({ "value": v })).collect();
        let r = s.produce_raw("small", Value::Array(batch)).await;
        if r.status != 200 {
            r.expect_error(507, "insufficient_storage");
            full = true;
            break;
        }
        for (o, v) in r.json()["offsets"].as_array().unwrap().iter().zip(&values) {
            let o = o["offset"].as_u64().unwrap();
            acked.push(Acked::value_only(0, o, serde_json::to_vec(&json!(v)).unwrap()));
        }
    }
    assert!(full, "16 MiB filled with small batches without a 507");
    assert!(acked.len() > 10_000, "only {} small messages fit", acked.len());
    let end = s.end_offset("small", 0).await;
    assert_eq!(end, acked.len() as u64);
    // The same batch again is refused again and changes nothing (a smaller one may still fit).
    let again: Vec<Value> = (0..100).map(|i| json!({ "value": format!("again-{i}-{}", "z".repeat(120)) })).collect();
    for _ in 0..3 {
        s.produce_raw("small", Value::Array(again.clone())).await.expect_error(507, "insufficient_storage");
    }
    assert_eq!(s.end_offset("small", 0).await, end);
    verify_acked(s, "small", 1, &acked).await;
    s.sigkill().await;
    s.start_again().await;
    verify_acked(s, "small", 1, &acked).await;
    assert_eq!(s.end_offset("small", 0).await, end, "the log ends after the last acknowledged message");
}

/// Produces one message at a time to `full` until a `507`; returns how many were
/// acknowledged (each recorded in `acked`).
async fn produce_until_full(s: &Cairnd, acked: &mut Vec<Acked>, from: u64, value: &str) -> u64 {
    for i in from..from + 400 {
        let v = format!("{i}-{value}");
        let r = s.produce_raw("full", json!([{ "value": v }])).await;
        if r.status != 200 {
            r.expect_error(507, "insufficient_storage");
            return i - from;
        }
        let o = r.json()["offsets"][0]["offset"].as_u64().unwrap();
        acked.push(Acked::value_only(0, o, serde_json::to_vec(&json!(v)).unwrap()));
    }
    panic!("16 MiB filled without a 507");
}
