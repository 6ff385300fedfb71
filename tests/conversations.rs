//! Conversations and messages through the store, against a real
//! PostgreSQL: ownership, cascade, keyset pagination under concurrent
//! inserts, cursors that cannot be replayed elsewhere, and the one-statement
//! batch append, observed by the server itself.

mod common;

use common::cluster::Cluster;
use common::TestDb;
use pronghorn_db::models::{
    MessageOrder, NewConversation, NewMessage, NewWebsocketConnection, UserId,
};
use pronghorn_db::{
    Configuration, ConversationStore, DbConfig, DisabledStore, Error, Page, PgStore, WebsocketStore,
};
use pronghorn_db::{PageRequest, MAX_PAGE_SIZE};
use pronghorn_db::{BATCH_MAX, CONTENT_MAX_BYTES};
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

async fn new_user(client: &tokio_postgres::Client, email: &str) -> UserId {
    let row = client
        .query_one(
            "INSERT INTO users (email, display_name) VALUES ($1, 'Tester') RETURNING id::text",
            &[&email],
        )
        .await
        .expect("insert user");
    UserId(row.get::<_, String>(0).parse().expect("uuid"))
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

fn not_found<T: std::fmt::Debug>(r: Result<T, Error>) -> &'static str {
    match r {
        Err(Error::NotFound { entity }) => entity,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn validation_field<T: std::fmt::Debug>(r: Result<T, Error>) -> &'static str {
    match r {
        Err(Error::Validation { field, .. }) => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn texts(messages: &[pronghorn_db::models::Message]) -> Vec<String> {
    messages.iter().map(|m| m.content.clone()).collect()
}

/// Reads every page of `owner`'s conversations, calling `between` after the
/// first page; returns the ids in the order read.
async fn all_conversation_ids(
    store: &PgStore,
    owner: UserId,
    size: i64,
    mut between: impl AsyncFnMut(),
) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut page = store
        .list_conversations(owner, &PageRequest::first(size))
        .await
        .expect("first page");
    between().await;
    loop {
        assert!(page.items.len() as i64 <= size);
        ids.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(cursor) => {
                page = store
                    .list_conversations(owner, &PageRequest::after(size, cursor))
                    .await
                    .expect("next page")
            }
            None => break,
        }
    }
    ids
}

async fn next_messages(
    store: &PgStore,
    owner: UserId,
    conversation: Uuid,
    order: MessageOrder,
    page: &Page<pronghorn_db::models::Message>,
    size: i64,
) -> Option<Page<pronghorn_db::models::Message>> {
    let cursor = page.next_cursor.clone()?;
    Some(
        store
            .list_messages(
                owner,
                conversation,
                order,
                &PageRequest::after(size, cursor),
            )
            .await
            .expect("next page"),
    )
}

#[tokio::test]
async fn conversations_are_created_read_renamed_and_deleted_by_their_owner_only() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let bob = new_user(&client, "bob@example.com").await;

    let conv = store
        .create_conversation(
            NewConversation::new(ann, " openai ")
                .model("gpt-4o")
                .title("Trip to Lyon"),
        )
        .await
        .expect("create");
    assert_eq!(conv.user_id, ann);
    assert_eq!(conv.provider, "openai");
    assert_eq!(conv.model.as_deref(), Some("gpt-4o"));
    assert_eq!(conv.title.as_deref(), Some("Trip to Lyon"));
    assert!(conv.created_at.is_some());
    assert_eq!(conv.created_at, conv.updated_at);

    let bare = store
        .create_conversation(NewConversation::new(ann, "anthropic"))
        .await
        .expect("create without model or title");
    assert_eq!((bare.model, bare.title), (None, None));

    assert_eq!(store.conversation(ann, conv.id).await.expect("get"), conv);

    // Another user's conversation is exactly as invisible as a missing one.
    let missing = Uuid::new_v4();
    for id in [conv.id, missing] {
        assert_eq!(not_found(store.conversation(bob, id).await), "conversation");
        assert_eq!(
            not_found(store.rename_conversation(bob, id, Some("mine")).await),
            "conversation"
        );
        assert_eq!(
            not_found(store.delete_conversation(bob, id).await),
            "conversation"
        );
        assert_eq!(
            not_found(
                store
                    .append_message(bob, id, NewMessage::new("user", "hi"))
                    .await
            ),
            "conversation"
        );
        assert_eq!(
            not_found(
                store
                    .append_messages(bob, id, vec![NewMessage::new("user", "hi")])
                    .await
            ),
            "conversation"
        );
        assert_eq!(
            not_found(
                store
                    .list_messages(bob, id, MessageOrder::NewestFirst, &PageRequest::default())
                    .await
            ),
            "conversation"
        );
        assert_eq!(
            not_found(store.conversation_token_usage(bob, id).await),
            "conversation"
        );
    }
    assert!(store
        .list_conversations(bob, &PageRequest::default())
        .await
        .expect("bob's list")
        .items
        .is_empty());
    assert!(store
        .token_usage_by_conversation(bob)
        .await
        .expect("bob's usage")
        .is_empty());
    // Nothing of Ann's changed through Bob's attempts.
    assert_eq!(store.conversation(ann, conv.id).await.expect("get"), conv);
    assert_eq!(
        count(&client, "SELECT count(*) FROM messages").await,
        0,
        "Bob appended nothing"
    );

    // An owner that does not exist is a missing user.
    assert_eq!(
        not_found(
            store
                .create_conversation(NewConversation::new(UserId(Uuid::new_v4()), "openai"))
                .await
        ),
        "user"
    );

    let renamed = store
        .rename_conversation(ann, conv.id, Some("  Lyon, day two "))
        .await
        .expect("rename");
    assert_eq!(renamed.title.as_deref(), Some("Lyon, day two"));
    assert!(renamed.updated_at > conv.updated_at, "updated_at moves");
    assert_eq!(renamed.created_at, conv.created_at);
    let cleared = store
        .rename_conversation(ann, conv.id, None)
        .await
        .expect("clear title");
    assert_eq!(cleared.title, None);
    assert!(cleared.updated_at > renamed.updated_at);

    store
        .delete_conversation(ann, conv.id)
        .await
        .expect("delete");
    assert_eq!(
        not_found(store.conversation(ann, conv.id).await),
        "conversation"
    );
    assert_eq!(
        not_found(store.delete_conversation(ann, conv.id).await),
        "conversation"
    );
    assert_eq!(
        store
            .conversation(ann, bare.id)
            .await
            .expect("other kept")
            .id,
        bare.id
    );
}

