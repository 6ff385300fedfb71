//! Conversations and their messages: the [`ConversationStore`] part of the
//! store, its input types, and its implementations for [`PgStore`] and
//! [`DisabledStore`](crate::DisabledStore).

use super::pg::ReadFrom;
use super::PgStore;
use crate::error::{Error, Result};
use crate::models::NewConversationRow;
use crate::models::{
    Conversation, Message, MessageDraft, MessageOrder, NewConversation, NewMessage, UserId,
};
use crate::observe::observed;
use crate::page::{Page, PageRequest};
use crate::repo::conversations as repo;
use crate::repo::messages as message_repo;
use crate::validate;
use futures_util::future::join;
use pronghorn_db_macros::store_part;
use uuid::Uuid;

/// `conversations.title` is VARCHAR(255).
pub const TITLE_MAX: usize = 255;
/// `conversations.provider` is VARCHAR(50).
pub const PROVIDER_MAX: usize = 50;
/// `conversations.model` is VARCHAR(100).
pub const MODEL_MAX: usize = 100;
/// `messages.role` is VARCHAR(50).
pub const ROLE_MAX: usize = 50;
/// The largest message content, in bytes of UTF-8 (1 MiB).
pub const CONTENT_MAX_BYTES: usize = 1 << 20;
/// The most messages one [`ConversationStore::append_messages`] call takes.
/// They go in as one statement (four array parameters, whatever the count)
/// that also moves the conversation's `updated_at`, so holds its row lock
/// until it ends; the cap bounds how long that lock is held and how many
/// rows one call returns.
pub const BATCH_MAX: usize = 10_000;
/// The largest total content of one [`ConversationStore::append_messages`]
/// call, in bytes (64 MiB).
pub const BATCH_MAX_BYTES: usize = 64 << 20;

/// How much one conversation has used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TokenUsage {
    /// The conversation.
    pub conversation_id: Uuid,
    /// How many messages it holds.
    pub messages: i64,
    /// The sum of their `tokens_used` (messages without a count add 0).
    pub tokens_used: i64,
}

// ---- validation -------------------------------------------------------

/// A validated [`NewConversation`].
struct CheckedConversation {
    user_id: UserId,
    provider: String,
    model: Option<String>,
    title: Option<String>,
}

impl CheckedConversation {
    fn new(new: &NewConversation) -> Result<Self> {
        Ok(CheckedConversation {
            user_id: new.user_id,
            provider: validate::required("provider", &new.provider, PROVIDER_MAX)?.to_owned(),
            model: optional("model", new.model.as_deref(), MODEL_MAX)?,
            title: optional("title", new.title.as_deref(), TITLE_MAX)?,
        })
    }

    fn row(&self) -> NewConversationRow<'_> {
        NewConversationRow {
            user_id: self.user_id,
            title: self.title.as_deref(),
            provider: &self.provider,
            model: self.model.as_deref(),
        }
    }
}

/// An optional text: when given, trimmed, non-empty, at most `max`
/// characters, no NUL.
fn optional(field: &'static str, value: Option<&str>, max: usize) -> Result<Option<String>> {
    value
        .map(|v| validate::required(field, v, max).map(str::to_owned))
        .transpose()
}

/// Checks one message; `index` names it in batch errors. Returns the
/// trimmed role.
fn check_message(message: &NewMessage, index: Option<usize>) -> Result<String> {
    let at = |reason: String| match index {
        Some(i) => format!("message {i}: {reason}"),
        None => reason,
    };
    let with_index = |e: Error| match e {
        Error::Validation { field, reason } => Error::Validation {
            field,
            reason: at(reason),
        },
        other => other,
    };
    let role = validate::required("role", &message.role, ROLE_MAX)
        .map_err(with_index)?
        .to_owned();
    let content = &message.content;
    if content.trim().is_empty() {
        return Err(Error::validation("content", at("must not be empty".into())));
    }
    if content.contains('\0') {
        return Err(Error::validation(
            "content",
            at("must not contain a NUL byte".into()),
        ));
    }
    if content.len() > CONTENT_MAX_BYTES {
        return Err(Error::validation(
            "content",
            at(format!(
                "must be at most {CONTENT_MAX_BYTES} bytes, got {}",
                content.len()
            )),
        ));
    }
    if let Some(tokens) = message.tokens_used {
        if tokens < 0 {
            return Err(Error::validation(
                "tokens_used",
                at(format!("must not be negative, got {tokens}")),
            ));
        }
    }
    Ok(role)
}

