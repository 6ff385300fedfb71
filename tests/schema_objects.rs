//! The views, SQL functions and triggers the migrations create, read and
//! called through their typed Diesel declarations (`views`, `functions`,
//! `models`), against a freshly migrated database.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::TestDb;
use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
use diesel_async::RunQueryDsl;
use pronghorn_db::functions::{
    can_modify_user_role, cleanup_old_websocket_connections, get_role_level, is_valid_role,
    log_user_action,
};
use pronghorn_db::models::{
    ActiveWebsocketConnection, PendingPasswordReset, ResetStatus, WebsocketConnectionStats,
};
use pronghorn_db::models::{
    AuditLogEntry, PasswordResetRequest, RefreshToken, Role, Session, User, UserId,
    WebsocketConnection,
};
use pronghorn_db::schema::{
    active_websocket_connections, pending_password_resets, websocket_connection_stats,
};
use pronghorn_db::schema::{
    password_reset_requests, refresh_tokens, session, user_audit_log, users, websocket_connections,
};
use pronghorn_db::PgStore;
use uuid::Uuid;

const ALICE: Uuid = Uuid::from_u128(0xa11ce000_0000_4000_8000_000000000001);
const BOB: Uuid = Uuid::from_u128(0xb0b00000_0000_4000_8000_000000000002);

/// A migrated database with two users, Alice (admin) and Bob (user).
async fn with_users() -> (TestDb, PgStore, tokio_postgres::Client) {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO users (id, email, password_hash, display_name, role) VALUES \
             ('{ALICE}', 'alice@example.test', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g', 'Alice', 'admin'), \
             ('{BOB}', 'bob@example.test', NULL, 'Bob', 'user')"
        ))
        .await
        .expect("insert users");
    let store = db.store().await;
    (db, store, client)
}

async fn load_user(store: &PgStore, id: Uuid) -> User {
    let mut conn = store.conn().await.expect("conn");
    users::table
        .find(UserId(id))
        .select(User::as_select())
        .get_result(&mut *conn)
        .await
        .expect("load user")
}

/// The ids of the reset requests inserted below: `00000000-0000-4000-8000-0000000000XX`.
fn reset_id(low: u128) -> Uuid {
    Uuid::from_u128(0x4000_8000_0000_0000_0000 | low)
}

fn close_to(actual: f64, expected: f64, slack: f64) -> bool {
    (actual - expected).abs() <= slack
}

#[tokio::test]
async fn active_websocket_connections_view_reads_typed_rows() {
    let (_db, store, client) = with_users().await;
    client
        .batch_execute(&format!(
            "INSERT INTO websocket_connections (connection_id, user_id, ip_address, connected_at, \
                 last_activity_at, message_count, is_authenticated, is_blocked, disconnected_at) VALUES \
             ('ws-alice', '{ALICE}', '192.0.2.1', NOW() - INTERVAL '1 hour', NOW(), 7, true, false, NULL), \
             ('ws-anon', NULL, '2001:db8::5', NOW() - INTERVAL '10 minutes', NULL, 0, false, true, NULL), \
             ('ws-gone', '{BOB}', '192.0.2.2', NOW() - INTERVAL '2 hours', NOW(), 3, true, false, NOW() - INTERVAL '1 hour')"
        ))
        .await
        .expect("insert connections");

    let mut conn = store.conn().await.expect("conn");
    let rows: Vec<ActiveWebsocketConnection> = active_websocket_connections::table
        .select(ActiveWebsocketConnection::as_select())
        .order(active_websocket_connections::connection_id.asc())
        .load(&mut *conn)
        .await
        .expect("read the view");

    assert_eq!(
        rows.len(),
        2,
        "the disconnected row is not active: {rows:?}"
    );
    let alice = &rows[0];
    assert_eq!(alice.connection_id, "ws-alice");
    assert_eq!(alice.user_id, Some(UserId(ALICE)));
    assert_eq!(alice.user_email.as_deref(), Some("alice@example.test"));
    assert_eq!(alice.user_display_name.as_deref(), Some("Alice"));
    assert_eq!(alice.ip_address, Some("192.0.2.1/32".parse().expect("ip")));
    assert!(alice.last_activity_at.is_some());
    assert_eq!(alice.message_count, 7);
    assert!(alice.is_authenticated);
    assert!(!alice.is_blocked);
    assert!(
        close_to(alice.connection_duration_seconds, 3600.0, 60.0),
        "duration {}",
        alice.connection_duration_seconds
    );

    let anon = &rows[1];
    assert_eq!(anon.connection_id, "ws-anon");
    assert_eq!(anon.user_id, None);
    assert_eq!(anon.user_email, None, "LEFT JOIN gives NULL without a user");
    assert_eq!(anon.user_display_name, None);
    assert_eq!(
        anon.ip_address,
        Some("2001:db8::5/128".parse().expect("ip"))
    );
    assert_eq!(anon.last_activity_at, None);
    assert!(!anon.is_authenticated);
    assert!(anon.is_blocked);
    assert!(close_to(anon.connection_duration_seconds, 600.0, 60.0));

    // The id column is the view's key: find() works on it.
    let found = active_websocket_connections::table
        .find(alice.id)
        .select(ActiveWebsocketConnection::as_select())
        .get_result(&mut *conn)
        .await
        .expect("find by id");
    assert_eq!(found.connection_id, "ws-alice");
}

