//! The statements of everyday calls stay prepared on their connection.
//! Diesel keeps no `UPDATE` and no upsert prepared, so each would be
//! prepared, run and closed on every call (two round trips more); the
//! repository marks those whose text is fixed. Here the everyday calls that
//! run such statements (and a listing) run twice on a store of one
//! connection: after the first round each of their statements is in
//! `pg_prepared_statements` exactly once, and the second round prepares
//! nothing.

mod common;

use chrono::{Duration, Utc};
use common::TestDb;
use diesel_async::RunQueryDsl;
use pronghorn_db::models::NewLocalUser;
use pronghorn_db::models::RequestMeta;
use pronghorn_db::models::Role;
use pronghorn_db::models::{NewConversation, NewWebsocketConnection, UserFilter, UserId};
use pronghorn_db::{
    ConversationStore, PageRequest, PgStore, RefreshTokenStore, SessionCookie, SessionData,
    SessionStore, UserStore, WebsocketStore,
};
use uuid::Uuid;

const PASSWORD: &str = "user password";

#[derive(diesel::QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Prepared {
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
    /// When it was prepared, as text: the same statement prepared again
    /// would show a later time.
    #[diesel(sql_type = diesel::sql_types::Text)]
    at: String,
}

/// The statements prepared on the store's one connection, but this query
/// (prepared only while it runs).
async fn prepared(store: &PgStore) -> Vec<Prepared> {
    let mut conn = store.conn().await.expect("conn");
    let mut rows = diesel::sql_query(
        "SELECT statement, prepare_time::text AS at FROM pg_prepared_statements \
         WHERE statement NOT LIKE '%pg_prepared_statements%'",
    )
    .load::<Prepared>(&mut *conn)
    .await
    .expect("pg_prepared_statements");
    rows.sort();
    rows
}

/// One round of the calls whose statements are `UPDATE`s or upserts, and of
/// a listing (a boxed query, kept by its text).
async fn round(store: &PgStore, admin: UserId, user: UserId, conversation: Uuid, n: u32) {
    let meta = RequestMeta::default();
    let (old, new) = if n % 2 == 1 {
        (PASSWORD, "another password")
    } else {
        ("another password", PASSWORD)
    };
    store
        .change_password(user, old, new, &meta)
        .await
        .expect("change password");
    store
        .add_additional_role(user, &format!("tester-{n}"))
        .await
        .expect("add role");
    store
        .rename_conversation(user, conversation, Some(&format!("round {n}")))
        .await
        .expect("rename");
    let listed = store
        .list_users(&UserFilter::default(), &PageRequest::first(10))
        .await
        .expect("list users");
    assert_eq!(listed.items.len(), 2);
    store.record_login(user).await.expect("record login");
    store.verify_email(user).await.expect("verify email");
    store
        .change_role(admin, user, Role::Admin, &meta)
        .await
        .expect("promote");
    store
        .change_role(admin, user, Role::User, &meta)
        .await
        .expect("demote");
    store
        .block_user(admin, user, "spam", &meta)
        .await
        .expect("block");
    store
        .unblock_user(admin, user, &meta)
        .await
        .expect("unblock");
    let data = SessionData::new(SessionCookie::with_max_age(Duration::hours(1)));
    store
        .set_session("sid-1", &data)
        .await
        .expect("set session");
    assert!(store
        .touch_session("sid-1", Utc::now() + Duration::hours(2))
        .await
        .expect("touch session"));
    let mut ws = NewWebsocketConnection::new("ws-1");
    ws.user_id = Some(user);
    store.websocket_connected(ws).await.expect("connect");
    store
        .record_websocket_activity("ws-1")
        .await
        .expect("activity");
    store
        .update_websocket_metadata("ws-1", serde_json::json!({ "round": n }))
        .await
        .expect("metadata");
    store
        .block_websocket_connection("ws-1", "flood", admin)
        .await
        .expect("block connection");
    store
        .unblock_websocket_connection("ws-1")
        .await
        .expect("unblock connection");
    store
        .websocket_disconnected("ws-1")
        .await
        .expect("disconnect");
    let issued = store
        .issue_refresh_token(user, Duration::hours(1))
        .await
        .expect("issue");
    assert!(store
        .revoke_refresh_token(issued.token.expose())
        .await
        .expect("revoke"));
    store
        .revoke_user_refresh_tokens(user)
        .await
        .expect("revoke all");
}

#[tokio::test]
async fn updates_and_upserts_are_prepared_once_per_connection() {
    let db = TestDb::migrated().await;
    let store = db.one_connection_store().await;
    let mut new_admin = NewLocalUser::new("admin@x.io", "admin password", "Admin");
    new_admin.role = Role::Superadmin;
    let admin = store.create_user(new_admin).await.expect("admin").id;
    let user = store
        .create_user(NewLocalUser::new("u@x.io", PASSWORD, "U"))
        .await
        .expect("user")
        .id;
    let conversation = store
        .create_conversation(NewConversation::new(user, "openai"))
        .await
        .expect("conversation")
        .id;

    round(&store, admin, user, conversation, 1).await;
    let first = prepared(&store).await;
    for kept in [
        "UPDATE \"users\" SET \"password_hash\" = $1 \
         WHERE ((\"users\".\"id\" = $2) AND (\"users\".\"password_hash\" = $3))",
        "UPDATE \"users\" SET \"additional_roles\"",
        "UPDATE \"users\" SET \"last_login\"",
        "UPDATE \"users\" SET \"email_verified\"",
        "UPDATE \"users\" SET \"role\"",
        "UPDATE \"users\" SET \"is_blocked\"",
        "UPDATE \"conversations\" SET \"title\"",
        "INSERT INTO \"session\"",
        "UPDATE \"session\" SET \"expire\"",
        "DELETE FROM \"session\" WHERE",
        "INSERT INTO \"websocket_connections\"",
        "UPDATE \"websocket_connections\" SET \"message_count\"",
        "UPDATE \"websocket_connections\" SET \"metadata\"",
        "UPDATE \"websocket_connections\" SET \"is_blocked\"",
        "UPDATE \"websocket_connections\" SET \"disconnected_at\"",
        "UPDATE \"refresh_tokens\" SET \"revoked_at\" = CURRENT_TIMESTAMP \
         WHERE ((\"refresh_tokens\".\"token_hash\" = $1)",
        "UPDATE \"refresh_tokens\" SET \"revoked_at\" = CURRENT_TIMESTAMP \
         WHERE ((\"refresh_tokens\".\"user_id\" = $1)",
        "FROM \"users\" ORDER BY coalesce(\"users\".\"created_at\"",
    ] {
        let n = first.iter().filter(|p| p.statement.contains(kept)).count();
        assert_eq!(
            n,
            1,
            "{kept} should be prepared exactly once: {:#?}",
            first.iter().map(|p| &p.statement).collect::<Vec<_>>()
        );
    }

    round(&store, admin, user, conversation, 2).await;
    let second = prepared(&store).await;
    assert_eq!(
        first, second,
        "the second round ran on the statements the first one prepared"
    );
}
