//! Row structs, one file per table: what a `SELECT` of a whole row gives.
//!
//! Each struct derives `Queryable` and `Selectable` against the generated
//! [`crate::schema`], so `table.select(Row::as_select())` is checked against
//! the schema at compile time. Nullable columns are `Option`s; `timestamptz`
//! is `DateTime<Utc>`, `json`/`jsonb` is [`serde_json::Value`], `inet` is
//! [`ipnet::IpNet`].
//!
//! Structs holding secrets (password and token hashes, session data)
//! implement `Debug` by hand and never print them.

pub mod conversations;
pub mod messages;
pub mod password_reset_requests;
pub mod refresh_tokens;
pub mod sessions;
pub mod template_migrations;
pub mod user_audit_log;
pub mod users;
pub mod views;
pub mod websocket_connections;

pub use conversations::Conversation;
pub use messages::Message;
pub use password_reset_requests::PasswordResetRequest;
pub use refresh_tokens::RefreshToken;
pub use sessions::Session;
pub use template_migrations::TemplateMigration;
pub use user_audit_log::AuditLogEntry;
pub use users::{Role, User, UserId};
pub use websocket_connections::WebsocketConnection;

/// What `Debug` prints in place of a secret that is present.
pub(crate) const REDACTED: &str = "***";

/// `Some("***")` when a secret is present, `None` when it is not: shows
/// whether the secret is set without showing it.
pub(crate) fn redacted<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}
