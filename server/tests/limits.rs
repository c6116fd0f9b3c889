//! Connection limits and graceful shutdown, on an in-process server over real sockets.

use std::time::{Duration, Instant};

use cairn_server::config::{Cli, FileConfig};
use cairn_server::shutdown::Shutdown;
use cairn_server::{Server, ServerConfig};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(
    dir: &std::path::Path,
    flags: &[&str],
) -> (std::net::SocketAddr, cairn_server::shutdown::ShutdownTrigger, tokio::task::JoinHandle<()>) {
    let mut args = vec!["cairnd", "--listen", "127.0.0.1:0", "--data-dir"];
    let d = dir.to_str().unwrap().to_string();
    args.push(&d);
    args.extend_from_slice(flags);
    let config = ServerConfig::resolve(Cli::try_parse_from(args).unwrap(), FileConfig::default()).unwrap();
    let server = Server::open(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let t2 = trigger.clone();
    let task = tokio::spawn(async move { server.serve(t2, shutdown).await.unwrap() });
    (addr, trigger, task)
}

/// Sends `request` and reads until the server closes the connection (or 10 s pass).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    (String::from_utf8_lossy(&out).into_owned(), started.elapsed())
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, trigger, task) = start(dir.path(), &["--header-bytes-max", "8192"]).await;
    let big = format!("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let (reply, _) = exchange(addr, big.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn stalled_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, trigger, task) =
        start(dir.path(), &["--idle-timeout-ms", "300", "--header-read-timeout-ms", "300"]).await;
    // A head that never ends.
    let (reply, took) = exchange(addr, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n").await;
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    // A body that stops coming.
    let (reply, took) = exchange(
        addr,
        b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await;
    assert!(!reply.contains(" 200 "), "{reply}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn shutdown_answers_long_polls_and_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, trigger, task) = start(dir.path(), &[]).await;
    let produce = "{\"messages\":[{\"value\":1}]}";
    let req = format!(
        "POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{produce}",
        produce.len()
    );
    let (reply, _) = exchange(addr, req.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let poll = tokio::spawn(exchange(
        addr,
        b"GET /v1/topics/t/partitions/0/messages?from=latest&wait_ms=30000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    trigger.trigger();
    let (reply, took) = poll.await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(took < Duration::from_secs(10), "the long-poll was not cut short: {took:?}");
    task.await.unwrap();
    assert!(dir.path().join(".clean-shutdown").exists(), "the catalog was not closed cleanly");
}
