//! Refresh tokens through the store, against a real PostgreSQL: issue,
//! verify, rotate (with reuse detection, and under concurrency), revoke and
//! clean up.

mod common;

use chrono::{Duration, Utc};
use common::TestDb;
use pronghorn_db::models::NewLocalUser;
use pronghorn_db::models::UserId;
use pronghorn_db::Token;
use pronghorn_db::{DisabledStore, Error, PgStore, RefreshTokenStore, TokenProblem, UserStore};
use sha2::{Digest, Sha256};
use std::sync::Arc;

const TTL: Duration = Duration::days(7);

async fn user(store: &PgStore, email: &str) -> UserId {
    store
        .create_user(NewLocalUser::new(email, "correct horse battery", "Someone"))
        .await
        .expect("create user")
        .id
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

async fn live(db: &TestDb, user: UserId) -> i64 {
    scalar_i64(
        db,
        &format!(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = '{user}' \
             AND revoked_at IS NULL AND expires_at > now()"
        ),
    )
    .await
}

fn rejected<T: std::fmt::Debug>(r: Result<T, Error>) -> TokenProblem {
    match r {
        Err(Error::TokenRejected { problem }) => problem,
        other => panic!("expected a rejected token, got {other:?}"),
    }
}

#[tokio::test]
async fn issued_tokens_are_random_and_stored_only_as_digests() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test").await;
    let issued = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let other = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let token = issued.token.expose();
    assert_eq!(token.len(), 43);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_ne!(token, other.token.expose());
    assert_eq!(issued.user_id, ann);
    assert!((issued.expires_at - (Utc::now() + TTL)).abs() < Duration::seconds(10));

    let client = db.client().await;
    let stored: String = client
        .query_one(
            &format!(
                "SELECT token_hash FROM refresh_tokens WHERE id = '{}'",
                issued.id
            ),
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(stored, sha256_hex(token));
    let leaked: i64 = client
        .query_one(
            "SELECT count(*) FROM refresh_tokens t WHERE position($1 in t::text) > 0",
            &[&token],
        )
        .await
        .expect("search")
        .get(0);
    assert_eq!(leaked, 0, "the token itself is stored somewhere");

    // Neither Debug nor an error shows the token or its digest.
    let shown = format!("{issued:?}");
    assert!(
        !shown.contains(token) && !shown.contains(&stored),
        "{shown}"
    );
    let row = store.verify_refresh_token(token).await.expect("verify");
    let shown = format!("{row:?}");
    assert!(
        !shown.contains(token) && !shown.contains(&stored),
        "{shown}"
    );
    let err = store
        .verify_refresh_token(Token::generate().expect("token").expose())
        .await
        .expect_err("unknown");
    assert!(!format!("{err} {err:?}").contains(token));
}

#[tokio::test]
async fn issuing_checks_the_user_and_the_lifetime() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test").await;
    assert!(matches!(
        store
            .issue_refresh_token(UserId(uuid::Uuid::new_v4()), TTL)
            .await,
        Err(Error::NotFound { entity: "user" })
    ));
    for ttl in [Duration::zero(), Duration::seconds(-5), Duration::days(366)] {
        assert!(matches!(
            store.issue_refresh_token(ann, ttl).await,
            Err(Error::Validation { field: "ttl", .. })
        ));
    }
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM refresh_tokens").await,
        0
    );
}

#[tokio::test]
async fn verify_rejects_unknown_expired_and_revoked_tokens() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test").await;
    let good = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let old = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let gone = store.issue_refresh_token(ann, TTL).await.expect("issue");

    let row = store
        .verify_refresh_token(good.token.expose())
        .await
        .expect("verify");
    assert_eq!(row.id, good.id);
    assert_eq!(row.user_id, ann);
    assert_eq!(row.revoked_at, None);

    db.client()
        .await
        .batch_execute(&format!(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE id = '{}'",
            old.id
        ))
        .await
        .expect("expire");
    assert_eq!(
        rejected(store.verify_refresh_token(old.token.expose()).await),
        TokenProblem::Expired
    );

    assert!(store
        .revoke_refresh_token(gone.token.expose())
        .await
        .expect("revoke"));
    assert_eq!(
        rejected(store.verify_refresh_token(gone.token.expose()).await),
        TokenProblem::Revoked
    );

    let never = Token::generate().expect("token");
    for text in [
        never.expose(),
        "",
        "short",
        "not base64url!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    ] {
        assert_eq!(
            rejected(store.verify_refresh_token(text).await),
            TokenProblem::Unknown,
            "{text:?}"
        );
    }
    // Verification never revokes anything.
    assert_eq!(live(&db, ann).await, 1);
}

