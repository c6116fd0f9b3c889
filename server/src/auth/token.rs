//! Bearer tokens at rest: SHA-256 digests in the config, never the tokens themselves.
//!
//! The server keeps only `sha256(token)` per configured token. A request's token is hashed
//! and compared with *every* configured digest in constant time (no early exit, no
//! data-dependent branch per byte), so neither which token matched nor how much of a digest
//! matched shows in the reply time. Tokens made by [`generate`] carry 256 random bits.

use std::sync::Arc;

use base64::Engine as _;
use ring::digest;

use super::scope::Scope;

/// Length of a SHA-256 digest in bytes.
pub const DIGEST_BYTES: usize = 32;
/// Prefix of tokens made by [`generate`] (lets secret scanners recognise them).
pub const TOKEN_PREFIX: &str = "cairn_";

/// A SHA-256 digest of a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash(pub [u8; DIGEST_BYTES]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({})", self.to_hex())
    }
}

impl TokenHash {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut out = [0u8; DIGEST_BYTES];
        out.copy_from_slice(d.as_ref());
        TokenHash(out)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != DIGEST_BYTES * 2 {
            return None;
        }
        let mut out = [0u8; DIGEST_BYTES];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(TokenHash(out))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Equality in time independent of the contents.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        let diff = self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // black_box keeps the optimiser from turning the fold into an early-exit compare.
        std::hint::black_box(diff) == 0
    }
}

/// Who a valid token belongs to, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `name` in the config (for logs; never the token).
    pub name: String,
    pub scopes: Vec<Scope>,
}

/// One configured token.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub hash: TokenHash,
    pub principal: Arc<Principal>,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

impl Tokens {
    pub fn new(entries: Vec<TokenEntry>) -> Self {
        Tokens { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The principal of `token`, comparing its digest with every entry (no early exit).
    pub fn authenticate(&self, token: &str) -> Option<Arc<Principal>> {
        let hash = TokenHash::of(token);
        let mut found = None;
        for e in &self.entries {
            if e.hash.ct_eq(&hash) {
                found = Some(Arc::clone(&e.principal));
            }
        }
        found
    }
}

/// A new random token: [`TOKEN_PREFIX`] and 32 random bytes in unpadded base64url.
pub fn generate() -> Result<String, ring::error::Unspecified> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        // sha256("secret")
        let h = TokenHash::of("secret");
        assert_eq!(h.to_hex(), "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b");
        assert_eq!(TokenHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
    }

    #[test]
    fn bad_hex_is_refused() {
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65), &"é".repeat(32)] {
            assert_eq!(TokenHash::from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn authenticate_finds_the_matching_entry() {
        let p = |name: &str| Arc::new(Principal { name: name.into(), scopes: vec![Scope::Admin] });
        let tokens = Tokens::new(vec![
            TokenEntry { hash: TokenHash::of("one"), principal: p("a") },
            TokenEntry { hash: TokenHash::of("two"), principal: p("b") },
        ]);
        assert_eq!(tokens.authenticate("two").map(|p| p.name.clone()), Some("b".into()));
        assert!(tokens.authenticate("three").is_none());
        assert!(tokens.authenticate("").is_none());
        assert!(!TokenHash::of("one").ct_eq(&TokenHash::of("two")));
    }

    #[test]
    fn generated_tokens_differ_and_have_the_prefix() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43, "{a}");
    }
}
