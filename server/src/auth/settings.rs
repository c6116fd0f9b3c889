//! The `[auth]` table of the config file and its checks.
//!
//! ```toml
//! [auth]
//! metrics_open = false          # true: /metrics needs no token
//!
//! [[auth.tokens]]
//! name = "ingest"               # shown in logs and 403 messages, never the token
//! sha256 = "<64 hex digits>"    # `cairnd hash-token`
//! scopes = ["produce:orders.*"]
//! ```
//! Names must be unique, digests well-formed and unique, and every token needs at least one
//! valid scope; anything else refuses to start (an auth config that half-loads is worse
//! than none).

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use super::scope::Scope;
use super::token::{Principal, TokenEntry, TokenHash, Tokens};

/// `[auth]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    #[serde(default)]
    pub tokens: Vec<TokenFile>,
    pub metrics_open: Option<bool>,
}

/// One `[[auth.tokens]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    pub name: String,
    pub sha256: String,
    pub scopes: Vec<String>,
}

/// The checked tokens.
pub fn tokens(entries: &[TokenFile]) -> Result<Tokens, String> {
    let (mut names, mut hashes) = (HashSet::new(), HashSet::new());
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if e.name.trim().is_empty() {
            return Err("a token has an empty name".into());
        }
        if !names.insert(e.name.clone()) {
            return Err(format!("two tokens are named {:?}", e.name));
        }
        let hash = TokenHash::from_hex(e.sha256.trim())
            .ok_or_else(|| format!("token {:?}: sha256 must be 64 hex digits (see `cairnd hash-token`)", e.name))?;
        if !hashes.insert(hash.0) {
            return Err(format!("token {:?} has the same sha256 as another token", e.name));
        }
        if e.scopes.is_empty() {
            return Err(format!("token {:?} has no scopes", e.name));
        }
        let scopes = e
            .scopes
            .iter()
            .map(|s| Scope::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|r| format!("token {:?}: {r}", e.name))?;
        out.push(TokenEntry { hash, principal: Arc::new(Principal { name: e.name.clone(), scopes }) });
    }
    Ok(Tokens::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<Tokens, String> {
        let f: AuthFile = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        tokens(&f.tokens)
    }

    #[test]
    fn good_config() {
        let h = TokenHash::of("t").to_hex();
        let t = parse(&format!("[[tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nscopes = [\"admin\", \"produce:x.*\"]\n"))
            .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.authenticate("t").unwrap().scopes.len(), 2);
    }

    #[test]
    fn bad_configs_are_refused() {
        let h = TokenHash::of("t").to_hex();
        let h2 = TokenHash::of("u").to_hex();
        let cases = [
            format!("[[tokens]]\nname = \"\"\nsha256 = \"{h}\"\nscopes = [\"admin\"]"),
            "[[tokens]]\nname = \"a\"\nsha256 = \"xyz\"\nscopes = [\"admin\"]".to_string(),
            format!("[[tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nscopes = []"),
            format!("[[tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nscopes = [\"root\"]"),
            format!("[[tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nscopes = [\"admin\"]\ntoken = \"t\""),
            format!("[[tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nscopes = [\"admin\"]\n[[tokens]]\nname = \"a\"\nsha256 = \"{h2}\"\nscopes = [\"admin\"]"),
            format!("[[tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nscopes = [\"admin\"]\n[[tokens]]\nname = \"b\"\nsha256 = \"{h}\"\nscopes = [\"admin\"]"),
        ];
        for c in cases {
            assert!(parse(&c).is_err(), "{c}");
        }
    }
}
