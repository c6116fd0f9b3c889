//! A consumer group's configuration (`PUT /v1/groups/{group}`), its defaults and bounds.

use super::GroupError;
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
    /// Checks bounds (`400 bad_request`) and that a dead-letter topic is a name a user may give
    /// a topic (`400 invalid_name`, as for every other topic name).
    pub fn validate(&self) -> Result<(), GroupError> {
        check_ack_timeout(self.ack_timeout_ms).map_err(GroupError::BadRequest)?;
        if let Some(t) = &self.dead_letter_topic {
            if cairn_storage::validate_name(t).is_err() || crate::names::is_internal(t) {
                return Err(GroupError::InvalidName(format!("dead_letter_topic {t:?} is not a valid topic name")));
            }
        }
        Ok(())
    }

    /// The dead-letter topic for messages of `topic`: the configured one, else `<topic>.dlq`;
    /// for a topic name too long for that (over 245 characters) the first 236 characters, a
    /// `-`, 8 hex digits of a hash of the whole name, and `.dlq` (249 characters, distinct for
    /// names that share their first 236 characters).
    pub fn dead_letter_topic_for(&self, topic: &str) -> String {
        const SUFFIX: &str = ".dlq";
        if let Some(t) = &self.dead_letter_topic {
            return t.clone();
        }
        let max = cairn_storage::format::NAME_LEN_MAX;
        if topic.len() + SUFFIX.len() <= max {
            return format!("{topic}{SUFFIX}");
        }
        // FNV-1a, 32 bits: stable across versions and platforms (the name is durable state).
        let hash = topic.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        // Topic names are ASCII ([A-Za-z0-9._-]), so any byte index is a char boundary.
        let keep = max - SUFFIX.len() - 9;
        format!("{}-{hash:08x}{SUFFIX}", topic.get(..keep).unwrap_or(topic))
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
    fn a_long_topic_name_still_gets_a_valid_distinct_dead_letter_topic() {
        let c = GroupConfig::default();
        let at_limit = "t".repeat(245);
        assert_eq!(c.dead_letter_topic_for(&at_limit), format!("{at_limit}.dlq"));
        let (a, b) = (format!("{}a", "t".repeat(248)), format!("{}b", "t".repeat(248)));
        let (da, db) = (c.dead_letter_topic_for(&a), c.dead_letter_topic_for(&b));
        for d in [&da, &db] {
            assert!(cairn_storage::validate_name(d).is_ok() && d.len() == 249 && d.ends_with(".dlq"), "{d}");
        }
        assert_ne!(da, db);
        assert_eq!(da, c.dead_letter_topic_for(&a), "stable");
        let configured = GroupConfig { dead_letter_topic: Some("dead".into()), ..GroupConfig::default() };
        assert_eq!(configured.dead_letter_topic_for(&a), "dead");
    }

    #[test]
    fn bounds() {
        assert!(GroupConfig { ack_timeout_ms: 0, ..GroupConfig::default() }.validate().is_err());
        assert!(GroupConfig { dead_letter_topic: Some("a/b".into()), ..GroupConfig::default() }.validate().is_err());
        assert!(GroupConfig { dead_letter_topic: Some("dead".into()), ..GroupConfig::default() }.validate().is_ok());
    }
}
