//! Password resets through the store, against a real PostgreSQL: requests
//! (known, unknown and over-limit emails), redeeming tokens (expired, used,
//! unknown, concurrent), admin-generated tokens and the pending list.

mod common;

use chrono::{Duration, Utc};
use common::TestDb;
use pronghorn_db::models::AuditQuery;
use pronghorn_db::models::NewLocalUser;
use pronghorn_db::models::RequestMeta;
use pronghorn_db::models::ResetStatus;
use pronghorn_db::models::Role;
use pronghorn_db::models::{User, UserId};
use pronghorn_db::PageRequest;
use pronghorn_db::Token;
use pronghorn_db::{
    AuditStore, DisabledStore, Error, PasswordResetStore, PgStore, RefreshTokenStore, ResetPolicy,
    ResetRequested, SessionCookie, SessionData, SessionStore, TokenProblem, UserStore,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;

const OLD_PW: &str = "correct horse battery";
const NEW_PW: &str = "new staple password";

fn meta() -> RequestMeta {
    RequestMeta {
        ip: Some("198.51.100.23".parse().expect("ip")),
        user_agent: Some("reset-tests/1.0".into()),
    }
}

async fn user(store: &PgStore, email: &str, role: Role) -> User {
    let mut new = NewLocalUser::new(email, OLD_PW, format!("Name of {email}"));
    new.role = role;
    store.create_user(new).await.expect("create user")
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn scalar_i64(db: &TestDb, sql: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

async fn flag(db: &TestDb, sql: &str) -> bool {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

fn rejected<T: std::fmt::Debug>(r: Result<T, Error>) -> TokenProblem {
    match r {
        Err(Error::TokenRejected { problem }) => problem,
        other => panic!("expected a rejected token, got {other:?}"),
    }
}

async fn request(store: &PgStore, email: &str) -> ResetRequested {
    store
        .request_password_reset(email, &ResetPolicy::default(), &meta())
        .await
        .expect("request")
}

async fn token_for(store: &PgStore, email: &str) -> Token {
    request(store, email)
        .await
        .delivery
        .expect("a token for a known email")
        .token
}

#[tokio::test]
async fn a_request_issues_a_token_stored_as_its_digest() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test", Role::User).await;

    let requested = request(&store, "  ANN@Example.TEST ").await;
    let delivery = requested.delivery.clone().expect("delivery");
    assert_eq!(delivery.user_id, ann.id);
    assert_eq!(delivery.email, "ann@example.test");
    assert_eq!(delivery.token.expose().len(), 43);
    assert!(
        (delivery.expires_at - (Utc::now() + Duration::hours(1))).abs() < Duration::seconds(10)
    );

    let row = db
        .client()
        .await
        .query_one(
            "SELECT reset_token_hash, host(ip_address), user_agent, used_at IS NULL, \
                    expires_at - requested_at = interval '1 hour' \
             FROM password_reset_requests",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), sha256_hex(delivery.token.expose()));
    assert_eq!(row.get::<_, String>(1), "198.51.100.23");
    assert_eq!(row.get::<_, String>(2), "reset-tests/1.0");
    assert!(row.get::<_, bool>(3));
    assert!(row.get::<_, bool>(4));
    assert!(
        flag(
            &db,
            &format!(
                "SELECT reset_attempts = 1 AND reset_attempts_reset_at > now() - interval '1 minute' \
                 FROM users WHERE id = '{}'",
                ann.id
            )
        )
        .await
    );

    // Neither Debug nor the stored row shows the token.
    let shown = format!("{requested:?}");
    assert!(!shown.contains(delivery.token.expose()), "{shown}");
    assert!(
        !shown.contains(&sha256_hex(delivery.token.expose())),
        "{shown}"
    );
    let leaked: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM password_reset_requests r WHERE position($1 in r::text) > 0",
            &[&delivery.token.expose()],
        )
        .await
        .expect("search")
        .get(0);
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn an_unknown_email_gets_the_same_outcome_shape_and_writes_nothing() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    user(&store, "ann@example.test", Role::User).await;
    let before = scalar_i64(
        &db,
        "SELECT count(*) FROM users WHERE updated_at = created_at",
    )
    .await;

    let outcome: ResetRequested = request(&store, "nobody@example.test").await;
    assert_eq!(outcome, ResetRequested { delivery: None });
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM password_reset_requests").await,
        0
    );
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM users WHERE updated_at = created_at"
        )
        .await,
        before
    );

    // Malformed emails are refused whether or not an account exists.
    for bad in ["", "no-at-sign", "a b@example.test"] {
        assert!(matches!(
            store
                .request_password_reset(bad, &ResetPolicy::default(), &meta())
                .await,
            Err(Error::Validation { field: "email", .. })
        ));
    }
}

