//! The example application over real HTTP: a bound port, an HTTP client,
//! and the real PostgreSQL (or none, in disabled mode).

mod common;
mod example;

use common::TestDb;
use example::{call, login, serve, serve_state, state, Outbox, Server, HEALTH_TOKEN, M};
use pronghorn_db::models::{NewLocalUser, Role};
use pronghorn_db::{DisabledStore, Store, UserStore};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journey_through_the_example() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let outbox = Arc::new(Outbox::default());
    let s = serve(store.clone(), outbox.clone()).await;

    // Health.
    let (status, body, _) = call(&s, M::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["database"]["connected"], true);
    let body = detailed_health(&s, Some(HEALTH_TOKEN)).await;
    assert_eq!(body["database"]["migrations"]["pending"], 0, "{body}");
    assert!(
        body["database"]["migrations"]["applied"]
            .as_u64()
            .unwrap_or(0)
            >= 18
    );
    assert!(body["database"]["version"]
        .as_str()
        .unwrap_or("")
        .starts_with("PostgreSQL"));
    assert_eq!(body["websockets"]["active_connections"], 0, "{body}");

    // Register; the same email again is a conflict; bad input names the field.
    let alice = json!({"email": "Alice@Example.com", "password": "alice-password-1", "display_name": "Alice"});
    let (status, body, _) = call(&s, M::POST, "/auth/register", Some(alice.clone()), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["email"], "alice@example.com");
    assert!(
        body.get("password_hash").is_none(),
        "no hash in responses: {body}"
    );
    let alice_id = body["id"].as_str().expect("id").to_owned();
    let (status, body, _) = call(&s, M::POST, "/auth/register", Some(alice), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let bad = json!({"email": "not-an-email", "password": "long enough pw", "display_name": "X"});
    let (status, body, _) = call(&s, M::POST, "/auth/register", Some(bad), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "email");

    // Login: wrong password is 401 without saying which part was wrong.
    let (status, body, _) = call(
        &s,
        M::POST,
        "/auth/login",
        Some(json!({"email": "alice@example.com", "password": "wrong"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_credentials");
    let (sid, refresh) = login(&s, "alice@example.com", "alice-password-1").await;
    let (status, body, _) = call(&s, M::GET, "/auth/me", None, Some(&sid)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], alice_id.as_str());
    let (status, _, _) = call(&s, M::GET, "/auth/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Profile.
    let (status, body, _) = call(
        &s,
        M::PUT,
        "/users/profile",
        Some(json!({"display_name": "Alice A.", "language_preference": "fr"})),
        Some(&sid),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Alice A.");

    // Conversations and messages, paged.
    let (status, conv, _) = call(
        &s,
        M::POST,
        "/conversations",
        Some(json!({"provider": "openai", "model": "gpt-4o", "title": "Plans"})),
        Some(&sid),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{conv}");
    let conv_id = conv["id"].as_str().expect("id").to_owned();
    for (i, role) in ["user", "assistant", "user"].iter().enumerate() {
        let (status, body, _) = call(
            &s,
            M::POST,
            &format!("/conversations/{conv_id}/messages"),
            Some(json!({"role": role, "content": format!("message {i}"), "tokens_used": 3})),
            Some(&sid),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let path = format!("/conversations/{conv_id}/messages?limit=2");
    let (status, page1, _) = call(&s, M::GET, &path, None, Some(&sid)).await;
    assert_eq!(status, StatusCode::OK, "{page1}");
    assert_eq!(page1["items"][0]["content"], "message 2");
    assert_eq!(page1["items"][1]["content"], "message 1");
    let cursor = page1["next_cursor"].as_str().expect("more").to_owned();
    let path = format!("/conversations/{conv_id}/messages?limit=2&cursor={cursor}");
    let (_, page2, _) = call(&s, M::GET, &path, None, Some(&sid)).await;
    assert_eq!(page2["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page2["items"][0]["content"], "message 0");
    assert!(page2["next_cursor"].is_null());
    let path = format!("/conversations/{conv_id}/messages?order=asc&limit=10");
    let (_, asc, _) = call(&s, M::GET, &path, None, Some(&sid)).await;
    assert_eq!(asc["items"][0]["content"], "message 0");
    let path = format!("/conversations/{conv_id}/messages?cursor=tampered");
    let (status, body, _) = call(&s, M::GET, &path, None, Some(&sid)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "cursor");
    let (_, list, _) = call(&s, M::GET, "/conversations", None, Some(&sid)).await;
    assert_eq!(list["items"][0]["id"], conv_id.as_str());

    // Refresh rotates; the old token presented again is refused.
    let (status, body, _) = call(
        &s,
        M::POST,
        "/auth/refresh",
        Some(json!({"refreshToken": refresh})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated = body["refreshToken"].as_str().expect("new token").to_owned();
    assert_ne!(rotated, refresh);
    let (status, _, _) = call(
        &s,
        M::POST,
        "/auth/refresh",
        Some(json!({"refreshToken": refresh})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Password reset: the same answer for a known and an unknown email.
    let (status, known, _) = call(
        &s,
        M::POST,
        "/auth/password-reset",
        Some(json!({"email": "alice@example.com"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, unknown, _) = call(
        &s,
        M::POST,
        "/auth/password-reset",
        Some(json!({"email": "nobody@example.com"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(known, unknown);
    // The request runs after the answer: wait for the email.
    let waited = std::time::Instant::now();
    while outbox.0.lock().expect("outbox").is_empty() {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(10),
            "no email was sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let token = {
        let sent = outbox.0.lock().expect("outbox");
        assert_eq!(sent.len(), 1, "only the real account gets an email");
        assert_eq!(sent[0].0, "alice@example.com");
        sent[0].1.clone()
    };
    let (status, body, _) = call(
        &s,
        M::POST,
        "/auth/password-reset/confirm",
        Some(json!({"resetToken": token, "newPassword": "brand-new-pass-1", "confirmPassword": "different-pass-1"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "confirmPassword");
    let (status, body, _) = call(
        &s,
        M::POST,
        "/auth/password-reset/confirm",
        Some(json!({"resetToken": token, "newPassword": "brand-new-pass-1", "confirmPassword": "brand-new-pass-1"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = call(
        &s,
        M::POST,
        "/auth/password-reset/confirm",
        Some(json!({"resetToken": token, "newPassword": "again-new-pass-1", "confirmPassword": "again-new-pass-1"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a used token is refused");
    // The reset revoked the refresh tokens.
    let (status, _, _) = call(
        &s,
        M::POST,
        "/auth/refresh",
        Some(json!({"refreshToken": rotated})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (sid, _) = login(&s, "alice@example.com", "brand-new-pass-1").await;

    // Logout ends the session.
    let (status, _, cleared) = call(&s, M::POST, "/auth/logout", None, Some(&sid)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(cleared.unwrap_or_default().contains("Max-Age=0"));
    let (status, _, _) = call(&s, M::GET, "/auth/me", None, Some(&sid)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Admin routes: a user is refused; a superadmin changes a role, which
    // is audited; an admin cannot grant admin.
    let (alice_sid, _) = login(&s, "alice@example.com", "brand-new-pass-1").await;
    let (status, _, _) = call(&s, M::GET, "/users", None, Some(&alice_sid)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut root = NewLocalUser::new("root@example.com", "root-password-1", "Root");
    root.role = Role::Superadmin;
    store.create_user(root).await.expect("superadmin");
    let mut boss = NewLocalUser::new("boss@example.com", "boss-password-1", "Boss");
    boss.role = Role::Admin;
    store.create_user(boss).await.expect("admin");
    let (root_sid, _) = login(&s, "root@example.com", "root-password-1").await;
    let (boss_sid, _) = login(&s, "boss@example.com", "boss-password-1").await;
    let role_path = format!("/users/{alice_id}/role");
    let (status, body, _) = call(
        &s,
        M::PUT,
        &role_path,
        Some(json!({"role": "admin"})),
        Some(&boss_sid),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body, _) = call(
        &s,
        M::PUT,
        &role_path,
        Some(json!({"role": "owner"})),
        Some(&root_sid),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "role");
    let (status, body, _) = call(
        &s,
        M::PUT,
        &role_path,
        Some(json!({"role": "admin"})),
        Some(&root_sid),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "admin");
    // Granted under the old role, alice's session ended with it.
    let (status, _, _) = call(&s, M::GET, "/auth/me", None, Some(&alice_sid)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (alice_sid, _) = login(&s, "alice@example.com", "brand-new-pass-1").await;
    let (status, audit, _) = call(
        &s,
        M::GET,
        &format!("/users/{alice_id}/audit"),
        None,
        Some(&root_sid),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert_eq!(audit["items"][0]["action"], "role_changed");
    assert_eq!(
        audit["items"][0]["details"],
        json!({"previousRole": "user", "newRole": "admin"})
    );
    let (status, users, _) = call(
        &s,
        M::GET,
        "/users?role=admin&limit=10",
        None,
        Some(&root_sid),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["items"].as_array().map(Vec::len), Some(2), "{users}");
    let (status, body, _) = call(
        &s,
        M::POST,
        &format!("/users/{alice_id}/block"),
        Some(json!({"reason": "testing"})),
        Some(&root_sid),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = call(&s, M::GET, "/auth/me", None, Some(&alice_sid)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a blocked user's session ends"
    );
    let (status, body, _) = call(
        &s,
        M::POST,
        "/auth/login",
        Some(json!({"email": "alice@example.com", "password": "brand-new-pass-1"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "account_blocked");
    let (status, _, _) = call(
        &s,
        M::POST,
        &format!("/users/{alice_id}/unblock"),
        None,
        Some(&root_sid),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (alice_sid, _) = login(&s, "alice@example.com", "brand-new-pass-1").await;
    let (status, resets, _) = call(
        &s,
        M::GET,
        "/users/admin/password-resets",
        None,
        Some(&root_sid),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resets}");

    // Another user's conversation is not found; deleting one's own works.
    let (status, _, _) = call(
        &s,
        M::GET,
        &format!("/conversations/{conv_id}"),
        None,
        Some(&root_sid),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(
        &s,
        M::DELETE,
        &format!("/conversations/{conv_id}"),
        None,
        Some(&alice_sid),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(&s, M::DELETE, "/users/me", None, Some(&alice_sid)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(&s, M::GET, "/auth/me", None, Some(&alice_sid)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

// ---- stolen session cookies (issue 16) ---------------------------------------

/// Makes an account through the store; returns its id.
async fn account(store: &Arc<dyn Store>, email: &str, password: &str, role: Role) -> String {
    let mut new = NewLocalUser::new(email, password, email);
    new.role = role;
    store
        .create_user(new)
        .await
        .expect("account")
        .id
        .to_string()
}

/// Every one of these cookies gets 401 from `/auth/me` after `what`.
async fn assert_logged_out(s: &Server, cookies: &[String], what: &str) {
    for cookie in cookies {
        assert_eq!(
            me_status(s, cookie).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
}

/// What `/auth/me` answers to this cookie.
async fn me_status(s: &Server, cookie: &str) -> StatusCode {
    call(s, M::GET, "/auth/me", None, Some(cookie)).await.0
}

/// Waits for the reset email the app sends to `email` (it sends it after
/// answering) and returns its token.
async fn reset_token_sent_to(outbox: &Outbox, email: &str) -> String {
    let waited = Instant::now();
    loop {
        let sent = outbox
            .0
            .lock()
            .expect("outbox")
            .iter()
            .rev()
            .find(|(to, _)| to == email)
            .map(|(_, token)| token.clone());
        if let Some(token) = sent {
            return token;
        }
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(10),
            "no email was sent to {email}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How many `session` rows name this user.
async fn session_rows_of(db: &TestDb, user: &str) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM \"session\" WHERE sess ->> 'userId' = $1",
            &[&user],
        )
        .await
        .expect("count sessions")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_ends_every_session_a_stolen_cookie_could_use() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let outbox = Arc::new(Outbox::default());
    let s = serve(store.clone(), outbox.clone()).await;
    account(&store, "ann@example.com", "ann-password-1", Role::User).await;
    account(&store, "bob@example.com", "bob-password-1", Role::User).await;
    let (victim, refresh) = login(&s, "ann@example.com", "ann-password-1").await;
    let (stolen, _) = login(&s, "ann@example.com", "ann-password-1").await;
    let (bob, _) = login(&s, "bob@example.com", "bob-password-1").await;
    for cookie in [&victim, &stolen, &bob] {
        assert_eq!(me_status(&s, cookie).await, StatusCode::OK);
    }

    let (status, _, _) = call(
        &s,
        M::POST,
        "/auth/password-reset",
        Some(json!({"email": "ann@example.com"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = reset_token_sent_to(&outbox, "ann@example.com").await;
    let (status, body, _) = call(
        &s,
        M::POST,
        "/auth/password-reset/confirm",
        Some(json!({"resetToken": token, "newPassword": "ann-password-2", "confirmPassword": "ann-password-2"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for cookie in [&victim, &stolen] {
        assert_eq!(me_status(&s, cookie).await, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = call(
        &s,
        M::POST,
        "/auth/refresh",
        Some(json!({"refreshToken": refresh})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&s, &bob).await, StatusCode::OK, "bob is not ann");
    let (fresh, _) = login(&s, "ann@example.com", "ann-password-2").await;
    assert_eq!(me_status(&s, &fresh).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_every_session_and_a_refused_one_none() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let s = serve(store.clone(), Arc::new(Outbox::default())).await;
    account(&store, "ann@example.com", "ann-password-1", Role::User).await;
    account(&store, "bob@example.com", "bob-password-1", Role::User).await;
    let (here, refresh) = login(&s, "ann@example.com", "ann-password-1").await;
    let (stolen, _) = login(&s, "ann@example.com", "ann-password-1").await;
    let (bob, _) = login(&s, "bob@example.com", "bob-password-1").await;

    // A wrong current password changes nothing and ends nothing.
    let (status, body, _) = call(
        &s,
        M::PUT,
        "/users/password",
        Some(json!({"currentPassword": "not-her-password", "newPassword": "ann-password-2"})),
        Some(&here),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "invalid_credentials");
    for cookie in [&here, &stolen] {
        assert_eq!(me_status(&s, cookie).await, StatusCode::OK);
    }

    let (status, body, cleared) = call(
        &s,
        M::PUT,
        "/users/password",
        Some(json!({"currentPassword": "ann-password-1", "newPassword": "ann-password-2"})),
        Some(&here),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(cleared.unwrap_or_default().contains("Max-Age=0"));
    for cookie in [&here, &stolen] {
        assert_eq!(me_status(&s, cookie).await, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = call(
        &s,
        M::POST,
        "/auth/refresh",
        Some(json!({"refreshToken": refresh})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&s, &bob).await, StatusCode::OK);
    let (fresh, _) = login(&s, "ann@example.com", "ann-password-2").await;
    assert_eq!(me_status(&s, &fresh).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_blocks_and_deletions_end_the_targets_sessions_not_the_admins() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let s = serve(store.clone(), Arc::new(Outbox::default())).await;
    let root_id = account(
        &store,
        "root@example.com",
        "root-password-1",
        Role::Superadmin,
    )
    .await;
    account(&store, "boss@example.com", "boss-password-1", Role::Admin).await;
    let (root, _) = login(&s, "root@example.com", "root-password-1").await;
    let (boss, _) = login(&s, "boss@example.com", "boss-password-1").await;
    let two_logins = |email: &'static str| {
        let s = &s;
        async move {
            let (a, _) = login(s, email, "user-password-1").await;
            let (b, _) = login(s, email, "user-password-1").await;
            [a, b]
        }
    };

    // Refused: an admin cannot block a superadmin; nobody's session ends.
    let (status, _, _) = call(
        &s,
        M::POST,
        &format!("/users/{root_id}/block"),
        Some(json!({"reason": "no"})),
        Some(&boss),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(me_status(&s, &root).await, StatusCode::OK);

    let cat = account(&store, "cat@example.com", "user-password-1", Role::User).await;
    let cats = two_logins("cat@example.com").await;
    let (status, body, _) = call(
        &s,
        M::PUT,
        &format!("/users/{cat}/role"),
        Some(json!({"role": "admin"})),
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_logged_out(&s, &cats, "role change").await;
    assert_eq!(me_status(&s, &root).await, StatusCode::OK);

    let dan = account(&store, "dan@example.com", "user-password-1", Role::User).await;
    let dans = two_logins("dan@example.com").await;
    let (status, body, _) = call(
        &s,
        M::POST,
        &format!("/users/{dan}/block"),
        Some(json!({"reason": "stolen cookies"})),
        Some(&boss),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_logged_out(&s, &dans, "block").await;
    assert_eq!(session_rows_of(&db, &dan).await, 0);
    // Unblocked, the old cookies stay dead.
    let (status, _, _) = call(
        &s,
        M::POST,
        &format!("/users/{dan}/unblock"),
        None,
        Some(&boss),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_logged_out(&s, &dans, "unblock").await;
    assert_eq!(me_status(&s, &boss).await, StatusCode::OK);

    let eve = account(&store, "eve@example.com", "user-password-1", Role::User).await;
    let eves = two_logins("eve@example.com").await;
    let (status, body, _) = call(&s, M::DELETE, &format!("/users/{eve}"), None, Some(&root)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_logged_out(&s, &eves, "delete").await;
    assert_eq!(session_rows_of(&db, &eve).await, 0);

    let fay = account(&store, "fay@example.com", "user-password-1", Role::User).await;
    let fays = two_logins("fay@example.com").await;
    let (status, _, _) = call(&s, M::DELETE, "/users/me", None, Some(&fays[0])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_logged_out(&s, &fays, "self-delete").await;
    assert_eq!(session_rows_of(&db, &fay).await, 0);

    for cookie in [&root, &boss] {
        assert_eq!(me_status(&s, cookie).await, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_everywhere_ends_every_session_and_refresh_token() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let s = serve(store.clone(), Arc::new(Outbox::default())).await;
    account(&store, "ann@example.com", "ann-password-1", Role::User).await;
    account(&store, "bob@example.com", "bob-password-1", Role::User).await;
    let (phone, phone_refresh) = login(&s, "ann@example.com", "ann-password-1").await;
    let (laptop, laptop_refresh) = login(&s, "ann@example.com", "ann-password-1").await;
    let (bob, _) = login(&s, "bob@example.com", "bob-password-1").await;

    let (status, _, _) = call(&s, M::POST, "/auth/logout-all", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body, cleared) = call(&s, M::POST, "/auth/logout-all", None, Some(&phone)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessionsEnded"], 2, "{body}");
    assert_eq!(body["refreshTokensRevoked"], 2, "{body}");
    assert!(cleared.unwrap_or_default().contains("Max-Age=0"));
    for cookie in [&phone, &laptop] {
        assert_eq!(me_status(&s, cookie).await, StatusCode::UNAUTHORIZED);
    }
    for refresh in [phone_refresh, laptop_refresh] {
        let (status, _, _) = call(
            &s,
            M::POST,
            "/auth/refresh",
            Some(json!({"refreshToken": refresh})),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(me_status(&s, &bob).await, StatusCode::OK);
}

#[tokio::test]
async fn with_the_database_disabled_every_data_route_answers_503() {
    let store: Arc<dyn Store> = Arc::new(DisabledStore::new("test"));
    let s = serve(store, Arc::new(Outbox::default())).await;
    let (status, body, _) = call(&s, M::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["database"]["configured"], false);
    let (status, _, _) = call(&s, M::GET, "/health/detailed", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let id = uuid::Uuid::new_v4();
    let cases: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (
            M::POST,
            "/auth/register".into(),
            Some(json!({"email": "a@b.io", "password": "long enough", "display_name": "A"})),
        ),
        (
            M::POST,
            "/auth/login".into(),
            Some(json!({"email": "a@b.io", "password": "long enough"})),
        ),
        (
            M::POST,
            "/auth/refresh".into(),
            Some(json!({"refreshToken": "x"})),
        ),
        (M::GET, "/auth/me".into(), None),
        (M::POST, "/auth/logout".into(), None),
        (M::POST, "/auth/logout-all".into(), None),
        (
            M::POST,
            "/auth/password-reset".into(),
            Some(json!({"email": "a@b.io"})),
        ),
        (
            M::POST,
            "/auth/password-reset/confirm".into(),
            Some(
                json!({"resetToken": "x", "newPassword": "long enough", "confirmPassword": "long enough"}),
            ),
        ),
        (M::GET, "/users/profile".into(), None),
        (M::GET, "/users".into(), None),
        (M::DELETE, format!("/users/{id}"), None),
        (
            M::PUT,
            format!("/users/{id}/role"),
            Some(json!({"role": "admin"})),
        ),
        (M::GET, "/conversations".into(), None),
        (
            M::POST,
            "/conversations".into(),
            Some(json!({"provider": "openai"})),
        ),
        (M::GET, format!("/conversations/{id}/messages"), None),
    ];
    for (method, path, body) in cases {
        let (status, answer, _) = call(
            &s,
            method.clone(),
            &path,
            body,
            Some("pronghorn.sid=some-session"),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {answer}"
        );
        assert_eq!(
            answer["error"]["code"], "database_disabled",
            "{method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookies_are_signed_and_forged_ones_refused() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let s = serve(store.clone(), Arc::new(Outbox::default())).await;
    let user = json!({"email": "carol@example.com", "password": "carol-password-1", "display_name": "Carol"});
    let (status, body, _) = call(&s, M::POST, "/auth/register", Some(user), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (cookie, _) = login(&s, "carol@example.com", "carol-password-1").await;

    // Signed as express-session signs, with the first secret.
    let sid = cookie
        .strip_prefix("s%3A")
        .and_then(|rest| rest.rsplit_once('.'))
        .map(|(sid, _)| sid.to_owned())
        .unwrap_or_else(|| panic!("not an express-session cookie: {cookie}"));
    let current = pronghorn_db::CookieSigner::new(["example-test-secret"]).expect("signer");
    assert_eq!(cookie, current.cookie_value(&sid));
    assert!(store.get_session(&sid).await.expect("read").is_some());
    let (status, _, _) = call(&s, M::GET, "/auth/me", None, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);

    // A cookie signed with the retired secret still works (rotation).
    let retired = pronghorn_db::CookieSigner::new(["example-retired-secret"]).expect("signer");
    let (status, _, _) = call(
        &s,
        M::GET,
        "/auth/me",
        None,
        Some(&retired.cookie_value(&sid)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The attacker knows the session id but not the secret.
    let stranger = pronghorn_db::CookieSigner::new(["guessed-secret"]).expect("signer");
    let signature = cookie.rsplit_once('.').map(|(_, s)| s).unwrap_or_default();
    let other = pronghorn_db::CookieSigner::new(["example-test-secret"])
        .expect("signer")
        .cookie_value("an-unknown-session-id");
    for forged in [
        sid.clone(),                              // unsigned
        format!("s%3A{sid}"),                     // no signature
        format!("s%3A{sid}.{}", &signature[1..]), // truncated signature
        format!("s%3A{sid}x.{signature}"),        // another id, the same signature
        stranger.cookie_value(&sid),              // signed with the wrong secret
        other,                                    // well signed, but no such session
    ] {
        let (status, body, _) = call(&s, M::GET, "/auth/me", None, Some(&forged)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{forged}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated");
    }

    // Logout clears the cookie and ends the session for every secret.
    let (status, _, set_cookie) = call(&s, M::POST, "/auth/logout", None, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(set_cookie
        .unwrap_or_default()
        .starts_with("pronghorn.sid=;"));
    let (status, _, _) = call(
        &s,
        M::GET,
        "/auth/me",
        None,
        Some(&retired.cookie_value(&sid)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// `/health/detailed` with this bearer token (or none); the status must be
/// 200. Returns the body.
async fn detailed_health(s: &Server, token: Option<&str>) -> Value {
    let (status, body) = detailed_health_status(s, token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn detailed_health_status(
    s: &Server,
    token: Option<&str>,
    cookie: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = s.http.get(format!("{}/health/detailed", s.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(c) = cookie {
        req = req.header("cookie", format!("{}={c}", example::app::SESSION_COOKIE));
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    (status, res.json().await.expect("JSON"))
}

/// A raw request, for bodies and headers `call` does not send; returns the
/// status, the headers and the body parsed as JSON (panics on any other).
async fn raw(
    s: &Server,
    method: M,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    raw_as(s, method, path, content_type, body, None).await
}

/// `raw`, with the session cookie when given.
async fn raw_as(
    s: &Server,
    method: M,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    cookie: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.base))
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(c) = cookie {
        req = req.header("cookie", format!("{}={c}", example::app::SESSION_COOKIE));
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
    (status, headers, json)
}

/// A request that must be refused: method, path, content type, body, and
/// the status, code and message of the answer.
type BadRequestCase<'a> = (
    M,
    &'a str,
    Option<&'a str>,
    &'a str,
    StatusCode,
    &'a str,
    &'a str,
);

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {body}")),
        body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_the_public_cheaply_and_details_only_to_admins_and_monitors() {
    let db = TestDb::migrated().await;
    // One connection, so that holding it shows which answers need a query.
    let store = Arc::new(db.one_connection_store().await);
    let s = serve(store.clone(), Arc::new(Outbox::default())).await;
    let (status, body, _) = call(&s, M::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["database"],
        json!({"configured": true, "connected": true}),
        "no version, pool or replica figures for the public"
    );

    // With the only connection taken, the public answer still comes, from
    // the pool's last known state: it costs no query.
    let held = store.conn().await.expect("take the connection");
    let (status, body, _) = call(&s, M::GET, "/health", None, None).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("healthy"))
    );
    drop(held);

    // The details: refused without a token or with a wrong one, and to a
    // user who is not an admin; given to the token and to an admin.
    for token in [
        None,
        Some("guess"),
        Some("example-test-health-token-but-longer"),
    ] {
        let (status, body) = detailed_health_status(&s, token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert_eq!(error_of(&body).0, "unauthenticated");
        assert!(body.get("database").is_none());
    }
    let body = detailed_health(&s, Some(HEALTH_TOKEN)).await;
    assert!(body["database"]["version"]
        .as_str()
        .unwrap_or("")
        .starts_with("PostgreSQL"));
    assert!(
        body["database"]["poolStats"]["max"].as_u64().is_some(),
        "{body}"
    );
    store
        .create_user(NewLocalUser::new(
            "plain@example.com",
            "plain-password-1",
            "Plain",
        ))
        .await
        .expect("user");
    let (cookie, _) = login(&s, "plain@example.com", "plain-password-1").await;
    let (status, body) = detailed_health_status(&s, None, Some(&cookie)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let boss = store
        .create_user(NewLocalUser::new(
            "boss@example.com",
            "boss-password-1",
            "Boss",
        ))
        .await
        .expect("user");
    db.client()
        .await
        .execute(
            "UPDATE users SET role = 'admin' WHERE id = $1::text::uuid",
            &[&boss.id.0.to_string()],
        )
        .await
        .expect("promote");
    let (cookie, _) = login(&s, "boss@example.com", "boss-password-1").await;
    let (status, body) = detailed_health_status(&s, None, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_the_one_json_body_and_names_no_internals() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let s = serve(store.clone(), Arc::new(Outbox::default())).await;
    let json_type = Some("application/json");
    let who =
        json!({"email": "taken@example.com", "password": "taken-password-1", "display_name": "T"});
    let (status, _, _) = call(&s, M::POST, "/auth/register", Some(who.clone()), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (cookie, refresh) = login(&s, "taken@example.com", "taken-password-1").await;
    let cases: [BadRequestCase; 8] = [
        (
            M::POST,
            "/auth/login",
            json_type,
            "{not json",
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body is not valid JSON",
        ),
        (
            M::POST,
            "/auth/login",
            json_type,
            r#"{"email": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_request",
            "the body does not have the expected fields and types",
        ),
        (
            M::POST,
            "/auth/login",
            Some("text/plain"),
            "{}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            "send the body as application/json",
        ),
        (
            M::GET,
            "/conversations/not-a-uuid",
            None,
            "",
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the path is invalid",
        ),
        (
            M::GET,
            "/conversations?limit=many",
            None,
            "",
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the query string is invalid",
        ),
        (
            M::GET,
            "/no/such/route",
            None,
            "",
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route",
        ),
        (
            M::DELETE,
            "/auth/login",
            None,
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        ),
        (
            M::GET,
            "/users",
            None,
            "",
            StatusCode::FORBIDDEN,
            "forbidden",
            "admins only",
        ),
    ];
    for (method, path, ct, body, want_status, want_code, want_message) in cases {
        let (status, headers, json) =
            raw_as(&s, method.clone(), path, ct, body, Some(&cookie)).await;
        assert_eq!(status, want_status, "{method} {path}: {json}");
        assert_eq!(
            error_of(&json),
            (want_code, want_message),
            "{method} {path}"
        );
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{method} {path}"
        );
    }
    // A body that echoes a password in the wrong place is not echoed back.
    let (_, _, json) = raw(
        &s,
        M::POST,
        "/auth/login",
        json_type,
        r#"{"email": "a@b.c", "password": 31337421}"#,
    )
    .await;
    assert!(!json.to_string().contains("31337421"), "{json}");

    // A taken email: 409 without the constraint's name.
    let (status, body, _) = call(&s, M::POST, "/auth/register", Some(who), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_of(&body), ("conflict", "it already exists"));
    assert!(!body.to_string().contains("users_email_key"), "{body}");

    // Refresh tokens: a revoked one and a made-up one get the same answer,
    // so that the answer says nothing of which tokens were ever real.
    let (status, _, _) = call(
        &s,
        M::POST,
        "/auth/logout",
        Some(json!({"refreshToken": refresh})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let revoked = call(
        &s,
        M::POST,
        "/auth/refresh",
        Some(json!({"refreshToken": refresh})),
        None,
    )
    .await;
    let made_up = call(
        &s,
        M::POST,
        "/auth/refresh",
        Some(json!({"refreshToken": "x".repeat(43)})),
        None,
    )
    .await;
    assert_eq!((revoked.0, &revoked.1), (made_up.0, &made_up.1));
    assert_eq!(
        error_of(&revoked.1),
        ("invalid_token", "the token is invalid or has expired")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_the_rate_limit_gets_429_with_retry_after() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let mut st = state(store, Arc::new(Outbox::default()));
    st.rate_limit = example::app::RateLimit {
        window: std::time::Duration::from_secs(60),
        max_requests: 5,
    };
    let s = serve_state(st).await;
    for i in 0..5 {
        let (status, body, _) = call(&s, M::GET, "/health", None, None).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
    }
    let (status, headers, body) = raw(&s, M::GET, "/health", None, "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        error_of(&body),
        ("rate_limited", "too many requests; try again later")
    );
    let retry: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After: {headers:?}"));
    assert!((1..=12).contains(&retry), "{retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_login_is_429_with_retry_after() {
    let db = TestDb::migrated().await;
    let url = db.url();
    let store: Arc<dyn Store> = Arc::new(
        pronghorn_db::PgStore::new(common::configured(&[
            ("DB_CONNECTION_STRING", &url),
            ("LOGIN_MAX_FAILURES", "2"),
        ]))
        .await
        .expect("store"),
    );
    let s = serve(store, Arc::new(Outbox::default())).await;
    let guess = json!({"email": "whoever@example.com", "password": "a wrong guess"});
    for _ in 0..2 {
        let (status, _, _) = call(&s, M::POST, "/auth/login", Some(guess.clone()), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) = raw(
        &s,
        M::POST,
        "/auth/login",
        Some("application/json"),
        &guess.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(error_of(&body).0, "too_many_attempts");
    let retry: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry > 800 && retry <= 900, "{retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_work_after_the_answer_is_bounded() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    store
        .create_user(NewLocalUser::new(
            "held@example.com",
            "held-password-1",
            "Held",
        ))
        .await
        .expect("user");
    let outbox = Arc::new(Outbox::default());
    let mut st = state(store, outbox.clone());
    st.reset_jobs = Arc::new(tokio::sync::Semaphore::new(2));
    let s = serve_state(st).await;

    // Another transaction holds the account's row, so the reset work that
    // follows each answer waits; two such jobs fill the bound.
    let mut locker = db.client().await;
    let tx = locker.transaction().await.expect("begin");
    tx.execute(
        "SELECT 1 FROM users WHERE email = 'held@example.com' FOR UPDATE",
        &[],
    )
    .await
    .expect("lock");
    let ask = json!({"email": "held@example.com"});
    for _ in 0..2 {
        let (status, body, _) =
            call(&s, M::POST, "/auth/password-reset", Some(ask.clone()), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    common::until_waiting(&db.client().await, 2).await;
    let (status, headers, body) = raw(
        &s,
        M::POST,
        "/auth/password-reset",
        Some("application/json"),
        &ask.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_of(&body).0, "busy");
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // An unknown email gets the same refusal: the bound says nothing of
    // which emails have accounts.
    let (status, _, body) = raw(
        &s,
        M::POST,
        "/auth/password-reset",
        Some("application/json"),
        r#"{"email": "nobody@example.com"}"#,
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::SERVICE_UNAVAILABLE, "busy")
    );

    // Released, the two waiting jobs finish and their mails go out.
    tx.commit().await.expect("release");
    let waited = std::time::Instant::now();
    while outbox.0.lock().expect("outbox").len() < 2 {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(10),
            "the held jobs never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The rate limit keys an IPv6 client on its /64 (one host usually holds a
/// whole one, and could otherwise take a fresh bucket from each of its
/// addresses) and an IPv4-mapped address on the IPv4 address it carries.
/// Requests go to the example's real router, each from the client address
/// axum would record for its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_counts_a_whole_ipv6_64_and_mapped_ipv4_as_one_client() {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    use tower::ServiceExt;
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let mut st = state(store, Arc::new(Outbox::default()));
    st.rate_limit = example::app::RateLimit {
        window: std::time::Duration::from_secs(60),
        max_requests: 2,
    };
    let router = example::app::router(st, "/api/v1");
    let from = |addr: &str| {
        let peer: SocketAddr = addr.parse().expect("address");
        let mut req = axum::http::Request::builder()
            .uri("/api/v1/health")
            .body(axum::body::Body::empty())
            .expect("request");
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    };
    let status = |addr: &'static str| {
        let router = router.clone();
        let req = from(addr);
        async move { router.oneshot(req).await.expect("answer").status() }
    };
    // Two from one /64 use up its bucket; every other address in it is
    // refused too, while another /64 has a bucket of its own.
    assert_eq!(status("[2001:db8:0:1::1]:1000").await, StatusCode::OK);
    assert_eq!(status("[2001:db8:0:1::2]:1000").await, StatusCode::OK);
    assert_eq!(
        status("[2001:db8:0:1:ffff::9]:2000").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status("[2001:db8:0:2::1]:1000").await, StatusCode::OK);
    // An IPv4 client is one bucket whether it arrives as IPv4 or mapped.
    assert_eq!(status("203.0.113.7:1000").await, StatusCode::OK);
    assert_eq!(status("[::ffff:203.0.113.7]:1000").await, StatusCode::OK);
    assert_eq!(
        status("203.0.113.7:3000").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status("203.0.113.8:1000").await, StatusCode::OK);
    assert_eq!(
        example::app::client_key("2001:db8:0:1:aaaa:bbbb:cccc:dddd".parse().expect("ip")),
        "2001:db8:0:1::".parse::<std::net::IpAddr>().expect("ip")
    );
}

/// The rate limiter's sweep runs once per window while the limiter lives
/// and ends once it is dropped (the task holds it weakly).
#[tokio::test(start_paused = true)]
async fn the_limiters_sweep_runs_each_window_and_ends_with_it() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let swept = Arc::new(AtomicU32::new(0));
    let task = example::app::sweep_while_alive(&swept, std::time::Duration::from_secs(60), |n| {
        n.fetch_add(1, Ordering::SeqCst);
    })
    .expect("a runtime, so a task");
    tokio::time::sleep(std::time::Duration::from_secs(60 * 3 + 30)).await;
    assert_eq!(swept.load(Ordering::SeqCst), 3);
    drop(swept);
    tokio::time::sleep(std::time::Duration::from_secs(61)).await;
    assert!(task.is_finished(), "the sweep outlived what it sweeps");
}
