//! Keyset pagination: page requests, pages, and opaque cursors.
//!
//! A cursor names the last row of a page by its sort key (a timestamp and an
//! id) and carries a fingerprint of the query it came from (the filters, the
//! order). It is bound as query parameters only, so it cannot change the
//! query; a cursor that does not decode, or that belongs to another query,
//! is [`Error::Validation`] on field `cursor`.

use crate::error::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The page size used when a request gives none.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
/// The largest page size; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: i64 = 100;

const VERSION: u8 = 1;
const LEN: usize = 1 + 8 + 16 + 8;

/// What page to read: how many rows, and after which cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct PageRequest {
    /// Rows wanted; `None` means [`DEFAULT_PAGE_SIZE`]. Values below 1 are
    /// read as 1 and values above [`MAX_PAGE_SIZE`] as the maximum.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page; `None` for the first page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page with the given size.
    pub fn first(limit: i64) -> Self {
        PageRequest {
            limit: Some(limit),
            cursor: None,
        }
    }

    /// The page after `cursor`, with the given size.
    pub fn after(limit: i64, cursor: impl Into<String>) -> Self {
        PageRequest {
            limit: Some(limit),
            cursor: Some(cursor.into()),
        }
    }

    /// The page size after clamping to `1..=MAX_PAGE_SIZE`.
    pub fn size(&self) -> i64 {
        self.limit
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE)
    }
}

/// One page of rows, and the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page<T> {
    /// The rows, in the query's order.
    pub items: Vec<T>,
    /// Pass this in the next [`PageRequest`] to continue; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A decoded cursor: the sort key of the last row seen. The repository
/// functions take it; callers of the store only see its opaque text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The row's timestamp (its creation time in every listing).
    pub at: DateTime<Utc>,
    /// The row's id, which breaks ties between equal timestamps.
    pub id: Uuid,
}

/// PostgreSQL's earliest `timestamptz`, 4714-11-24 00:00:00 UTC BC, in
/// microseconds since 1970. Its latest (year 294276) lies beyond chrono's
/// range, so every time chrono decodes is below it.
const PG_EARLIEST_MICROS: i64 = -210_866_803_200_000_000;

/// A stable fingerprint of a query's shape (FNV-1a over its parts), so that
/// a cursor cannot be replayed against other filters.
pub(crate) fn scope(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.as_bytes().iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

impl Cursor {
    pub(crate) fn encode(&self, scope: u64) -> String {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(self.id.as_bytes());
        bytes.extend_from_slice(&scope.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a cursor made by [`Cursor::encode`] with the same scope.
    ///
    /// Fails with [`Error::Validation`] on field `cursor` otherwise.
    pub(crate) fn decode(text: &str, scope: u64) -> Result<Cursor> {
        let bad = |why: &str| Error::validation("cursor", why.to_owned());
        if text.len() > 64 {
            return Err(bad("is not a cursor of this list"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| bad("is not a cursor of this list"))?;
        if bytes.len() != LEN || bytes[0] != VERSION {
            return Err(bad("is not a cursor of this list"));
        }
        let mut micros = [0u8; 8];
        micros.copy_from_slice(&bytes[1..9]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[9..25]);
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&bytes[25..33]);
        if u64::from_be_bytes(tag) != scope {
            return Err(bad("belongs to another query (filters or order changed)"));
        }
        let micros = i64::from_be_bytes(micros);
        // Before PostgreSQL's first instant no row can sit, and binding
        // such a time would fail in the database, not here.
        if micros < PG_EARLIEST_MICROS {
            return Err(bad("holds an impossible time"));
        }
        let at = DateTime::<Utc>::from_timestamp_micros(micros)
            .ok_or_else(|| bad("holds an impossible time"))?;
        Ok(Cursor {
            at,
            id: Uuid::from_bytes(id),
        })
    }
}

/// Builds a page from `size + 1` fetched rows: the extra row only says that
/// another page exists.
pub(crate) fn paginate<T>(
    mut rows: Vec<T>,
    size: i64,
    scope: u64,
    key: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let size = usize::try_from(size).unwrap_or(0);
    let more = rows.len() > size;
    rows.truncate(size);
    let next_cursor = if more {
        rows.last().map(|r| key(r).encode(scope))
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_within_their_scope_only() {
        let c = Cursor {
            at: DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        let s = scope(&["users", "role=admin"]);
        let text = c.encode(s);
        assert_eq!(Cursor::decode(&text, s).unwrap(), c);
        let other = scope(&["users", "role=user"]);
        assert!(matches!(
            Cursor::decode(&text, other),
            Err(Error::Validation {
                field: "cursor",
                ..
            })
        ));
    }

    #[test]
    fn tampered_cursors_are_validation_errors() {
        let s = scope(&["x"]);
        let good = Cursor {
            at: Utc::now(),
            id: Uuid::nil(),
        }
        .encode(s);
        let mut flipped = good.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            "",
            "not base64 !!",
            "AAAA",
            "' OR 1=1 --",
            &"A".repeat(500),
            &good[..good.len() - 2],
        ] {
            match Cursor::decode(bad, s) {
                Err(Error::Validation { field, .. }) => assert_eq!(field, "cursor"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        // A flipped byte either fails or decodes to a different position in
        // the same query; it can never change the query.
        if let Ok(c) = Cursor::decode(&flipped, s) {
            assert_ne!(Cursor::decode(&good, s).unwrap(), c);
        }
    }

    #[test]
    fn page_sizes_are_clamped() {
        assert_eq!(PageRequest::default().size(), DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::first(0).size(), 1);
        assert_eq!(PageRequest::first(-5).size(), 1);
        assert_eq!(PageRequest::first(1_000_000).size(), MAX_PAGE_SIZE);
        assert_eq!(PageRequest::first(7).size(), 7);
    }
}