#[tokio::test]
async fn requests_past_the_limit_are_refused_silently_until_the_window_passes() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test", Role::User).await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(token_for(&store, "ann@example.test").await);
    }
    // The sixth is refused in the same shape as an unknown email.
    assert_eq!(
        request(&store, "ann@example.test").await,
        ResetRequested { delivery: None }
    );
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM password_reset_requests").await,
        5
    );
    let attempts = format!(
        "SELECT reset_attempts::int8 FROM users WHERE id = '{}'",
        ann.id
    );
    assert_eq!(scalar_i64(&db, &attempts).await, 5);
    // Earlier tokens still work.
    store
        .reset_password(tokens[4].expose(), NEW_PW, &meta())
        .await
        .expect("an issued token is not affected by the limit");

    // Once the window has passed, a new window starts.
    db.client()
        .await
        .batch_execute(&format!(
            "UPDATE users SET reset_attempts_reset_at = now() - interval '61 minutes' WHERE id = '{}'",
            ann.id
        ))
        .await
        .expect("age the window");
    assert!(request(&store, "ann@example.test").await.delivery.is_some());
    assert_eq!(scalar_i64(&db, &attempts).await, 1);
    assert!(
        flag(
            &db,
            &format!(
                "SELECT reset_attempts_reset_at > now() - interval '1 minute' FROM users WHERE id = '{}'",
                ann.id
            )
        )
        .await
    );
}