#[tokio::test]
async fn rotation_revokes_the_presented_token_and_issues_a_successor() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test").await;
    let first = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let second = store
        .rotate_refresh_token(first.token.expose(), Duration::days(1))
        .await
        .expect("rotate");
    assert_ne!(second.token, first.token);
    assert_ne!(second.id, first.id);
    assert_eq!(second.user_id, ann);
    assert!((second.expires_at - (Utc::now() + Duration::days(1))).abs() < Duration::seconds(10));
    assert_eq!(
        rejected(store.verify_refresh_token(first.token.expose()).await),
        TokenProblem::Revoked
    );
    store
        .verify_refresh_token(second.token.expose())
        .await
        .expect("the successor is live");
    let third = store
        .rotate_refresh_token(second.token.expose(), TTL)
        .await
        .expect("rotate the successor");
    assert_eq!(live(&db, ann).await, 1);
    store
        .verify_refresh_token(third.token.expose())
        .await
        .expect("live");

    // Unknown and expired tokens are refused and revoke nothing.
    let never = Token::generate().expect("token");
    assert_eq!(
        rejected(store.rotate_refresh_token(never.expose(), TTL).await),
        TokenProblem::Unknown
    );
    assert_eq!(
        rejected(store.rotate_refresh_token("garbage", TTL).await),
        TokenProblem::Unknown
    );
    db.client()
        .await
        .batch_execute(&format!(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 minute' WHERE id = '{}'",
            third.id
        ))
        .await
        .expect("expire");
    assert_eq!(
        rejected(store.rotate_refresh_token(third.token.expose(), TTL).await),
        TokenProblem::Expired
    );
    let revoked_at: Option<String> = db
        .client()
        .await
        .query_one(
            &format!(
                "SELECT revoked_at::text FROM refresh_tokens WHERE id = '{}'",
                third.id
            ),
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(revoked_at, None);
    assert!(matches!(
        store
            .rotate_refresh_token(third.token.expose(), Duration::zero())
            .await,
        Err(Error::Validation { field: "ttl", .. })
    ));
}

#[tokio::test]
async fn presenting_a_revoked_token_again_revokes_every_token_of_the_user() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test").await;
    let bob = user(&store, "bob@example.test").await;
    let stolen = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let other_device = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let bobs = store.issue_refresh_token(bob, TTL).await.expect("issue");

    let successor = store
        .rotate_refresh_token(stolen.token.expose(), TTL)
        .await
        .expect("rotate");
    // The thief (or the owner) presents the old token again.
    assert!(matches!(
        store.rotate_refresh_token(stolen.token.expose(), TTL).await,
        Err(Error::TokenReused)
    ));
    assert_eq!(live(&db, ann).await, 0);
    for t in [&successor.token, &other_device.token, &stolen.token] {
        assert_eq!(
            rejected(store.verify_refresh_token(t.expose()).await),
            TokenProblem::Revoked
        );
    }
    // Other users are untouched.
    store
        .verify_refresh_token(bobs.token.expose())
        .await
        .expect("bob's token is live");
    assert_eq!(live(&db, bob).await, 1);

    // A token revoked by logout is reuse too when rotated.
    let logged_out = store.issue_refresh_token(bob, TTL).await.expect("issue");
    assert!(store
        .revoke_refresh_token(logged_out.token.expose())
        .await
        .expect("logout"));
    assert!(matches!(
        store
            .rotate_refresh_token(logged_out.token.expose(), TTL)
            .await,
        Err(Error::TokenReused)
    ));
    assert_eq!(live(&db, bob).await, 0);
}

