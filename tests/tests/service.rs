//! Service endpoints: health, metrics, OpenAPI, unknown routes, the data-dir lock.

use cairn_tests::*;

#[tokio::test]
async fn health_is_ok_once_ready() {
    let s = Cairnd::start().await;
    let r = s.get("/v1/health").await;
    r.expect_status(200);
    assert_eq!(r.media_type(), "application/json");
    assert_eq!(r.json()["status"], json!("ok"));
}

#[tokio::test]
async fn unknown_routes_are_404_not_found() {
    let s = Cairnd::start().await;
    for path in ["/v1/nope", "/nope", "/v1/topics/t/partitions/0/nope", "/v2/health"] {
        s.get(path).await.expect_error(404, "not_found");
    }
}

/// Lines of a Prometheus text exposition: (metric name, labels text, value).
fn samples(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name_labels, value) = if let Some(close) = line.rfind('}') {
            (&line[..=close], line[close + 1..].trim())
        } else {
            let mut it = line.splitn(2, ' ');
            (it.next().unwrap(), it.next().unwrap_or("").trim())
        };
        // A timestamp may follow the value.
        let value = value.split_whitespace().next().unwrap_or_else(|| panic!("metric line without a value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("metric value {v:?} in {line:?}: {e}")),
        };
        let (name, labels) = match name_labels.find('{') {
            Some(i) => (&name_labels[..i], &name_labels[i..]),
            None => (name_labels, ""),
        };
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        out.push((name.to_string(), labels.to_string(), value));
    }
    out
}

#[tokio::test]
async fn metrics_expose_the_contract_families() {
    let s = Cairnd::start().await;
    let topic = "metered";
    s.create_topic(topic, json!({"partitions": 2})).await;
    s.produce_n(topic, 1, 7, "m").await;
    s.read(topic, 1, "offset=0").await;
    let r = s.get("/metrics").await;
    r.expect_status(200);
    assert!(r.media_type().starts_with("text/plain"), "metrics content type {:?}", r.media_type());
    let text = r.text();
    let samples = samples(&text);
    let has = |pred: &dyn Fn(&str) -> bool| samples.iter().any(|(n, _, _)| pred(n));
    assert!(has(&|n| n.contains("request")), "no request metric:\n{text}");
    assert!(has(&|n| n.contains("produce") && n.contains("message")), "no produce messages metric:\n{text}");
    assert!(has(&|n| n.contains("produce") && n.contains("byte")), "no produce bytes metric:\n{text}");
    assert!(has(&|n| n.contains("read") && n.contains("message")), "no read messages metric:\n{text}");
    assert!(has(&|n| n.contains("read") && n.contains("byte")), "no read bytes metric:\n{text}");
    // The fsync latency histogram.
    let fsync_hist = text.lines().any(|l| l.starts_with("# TYPE") && l.contains("sync") && l.ends_with(" histogram"));
    assert!(fsync_hist, "no fsync histogram (# TYPE ..sync.. histogram):\n{text}");
    assert!(has(&|n| n.contains("sync") && n.ends_with("_bucket")), "no fsync histogram buckets:\n{text}");
    // Per-topic (per-partition) end offsets and sizes, labelled with the topic.
    let end = samples
        .iter()
        .find(|(n, l, _)| n.contains("end_offset") && l.contains(topic) && l.contains("\"1\""))
        .unwrap_or_else(|| panic!("no end_offset sample for {topic} partition 1:\n{text}"));
    assert_eq!(end.2, 7.0, "end_offset metric for {topic}/1: {end:?}");
    assert!(
        samples.iter().any(|(n, l, _)| (n.contains("size") || n.contains("bytes")) && l.contains(topic)),
        "no per-topic size metric:\n{text}"
    );
    // The produce message counter counts what we produced.
    let produced: f64 =
        samples.iter().filter(|(n, _, _)| n.contains("produce") && n.contains("message")).map(|(_, _, v)| *v).sum();
    assert!(produced >= 7.0, "produce message counters sum to {produced}:\n{text}");
}

