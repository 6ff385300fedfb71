//! WebSocket connections through the store, against a real PostgreSQL:
//! connect and reconnect, activity, metadata, blocks by connection and by
//! address, the two views and the cleanup function.
//!
//! That a connect or reconnect is one `INSERT .. ON CONFLICT` statement is
//! checked with `pg_stat_statements` in `tests/conversations.rs`
//! (`pg_stat_statements_counts_the_statements_of_appends_and_connects`).

mod common;

use common::TestDb;
use pronghorn_db::models::{NewWebsocketConnection, UserId};
use pronghorn_db::PageRequest;
use pronghorn_db::{DisabledStore, Error, WebsocketStore};
use pronghorn_db::{CLEANUP_DAYS_MAX, METADATA_MAX_BYTES, USER_AGENT_MAX};
use serde_json::json;
use std::collections::HashSet;
use std::net::IpAddr;
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

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
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

fn connection(id: &str, user: Option<UserId>, from: Option<&str>) -> NewWebsocketConnection {
    let mut new = NewWebsocketConnection::new(id);
    new.user_id = user;
    new.ip = from.map(ip);
    new
}

#[tokio::test]
async fn connect_inserts_and_reconnect_reopens_the_same_row() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;

    let mut new = connection(" ws-1 ", None, Some("::ffff:203.0.113.10"));
    new.user_agent = Some(format!("Agent\0/{}", "x".repeat(USER_AGENT_MAX)));
    new.metadata = Some(json!({"path": "/chat"}));
    let first = store.websocket_connected(new).await.expect("connect");
    assert_eq!(first.connection_id, "ws-1");
    assert_eq!(first.user_id, None);
    assert!(!first.is_authenticated);
    assert_eq!(
        first.ip_address,
        Some("203.0.113.10/32".parse().expect("net")),
        "IPv4-mapped addresses are stored as IPv4"
    );
    let ua = first.user_agent.clone().expect("user agent");
    assert!(ua.starts_with("Agent/"));
    assert_eq!(ua.chars().count(), USER_AGENT_MAX);
    assert_eq!(first.metadata, Some(json!({"path": "/chat"})));
    assert_eq!(first.message_count, 0);
    assert_eq!(first.disconnected_at, None);
    assert!(!first.is_blocked);

    let plain = store
        .websocket_connected(NewWebsocketConnection::new("ws-plain"))
        .await
        .expect("connect with defaults");
    assert_eq!(plain.metadata, Some(json!({})));
    assert_eq!((plain.ip_address, plain.user_agent), (None, None));

    // The connection lived, counted messages, was blocked and closed.
    store
        .record_websocket_activity("ws-1")
        .await
        .expect("activity");
    store
        .block_websocket_connection("ws-1", "spam", ann)
        .await
        .expect("block");
    store
        .websocket_disconnected("ws-1")
        .await
        .expect("disconnect");
    client
        .batch_execute(
            "UPDATE websocket_connections SET connected_at = now() - interval '1 hour' \
             WHERE connection_id = 'ws-1'",
        )
        .await
        .expect("age the row");
    let before = store.websocket_connection("ws-1").await.expect("get");

    let again = store
        .websocket_connected(connection("ws-1", Some(ann), Some("198.51.100.1")))
        .await
        .expect("reconnect");
    assert_eq!(again.id, first.id, "the same row");
    assert!(
        again.connected_at > before.connected_at,
        "connected_at reset"
    );
    assert_eq!(again.disconnected_at, None, "reopened");
    assert!(again.is_authenticated);
    assert_eq!(again.user_id, Some(ann));
    assert!(again.last_activity_at >= before.last_activity_at);
    assert_eq!(again.message_count, 1, "the count is kept");
    assert!(again.is_blocked, "a block survives a reconnect");
    assert_eq!(again.blocked_reason.as_deref(), Some("spam"));
    assert_eq!(again.metadata, Some(json!({"path": "/chat"})));
    assert_eq!(again.ip_address, first.ip_address);
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM websocket_connections WHERE connection_id = 'ws-1'"
        )
        .await,
        1
    );

    // Reconnecting anonymously drops the user and the flag together.
    let anon = store
        .websocket_connected(NewWebsocketConnection::new("ws-1"))
        .await
        .expect("anonymous reconnect");
    assert_eq!((anon.user_id, anon.is_authenticated), (None, false));

    assert_eq!(
        not_found(
            store
                .websocket_connected(connection("ws-2", Some(UserId(Uuid::new_v4())), None))
                .await
        ),
        "user"
    );
    assert_eq!(
        not_found(store.websocket_connection("nope").await),
        "websocket connection"
    );
}

