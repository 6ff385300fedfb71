//! The `messages` table: the messages of a conversation.

use crate::schema::messages;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One row of `messages`.
#[derive(
    Debug,
    Clone,
    PartialEq,
    serde::Serialize,
    diesel::Queryable,
    diesel::Selectable,
    diesel::Identifiable,
)]
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

/// A new row of `messages`, as the repository inserts it.
///
/// Every column is given explicitly (a `None` is sent as NULL, never as
/// `DEFAULT`), so the single-row `INSERT` always has the same SQL text and
/// stays prepared. The store's appends go through
/// [`repo::messages::append`](crate::repo::messages::append) instead, which
/// takes [`MessageDraft`]s and sets the conversation and `created_at`
/// itself: the rows of one append share that time, and their ids ascend in
/// append order, so that sorting by `(created_at, id)` gives the order in
/// which they were appended.
#[derive(Debug, Clone, diesel::Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
pub struct NewMessageRow<'a> {
    /// Primary key.
    pub id: Uuid,
    /// The conversation.
    pub conversation_id: Uuid,
    /// Who wrote it.
    pub role: &'a str,
    /// The message text.
    pub content: &'a str,
    /// Tokens the provider charged for it, when known.
    pub tokens_used: Option<i32>,
    /// When it was appended.
    pub created_at: DateTime<Utc>,
}

/// A message for [`repo::messages::append`](crate::repo::messages::append):
/// the columns the caller gives; the conversation and the time come from the
/// conversation the statement locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageDraft<'a> {
    /// Primary key.
    pub id: Uuid,
    /// Who wrote it.
    pub role: &'a str,
    /// The message text.
    pub content: &'a str,
    /// Tokens the provider charged for it, when known.
    pub tokens_used: Option<i32>,
}

/// The order of a message listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MessageOrder {
    /// The latest message first (a chat window loading history backwards).
    #[default]
    NewestFirst,
    /// The first message first (reading a conversation from its start, or
    /// fetching what was appended after a cursor).
    OldestFirst,
}

impl MessageOrder {
    /// The name used in cursor scopes.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MessageOrder::NewestFirst => "newest",
            MessageOrder::OldestFirst => "oldest",
        }
    }
}

/// A message to append to a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Who wrote it: `user`, `assistant`, `system`, ... (free text, trimmed,
    /// at most 50 characters).
    pub role: String,
    /// The text, stored exactly as given: not empty or whitespace only, no
    /// NUL byte, at most [`CONTENT_MAX_BYTES`](crate::CONTENT_MAX_BYTES) bytes.
    pub content: String,
    /// Tokens the provider charged for it, when known (not negative).
    pub tokens_used: Option<i32>,
}

impl NewMessage {
    /// A message with no token count.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        NewMessage {
            role: role.into(),
            content: content.into(),
            tokens_used: None,
        }
    }

    /// Sets the token count.
    pub fn tokens(mut self, tokens_used: i32) -> Self {
        self.tokens_used = Some(tokens_used);
        self
    }
}
