//! Helpers shared by the end-to-end tests: start the real `cairnd` on a free loopback port
//! with a temp data dir ([`Cairnd`]), signal and restart it, and talk to it over HTTP
//! ([`Resp`] and the request helpers on [`Cairnd`]).
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
