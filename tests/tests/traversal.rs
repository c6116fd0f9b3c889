//! No path built from a request escapes the data directory: every path parameter of every
//! route in `/v1/openapi.json` (and the query and body fields that name topics and groups) is
//! sent traversal attempts — `..`, `%2e%2e`, encoded and literal slashes and backslashes,
//! absolute paths, NUL, double encoding — over a raw socket (so no client normalises them).
//! Every reply must be a 4xx, no reply may carry the bytes of a file planted next to the data
//! directory, and afterwards nothing outside the data directory was created, changed or
//! deleted, and nothing inside it either.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_tests::{json, Cairnd, Value};

const SENTINEL: &str = "CAIRN-TRAVERSAL-SENTINEL-7f3a";

/// Every file and directory under `root` with its contents (directories: empty).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                stack.push(path);
                out.insert(rel, Vec::new());
            } else {
                out.insert(rel, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    out
}

/// Hostile values for one path segment, as they go on the wire.
fn payloads(outside: &Path) -> Vec<String> {
    let abs = outside.display().to_string().replace('/', "%2F");
    let mut p: Vec<String> = [
        "..",
        ".",
        "%2e%2e",
        "%2E%2E",
        ".%2e",
        "%2e",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2fvictim",
        "..%2Fvictim",
        "..%5Cvictim",
        "..%5C..%5Cvictim",
        "a%2Fb",
        "%2F",
        "%2Fetc%2Fpasswd",
        "%00",
        "victim%00",
        "..%00",
        "%252e%252e%252fvictim",
        "%c0%ae%c0%ae",
        "%ff",
        "....%2F%2Fvictim",
        "__groups",
        "__idempotency",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    p.push(format!("{abs}%2Fvictim"));
    p.push(format!("{abs}%2Fsecret.txt"));
    p
}

/// Literal (unencoded) forms that a lenient server might pass through to a handler.
const LITERAL: &[&str] = &["..\\victim", "a\\b", "..\0", "\0"];

/// A body that would be valid for the operation if the names in the path were.
fn body_for(op: &str) -> Option<Value> {
    Some(match op {
        "updateTopic" | "putGroup" => json!({}),
        "produce" => json!({"messages": [{"value": 1}]}),
        "commitOffsets" => json!({"topic": "t", "offsets": [{"partition": 0, "offset": 0}]}),
        "resetGroup" => json!({"topic": "t", "to": "earliest"}),
        "fetch" => json!({"max_messages": 1}),
        "ack" | "nack" | "extend" | "reject" => json!({"messages": [{"partition": 0, "offset": 0}]}),
        _ => return None,
    })
}

/// One request written as is (no client-side normalisation) with `Connection: close`, read
/// to the end: (status, whole reply).
async fn exchange(c: &Cairnd, method: &str, target: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: cairn\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        bytes.len()
    )
    .into_bytes();
    request.extend_from_slice(&bytes);
    let mut stream = tokio::net::TcpStream::connect(c.addr()).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut reply = Vec::new();
    cairn_tests::within(cairn_tests::GENEROUS, stream.read_to_end(&mut reply)).await.unwrap();
    let status = String::from_utf8_lossy(&reply).split_whitespace().nth(1).and_then(|s| s.parse().ok());
    (status.unwrap_or_else(|| panic!("{method} {target:?}: no HTTP reply: {reply:?}")), reply)
}

/// Sends a request whose target is not valid HTTP; returns the reply's status, or `None` if the
/// server closed the connection without one.
async fn literal_exchange(c: &Cairnd, method: &str, target: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(c.addr()).await.unwrap();
    let head = format!("{method} {target} HTTP/1.1\r\nHost: cairn\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = cairn_tests::within(cairn_tests::GENEROUS, stream.read_to_end(&mut reply)).await;
    let line = String::from_utf8_lossy(&reply).lines().next().map(str::to_string)?;
    line.split_whitespace().nth(1).and_then(|s| s.parse().ok())
}

#[tokio::test]
async fn traversal_in_any_name_stays_inside_the_data_dir() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    std::fs::write(parent.path().join("secret.txt"), SENTINEL).unwrap();
    std::fs::create_dir(parent.path().join("victim")).unwrap();
    std::fs::write(parent.path().join("victim").join("00000000000000000000.log"), SENTINEL).unwrap();
    let c = Cairnd::builder().data_dir(&data).start().await;
    c.create_topic("t", json!({"partitions": 1})).await;
    c.produce("t", json!([{"value": "x"}])).await;
    let doc = c.get("/v1/openapi.json").await.expect_status(200).json();

    let outside_before =
        snapshot(parent.path()).into_iter().filter(|(p, _)| !p.starts_with("data")).collect::<Vec<_>>();
    let inside_before: Vec<PathBuf> = snapshot(&data).into_keys().collect();

    let mut tried = 0;
    let payloads = payloads(parent.path());
    for (path, item) in doc["paths"].as_object().unwrap() {
        let params: Vec<&str> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            let op_id = op["operationId"].as_str().unwrap();
            let body = body_for(op_id);
            let query = match op_id {
                "getOffsets" => "?topic=t",
                _ => "",
            };
            for param in &params {
                let hostile = payloads.iter().map(|v| (v.as_str(), false)).chain(LITERAL.iter().map(|v| (*v, true)));
                for (value, literal) in hostile {
                    let mut target = path.clone();
                    for other in &params {
                        let v = if other == param {
                            value
                        } else if *other == "p" {
                            "0"
                        } else if *other == "group" {
                            "g"
                        } else {
                            "t"
                        };
                        target = target.replace(&format!("{{{other}}}"), v);
                    }
                    target.push_str(query);
                    tried += 1;
                    if literal {
                        // Not valid HTTP: hyper may answer 400 or just close the connection.
                        let status = literal_exchange(&c, &method, &target).await;
                        assert!(status.is_none_or(|s| (400..500).contains(&s)), "{method} {target:?}: {status:?}");
                        continue;
                    }
                    let (status, reply) = exchange(&c, &method, &target, body.as_ref()).await;
                    assert!(
                        (400..500).contains(&status),
                        "{method} {target:?} ({op_id}, {{{param}}}): {status} {}",
                        String::from_utf8_lossy(&reply)
                    );
                    assert!(
                        !String::from_utf8_lossy(&reply).contains(SENTINEL),
                        "{method} {target:?} leaked the sentinel"
                    );
                }
            }
        }
    }
    // Names in the query string and in bodies.
    for value in &payloads {
        let cases = [
            ("GET", format!("/v1/topics/t/partitions/0/messages?group={value}"), None),
            ("GET", format!("/v1/groups/g/offsets?topic={value}"), None),
        ];
        for (method, target, body) in cases {
            let (status, reply) = exchange(&c, method, &target, body).await;
            tried += 1;
            assert!((400..500).contains(&status), "{method} {target:?}: {status} {}", String::from_utf8_lossy(&reply));
        }
        let decoded = percent_decode(value);
        for (target, body) in [
            ("/v1/topics", json!({"name": decoded})),
            ("/v1/groups/g/offsets", json!({"topic": decoded, "offsets": [{"partition": 0, "offset": 0}]})),
            ("/v1/groups/g/reset", json!({"topic": decoded, "to": "earliest"})),
        ] {
            let (status, reply) = exchange(&c, "POST", target, Some(&body)).await;
            tried += 1;
            assert!((400..500).contains(&status), "POST {target} {body}: {status} {}", String::from_utf8_lossy(&reply));
        }
        let (status, reply) = exchange(&c, "PUT", "/v1/groups/g", Some(&json!({"dead_letter_topic": decoded}))).await;
        tried += 1;
        assert!(
            (400..500).contains(&status),
            "PUT dead_letter_topic {decoded:?}: {status} {}",
            String::from_utf8_lossy(&reply)
        );
    }
    assert!(tried > 500, "only {tried} requests");

    let outside_after = snapshot(parent.path()).into_iter().filter(|(p, _)| !p.starts_with("data")).collect::<Vec<_>>();
    assert_eq!(outside_before, outside_after, "something outside the data directory changed");
    let inside_after: Vec<PathBuf> = snapshot(&data).into_keys().collect();
    assert_eq!(inside_before, inside_after, "a hostile request created or removed a file in the data directory");
    assert_eq!(c.read_all("t", 0).await.len(), 1, "the topic is intact");
}

/// `%XX` → byte, lossy UTF-8 (for putting the same hostile names into JSON bodies).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
