//! Queries on `messages`. Ownership of the conversation is checked by the
//! caller (see [`super::conversations::touch`] and
//! [`super::conversations::check_owned`]). Inputs are already validated.

use super::conversations::epoch;
use super::sql::coalesce_ts;
use crate::error::{Error, Result};
use crate::models::messages::NewMessageRow;
use crate::models::Message;
use crate::page::Cursor;
use crate::schema::messages;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

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

/// The keyset position of a message in a listing.
pub(crate) fn cursor_of(message: &Message) -> Cursor {
    Cursor {
        at: message.created_at.unwrap_or_else(epoch),
        id: message.id,
    }
}

/// Inserts one message and returns the row.
pub async fn insert(conn: &mut AsyncPgConnection, row: &NewMessageRow<'_>) -> Result<Message> {
    Ok(diesel::insert_into(messages::table)
        .values(row)
        .returning(Message::as_returning())
        .get_result(conn)
        .await?)
}

/// Inserts all `rows` with one multi-row `INSERT` statement and returns
/// them, in the order of `rows` when their ids ascend (as the store makes
/// them). The statement binds 6 parameters per row; PostgreSQL allows
/// 65,535 per statement, so callers keep batches below 10,922 rows.
pub async fn insert_many(
    conn: &mut AsyncPgConnection,
    rows: &[NewMessageRow<'_>],
) -> Result<Vec<Message>> {
    let mut stored: Vec<Message> = diesel::insert_into(messages::table)
        .values(rows)
        .returning(Message::as_returning())
        .get_results(conn)
        .await?;
    // PostgreSQL returns the rows of a VALUES list in order, but does not
    // promise to; the ids say the order for certain.
    stored.sort_by_key(|m| m.id);
    Ok(stored)
}

/// Message `id` of conversation `conversation`. Fails with
/// [`Error::NotFound`] when the conversation holds no such message.
pub async fn find(conn: &mut AsyncPgConnection, conversation: Uuid, id: Uuid) -> Result<Message> {
    messages::table
        .filter(messages::id.eq(id))
        .filter(messages::conversation_id.eq(conversation))
        .select(Message::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "message" })
}

/// One page of a conversation's messages in `order`, after `after` when
/// given: `limit` rows at most (the caller asks for one more than it shows).
pub async fn list(
    conn: &mut AsyncPgConnection,
    conversation: Uuid,
    order: MessageOrder,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<Message>> {
    let created = || coalesce_ts(messages::created_at, epoch());
    let mut query = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .select(Message::as_select())
        .into_boxed();
    query = match (order, after) {
        (MessageOrder::NewestFirst, Some(c)) => query.filter(
            created()
                .lt(c.at)
                .or(created().eq(c.at).and(messages::id.lt(c.id))),
        ),
        (MessageOrder::OldestFirst, Some(c)) => query.filter(
            created()
                .gt(c.at)
                .or(created().eq(c.at).and(messages::id.gt(c.id))),
        ),
        (_, None) => query,
    };
    query = match order {
        MessageOrder::NewestFirst => query.order((created().desc(), messages::id.desc())),
        MessageOrder::OldestFirst => query.order((created().asc(), messages::id.asc())),
    };
    Ok(query.limit(limit).load(conn).await?)
}
