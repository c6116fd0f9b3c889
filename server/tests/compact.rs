//! `POST /v1/topics/{topic}/compact` on an in-process server over a real socket: statistics,
//! the latest value per key still readable afterwards, 404 for an unknown topic, and a
//! `delete` topic (nothing dropped by key).

use std::collections::BTreeMap;

use cairn_server::config::{Cli, FileConfig};
use cairn_server::shutdown::Shutdown;
use cairn_server::{Server, ServerConfig};
use clap::Parser;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request on its own connection; returns the status and the JSON body.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let (_, rest) = text.split_once("\r\n\r\n").unwrap();
    // Replies are small and sent with Content-Length or chunked: take the JSON object.
    let json = rest.find('{').map(|i| &rest[i..rest.rfind('}').unwrap() + 1]).unwrap_or("null");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test]
async fn compact_endpoint_replies_with_statistics_and_keeps_latest_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let cli = Cli::try_parse_from(["cairnd", "--listen", "127.0.0.1:0", "--data-dir", &d]).unwrap();
    let server = Server::open(ServerConfig::resolve(cli, FileConfig::default()).unwrap()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let t2 = trigger.clone();
    let task = tokio::spawn(async move { server.serve(t2, shutdown).await.unwrap() });

    for (name, policy, compression) in [("kv", "compact", "none"), ("events", "delete", "zstd")] {
        let (status, _) = http(
            addr,
            "POST",
            "/v1/topics",
            Some(json!({"name": name, "cleanup_policy": policy, "segment_bytes": 4096, "compression": compression})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let mut latest = BTreeMap::new();
    for round in 0..20 {
        let messages: Vec<Value> =
            (0..10).map(|k| json!({"key": format!("k{k}"), "value": format!("{round}-{}", "x".repeat(200))})).collect();
        for topic in ["kv", "events"] {
            let (status, reply) =
                http(addr, "POST", &format!("/v1/topics/{topic}/messages"), Some(json!({ "messages": messages })))
                    .await;
            assert_eq!(status, 200, "{reply}");
            if topic == "kv" {
                for (k, o) in reply["offsets"].as_array().unwrap().iter().enumerate() {
                    latest.insert(
                        format!("k{k}"),
                        (o["offset"].as_u64().unwrap(), format!("{round}-{}", "x".repeat(200))),
                    );
                }
            }
        }
    }

    let (status, stats) = http(addr, "POST", "/v1/topics/kv/compact", None).await;
    assert_eq!(status, 200, "{stats}");
    for field in [
        "segments_before",
        "segments_after",
        "bytes_before",
        "bytes_after",
        "messages_before",
        "messages_after",
        "duration_ms",
    ] {
        assert!(stats[field].is_u64(), "{field} in {stats}");
    }
    assert_eq!(stats["messages_before"], 200);
    assert!(stats["messages_after"].as_u64().unwrap() < 200, "{stats}");
    assert!(stats["bytes_after"].as_u64().unwrap() < stats["bytes_before"].as_u64().unwrap(), "{stats}");

    let (status, read) =
        http(addr, "GET", "/v1/topics/kv/partitions/0/messages?offset=0&max_messages=10000", None).await;
    assert_eq!(status, 200, "{read}");
    let by_offset: BTreeMap<u64, (String, String)> = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (m["offset"].as_u64().unwrap(), (m["key"].as_str().unwrap().into(), m["value"].as_str().unwrap().into()))
        })
        .collect();
    for (k, (offset, value)) in &latest {
        assert_eq!(by_offset.get(offset), Some(&(k.clone(), value.clone())), "latest of {k} at {offset}");
    }

    let (status, stats) = http(addr, "POST", "/v1/topics/events/compact", None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["messages_after"], stats["messages_before"], "delete topics keep every message");

    let (status, err) = http(addr, "POST", "/v1/topics/nope/compact", None).await;
    assert_eq!(status, 404);
    assert_eq!(err["code"], "topic_not_found");

    trigger.trigger();
    task.await.unwrap();
}