#[tokio::test]
async fn the_policy_sets_the_limit_window_and_lifetime() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test", Role::User).await;
    // A template-era row: NULL counters.
    db.client()
        .await
        .batch_execute(&format!(
            "UPDATE users SET reset_attempts = NULL, reset_attempts_reset_at = NULL WHERE id = '{}'",
            ann.id
        ))
        .await
        .expect("null counters");
    let policy = ResetPolicy {
        token_ttl: Duration::minutes(15),
        max_requests: 2,
        window: Duration::minutes(10),
    };
    let first = store
        .request_password_reset("ann@example.test", &policy, &meta())
        .await
        .expect("first")
        .delivery
        .expect("issued");
    assert!(
        (first.expires_at - (Utc::now() + Duration::minutes(15))).abs() < Duration::seconds(10)
    );
    assert!(store
        .request_password_reset("ann@example.test", &policy, &meta())
        .await
        .expect("second")
        .delivery
        .is_some());
    assert!(store
        .request_password_reset("ann@example.test", &policy, &meta())
        .await
        .expect("third")
        .delivery
        .is_none());
    // A window begun 11 minutes ago has passed under this policy.
    db.client()
        .await
        .batch_execute(&format!(
            "UPDATE users SET reset_attempts_reset_at = now() - interval '11 minutes' WHERE id = '{}'",
            ann.id
        ))
        .await
        .expect("age");
    assert!(store
        .request_password_reset("ann@example.test", &policy, &meta())
        .await
        .expect("new window")
        .delivery
        .is_some());

    let bad = [
        (
            ResetPolicy {
                max_requests: 0,
                ..policy
            },
            "max_requests",
        ),
        (
            ResetPolicy {
                token_ttl: Duration::zero(),
                ..policy
            },
            "token_ttl",
        ),
        (
            ResetPolicy {
                window: Duration::days(8),
                ..policy
            },
            "window",
        ),
    ];
    for (p, field) in bad {
        match store
            .request_password_reset("ann@example.test", &p, &meta())
            .await
        {
            Err(Error::Validation { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn redeeming_a_token_sets_the_password_and_revokes_sessions_in_one_go() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test", Role::User).await;
    let bob = user(&store, "bob@example.test", Role::User).await;
    let refresh_a = store
        .issue_refresh_token(ann.id, Duration::days(7))
        .await
        .expect("issue");
    let refresh_b = store
        .issue_refresh_token(ann.id, Duration::days(7))
        .await
        .expect("issue");
    let bobs_refresh = store
        .issue_refresh_token(bob.id, Duration::days(7))
        .await
        .expect("issue");
    for (sid, owner) in [("ann-1", ann.id), ("ann-2", ann.id), ("bob-1", bob.id)] {
        let mut data = SessionData::new(SessionCookie::with_max_age(Duration::hours(1)));
        data.fields
            .insert("userId".into(), serde_json::json!(owner));
        store.set_session(sid, &data).await.expect("log in");
    }
    let earlier = token_for(&store, "ann@example.test").await;
    let token = token_for(&store, "ann@example.test").await;
    let bobs_reset = token_for(&store, "bob@example.test").await;

    let updated = store
        .reset_password(token.expose(), NEW_PW, &meta())
        .await
        .expect("reset");
    assert_eq!(updated.id, ann.id);
    assert_ne!(updated.password_hash, ann.password_hash);
    assert!(updated
        .password_hash
        .as_deref()
        .is_some_and(|h| h.starts_with("$argon2id$")));
    store
        .authenticate("ann@example.test", NEW_PW)
        .await
        .expect("the new password works");
    assert!(matches!(
        store.authenticate("ann@example.test", OLD_PW).await,
        Err(Error::InvalidCredentials)
    ));

    // Used now, and the account's other token stops working.
    assert!(
        flag(
            &db,
            &format!(
                "SELECT used_at IS NOT NULL FROM password_reset_requests WHERE reset_token_hash = '{}'",
                sha256_hex(token.expose())
            )
        )
        .await
    );
    assert_eq!(
        rejected(
            store
                .reset_password(earlier.expose(), NEW_PW, &meta())
                .await
        ),
        TokenProblem::Expired
    );

    // Every session and refresh token of the account is ended; other
    // accounts keep theirs.
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM \"session\" WHERE sid LIKE 'ann-%'"
        )
        .await,
        0
    );
    for t in [&refresh_a.token, &refresh_b.token] {
        assert_eq!(
            rejected(store.verify_refresh_token(t.expose()).await),
            TokenProblem::Revoked
        );
    }
    assert!(store.get_session("bob-1").await.expect("get").is_some());
    store
        .verify_refresh_token(bobs_refresh.token.expose())
        .await
        .expect("bob's refresh token");
    store
        .reset_password(bobs_reset.expose(), NEW_PW, &meta())
        .await
        .expect("bob's reset is unaffected");

    // Audited as the user's own action, with the request's id and address.
    let page = store
        .audit_log(
            &AuditQuery::Action("password_reset".into()),
            &PageRequest::first(10),
        )
        .await
        .expect("audit");
    let entry = page
        .items
        .iter()
        .find(|e| e.user_id == Some(ann.id))
        .expect("ann's entry");
    assert_eq!(entry.actor_id, Some(ann.id));
    assert_eq!(
        entry.ip_address.map(|ip| ip.addr().to_string()).as_deref(),
        Some("198.51.100.23")
    );
    let request_id = entry
        .details
        .as_ref()
        .and_then(|d| d["requestId"].as_str())
        .expect("requestId")
        .to_owned();
    assert!(
        flag(
            &db,
            &format!(
                "SELECT reset_token_hash = '{}' FROM password_reset_requests WHERE id = '{request_id}'",
                sha256_hex(token.expose())
            )
        )
        .await
    );
}

#[tokio::test]
async fn a_token_works_once() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    user(&store, "ann@example.test", Role::User).await;
    let token = token_for(&store, "ann@example.test").await;
    store
        .reset_password(token.expose(), NEW_PW, &meta())
        .await
        .expect("first use");
    assert_eq!(
        rejected(
            store
                .reset_password(token.expose(), "third password!", &meta())
                .await
        ),
        TokenProblem::Used
    );
    store
        .authenticate("ann@example.test", NEW_PW)
        .await
        .expect("the first use's password stays");
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM user_audit_log WHERE action = 'password_reset'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn two_concurrent_uses_of_one_token_set_one_password() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    user(&store, "ann@example.test", Role::User).await;
    let token = token_for(&store, "ann@example.test").await;
    let (s1, s2) = (store.clone(), store.clone());
    let (t1, t2) = (token.clone(), token.clone());
    let (a, b) = tokio::join!(
        tokio::spawn(async move {
            s1.reset_password(t1.expose(), "password one!", &meta())
                .await
        }),
        tokio::spawn(async move {
            s2.reset_password(t2.expose(), "password two!", &meta())
                .await
        }),
    );
    let results = [a.expect("task"), b.expect("task")];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(
                r,
                Err(Error::TokenRejected {
                    problem: TokenProblem::Used
                })
            ))
            .count(),
        1,
        "{results:?}"
    );
    let winner = if results[0].is_ok() {
        "password one!"
    } else {
        "password two!"
    };
    store
        .authenticate("ann@example.test", winner)
        .await
        .expect("the winner's password");
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM user_audit_log WHERE action = 'password_reset'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn expired_unknown_and_malformed_tokens_change_nothing() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test", Role::User).await;
    let token = token_for(&store, "ann@example.test").await;
    let refresh = store
        .issue_refresh_token(ann.id, Duration::days(1))
        .await
        .expect("issue");

    // An unacceptable password is refused first; the token stays usable.
    assert!(matches!(
        store.reset_password(token.expose(), "short", &meta()).await,
        Err(Error::Validation {
            field: "password",
            ..
        })
    ));

    db.client()
        .await
        .batch_execute(
            "UPDATE password_reset_requests SET expires_at = now() - interval '1 second'",
        )
        .await
        .expect("expire");
    assert_eq!(
        rejected(store.reset_password(token.expose(), NEW_PW, &meta()).await),
        TokenProblem::Expired
    );
    let never = Token::generate().expect("token");
    for text in [never.expose(), "", "malformed", "====="] {
        assert_eq!(
            rejected(store.reset_password(text, NEW_PW, &meta()).await),
            TokenProblem::Unknown,
            "{text:?}"
        );
    }
    store
        .authenticate("ann@example.test", OLD_PW)
        .await
        .expect("the old password still works");
    store
        .verify_refresh_token(refresh.token.expose())
        .await
        .expect("refresh tokens survive failed resets");
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM password_reset_requests WHERE used_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM user_audit_log WHERE action = 'password_reset'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn admins_generate_day_long_tokens_for_users_below_them() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let admin = user(&store, "admin@example.test", Role::Admin).await;
    let ann = user(&store, "ann@example.test", Role::User).await;
    let other_admin = user(&store, "other@example.test", Role::Admin).await;

    let delivery = store
        .admin_generate_password_reset(admin.id, ann.id, &meta())
        .await
        .expect("generate");
    assert_eq!(delivery.user_id, ann.id);
    assert_eq!(delivery.email, "ann@example.test");
    assert!(
        (delivery.expires_at - (Utc::now() + Duration::hours(24))).abs() < Duration::seconds(10)
    );
    assert!(!format!("{delivery:?}").contains(delivery.token.expose()));
    // Not counted against the user's own requests.
    assert_eq!(
        scalar_i64(
            &db,
            &format!(
                "SELECT coalesce(reset_attempts, 0)::int8 FROM users WHERE id = '{}'",
                ann.id
            )
        )
        .await,
        0
    );
    let audit = store
        .audit_log(&AuditQuery::User(ann.id), &PageRequest::first(10))
        .await
        .expect("audit");
    assert_eq!(audit.items.len(), 1);
    assert_eq!(audit.items[0].action, "admin_generated_reset_token");
    assert_eq!(audit.items[0].actor_id, Some(admin.id));
    // The entry names the request, so that taking the admin back ends it.
    let request: String = db
        .client()
        .await
        .query_one(
            "SELECT id::text FROM password_reset_requests WHERE user_id = $1::text::uuid",
            &[&ann.id.to_string()],
        )
        .await
        .expect("the request")
        .get(0);
    assert_eq!(
        audit.items[0].details,
        Some(serde_json::json!({ "requestId": request }))
    );

    store
        .reset_password(delivery.token.expose(), NEW_PW, &meta())
        .await
        .expect("the user redeems it");
    store
        .authenticate("ann@example.test", NEW_PW)
        .await
        .expect("new password");

    // The hierarchy holds, and unknown parties are refused.
    for (actor, target) in [
        (ann.id, admin.id),
        (other_admin.id, admin.id),
        (admin.id, admin.id),
        (UserId(uuid::Uuid::new_v4()), ann.id),
    ] {
        assert!(
            matches!(
                store
                    .admin_generate_password_reset(actor, target, &meta())
                    .await,
                Err(Error::Forbidden { .. })
            ),
            "{actor} -> {target}"
        );
    }
    assert!(matches!(
        store
            .admin_generate_password_reset(admin.id, UserId(uuid::Uuid::new_v4()), &meta())
            .await,
        Err(Error::NotFound { entity: "user" })
    ));
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM user_audit_log WHERE action = 'admin_generated_reset_token'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn pending_resets_are_listed_newest_first_a_page_at_a_time() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test", Role::User).await;
    let bob = user(&store, "bob@example.test", Role::User).await;
    let used = token_for(&store, "ann@example.test").await;
    let _pending_bob = token_for(&store, "bob@example.test").await;
    let _expired_bob = token_for(&store, "bob@example.test").await;
    store
        .reset_password(used.expose(), NEW_PW, &meta())
        .await
        .expect("use ann's");
    let client = db.client().await;
    // Distinct request times, oldest first: bob's pending, then bob's expired.
    client
        .batch_execute(&format!(
            "UPDATE password_reset_requests SET requested_at = now() - interval '2 hours' \
             WHERE user_id = '{bob}' AND requested_at = (SELECT min(requested_at) FROM password_reset_requests WHERE user_id = '{bob}'); \
             UPDATE password_reset_requests SET requested_at = now() - interval '1 hour', expires_at = now() - interval '1 minute' \
             WHERE user_id = '{bob}' AND requested_at > now() - interval '1 hour'",
            bob = bob.id
        ))
        .await
        .expect("arrange");
    let ann_again = token_for(&store, "ann@example.test").await;

    let first = store
        .pending_password_resets(&PageRequest::first(2))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.items[0].user_id, ann.id);
    assert_eq!(first.items[0].email, "ann@example.test");
    assert_eq!(first.items[0].status, ResetStatus::Pending);
    assert_eq!(
        first.items[0]
            .ip_address
            .map(|ip| ip.addr().to_string())
            .as_deref(),
        Some("198.51.100.23")
    );
    assert_eq!(first.items[1].user_id, bob.id);
    assert_eq!(first.items[1].status, ResetStatus::Expired);
    let cursor = first.next_cursor.clone().expect("more");
    let second = store
        .pending_password_resets(&PageRequest::after(2, cursor))
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].user_id, bob.id);
    assert_eq!(second.items[0].status, ResetStatus::Pending);
    assert_eq!(second.next_cursor, None);

    store
        .reset_password(ann_again.expose(), "another password", &meta())
        .await
        .expect("use");
    let all = store
        .pending_password_resets(&PageRequest::first(10))
        .await
        .expect("all");
    assert!(all.items.iter().all(|r| r.user_id == bob.id));
    assert!(matches!(
        store
            .pending_password_resets(&PageRequest::after(10, "not-a-cursor"))
            .await,
        Err(Error::Validation {
            field: "cursor",
            ..
        })
    ));
}

