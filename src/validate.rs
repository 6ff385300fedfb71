//! Input checks that run before any query, each failing with
//! [`Error::Validation`] naming the field. Limits follow the columns'
//! declared lengths, so a value that passes always fits.

use crate::error::{Error, Result};

/// `users.email` is VARCHAR(255).
pub const EMAIL_MAX: usize = 255;
/// `users.display_name` is VARCHAR(100).
pub const DISPLAY_NAME_MAX: usize = 100;

/// Checks free text: no NUL byte (PostgreSQL cannot store one in text) and
/// at most `max` characters. Returns the text unchanged.
pub fn text<'a>(field: &'static str, value: &'a str, max: usize) -> Result<&'a str> {
    if value.contains('\0') {
        return Err(Error::validation(field, "must not contain a NUL byte"));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(Error::validation(
            field,
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    Ok(value)
}

/// Like [`text`], and also not empty or whitespace only. Returns the
/// trimmed text.
pub fn required<'a>(field: &'static str, value: &'a str, max: usize) -> Result<&'a str> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::validation(field, "must not be empty"));
    }
    text(field, trimmed, max)
}

/// Normalises an email: trimmed and lower-cased (emails are compared
/// case-insensitively), non-empty, at most 255 characters, one `@` with text
/// on both sides, no whitespace or NUL.
pub fn email(value: &str) -> Result<String> {
    let trimmed = required("email", value, EMAIL_MAX)?;
    if trimmed.chars().any(char::is_whitespace) {
        return Err(Error::validation("email", "must not contain whitespace"));
    }
    match trimmed.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            // Lower-casing can lengthen text ('İ' becomes two characters).
            let lower = trimmed.to_lowercase();
            text("email", &lower, EMAIL_MAX)?;
            Ok(lower)
        }
        _ => Err(Error::validation("email", "must look like name@domain")),
    }
}

/// A display name: trimmed, non-empty, at most 100 characters.
pub fn display_name(value: &str) -> Result<&str> {
    required("display_name", value, DISPLAY_NAME_MAX)
}

/// Checks a lifetime (positive, at most `max`) and converts it to an SQL
/// interval. Fails with [`Error::Validation`] on `field`.
pub(crate) fn interval(
    field: &'static str,
    ttl: chrono::Duration,
    max: chrono::Duration,
) -> Result<diesel::pg::data_types::PgInterval> {
    if ttl <= chrono::Duration::zero() {
        return Err(Error::validation(field, "must be positive"));
    }
    if ttl > max {
        return Err(Error::validation(
            field,
            format!("must be at most {} days", max.num_days()),
        ));
    }
    let micros = ttl
        .num_microseconds()
        .ok_or_else(|| Error::validation(field, "is too long"))?;
    Ok(diesel::pg::data_types::PgInterval::from_microseconds(
        micros,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<impl std::fmt::Debug>) -> &'static str {
        match r {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn emails() {
        assert_eq!(email("  Alice@Example.COM ").unwrap(), "alice@example.com");
        assert_eq!(email("Ünïcødé@Exämple.org").unwrap(), "ünïcødé@exämple.org");
        for bad in ["", "   ", "no-at", "@x", "x@", "a b@c", "a@b@c", "a\0@b"] {
            assert_eq!(field_of(email(bad)), "email", "{bad:?}");
        }
        let long = format!("{}@x.io", "a".repeat(EMAIL_MAX));
        assert_eq!(field_of(email(&long)), "email");
        // 255 characters that lower-case into more than 255.
        let growing = format!("{}@x.io", "\u{130}".repeat(EMAIL_MAX - 5));
        assert_eq!(growing.chars().count(), EMAIL_MAX);
        assert_eq!(field_of(email(&growing)), "email");
    }

    #[test]
    fn names_and_text() {
        assert_eq!(display_name(" Ann ").unwrap(), "Ann");
        assert_eq!(field_of(display_name(&"n".repeat(101))), "display_name");
        assert!(display_name(&"é".repeat(100)).is_ok());
        assert_eq!(field_of(display_name("  ")), "display_name");
        assert_eq!(field_of(text("bio", "a\0b", 10)), "bio");
        assert_eq!(
            text("bio", "'; DROP TABLE users; --", 100).unwrap(),
            "'; DROP TABLE users; --"
        );
    }

    #[test]
    fn lifetimes_are_checked() {
        let max = chrono::Duration::days(2);
        assert!(interval("ttl", chrono::Duration::zero(), max).is_err());
        assert!(interval("ttl", chrono::Duration::seconds(-1), max).is_err());
        assert!(interval("ttl", chrono::Duration::days(3), max).is_err());
        assert_eq!(
            interval("ttl", chrono::Duration::seconds(90), max).unwrap(),
            diesel::pg::data_types::PgInterval::from_microseconds(90_000_000)
        );
    }
}
