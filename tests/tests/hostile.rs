//! Hostile clients through the real binary: slow heads (slowloris), thousands of idle
//! connections, huge heads, deeply nested JSON, invalid UTF-8 in names, keys and headers.
//! The server must cut what it documents it cuts, keep serving everyone else, and keep its
//! memory bounded.

use std::time::Duration;

use cairn_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resident memory of a process, in KiB (from `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

/// Reads until the peer closes the connection (or errors); returns what arrived.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_is_cut_at_the_header_timeout_while_others_are_served() {
    let s = Cairnd::builder().arg("--header-read-timeout-ms").arg("1500").start().await;
    let addr = s.addr();
    // Several connections each sending their head one byte at a time, never finishing it.
    let mut slow = Vec::new();
    for _ in 0..8 {
        slow.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            let mut sent = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let byte = head.get(sent).copied().unwrap_or(b'a');
                // The server cutting the connection is what we wait for.
                if c.write_all(&[byte]).await.is_err() {
                    return sent;
                }
                sent += 1;
                let mut buf = [0u8; 256];
                if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), c.read(&mut buf)).await {
                    // EOF, or a 408 before the close: cut.
                    assert!(n == 0 || buf.starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&buf[..n]));
                    return sent;
                }
            }
        }));
    }
    // Meanwhile a normal client is served.
    for _ in 0..20 {
        s.get("/v1/health").await.expect_status(200);
    }
    for t in slow {
        let sent = within(GENEROUS, t).await.unwrap();
        // 100 ms per byte and a 1.5 s head timeout: cut long before a head of 300 bytes.
        assert!(sent < 300, "a slow head was let through for {sent} bytes");
    }
    s.get("/v1/health").await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_neither_starve_other_clients_nor_grow_memory_without_bound() {
    // The documented behaviour: at most `connections_max` are served; the rest wait in the
    // listen backlog; idle ones are closed after the head timeout, freeing their slots.
    let s =
        Cairnd::builder().arg("--connections-max").arg("256").arg("--header-read-timeout-ms").arg("2000").start().await;
    let pid = s.pid().unwrap();
    s.create_topic("busy", json!({})).await;
    s.produce_n("busy", 0, 10, "m").await;
    let before = rss_kib(pid);
    let addr = s.addr();
    let mut idle = Vec::new();
    for _ in 0..2000 {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(c)) => idle.push(c),
            // The kernel's backlog is full: further connects are dropped, which is a refusal.
            _ => break,
        }
    }
    assert!(idle.len() > 256, "only {} idle connections could be opened", idle.len());
    // A normal client (fresh connection) is served once idle connections time out.
    let fresh = reqwest::Client::new();
    let r = within(GENEROUS, fresh.get(s.url("/v1/topics/busy/partitions/0/messages")).send()).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["messages"].as_array().unwrap().len(), 10);
    let during = rss_kib(pid);
    // Every idle connection is eventually closed by the server (EOF), not kept forever.
    for mut c in idle.drain(..).take(50) {
        within(GENEROUS, read_to_close(&mut c)).await;
    }
    drop(idle);
    let after = rss_kib(pid);
    eprintln!("RSS KiB: before {before}, with 2000 idle connections {during}, after {after}");
    // Generous: a connection costs a few KiB; 2000 of them must not cost 200 MiB.
    assert!(during < before + 200 * 1024, "RSS grew from {before} KiB to {during} KiB");
    s.get("/v1/health").await.expect_status(200);
}

/// Sends `head` on a fresh connection and returns the whole reply (read to the close).
async fn reply_to_raw_head(addr: std::net::SocketAddr, head: &str) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let _ = c.write_all(head.as_bytes()).await;
    let reply = within(GENEROUS, read_to_close(&mut c)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

/// Checks that `reply` has one of `statuses` and the contract's JSON error body, although
/// hyper made it before any handler ran (`server/src/canned.rs`).
fn assert_json_bad_request(reply: &str, statuses: &[&str]) {
    assert!(statuses.iter().any(|s| reply.starts_with(&format!("HTTP/1.1 {s}"))), "{reply}");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head end: {reply}"));
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(json["code"], "bad_request", "{body}");
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test]
async fn huge_heads_are_refused_and_the_server_stays_up() {
    let s = Cairnd::start().await;
    // One header larger than the 64 KiB head limit.
    let head = format!("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(100_000));
    assert_json_bad_request(&reply_to_raw_head(s.addr(), &head).await, &["431"]);
    // More headers than allowed (100).
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let head = format!("GET /v1/health HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_json_bad_request(&reply_to_raw_head(s.addr(), &head).await, &["431"]);
    // A huge request line (URI).
    let head = format!("GET /v1/topics/{} HTTP/1.1\r\nHost: x\r\n\r\n", "t".repeat(200_000));
    assert_json_bad_request(&reply_to_raw_head(s.addr(), &head).await, &["431", "414"]);
    // Not HTTP at all, and a header line without a colon.
    assert_json_bad_request(&reply_to_raw_head(s.addr(), "GARBAGE\r\n\r\n").await, &["400"]);
    let head = "GET /v1/health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n";
    assert_json_bad_request(&reply_to_raw_head(s.addr(), head).await, &["400"]);
    s.get("/v1/health").await.expect_status(200);
}

#[tokio::test]
async fn an_early_413_reaches_a_client_that_reads_only_after_sending() {
    // The body is refused from its declared length alone, before any of it is read. The
    // client sends 1 MiB of it and only then reads: without a lingering close the server
    // closed with that input unread, the kernel answered with a reset, and the reset threw
    // away the reply the client had not read yet.
    let s = Cairnd::start().await;
    for _ in 0..3 {
        let mut c = TcpStream::connect(s.addr()).await.unwrap();
        let head = "POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 67108864\r\n\r\n";
        c.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..16 {
            if c.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // Let the reply (and, without lingering, the reset) arrive before reading.
        let reply = within(GENEROUS, async {
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match c.read(&mut buf).await {
                    Ok(0) => return Ok(out),
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) => return Err((e, out)),
                }
            }
        })
        .await;
        let reply = match reply {
            Ok(r) => r,
            Err((e, partial)) => panic!("{e} after {:?}", String::from_utf8_lossy(&partial)),
        };
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(text.contains("payload_too_large"), "{text}");
    }
    s.get("/v1/health").await.expect_status(200);
}

/// Sends a `GET /v1/health` head with `count` headers in all (`Host` included) and
/// `Connection: close`; returns the status line.
async fn health_with_headers(addr: std::net::SocketAddr, count: usize) -> String {
    let extra: String = (0..count - 2).map(|i| format!("X-H{i}: v\r\n")).collect();
    let head = format!("GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n");
    assert_eq!(head.matches("\r\n").count() - 2, count, "header count of the test head");
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    let reply = within(GENEROUS, read_to_close(&mut c)).await;
    String::from_utf8_lossy(&reply).lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_header_count_limit_is_exactly_one_hundred() {
    let s = Cairnd::start().await;
    assert_eq!(health_with_headers(s.addr(), 100).await, "HTTP/1.1 200 OK");
    assert!(health_with_headers(s.addr(), 101).await.starts_with("HTTP/1.1 431"));
    s.get("/v1/health").await.expect_status(200);
}

#[tokio::test]
async fn deeply_nested_json_is_a_bad_request_on_every_json_route() {
    let s = Cairnd::start().await;
    s.create_topic("deep", json!({})).await;
    let open = "[".repeat(100_000);
    let obj = format!("{{\"a\": {}", open);
    for path in [
        "/v1/topics",
        "/v1/topics/deep/messages",
        "/v1/groups/g/offsets",
        "/v1/groups/g/reset",
        "/v1/groups/g/topics/deep/fetch",
        "/v1/groups/g/topics/deep/ack",
        "/v1/groups/g/topics/deep/nack",
        "/v1/groups/g/topics/deep/extend",
        "/v1/groups/g/topics/deep/reject",
    ] {
        for body in [&open, &obj] {
            let r = s.post_raw(path, "application/json", body.clone()).await;
            r.expect_error(400, "bad_request");
        }
    }
    for body in [&open, &obj] {
        let r = send(
            s.request(reqwest::Method::PUT, "/v1/groups/g")
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
        r.expect_error(400, "bad_request");
        let r = send(
            s.request(reqwest::Method::PATCH, "/v1/topics/deep")
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
        r.expect_error(400, "bad_request");
        let r = s.post_raw("/v1/topics/deep/messages", NDJSON, body.clone()).await;
        r.expect_error(400, "bad_request");
    }
    // A deeply nested but balanced message value is opaque JSON text: stored as sent.
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = format!("{{\"messages\": [{{\"value\": {nested}}}]}}");
    s.post_raw("/v1/topics/deep/messages", "application/json", body).await.expect_status(200);
    let m = &s.read("deep", 0, "encoding=base64").await["messages"][0];
    assert_eq!(value_bytes(m).unwrap(), nested.as_bytes());
    s.get("/v1/health").await.expect_status(200);
}

#[tokio::test]
async fn invalid_utf8_in_names_keys_and_headers_is_refused_or_kept_as_bytes() {
    let s = Cairnd::start().await;
    s.create_topic("utf", json!({})).await;
    // Names: percent-encoded invalid UTF-8 in every path parameter.
    for path in [
        "/v1/topics/%FF%FE",
        "/v1/topics/%C3%28/messages",
        "/v1/topics/utf/partitions/%FF/messages",
        "/v1/groups/%80abc",
        "/v1/groups/%FF/offsets",
    ] {
        let r = s.get(path).await;
        assert!(r.status == 400 || r.status == 405, "{path}: {} {}", r.status, r.text());
        assert_eq!(r.media_type(), "application/json", "{path}");
        let code = r.json()["code"].as_str().unwrap().to_string();
        assert!(["bad_request", "invalid_name", "method_not_allowed"].contains(&code.as_str()), "{path}: {code}");
    }
    // A query value that is not UTF-8.
    let r = s.read_raw("utf", 0, "group=%FF").await;
    assert!(r.status == 400, "{} {}", r.status, r.text());
    assert_eq!(r.media_type(), "application/json");
    // Invalid UTF-8 inside a JSON body.
    let mut body = b"{\"messages\": [{\"key\": \"".to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(b"\", \"value\": 1}]}");
    s.post_raw("/v1/topics/utf/messages", "application/json", body).await.expect_error(400, "bad_request");
    let mut body = b"{\"name\": \"".to_vec();
    body.extend_from_slice(&[0xc3, 0x28]);
    body.extend_from_slice(b"\"}");
    let r = s.post_raw("/v1/topics", "application/json", body).await;
    r.expect_error(400, "bad_request");
    // Raw header bytes: a non-UTF-8 Cairn-Key is a key of bytes (kept exactly); a non-ASCII
    // Cairn-Partition or Idempotency-Key is a bad request.
    let path = "/v1/topics/utf/messages";
    let addr = s.addr();
    let exchange = |extra: Vec<u8>| async move {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 2\r\nConnection: close\r\n"
        )
        .into_bytes();
        req.extend_from_slice(&extra);
        req.extend_from_slice(b"\r\n\r\nhi");
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&req).await.unwrap();
        let reply = within(GENEROUS, read_to_close(&mut c)).await;
        String::from_utf8_lossy(&reply).into_owned()
    };
    let reply = exchange(b"Cairn-Key: k\xff\xfe".to_vec()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let m = &s.read("utf", 0, "").await["messages"][0];
    assert_eq!(m["key_base64"], json!(b64(b"k\xff\xfe")), "{m}");
    for bad in [&b"Cairn-Partition: \xff"[..], b"Idempotency-Key: \xc3\x28"] {
        let reply = exchange(bad.to_vec()).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{}: {reply}", String::from_utf8_lossy(bad));
        assert!(reply.contains("\"code\":\"bad_request\""), "{reply}");
    }
    assert_eq!(s.end_offset("utf", 0).await, 1, "nothing refused was appended");
}