#[tokio::test]
async fn activity_metadata_and_disconnect() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let c = store
        .websocket_connected(NewWebsocketConnection::new("ws-1"))
        .await
        .expect("connect");
    client
        .batch_execute(
            "UPDATE websocket_connections SET last_activity_at = now() - interval '1 minute'",
        )
        .await
        .expect("age");
    for n in 1..=3 {
        assert_eq!(
            store
                .record_websocket_activity("ws-1")
                .await
                .expect("activity"),
            n
        );
    }
    let row = store.websocket_connection("ws-1").await.expect("get");
    assert_eq!(row.message_count, 3);
    assert!(row.last_activity_at > c.last_activity_at);
    assert!(
        row.updated_at > c.updated_at,
        "the trigger keeps updated_at"
    );
    assert_eq!(
        not_found(store.record_websocket_activity("nope").await),
        "websocket connection"
    );

    let row = store
        .update_websocket_metadata("ws-1", json!({"room": "a", "client": {"v": 1}}))
        .await
        .expect("metadata");
    assert_eq!(row.metadata, Some(json!({"room": "a", "client": {"v": 1}})));
    let row = store
        .update_websocket_metadata("ws-1", json!({"room": "b", "lang": "fr"}))
        .await
        .expect("merge");
    assert_eq!(
        row.metadata,
        Some(json!({"room": "b", "client": {"v": 1}, "lang": "fr"})),
        "top-level keys merge, later values win"
    );
    // A NULL metadata (possible in adopted rows) counts as {}.
    client
        .batch_execute("UPDATE websocket_connections SET metadata = NULL")
        .await
        .expect("null metadata");
    let row = store
        .update_websocket_metadata("ws-1", json!({"x": true}))
        .await
        .expect("merge into NULL");
    assert_eq!(row.metadata, Some(json!({"x": true})));
    assert_eq!(
        not_found(store.update_websocket_metadata("nope", json!({})).await),
        "websocket connection"
    );

    let closed = store
        .websocket_disconnected("ws-1")
        .await
        .expect("disconnect");
    let at = closed.disconnected_at.expect("disconnected_at");
    let again = store
        .websocket_disconnected("ws-1")
        .await
        .expect("disconnect twice");
    assert_eq!(
        again.disconnected_at,
        Some(at),
        "the first close time stays"
    );
    assert_eq!(
        not_found(store.websocket_disconnected("nope").await),
        "websocket connection"
    );
}

