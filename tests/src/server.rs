//! Starting, signalling and restarting the real `cairnd` binary.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The line `cairnd` prints to stdout once it accepts requests, followed by the address.
pub const READY_PREFIX: &str = "cairnd listening on ";

/// How long a start may take before the harness gives up (a debug build on a busy 2-core
/// machine; this bounds a hang, it is not a performance assertion).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take before the harness gives up.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of the child's output kept for failure messages.
const LOG_KEEP_BYTES: usize = 256 * 1024;

/// Path of the `cairnd` binary: `CAIRND_BIN` if set, else the one in this test executable's
/// target profile directory, rebuilt once per test process so it is never stale.
pub fn cairnd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CAIRND_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test-exe>
        let deps = exe.parent().expect("test executable has a directory");
        let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") { deps.parent().unwrap() } else { deps };
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_string();
        let target_dir = profile_dir.parent().expect("target directory");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(workspace)
            .args(["build", "--quiet", "-p", "cairn-server", "--bin", "cairnd", "--target-dir"])
            .arg(target_dir);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("run cargo build for cairnd");
        assert!(status.success(), "cargo build -p cairn-server --bin cairnd failed: {status}");
        let bin = profile_dir.join("cairnd");
        assert!(bin.exists(), "{} does not exist after building", bin.display());
        bin
    })
}

/// Output of a child kept for failure messages (the tail of stdout and stderr, interleaved).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<VecDeque<u8>>>);

impl Logs {
    fn push_line(&self, line: &str) {
        let mut buf = self.0.lock().unwrap();
        buf.extend(line.as_bytes());
        buf.push_back(b'\n');
        while buf.len() > LOG_KEEP_BYTES {
            buf.pop_front();
        }
    }

    fn text(&self) -> String {
        let buf = self.0.lock().unwrap();
        let bytes: Vec<u8> = buf.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Copies `reader`'s lines into `logs` until it ends; the handle finishes at its end.
fn drain<R: AsyncRead + Unpin + Send + 'static>(reader: BufReader<R>, logs: Logs) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = reader.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            logs.push_line(&line);
        }
    })
}

/// How to start a `cairnd`: extra flags, environment, an existing data directory.
#[derive(Default)]
pub struct Builder {
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    current_dir: Option<PathBuf>,
}

impl Builder {
    /// Adds a command-line argument (after `--listen` and `--data-dir`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable for the child (`CAIRN_*` of the test's environment are
    /// never inherited).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Listens on `addr` instead of `127.0.0.1:0` (e.g. `0.0.0.0:0` for protected mode).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = Some(addr.into());
        self
    }

    /// Uses this data directory instead of a fresh temporary one (not removed on drop).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Runs the child in `dir` (a relative data directory is then relative to it).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Starts `cairnd` on a free loopback port and waits for its ready line. Panics (with the
    /// child's output) if it exits or stays silent instead.
    pub async fn start(self) -> Cairnd {
        match self.try_start().await {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// As [`Builder::start`], but returns the exit status and output of a child that exited
    /// before printing its ready line.
    pub async fn try_start(self) -> Result<Cairnd, StartError> {
        let (temp, data_dir) = match self.data_dir {
            Some(d) => (None, d),
            None => {
                let t = tempfile::Builder::new().prefix("cairn-e2e-").tempdir().expect("create temp data dir");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut c = Cairnd {
            child: None,
            temp,
            data_dir,
            addr: "127.0.0.1:0".parse().unwrap(),
            args: self.args,
            envs: self.envs,
            current_dir: self.current_dir,
            logs: Logs::default(),
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .expect("reqwest client"),
        };
        c.spawn(self.listen.as_deref().unwrap_or("127.0.0.1:0")).await?;
        Ok(c)
    }
}

/// A `cairnd` that exited (or hung) instead of becoming ready.
#[derive(Debug)]
pub struct StartError {
    pub status: Option<ExitStatus>,
    pub output: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "cairnd exited with {s} before it was ready; its output:\n{}", self.output),
            None => write!(f, "cairnd printed no ready line within {START_TIMEOUT:?}; its output:\n{}", self.output),
        }
    }
}

/// A running (or stopped) `cairnd` with its data directory. Killed with SIGKILL on drop.
pub struct Cairnd {
    child: Option<Child>,
    temp: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    addr: SocketAddr,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    logs: Logs,
    client: reqwest::Client,
}

