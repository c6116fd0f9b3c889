//! `cairn topics create|list|describe|alter|delete`.

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::api::{seg, Api};
use crate::cli::{CleanupPolicyArg, CompressionArg, Limit, SyncArg, TopicCreateArgs, TopicsCmd};
use crate::outcome::{Outcome, UsageError};
use crate::table::{self, Table};

pub async fn run(api: &Api, cmd: TopicsCmd, json: bool) -> anyhow::Result<Outcome> {
    match cmd {
        TopicsCmd::Create(args) => {
            let desc = api.send_json(Method::POST, "/v1/topics", &create_body(&args)).await?;
            if json {
                table::print_json(&desc)?;
            } else {
                outln!("created topic {}", args.name);
                print_description(&desc);
            }
        }
        TopicsCmd::Alter(args) => {
            let mut body = create_body(&args);
            if let Some(fields) = body.as_object_mut() {
                fields.remove("name");
                if fields.is_empty() {
                    let msg = "nothing to change: give at least one setting (see cairn topics alter --help)";
                    return Err(UsageError(msg.into()).into());
                }
            }
            let desc = api.send_json(Method::PATCH, &format!("/v1/topics/{}", seg(&args.name)), &body).await?;
            if json {
                table::print_json(&desc)?;
            } else {
                outln!("altered topic {}", args.name);
                print_description(&desc);
            }
        }
        TopicsCmd::List => {
            let reply = api.get("/v1/topics").await?;
            if json {
                table::print_json(&reply)?;
            } else {
                print_list(reply.get("topics").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default());
            }
        }
        TopicsCmd::Describe { topic } => {
            let desc = api.get(&format!("/v1/topics/{}", seg(&topic))).await?;
            if json {
                table::print_json(&desc)?;
            } else {
                print_description(&desc);
            }
        }
        TopicsCmd::Delete { topic } => {
            api.delete(&format!("/v1/topics/{}", seg(&topic))).await?;
            if json {
                table::print_json(&json!({"deleted": topic}))?;
            } else {
                outln!("deleted topic {topic}");
            }
        }
    }
    Ok(Outcome::Ok)
}

/// The `POST /v1/topics` body: only the fields given on the command line.
fn create_body(args: &TopicCreateArgs) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), json!(args.name));
    let limit = |l: Limit| match l {
        Limit::Unlimited => Value::Null,
        Limit::Value(v) => json!(v),
    };
    if let Some(p) = args.partitions {
        body.insert("partitions".into(), json!(p));
    }
    if let Some(l) = args.retention_ms {
        body.insert("retention_ms".into(), limit(l));
    }
    if let Some(l) = args.retention_bytes {
        body.insert("retention_bytes".into(), limit(l));
    }
    if let Some(s) = args.segment_bytes {
        body.insert("segment_bytes".into(), json!(s));
    }
    if let Some(c) = args.cleanup_policy {
        let word = match c {
            CleanupPolicyArg::Delete => "delete",
            CleanupPolicyArg::Compact => "compact",
        };
        body.insert("cleanup_policy".into(), json!(word));
    }
    if let Some(c) = args.compression {
        let word = match c {
            CompressionArg::None => "none",
            CompressionArg::Zstd => "zstd",
        };
        body.insert("compression".into(), json!(word));
    }
    if let Some(s) = args.sync {
        let v = match s {
            SyncArg::Always => json!("always"),
            SyncArg::IntervalMs(ms) => json!({ "interval_ms": ms }),
        };
        body.insert("sync".into(), v);
    }
    if let Some(m) = args.max_message_bytes {
        body.insert("max_message_bytes".into(), json!(m));
    }
    Value::Object(body)
}

fn u64_field(v: &Value, name: &str) -> u64 {
    v.get(name).and_then(Value::as_u64).unwrap_or(0)
}

/// A config value as short text: strings bare, null as "unlimited", the rest as JSON.
fn config_text(v: &Value) -> String {
    match v {
        Value::Null => "unlimited".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_list(topics: &[Value]) {
    if topics.is_empty() {
        outln!("no topics");
        return;
    }
    let mut t = Table::new(&["TOPIC", "PARTITIONS", "MESSAGES", "SIZE", "SEGMENTS", "POLICY", "COMPRESSION"]);
    for topic in topics {
        let parts = topic.get("partitions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let messages: u64 =
            parts.iter().map(|p| u64_field(p, "end_offset").saturating_sub(u64_field(p, "start_offset"))).sum();
        let size: u64 = parts.iter().map(|p| u64_field(p, "size_bytes")).sum();
        let segments: u64 = parts.iter().map(|p| u64_field(p, "segments")).sum();
        let config = topic.get("config").cloned().unwrap_or(Value::Null);
        t.row(vec![
            topic.get("name").and_then(Value::as_str).unwrap_or("?").to_string(),
            parts.len().to_string(),
            table::count(messages),
            table::bytes(size),
            table::count(segments),
            config.get("cleanup_policy").map(config_text).unwrap_or_default(),
            config.get("compression").map(config_text).unwrap_or_default(),
        ]);
    }
    t.print();
}

/// Prints a topic description: its configuration, then one row per partition.
pub fn print_description(desc: &Value) {
    outln!("topic {}", desc.get("name").and_then(Value::as_str).unwrap_or("?"));
    if let Some(config) = desc.get("config").and_then(Value::as_object) {
        let pairs: Vec<(&str, String)> = config.iter().map(|(k, v)| (k.as_str(), config_text(v))).collect();
        outln!();
        table::print_pairs(&pairs);
    }
    let parts = desc.get("partitions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut t = Table::new(&["PARTITION", "START", "END", "MESSAGES", "SIZE", "SEGMENTS"]);
    for p in parts {
        let (start, end) = (u64_field(p, "start_offset"), u64_field(p, "end_offset"));
        t.row(vec![
            u64_field(p, "partition").to_string(),
            start.to_string(),
            end.to_string(),
            table::count(end.saturating_sub(start)),
            table::bytes(u64_field(p, "size_bytes")),
            u64_field(p, "segments").to_string(),
        ]);
    }
    outln!();
    t.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_has_only_given_fields() {
        let args = TopicCreateArgs {
            name: "t".into(),
            partitions: Some(3),
            retention_ms: Some(Limit::Unlimited),
            retention_bytes: None,
            segment_bytes: None,
            cleanup_policy: Some(CleanupPolicyArg::Compact),
            compression: None,
            sync: Some(SyncArg::IntervalMs(50)),
            max_message_bytes: None,
        };
        assert_eq!(
            create_body(&args),
            json!({"name": "t", "partitions": 3, "retention_ms": null, "cleanup_policy": "compact",
                   "sync": {"interval_ms": 50}})
        );
    }
}