/// Checks a batch; returns the trimmed roles in order.
fn check_batch(messages: &[NewMessage]) -> Result<Vec<String>> {
    if messages.is_empty() {
        return Err(Error::validation(
            "messages",
            "must hold at least one message",
        ));
    }
    if messages.len() > BATCH_MAX {
        return Err(Error::validation(
            "messages",
            format!(
                "must hold at most {BATCH_MAX} messages, got {}",
                messages.len()
            ),
        ));
    }
    let bytes: usize = messages.iter().map(|m| m.content.len()).sum();
    if bytes > BATCH_MAX_BYTES {
        return Err(Error::validation(
            "messages",
            format!("must hold at most {BATCH_MAX_BYTES} bytes of content, got {bytes}"),
        ));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| check_message(m, Some(i)))
        .collect()
}

/// `n` fresh random ids in ascending order: the rows of one append share a
/// `created_at`, so ascending ids keep them listed in the order given.
fn ascending_ids(n: usize) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    ids.sort_unstable();
    ids
}

/// The cursor scope of `owner`'s conversation listing.
fn conversations_scope(owner: UserId) -> u64 {
    crate::page::scope(&["conversations", &owner.to_string()])
}

/// The cursor scope of a conversation's message listing in `order`.
fn messages_scope(owner: UserId, conversation: Uuid, order: MessageOrder) -> u64 {
    crate::page::scope(&[
        "messages",
        &owner.to_string(),
        &conversation.to_string(),
        order.as_str(),
    ])
}

/// An insert naming an owner that does not exist is a missing user, not a
/// conflict the caller could resolve.
fn missing_owner(e: Error) -> Error {
    match e {
        Error::Conflict { constraint } if constraint == "conversations_user_id_fkey" => {
            Error::NotFound { entity: "user" }
        }
        other => other,
    }
}

fn usage((conversation_id, messages, tokens): (Uuid, i64, Option<i64>)) -> TokenUsage {
    TokenUsage {
        conversation_id,
        messages,
        tokens_used: tokens.unwrap_or(0),
    }
}

/// Conversations and their messages.
///
/// Every method validates its input before any query runs
/// ([`Error::Validation`] naming the field). A conversation is only visible
/// to its owner: naming another user's conversation fails with
/// [`Error::NotFound`], exactly as a missing one does, so ids cannot be
/// probed. On [`DisabledStore`](crate::DisabledStore) every method fails with [`Error::Disabled`];
/// on any store a lost connection is [`Error::Unavailable`].
#[store_part]
impl ConversationStore for PgStore {
    /// Starts a conversation and returns it.
    ///
    /// Fails with [`Error::NotFound`] (entity `user`) when the owner does
    /// not exist.
    async fn create_conversation(&self, new: NewConversation) -> Result<Conversation> {
        observed!(self.slow(), "create_conversation", async {
            let checked = CheckedConversation::new(&new)?;
            self.with_conn(move |conn| {
                Box::pin(async move { repo::insert(conn, &checked.row()).await })
            })
            .await
            .map_err(missing_owner)
        })
    }

    /// The conversation `id` of `owner`. Fails with [`Error::NotFound`].
    async fn conversation(&self, owner: UserId, id: Uuid) -> Result<Conversation> {
        observed!(self.slow(), "conversation", async {
            self.with_conn(move |conn| Box::pin(repo::find_owned(conn, owner, id)))
                .await
        })
    }

    /// `owner`'s conversations, newest (most recently created) first, one
    /// page at a time (keyset pagination: conversations created between two
    /// page reads never make a row repeat or go missing).
    ///
    /// Fails with [`Error::Validation`] on `cursor` for a cursor that is not
    /// from this listing of this owner.
    async fn list_conversations(
        &self,
        owner: UserId,
        page: &PageRequest,
    ) -> Result<Page<Conversation>> {
        observed!(self.slow(), "list_conversations", async {
            let scope = conversations_scope(owner);
            self.page(
                ReadFrom::Primary,
                page,
                scope,
                repo::cursor_of,
                move |conn, after, n| Box::pin(repo::list(conn, owner, after, n)),
            )
            .await
        })
    }

    /// Sets the title (`None` clears it), moves `updated_at` to now and
    /// returns the conversation. Fails with [`Error::NotFound`].
    async fn rename_conversation(
        &self,
        owner: UserId,
        id: Uuid,
        title: Option<&str>,
    ) -> Result<Conversation> {
        observed!(self.slow(), "rename_conversation", async {
            let title = optional("title", title, TITLE_MAX)?;
            self.with_conn(move |conn| {
                Box::pin(async move { repo::set_title(conn, owner, id, title.as_deref()).await })
            })
            .await
        })
    }

