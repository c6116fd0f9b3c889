//! `cairn groups list|describe|config|reset|delete`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{seg, Api};
use crate::cli::{FromArg, GroupConfigArgs, GroupResetArgs, GroupsCmd};
use crate::outcome::{Outcome, UsageError};
use crate::table::{self, Table};

pub async fn run(api: &Api, cmd: GroupsCmd, json: bool) -> anyhow::Result<Outcome> {
    match cmd {
        GroupsCmd::List => {
            let reply = api.get("/v1/groups").await?;
            if json {
                table::print_json(&reply)?;
            } else {
                print_list(reply.get("groups").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default());
            }
        }
        GroupsCmd::Describe { group } => {
            let desc = api.get(&format!("/v1/groups/{}", seg(&group))).await?;
            if json {
                table::print_json(&desc)?;
            } else {
                print_description(&group, &desc);
            }
        }
        GroupsCmd::Config(args) => {
            let config = merged_config(api, &args).await?;
            let reply = api.send_json(Method::PUT, &format!("/v1/groups/{}", seg(&args.group)), &config).await?;
            if json {
                table::print_json(&reply)?;
            } else {
                outln!("configured group {}", args.group);
                let shown = reply.get("config").unwrap_or(&reply);
                if let Some(config) = shown.as_object() {
                    print_config(config);
                }
            }
        }
        GroupsCmd::Reset(args) => {
            let reply = api
                .send_json(Method::POST, &format!("/v1/groups/{}/reset", seg(&args.group)), &reset_body(&args))
                .await?;
            if json {
                table::print_json(&reply)?;
            } else {
                outln!("reset group {} in topic {}", args.group, args.topic);
                print_offsets(reply.get("offsets").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default());
            }
        }
        GroupsCmd::Delete { group } => {
            api.delete(&format!("/v1/groups/{}", seg(&group))).await?;
            if json {
                table::print_json(&json!({"deleted": group}))?;
            } else {
                outln!("deleted group {group}");
            }
        }
    }
    Ok(Outcome::Ok)
}

/// The group's whole config with the flags given applied: `PUT` sets every field (an absent
/// one to its default), so the current config is read first (a group that does not exist yet
/// starts from the defaults).
async fn merged_config(api: &Api, args: &GroupConfigArgs) -> anyhow::Result<Value> {
    let mut changes = serde_json::Map::new();
    if let Some(start) = args.start {
        changes.insert("start".into(), json!(if start == FromArg::Latest { "latest" } else { "earliest" }));
    }
    if let Some(ms) = args.ack_timeout_ms {
        changes.insert("ack_timeout_ms".into(), json!(ms));
    }
    if let Some(n) = args.max_deliveries {
        changes.insert("max_deliveries".into(), json!(n));
    }
    if let Some(topic) = &args.dead_letter_topic {
        changes.insert("dead_letter_topic".into(), if topic == "default" { Value::Null } else { json!(topic) });
    }
    if let Some(ordered) = args.ordered {
        changes.insert("ordered".into(), json!(ordered));
    }
    if changes.is_empty() {
        let msg = "nothing to change: give at least one setting (see cairn groups config --help)";
        return Err(UsageError(msg.into()).into());
    }
    let mut config = match api.get(&format!("/v1/groups/{}", seg(&args.group))).await {
        Ok(desc) => desc.get("config").and_then(Value::as_object).cloned().unwrap_or_default(),
        Err(e) if e.code() == Some("group_not_found") => serde_json::Map::new(),
        Err(e) => return Err(e.into()),
    };
    config.extend(changes);
    Ok(Value::Object(config))
}

fn reset_body(args: &GroupResetArgs) -> Value {
    let to = match (args.to_offset, args.to_timestamp, args.to_latest) {
        (Some(o), _, _) => json!({ "offset": o }),
        (_, Some(ts), _) => json!({ "timestamp": ts }),
        (_, _, true) => json!("latest"),
        _ => json!("earliest"),
    };
    let mut body = json!({"topic": args.topic, "to": to});
    if !args.partitions.is_empty() {
        body["partitions"] = json!(args.partitions);
    }
    body
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn print_list(groups: &[Value]) {
    if groups.is_empty() {
        outln!("no groups");
        return;
    }
    let mut t = Table::new(&["GROUP", "TOPICS", "START", "ACK TIMEOUT MS", "MAX DELIVERIES", "ORDERED"]);
    for g in groups {
        let config = g.get("config");
        let topics: Vec<String> = g
            .get("topics")
            .and_then(Value::as_array)
            .map(|ts| ts.iter().map(|t| text(Some(t))).collect())
            .unwrap_or_default();
        t.row(vec![
            text(g.get("name")),
            if topics.is_empty() { "-".into() } else { topics.join(",") },
            text(config.and_then(|c| c.get("start"))),
            text(config.and_then(|c| c.get("ack_timeout_ms"))),
            text(config.and_then(|c| c.get("max_deliveries"))),
            text(config.and_then(|c| c.get("ordered"))),
        ]);
    }
    t.print();
}

fn print_description(group: &str, desc: &Value) {
    outln!("group {group}");
    if let Some(config) = desc.get("config").and_then(Value::as_object) {
        outln!();
        print_config(config);
    }
    let parts = desc.get("partitions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    outln!();
    if parts.is_empty() {
        outln!("no positions yet");
        return;
    }
    let mut t = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "IN FLIGHT", "DEAD LETTERED"]);
    for p in parts {
        t.row(
            ["topic", "partition", "committed", "end_offset", "lag", "in_flight", "dead_lettered"]
                .iter()
                .map(|f| text(p.get(*f)))
                .collect(),
        );
    }
    t.print();
}

/// A group's settings, one per line.
fn print_config(config: &serde_json::Map<String, Value>) {
    let pairs: Vec<(&str, String)> = config
        .iter()
        .map(|(k, v)| match (k.as_str(), v) {
            // null means the API's default, per topic.
            ("dead_letter_topic", Value::Null) => (k.as_str(), "<topic>.dlq (default)".to_string()),
            _ => (k.as_str(), text(Some(v))),
        })
        .collect();
    table::print_pairs(&pairs);
}

fn print_offsets(offsets: &[Value]) {
    let mut t = Table::new(&["TOPIC", "PARTITION", "OFFSET", "END", "LAG"]);
    for o in offsets {
        t.row(["topic", "partition", "offset", "end_offset", "lag"].iter().map(|f| text(o.get(*f))).collect());
    }
    t.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_bodies() {
        let mut args = GroupResetArgs {
            group: "g".into(),
            topic: "t".into(),
            to_earliest: false,
            to_latest: false,
            to_offset: Some(5),
            to_timestamp: None,
            partitions: vec![0, 2],
        };
        assert_eq!(reset_body(&args), json!({"topic": "t", "to": {"offset": 5}, "partitions": [0, 2]}));
        args.to_offset = None;
        args.to_latest = true;
        args.partitions.clear();
        assert_eq!(reset_body(&args), json!({"topic": "t", "to": "latest"}));
    }
}
