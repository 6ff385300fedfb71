//! The ceiling of a hand-written layer: tokio-postgres behind a
//! deadpool-postgres pool, every statement prepared once per connection
//! (`prepare_cached`), rows read by position.

use super::{
    ascending_ids, Columns, Contender, Draft, Owned, NEW_MODEL, NEW_PROVIDER, NEW_TITLE, PAGE_SIZE,
};
use crate::rows::{ConversationRow, MessageRow, UserRow};
use crate::sql;
use crate::target::Target;
use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::hint::black_box;
use uuid::Uuid;

/// A deadpool-postgres pool whose checkouts ask only whether the socket is
/// closed (`RecyclingMethod::Fast`), as the store's pool does.
pub struct HandWritten {
    pool: Pool,
}

impl HandWritten {
    /// Builds the pool for `target` and opens its `pool_size` connections.
    ///
    /// Fails when a connection cannot be opened.
    pub async fn connect(target: &Target, pool_size: u32) -> Result<HandWritten> {
        let config: tokio_postgres::Config = target.url().parse()?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let size = usize::try_from(pool_size)?;
        let pool = Pool::builder(manager).max_size(size).build()?;
        let held = futures_util::future::try_join_all((0..size).map(|_| pool.get())).await?;
        drop(held);
        Ok(HandWritten { pool })
    }
}

fn missing(what: &str) -> anyhow::Error {
    anyhow!("{what} not found")
}

impl HandWritten {
    /// `repo::messages::append`: one statement, one round trip; the rows in
    /// id order.
    async fn append(&self, to: Owned, drafts: &[Draft]) -> Result<Vec<MessageRow>> {
        let ids = ascending_ids(drafts.len());
        let batch = Columns::of(drafts);
        let client = self.pool.get().await?;
        let append = client.prepare_cached(sql::APPEND_MESSAGES).await?;
        let mut stored = client
            .query(
                &append,
                &[
                    &to.conversation,
                    &to.owner,
                    &ids,
                    &batch.roles,
                    &batch.contents,
                    &batch.tokens,
                ],
            )
            .await?
            .iter()
            .map(MessageRow::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        if stored.is_empty() {
            return Err(missing("conversation"));
        }
        stored.sort_by_key(|m| m.id);
        Ok(stored)
    }
}

impl Contender for HandWritten {
    fn name(&self) -> &'static str {
        "tokio-postgres"
    }

    async fn user_by_id(&self, id: Uuid) -> Result<usize> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql::USER_BY_ID).await?;
        let row = client
            .query_opt(&statement, &[&id, &1_i64])
            .await?
            .ok_or_else(|| missing("user"))?;
        black_box(UserRow::try_from(&row)?);
        Ok(1)
    }

    async fn user_by_email(&self, email: &str) -> Result<usize> {
        let email = email.trim().to_lowercase();
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql::USER_BY_EMAIL).await?;
        let row = client
            .query_opt(&statement, &[&email, &email, &1_i64])
            .await?
            .ok_or_else(|| missing("user"))?;
        black_box(UserRow::try_from(&row)?);
        Ok(1)
    }

    async fn append_message(&self, to: Owned, draft: &Draft) -> Result<usize> {
        let stored = self.append(to, std::slice::from_ref(draft)).await?;
        let message = stored
            .into_iter()
            .next()
            .ok_or_else(|| missing("conversation"))?;
        black_box(message);
        Ok(1)
    }

    async fn append_messages(&self, to: Owned, drafts: &[Draft]) -> Result<usize> {
        let stored = self.append(to, drafts).await?;
        Ok(black_box(stored).len())
    }

    async fn newest_messages(&self, of: Owned) -> Result<usize> {
        let client = self.pool.get().await?;
        let owned = client.prepare_cached(sql::CONVERSATION_IS_OWNED).await?;
        let found: bool = client
            .query_one(&owned, &[&of.conversation, &of.owner])
            .await?
            .try_get(0)?;
        if !found {
            return Err(missing("conversation"));
        }
        let list = client.prepare_cached(sql::NEWEST_MESSAGES).await?;
        let mut page = client
            .query(
                &list,
                &[
                    &of.conversation,
                    &DateTime::<Utc>::UNIX_EPOCH,
                    &(PAGE_SIZE + 1),
                ],
            )
            .await?
            .iter()
            .map(MessageRow::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        page.truncate(usize::try_from(PAGE_SIZE)?);
        Ok(black_box(page).len())
    }

    async fn create_conversation(&self, owner: Uuid, first: &Draft) -> Result<usize> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let insert = tx.prepare_cached(sql::INSERT_CONVERSATION).await?;
        let row = tx
            .query_one(
                &insert,
                &[&owner, &Some(NEW_TITLE), &NEW_PROVIDER, &Some(NEW_MODEL)],
            )
            .await?;
        let conversation = ConversationRow::try_from(&row)?;
        let insert = tx.prepare_cached(sql::INSERT_MESSAGE).await?;
        let row = tx
            .query_one(
                &insert,
                &[
                    &Uuid::new_v4(),
                    &conversation.id,
                    &first.role,
                    &first.content,
                    &first.tokens_used,
                    &conversation.created_at.unwrap_or_else(Utc::now),
                ],
            )
            .await?;
        let message = MessageRow::try_from(&row)?;
        tx.commit().await?;
        black_box((conversation, message));
        Ok(2)
    }

    async fn checkout(&self) -> Result<usize> {
        drop(black_box(self.pool.get().await?));
        Ok(0)
    }
}
