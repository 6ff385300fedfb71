//! The three contenders and the operations each must carry out the same way.

pub mod handwritten;
pub mod sqlx_pool;
pub mod store;

use anyhow::Result;
use std::future::Future;
use uuid::Uuid;

/// How many connections every contender's pool holds.
pub const POOL_SIZE: u32 = 16;

/// A conversation and its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    /// The owner's user id.
    pub owner: Uuid,
    /// The conversation's id.
    pub conversation: Uuid,
}

/// A message to append, as an application would receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// `user`, `assistant`, ...
    pub role: String,
    /// The text (about 200 bytes in this benchmark).
    pub content: String,
    /// Tokens the provider charged.
    pub tokens_used: Option<i32>,
}

/// The title of every conversation workload W7 starts.
pub const NEW_TITLE: &str = "benchmark conversation";
/// Its AI provider.
pub const NEW_PROVIDER: &str = "openai";
/// Its model.
pub const NEW_MODEL: &str = "gpt-4o";

/// The page size of workload W6.
pub const PAGE_SIZE: i64 = 50;

/// One way of doing the benchmark's work on PostgreSQL. Every operation
/// returns how many rows it produced, which [`crate::verify`] compares
/// across contenders; a row that is not there is an error.
pub trait Contender: Send + Sync + 'static {
    /// The name in the report.
    fn name(&self) -> &'static str;

    /// Reads the whole user row with this id.
    fn user_by_id(&self, id: Uuid) -> impl Future<Output = Result<usize>> + Send;

    /// Reads the whole user row whose email equals `email` ignoring case,
    /// with the store's normalisation of `email` (trimmed, lower-cased).
    fn user_by_email(&self, email: &str) -> impl Future<Output = Result<usize>> + Send;

    /// In one transaction: touches the conversation (checking its owner and
    /// taking its time), then inserts one message returning the row.
    fn append_message(
        &self,
        to: Owned,
        draft: &Draft,
    ) -> impl Future<Output = Result<usize>> + Send;

    /// As [`Contender::append_message`] for a whole batch, inserted by one
    /// statement that takes each column as an array; the rows come back
    /// ordered by id.
    fn append_messages(
        &self,
        to: Owned,
        drafts: &[Draft],
    ) -> impl Future<Output = Result<usize>> + Send;

    /// Checks the owner, then reads the newest [`PAGE_SIZE`] messages
    /// (asking for one more, to know whether another page follows).
    fn newest_messages(&self, of: Owned) -> impl Future<Output = Result<usize>> + Send;

    /// In one transaction: inserts a conversation and its first message,
    /// both returning their rows.
    fn create_conversation(
        &self,
        owner: Uuid,
        first: &Draft,
    ) -> impl Future<Output = Result<usize>> + Send;

    /// Checks a connection out of the pool and returns it, with no query.
    fn checkout(&self) -> impl Future<Output = Result<usize>> + Send;
}

/// `n` fresh random ids in ascending order, as the store gives the messages
/// of one batch (so that `(created_at, id)` keeps the order they came in).
pub fn ascending_ids(n: usize) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    ids.sort_unstable();
    ids
}

/// The drafts of an append as the arrays that
/// [`crate::sql::APPEND_MESSAGES`] binds (the ids apart), built the way the
/// store builds them: one vector per column.
pub struct Columns<'a> {
    /// The roles.
    pub roles: Vec<&'a str>,
    /// The texts.
    pub contents: Vec<&'a str>,
    /// The tokens used.
    pub tokens: Vec<Option<i32>>,
}

impl<'a> Columns<'a> {
    /// The columns of `drafts`.
    pub fn of(drafts: &'a [Draft]) -> Columns<'a> {
        Columns {
            roles: drafts.iter().map(|d| d.role.as_str()).collect(),
            contents: drafts.iter().map(|d| d.content.as_str()).collect(),
            tokens: drafts.iter().map(|d| d.tokens_used).collect(),
        }
    }
}
