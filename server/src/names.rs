//! Names clients may use. Storage accepts any valid name; the server also reserves the
//! `__` prefix for its internal topics (such as `__idempotency`), which clients can neither
//! create, nor address, nor see in listings.

use crate::error::{ApiError, ErrorCode};

/// Prefix of internal topic (and group) names.
pub const RESERVED_PREFIX: &str = "__";

/// Whether `name` belongs to the server.
pub fn is_internal(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// Checks a topic or group name given by a client: the storage rules plus the reserved prefix.
pub fn check_user_name(name: &str) -> Result<(), ApiError> {
    cairn_storage::validate_name(name)?;
    if is_internal(name) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!("invalid name {name:?}: names beginning with {RESERVED_PREFIX} are reserved for internal use"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        for ok in ["orders", "a.b-c_d", "x", &"a".repeat(249)] {
            assert!(check_user_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "__idempotency", "__", &"a".repeat(250), "ü"] {
            let e = check_user_name(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidName, "{bad}");
        }
    }
}
