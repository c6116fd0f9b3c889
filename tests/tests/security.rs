//! Security end to end through the real `cairnd`: bearer tokens and scopes (`401` / `403` on
//! every kind of route, SSE and long-polls included), protected mode, and TLS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_tests::{json, send, Cairnd, Resp, Value};
use reqwest::Method;

const ADMIN: &str = "tok-admin";
const PRODUCER: &str = "tok-produce-orders";
const CONSUMER: &str = "tok-consume-orders";
const SCRAPER: &str = "tok-metrics";

fn sha256_hex(token: &str) -> String {
    // The server's digest is plain SHA-256; compute it with the binary's own subcommand so
    // the test also covers `cairnd hash-token`.
    use std::io::Write as _;
    let mut child = std::process::Command::new(cairn_tests::cairnd_bin())
        .arg("hash-token")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run cairnd hash-token");
    child.stdin.take().unwrap().write_all(format!("{token}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(hex.len(), 64, "{hex}");
    hex
}

/// A config file with four tokens, in `dir`.
fn auth_config(dir: &Path, extra: &str) -> PathBuf {
    let mut text = format!("{extra}\n");
    for (name, token, scopes) in [
        ("ops", ADMIN, r#"["admin"]"#),
        ("ingest", PRODUCER, r#"["produce:orders.*"]"#),
        ("workers", CONSUMER, r#"["consume:orders.*"]"#),
        ("prometheus", SCRAPER, r#"["metrics"]"#),
    ] {
        text.push_str(&format!(
            "[[auth.tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = {scopes}\n\n",
            sha256_hex(token)
        ));
    }
    let path = dir.join("cairnd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A self-signed certificate for `names`, written as `cert.pem` and `key.pem` in `dir`, and an
/// HTTPS client that trusts it.
fn self_signed(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, reqwest::Client) {
    let ck = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    (cert, key, https)
}

async fn call(c: &Cairnd, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Resp {
    let mut rb = c.client().request(method, c.url(path));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    send(rb).await
}

#[tokio::test]
async fn tokens_and_scopes_guard_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path(), "");
    let c = Cairnd::builder().arg("--config").arg(&config).start().await;
    let (g, p, d, pa) = (Method::GET, Method::POST, Method::DELETE, Method::PUT);

    // Open routes.
    call(&c, None, g.clone(), "/v1/health", None).await.expect_status(200);
    call(&c, None, g.clone(), "/v1/openapi.json", None).await.expect_status(200);

    // 401: no token, a wrong token, another scheme; the challenge header is set.
    let r = call(&c, None, g.clone(), "/v1/topics", None).await;
    r.expect_error(401, "unauthorized");
    assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")), "{:?}", r.headers);
    call(&c, Some("nope"), g.clone(), "/v1/topics", None).await.expect_error(401, "unauthorized");
    let basic = c.client().get(c.url("/v1/topics")).header("authorization", "Basic YWRtaW46YWRtaW4=");
    send(basic).await.expect_error(401, "unauthorized");
    call(&c, None, p.clone(), "/v1/topics/orders.eu/messages", Some(json!({"messages": [{"value": 1}]})))
        .await
        .expect_error(401, "unauthorized");
    call(&c, None, g.clone(), "/v1/no/such/route", None).await.expect_error(401, "unauthorized");
    call(&c, Some(CONSUMER), g.clone(), "/v1/no/such/route", None).await.expect_error(404, "not_found");

    // Admin routes.
    let create = json!({"name": "orders.eu", "partitions": 1});
    for t in [PRODUCER, CONSUMER, SCRAPER] {
        call(&c, Some(t), p.clone(), "/v1/topics", Some(create.clone())).await.expect_error(403, "forbidden");
    }
    call(&c, Some(ADMIN), p.clone(), "/v1/topics", Some(create)).await.expect_status(201);
    call(&c, Some(ADMIN), p.clone(), "/v1/topics", Some(json!({"name": "payroll"}))).await.expect_status(201);
    for (m, path) in [
        (Method::PATCH, "/v1/topics/orders.eu"),
        (d.clone(), "/v1/topics/orders.eu"),
        (p.clone(), "/v1/topics/orders.eu/compact"),
        (g.clone(), "/v1/groups"),
        (pa.clone(), "/v1/groups/billing"),
        (g.clone(), "/v1/groups/billing"),
        (d.clone(), "/v1/groups/billing"),
    ] {
        let body = (m == Method::PATCH || m == Method::PUT).then(|| json!({}));
        call(&c, Some(CONSUMER), m.clone(), path, body).await.expect_error(403, "forbidden");
    }

    // Produce.
    let msgs = json!({"messages": [{"key": "k", "value": {"n": 1}}]});
    call(&c, Some(PRODUCER), p.clone(), "/v1/topics/orders.eu/messages", Some(msgs.clone())).await.expect_status(200);
    call(&c, Some(PRODUCER), p.clone(), "/v1/topics/payroll/messages", Some(msgs.clone()))
        .await
        .expect_error(403, "forbidden");
    call(&c, Some(CONSUMER), p.clone(), "/v1/topics/orders.eu/messages", Some(msgs.clone()))
        .await
        .expect_error(403, "forbidden");
    // A percent-encoded name is checked as the handler sees it (decoded).
    call(&c, Some(PRODUCER), p.clone(), "/v1/topics/pay%72oll/messages", Some(msgs.clone()))
        .await
        .expect_error(403, "forbidden");
    // Produce skips the router (server/src/dispatch.rs) but not the token check: a wrong token
    // gets the same challenge as on other routes, an admin token may produce anywhere, and
    // refusals are counted under the route's label.
    let r = call(&c, Some("nope"), p.clone(), "/v1/topics/orders.eu/messages", Some(msgs.clone())).await;
    r.expect_error(401, "unauthorized");
    assert!(r.header("www-authenticate").is_some_and(|h| h.contains("invalid_token")), "{:?}", r.headers);
    call(&c, Some(ADMIN), p.clone(), "/v1/topics/payroll/messages", Some(msgs.clone())).await.expect_status(200);
    let metrics = call(&c, Some(ADMIN), g.clone(), "/metrics", None).await.expect_status(200).text();
    for status in ["200", "401", "403"] {
        let line = format!(r#"route="/v1/topics/{{topic}}/messages",method="POST",status="{status}"}}"#);
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }

    // Read, long-poll and SSE.
    let read = "/v1/topics/orders.eu/partitions/0/messages";
    let r = call(&c, Some(CONSUMER), g.clone(), read, None).await;
    assert_eq!(r.expect_status(200).json()["messages"].as_array().unwrap().len(), 1);
    call(&c, Some(PRODUCER), g.clone(), read, None).await.expect_error(403, "forbidden");
    let poll = format!("{read}?offset=1&wait_ms=30000");
    let denied = cairn_tests::within(Duration::from_secs(20), call(&c, Some(PRODUCER), g.clone(), &poll, None)).await;
    denied.expect_error(403, "forbidden");
    for (token, status) in [(None, 401), (Some(PRODUCER), 403)] {
        let mut rb = c.client().get(c.url(read)).header("accept", "text/event-stream");
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let r = cairn_tests::within(Duration::from_secs(20), send(rb)).await;
        r.expect_error(status, if status == 401 { "unauthorized" } else { "forbidden" });
    }
    let sse = c.client().get(c.url(read)).header("accept", "text/event-stream").bearer_auth(CONSUMER);
    let resp = sse.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    drop(resp);

    // Describe and list: visible to tokens with a scope on the topic.
    call(&c, Some(PRODUCER), g.clone(), "/v1/topics/orders.eu", None).await.expect_status(200);
    call(&c, Some(CONSUMER), g.clone(), "/v1/topics/payroll", None).await.expect_error(403, "forbidden");
    let names = |v: Value| -> Vec<String> {
        v["topics"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    };
    let listed = names(call(&c, Some(CONSUMER), g.clone(), "/v1/topics", None).await.expect_status(200).json());
    assert!(listed.contains(&"orders.eu".to_string()) && !listed.contains(&"payroll".to_string()), "{listed:?}");
    let listed = names(call(&c, Some(ADMIN), g.clone(), "/v1/topics", None).await.expect_status(200).json());
    assert!(listed.contains(&"payroll".to_string()), "{listed:?}");
    let listed = names(call(&c, Some(SCRAPER), g.clone(), "/v1/topics", None).await.expect_status(200).json());
    assert!(listed.is_empty(), "{listed:?}");

    // Groups: queue style on the path's topic, cursor style on the body's or query's topic.
    let fetch = json!({"max_messages": 10});
    let r = call(&c, Some(CONSUMER), p.clone(), "/v1/groups/w/topics/orders.eu/fetch", Some(fetch.clone())).await;
    let leased = r.expect_status(200).json()["messages"].as_array().unwrap().clone();
    assert_eq!(leased.len(), 1);
    for t in [PRODUCER, SCRAPER] {
        call(&c, Some(t), p.clone(), "/v1/groups/w/topics/orders.eu/fetch", Some(fetch.clone()))
            .await
            .expect_error(403, "forbidden");
    }
    call(&c, Some(CONSUMER), p.clone(), "/v1/groups/w/topics/payroll/fetch", Some(fetch))
        .await
        .expect_error(403, "forbidden");
    let refs = json!({"messages": [{"partition": 0, "offset": leased[0]["offset"]}]});
    call(&c, Some(PRODUCER), p.clone(), "/v1/groups/w/topics/orders.eu/ack", Some(refs.clone()))
        .await
        .expect_error(403, "forbidden");
    call(&c, Some(CONSUMER), p.clone(), "/v1/groups/w/topics/orders.eu/ack", Some(refs)).await.expect_status(204);
    let commit = |topic: &str| json!({"topic": topic, "offsets": [{"partition": 0, "offset": 1}]});
    call(&c, Some(CONSUMER), p.clone(), "/v1/groups/cur/offsets", Some(commit("orders.eu"))).await.expect_status(200);
    call(&c, Some(CONSUMER), p.clone(), "/v1/groups/cur/offsets", Some(commit("payroll")))
        .await
        .expect_error(403, "forbidden");
    call(&c, Some(CONSUMER), p.clone(), "/v1/groups/cur/offsets", Some(json!({"offsets": []})))
        .await
        .expect_error(403, "forbidden");
    call(&c, Some(CONSUMER), g.clone(), "/v1/groups/cur/offsets?topic=orders.eu", None).await.expect_status(200);
    call(&c, Some(CONSUMER), g.clone(), "/v1/groups/cur/offsets?topic=payroll", None)
        .await
        .expect_error(403, "forbidden");
    call(&c, Some(CONSUMER), g.clone(), "/v1/groups/cur/offsets", None).await.expect_error(403, "forbidden");
    let reset = json!({"topic": "orders.eu", "to": "earliest"});
    call(&c, Some(CONSUMER), p.clone(), "/v1/groups/cur/reset", Some(reset.clone())).await.expect_status(200);
    call(&c, Some(PRODUCER), p.clone(), "/v1/groups/cur/reset", Some(reset)).await.expect_error(403, "forbidden");
    let read_group = format!("{read}?group=cur");
    call(&c, Some(CONSUMER), g.clone(), &read_group, None).await.expect_status(200);
    call(&c, Some(ADMIN), pa.clone(), "/v1/groups/cur", Some(json!({"ack_timeout_ms": 5000}))).await.expect_status(200);
    call(&c, Some(ADMIN), g.clone(), "/v1/groups/cur", None).await.expect_status(200);

    // Metrics: a token with admin or metrics.
    call(&c, None, g.clone(), "/metrics", None).await.expect_error(401, "unauthorized");
    call(&c, Some(CONSUMER), g.clone(), "/metrics", None).await.expect_error(403, "forbidden");
    call(&c, Some(SCRAPER), g.clone(), "/metrics", None).await.expect_status(200);
    call(&c, Some(ADMIN), g.clone(), "/metrics", None).await.expect_status(200);

    // Admin can do the rest.
    call(&c, Some(ADMIN), p.clone(), "/v1/topics/orders.eu/compact", None).await.expect_status(200);
    call(&c, Some(ADMIN), d.clone(), "/v1/topics/payroll", None).await.expect_status(204);
}

#[tokio::test]
async fn metrics_can_be_opened_and_no_tokens_means_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path(), "");
    let c = Cairnd::builder().arg("--config").arg(&config).env("CAIRN_METRICS_OPEN", "true").start().await;
    call(&c, None, Method::GET, "/metrics", None).await.expect_status(200);
    call(&c, None, Method::GET, "/v1/topics", None).await.expect_error(401, "unauthorized");

    let anon = Cairnd::start().await;
    call(&anon, None, Method::GET, "/v1/topics", None).await.expect_status(200);
    call(&anon, None, Method::GET, "/metrics", None).await.expect_status(200);
    // A token sent to an anonymous server is ignored, as before.
    call(&anon, Some("whatever"), Method::GET, "/v1/topics", None).await.expect_status(200);
}

#[tokio::test]
async fn protected_mode_refuses_a_public_address_without_tokens() {
    let err = match Cairnd::builder().listen("0.0.0.0:0").try_start().await {
        Ok(_) => panic!("cairnd listened on 0.0.0.0 without tokens or --allow-anonymous"),
        Err(e) => e,
    };
    assert!(err.status.is_some_and(|s| !s.success()), "{err}");
    for needle in ["protected mode", "--allow-anonymous", "0.0.0.0", "auth.tokens"] {
        assert!(err.output.contains(needle), "{needle:?} missing from:\n{}", err.output);
    }

    let flag = Cairnd::builder().listen("0.0.0.0:0").arg("--allow-anonymous").start().await;
    call(&flag, None, Method::GET, "/v1/topics", None).await.expect_status(200);
    let env = Cairnd::builder().listen("0.0.0.0:0").env("CAIRN_ALLOW_ANONYMOUS", "true").start().await;
    call(&env, None, Method::GET, "/v1/health", None).await.expect_status(200);

    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path(), "");
    let with_tokens = Cairnd::builder().listen("0.0.0.0:0").arg("--config").arg(&config).start().await;
    call(&with_tokens, None, Method::GET, "/v1/topics", None).await.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn tls_round_trip_with_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, https) = self_signed(dir.path(), &["localhost", "127.0.0.1"]);
    let config = auth_config(dir.path(), "");
    let mut c = Cairnd::builder()
        .arg("--config")
        .arg(&config)
        .arg("--tls-cert")
        .arg(&cert)
        .env("CAIRN_TLS_KEY", &key)
        .start()
        .await;
    let url = |path: &str| format!("https://localhost:{}{path}", c.addr().port());

    let r = send(https.get(url("/v1/topics"))).await;
    r.expect_error(401, "unauthorized");
    let msgs = json!({"messages": [{"key": "a", "value": "over tls"}]});
    let r = send(https.post(url("/v1/topics/orders.tls/messages")).bearer_auth(PRODUCER).json(&msgs)).await;
    assert_eq!(r.expect_status(200).json()["offsets"][0]["offset"], 0);
    let r = send(https.get(url("/v1/topics/orders.tls/partitions/0/messages")).bearer_auth(CONSUMER)).await;
    assert_eq!(r.expect_status(200).json()["messages"][0]["value"], "over tls");
    let r = send(https.get(format!("https://127.0.0.1:{}/v1/health", c.addr().port()))).await;
    r.expect_status(200);

    // Plain HTTP to the TLS port gets no HTTP reply; an untrusting client fails the handshake.
    let plain = c.client().get(c.url("/v1/health")).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    assert!(reqwest::Client::new().get(url("/v1/health")).send().await.is_err());

    // Graceful shutdown with an idle keep-alive TLS connection open.
    assert!(c.sigterm().await.success(), "{}", c.logs());
}

#[tokio::test]
async fn bad_tls_or_auth_config_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "junk").unwrap();
    let err = Cairnd::builder().arg("--tls-cert").arg(&junk).arg("--tls-key").arg(&junk).try_start().await;
    let err = err.err().expect("cairnd started with a junk certificate");
    assert!(err.output.contains("TLS"), "{}", err.output);
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[[auth.tokens]]\nname = \"x\"\nsha256 = \"abc\"\nscopes = [\"admin\"]\n").unwrap();
    let err = Cairnd::builder().arg("--config").arg(&config).try_start().await;
    let err = err.err().expect("cairnd started with a bad token digest");
    assert!(err.output.contains("sha256"), "{}", err.output);
}

#[tokio::test]
async fn tls_handshake_is_bounded_by_the_header_timeout_and_the_connection_limit() {
    use tokio::io::AsyncReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, https) = self_signed(dir.path(), &["localhost"]);
    let c = Cairnd::builder()
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--header-read-timeout-ms")
        .arg("300")
        .arg("--connections-max")
        .arg("1")
        .start()
        .await;
    let health = format!("https://localhost:{}/v1/health", c.addr().port());

    // A client that connects and never starts the handshake holds the only slot until the
    // header timeout closes it; then a real client gets in.
    let mut silent = tokio::net::TcpStream::connect(c.addr()).await.unwrap();
    let waiting = tokio::spawn({
        let (https, health) = (https.clone(), health.clone());
        async move { send(https.get(health)).await.status }
    });
    let mut buf = Vec::new();
    let closed = cairn_tests::within(Duration::from_secs(30), silent.read_to_end(&mut buf)).await;
    // Closed (EOF or reset) without a byte of reply: the handshake never started.
    assert!(matches!(closed, Ok(0) | Err(_)) && buf.is_empty(), "the silent connection got {closed:?} {buf:?}");
    assert_eq!(cairn_tests::within(Duration::from_secs(30), waiting).await.unwrap(), 200);
}