#[tokio::test]
async fn deleting_a_conversation_deletes_its_messages_only() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let doomed = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    let kept = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    let batch: Vec<NewMessage> = (0..5)
        .map(|i| NewMessage::new("user", format!("m{i}")))
        .collect();
    store
        .append_messages(ann, doomed.id, batch.clone())
        .await
        .expect("append");
    store
        .append_messages(ann, kept.id, batch)
        .await
        .expect("append");
    assert_eq!(count(&client, "SELECT count(*) FROM messages").await, 10);

    store
        .delete_conversation(ann, doomed.id)
        .await
        .expect("delete");
    let left = client
        .query("SELECT DISTINCT conversation_id::text FROM messages", &[])
        .await
        .expect("messages left");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].get::<_, String>(0), kept.id.to_string());
    assert_eq!(count(&client, "SELECT count(*) FROM messages").await, 5);
}

#[tokio::test]
async fn token_usage_is_summed_per_conversation() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let bob = new_user(&client, "bob@example.com").await;
    let first = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    let empty = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    let bobs = store
        .create_conversation(NewConversation::new(bob, "openai"))
        .await
        .expect("create");
    store
        .append_messages(
            ann,
            first.id,
            vec![
                NewMessage::new("user", "q").tokens(12),
                NewMessage::new("assistant", "a").tokens(30),
                NewMessage::new("system", "no count"),
            ],
        )
        .await
        .expect("append");
    store
        .append_message(ann, first.id, NewMessage::new("user", "again").tokens(0))
        .await
        .expect("append");
    store
        .append_message(bob, bobs.id, NewMessage::new("user", "x").tokens(1000))
        .await
        .expect("append");

    let one = store
        .conversation_token_usage(ann, first.id)
        .await
        .expect("usage");
    assert_eq!(one.conversation_id, first.id);
    assert_eq!((one.messages, one.tokens_used), (4, 42));
    let none = store
        .conversation_token_usage(ann, empty.id)
        .await
        .expect("usage of an empty conversation");
    assert_eq!((none.messages, none.tokens_used), (0, 0));

    let all = store
        .token_usage_by_conversation(ann)
        .await
        .expect("all usage");
    // Newest conversation first; Bob's is not among them.
    assert_eq!(
        all.iter().map(|u| u.conversation_id).collect::<Vec<_>>(),
        vec![empty.id, first.id]
    );
    assert_eq!(all[1], one);
    assert_eq!(all[0], none);
}

