//! The `conversations` table: a user's chat conversations with an AI
//! provider.

use super::UserId;
use crate::schema::conversations;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One row of `conversations`.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, diesel::Identifiable)]
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
