//! Row structs, one file per table: what a `SELECT` of a whole row gives,
//! beside the inputs of that table's methods (`NewLocalUser`,
//! `UserFilter`, `NewMessage`, ...). Every type here is reached one way,
//! as `models::Type`.
//!
//! Each struct derives `Queryable` and `Selectable` against the generated
//! [`crate::schema`], so `table.select(Row::as_select())` is checked against
//! the schema at compile time. Nullable columns are `Option`s; `timestamptz`
//! is `DateTime<Utc>`, `json`/`jsonb` is [`serde_json::Value`], `inet` is
//! [`ipnet::IpNet`].
//!
//! Structs holding secrets (password and token hashes, session data)
//! implement `Debug` by hand and never print them.

mod conversations;
mod messages;
mod password_reset_requests;
mod refresh_tokens;
mod sessions;
mod template_migrations;
mod user_audit_log;
mod users;
mod views;
mod websocket_connections;

pub use conversations::{Conversation, NewConversation, NewConversationRow};
pub use messages::{Message, MessageDraft, MessageOrder, NewMessage, NewMessageRow};
pub use password_reset_requests::PasswordResetRequest;
pub use refresh_tokens::RefreshToken;
pub use sessions::Session;
pub use template_migrations::TemplateMigration;
pub use user_audit_log::{AuditLogEntry, AuditQuery, NewAuditEntry, RequestMeta};
pub use users::{
    NewLocalUser, NewOAuthUser, NewUserRow, ProfileChanges, ProfileUpdate, Role, User, UserFilter,
    UserId,
};
pub use views::{
    ActiveWebsocketConnection, PendingPasswordReset, ResetStatus, WebsocketConnectionStats,
};
pub use websocket_connections::{
    NewWebsocketConnection, NewWebsocketConnectionRow, WebsocketConnection,
};

pub(crate) const REDACTED: &str = "***";

/// `Some("***")` when a secret is present, `None` when it is not: shows
/// whether the secret is set without showing it.
pub(crate) fn redacted<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}
