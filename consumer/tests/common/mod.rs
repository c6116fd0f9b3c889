//! Test helper: starts a real `cairnd` on a free port with a temporary data directory.
//!
//! The binary is `cairn_tests::cairnd_bin()` (the e2e harness's: `CAIRND_BIN` if set, else
//! built once per test process into this test's target directory). The child is killed when
//! dropped.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use cairn_consumer::Client;
use cairn_tests::cairnd_bin;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const READY_PREFIX: &str = "cairnd listening on ";

/// A running `cairnd`.
pub struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    pub base_url: String,
}

impl Server {
    /// Starts a server and waits for its ready line.
    pub async fn start() -> Server {
        Self::start_with(&[], false).await
    }

    /// Starts a server with extra flags; `https` when they turn TLS on (the base URL is then
    /// `https://localhost:<port>`).
    pub async fn start_with(args: &[&std::ffi::OsStr], https: bool) -> Server {
        let dir = tempfile::Builder::new().prefix("cairn-consumer-").tempdir().unwrap();
        let mut cmd = Command::new(cairnd_bin());
        cmd.arg("--listen").arg("127.0.0.1:0").arg("--data-dir").arg(dir.path()).args(args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CAIRN_") {
                cmd.env_remove(k);
            }
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Reading stdout until the ready line is the wait; the timeout only bounds a hang.
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix(READY_PREFIX) {
                    return rest.trim().to_string();
                }
            }
            panic!("cairnd exited before it was ready");
        })
        .await
        .expect("cairnd ready line");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base_url = match addr.rsplit_once(':') {
            Some((_, port)) if https => format!("https://localhost:{port}"),
            _ => format!("http://{addr}"),
        };
        Server { child, _dir: dir, base_url }
    }

    /// A client of this server.
    pub fn client(&self) -> Client {
        Client::new(self.base_url.clone()).unwrap()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