#[tokio::test]
async fn conversation_pages_neither_skip_nor_repeat_when_rows_arrive_between_pages() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let bob = new_user(&client, "bob@example.com").await;
    let mut created = Vec::new();
    for i in 0..25 {
        let c = store
            .create_conversation(NewConversation::new(ann, "openai").title(format!("c{i}")))
            .await
            .expect("create");
        created.push(c.id);
        store
            .create_conversation(NewConversation::new(bob, "openai"))
            .await
            .expect("bob's");
    }
    // Two rows with the same creation time: the id breaks the tie.
    client
        .batch_execute(&format!(
            "UPDATE conversations SET created_at = (SELECT created_at FROM conversations \
             WHERE id = '{}') WHERE id = '{}'",
            created[10], created[11]
        ))
        .await
        .expect("tie");
    let newest_first = |ids: &[Uuid]| -> Vec<Uuid> {
        let mut v = ids.to_vec();
        v.reverse();
        v
    };
    let mut expected = newest_first(&created);
    if created[11] < created[10] {
        // Equal times list in descending id order.
        let at = expected.iter().position(|x| *x == created[11]).unwrap();
        expected.swap(at, at + 1);
    }

    let store_ref = &store;
    let ids = all_conversation_ids(&store, ann, 10, async || {
        for _ in 0..5 {
            store_ref
                .create_conversation(NewConversation::new(ann, "openai").title("late"))
                .await
                .expect("inserted between pages");
        }
    })
    .await;
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no conversation repeated");
    // The first page was read before the late rows existed; the later pages
    // continue below the cursor, so the late rows (newer) do not appear and
    // nothing older is skipped.
    assert_eq!(ids, expected);

    // A fresh listing shows them all, the late ones first.
    let fresh = all_conversation_ids(&store, ann, 7, async || {}).await;
    assert_eq!(fresh.len(), 30);
    assert_eq!(&fresh[5..], &expected[..]);
}

#[tokio::test]
async fn message_pages_go_both_ways_without_skips_or_repeats() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let conv = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    let other = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    store
        .append_message(ann, other.id, NewMessage::new("user", "elsewhere"))
        .await
        .expect("append elsewhere");

    // Ten single appends, then a batch of fifteen (which share one time).
    let mut sent = Vec::new();
    for i in 0..10 {
        let text = format!("single {i}");
        let m = store
            .append_message(ann, conv.id, NewMessage::new("user", text.clone()))
            .await
            .expect("append");
        assert_eq!(m.content, text);
        sent.push(text);
    }
    let batch: Vec<NewMessage> = (0..15)
        .map(|i| NewMessage::new("assistant", format!("batch {i}")))
        .collect();
    sent.extend(batch.iter().map(|m| m.content.clone()));
    store
        .append_messages(ann, conv.id, batch)
        .await
        .expect("append batch");

    // Oldest first, with more appended between pages: they come at the end.
    let order = MessageOrder::OldestFirst;
    let mut seen = Vec::new();
    let mut page = store
        .list_messages(ann, conv.id, order, &PageRequest::first(10))
        .await
        .expect("first page");
    seen.extend(texts(&page.items));
    let late: Vec<NewMessage> = (0..5)
        .map(|i| NewMessage::new("user", format!("late {i}")))
        .collect();
    sent.extend(late.iter().map(|m| m.content.clone()));
    store
        .append_messages(ann, conv.id, late)
        .await
        .expect("append between pages");
    while let Some(next) = next_messages(&store, ann, conv.id, order, &page, 10).await {
        page = next;
        seen.extend(texts(&page.items));
    }
    assert_eq!(seen, sent, "every message once, in append order");

    // Newest first, with more appended between pages: the pages continue
    // into the past and neither skip nor repeat.
    let order = MessageOrder::NewestFirst;
    let mut page = store
        .list_messages(ann, conv.id, order, &PageRequest::first(12))
        .await
        .expect("first page");
    let mut seen = texts(&page.items);
    store
        .append_message(ann, conv.id, NewMessage::new("user", "later still"))
        .await
        .expect("append between pages");
    while let Some(next) = next_messages(&store, ann, conv.id, order, &page, 12).await {
        page = next;
        seen.extend(texts(&page.items));
    }
    let mut expected = sent.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    // Catching up: oldest first after the newest message already shown
    // gives exactly what was appended since.
    let newest_shown = store
        .list_messages(
            ann,
            conv.id,
            MessageOrder::NewestFirst,
            &PageRequest::first(1),
        )
        .await
        .expect("newest")
        .items[0]
        .clone();
    assert_eq!(newest_shown.content, "later still");
    let cursor = store
        .message_cursor(ann, conv.id, newest_shown.id, MessageOrder::OldestFirst)
        .await
        .expect("cursor at a message");
    let since = store
        .list_messages(
            ann,
            conv.id,
            MessageOrder::OldestFirst,
            &PageRequest::after(10, cursor.clone()),
        )
        .await
        .expect("nothing new yet");
    assert!(since.items.is_empty());
    assert_eq!(since.next_cursor, None);
    store
        .append_messages(
            ann,
            conv.id,
            vec![NewMessage::new("user", "n1"), NewMessage::new("user", "n2")],
        )
        .await
        .expect("append");
    let since = store
        .list_messages(
            ann,
            conv.id,
            MessageOrder::OldestFirst,
            &PageRequest::after(10, cursor),
        )
        .await
        .expect("what is new");
    assert_eq!(texts(&since.items), vec!["n1", "n2"]);
    let bob = new_user(&client, "bob@example.com").await;
    assert_eq!(
        not_found(
            store
                .message_cursor(bob, conv.id, newest_shown.id, MessageOrder::OldestFirst)
                .await
        ),
        "conversation"
    );
    assert_eq!(
        not_found(
            store
                .message_cursor(ann, other.id, newest_shown.id, MessageOrder::OldestFirst)
                .await
        ),
        "message"
    );
}

