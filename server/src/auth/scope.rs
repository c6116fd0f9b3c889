//! Token scopes and topic patterns.
//!
//! A scope is `admin` (everything), `metrics` (read `/metrics`), `produce:<pattern>` or
//! `consume:<pattern>`. A pattern is a topic name in which `*` matches any run of characters
//! (also none) and `?` exactly one; `produce:*` covers every topic. Patterns use the name
//! alphabet (`[A-Za-z0-9._-]`) plus the two wildcards, so a typo cannot silently widen one.

use std::fmt;

/// A topic-name glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern(String);

impl TopicPattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() || pattern.len() > 249 {
            return Err(format!("topic pattern {pattern:?} must have 1 to 249 characters"));
        }
        if let Some(c) = pattern.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-*?".contains(*c))) {
            return Err(format!("topic pattern {pattern:?} has {c:?}: use [A-Za-z0-9._-] and the wildcards * and ?"));
        }
        Ok(TopicPattern(pattern.to_string()))
    }

    /// Whether `topic` matches (iterative glob with one backtrack point: linear in practice,
    /// O(pattern × topic) at worst, both at most a few hundred bytes).
    pub fn matches(&self, topic: &str) -> bool {
        let (p, t) = (self.0.as_bytes(), topic.as_bytes());
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything, including topic and group administration.
    Admin,
    /// `GET /metrics` (for scrapers).
    Metrics,
    /// Produce to matching topics (auto-creating them when the server auto-creates).
    Produce(TopicPattern),
    /// Read matching topics and use consumer groups on them.
    Consume(TopicPattern),
}

impl Scope {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "admin" => Ok(Scope::Admin),
            None if s == "metrics" => Ok(Scope::Metrics),
            Some(("produce", p)) => Ok(Scope::Produce(TopicPattern::parse(p)?)),
            Some(("consume", p)) => Ok(Scope::Consume(TopicPattern::parse(p)?)),
            _ => Err(format!(
                "unknown scope {s:?}: expected admin, metrics, produce:<topic pattern> or consume:<topic pattern>"
            )),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Metrics => f.write_str("metrics"),
            Scope::Produce(p) => write!(f, "produce:{p}"),
            Scope::Consume(p) => write!(f, "consume:{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        TopicPattern::parse(p).unwrap().matches(t)
    }

    #[test]
    fn globs() {
        assert!(m("*", "orders") && m("*", ""));
        assert!(m("orders", "orders") && !m("orders", "orders2") && !m("orders", "order"));
        assert!(m("orders.*", "orders.eu") && m("orders.*", "orders.") && !m("orders.*", "orders"));
        assert!(m("a*b*c", "a-b-c") && m("a*b*c", "abc") && !m("a*b*c", "acb"));
        assert!(m("t?", "t1") && !m("t?", "t") && !m("t?", "t12"));
        assert!(m("*.dlq", "orders.dlq") && !m("*.dlq", "orders.dlq2"));
        assert!(m("**x", "x") && m("a**", "a"));
    }

    #[test]
    fn scopes_parse_and_print() {
        for s in ["admin", "metrics", "produce:*", "consume:orders.*", "produce:t?"] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
        for bad in ["", "Admin", "produce", "produce:", "consume:a/b", "consume:a b", "read:x", "admin:x"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }
}