#[tokio::test]
async fn websocket_connection_stats_view_counts() {
    let (_db, store, client) = with_users().await;
    let mut conn = store.conn().await.expect("conn");

    let empty: WebsocketConnectionStats = websocket_connection_stats::table
        .select(WebsocketConnectionStats::as_select())
        .first(&mut *conn)
        .await
        .expect("the view always has one row");
    assert_eq!(
        empty,
        WebsocketConnectionStats {
            active_connections: 0,
            authenticated_connections: 0,
            anonymous_connections: 0,
            blocked_connections: 0,
            total_connections_all_time: 0,
            avg_messages_per_connection: 0.0,
            max_messages_per_connection: 0,
            avg_connection_duration_seconds: 0.0,
        }
    );

    client
        .batch_execute(&format!(
            "INSERT INTO websocket_connections (connection_id, user_id, connected_at, message_count, \
                 is_authenticated, is_blocked, disconnected_at) VALUES \
             ('a', '{ALICE}', NOW() - INTERVAL '100 seconds', 10, true, false, NULL), \
             ('b', NULL, NOW() - INTERVAL '200 seconds', 2, false, true, NULL), \
             ('c', '{BOB}', NOW() - INTERVAL '1000 seconds', 0, true, true, NOW() - INTERVAL '700 seconds')"
        ))
        .await
        .expect("insert connections");

    let rows: Vec<WebsocketConnectionStats> = websocket_connection_stats::table
        .select(WebsocketConnectionStats::as_select())
        .load(&mut *conn)
        .await
        .expect("read the view");
    assert_eq!(rows.len(), 1);
    let stats = &rows[0];
    assert_eq!(stats.active_connections, 2);
    assert_eq!(stats.authenticated_connections, 1);
    assert_eq!(stats.anonymous_connections, 1);
    assert_eq!(
        stats.blocked_connections, 2,
        "blocked counts closed rows too"
    );
    assert_eq!(stats.total_connections_all_time, 3);
    assert!(close_to(stats.avg_messages_per_connection, 4.0, 1e-9));
    assert_eq!(stats.max_messages_per_connection, 10);
    // (100 + 200 + 300) / 3, with a little slack for the clock.
    assert!(
        close_to(stats.avg_connection_duration_seconds, 200.0, 5.0),
        "avg duration {}",
        stats.avg_connection_duration_seconds
    );
}