impl Cairnd {
    /// Starts a `cairnd` with default flags and a fresh data directory.
    pub async fn start() -> Cairnd {
        Builder::default().start().await
    }

    /// A builder for a `cairnd` with extra flags or environment.
    pub fn builder() -> Builder {
        Builder::default()
    }

    async fn spawn(&mut self, listen: &str) -> Result<(), StartError> {
        assert!(self.child.is_none(), "cairnd is already running");
        let mut cmd = Command::new(cairnd_bin());
        cmd.arg("--listen").arg(listen).arg("--data-dir").arg(&self.data_dir).args(&self.args);
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CAIRN_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", cairnd_bin().display()));
        let stderr = drain(BufReader::new(child.stderr.take().unwrap()), self.logs.clone());
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let logs = self.logs.clone();
        // Reading stdout until the ready line appears is the wait; the timeout only bounds a hang.
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = stdout.next_line().await {
                logs.push_line(&line);
                if let Some(rest) = line.strip_prefix(READY_PREFIX) {
                    return Some(rest.trim().to_string());
                }
            }
            None
        })
        .await;
        match ready {
            Ok(Some(addr)) => {
                self.addr = addr.parse().unwrap_or_else(|e| panic!("ready line address {addr:?}: {e}"));
                drain(stdout.into_inner(), self.logs.clone());
                self.child = Some(child);
                Ok(())
            }
            Ok(None) => {
                let status = child.wait().await.ok();
                // What it printed last (why it exited) may still be in the pipe: read to its end.
                let _ = tokio::time::timeout(START_TIMEOUT, stderr).await;
                Err(StartError { status, output: self.logs.text() })
            }
            Err(_) => {
                let _ = child.kill().await;
                Err(StartError { status: None, output: self.logs.text() })
            }
        }
    }

    /// The address `cairnd` listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The HTTP client the helpers use.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Whether the child is running (started and not yet reaped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The tail of the child's stdout and stderr (for failure messages).
    pub fn logs(&self) -> String {
        self.logs.text()
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid().expect("cairnd is not running") as libc::pid_t;
        // SAFETY: kill(2) with the pid of our own unreaped child (it cannot have been reused).
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }

    /// Sends SIGKILL and reaps the child. Returns its exit status.
    pub async fn sigkill(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        let mut child = self.child.take().unwrap();
        child.wait().await.expect("wait for cairnd")
    }

    /// Sends `sig` (SIGTERM, SIGINT) and waits for the child to exit. Panics if it does not
    /// exit within 30 s (it is killed then).
    pub async fn stop_with(&mut self, sig: libc::c_int) -> ExitStatus {
        self.signal(sig);
        let mut child = self.child.take().unwrap();
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => status.expect("wait for cairnd"),
            Err(_) => {
                let _ = child.kill().await;
                panic!("cairnd did not exit within {STOP_TIMEOUT:?} of signal {sig}; output:\n{}", self.logs());
            }
        }
    }

    /// Sends SIGTERM and waits for the child to exit. Returns its exit status.
    pub async fn sigterm(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM).await
    }

    /// Starts the server again on the same address and data directory (after `sigkill` or
    /// `sigterm`; a running server is stopped with SIGTERM first). Returns the exit status
    /// of that SIGTERM, if one was sent.
    pub async fn restart(&mut self) -> Option<ExitStatus> {
        let status = if self.is_running() { Some(self.sigterm().await) } else { None };
        let listen = self.addr.to_string();
        if let Err(e) = self.spawn(&listen).await {
            panic!("restart: {e}");
        }
        status
    }

    /// Starts the server again after a stop, on the same address and data directory.
    pub async fn start_again(&mut self) {
        assert!(!self.is_running(), "cairnd is still running");
        self.restart().await;
    }

    /// Keeps the data directory after the test (for debugging); returns its path.
    pub fn keep_data_dir(&mut self) -> PathBuf {
        if let Some(t) = self.temp.take() {
            let _ = t.keep();
        }
        self.data_dir.clone()
    }
}

impl Drop for Cairnd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            // Reap it so no zombie outlives the test; SIGKILL makes this immediate.
            if let Some(pid) = child.id() {
                let mut status = 0;
                // SAFETY: waitpid on our own child after SIGKILL.
                unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
            }
        }
    }
}
