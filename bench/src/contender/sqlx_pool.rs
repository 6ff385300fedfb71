//! sqlx 0.8: a `PgPool`, `query_as` into `FromRow` structs, statements
//! prepared once per connection (sqlx's default, `persistent(true)`).

use super::{
    ascending_ids, Columns, Contender, Draft, Owned, NEW_MODEL, NEW_PROVIDER, NEW_TITLE, PAGE_SIZE,
};
use crate::rows::{ConversationRow, MessageRow, UserRow};
use crate::sql;
use crate::target::Target;
use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::hint::black_box;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// A `PgPool` of fixed size. `test_before_acquire` is off: sqlx's default
/// pings the server on every checkout, a round trip the other two pools do
/// not make (they only ask whether the socket is closed).
pub struct Sqlx {
    pool: PgPool,
}

impl Sqlx {
    /// Builds the pool for `target` with `pool_size` open connections.
    ///
    /// Fails when a connection cannot be opened.
    pub async fn connect(target: &Target, pool_size: u32) -> Result<Sqlx> {
        let options = PgConnectOptions::from_str(&target.url())?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .min_connections(pool_size)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        let held =
            futures_util::future::try_join_all((0..pool_size).map(|_| pool.acquire())).await?;
        drop(held);
        Ok(Sqlx { pool })
    }
}

fn missing(what: &str) -> anyhow::Error {
    anyhow!("{what} not found")
}

impl Sqlx {
    /// `repo::messages::append`: one statement, one round trip; the rows in
    /// id order.
    async fn append(&self, to: Owned, drafts: &[Draft]) -> Result<Vec<MessageRow>> {
        let ids = ascending_ids(drafts.len());
        let batch = Columns::of(drafts);
        let mut stored = sqlx::query_as::<_, MessageRow>(sql::APPEND_MESSAGES)
            .bind(to.conversation)
            .bind(to.owner)
            .bind(&ids)
            .bind(&batch.roles)
            .bind(&batch.contents)
            .bind(&batch.tokens)
            .fetch_all(&self.pool)
            .await?;
        if stored.is_empty() {
            return Err(missing("conversation"));
        }
        stored.sort_by_key(|m| m.id);
        Ok(stored)
    }
}

impl Contender for Sqlx {
    fn name(&self) -> &'static str {
        "sqlx"
    }

    async fn user_by_id(&self, id: Uuid) -> Result<usize> {
        let user = sqlx::query_as::<_, UserRow>(sql::USER_BY_ID)
            .bind(id)
            .bind(1_i64)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| missing("user"))?;
        black_box(user);
        Ok(1)
    }

    async fn user_by_email(&self, email: &str) -> Result<usize> {
        let email = email.trim().to_lowercase();
        let user = sqlx::query_as::<_, UserRow>(sql::USER_BY_EMAIL)
            .bind(&email)
            .bind(&email)
            .bind(1_i64)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| missing("user"))?;
        black_box(user);
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
        let mut conn = self.pool.acquire().await?;
        let found: bool = sqlx::query_scalar(sql::CONVERSATION_IS_OWNED)
            .bind(of.conversation)
            .bind(of.owner)
            .fetch_one(&mut *conn)
            .await?;
        if !found {
            return Err(missing("conversation"));
        }
        let mut page = sqlx::query_as::<_, MessageRow>(sql::NEWEST_MESSAGES)
            .bind(of.conversation)
            .bind(DateTime::<Utc>::UNIX_EPOCH)
            .bind(PAGE_SIZE + 1)
            .fetch_all(&mut *conn)
            .await?;
        page.truncate(usize::try_from(PAGE_SIZE)?);
        Ok(black_box(page).len())
    }

    async fn create_conversation(&self, owner: Uuid, first: &Draft) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let conversation = sqlx::query_as::<_, ConversationRow>(sql::INSERT_CONVERSATION)
            .bind(owner)
            .bind(Some(NEW_TITLE))
            .bind(NEW_PROVIDER)
            .bind(Some(NEW_MODEL))
            .fetch_one(&mut *tx)
            .await?;
        let message = sqlx::query_as::<_, MessageRow>(sql::INSERT_MESSAGE)
            .bind(Uuid::new_v4())
            .bind(conversation.id)
            .bind(&first.role)
            .bind(&first.content)
            .bind(first.tokens_used)
            .bind(conversation.created_at.unwrap_or_else(Utc::now))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        black_box((conversation, message));
        Ok(2)
    }

    async fn checkout(&self) -> Result<usize> {
        drop(black_box(self.pool.acquire().await?));
        Ok(0)
    }
}
