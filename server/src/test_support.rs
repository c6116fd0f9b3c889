//! Helpers shared by the unit tests of several modules (compiled for tests only).

use proptest::prelude::*;

/// JSON-ish text: JSON punctuation, `null`, awkward numbers, short strings, integers and the
/// given `words` (the field names and literals of the bodies under test) glued together at
/// random, so that a parser gets past the first byte far more often than with plain noise.
/// Each literal piece is as likely as each other; strings and integers are one more each.
pub(crate) fn jsonish(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    const COMMON: [&str; 9] = ["{", "}", "[", "]", ",", ":", "null", "-1", "1e999"];
    let literals: Vec<&'static str> = COMMON.iter().chain(words).copied().collect();
    let weight = literals.len() as u32;
    let piece = prop_oneof![
        weight => proptest::sample::select(literals).prop_map(str::to_string),
        1 => "\"[^\"]{0,8}\"",
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}
