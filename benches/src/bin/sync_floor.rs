//! The sync floor: the least a server built like `cairnd` can do per durable produce, as a
//! control for the single-message benchmarks (`docs/BENCHMARKS.md`, "The sync floor").
//!
//! A hyper 1.x HTTP/1.1 server on a 2-worker tokio runtime (as `cairnd` on this machine)
//! whose every request body is handed to one writer thread, which runs group commits: it
//! takes everything waiting, writes it with one positioned write into zero-filled space of a
//! preallocated file (as `cairnd`'s writer does, so `fdatasync` has no metadata to commit),
//! issues one `fdatasync`, and completes every waiter, whose reply is a produce-shaped JSON
//! body. No routing, parsing, record batches, CRCs, indexes, metrics or limits: what is left
//! is the cost of the architecture the contract asks for (hyper, and no disk sync on a
//! runtime thread) on this machine.
//!
//! Usage: `sync_floor PORT DIR` (it writes `DIR/sync-floor.log`; the caller removes `DIR`).

use std::convert::Infallible;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Zero-filled space written ahead at start; positions wrap around inside it.
const FILE_BYTES: u64 = 256 << 20;
/// Bytes of the record-batch header `cairnd` puts before each message (`docs/FORMAT.md`).
const HEADER_BYTES: usize = 43;

type Waiter = (Bytes, oneshot::Sender<u64>);

/// Appends waiting for the writer, and whether it is awake.
#[derive(Default)]
struct Queue {
    state: Mutex<(Vec<Waiter>, bool)>,
    wake: Condvar,
}

impl Queue {
    fn push(&self, w: Waiter) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0.push(w);
        let asleep = !st.1;
        drop(st);
        if asleep {
            self.wake.notify_one();
        }
    }

    /// Everything waiting, sleeping until there is something.
    fn take(&self) -> Vec<Waiter> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while st.0.is_empty() {
            st.1 = false;
            st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.1 = true;
        std::mem::take(&mut st.0)
    }
}

async fn produce(queue: Arc<Queue>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let (tx, rx) = oneshot::channel();
    queue.push((body, tx));
    let offset = rx.await.unwrap_or(0);
    let reply =
        format!("{{\"offsets\":[{{\"partition\":0,\"offset\":{offset},\"timestamp\":0}}],\"duplicate\":false}}");
    Ok(Response::new(Full::new(Bytes::from(reply))))
}

fn writer(queue: &Queue, file: &std::fs::File) -> Result<()> {
    let (mut pos, mut offset) = (0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        let group = queue.take();
        buf.clear();
        for (body, _) in &group {
            buf.extend_from_slice(&[0u8; HEADER_BYTES]);
            buf.extend_from_slice(body);
        }
        if pos + buf.len() as u64 > FILE_BYTES {
            pos = 0;
        }
        file.write_all_at(&buf, pos).context("write")?;
        file.sync_data().context("fdatasync")?;
        pos += buf.len() as u64;
        for (_, done) in group {
            let _ = done.send(offset);
            offset += 1;
        }
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().context("usage: sync_floor PORT DIR")?.parse()?;
    let path = PathBuf::from(args.next().context("usage: sync_floor PORT DIR")?).join("sync-floor.log");
    let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    let zeros = vec![0u8; 1 << 20];
    for i in 0..FILE_BYTES / zeros.len() as u64 {
        file.write_all_at(&zeros, i * zeros.len() as u64)?;
    }
    file.sync_all()?;
    let queue = Arc::new(Queue::default());
    let q = Arc::clone(&queue);
    std::thread::Builder::new().name("floor-writer".into()).spawn(move || {
        if let Err(e) = writer(&q, &file) {
            eprintln!("sync_floor: {e:#}");
            std::process::exit(1);
        }
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(port, queue)).context("serving")
}

async fn serve(port: u16, queue: Arc<Queue>) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            let service = service_fn(move |req| produce(Arc::clone(&queue), req));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