#[tokio::test]
async fn blocks_by_connection_and_by_address() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let admin = new_user(&client, "admin@example.com").await;
    for (id, from) in [
        ("a1", "203.0.113.10"),
        ("a2", "203.0.113.10"),
        ("b1", "198.51.100.7"),
        ("v6", "2001:db8::1"),
    ] {
        store
            .websocket_connected(connection(id, None, Some(from)))
            .await
            .expect("connect");
    }
    store.websocket_disconnected("a2").await.expect("close a2");
    // A row the Node template wrote, with the address as a dual-stack socket
    // reports it.
    client
        .batch_execute(
            "INSERT INTO websocket_connections (connection_id, ip_address) \
             VALUES ('node', '::ffff:203.0.113.10')",
        )
        .await
        .expect("template row");

    // One connection.
    let blocked = store
        .block_websocket_connection("b1", "  flooding ", admin)
        .await
        .expect("block");
    assert!(blocked.is_blocked);
    assert_eq!(blocked.blocked_reason.as_deref(), Some("flooding"));
    assert_eq!(blocked.blocked_by, Some(admin));
    assert!(
        blocked.blocked_at.is_some(),
        "the trigger stamps blocked_at"
    );
    assert!(store
        .is_websocket_blocked(Some("b1"), None)
        .await
        .expect("check"));
    assert!(store
        .is_websocket_blocked(None, Some(ip("198.51.100.7")))
        .await
        .expect("its address counts as blocked"));
    assert!(!store
        .is_websocket_blocked(Some("a1"), None)
        .await
        .expect("check"));
    assert!(!store
        .is_websocket_blocked(Some("unknown"), None)
        .await
        .expect("unknown ids are not blocked"));
    let unblocked = store
        .unblock_websocket_connection("b1")
        .await
        .expect("unblock");
    assert!(!unblocked.is_blocked);
    assert_eq!(
        (
            unblocked.blocked_reason,
            unblocked.blocked_by,
            unblocked.blocked_at
        ),
        (None, None, None),
        "the trigger clears the block columns"
    );
    assert!(!store
        .is_websocket_blocked(Some("b1"), Some(ip("198.51.100.7")))
        .await
        .expect("check"));

    // By address: every row from it, open or closed, in either form.
    let n = store
        .block_websocket_ip(ip("::ffff:203.0.113.10"), "abuse", admin)
        .await
        .expect("block ip");
    assert_eq!(n, 3, "a1, a2 (closed) and the template's mapped-form row");
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM websocket_connections WHERE is_blocked"
        )
        .await,
        3
    );
    assert!(store
        .is_websocket_blocked(None, Some(ip("203.0.113.10")))
        .await
        .expect("check"));
    // A new connection from the address is caught by the address check.
    store
        .websocket_connected(connection("a3", None, Some("203.0.113.10")))
        .await
        .expect("connect");
    assert!(!store
        .is_websocket_blocked(Some("a3"), None)
        .await
        .expect("the row itself is not blocked"));
    assert!(store
        .is_websocket_blocked(Some("a3"), Some(ip("203.0.113.10")))
        .await
        .expect("connection or address"));
    assert!(!store
        .is_websocket_blocked(None, Some(ip("2001:db8::1")))
        .await
        .expect("other address"));
    assert_eq!(
        store
            .block_websocket_ip(ip("192.0.2.99"), "never seen", admin)
            .await
            .expect("no rows"),
        0
    );

    assert_eq!(
        store
            .unblock_websocket_ip(ip("203.0.113.10"))
            .await
            .expect("unblock ip"),
        3,
        "the blocked rows from the address"
    );
    assert!(!store
        .is_websocket_blocked(None, Some(ip("::ffff:203.0.113.10")))
        .await
        .expect("check"));
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM websocket_connections \
             WHERE is_blocked OR blocked_reason IS NOT NULL OR blocked_by IS NOT NULL"
        )
        .await,
        0
    );

    // Unknown actors and connections.
    let stranger = UserId(Uuid::new_v4());
    let r = store.block_websocket_connection("a1", "x", stranger).await;
    assert!(matches!(r, Err(Error::Forbidden { .. })), "{r:?}");
    let r = store
        .block_websocket_ip(ip("203.0.113.10"), "x", stranger)
        .await;
    assert!(matches!(r, Err(Error::Forbidden { .. })), "{r:?}");
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM websocket_connections WHERE is_blocked"
        )
        .await,
        0
    );
    assert_eq!(
        not_found(store.block_websocket_connection("nope", "x", admin).await),
        "websocket connection"
    );
    assert_eq!(
        not_found(store.unblock_websocket_connection("nope").await),
        "websocket connection"
    );
}

#[tokio::test]
async fn active_connections_page_through_the_view() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let mut open = Vec::new();
    for i in 0..23 {
        let id = format!("ws-{i:02}");
        let user = (i % 2 == 0).then_some(ann);
        store
            .websocket_connected(connection(&id, user, Some("203.0.113.1")))
            .await
            .expect("connect");
        open.push(id);
    }
    for id in ["ws-03", "ws-04"] {
        store.websocket_disconnected(id).await.expect("close");
    }
    open.retain(|id| id != "ws-03" && id != "ws-04");

    let mut seen = Vec::new();
    let mut page = store
        .active_websocket_connections(&PageRequest::first(8))
        .await
        .expect("first page");
    let first = &page.items[0];
    assert_eq!(first.connection_id, "ws-22");
    assert_eq!(first.user_email.as_deref(), Some("ann@example.com"));
    assert_eq!(first.user_display_name.as_deref(), Some("Tester"));
    assert_eq!(page.items[1].user_email, None, "anonymous");
    assert!(first.connection_duration_seconds >= 0.0);
    seen.extend(page.items.iter().map(|c| c.connection_id.clone()));
    // Connections opening and closing between pages.
    for i in 0..3 {
        store
            .websocket_connected(NewWebsocketConnection::new(format!("late-{i}")))
            .await
            .expect("connect");
    }
    while let Some(cursor) = page.next_cursor.clone() {
        page = store
            .active_websocket_connections(&PageRequest::after(8, cursor))
            .await
            .expect("next page");
        seen.extend(page.items.iter().map(|c| c.connection_id.clone()));
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no repeats");
    let mut expected = open.clone();
    expected.reverse();
    assert_eq!(seen, expected, "most recent first, none skipped");

    assert_eq!(
        validation_field(
            store
                .active_websocket_connections(&PageRequest::after(8, "garbage"))
                .await
        ),
        "cursor"
    );
}

