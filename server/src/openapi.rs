//! The OpenAPI 3 document served at `GET /v1/openapi.json`, generated from the route table.
//!
//! `document` walks the same [`RouteSpec`]s the router is built from: every route appears
//! with its method and path (parameters named as in the contract: `{topic}`, `{p}`,
//! `{group}`, declared from the path itself), described by `operation(operation_id)`. A
//! route without a description is listed with a bare operation, and the tests fail for it;
//! the tests also send a request for every documented operation through the real router,
//! so the document and the router cannot drift.

use serde_json::{json, Map, Value};

use crate::auth::{access, Access};
use crate::routes::RouteSpec;

/// Topic and group names (API.md: 1-249 of `[A-Za-z0-9._-]`; `.`, `..` and `__…` are refused too).
const NAME_PATTERN: &str = "^[A-Za-z0-9._-]{1,249}$";

fn name_schema() -> Value {
    json!({"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 249})
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

/// The description of one operation, by id.
pub fn operation(id: &str) -> Option<Value> {
    let bad = error_response("Malformed input (`bad_request`, `invalid_name`).");
    let missing = error_response("`topic_not_found` or `partition_not_found`.");
    Some(match id {
        "health" => json!({"summary": "Health check: 200 once the store is open.",
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema":
                {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}}}),
        "metrics" => json!({"summary": "Prometheus metrics.",
            "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}),
        "openapi" => json!({"summary": "This document.", "responses": {"200": {"description": "OpenAPI 3 document"}}}),
        "listTopics" => json!({"summary": "List topics.",
            "responses": {"200": {"description": "All topics", "content": {"application/json": {"schema":
                {"type": "object", "properties": {"topics": {"type": "array", "items": {"$ref": "#/components/schemas/TopicDescription"}}}}}}}}}),
        "createTopic" => json!({"summary": "Create a topic. Only `name` is required.",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TopicCreate"}}}},
            "responses": {"201": json_response("Created", "TopicDescription"), "400": bad,
                "409": error_response("`topic_exists`"), "413": error_response("`payload_too_large`")}}),
        "describeTopic" => json!({"summary": "Describe a topic and its partitions.",
            "responses": {"200": json_response("The topic", "TopicDescription"), "400": bad, "404": missing}}),
        "updateTopic" => json!({"summary": "Change config fields; partitions may only grow.",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TopicConfig"}}}},
            "responses": {"200": json_response("The topic", "TopicDescription"), "400": bad, "404": missing}}),
        "deleteTopic" => json!({"summary": "Delete a topic and its data.",
            "responses": {"204": {"description": "Deleted"}, "400": bad, "404": missing}}),
        "produce" => {
            json!({"summary": "Append messages. Replies after they are acknowledged per the topic's sync policy.",
            "parameters": [
                {"name": "Idempotency-Key", "in": "header", "required": false,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[!-~]+$"},
                 "description": "1-256 bytes of visible ASCII (no spaces or control characters; else 400). Repeat within the dedup window: the original offsets with duplicate=true, nothing appended."},
                {"name": "Cairn-Key", "in": "header", "required": false, "schema": {"type": "string"},
                 "description": "Key of the message (application/octet-stream)."},
                {"name": "Cairn-Partition", "in": "header", "required": false, "schema": {"type": "integer", "minimum": 0},
                 "description": "Partition (application/octet-stream, application/vnd.cairn.records); decimal digits only."}],
            "requestBody": {"required": true, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ProduceRequest"}},
                "application/x-ndjson": {"schema": {"type": "string", "description": "One ProduceMessage object per line."}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.cairn.records": {"schema": {"type": "string", "format": "binary",
                    "description": "One record batch in the on-disk format (docs/FORMAT.md)."}}}},
            "responses": {"200": json_response("Acknowledged", "ProduceReply"), "400": bad, "404": missing,
                "413": error_response("`message_too_large` or `payload_too_large`"),
                "415": error_response("`unsupported_media_type`"), "507": error_response("`insufficient_storage`")}})
        }
        "readMessages" => {
            json!({"summary": "Read messages from a partition (JSON, NDJSON, SSE follow, or raw record batches by Accept).",
            "parameters": [
                query("offset", "Start at the first message with offset >= N.", json!({"type": "integer", "minimum": 0})),
                query("from", "Start at start_offset or end_offset.", json!({"type": "string", "enum": ["earliest", "latest"]})),
                query("timestamp", "Start at the first message with timestamp >= MS.", json!({"type": "integer", "minimum": 0})),
                query("group", "Start at the group's committed offset.", name_schema()),
                query("max_messages", "At most this many messages.", json!({"type": "integer", "minimum": 1, "maximum": 10000, "default": 100})),
                query("max_bytes", "Byte budget; at least one message is returned.", json!({"type": "integer", "minimum": 1, "maximum": 67108864, "default": 1048576})),
                query("wait_ms", "Long-poll up to this long.", json!({"type": "integer", "minimum": 0, "maximum": 30000, "default": 0})),
                query("min_messages", "Long-poll until this many messages are available.", json!({"type": "integer", "minimum": 1, "maximum": 10000, "default": 1})),
                query("encoding", "How values are written.", json!({"type": "string", "enum": ["json", "base64"], "default": "json"})),
                {"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "integer"},
                 "description": "SSE: resume at this offset + 1."}],
            "responses": {"200": {"description": "Messages",
                    "headers": {"Cairn-Next-Offset": {"schema": {"type": "integer"}}, "Cairn-End-Offset": {"schema": {"type": "integer"}},
                        "Cairn-Start-Offset": {"schema": {"type": "integer"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReadReply"}},
                        "application/x-ndjson": {"schema": {"type": "string", "description": "One Message object per line."}},
                        "text/event-stream": {"schema": {"type": "string", "description": "id: <offset>, event: message, data: <Message>"}},
                        "application/vnd.cairn.records": {"schema": {"type": "string", "format": "binary"}}}},
                "400": bad, "404": error_response("`topic_not_found`, `partition_not_found` or `group_not_found`"),
                "416": {"description": "`offset_out_of_range`", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OffsetOutOfRange"}}}},
                "500": error_response("`data_corrupted` (names the segment file and position)")}})
        }
        "compactTopic" => {
            json!({"summary": "Compact the topic now: retention first; on compact topics the latest message per key stays (expired tombstones go); small sealed segments are merged and recompressed. Produces and reads go on.",
            "responses": {"200": json_response("Statistics over all partitions", "CompactionStats"), "400": bad, "404": missing}})
        }
        _ => return group_operation(id),
    })
}

fn json_body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// The consumer-group operations (`/v1/groups/...`).
fn group_operation(id: &str) -> Option<Value> {
    let bad = error_response("Malformed input (`bad_request`, `invalid_name`).");
    let group_missing = error_response("`group_not_found`");
    let missing = error_response("`topic_not_found` or `partition_not_found`.");
    let range = json!({"description": "`offset_out_of_range`", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OffsetOutOfRange"}}}});
    let done = json!({"description": "Done; the change is durable."});
    let refs = |summary: &str, body: &str| {
        json!({"summary": summary, "requestBody": json_body(body),
            "responses": {"204": done.clone(), "400": bad.clone(), "404": missing.clone(), "416": range.clone(),
                "507": error_response("`insufficient_storage`")}})
    };
    Some(match id {
        "putGroup" => {
            json!({"summary": "Set a group's config (creating the group).", "requestBody": json_body("GroupConfig"),
            "responses": {"200": json_response("The config", "GroupConfig"), "400": bad}})
        }
        "listGroups" => json!({"summary": "List groups.",
            "responses": {"200": {"description": "All groups", "content": {"application/json": {"schema":
                {"type": "object", "properties": {"groups": {"type": "array", "items": {"type": "object"}}}}}}}}}),
        "describeGroup" => {
            json!({"summary": "A group's config and, per topic and partition, committed offset, lag, in-flight and dead-lettered counts.",
            "responses": {"200": json_response("The group", "GroupDescription"), "400": bad, "404": group_missing}})
        }
        "deleteGroup" => {
            json!({"summary": "Delete a group.", "responses": {"204": {"description": "Deleted"}, "400": bad, "404": group_missing}})
        }
        "commitOffsets" => json!({"summary": "Commit offsets (next offset to process); durable before the reply.",
            "requestBody": json_body("CommitRequest"),
            "responses": {"200": json_response("The committed positions", "OffsetsReply"), "400": bad, "404": missing, "416": range}}),
        "getOffsets" => json!({"summary": "The group's positions, end offsets and lag.",
            "parameters": [query("topic", "Only this topic.", name_schema())],
            "responses": {"200": json_response("Positions", "OffsetsReply"), "400": bad, "404": error_response("`group_not_found` or `topic_not_found`")}}),
        "resetGroup" => {
            json!({"summary": "Move the group's position (clears acks and leases above it) to replay history.",
            "requestBody": json_body("ResetRequest"),
            "responses": {"200": json_response("The new positions", "OffsetsReply"), "400": bad, "404": missing, "416": range}})
        }
        "fetch" => {
            json!({"summary": "Lease up to max_messages messages across the topic's partitions (long-polls with wait_ms).",
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FetchRequest"}}}},
            "responses": {"200": json_response("Leased messages", "FetchReply"), "400": bad, "404": missing}})
        }
        "ack" => refs("Acknowledge: the messages are done.", "MessageRefs"),
        "nack" => refs("Release for redelivery, optionally after delay_ms.", "MessageRefs"),
        "extend" => refs("Extend leases by ack_timeout_ms from now.", "MessageRefs"),
        "reject" => refs("Dead-letter now, with a reason.", "MessageRefs"),
        _ => return None,
    })
}

fn schemas() -> Value {
    let config_props = json!({
        "partitions": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 1},
        "retention_ms": {"type": ["integer", "null"], "default": 604800000},
        "retention_bytes": {"type": ["integer", "null"], "default": null},
        "segment_bytes": {"type": "integer", "minimum": 4096, "maximum": 1073741824u64, "default": 134217728},
        "segment_ms": {"type": "integer"},
        "cleanup_policy": {"type": "string", "enum": ["delete", "compact"], "default": "delete"},
        "compression": {"type": "string", "enum": ["none", "zstd"], "default": "none"},
        "compression_level": {"type": "integer", "minimum": 1, "maximum": 22},
        "sync": {"oneOf": [{"type": "string", "enum": ["always"]},
            {"type": "object", "properties": {"interval_ms": {"type": "integer", "minimum": 1}}, "required": ["interval_ms"]}],
            "default": "always"},
        "max_message_bytes": {"type": "integer", "minimum": 1, "default": 1048576},
        "delete_retention_ms": {"type": "integer"}
    });
    let mut create_props = config_props.as_object().cloned().unwrap_or_default();
    create_props.insert("name".into(), name_schema());
    json!({
        "Error": {"type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        "OffsetOutOfRange": {"allOf": [{"$ref": "#/components/schemas/Error"},
            {"type": "object", "properties": {"start_offset": {"type": "integer"}, "end_offset": {"type": "integer"}}}]},
        "TopicConfig": {"type": "object", "properties": config_props},
        "TopicCreate": {"type": "object", "required": ["name"], "properties": create_props},
        "TopicDescription": {"type": "object", "properties": {
            "name": {"type": "string"}, "config": {"$ref": "#/components/schemas/TopicConfig"},
            "partitions": {"type": "array", "items": {"type": "object", "properties": {
                "partition": {"type": "integer"}, "start_offset": {"type": "integer"}, "end_offset": {"type": "integer"},
                "size_bytes": {"type": "integer"}, "segments": {"type": "integer"}}}}}},
        "ProduceMessage": {"type": "object", "additionalProperties": false, "properties": {
            "key": {"type": ["string", "null"]}, "value": {"description": "Any JSON, stored as its compact text."},
            "value_base64": {"type": "string", "format": "byte"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "partition": {"type": "integer", "minimum": 0}}},
        "ProduceRequest": {"type": "object", "additionalProperties": false, "required": ["messages"], "properties": {
            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/ProduceMessage"}}}},
        "ProduceReply": {"type": "object", "properties": {
            "offsets": {"type": "array", "items": {"type": "object", "properties": {
                "partition": {"type": "integer"}, "offset": {"type": "integer"}, "timestamp": {"type": "integer"}}}},
            "duplicate": {"type": "boolean"}}},
        "Message": {"type": "object", "properties": {
            "partition": {"type": "integer"}, "offset": {"type": "integer"}, "timestamp": {"type": "integer"},
            "key": {"type": ["string", "null"]}, "value": {}, "value_base64": {"type": "string", "format": "byte"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "GroupConfig": {"type": "object", "additionalProperties": false, "properties": {
            "start": {"type": "string", "enum": ["earliest", "latest"], "default": "earliest"},
            "ack_timeout_ms": {"type": "integer", "minimum": 1, "maximum": 43200000, "default": 30000},
            "max_deliveries": {"type": "integer", "minimum": 0, "maximum": 4294967295u64, "default": 5},
            "dead_letter_topic": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9._-]{1,249}$", "default": null},
            "ordered": {"type": "boolean", "default": false}}},
        "GroupDescription": {"type": "object", "description": "The config's fields appear twice: under `config` and at the top level.", "properties": {
            "name": {"type": "string"}, "config": {"$ref": "#/components/schemas/GroupConfig"},
            "start": {"type": "string"}, "ack_timeout_ms": {"type": "integer"}, "max_deliveries": {"type": "integer"},
            "dead_letter_topic": {"type": ["string", "null"]}, "ordered": {"type": "boolean"},
            "topics": {"type": "array", "items": {"type": "object"}},
            "partitions": {"type": "array", "items": {"type": "object", "properties": {
                "topic": {"type": "string"}, "partition": {"type": "integer"}, "committed": {"type": "integer"},
                "end_offset": {"type": "integer"}, "lag": {"type": "integer"}, "in_flight": {"type": "integer"},
                "dead_lettered": {"type": "integer"}, "redeliveries": {"type": "integer"}}}}}},
        "CommitRequest": {"type": "object", "required": ["topic", "offsets"], "additionalProperties": false, "properties": {
            "topic": name_schema(),
            "offsets": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["partition", "offset"],
                "additionalProperties": false,
                "properties": {"partition": {"type": "integer", "minimum": 0}, "offset": {"type": "integer", "minimum": 0}}}}}},
        "OffsetsReply": {"type": "object", "properties": {"offsets": {"type": "array", "items": {"type": "object", "properties": {
            "topic": {"type": "string"}, "partition": {"type": "integer"}, "offset": {"type": "integer"},
            "end_offset": {"type": "integer"}, "lag": {"type": "integer"}, "in_flight": {"type": "integer"}}}}}},
        "ResetRequest": {"type": "object", "required": ["topic", "to"], "additionalProperties": false, "properties": {
            "topic": name_schema(),
            "to": {"oneOf": [{"type": "string", "enum": ["earliest", "latest"]},
                {"type": "object", "required": ["offset"], "properties": {"offset": {"type": "integer", "minimum": 0}}},
                {"type": "object", "required": ["timestamp"], "properties": {"timestamp": {"type": "integer"}}}]},
            "partitions": {"type": "array", "items": {"type": "integer", "minimum": 0}}}},
        "FetchRequest": {"type": "object", "additionalProperties": false, "properties": {
            "max_messages": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10},
            "wait_ms": {"type": "integer", "minimum": 0, "maximum": 30000, "default": 0},
            "ack_timeout_ms": {"type": "integer", "minimum": 1, "maximum": 43200000},
            "consumer": {"type": "string"},
            "encoding": {"type": "string", "enum": ["json", "base64"], "default": "json"}}},
        "FetchReply": {"type": "object", "properties": {"messages": {"type": "array", "items": {"allOf": [
            {"$ref": "#/components/schemas/Message"},
            {"type": "object", "properties": {"delivery": {"type": "integer", "minimum": 1}}}]}}}},
        "MessageRefs": {"type": "object", "required": ["messages"], "additionalProperties": false, "properties": {
            "messages": {"type": "array", "maxItems": 10000, "items": {"type": "object", "required": ["partition", "offset"],
                "additionalProperties": false, "properties": {
                "partition": {"type": "integer", "minimum": 0}, "offset": {"type": "integer", "minimum": 0},
                "delay_ms": {"type": "integer", "minimum": 0, "maximum": 43200000},
                "delivery": {"type": "integer", "minimum": 1,
                    "description": "The fetch's delivery number: nack, extend and reject then act only if that delivery still holds the lease."},
                "timestamp": {"description": "Ignored (a fetched message may be handed back as it is)."},
                "key": {"description": "Ignored."}, "value": {"description": "Ignored."},
                "value_base64": {"description": "Ignored."}, "headers": {"description": "Ignored."}}}},
            "ack_timeout_ms": {"type": "integer", "minimum": 1, "maximum": 43200000},
            "reason": {"type": "string"}}},
        "CompactionStats": {"type": "object", "properties": {
            "segments_before": {"type": "integer"}, "segments_after": {"type": "integer"},
            "bytes_before": {"type": "integer"}, "bytes_after": {"type": "integer"},
            "messages_before": {"type": "integer"}, "messages_after": {"type": "integer"},
            "retention_segments_deleted": {"type": "integer"}, "duration_ms": {"type": "integer"}}},
        "ReadReply": {"type": "object", "properties": {
            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
            "next_offset": {"type": "integer"}, "start_offset": {"type": "integer"}, "end_offset": {"type": "integer"}}}
    })
}

/// The path parameters of `path` (`{name}` segments), as OpenAPI parameter objects.
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema =
                if name == "p" { json!({"type": "integer", "minimum": 0, "maximum": 4095}) } else { name_schema() };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// The OpenAPI document for `routes`.
pub fn document(routes: &[RouteSpec]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let mut op = operation(r.operation_id).unwrap_or_else(|| json!({"summary": r.operation_id, "responses": {}}));
        if let Value::Object(o) = &mut op {
            o.insert("operationId".into(), r.operation_id.into());
            let mut params = path_parameters(r.path);
            if let Some(Value::Array(extra)) = o.remove("parameters") {
                params.extend(extra);
            }
            if !params.is_empty() {
                o.insert("parameters".into(), Value::Array(params));
            }
            body_errors(o);
            secure(o, access(&r.method, r.path).unwrap_or(Access::Admin));
        }
        let item = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        if let Value::Object(item) = item {
            item.insert(r.method.as_str().to_ascii_lowercase(), op);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Cairn HTTP API", "version": env!("CARGO_PKG_VERSION"),
            "description": "A durable append-only log message store. Every error is {\"code\", \"message\"}."},
        "paths": paths,
        "components": {"schemas": schemas(), "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
            "description": "A token from the server's [[auth.tokens]] (stored there as its SHA-256). Servers without tokens ignore it."}}},
        "security": [{"bearerAuth": []}, {}]
    })
}

/// An operation that takes a request body may also answer `413 payload_too_large` (over
/// `body_bytes_max`) and `415 unsupported_media_type` (a `Content-Type` it does not read).
fn body_errors(op: &mut Map<String, Value>) {
    if !op.contains_key("requestBody") {
        return;
    }
    if let Some(Value::Object(responses)) = op.get_mut("responses") {
        responses.entry("413").or_insert_with(|| error_response("`payload_too_large`"));
        responses.entry("415").or_insert_with(|| error_response("`unsupported_media_type`"));
    }
}

/// Marks an operation open (`security: []`) or adds its `401` and `403` replies.
fn secure(op: &mut Map<String, Value>, needed: Access) {
    if needed == Access::Open {
        op.insert("security".into(), json!([]));
        return;
    }
    if let Some(Value::Object(responses)) = op.get_mut("responses") {
        responses.insert(
            "401".into(),
            error_response(
                "`unauthorized`: no bearer token, or one the server does not know (only when tokens are configured).",
            ),
        );
        responses.insert(
            "403".into(),
            error_response(
                "`forbidden`: the token lacks the scope this operation needs (docs/OPERATIONS.md, Security).",
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Method, Request};
    use tower::ServiceExt;

    use super::*;
    use crate::idempotency::Idempotency;
    use crate::routes;
    use crate::shutdown::Shutdown;
    use crate::state::{HandlerSettings, State};

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let table = routes::table();
        let doc = document(&table);
        let mut from_table = BTreeSet::new();
        for r in &table {
            assert!(operation(r.operation_id).is_some(), "route {} {} has no description", r.method, r.path);
            from_table.insert((r.path.to_string(), r.method.as_str().to_ascii_lowercase()));
        }
        let mut from_doc = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                from_doc.insert((path.clone(), method.clone()));
            }
        }
        assert_eq!(from_table, from_doc);
        let ids: BTreeSet<_> = table.iter().map(|r| r.operation_id).collect();
        assert_eq!(ids.len(), table.len(), "operation ids are unique");
    }

    #[test]
    fn security_is_documented() {
        let doc = document(&routes::table());
        assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
        assert_eq!(doc["paths"]["/v1/health"]["get"]["security"], json!([]));
        assert!(doc["paths"]["/v1/health"]["get"]["responses"].get("401").is_none());
        let produce = &doc["paths"]["/v1/topics/{topic}/messages"]["post"]["responses"];
        assert!(produce.get("401").is_some() && produce.get("403").is_some());
        let topic = &doc["paths"]["/v1/topics/{topic}"]["get"]["parameters"][0]["schema"];
        assert_eq!(topic["pattern"], NAME_PATTERN);
    }

    #[test]
    fn every_operation_with_a_body_documents_413_and_415() {
        let doc = document(&routes::table());
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if op.get("requestBody").is_some() {
                    for status in ["413", "415"] {
                        assert!(op["responses"].get(status).is_some(), "{method} {path} lacks {status}");
                    }
                }
            }
        }
        assert!(doc["paths"]["/v1/groups/{group}/topics/{topic}/ack"]["post"]["responses"].get("415").is_some());
    }

    #[test]
    fn path_parameters_use_the_contract_names() {
        let doc = document(&routes::table());
        let read = &doc["paths"]["/v1/topics/{topic}/partitions/{p}/messages"]["get"]["parameters"];
        let names: Vec<_> =
            read.as_array().unwrap().iter().filter(|p| p["in"] == "path").map(|p| p["name"].clone()).collect();
        assert_eq!(names, vec![json!("topic"), json!("p")]);
    }

    /// Sends one request per documented operation through the real router: each must reach a
    /// handler (no `not_found` / `method_not_allowed` from the fallbacks).
    #[tokio::test]
    async fn every_documented_operation_is_routed() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(cairn_storage::Catalog::open(dir.path(), Default::default()).unwrap());
        let (_trigger, shutdown) = Shutdown::new();
        let settings =
            HandlerSettings { auto_create_topics: true, body_bytes_max: 1 << 20, keepalive: Duration::from_secs(10) };
        let idem = Idempotency::in_memory(Duration::from_secs(60), cairn_storage::system_clock());
        let groups = crate::groups::GroupEngine::open(Arc::clone(&catalog), dir.path()).unwrap();
        let state = State::new(Arc::clone(&catalog), settings, idem, groups, shutdown);
        let app = routes::router(state);
        let doc = document(&routes::table());
        for (path, item) in doc["paths"].as_object().unwrap() {
            let concrete = path.replace("{topic}", "t").replace("{p}", "0").replace("{group}", "g");
            for method in item.as_object().unwrap().keys() {
                let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
                let req = Request::builder().method(method.clone()).uri(&concrete).body(Body::empty()).unwrap();
                let resp = app.clone().oneshot(req).await.unwrap();
                let status = resp.status().as_u16();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
                let code =
                    serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["code"].as_str().map(String::from));
                assert!(
                    !matches!(code.as_deref(), Some("not_found" | "method_not_allowed")) && status != 405,
                    "{method} {concrete} is documented but not routed ({status} {code:?})"
                );
            }
        }
        catalog.close().unwrap();
    }
}
