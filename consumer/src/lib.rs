//! Rust client for `cairnd` (skeleton; see issue 6).
