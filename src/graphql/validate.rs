//! Input rules of the writes. Each check names the field at fault
//! (`BAD_USER_INPUT` with `extensions.field`), so a form can put the message
//! next to the right box.
//!
//! Lengths count Unicode scalar values (what most languages call
//! characters; an emoji with a skin tone counts as two). Text is stored as
//! sent: no trimming, no normalization; only usernames (lower-cased) and
//! genres (lower-cased, trimmed, deduplicated) are canonicalized, because
//! they are compared. A value that is only whitespace counts as empty, and
//! NUL characters are refused because Postgres text cannot hold them.

use crate::error::{AppError, AppResult};

/// Refuses NUL characters, which Postgres text cannot hold (the query
/// would fail inside the database instead).
pub fn no_nul(field: &str, value: &str) -> AppResult<()> {
    if value.contains('\0') {
        return Err(AppError::bad_input(
            field,
            format!("{field} must not contain NUL characters"),
        ));
    }
    Ok(())
}

/// Checks a required text: `min..=max` characters, not blank, no NUL.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> AppResult<()> {
    no_nul(field, value)?;
    let n = value.chars().count();
    if n < min || (min > 0 && value.trim().is_empty()) {
        return Err(AppError::bad_input(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if n > max {
        return Err(AppError::bad_input(
            field,
            format!("{field} is limited to {max} characters, got {n}"),
        ));
    }
    Ok(())
}

/// Checks an integer range.
pub fn range(field: &str, value: i32, min: i32, max: i32) -> AppResult<()> {
    if !(min..=max).contains(&value) {
        return Err(AppError::bad_input(
            field,
            format!("{field} must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

/// A review's rating as stored.
pub fn rating(field: &str, value: i32) -> AppResult<i16> {
    range(field, value, 1, 10)?;
    i16::try_from(value).map_err(|_| AppError::bad_input(field, "rating out of range"))
}

/// Longest review body.
pub const REVIEW_BODY_MAX: usize = 10_000;
/// Longest comment.
pub const COMMENT_MAX: usize = 2_000;
/// Longest display name.
pub const DISPLAY_NAME_MAX: usize = 50;
/// Longest bio.
pub const BIO_MAX: usize = 500;
/// Longest title name.
pub const TITLE_NAME_MAX: usize = 200;
/// Longest synopsis.
pub const SYNOPSIS_MAX: usize = 5_000;
/// Most genres per title.
pub const GENRES_MAX: usize = 10;
/// Longest genre.
pub const GENRE_MAX: usize = 40;

/// A new username: lower-cased (usernames compare case-insensitively), then
/// 3-30 characters of a-z, 0-9 and `_` (the table has the same CHECK).
pub fn username(field: &str, raw: &str) -> AppResult<String> {
    let name = super::user::normalize_username(raw);
    let len = name.chars().count();
    if !(3..=30).contains(&len) {
        return Err(AppError::bad_input(
            field,
            format!("usernames are 3 to 30 characters, got {len}"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(AppError::bad_input(
            field,
            "usernames may only contain a-z, 0-9 and _",
        ));
    }
    Ok(name)
}

/// Shortest password.
pub const PASSWORD_MIN: usize = 8;
/// Longest password (argon2 cost grows with it; a bound keeps sign-in cheap to refuse).
pub const PASSWORD_MAX: usize = 128;

/// A new password: 8-128 characters, any characters (spaces count).
pub fn password(field: &str, value: &str) -> AppResult<()> {
    let n = value.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return Err(AppError::bad_input(
            field,
            format!("passwords are {PASSWORD_MIN} to {PASSWORD_MAX} characters, got {n}"),
        ));
    }
    if value.contains('\0') {
        return Err(AppError::bad_input(
            field,
            "passwords must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Genres as stored: trimmed, lower-cased, deduplicated (first occurrence
/// wins), each 1-40 characters, at most 10.
pub fn genres(field: &str, raw: &[String]) -> AppResult<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len().min(GENRES_MAX));
    for g in raw {
        let g = g.trim().to_lowercase();
        text(field, &g, 1, GENRE_MAX)?;
        if !out.contains(&g) {
            out.push(g);
        }
        if out.len() > GENRES_MAX {
            return Err(AppError::bad_input(
                field,
                format!("a title has at most {GENRES_MAX} genres"),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: AppResult<impl std::fmt::Debug>) -> Option<String> {
        match r {
            Err(AppError::BadInput { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn text_bounds_count_characters_not_bytes() {
        assert!(text("b", &"é".repeat(10), 1, 10).is_ok());
        assert_eq!(
            field_of(text("b", &"é".repeat(11), 1, 10)),
            Some("b".into())
        );
        assert!(field_of(text("b", "", 1, 10)).is_some());
        assert!(field_of(text("b", "  \n", 1, 10)).is_some());
        assert!(field_of(text("b", "a\0b", 1, 10)).is_some());
        assert!(text("b", "", 0, 10).is_ok());
    }

    #[test]
    fn usernames_are_lower_cased_and_checked() {
        assert_eq!(username("u", " Ana_99 ").ok(), Some("ana_99".into()));
        for bad in ["ab", &"a".repeat(31), "ana-b", "ána", "an a", "\u{212A}im"] {
            assert!(field_of(username("u", bad)).is_some(), "{bad}");
        }
    }

    #[test]
    fn genres_are_canonical() {
        let g = genres("g", &[" Drama ".into(), "drama".into(), "Sci-Fi".into()]).ok();
        assert_eq!(g, Some(vec!["drama".to_owned(), "sci-fi".to_owned()]));
        assert!(field_of(genres("g", &[" ".into()])).is_some());
        let many: Vec<String> = (0..11).map(|i| format!("g{i}")).collect();
        assert!(field_of(genres("g", &many)).is_some());
        let dupes: Vec<String> = (0..30).map(|i| format!("G{}", i % 3)).collect();
        assert_eq!(genres("g", &dupes).map(|v| v.len()).ok(), Some(3));
    }

    #[test]
    fn passwords_and_ratings() {
        assert!(password("p", "12345678").is_ok());
        assert!(field_of(password("p", "1234567")).is_some());
        assert!(field_of(password("p", &"x".repeat(129))).is_some());
        assert_eq!(rating("r", 10).ok(), Some(10));
        assert!(field_of(rating("r", 0)).is_some());
        assert!(field_of(rating("r", 11)).is_some());
    }
}
