//! Relay global ids: `base64url("Type:id")`, opaque to clients.

use async_graphql::ID;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::{AppError, AppResult};

/// Object types that have global ids.
pub const NODE_TYPES: [&str; 4] = ["Title", "User", "Review", "Comment"];

/// The global id of a row of `type_name`.
pub fn to_global(type_name: &str, id: i64) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{type_name}:{id}")))
}

/// Splits a global id into its type name and row id; `None` when malformed.
pub fn parse_global(id: &str) -> Option<(&'static str, i64)> {
    let raw = URL_SAFE_NO_PAD.decode(id.trim_end_matches('=')).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let (ty, num) = text.split_once(':')?;
    let ty = NODE_TYPES.into_iter().find(|t| *t == ty)?;
    let num: i64 = num.parse().ok().filter(|n| *n > 0)?;
    Some((ty, num))
}

/// Decodes a global id argument; malformed → `BAD_USER_INPUT` naming `field`.
/// Returns `None` for a well-formed id of another type (the caller answers null).
pub fn decode(id: &ID, expected: &str, field: &str) -> AppResult<Option<i64>> {
    match parse_global(id) {
        Some((ty, n)) if ty == expected => Ok(Some(n)),
        Some(_) => Ok(None),
        None => Err(AppError::bad_input(
            field,
            format!("`{}` is not a valid {expected} id", id.as_str()),
        )),
    }
}

/// Like [`decode`], but an id of another type is also bad input (for writes).
pub fn require(id: &ID, expected: &str, field: &str) -> AppResult<i64> {
    decode(id, expected, field)?.ok_or_else(|| {
        AppError::bad_input(field, format!("`{}` is not a {expected} id", id.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let id = to_global("Review", 42);
        assert_eq!(parse_global(&id), Some(("Review", 42)));
        assert_eq!(decode(&id, "Review", "id"), Ok(Some(42)));
        assert_eq!(decode(&id, "Title", "id"), Ok(None));
        assert!(decode(&ID("garbage!".into()), "Title", "id").is_err());
        assert!(parse_global(&ID(URL_SAFE_NO_PAD.encode("Review:-1"))).is_none());
        assert!(parse_global(&ID(URL_SAFE_NO_PAD.encode("Secret:1"))).is_none());
    }
}