#[tokio::test]
async fn two_concurrent_rotations_of_one_token_never_leave_two_live_successors() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let ann = user(&store, "ann@example.test").await;
    for round in 0..8 {
        let token = store
            .issue_refresh_token(ann, TTL)
            .await
            .expect("issue")
            .token;
        let (a, b) = {
            let (s1, s2) = (store.clone(), store.clone());
            let (t1, t2) = (token.clone(), token.clone());
            tokio::join!(
                tokio::spawn(async move { s1.rotate_refresh_token(t1.expose(), TTL).await }),
                tokio::spawn(async move { s2.rotate_refresh_token(t2.expose(), TTL).await }),
            )
        };
        let results = [a.expect("task"), b.expect("task")];
        let won = results.iter().filter(|r| r.is_ok()).count();
        let reused = results
            .iter()
            .filter(|r| matches!(r, Err(Error::TokenReused)))
            .count();
        assert_eq!((won, reused), (1, 1), "round {round}: {results:?}");
        // The loser presented a revoked token, so the winner's successor
        // is revoked as well: no token descends twice, none stays live.
        assert_eq!(live(&db, ann).await, 0, "round {round}");
        let successors = scalar_i64(
            &db,
            &format!(
                "SELECT count(*) FROM refresh_tokens WHERE user_id = '{ann}' AND revoked_at IS NULL"
            ),
        )
        .await;
        assert_eq!(successors, 0, "round {round}");
    }
}

#[tokio::test]
async fn logging_out_everywhere_during_a_rotation_leaves_no_live_token() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let ann = user(&store, "ann@example.test").await;
    for round in 0..8 {
        let token = store
            .issue_refresh_token(ann, TTL)
            .await
            .expect("issue")
            .token;
        let (s1, s2) = (store.clone(), store.clone());
        let (rotated, revoked) = tokio::join!(
            tokio::spawn(async move { s1.rotate_refresh_token(token.expose(), TTL).await }),
            tokio::spawn(async move { s2.revoke_user_refresh_tokens(ann).await }),
        );
        let rotated = rotated.expect("task");
        assert!(
            matches!(rotated, Ok(_) | Err(Error::TokenReused)),
            "round {round}: {rotated:?}"
        );
        assert!(revoked.expect("task").expect("revoke all") <= 1);
        assert_eq!(live(&db, ann).await, 0, "round {round}: {rotated:?}");
    }
}

#[tokio::test]
async fn revoking_one_or_all_tokens() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test").await;
    let bob = user(&store, "bob@example.test").await;
    let one = store.issue_refresh_token(ann, TTL).await.expect("issue");
    for _ in 0..2 {
        store.issue_refresh_token(ann, TTL).await.expect("issue");
    }
    store.issue_refresh_token(bob, TTL).await.expect("issue");

    assert!(store
        .revoke_refresh_token(one.token.expose())
        .await
        .expect("revoke"));
    assert!(!store
        .revoke_refresh_token(one.token.expose())
        .await
        .expect("revoke twice"));
    let never = Token::generate().expect("token");
    assert!(!store
        .revoke_refresh_token(never.expose())
        .await
        .expect("unknown"));
    assert!(!store.revoke_refresh_token("junk").await.expect("malformed"));
    assert_eq!(live(&db, ann).await, 2);

    assert_eq!(store.revoke_user_refresh_tokens(ann).await.expect("all"), 2);
    assert_eq!(
        store.revoke_user_refresh_tokens(ann).await.expect("again"),
        0
    );
    assert_eq!(live(&db, ann).await, 0);
    assert_eq!(live(&db, bob).await, 1);
    assert_eq!(
        store
            .revoke_user_refresh_tokens(UserId(uuid::Uuid::new_v4()))
            .await
            .expect("unknown user"),
        0
    );
}

