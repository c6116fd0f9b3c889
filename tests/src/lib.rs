//! Helpers shared by the end-to-end tests, which run the real `cairnd` binary.
//!
//! - [`Cairnd`] (module [`server`]): `Cairnd::start().await` starts `cairnd --listen
//!   127.0.0.1:0 --data-dir <tempdir>` and awaits its `cairnd listening on <addr>` line on
//!   stdout (no sleeps); `Cairnd::builder()` adds flags (`.arg`), environment (`.env`) or an
//!   existing data directory (`.data_dir`), and `try_start` reports a child that exited
//!   instead. `sigkill()`, `sigterm()`, `stop_with(sig)` return the exit status;
//!   `restart()` (SIGTERM if running, then start on the same address and data dir) and
//!   `start_again()`. The child is killed on drop; `logs()` has the tail of its output.
//! - HTTP (module [`http`]): [`Resp`] (a reply read to its end, with `json()`,
//!   `header_u64()`, `expect_status()`, `expect_error(status, code)`), and request helpers on
//!   `Cairnd`: `get`, `post_json`, `post_raw`, `patch_json`, `delete`, `create_topic`,
//!   `describe`, `end_offset`, `produce`, `produce_n`, `read`, `read_raw`, `read_all`.
//! - [`util`]: base64, [`decode_batches`] for raw record replies, [`SseReader`], [`raw_http`]
//!   for requests a normal client cannot make, [`within`] to bound a hang.
//! - [`load`]: [`Load`], concurrent producers that record every acknowledged message and
//!   survive restarts, and [`verify_acked`], the no-loss / no-holes check.
//!
//! The binary is `CAIRND_BIN` if set, else `target/<profile>/cairnd`, rebuilt once per test
//! process with `cargo build -p cairn-server --bin cairnd` so it is never stale.

pub mod http;
pub mod load;
pub mod server;
pub mod util;

pub use http::{enc, read_path, send, Resp, NDJSON, RECORDS, SSE};
pub use server::{cairnd_bin, Builder, Cairnd, StartError, READY_PREFIX};
pub use util::{
    b64, decode_batches, now_ms, raw_http, unb64, value_bytes, within, RawRecord, SseEvent, SseItem, SseReader,
    GENEROUS,
};

pub use load::{verify_acked, Acked, Body, Load};
pub use serde_json::{json, Value};
