//! Starting the real `cairnd` for the online CLI tests.
//!
//! The binary is `cairn_tests::cairnd_bin()` (the e2e harness's: `CAIRND_BIN` if set, else
//! built once per test process into this test's target directory). It is started on a free
//! loopback port with a temporary data directory; readiness is its `cairnd listening on
//! <addr>` line on stdout (no sleeps). Killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const READY_PREFIX: &str = "cairnd listening on ";

pub use cairn_tests::cairnd_bin;

/// A running `cairnd` with its own data directory.
pub struct Server {
    child: Child,
    pub url: String,
    pub data: tempfile::TempDir,
}

impl Server {
    /// Starts `cairnd` and waits for its ready line.
    pub fn start() -> Server {
        Self::start_with(&[], false)
    }

    /// Starts `cairnd` with extra flags; `https` when they turn TLS on (the URL is then
    /// `https://localhost:<port>`).
    pub fn start_with(args: &[&std::ffi::OsStr], https: bool) -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(cairnd_bin())
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cairnd");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix(READY_PREFIX) {
                        break addr.trim().to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("cairnd exited before printing its ready line: {:?}", child.wait());
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let url = match addr.rsplit_once(':') {
            Some((_, port)) if https => format!("https://localhost:{port}"),
            _ => format!("http://{addr}"),
        };
        Server { child, url, data }
    }
}

impl Server {
    /// Stops the server with SIGTERM (a clean shutdown) and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        self.child.wait().expect("wait for cairnd")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