#[tokio::test]
async fn a_batch_keeps_its_order_and_page_sizes_are_clamped() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let conv = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    let batch: Vec<NewMessage> = (0..250)
        .map(|i| NewMessage::new("user", format!("{i:03}")).tokens(i))
        .collect();
    let sent = texts_of(&batch);
    let stored = store
        .append_messages(ann, conv.id, batch)
        .await
        .expect("append");
    assert_eq!(texts(&stored), sent, "returned in the order given");
    assert!(stored.iter().all(|m| m.created_at == stored[0].created_at));
    assert_eq!(
        store
            .conversation(ann, conv.id)
            .await
            .expect("get")
            .updated_at,
        stored[0].created_at,
        "the conversation's updated_at is the append's time"
    );

    let huge = PageRequest::first(1_000_000);
    let page = store
        .list_messages(ann, conv.id, MessageOrder::OldestFirst, &huge)
        .await
        .expect("clamped page");
    assert_eq!(page.items.len() as i64, MAX_PAGE_SIZE);
    assert!(page.next_cursor.is_some());
    let page = store
        .list_messages(
            ann,
            conv.id,
            MessageOrder::OldestFirst,
            &PageRequest::first(0),
        )
        .await
        .expect("page of at least one");
    assert_eq!(page.items.len(), 1);

    let mut seen = Vec::new();
    let mut page = store
        .list_messages(ann, conv.id, MessageOrder::OldestFirst, &huge)
        .await
        .expect("first page");
    seen.extend(texts(&page.items));
    while let Some(next) = next_messages(
        &store,
        ann,
        conv.id,
        MessageOrder::OldestFirst,
        &page,
        1_000_000,
    )
    .await
    {
        page = next;
        seen.extend(texts(&page.items));
    }
    assert_eq!(seen, sent, "equal times page by id, in append order");
}

fn texts_of(batch: &[NewMessage]) -> Vec<String> {
    batch.iter().map(|m| m.content.clone()).collect()
}