#[tokio::test]
async fn pending_password_resets_view_gives_status_newest_first() {
    let (_db, store, client) = with_users().await;
    client
        .batch_execute(&format!(
            "INSERT INTO password_reset_requests (id, user_id, reset_token_hash, requested_at, expires_at, \
                 used_at, ip_address) VALUES \
             ('00000000-0000-4000-8000-0000000000a1', '{ALICE}', 'h1', NOW() - INTERVAL '3 hours', \
                 NOW() - INTERVAL '2 hours', NULL, '198.51.100.1'), \
             ('00000000-0000-4000-8000-0000000000a2', '{BOB}', 'h2', NOW() - INTERVAL '10 minutes', \
                 NOW() + INTERVAL '50 minutes', NULL, NULL), \
             ('00000000-0000-4000-8000-0000000000a3', '{BOB}', 'h3', NOW() - INTERVAL '5 minutes', \
                 NOW() + INTERVAL '55 minutes', NOW(), NULL)"
        ))
        .await
        .expect("insert reset requests");

    let mut conn = store.conn().await.expect("conn");
    let rows: Vec<PendingPasswordReset> = pending_password_resets::table
        .select(PendingPasswordReset::as_select())
        .load(&mut *conn)
        .await
        .expect("read the view");

    assert_eq!(rows.len(), 2, "the used request is not listed: {rows:?}");
    let (newest, oldest) = (&rows[0], &rows[1]);
    assert!(newest.requested_at > oldest.requested_at, "newest first");
    assert_eq!(newest.id, reset_id(0xa2));
    assert_eq!(newest.user_id, UserId(BOB));
    assert_eq!(newest.email, "bob@example.test");
    assert_eq!(newest.display_name, "Bob");
    assert_eq!(newest.ip_address, None);
    assert_eq!(newest.status, ResetStatus::Pending);
    assert!(newest.expires_at > Utc::now());

    assert_eq!(oldest.id, reset_id(0xa1));
    assert_eq!(oldest.email, "alice@example.test");
    assert_eq!(oldest.display_name, "Alice");
    assert_eq!(
        oldest.ip_address,
        Some("198.51.100.1/32".parse().expect("ip"))
    );
    assert_eq!(oldest.status, ResetStatus::Expired);

    // ResetStatus binds as text, so it filters too.
    let expired: Vec<Uuid> = pending_password_resets::table
        .filter(pending_password_resets::status.eq(ResetStatus::Expired))
        .select(pending_password_resets::id)
        .load(&mut *conn)
        .await
        .expect("filter by status");
    assert_eq!(expired, vec![reset_id(0xa1)]);
}

