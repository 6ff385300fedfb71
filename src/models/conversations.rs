//! The `conversations` table: a user's chat conversations with an AI
//! provider.

use super::UserId;
use crate::schema::conversations;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One row of `conversations`.
#[derive(
    Debug,
    Clone,
    PartialEq,
    serde::Serialize,
    diesel::Queryable,
    diesel::Selectable,
    diesel::Identifiable,
)]
#[diesel(table_name = conversations)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Conversation {
    /// Primary key.
    pub id: Uuid,
    /// The owner (the conversation is deleted with the user).
    pub user_id: UserId,
    /// The title shown in the conversation list.
    pub title: Option<String>,
    /// The AI provider, e.g. `openai`.
    pub provider: String,
    /// The provider's model name.
    pub model: Option<String>,
    /// When the conversation was started.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A new row of `conversations`, as the repository inserts it.
///
/// Every column the caller decides is given explicitly (a `None` is stored
/// as NULL, never replaced by a column default), so every insert has the
/// same SQL text and reuses one prepared statement. `id`, `created_at` and
/// `updated_at` take their column defaults.
#[derive(Debug, Clone, diesel::Insertable)]
#[diesel(table_name = conversations, treat_none_as_default_value = false)]
pub struct NewConversationRow<'a> {
    /// The owner.
    pub user_id: UserId,
    /// The title, if any.
    pub title: Option<&'a str>,
    /// The AI provider.
    pub provider: &'a str,
    /// The provider's model name, if any.
    pub model: Option<&'a str>,
}

/// A new conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversation {
    /// The owner.
    pub user_id: UserId,
    /// The AI provider, e.g. `openai` (at most 50 characters).
    pub provider: String,
    /// The provider's model name (at most 100 characters).
    pub model: Option<String>,
    /// The title (at most 255 characters).
    pub title: Option<String>,
}

impl NewConversation {
    /// A conversation of `user_id` with `provider`, without model or title.
    pub fn new(user_id: UserId, provider: impl Into<String>) -> Self {
        NewConversation {
            user_id,
            provider: provider.into(),
            model: None,
            title: None,
        }
    }

    /// Sets the model name.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets the title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }
}