#[tokio::test]
async fn cursors_only_work_for_the_listing_they_came_from() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let bob = new_user(&client, "bob@example.com").await;
    let a = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    let b = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    for _ in 0..3 {
        store
            .create_conversation(NewConversation::new(bob, "openai"))
            .await
            .expect("create");
    }
    let batch: Vec<NewMessage> = (0..5)
        .map(|i| NewMessage::new("user", format!("{i}")))
        .collect();
    store
        .append_messages(ann, a.id, batch.clone())
        .await
        .expect("append");
    store
        .append_messages(ann, b.id, batch)
        .await
        .expect("append");

    let newest = store
        .list_messages(ann, a.id, MessageOrder::NewestFirst, &PageRequest::first(2))
        .await
        .expect("page")
        .next_cursor
        .expect("more pages");
    let conversations = store
        .list_conversations(ann, &PageRequest::first(1))
        .await
        .expect("page")
        .next_cursor
        .expect("more pages");
    let bobs = store
        .list_conversations(bob, &PageRequest::first(1))
        .await
        .expect("page")
        .next_cursor
        .expect("more pages");

    // The cursor works where it came from ...
    assert_eq!(
        store
            .list_messages(
                ann,
                a.id,
                MessageOrder::NewestFirst,
                &PageRequest::after(2, newest.clone())
            )
            .await
            .expect("same listing")
            .items
            .len(),
        2
    );
    // ... and nowhere else: another conversation, the other direction,
    // another kind of listing, another owner.
    let cases = [
        store
            .list_messages(
                ann,
                b.id,
                MessageOrder::NewestFirst,
                &PageRequest::after(2, newest.clone()),
            )
            .await
            .map(|p| p.items.len()),
        store
            .list_messages(
                ann,
                a.id,
                MessageOrder::OldestFirst,
                &PageRequest::after(2, newest.clone()),
            )
            .await
            .map(|p| p.items.len()),
        store
            .list_conversations(ann, &PageRequest::after(2, newest.clone()))
            .await
            .map(|p| p.items.len()),
        store
            .list_messages(
                ann,
                a.id,
                MessageOrder::NewestFirst,
                &PageRequest::after(2, conversations.clone()),
            )
            .await
            .map(|p| p.items.len()),
        store
            .list_conversations(ann, &PageRequest::after(2, bobs.clone()))
            .await
            .map(|p| p.items.len()),
        store
            .list_conversations(bob, &PageRequest::after(2, conversations.clone()))
            .await
            .map(|p| p.items.len()),
    ];
    for case in cases {
        assert_eq!(validation_field(case), "cursor");
    }
    // Garbage and edited cursors are refused the same way.
    let mut edited = newest.clone().into_bytes();
    let last = edited.len() - 1;
    edited[last] = if edited[last] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).expect("ascii");
    for bad in [
        "".to_owned(),
        "not a cursor".to_owned(),
        "' OR 1=1 --".to_owned(),
        "A".repeat(10_000),
        edited,
    ] {
        assert_eq!(
            validation_field(
                store
                    .list_messages(
                        ann,
                        a.id,
                        MessageOrder::NewestFirst,
                        &PageRequest::after(2, bad)
                    )
                    .await
            ),
            "cursor"
        );
    }
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_query() {
    let store = common::store_without_server().await;
    let owner = UserId(Uuid::new_v4());
    let conv = Uuid::new_v4();
    let create =
        |f: fn(NewConversation) -> NewConversation| f(NewConversation::new(owner, "openai"));

    let cases: Vec<(&str, Result<(), Error>)> = vec![
        (
            "provider",
            store
                .create_conversation(NewConversation::new(owner, " "))
                .await
                .map(drop),
        ),
        (
            "provider",
            store
                .create_conversation(NewConversation::new(owner, "p".repeat(51)))
                .await
                .map(drop),
        ),
        (
            "provider",
            store
                .create_conversation(NewConversation::new(owner, "a\0b"))
                .await
                .map(drop),
        ),
        (
            "model",
            store
                .create_conversation(create(|n| n.model("m".repeat(101))))
                .await
                .map(drop),
        ),
        (
            "model",
            store
                .create_conversation(create(|n| n.model("")))
                .await
                .map(drop),
        ),
        (
            "title",
            store
                .create_conversation(create(|n| n.title("t".repeat(256))))
                .await
                .map(drop),
        ),
        (
            "title",
            store
                .create_conversation(create(|n| n.title("a\0")))
                .await
                .map(drop),
        ),
        (
            "title",
            store
                .rename_conversation(owner, conv, Some(&"t".repeat(256)))
                .await
                .map(drop),
        ),
        (
            "title",
            store
                .rename_conversation(owner, conv, Some("  "))
                .await
                .map(drop),
        ),
        (
            "role",
            store
                .append_message(owner, conv, NewMessage::new("", "x"))
                .await
                .map(drop),
        ),
        (
            "role",
            store
                .append_message(owner, conv, NewMessage::new("r".repeat(51), "x"))
                .await
                .map(drop),
        ),
        (
            "content",
            store
                .append_message(owner, conv, NewMessage::new("user", ""))
                .await
                .map(drop),
        ),
        (
            "content",
            store
                .append_message(owner, conv, NewMessage::new("user", "\0"))
                .await
                .map(drop),
        ),
        (
            "content",
            store
                .append_message(
                    owner,
                    conv,
                    NewMessage::new("user", "x".repeat(CONTENT_MAX_BYTES + 1)),
                )
                .await
                .map(drop),
        ),
        (
            "tokens_used",
            store
                .append_message(owner, conv, NewMessage::new("user", "x").tokens(-1))
                .await
                .map(drop),
        ),
        (
            "messages",
            store
                .append_messages(owner, conv, Vec::new())
                .await
                .map(drop),
        ),
        (
            "messages",
            store
                .append_messages(
                    owner,
                    conv,
                    vec![NewMessage::new("user", "x"); BATCH_MAX + 1],
                )
                .await
                .map(drop),
        ),
        (
            "content",
            store
                .append_messages(
                    owner,
                    conv,
                    vec![NewMessage::new("user", "x"), NewMessage::new("user", " ")],
                )
                .await
                .map(drop),
        ),
        (
            "cursor",
            store
                .list_messages(
                    owner,
                    conv,
                    MessageOrder::OldestFirst,
                    &PageRequest::after(5, "nope"),
                )
                .await
                .map(drop),
        ),
        (
            "cursor",
            store
                .list_conversations(owner, &PageRequest::after(5, "nope"))
                .await
                .map(drop),
        ),
    ];
    for (field, result) in cases {
        assert_eq!(validation_field(result), field);
    }
    // And a valid call does reach for the (missing) server.
    let err = store
        .conversation(owner, conv)
        .await
        .expect_err("no server");
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn a_failed_append_changes_nothing() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let conv = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    // A server-side refusal of one row, after the conversation was touched
    // in the same transaction.
    client
        .batch_execute(
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.content = 'boom' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_boom BEFORE INSERT ON messages \
             FOR EACH ROW EXECUTE FUNCTION refuse_boom();",
        )
        .await
        .expect("trigger");
    let err = store
        .append_messages(
            ann,
            conv.id,
            vec![
                NewMessage::new("user", "fine"),
                NewMessage::new("user", "boom"),
            ],
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    let err = store
        .append_message(ann, conv.id, NewMessage::new("user", "boom"))
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_eq!(count(&client, "SELECT count(*) FROM messages").await, 0);
    assert_eq!(
        store
            .conversation(ann, conv.id)
            .await
            .expect("get")
            .updated_at,
        conv.updated_at,
        "the touch was rolled back with the insert"
    );
}

#[tokio::test]
async fn an_append_waiting_for_the_conversation_takes_its_time_after_the_wait() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let conv = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");

    // Another transaction holds the conversation's row.
    let mut locker = db.client().await;
    let tx = locker.transaction().await.expect("begin");
    tx.batch_execute(&format!(
        "UPDATE conversations SET title = 'locked' WHERE id = '{}'",
        conv.id
    ))
    .await
    .expect("lock the row");

    let appending = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append_message(ann, conv.id, NewMessage::new("user", "waited"))
                .await
        })
    };
    common::until_waiting(&db.client().await, 1).await;
    assert!(!appending.is_finished(), "the append waits for the lock");
    let released: i64 = tx
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8",
            &[],
        )
        .await
        .expect("clock")
        .get(0);
    tx.commit().await.expect("commit");
    let message = appending
        .await
        .expect("task")
        .expect("append after the wait");
    let at = message.created_at.expect("created_at").timestamp_micros();
    assert!(
        at > released,
        "the message's time ({at}) is taken after the lock was released ({released}), \
         so appends are timed in commit order"
    );
    let conv = store.conversation(ann, conv.id).await.expect("get");
    assert_eq!(conv.title.as_deref(), Some("locked"));
    assert_eq!(conv.updated_at, message.created_at);
}