#[tokio::test]
async fn lookups_by_digest_go_through_the_new_unique_index() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let def: String = client
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_reset_requests_token_hash'",
            &[],
        )
        .await
        .expect("the index exists")
        .get(0);
    assert!(
        def.contains("UNIQUE") && def.contains("(reset_token_hash)"),
        "{def}"
    );
    let plan = common::forced_plan(
        &client,
        "SELECT * FROM password_reset_requests WHERE reset_token_hash = 'x'",
    )
    .await;
    assert!(plan.contains("idx_reset_requests_token_hash"), "{plan}");
}

#[tokio::test]
async fn the_disabled_store_issues_no_reset() {
    let store = DisabledStore::new("test");
    let id = UserId(uuid::Uuid::new_v4());
    assert!(matches!(
        store
            .request_password_reset("a@example.test", &ResetPolicy::default(), &meta())
            .await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.reset_password("t", NEW_PW, &meta()).await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.admin_generate_password_reset(id, id, &meta()).await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.pending_password_resets(&PageRequest::default()).await,
        Err(Error::Disabled)
    ));
}

#[tokio::test]
async fn a_reset_during_a_rotation_also_revokes_the_successor() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let ann = user(&store, "ann@example.test", Role::User).await;
    let refresh = store
        .issue_refresh_token(ann.id, Duration::days(1))
        .await
        .expect("issue");
    let reset = token_for(&store, "ann@example.test").await;

    // Hold the refresh token's row, so that the rotation stops half-way.
    let mut holder = db.client().await;
    let tx = holder.transaction().await.expect("begin");
    tx.execute(
        &format!(
            "SELECT 1 FROM refresh_tokens WHERE id = '{}' FOR UPDATE",
            refresh.id
        ),
        &[],
    )
    .await
    .expect("lock");
    let watcher = db.client().await;

    let s1 = store.clone();
    let token = refresh.token.clone();
    let rotation = tokio::spawn(async move {
        s1.rotate_refresh_token(token.expose(), Duration::days(1))
            .await
    });
    common::until_waiting(&watcher, 1).await;
    let s2 = store.clone();
    let resetting =
        tokio::spawn(async move { s2.reset_password(reset.expose(), NEW_PW, &meta()).await });
    common::until_waiting(&watcher, 2).await;
    tx.commit().await.expect("release");

    let successor = rotation
        .await
        .expect("task")
        .expect("the rotation completes");
    resetting.await.expect("task").expect("the reset completes");
    // The reset waited for the rotation and revoked its successor too.
    assert_eq!(
        rejected(store.verify_refresh_token(successor.token.expose()).await),
        TokenProblem::Revoked
    );
    assert_eq!(
        scalar_i64(
            &db,
            &format!(
                "SELECT count(*) FROM refresh_tokens WHERE user_id = '{}' AND revoked_at IS NULL",
                ann.id
            )
        )
        .await,
        0
    );
}

