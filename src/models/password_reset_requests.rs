//! The `password_reset_requests` table: one row per requested password
//! reset, the token stored only as a hash.

use super::UserId;
use crate::schema::password_reset_requests;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use std::fmt;
use uuid::Uuid;

/// One row of `password_reset_requests`.
///
/// `Debug` never shows `reset_token_hash`.
#[derive(Clone, PartialEq, diesel::Queryable, diesel::Selectable, diesel::Identifiable)]
#[diesel(table_name = password_reset_requests)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct PasswordResetRequest {
    /// Primary key.
    pub id: Uuid,
    /// The account to reset (the request is deleted with it).
    pub user_id: UserId,
    /// The token's hash: SHA-256 hex from this crate, bcrypt from the
    /// template.
    pub reset_token_hash: String,
    /// When the reset was requested.
    pub requested_at: DateTime<Utc>,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// When the token was used; `None` while unused.
    pub used_at: Option<DateTime<Utc>>,
    /// The requester's address.
    pub ip_address: Option<IpNet>,
    /// The requester's `User-Agent`.
    pub user_agent: Option<String>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for PasswordResetRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordResetRequest")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("reset_token_hash", &super::REDACTED)
            .field("requested_at", &self.requested_at)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .field("ip_address", &self.ip_address)
            .field("user_agent", &self.user_agent)
            .field("created_at", &self.created_at)
            .finish()
    }
}