/// Records every INSERT statement on `messages` with its row count, using
/// a statement-level trigger: it fires once per statement, whatever the
/// number of rows, and its transition table holds that statement's rows.
const STATEMENT_LOG: &str = "
    CREATE TABLE message_insert_statements (
        n   serial PRIMARY KEY,
        row_count bigint NOT NULL,
        txid bigint NOT NULL DEFAULT txid_current()
    );
    CREATE FUNCTION log_message_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO message_insert_statements (row_count) SELECT count(*) FROM new_rows;
        RETURN NULL;
    END $$;
    CREATE TRIGGER log_message_insert AFTER INSERT ON messages
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION log_message_insert();
";

#[tokio::test]
async fn appending_1000_messages_is_one_insert_statement() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let conv = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    client
        .batch_execute(STATEMENT_LOG)
        .await
        .expect("statement log");

    let batch: Vec<NewMessage> = (0..1000)
        .map(|i| {
            NewMessage::new(
                if i % 2 == 0 { "user" } else { "assistant" },
                format!("message {i}"),
            )
            .tokens(i)
        })
        .collect();
    let sent = texts_of(&batch);
    let stored = store
        .append_messages(ann, conv.id, batch)
        .await
        .expect("append 1000");
    assert_eq!(texts(&stored), sent);

    let statements = client
        .query(
            "SELECT row_count FROM message_insert_statements ORDER BY n",
            &[],
        )
        .await
        .expect("statement log");
    let counts: Vec<i64> = statements.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        counts,
        vec![1000],
        "one INSERT statement carried all 1000 rows"
    );
    assert_eq!(
        count(
            &client,
            &format!(
                "SELECT count(*) FROM messages WHERE conversation_id = '{}'",
                conv.id
            )
        )
        .await,
        1000
    );
    assert_eq!(
        count(
            &client,
            &format!(
                "SELECT sum(tokens_used)::int8 FROM messages WHERE conversation_id = '{}'",
                conv.id
            )
        )
        .await,
        (0..1000).sum::<i64>()
    );

    // A single append is one statement of one row, for comparison.
    store
        .append_message(ann, conv.id, NewMessage::new("user", "one more"))
        .await
        .expect("append one");
    let counts: Vec<i64> = client
        .query(
            "SELECT row_count FROM message_insert_statements ORDER BY n",
            &[],
        )
        .await
        .expect("statement log")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(counts, vec![1000, 1]);
}