/// An account made ahead of its owner: someone signs in first through a
/// provider that does not verify emails, giving the victim's address. The
/// victim cannot register (the email is taken), takes the account over
/// with a reset link sent to their own inbox, and from then on the maker's
/// OAuth sign-in must no longer reach it. An identity whose provider
/// verified the email stays attached.
#[tokio::test]
async fn a_reset_detaches_an_oauth_identity_that_never_proved_the_email() {
    use pronghorn_db::models::NewOAuthUser;
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let sign_in = |oauth_id: &str, email: &str, verified: bool| NewOAuthUser {
        provider: "lenient".into(),
        oauth_id: oauth_id.into(),
        email: email.into(),
        display_name: "Someone".into(),
        avatar_url: None,
        email_verified: verified,
    };
    let (made, created) = store
        .find_or_create_oauth_user(sign_in("maker", "victim@example.com", false))
        .await
        .expect("the maker's first sign-in");
    assert!(created);
    assert!(matches!(
        store
            .create_user(NewLocalUser::new("victim@example.com", OLD_PW, "Victim"))
            .await,
        Err(Error::Conflict { .. })
    ));

    let token = token_for(&store, "victim@example.com").await;
    let reset = store
        .reset_password(token.expose(), NEW_PW, &meta())
        .await
        .expect("the owner's reset");
    assert_eq!(reset.id, made.id);
    assert_eq!(reset.oauth_provider.as_deref(), Some("local"));
    assert_eq!(reset.oauth_id, None);
    let again = store
        .find_or_create_oauth_user(sign_in("maker", "victim@example.com", false))
        .await;
    assert!(
        matches!(&again, Err(Error::Conflict { constraint }) if constraint == "users_email_key"),
        "the maker's sign-in must not reach the account: {again:?}"
    );
    let owner = store
        .authenticate("victim@example.com", NEW_PW)
        .await
        .expect("the owner logs in");
    assert_eq!(owner.id, made.id);
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM users WHERE oauth_id = 'maker' OR email <> 'victim@example.com'"
        )
        .await,
        0
    );

    // An identity whose row says neither true nor false (the template's
    // column allows NULL, and a Node app may write it) counts as
    // unverified too.
    let (unknown, _) = store
        .find_or_create_oauth_user(sign_in("null-maker", "other@example.com", false))
        .await
        .expect("a sign-in");
    db.client()
        .await
        .execute(
            "UPDATE users SET email_verified = NULL WHERE oauth_id = 'null-maker'",
            &[],
        )
        .await
        .expect("a NULL email_verified");
    let token = token_for(&store, "other@example.com").await;
    let reset = store
        .reset_password(token.expose(), NEW_PW, &meta())
        .await
        .expect("reset");
    assert_eq!(reset.id, unknown.id);
    assert_eq!(reset.oauth_id, None);
    assert!(matches!(
        store
            .find_or_create_oauth_user(sign_in("null-maker", "other@example.com", false))
            .await,
        Err(Error::Conflict { .. })
    ));

    // A provider that verified the email vouches for its user: a reset
    // sets a password beside the identity and keeps it.
    let (vouched, _) = store
        .find_or_create_oauth_user(sign_in("owner", "own@example.com", true))
        .await
        .expect("a verified sign-in");
    let token = token_for(&store, "own@example.com").await;
    store
        .reset_password(token.expose(), NEW_PW, &meta())
        .await
        .expect("reset");
    let (back, created) = store
        .find_or_create_oauth_user(sign_in("owner", "own@example.com", true))
        .await
        .expect("the identity still signs in");
    assert!(!created);
    assert_eq!(back.id, vouched.id);
}

