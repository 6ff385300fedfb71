//! The rows the hand-written contenders read, with the fields (names, types,
//! order) of the store's `User`, `Message` and `Conversation`: sqlx maps them
//! by name through `FromRow`, tokio-postgres by position, as each library's
//! users would.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

/// A row of `users`, as the store's `User`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: Option<String>,
    pub display_name: String,
    pub language_preference: Option<String>,
    pub oauth_provider: Option<String>,
    pub oauth_id: Option<String>,
    pub email_verified: Option<bool>,
    pub role: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub last_login: Option<DateTime<Utc>>,
    pub avatar_url: Option<String>,
    pub additional_roles: Option<serde_json::Value>,
    pub is_blocked: Option<bool>,
    pub blocked_at: Option<DateTime<Utc>>,
    pub blocked_by: Option<Uuid>,
    pub blocked_reason: Option<String>,
    pub reset_token: Option<String>,
    pub reset_token_expires: Option<DateTime<Utc>>,
    pub reset_token_used: Option<bool>,
    pub reset_attempts: Option<i32>,
    pub reset_attempts_reset_at: Option<DateTime<Utc>>,
}

impl TryFrom<&Row> for UserRow {
    type Error = tokio_postgres::Error;

    /// Reads the columns of [`crate::sql::USER_BY_ID`] by position.
    fn try_from(row: &Row) -> Result<Self, Self::Error> {
        Ok(UserRow {
            id: row.try_get(0)?,
            email: row.try_get(1)?,
            password_hash: row.try_get(2)?,
            display_name: row.try_get(3)?,
            language_preference: row.try_get(4)?,
            oauth_provider: row.try_get(5)?,
            oauth_id: row.try_get(6)?,
            email_verified: row.try_get(7)?,
            role: row.try_get(8)?,
            created_at: row.try_get(9)?,
            updated_at: row.try_get(10)?,
            last_login: row.try_get(11)?,
            avatar_url: row.try_get(12)?,
            additional_roles: row.try_get(13)?,
            is_blocked: row.try_get(14)?,
            blocked_at: row.try_get(15)?,
            blocked_by: row.try_get(16)?,
            blocked_reason: row.try_get(17)?,
            reset_token: row.try_get(18)?,
            reset_token_expires: row.try_get(19)?,
            reset_token_used: row.try_get(20)?,
            reset_attempts: row.try_get(21)?,
            reset_attempts_reset_at: row.try_get(22)?,
        })
    }
}

/// A row of `messages`, as the store's `Message`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub role: String,
    pub content: String,
    pub tokens_used: Option<i32>,
    pub created_at: Option<DateTime<Utc>>,
}

impl TryFrom<&Row> for MessageRow {
    type Error = tokio_postgres::Error;

    fn try_from(row: &Row) -> Result<Self, Self::Error> {
        Ok(MessageRow {
            id: row.try_get(0)?,
            conversation_id: row.try_get(1)?,
            role: row.try_get(2)?,
            content: row.try_get(3)?,
            tokens_used: row.try_get(4)?,
            created_at: row.try_get(5)?,
        })
    }
}

/// A row of `conversations`, as the store's `Conversation`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: Option<String>,
    pub provider: String,
    pub model: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl TryFrom<&Row> for ConversationRow {
    type Error = tokio_postgres::Error;

    fn try_from(row: &Row) -> Result<Self, Self::Error> {
        Ok(ConversationRow {
            id: row.try_get(0)?,
            user_id: row.try_get(1)?,
            title: row.try_get(2)?,
            provider: row.try_get(3)?,
            model: row.try_get(4)?,
            created_at: row.try_get(5)?,
            updated_at: row.try_get(6)?,
        })
    }
}