/// The same facts as PostgreSQL's own statement statistics report them:
/// a private cluster is started with `pg_stat_statements` preloaded (the
/// shared test server does not load it, and loading it needs a restart).
#[tokio::test]
async fn pg_stat_statements_counts_the_statements_of_appends_and_connects() {
    let cluster = Cluster::start();
    let admin_url = cluster.url();
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the cluster");
    let task = tokio::spawn(conn);
    admin
        .batch_execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        .await
        .expect("preload pg_stat_statements");
    drop(admin);
    let _ = task.await;
    cluster.stop();
    cluster.restart();

    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .expect("reconnect to the cluster");
    tokio::spawn(conn);
    admin
        .batch_execute("CREATE DATABASE app")
        .await
        .expect("create database");
    let config = match DbConfig::from_lookup(|k| match k {
        "DB_CONNECTION_STRING" => Some(admin_url.clone()),
        "DB_SSL" => Some("false".to_owned()),
        _ => None,
    }) {
        Ok(Configuration::Configured(c)) => *c,
        other => panic!("expected a configuration: {other:?}"),
    };
    let store = PgStore::new(config.with_dbname("app").with_pool(common::test_pool()))
        .await
        .expect("store");
    pronghorn_db::migrate::run_pending(&store)
        .await
        .expect("migrate");

    let app_url = format!("postgres://postgres@127.0.0.1:{}/app", cluster.port);
    let (app, conn) = tokio_postgres::connect(&app_url, tokio_postgres::NoTls)
        .await
        .expect("connect to app");
    tokio::spawn(conn);
    app.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .expect("extension");
    let ann = new_user(&app, "ann@example.com").await;
    let conv = store
        .create_conversation(NewConversation::new(ann, "openai"))
        .await
        .expect("create");
    store
        .websocket_connected(NewWebsocketConnection::new("warm-up"))
        .await
        .expect("connect");
    app.batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .expect("reset statistics");

    let batch: Vec<NewMessage> = (0..1000)
        .map(|i| NewMessage::new("user", format!("message {i}")))
        .collect();
    store
        .append_messages(ann, conv.id, batch)
        .await
        .expect("append 1000");
    let mut reconnect = NewWebsocketConnection::new("ws-1");
    reconnect.user_id = Some(ann);
    store
        .websocket_connected(NewWebsocketConnection::new("ws-1"))
        .await
        .expect("connect");
    store
        .websocket_connected(reconnect)
        .await
        .expect("reconnect");

    let rows = app
        .query(
            "SELECT s.query, s.calls, s.rows FROM pg_stat_statements s \
             JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = 'app' \
               AND (s.query ILIKE '%\"messages\"%' OR s.query ILIKE '%\"websocket_connections\"%') \
             ORDER BY s.query",
            &[],
        )
        .await
        .expect("pg_stat_statements");
    let seen: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get(1), r.get(2)))
        .collect();
    let message_inserts: Vec<_> = seen
        .iter()
        .filter(|(q, _, _)| q.contains("INSERT INTO \"messages\""))
        .collect();
    assert_eq!(message_inserts.len(), 1, "{seen:#?}");
    assert!(
        message_inserts[0]
            .0
            .starts_with("WITH \"touched\" AS (UPDATE \"conversations\""),
        "the touch and the insert are one statement: {seen:#?}"
    );
    assert_eq!(
        (message_inserts[0].1, message_inserts[0].2),
        (1, 1000),
        "one execution of one statement stored 1000 rows"
    );
    let ws: Vec<_> = seen
        .iter()
        .filter(|(q, _, _)| q.contains("\"websocket_connections\""))
        .collect();
    assert_eq!(
        ws.len(),
        1,
        "connect and reconnect use one statement: {seen:#?}"
    );
    assert!(ws[0].0.starts_with("INSERT INTO \"websocket_connections\""));
    assert!(
        ws[0]
            .0
            .contains("ON CONFLICT (\"connection_id\") DO UPDATE"),
        "{}",
        ws[0].0
    );
    assert_eq!((ws[0].1, ws[0].2), (2, 2), "two executions, one row each");
    assert_eq!(
        seen.len(),
        2,
        "no other statement touched these tables: {seen:#?}"
    );
    pronghorn_db::HealthStore::close(&store).await;
}