#[tokio::test]
async fn openapi_document_describes_the_contract_paths() {
    let s = Cairnd::start().await;
    let r = s.get("/v1/openapi.json").await;
    r.expect_status(200);
    assert_eq!(r.media_type(), "application/json");
    let doc = r.json();
    let version = doc["openapi"].as_str().unwrap_or_else(|| panic!("no openapi version: {doc}"));
    assert!(version.starts_with("3."), "openapi version {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string(), "info: {}", doc["info"]);
    let paths = doc["paths"].as_object().unwrap_or_else(|| panic!("no paths object"));
    let expect: &[(&str, &[&str])] = &[
        ("/v1/health", &["get"]),
        ("/metrics", &["get"]),
        ("/v1/openapi.json", &["get"]),
        ("/v1/topics", &["get", "post"]),
        ("/v1/topics/{topic}", &["get", "patch", "delete"]),
        ("/v1/topics/{topic}/messages", &["post"]),
        ("/v1/topics/{topic}/partitions/{p}/messages", &["get"]),
    ];
    for (path, methods) in expect {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("path {path} missing from openapi; has {:?}", paths.keys().collect::<Vec<_>>()));
        for m in *methods {
            assert!(item.get(*m).is_some(), "{path} has no {m} operation: {item}");
        }
    }
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let s = Cairnd::start().await;
    s.create_topic("locked", json!({})).await;
    let second = Cairnd::builder().data_dir(s.data_dir()).try_start().await;
    match second {
        Ok(c) => panic!("a second cairnd started on {} (at {})", s.data_dir().display(), c.addr()),
        Err(e) => {
            let status = e.status.unwrap_or_else(|| panic!("second cairnd neither started nor exited: {e}"));
            assert!(!status.success(), "second cairnd exited with success: {e}");
        }
    }
    // The first one is unaffected.
    s.get("/v1/health").await.expect_status(200);
    s.describe("locked").await;
}

#[tokio::test]
async fn settings_come_from_flags_over_env_over_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairnd.toml");
    std::fs::write(&file, "auto_create_topics = false\n").unwrap();
    // The file turns auto-create off.
    let s = Cairnd::builder().arg("--config").arg(&file).start().await;
    s.produce_raw("auto", json!([{"value": 1}])).await.expect_error(404, "topic_not_found");
    drop(s);
    // The environment overrides the file.
    let s = Cairnd::builder().arg("--config").arg(&file).env("CAIRN_AUTO_CREATE_TOPICS", "true").start().await;
    s.produce("auto", json!([{"value": 1}])).await;
    drop(s);
    // A flag overrides the environment.
    let s = Cairnd::builder().env("CAIRN_AUTO_CREATE_TOPICS", "true").arg("--no-auto-create-topics").start().await;
    s.produce_raw("auto", json!([{"value": 1}])).await.expect_error(404, "topic_not_found");
    drop(s);
    // A config file that does not parse stops the server with an error instead of serving.
    std::fs::write(&file, "auto_create_topics = \"perhaps\"\n[[[").unwrap();
    let e = Cairnd::builder().arg("--config").arg(&file).try_start().await.err().expect("bad config file accepted");
    assert!(e.status.is_some_and(|s| !s.success()), "{e}");
}

#[tokio::test]
async fn openapi_document_describes_the_group_paths() {
    let s = Cairnd::start().await;
    let doc = s.get("/v1/openapi.json").await.json();
    let paths = doc["paths"].as_object().unwrap();
    let expect: &[(&str, &[&str])] = &[
        ("/v1/groups", &["get"]),
        ("/v1/groups/{group}", &["get", "put", "delete"]),
        ("/v1/groups/{group}/offsets", &["get", "post"]),
        ("/v1/groups/{group}/reset", &["post"]),
        ("/v1/groups/{group}/topics/{topic}/fetch", &["post"]),
        ("/v1/groups/{group}/topics/{topic}/ack", &["post"]),
        ("/v1/groups/{group}/topics/{topic}/nack", &["post"]),
        ("/v1/groups/{group}/topics/{topic}/extend", &["post"]),
        ("/v1/groups/{group}/topics/{topic}/reject", &["post"]),
    ];
    for (path, methods) in expect {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("path {path} missing from openapi; has {:?}", paths.keys().collect::<Vec<_>>()));
        for m in *methods {
            assert!(item.get(*m).is_some(), "{path} has no {m} operation: {item}");
        }
    }
    // Path parameters are named as in the contract.
    for path in paths.keys() {
        for param in path.split('/').filter(|seg| seg.starts_with('{')) {
            assert!(["{topic}", "{p}", "{group}"].contains(&param), "{path}: parameter {param}");
        }
    }
}

/// `--data-dir data`, one relative component: its parent is the current directory (the durable
/// directory creation fsynced the parent "" and failed, so cairnd exited at start).
#[tokio::test]
async fn a_relative_data_dir_of_one_component_works() {
    let cwd = tempfile::tempdir().unwrap();
    let s = Cairnd::builder().current_dir(cwd.path()).data_dir("data").start().await;
    s.create_topic("here", json!({})).await;
    s.produce_n("here", 0, 2, "m").await;
    assert!(cwd.path().join("data/topics/here").is_dir(), "the data went somewhere else");
}
