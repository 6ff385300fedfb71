//! Queries on `conversations`. Every query that reads or changes one
//! conversation also filters on its owner, so a conversation of another user
//! is indistinguishable from a missing one. Inputs are already validated.

use super::cache_by_sql::{KeepPrepared, RenderOnce};
use super::columns::Rendered;
use crate::error::{Error, Result};
use crate::functions::{clock_timestamp, coalesce_ts};
use crate::models::NewConversationRow;
use crate::models::{Conversation, UserId};
use crate::page::Cursor;
use crate::schema::{conversations, messages};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Listings are ordered by creation time; rows whose `created_at` is NULL
/// (possible in adopted data) sort as the epoch.
pub(crate) fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The keyset position of a conversation in a listing.
pub(crate) fn cursor_of(conversation: &Conversation) -> Cursor {
    Cursor {
        at: conversation.created_at.unwrap_or_else(epoch),
        id: conversation.id,
    }
}

fn not_found() -> Error {
    Error::NotFound {
        entity: "conversation",
    }
}

/// Inserts a conversation and returns the row.
///
/// Fails with [`Error::Conflict`] on `conversations_user_id_fkey` when the
/// owner does not exist.
pub async fn insert(
    mut conn: &AsyncPgConnection,
    row: &NewConversationRow<'_>,
) -> Result<Conversation> {
    Ok(diesel::insert_into(conversations::table)
        .values(row)
        .returning(Conversation::columns())
        .render_once()
        .get_result(&mut conn)
        .await?)
}

/// The conversation `id` if `owner` owns it. Fails with [`Error::NotFound`]
/// when it does not exist or belongs to someone else.
pub async fn find_owned(
    mut conn: &AsyncPgConnection,
    owner: UserId,
    id: Uuid,
) -> Result<Conversation> {
    conversations::table
        .filter(conversations::id.eq(id))
        .filter(conversations::user_id.eq(owner))
        .select(Conversation::columns())
        .limit(1)
        .render_once()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Checks that `owner` owns conversation `id`, without reading the row.
/// Fails with [`Error::NotFound`] otherwise.
pub async fn check_owned(mut conn: &AsyncPgConnection, owner: UserId, id: Uuid) -> Result<()> {
    let found: bool = diesel::select(diesel::dsl::exists(
        conversations::table
            .filter(conversations::id.eq(id))
            .filter(conversations::user_id.eq(owner)),
    ))
    .render_once()
    .get_result(&mut conn)
    .await?;
    if found {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// One page of `owner`'s conversations, newest first, after `after` when
/// given: `limit` rows at most (the caller asks for one more than it shows).
pub async fn list(
    mut conn: &AsyncPgConnection,
    owner: UserId,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<Conversation>> {
    let created = coalesce_ts(conversations::created_at, epoch());
    let mut query = conversations::table
        .filter(conversations::user_id.eq(owner))
        .select(Conversation::columns())
        .into_boxed();
    if let Some(c) = after {
        query = query.filter(
            coalesce_ts(conversations::created_at, epoch())
                .lt(c.at)
                .or(coalesce_ts(conversations::created_at, epoch())
                    .eq(c.at)
                    .and(conversations::id.lt(c.id))),
        );
    }
    Ok(query
        .order((created.desc(), conversations::id.desc()))
        .limit(limit)
        .load(&mut conn)
        .await?)
}

/// Sets (or, with `None`, clears) the title, moves `updated_at` to now and
/// returns the row. Fails with [`Error::NotFound`] unless `owner` owns it.
pub async fn set_title(
    mut conn: &AsyncPgConnection,
    owner: UserId,
    id: Uuid,
    title: Option<&str>,
) -> Result<Conversation> {
    diesel::update(
        conversations::table
            .filter(conversations::id.eq(id))
            .filter(conversations::user_id.eq(owner)),
    )
    .set((
        conversations::title.eq(title),
        conversations::updated_at.eq(clock_timestamp().nullable()),
    ))
    .returning(Conversation::columns())
    .keep_prepared()
    .get_result(&mut conn)
    .await
    .optional()?
    .ok_or_else(not_found)
}

/// Locks conversation `id` until the transaction ends and moves its
/// `updated_at` to the current time, which it returns. Appends run this
/// first: it checks the owner, and because the lock serialises appends to
/// one conversation, the returned times increase in commit order, so a
/// reader paging oldest first after a cursor never misses a later append.
///
/// Fails with [`Error::NotFound`] unless `owner` owns the conversation.
pub async fn touch(mut conn: &AsyncPgConnection, owner: UserId, id: Uuid) -> Result<DateTime<Utc>> {
    // Every append runs this: kept prepared (its text never changes).
    let at: Option<DateTime<Utc>> = diesel::update(
        conversations::table
            .filter(conversations::id.eq(id))
            .filter(conversations::user_id.eq(owner)),
    )
    .set(conversations::updated_at.eq(clock_timestamp().nullable()))
    .returning(conversations::updated_at)
    .keep_prepared()
    .get_result(&mut conn)
    .await
    .optional()?
    .ok_or_else(not_found)?;
    at.ok_or_else(|| Error::Internal("updated_at was not set by the update".to_owned()))
}

/// Deletes conversation `id` (its messages go with it: ON DELETE CASCADE).
/// Fails with [`Error::NotFound`] unless `owner` owns it.
pub async fn delete(mut conn: &AsyncPgConnection, owner: UserId, id: Uuid) -> Result<()> {
    let n = diesel::delete(
        conversations::table
            .filter(conversations::id.eq(id))
            .filter(conversations::user_id.eq(owner)),
    )
    .execute(&mut conn)
    .await?;
    if n == 0 {
        return Err(not_found());
    }
    Ok(())
}

/// Per conversation of `owner` (only `only` when given), newest first: its
/// id, how many messages it holds and the sum of their `tokens_used` (NULL
/// counts as 0). Conversations without messages are included with zeros.
pub async fn token_totals(
    mut conn: &AsyncPgConnection,
    owner: UserId,
    only: Option<Uuid>,
) -> Result<Vec<(Uuid, i64, Option<i64>)>> {
    let mut query = conversations::table
        .left_join(messages::table)
        .filter(conversations::user_id.eq(owner))
        .group_by(conversations::id)
        .select((
            conversations::id,
            diesel::dsl::count(messages::id.nullable()),
            diesel::dsl::sum(messages::tokens_used.nullable()),
        ))
        .order((
            coalesce_ts(conversations::created_at, epoch()).desc(),
            conversations::id.desc(),
        ))
        .into_boxed();
    if let Some(id) = only {
        query = query.filter(conversations::id.eq(id));
    }
    Ok(query.load(&mut conn).await?)
}