#[tokio::test]
async fn role_functions_follow_the_hierarchy() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let mut conn = store.conn().await.expect("conn");

    for (name, level) in [
        ("superadmin", 100),
        ("admin", 50),
        ("user", 10),
        ("root", 0),
        ("Admin", 0),
        ("", 0),
    ] {
        let got: i32 = diesel::select(get_role_level(name))
            .get_result(&mut *conn)
            .await
            .expect("get_role_level");
        assert_eq!(got, level, "get_role_level({name:?})");
        let valid: bool = diesel::select(is_valid_role(name))
            .get_result(&mut *conn)
            .await
            .expect("is_valid_role");
        assert_eq!(valid, level > 0, "is_valid_role({name:?})");
        // The Rust enum agrees with the SQL function.
        let parsed = name.parse::<Role>().ok();
        assert_eq!(
            parsed.map_or(0, Role::level),
            level,
            "Role::level for {name:?}"
        );
    }

    // The whole truth table, against the rule as SCHEMA.md states it.
    let names = ["superadmin", "admin", "user", "nobody"];
    let level = |r: &str| r.parse::<Role>().map_or(0, Role::level);
    let mut checked = 0;
    for actor in names {
        for current in names {
            for new in std::iter::once(None).chain(names.iter().copied().map(Some)) {
                let got: bool = diesel::select(can_modify_user_role(actor, current, new))
                    .get_result(&mut *conn)
                    .await
                    .expect("can_modify_user_role");
                let expected =
                    level(actor) > level(current) && new.is_none_or(|n| level(actor) > level(n));
                assert_eq!(
                    got, expected,
                    "can_modify_user_role({actor}, {current}, {new:?})"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * 4 * 5);

    // The cases that matter, spelled out.
    for (actor, current, new, expected) in [
        ("superadmin", "admin", Some("user"), true),
        ("superadmin", "user", Some("admin"), true),
        ("superadmin", "superadmin", None, false),
        ("admin", "admin", None, false),
        ("admin", "user", None, true),
        ("admin", "user", Some("admin"), false),
        ("admin", "user", Some("superadmin"), false),
        ("user", "user", None, false),
        ("nobody", "nobody", None, false),
        ("admin", "nobody", None, true),
        ("admin", "nobody", Some("nobody"), true),
    ] {
        let got: bool = diesel::select(can_modify_user_role(actor, current, new))
            .get_result(&mut *conn)
            .await
            .expect("can_modify_user_role");
        assert_eq!(
            got, expected,
            "can_modify_user_role({actor}, {current}, {new:?})"
        );
    }
}

#[tokio::test]
async fn log_user_action_returns_the_new_rows_id() {
    let (_db, store, _client) = with_users().await;
    let mut conn = store.conn().await.expect("conn");
    let details = serde_json::json!({"previousRole": "user", "newRole": "admin"});
    let ip: ipnet::IpNet = "203.0.113.9/32".parse().expect("ip");

    let id: Uuid = diesel::select(log_user_action(
        Some(BOB),
        Some(ALICE),
        "role_changed",
        &details,
        Some(ip),
        Some("test-agent/1.0"),
    ))
    .get_result(&mut *conn)
    .await
    .expect("log_user_action");

    let entry: AuditLogEntry = user_audit_log::table
        .find(id)
        .select(AuditLogEntry::as_select())
        .get_result(&mut *conn)
        .await
        .expect("the logged row");
    assert_eq!(entry.id, id);
    assert_eq!(entry.user_id, Some(UserId(BOB)));
    assert_eq!(entry.actor_id, Some(UserId(ALICE)));
    assert_eq!(entry.action, "role_changed");
    assert_eq!(entry.details, Some(details));
    assert_eq!(entry.ip_address, Some(ip));
    assert_eq!(entry.user_agent.as_deref(), Some("test-agent/1.0"));
    assert!((Utc::now() - entry.created_at).num_seconds().abs() < 60);

    // NULL user, actor, address and agent (a system action).
    let id2: Uuid = diesel::select(log_user_action(
        None::<Uuid>,
        None::<Uuid>,
        "admin_generated_reset_token",
        serde_json::json!({}),
        None::<ipnet::IpNet>,
        None::<String>,
    ))
    .get_result(&mut *conn)
    .await
    .expect("log_user_action with NULLs");
    assert_ne!(id2, id);
    let entry2: AuditLogEntry = user_audit_log::table
        .find(id2)
        .select(AuditLogEntry::as_select())
        .get_result(&mut *conn)
        .await
        .expect("the second row");
    assert_eq!((entry2.user_id, entry2.actor_id), (None, None));
    assert_eq!(entry2.details, Some(serde_json::json!({})));
    assert_eq!((entry2.ip_address, entry2.user_agent), (None, None));

    let count: i64 = user_audit_log::table
        .count()
        .get_result(&mut *conn)
        .await
        .expect("count");
    assert_eq!(count, 2);
}

#[tokio::test]
async fn cleanup_deletes_only_old_disconnected_rows() {
    let (_db, store, client) = with_users().await;
    client
        .batch_execute(&format!(
            "INSERT INTO websocket_connections (connection_id, user_id, connected_at, disconnected_at) VALUES \
             ('ended-40d', '{ALICE}', NOW() - INTERVAL '41 days', NOW() - INTERVAL '40 days'), \
             ('ended-31d', NULL, NOW() - INTERVAL '32 days', NOW() - INTERVAL '31 days'), \
             ('ended-10d', '{BOB}', NOW() - INTERVAL '11 days', NOW() - INTERVAL '10 days'), \
             ('ended-now', NULL, NOW() - INTERVAL '1 hour', NOW()), \
             ('open-100d', '{ALICE}', NOW() - INTERVAL '100 days', NULL)"
        ))
        .await
        .expect("insert connections");
    let mut conn = store.conn().await.expect("conn");

    let deleted: i32 = diesel::select(cleanup_old_websocket_connections(30))
        .get_result(&mut *conn)
        .await
        .expect("cleanup 30");
    assert_eq!(deleted, 2);
    let again: i32 = diesel::select(cleanup_old_websocket_connections(30))
        .get_result(&mut *conn)
        .await
        .expect("cleanup 30 again");
    assert_eq!(again, 0, "nothing more is older than 30 days");

    let deleted: i32 = diesel::select(cleanup_old_websocket_connections(5))
        .get_result(&mut *conn)
        .await
        .expect("cleanup 5");
    assert_eq!(deleted, 1);

    let left: Vec<WebsocketConnection> = websocket_connections::table
        .select(WebsocketConnection::as_select())
        .order(websocket_connections::connection_id.asc())
        .load(&mut *conn)
        .await
        .expect("remaining rows");
    let names: Vec<&str> = left.iter().map(|c| c.connection_id.as_str()).collect();
    assert_eq!(names, ["ended-now", "open-100d"]);
    let open = &left[1];
    assert_eq!(open.disconnected_at, None);
    assert_eq!(open.user_id, Some(UserId(ALICE)));
    assert_eq!(
        open.metadata,
        Some(serde_json::json!({})),
        "metadata defaults to {{}}"
    );
    assert_eq!(open.message_count, 0);
}

#[tokio::test]
async fn users_triggers_keep_updated_at_and_block_fields() {
    let (_db, store, client) = with_users().await;
    let past: DateTime<Utc> = "2020-01-01T00:00:00Z".parse().expect("time");
    client
        .batch_execute(&format!(
            "UPDATE users SET updated_at = '2020-01-01T00:00:00Z' WHERE id = '{BOB}'"
        ))
        .await
        .expect("backdate");
    // The trigger overrides even an explicit updated_at.
    let before = load_user(&store, BOB).await;
    assert!(
        before
            .updated_at
            .is_some_and(|t| Utc::now() - t < Duration::minutes(1)),
        "updated_at moved to now: {:?}",
        before.updated_at
    );
    client
        .batch_execute(&format!(
            "ALTER TABLE users DISABLE TRIGGER users_updated_at; \
             UPDATE users SET updated_at = '2020-01-01T00:00:00Z' WHERE id = '{BOB}'; \
             ALTER TABLE users ENABLE TRIGGER users_updated_at"
        ))
        .await
        .expect("backdate without the trigger");
    assert_eq!(load_user(&store, BOB).await.updated_at, Some(past));

    let mut conn = store.conn().await.expect("conn");
    diesel::update(users::table.find(UserId(BOB)))
        .set(users::display_name.eq("Robert"))
        .execute(&mut *conn)
        .await
        .expect("rename");
    let renamed = load_user(&store, BOB).await;
    assert_eq!(renamed.display_name, "Robert");
    let moved = renamed.updated_at.expect("updated_at");
    assert!(
        moved > past && Utc::now() - moved < Duration::minutes(1),
        "updated_at {moved}"
    );
    assert_eq!(renamed.blocked_at, None);
    assert!(!renamed.blocked());

    diesel::update(users::table.find(UserId(BOB)))
        .set((
            users::is_blocked.eq(true),
            users::blocked_reason.eq("spam"),
            users::blocked_by.eq(UserId(ALICE)),
        ))
        .execute(&mut *conn)
        .await
        .expect("block");
    let blocked = load_user(&store, BOB).await;
    assert!(blocked.blocked());
    let blocked_at = blocked.blocked_at.expect("blocking sets blocked_at");
    assert!(Utc::now() - blocked_at < Duration::minutes(1));
    assert_eq!(blocked.blocked_reason.as_deref(), Some("spam"));
    assert_eq!(blocked.blocked_by, Some(UserId(ALICE)));

    // An update that keeps the block keeps its time.
    diesel::update(users::table.find(UserId(BOB)))
        .set(users::last_login.eq(Utc::now()))
        .execute(&mut *conn)
        .await
        .expect("login while blocked");
    assert_eq!(load_user(&store, BOB).await.blocked_at, Some(blocked_at));

    diesel::update(users::table.find(UserId(BOB)))
        .set(users::is_blocked.eq(false))
        .execute(&mut *conn)
        .await
        .expect("unblock");
    let unblocked = load_user(&store, BOB).await;
    assert_eq!(unblocked.is_blocked, Some(false));
    assert_eq!(unblocked.blocked_at, None);
    assert_eq!(unblocked.blocked_reason, None);
    assert_eq!(unblocked.blocked_by, None);
    assert_eq!(unblocked.display_name, "Robert");
}

#[tokio::test]
async fn debug_output_never_shows_secrets() {
    let (_db, store, client) = with_users().await;
    let password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
    let reset_token = "5f1d2c9e0a7b4c3d8e6f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
    let refresh_hash = "362c9d6fc4982b9dfdd648cef2b54c4b9857a77ce510bcc8e0e863d1c7d655f5";
    let reset_hash = "9e107d9d372bb6826bd81d3542a419d6e1a2b3c4d5e6f708192a3b4c5d6e7f80";
    let sid = "qL7cN2xV9bR4tY6uI1oP3aS5dF8gH0jK";
    let session_secret = "passport-user-secret-value";
    client
        .batch_execute(&format!(
            "UPDATE users SET reset_token = '{reset_token}' WHERE id = '{ALICE}'; \
             INSERT INTO refresh_tokens (user_id, token_hash, expires_at) \
                 VALUES ('{ALICE}', '{refresh_hash}', NOW() + INTERVAL '1 day'); \
             INSERT INTO password_reset_requests (user_id, reset_token_hash, expires_at) \
                 VALUES ('{ALICE}', '{reset_hash}', NOW() + INTERVAL '1 hour'); \
             INSERT INTO session (sid, sess, expire) \
                 VALUES ('{sid}', '{{\"passport\":{{\"user\":\"{session_secret}\"}}}}', NOW() + INTERVAL '1 day')"
        ))
        .await
        .expect("insert secrets");

    let alice = load_user(&store, ALICE).await;
    assert_eq!(alice.password_hash.as_deref(), Some(password_hash));
    let shown = format!("{alice:?}");
    assert!(!shown.contains(password_hash), "{shown}");
    assert!(!shown.contains("argon2"), "{shown}");
    assert!(!shown.contains(reset_token), "{shown}");
    assert!(shown.contains(r#"password_hash: Some("***")"#), "{shown}");
    assert!(shown.contains(r#"reset_token: Some("***")"#), "{shown}");
    assert!(shown.contains("alice@example.test"), "{shown}");
    let pretty = format!("{alice:#?}");
    assert!(!pretty.contains(password_hash));

    let bob = load_user(&store, BOB).await;
    assert!(format!("{bob:?}").contains("password_hash: None"));

    let mut conn = store.conn().await.expect("conn");
    let token: RefreshToken = refresh_tokens::table
        .select(RefreshToken::as_select())
        .first(&mut *conn)
        .await
        .expect("token");
    assert_eq!(token.token_hash, refresh_hash);
    let shown = format!("{token:?}");
    assert!(!shown.contains(refresh_hash), "{shown}");

    let request: PasswordResetRequest = password_reset_requests::table
        .select(PasswordResetRequest::as_select())
        .first(&mut *conn)
        .await
        .expect("reset request");
    assert_eq!(request.reset_token_hash, reset_hash);
    let shown = format!("{request:?}");
    assert!(!shown.contains(reset_hash), "{shown}");

    let sess: Session = session::table
        .select(Session::as_select())
        .first(&mut *conn)
        .await
        .expect("session");
    assert_eq!(sess.sess["passport"]["user"], session_secret);
    let shown = format!("{sess:?}");
    assert!(!shown.contains(session_secret), "{shown}");
    assert!(!shown.contains(sid), "{shown}");
    assert!(shown.contains("sess_bytes"), "{shown}");
}