/// An admin's account is blocked, demoted, deleted, or has its password
/// changed (it may have been in other hands): the reset links it generated
/// for others stop working, and links another admin generated keep working.
#[tokio::test]
async fn links_an_admin_generated_end_when_that_admin_is_taken_back() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let root = user(&store, "root@example.com", Role::Superadmin).await;
    for change in ["block", "demote", "delete", "password"] {
        let boss = user(&store, &format!("boss-{change}@example.com"), Role::Admin).await;
        let other = user(&store, &format!("other-{change}@example.com"), Role::Admin).await;
        let ann = user(&store, &format!("ann-{change}@example.com"), Role::User).await;
        let by_boss = store
            .admin_generate_password_reset(boss.id, ann.id, &meta())
            .await
            .expect("boss's link")
            .token;
        let by_other = store
            .admin_generate_password_reset(other.id, ann.id, &meta())
            .await
            .expect("the other admin's link")
            .token;
        match change {
            "block" => drop(
                store
                    .block_user(root.id, boss.id, "left the company", &meta())
                    .await
                    .expect("block"),
            ),
            "demote" => drop(
                store
                    .change_role(root.id, boss.id, Role::User, &meta())
                    .await
                    .expect("demote"),
            ),
            "delete" => store
                .delete_user(root.id, boss.id, &meta())
                .await
                .expect("delete"),
            _ => store
                .change_password(boss.id, OLD_PW, NEW_PW, &meta())
                .await
                .expect("change password"),
        }
        assert_eq!(
            rejected(
                store
                    .reset_password(by_boss.expose(), "an attacker's password", &meta())
                    .await
            ),
            TokenProblem::Expired,
            "{change}: the taken-back admin's link"
        );
        store
            .reset_password(by_other.expose(), NEW_PW, &meta())
            .await
            .unwrap_or_else(|e| panic!("{change}: the other admin's link: {e}"));
    }
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM user_audit_log \
             WHERE action = 'admin_generated_reset_token' AND details ? 'requestId'"
        )
        .await,
        8
    );
}