#[tokio::test]
async fn the_disabled_store_stores_nothing() {
    let store = DisabledStore::new("tests");
    let owner = UserId(Uuid::new_v4());
    let id = Uuid::new_v4();
    let page = PageRequest::default();
    let results = [
        store
            .create_conversation(NewConversation::new(owner, "openai"))
            .await
            .map(drop),
        store.conversation(owner, id).await.map(drop),
        store.list_conversations(owner, &page).await.map(drop),
        store
            .rename_conversation(owner, id, Some("t"))
            .await
            .map(drop),
        store.delete_conversation(owner, id).await,
        store.conversation_token_usage(owner, id).await.map(drop),
        store.token_usage_by_conversation(owner).await.map(drop),
        store
            .append_message(owner, id, NewMessage::new("user", "x"))
            .await
            .map(drop),
        store
            .append_messages(owner, id, vec![NewMessage::new("user", "x")])
            .await
            .map(drop),
        store
            .list_messages(owner, id, MessageOrder::NewestFirst, &page)
            .await
            .map(drop),
        store
            .message_cursor(owner, id, id, MessageOrder::OldestFirst)
            .await
            .map(drop),
    ];
    for r in results {
        assert!(matches!(r, Err(Error::Disabled)), "{r:?}");
    }
}

#[tokio::test]
async fn the_append_statements_are_prepared_once_per_connection() {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    use pronghorn_db::UserStore;
    let db = TestDb::migrated().await;
    let store = db.one_connection_store().await;
    let owner = store
        .create_user(pronghorn_db::models::NewLocalUser::new(
            "o@x.io",
            "owner password",
            "O",
        ))
        .await
        .expect("owner")
        .id;
    let conv = store
        .create_conversation(NewConversation::new(owner, "p"))
        .await
        .expect("conversation")
        .id;
    for i in 0..5 {
        store
            .append_message(owner, conv, NewMessage::new("user", format!("m{i}")))
            .await
            .expect("append");
    }
    let mut conn = store.conn().await.expect("conn");
    let prepared = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE 'WITH \"touched\" AS (UPDATE \"conversations\"%'",
    )
    .get_result::<N>(&mut *conn)
    .await
    .expect("pg_prepared_statements")
    .n;
    assert_eq!(
        prepared, 1,
        "five appends, one prepared statement (touch and insert) kept on the connection"
    );
    drop(conn);

    // Batches of any size share that one prepared statement: its text does
    // not grow with the number of rows.
    for size in [1, 3, 7, 1000] {
        let batch: Vec<NewMessage> = (0..size)
            .map(|i| NewMessage::new("user", format!("b{size}-{i}")))
            .collect();
        let stored = store
            .append_messages(owner, conv, batch)
            .await
            .expect("append batch");
        assert_eq!(stored.len(), size);
    }
    let mut conn = store.conn().await.expect("conn");
    #[derive(diesel::QueryableByName)]
    struct Statement {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement: String,
    }
    let appends: Vec<String> = diesel::sql_query(
        "SELECT statement FROM pg_prepared_statements \
         WHERE statement LIKE 'WITH %INSERT INTO \"messages\"%' ORDER BY statement",
    )
    .load::<Statement>(&mut *conn)
    .await
    .expect("pg_prepared_statements")
    .into_iter()
    .map(|s| s.statement)
    .collect();
    assert_eq!(
        appends.len(),
        1,
        "one prepared statement for single appends and four batch sizes: {appends:#?}"
    );
    assert!(
        appends[0].contains(
            r#" FROM "touched", unnest($3::uuid[], $4::text[], $5::text[], $6::int4[]) AS "drafts" "#
        ),
        "the drafts go in as four arrays: {appends:#?}"
    );
}