    /// Deletes the conversation and all its messages.
    /// Fails with [`Error::NotFound`].
    async fn delete_conversation(&self, owner: UserId, id: Uuid) -> Result<()> {
        observed!(self.slow(), "delete_conversation", async {
            self.with_conn(move |conn| Box::pin(repo::delete(conn, owner, id)))
                .await
        })
    }

    /// Messages and tokens used in one conversation.
    /// Fails with [`Error::NotFound`].
    async fn conversation_token_usage(&self, owner: UserId, id: Uuid) -> Result<TokenUsage> {
        observed!(self.slow(), "conversation_token_usage", async {
            let rows = self
                .with_conn(move |conn| Box::pin(repo::token_totals(conn, owner, Some(id))))
                .await?;
            rows.into_iter().next().map(usage).ok_or(Error::NotFound {
                entity: "conversation",
            })
        })
    }

    /// Messages and tokens used in each of `owner`'s conversations, newest
    /// conversation first (conversations without messages included, with
    /// zeros). An unknown owner has none.
    async fn token_usage_by_conversation(&self, owner: UserId) -> Result<Vec<TokenUsage>> {
        observed!(self.slow(), "token_usage_by_conversation", async {
            let rows = self
                .with_conn(move |conn| Box::pin(repo::token_totals(conn, owner, None)))
                .await?;
            Ok(rows.into_iter().map(usage).collect())
        })
    }

    /// Appends one message and moves the conversation's `updated_at` to the
    /// message's time, in one statement (one round trip; both or neither
    /// are written). Returns the stored message.
    ///
    /// Fails with [`Error::NotFound`] unless `owner` owns the conversation.
    async fn append_message(
        &self,
        owner: UserId,
        conversation: Uuid,
        message: NewMessage,
    ) -> Result<Message> {
        observed!(self.slow(), "append_message", async {
            let role = check_message(&message, None)?;
            let id = Uuid::new_v4();
            self.with_conn(move |conn| {
                Box::pin(async move {
                    let draft = MessageDraft {
                        id,
                        role: &role,
                        content: &message.content,
                        tokens_used: message.tokens_used,
                    };
                    let mut stored =
                        message_repo::append(conn, owner, conversation, &[draft]).await?;
                    stored.pop().ok_or(Error::NotFound {
                        entity: "conversation",
                    })
                })
            })
            .await
        })
    }