#[tokio::test]
async fn deleting_expired_tokens_keeps_live_and_revoked_ones() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test").await;
    let live_one = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let revoked = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let expired = store.issue_refresh_token(ann, TTL).await.expect("issue");
    let expired_revoked = store.issue_refresh_token(ann, TTL).await.expect("issue");
    for t in [&revoked, &expired_revoked] {
        store
            .revoke_refresh_token(t.token.expose())
            .await
            .expect("revoke");
    }
    db.client()
        .await
        .batch_execute(&format!(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 day' \
             WHERE id IN ('{}', '{}')",
            expired.id, expired_revoked.id
        ))
        .await
        .expect("expire");

    assert_eq!(
        store.delete_expired_refresh_tokens().await.expect("delete"),
        2
    );
    assert_eq!(
        store.delete_expired_refresh_tokens().await.expect("again"),
        0
    );
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM refresh_tokens").await,
        2
    );
    store
        .verify_refresh_token(live_one.token.expose())
        .await
        .expect("live");
    // A revoked token is kept until it expires, so that reuse is still seen.
    assert!(matches!(
        store
            .rotate_refresh_token(revoked.token.expose(), TTL)
            .await,
        Err(Error::TokenReused)
    ));
    assert_eq!(
        rejected(store.verify_refresh_token(expired.token.expose()).await),
        TokenProblem::Unknown
    );
}

#[tokio::test]
async fn tokens_go_with_their_user() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test").await;
    let issued = store.issue_refresh_token(ann, TTL).await.expect("issue");
    store
        .delete_own_account(ann, &Default::default())
        .await
        .expect("delete account");
    assert_eq!(
        rejected(store.rotate_refresh_token(issued.token.expose(), TTL).await),
        TokenProblem::Unknown
    );
}

#[tokio::test]
async fn the_disabled_store_issues_no_token() {
    let store = DisabledStore::new("test");
    let id = UserId(uuid::Uuid::new_v4());
    let t = Token::generate().expect("token");
    assert!(matches!(
        store.issue_refresh_token(id, TTL).await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.verify_refresh_token(t.expose()).await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.rotate_refresh_token(t.expose(), TTL).await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.revoke_refresh_token(t.expose()).await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.revoke_user_refresh_tokens(id).await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.delete_expired_refresh_tokens().await,
        Err(Error::Disabled)
    ));
}

#[tokio::test]
async fn lookups_by_digest_go_through_the_unique_index() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    // An empty table may be scanned; the index must at least exist and be
    // usable, which forbidding sequential scans shows.
    let plan = common::forced_plan(
        &client,
        "SELECT * FROM refresh_tokens WHERE token_hash = 'x'",
    )
    .await;
    assert!(plan.contains("unique_token_hash"), "{plan}");
}

#[tokio::test]
async fn blocking_or_changing_the_password_ends_every_refresh_token() {
    use pronghorn_db::models::{NewLocalUser, RequestMeta, Role};
    use pronghorn_db::UserStore;
    let db = common::TestDb::migrated().await;
    let store = db.store().await;
    let meta = RequestMeta::default();
    let mut admin = NewLocalUser::new("admin@x.io", "admin password", "Admin");
    admin.role = Role::Admin;
    let admin = store.create_user(admin).await.expect("admin");
    let user = store
        .create_user(NewLocalUser::new("u@x.io", "user password", "U"))
        .await
        .expect("user");
    let hour = chrono::Duration::hours(1);

    let t = store
        .issue_refresh_token(user.id, hour)
        .await
        .expect("issue");
    store
        .change_password(user.id, "user password", "another password", &meta)
        .await
        .expect("change");
    assert!(matches!(
        store.rotate_refresh_token(t.token.expose(), hour).await,
        Err(pronghorn_db::Error::TokenReused)
    ));

    let t = store
        .issue_refresh_token(user.id, hour)
        .await
        .expect("issue");
    store
        .block_user(admin.id, user.id, "abuse", &meta)
        .await
        .expect("block");
    assert!(store.verify_refresh_token(t.token.expose()).await.is_err());

    // A token issued while blocked (by the app, directly) cannot be rotated.
    let t = store
        .issue_refresh_token(user.id, hour)
        .await
        .expect("issue");
    assert!(matches!(
        store.rotate_refresh_token(t.token.expose(), hour).await,
        Err(pronghorn_db::Error::AccountBlocked)
    ));
    assert!(store.verify_refresh_token(t.token.expose()).await.is_err());
}
