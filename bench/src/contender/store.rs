//! The contender under test: `pronghorn-db`'s [`PgStore`], called through its
//! public API (the store traits, and [`PgStore::transaction`] composing repo
//! functions for multi-step work).

use super::{Contender, Draft, Owned, NEW_MODEL, NEW_PROVIDER, NEW_TITLE, PAGE_SIZE, POOL_SIZE};
use crate::target::Target;
use anyhow::{bail, Result};
use pronghorn_db::models::NewConversationRow;
use pronghorn_db::models::NewMessageRow;
use pronghorn_db::models::{MessageOrder, NewMessage, UserId};
use pronghorn_db::repo::{conversations, messages};
use pronghorn_db::{
    Configuration, ConversationStore, DbConfig, PageRequest, PgStore, PoolSettings, UserStore,
};
use std::hint::black_box;
use std::time::Duration;
use uuid::Uuid;

/// [`PgStore`] with a pool of [`POOL_SIZE`], every connection open.
pub struct Store {
    store: PgStore,
}

impl Store {
    /// Builds the store for `target` through the crate's own configuration
    /// rules (`DB_CONNECTION_STRING`) and opens its connections.
    ///
    /// Fails when the URL is rejected or a connection cannot be opened.
    pub async fn connect(target: &Target, pool_size: u32) -> Result<Store> {
        let url = target.url();
        let config =
            match DbConfig::from_lookup(|k| (k == "DB_CONNECTION_STRING").then(|| url.clone()))? {
                Configuration::Configured(config) => *config,
                Configuration::NotConfigured { reason } => bail!("store not configured: {reason}"),
            };
        let config = config.with_pool(PoolSettings {
            min_idle: pool_size,
            max_size: pool_size,
            idle_timeout: Duration::from_secs(3600),
            connection_timeout: Duration::from_secs(30),
        });
        let store = Store {
            store: PgStore::new(config).await?,
        };
        let held =
            futures_util::future::try_join_all((0..pool_size).map(|_| store.store.conn())).await?;
        drop(held);
        Ok(store)
    }

    /// The store itself, for migrating the scratch database.
    pub fn inner(&self) -> &PgStore {
        &self.store
    }

    /// A pool of [`POOL_SIZE`].
    pub async fn benchmark(target: &Target) -> Result<Store> {
        Store::connect(target, POOL_SIZE).await
    }
}

fn new_message(draft: &Draft) -> NewMessage {
    NewMessage {
        role: draft.role.clone(),
        content: draft.content.clone(),
        tokens_used: draft.tokens_used,
    }
}

impl Contender for Store {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn user_by_id(&self, id: Uuid) -> Result<usize> {
        black_box(self.store.user_by_id(UserId(id)).await?);
        Ok(1)
    }

    async fn user_by_email(&self, email: &str) -> Result<usize> {
        black_box(self.store.user_by_email(email).await?);
        Ok(1)
    }

    async fn append_message(&self, to: Owned, draft: &Draft) -> Result<usize> {
        let message = self
            .store
            .append_message(UserId(to.owner), to.conversation, new_message(draft))
            .await?;
        black_box(message);
        Ok(1)
    }

    async fn append_messages(&self, to: Owned, drafts: &[Draft]) -> Result<usize> {
        let batch = drafts.iter().map(new_message).collect();
        let stored = self
            .store
            .append_messages(UserId(to.owner), to.conversation, batch)
            .await?;
        Ok(black_box(stored).len())
    }

    async fn newest_messages(&self, of: Owned) -> Result<usize> {
        let page = self
            .store
            .list_messages(
                UserId(of.owner),
                of.conversation,
                MessageOrder::NewestFirst,
                &PageRequest::first(PAGE_SIZE),
            )
            .await?;
        Ok(black_box(page).items.len())
    }

    async fn create_conversation(&self, owner: Uuid, first: &Draft) -> Result<usize> {
        // `PgStore::transaction` takes a closure whose future may borrow the
        // connection only, so the message is moved in.
        let first = first.clone();
        let (conversation, message) = self
            .store
            .transaction(move |conn| {
                Box::pin(async move {
                    let conversation = conversations::insert(
                        conn,
                        &NewConversationRow {
                            user_id: UserId(owner),
                            title: Some(NEW_TITLE),
                            provider: NEW_PROVIDER,
                            model: Some(NEW_MODEL),
                        },
                    )
                    .await?;
                    let message = messages::insert(
                        conn,
                        &NewMessageRow {
                            id: Uuid::new_v4(),
                            conversation_id: conversation.id,
                            role: &first.role,
                            content: &first.content,
                            tokens_used: first.tokens_used,
                            created_at: conversation.created_at.unwrap_or_else(chrono::Utc::now),
                        },
                    )
                    .await?;
                    Ok((conversation, message))
                })
            })
            .await?;
        black_box((conversation, message));
        Ok(2)
    }

    async fn checkout(&self) -> Result<usize> {
        drop(black_box(self.store.conn().await?));
        Ok(0)
    }
}