    /// Appends messages, in order, and moves the conversation's
    /// `updated_at`, in one statement (one round trip, whatever the count). Returns the
    /// stored messages in the order given; they share one `created_at` and
    /// list in the order given.
    ///
    /// Fails with [`Error::Validation`] on `messages` when there are none,
    /// more than [`BATCH_MAX`], or more than [`BATCH_MAX_BYTES`] of content
    /// (and on the field of a message that is invalid, naming its index);
    /// with [`Error::NotFound`] unless `owner` owns the conversation.
    async fn append_messages(
        &self,
        owner: UserId,
        conversation: Uuid,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Message>> {
        observed!(self.slow(), "append_messages", async {
            let roles = check_batch(&messages)?;
            let ids = ascending_ids(messages.len());
            self.with_conn(move |conn| {
                Box::pin(async move {
                    let drafts: Vec<MessageDraft<'_>> = messages
                        .iter()
                        .zip(&roles)
                        .zip(ids)
                        .map(|((m, role), id)| MessageDraft {
                            id,
                            role,
                            content: &m.content,
                            tokens_used: m.tokens_used,
                        })
                        .collect();
                    message_repo::append(conn, owner, conversation, &drafts).await
                })
            })
            .await
        })
    }

    /// A conversation's messages in `order`, one page at a time (keyset
    /// pagination; page sizes are clamped to
    /// [`MAX_PAGE_SIZE`](crate::page::MAX_PAGE_SIZE)). Oldest first after a
    /// cursor gives what was appended since that page, without repeats.
    ///
    /// One round trip: the ownership check and the page are sent together,
    /// and the page is dropped unread when the check fails.
    ///
    /// Fails with [`Error::NotFound`] unless `owner` owns the conversation,
    /// and with [`Error::Validation`] on `cursor` for a cursor that is not
    /// from this conversation's listing in this order.
    async fn list_messages(
        &self,
        owner: UserId,
        conversation: Uuid,
        order: MessageOrder,
        page: &PageRequest,
    ) -> Result<Page<Message>> {
        observed!(self.slow(), "list_messages", async {
            let scope = messages_scope(owner, conversation, order);
            self.page(
                ReadFrom::Primary,
                page,
                scope,
                message_repo::cursor_of,
                move |conn, after, n| {
                    Box::pin(async move {
                        // The check and the page in one round trip; the
                        // page is dropped unread unless the check passes.
                        let (owned, rows) = join(
                            repo::check_owned(conn, owner, conversation),
                            message_repo::list(conn, conversation, order, after, n),
                        )
                        .await;
                        owned?;
                        rows
                    })
                },
            )
            .await
        })
    }

    /// A cursor positioned at `message`, for [`ConversationStore::list_messages`]
    /// in `order` to continue after it. A listing's last page has no
    /// `next_cursor`; to fetch what is appended later, take the cursor of
    /// the newest message already shown (from either direction) with
    /// [`MessageOrder::OldestFirst`].
    ///
    /// One round trip: the ownership check and the message's look-up are
    /// sent together.
    ///
    /// Fails with [`Error::NotFound`] unless `owner` owns the conversation
    /// and it holds the message.
    async fn message_cursor(
        &self,
        owner: UserId,
        conversation: Uuid,
        message: Uuid,
        order: MessageOrder,
    ) -> Result<String> {
        observed!(self.slow(), "message_cursor", async {
            let found = self
                .with_conn(move |conn| {
                    Box::pin(async move {
                        let (owned, found) = join(
                            repo::check_owned(conn, owner, conversation),
                            message_repo::find(conn, conversation, message),
                        )
                        .await;
                        owned?;
                        found
                    })
                })
                .await?;
            let scope = messages_scope(owner, conversation, order);
            Ok(message_repo::cursor_of(&found).encode(scope))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of<T: std::fmt::Debug>(r: Result<T>) -> (&'static str, String) {
        match r {
            Err(Error::Validation { field, reason }) => (field, reason),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn messages_are_checked_field_by_field() {
        assert_eq!(
            check_message(&NewMessage::new(" user ", " hi "), None).unwrap(),
            "user"
        );
        assert_eq!(
            field_of(check_message(&NewMessage::new("", "x"), None)).0,
            "role"
        );
        assert_eq!(
            field_of(check_message(&NewMessage::new("r".repeat(51), "x"), None)).0,
            "role"
        );
        assert_eq!(
            field_of(check_message(&NewMessage::new("user", " \n"), None)).0,
            "content"
        );
        assert_eq!(
            field_of(check_message(&NewMessage::new("user", "a\0b"), None)).0,
            "content"
        );
        let big = "é".repeat(CONTENT_MAX_BYTES / 2 + 1);
        assert_eq!(
            field_of(check_message(&NewMessage::new("user", big), None)).0,
            "content"
        );
        assert!(check_message(
            &NewMessage::new("user", "a".repeat(CONTENT_MAX_BYTES)),
            None
        )
        .is_ok());
        assert_eq!(
            field_of(check_message(
                &NewMessage::new("user", "x").tokens(-1),
                None
            ))
            .0,
            "tokens_used"
        );
        assert!(check_message(&NewMessage::new("user", "x").tokens(0), None).is_ok());
    }

    #[test]
    fn batches_name_the_bad_message() {
        assert_eq!(field_of(check_batch(&[])).0, "messages");
        let mut batch = vec![NewMessage::new("user", "ok"); 3];
        batch[2].content.clear();
        let (field, reason) = field_of(check_batch(&batch));
        assert_eq!(field, "content");
        assert!(reason.starts_with("message 2:"), "{reason}");
        let too_many = vec![NewMessage::new("user", "x"); BATCH_MAX + 1];
        assert_eq!(field_of(check_batch(&too_many)).0, "messages");
    }

    #[test]
    fn ids_of_one_append_ascend() {
        let ids = ascending_ids(500);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn scopes_differ_by_owner_conversation_and_order() {
        let a = UserId(Uuid::new_v4());
        let b = UserId(Uuid::new_v4());
        let c = Uuid::new_v4();
        let d = Uuid::new_v4();
        let newest = MessageOrder::NewestFirst;
        let oldest = MessageOrder::OldestFirst;
        assert_ne!(conversations_scope(a), conversations_scope(b));
        assert_ne!(messages_scope(a, c, newest), messages_scope(a, c, oldest));
        assert_ne!(messages_scope(a, c, newest), messages_scope(a, d, newest));
        assert_ne!(messages_scope(a, c, newest), messages_scope(b, c, newest));
    }
}
