//! A consumer group's configuration (`PUT /v1/groups/{group}`), its defaults and bounds.

use serde::{Deserialize, Serialize};

/// Default lease length, in ms.
pub const ACK_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Longest lease a fetch or extend may ask for: 12 hours (Celery ETA tasks can wait long;
/// the Celery transport extends leases it holds).
pub const ACK_TIMEOUT_MS_MAX: u64 = 12 * 3600 * 1000;
/// Default deliveries before a message is dead-lettered.
pub const MAX_DELIVERIES_DEFAULT: u32 = 5;

/// Where a group starts in a topic it has never consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    #[default]
    Earliest,
    Latest,
}

/// A group's configuration, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    pub start: StartAt,
    pub ack_timeout_ms: u64,
    /// 0: unlimited.
    pub max_deliveries: u32,
    /// `None`: `<topic>.dlq`.
    pub dead_letter_topic: Option<String>,
    pub ordered: bool,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            start: StartAt::Earliest,
            ack_timeout_ms: ACK_TIMEOUT_MS_DEFAULT,
            max_deliveries: MAX_DELIVERIES_DEFAULT,
            dead_letter_topic: None,
            ordered: false,
        }
    }
}

impl GroupConfig {
    /// Checks bounds; returns a message for a `400 bad_request` otherwise.
    pub fn validate(&self) -> Result<(), String> {
        check_ack_timeout(self.ack_timeout_ms)?;
        if let Some(t) = &self.dead_letter_topic {
            if cairn_storage::validate_name(t).is_err() || t.starts_with("__") {
                return Err(format!("dead_letter_topic {t:?} is not a valid topic name"));
            }
        }
        Ok(())
    }

    /// The dead-letter topic for messages of `topic`.
    pub fn dead_letter_topic_for(&self, topic: &str) -> String {
        match &self.dead_letter_topic {
            Some(t) => t.clone(),
            None => format!("{topic}.dlq"),
        }
    }
}

/// Checks a lease length given in a request or config.
pub fn check_ack_timeout(ms: u64) -> Result<(), String> {
    if ms == 0 || ms > ACK_TIMEOUT_MS_MAX {
        return Err(format!("ack_timeout_ms must be between 1 and {ACK_TIMEOUT_MS_MAX}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_json_shape() {
        let c: GroupConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, GroupConfig::default());
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["start"], "earliest");
        assert_eq!(v["ack_timeout_ms"], 30000);
        assert_eq!(v["max_deliveries"], 5);
        assert!(v["dead_letter_topic"].is_null());
        assert_eq!(v["ordered"], false);
        assert!(serde_json::from_str::<GroupConfig>(r#"{"start":"middle"}"#).is_err());
        assert!(serde_json::from_str::<GroupConfig>(r#"{"bogus":1}"#).is_err());
        assert_eq!(c.dead_letter_topic_for("orders"), "orders.dlq");
    }

    #[test]
    fn bounds() {
        assert!(GroupConfig { ack_timeout_ms: 0, ..GroupConfig::default() }.validate().is_err());
        assert!(GroupConfig { dead_letter_topic: Some("a/b".into()), ..GroupConfig::default() }.validate().is_err());
        assert!(GroupConfig { dead_letter_topic: Some("dead".into()), ..GroupConfig::default() }.validate().is_ok());
    }
}
