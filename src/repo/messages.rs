//! Queries on `messages`. Ownership of the conversation is checked by the
//! caller (see [`super::conversations::touch`] and
//! [`super::conversations::check_owned`]). Inputs are already validated.

use super::cache_by_sql::RenderOnce;
use super::columns::{Columns, Rendered};
use super::conversations::epoch;
use crate::error::{Error, Result};
use crate::functions::coalesce_ts;
use crate::models::{Message, MessageDraft, MessageOrder, NewMessageRow, UserId};
use crate::page::Cursor;
use crate::schema::messages;
use diesel::dsl::AsSelect;
use diesel::expression::Expression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The keyset position of a message in a listing.
pub(crate) fn cursor_of(message: &Message) -> Cursor {
    Cursor {
        at: message.created_at.unwrap_or_else(epoch),
        id: message.id,
    }
}

/// Inserts one message and returns the row.
pub async fn insert(mut conn: &AsyncPgConnection, row: &NewMessageRow<'_>) -> Result<Message> {
    Ok(diesel::insert_into(messages::table)
        .values(row)
        .returning(Message::columns())
        .render_once()
        .get_result(&mut conn)
        .await?)
}

/// Appends `drafts` to conversation `conversation` of `owner` in one
/// statement, one round trip, and returns the stored rows in the order of
/// `drafts` when their ids ascend (as the store makes them).
///
/// The statement's first part is [`touch`](super::conversations::touch)'s
/// `UPDATE`: it checks the owner, locks the conversation and moves its
/// `updated_at` to `clock_timestamp()`; its second inserts every draft with
/// that time as `created_at`, from four array parameters whatever the number
/// of drafts. A data-modifying `WITH` is one statement, so the two commit
/// together; and the lock serialises appends to one conversation, so times
/// increase in commit order.
///
/// Fails with [`Error::NotFound`] (entity `conversation`) unless `owner`
/// owns the conversation; nothing is then written. Callers pass at least one
/// draft (none would be indistinguishable from a foreign conversation).
pub async fn append(
    mut conn: &AsyncPgConnection,
    owner: UserId,
    conversation: Uuid,
    drafts: &[MessageDraft<'_>],
) -> Result<Vec<Message>> {
    let mut stored: Vec<Message> = Append::new(owner, conversation, drafts)
        .get_results(&mut conn)
        .await?;
    if stored.is_empty() {
        return Err(Error::NotFound {
            entity: "conversation",
        });
    }
    stored.sort_by_key(|m| m.id);
    Ok(stored)
}

/// The statement of [`append`]. Its text is fixed (the drafts go in as
/// arrays), so it is prepared once per connection and kept.
struct Append<'a> {
    conversation: Uuid,
    owner: UserId,
    ids: Vec<Uuid>,
    roles: Vec<&'a str>,
    contents: Vec<&'a str>,
    tokens: Vec<Option<i32>>,
    returning: Columns<Message>,
}

impl<'a> Append<'a> {
    fn new(owner: UserId, conversation: Uuid, drafts: &[MessageDraft<'a>]) -> Append<'a> {
        Append {
            conversation,
            owner,
            ids: drafts.iter().map(|d| d.id).collect(),
            roles: drafts.iter().map(|d| d.role).collect(),
            contents: drafts.iter().map(|d| d.content).collect(),
            tokens: drafts.iter().map(|d| d.tokens_used).collect(),
            returning: Message::columns(),
        }
    }
}

impl QueryId for Append<'_> {
    type QueryId = Append<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for Append<'_> {
    type SqlType = <AsSelect<Message, Pg> as Expression>::SqlType;
}

impl QueryFragment<Pg> for Append<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Array, Int4, Nullable, Text, Uuid as SqlUuid};
        out.push_sql(
            r#"WITH "touched" AS (UPDATE "conversations" SET "updated_at" = clock_timestamp() WHERE (("conversations"."id" = "#,
        );
        out.push_bind_param::<SqlUuid, _>(&self.conversation)?;
        out.push_sql(r#") AND ("conversations"."user_id" = "#);
        out.push_bind_param::<SqlUuid, _>(&self.owner)?;
        out.push_sql(
            r#")) RETURNING "conversations"."id", "conversations"."updated_at") INSERT INTO "messages" ("id", "conversation_id", "role", "content", "tokens_used", "created_at") SELECT "drafts"."id", "touched"."id", "drafts"."role", "drafts"."content", "drafts"."tokens_used", "touched"."updated_at" FROM "touched", unnest("#,
        );
        out.push_bind_param::<Array<SqlUuid>, _>(&self.ids)?;
        out.push_sql("::uuid[], ");
        out.push_bind_param::<Array<Text>, _>(&self.roles)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(&self.contents)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<Int4>>, _>(&self.tokens)?;
        out.push_sql(
            r#"::int4[]) AS "drafts" ("id", "role", "content", "tokens_used") RETURNING "#,
        );
        self.returning.walk_ast(out.reborrow())
    }
}

/// Message `id` of conversation `conversation`. Fails with
/// [`Error::NotFound`] when the conversation holds no such message.
pub async fn find(mut conn: &AsyncPgConnection, conversation: Uuid, id: Uuid) -> Result<Message> {
    messages::table
        .filter(messages::id.eq(id))
        .filter(messages::conversation_id.eq(conversation))
        .select(Message::columns())
        .first(&mut conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "message" })
}

/// One page of a conversation's messages in `order`, after `after` when
/// given: `limit` rows at most (the caller asks for one more than it shows).
pub async fn list(
    mut conn: &AsyncPgConnection,
    conversation: Uuid,
    order: MessageOrder,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<Message>> {
    let created = || coalesce_ts(messages::created_at, epoch());
    let mut query = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .select(Message::columns())
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
    Ok(query.limit(limit).load(&mut conn).await?)
}