#[tokio::test]
async fn stats_count_what_the_view_counts() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let ann = new_user(&client, "ann@example.com").await;
    let empty = store.websocket_stats().await.expect("stats");
    assert_eq!(
        (empty.active_connections, empty.total_connections_all_time),
        (0, 0)
    );
    store
        .websocket_connected(connection("auth", Some(ann), None))
        .await
        .expect("connect");
    store
        .websocket_connected(connection("anon-1", None, None))
        .await
        .expect("connect");
    store
        .websocket_connected(connection("anon-2", None, None))
        .await
        .expect("connect");
    store
        .websocket_connected(connection("gone", None, None))
        .await
        .expect("connect");
    store.websocket_disconnected("gone").await.expect("close");
    store
        .block_websocket_connection("anon-2", "spam", ann)
        .await
        .expect("block");
    for _ in 0..4 {
        store
            .record_websocket_activity("auth")
            .await
            .expect("activity");
    }
    let stats = store.websocket_stats().await.expect("stats");
    assert_eq!(stats.active_connections, 3);
    assert_eq!(stats.authenticated_connections, 1);
    assert_eq!(stats.anonymous_connections, 2);
    assert_eq!(stats.blocked_connections, 1);
    assert_eq!(stats.total_connections_all_time, 4);
    assert_eq!(stats.max_messages_per_connection, 4);
    assert!((stats.avg_messages_per_connection - 1.0).abs() < 1e-9);
}

