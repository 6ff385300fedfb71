//! The `refresh_tokens` table: long-lived tokens that mint new access
//! tokens, stored as hashes.

use super::UserId;
use crate::schema::refresh_tokens;
use chrono::{DateTime, Utc};
use std::fmt;
use uuid::Uuid;

/// One row of `refresh_tokens`.
///
/// `Debug` never shows `token_hash`: the hash is what a stolen token is
/// looked up by.
#[derive(Clone, PartialEq, diesel::Queryable, diesel::Selectable, diesel::Identifiable)]
#[diesel(table_name = refresh_tokens)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct RefreshToken {
    /// Primary key.
    pub id: Uuid,
    /// The token's owner (deleted with the user).
    pub user_id: UserId,
    /// SHA-256 hex digest of the token; unique (`unique_token_hash`).
    pub token_hash: String,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// When the token was issued.
    pub created_at: Option<DateTime<Utc>>,
    /// When the token was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("token_hash", &super::REDACTED)
            .field("expires_at", &self.expires_at)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}