/// The redeeming transaction begins, then waits for the user's row; a
/// block of the admin who generated the link begins after it and commits
/// meanwhile, cutting the link short with its own (later) `now()`. When
/// the redemption goes on, the link must count as expired: expiry is
/// checked on the clock as the look-up runs, not the transaction's start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_short_while_its_redemption_waits_is_refused() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let root = user(&store, "root@example.com", Role::Superadmin).await;
    let boss = user(&store, "boss@example.com", Role::Admin).await;
    let ann = user(&store, "ann@example.com", Role::User).await;
    let link = store
        .admin_generate_password_reset(boss.id, ann.id, &meta())
        .await
        .expect("boss's link")
        .token;

    let mut holder = db.client().await;
    let watcher = db.client().await;
    let hold = holder.transaction().await.expect("begin");
    hold.execute(
        "SELECT 1 FROM users WHERE id = $1::text::uuid FOR UPDATE",
        &[&ann.id.to_string()],
    )
    .await
    .expect("hold ann's row");
    let redeeming = {
        let (store, link) = (store.clone(), link.clone());
        tokio::spawn(async move {
            store
                .reset_password(link.expose(), "an attacker's password", &meta())
                .await
        })
    };
    common::until_waiting(&watcher, 1).await;
    store
        .block_user(root.id, boss.id, "took links home", &meta())
        .await
        .expect("block boss");
    hold.commit().await.expect("release ann's row");

    assert_eq!(
        rejected(redeeming.await.expect("join")),
        TokenProblem::Expired
    );
    store
        .authenticate("ann@example.com", OLD_PW)
        .await
        .expect("ann's password is unchanged");
}