#[tokio::test]
async fn cleanup_deletes_old_closed_connections_and_counts_them() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    for id in [
        "old-1", "old-2", "old-3", "recent-1", "recent-2", "open-old", "open",
    ] {
        store
            .websocket_connected(NewWebsocketConnection::new(id))
            .await
            .expect("connect");
    }
    client
        .batch_execute(
            "UPDATE websocket_connections SET connected_at = now() - interval '41 days', \
                 disconnected_at = now() - interval '40 days' WHERE connection_id LIKE 'old-%'; \
             UPDATE websocket_connections SET connected_at = now() - interval '11 days', \
                 disconnected_at = now() - interval '10 days' WHERE connection_id LIKE 'recent-%'; \
             UPDATE websocket_connections SET connected_at = now() - interval '400 days' \
                 WHERE connection_id = 'open-old';",
        )
        .await
        .expect("age rows");

    assert_eq!(
        store
            .cleanup_websocket_connections(30)
            .await
            .expect("cleanup"),
        3
    );
    assert_eq!(
        store
            .cleanup_websocket_connections(30)
            .await
            .expect("again"),
        0
    );
    assert_eq!(
        store
            .cleanup_websocket_connections(5)
            .await
            .expect("cleanup"),
        2
    );
    assert_eq!(
        store
            .cleanup_websocket_connections(0)
            .await
            .expect("cleanup"),
        0,
        "open connections stay whatever their age"
    );
    let left: Vec<String> = client
        .query(
            "SELECT connection_id FROM websocket_connections ORDER BY connection_id",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["open", "open-old"]);

    store.websocket_disconnected("open").await.expect("close");
    assert_eq!(
        store
            .cleanup_websocket_connections(0)
            .await
            .expect("cleanup"),
        1,
        "0 days keeps nothing that is closed"
    );
    assert_eq!(
        store
            .cleanup_websocket_connections(CLEANUP_DAYS_MAX)
            .await
            .expect("the largest window"),
        0
    );
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_query() {
    let store = common::store_without_server().await;
    let actor = UserId(Uuid::new_v4());
    let long_id = "c".repeat(65);
    let mut bad_meta = NewWebsocketConnection::new("ok");
    bad_meta.metadata = Some(json!(["not", "an", "object"]));
    let cases: Vec<(&str, Result<(), Error>)> = vec![
        (
            "connection_id",
            store
                .websocket_connected(NewWebsocketConnection::new("  "))
                .await
                .map(drop),
        ),
        (
            "connection_id",
            store
                .websocket_connected(NewWebsocketConnection::new(long_id.clone()))
                .await
                .map(drop),
        ),
        (
            "connection_id",
            store
                .websocket_connected(NewWebsocketConnection::new("a\0"))
                .await
                .map(drop),
        ),
        (
            "metadata",
            store.websocket_connected(bad_meta).await.map(drop),
        ),
        (
            "connection_id",
            store.websocket_connection(&long_id).await.map(drop),
        ),
        (
            "connection_id",
            store.record_websocket_activity("").await.map(drop),
        ),
        (
            "metadata",
            store
                .update_websocket_metadata("ok", json!("text"))
                .await
                .map(drop),
        ),
        (
            "metadata",
            store
                .update_websocket_metadata("ok", json!({"k": "a\u{0}b"}))
                .await
                .map(drop),
        ),
        (
            "metadata",
            store
                .update_websocket_metadata("ok", json!({"k": "x".repeat(METADATA_MAX_BYTES)}))
                .await
                .map(drop),
        ),
        (
            "connection_id",
            store.websocket_disconnected(&long_id).await.map(drop),
        ),
        (
            "reason",
            store
                .block_websocket_connection("ok", " ", actor)
                .await
                .map(drop),
        ),
        (
            "reason",
            store
                .block_websocket_connection("ok", &"r".repeat(1001), actor)
                .await
                .map(drop),
        ),
        (
            "connection_id",
            store
                .block_websocket_connection("", "spam", actor)
                .await
                .map(drop),
        ),
        (
            "reason",
            store
                .block_websocket_ip(ip("192.0.2.1"), "", actor)
                .await
                .map(drop),
        ),
        (
            "connection_id",
            store.unblock_websocket_connection("").await.map(drop),
        ),
        (
            "connection_id",
            store.is_websocket_blocked(None, None).await.map(drop),
        ),
        (
            "connection_id",
            store
                .is_websocket_blocked(Some(&long_id), None)
                .await
                .map(drop),
        ),
        (
            "cursor",
            store
                .active_websocket_connections(&PageRequest::after(5, "x"))
                .await
                .map(drop),
        ),
        (
            "days_to_keep",
            store.cleanup_websocket_connections(-1).await.map(drop),
        ),
        (
            "days_to_keep",
            store
                .cleanup_websocket_connections(CLEANUP_DAYS_MAX + 1)
                .await
                .map(drop),
        ),
    ];
    for (field, result) in cases {
        assert_eq!(validation_field(result), field);
    }
    let err = store.websocket_stats().await.expect_err("no server");
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn the_disabled_store_stores_nothing() {
    let store = DisabledStore::new("tests");
    let actor = UserId(Uuid::new_v4());
    let addr = ip("192.0.2.1");
    let results = [
        store
            .websocket_connected(NewWebsocketConnection::new("x"))
            .await
            .map(drop),
        store.websocket_connection("x").await.map(drop),
        store.record_websocket_activity("x").await.map(drop),
        store
            .update_websocket_metadata("x", json!({}))
            .await
            .map(drop),
        store.websocket_disconnected("x").await.map(drop),
        store
            .block_websocket_connection("x", "r", actor)
            .await
            .map(drop),
        store.block_websocket_ip(addr, "r", actor).await.map(drop),
        store.unblock_websocket_connection("x").await.map(drop),
        store.unblock_websocket_ip(addr).await.map(drop),
        store
            .is_websocket_blocked(Some("x"), Some(addr))
            .await
            .map(drop),
        store
            .active_websocket_connections(&PageRequest::default())
            .await
            .map(drop),
        store.websocket_stats().await.map(drop),
        store.cleanup_websocket_connections(30).await.map(drop),
    ];
    for r in results {
        assert!(matches!(r, Err(Error::Disabled)), "{r:?}");
    }
}
