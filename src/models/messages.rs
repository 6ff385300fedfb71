//! The `messages` table: the messages of a conversation.

use crate::schema::messages;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One row of `messages`.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, diesel::Identifiable)]
#[diesel(table_name = messages)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Message {
    /// Primary key.
    pub id: Uuid,
    /// The conversation (the message is deleted with it).
    pub conversation_id: Uuid,
    /// Who wrote it: `user`, `assistant`, `system`, ... (free text).
    pub role: String,
    /// The message text.
    pub content: String,
    /// Tokens the provider charged for it, when known.
    pub tokens_used: Option<i32>,
    /// When it was written.
    pub created_at: Option<DateTime<Utc>>,
}
