//! Attacks on logins, performed against a real PostgreSQL: guessing one
//! account's password, probing which emails have accounts through the
//! throttle, and flooding the password hasher.

mod common;

use common::TestDb;
use pronghorn_db::models::NewLocalUser;
use pronghorn_db::{Error, PgStore, SessionCookie, SessionData, SessionStore, UserStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

async fn store_with(db: &TestDb, vars: &[(&str, &str)]) -> PgStore {
    let url = db.url();
    let mut all = vec![
        ("DB_CONNECTION_STRING", url.as_str()),
        ("DB_POOL_MAX", "10"),
    ];
    all.extend_from_slice(vars);
    PgStore::new(common::configured(&all)).await.expect("store")
}

fn throttled(r: &Result<pronghorn_db::models::User, Error>) -> bool {
    matches!(r, Err(Error::LoginThrottled { .. }))
}

fn invalid(r: &Result<pronghorn_db::models::User, Error>) -> bool {
    matches!(r, Err(Error::InvalidCredentials))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_guesses_cost_at_most_the_limit_of_password_checks() {
    let db = TestDb::migrated().await;
    let store = Arc::new(store_with(&db, &[("LOGIN_MAX_FAILURES", "5")]).await);
    store
        .create_user(NewLocalUser::new("victim@example.com", PW, "Victim"))
        .await
        .expect("user");
    let checks_before = store.passwords().verifications();

    let guesses: Vec<_> = (0..500)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .authenticate("victim@example.com", &format!("guess number {i}"))
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for g in guesses {
        outcomes.push(g.await.expect("task"));
    }
    let wrong = outcomes.iter().filter(|r| invalid(r)).count();
    let refused = outcomes.iter().filter(|r| throttled(r)).count();
    assert_eq!((wrong, refused), (5, 495), "{:?}", &outcomes[..3]);
    assert_eq!(
        store.passwords().verifications() - checks_before,
        5,
        "only the first five guesses reached the hash"
    );

    // The right password is refused too until the window ends, with the
    // time left; the message names no account.
    match store.authenticate("Victim@Example.com", PW).await {
        Err(e @ Error::LoginThrottled { retry_after }) => {
            assert!(
                retry_after > Duration::from_secs(14 * 60),
                "{retry_after:?}"
            );
            assert!(
                retry_after <= Duration::from_secs(15 * 60),
                "{retry_after:?}"
            );
            assert!(e
                .to_string()
                .starts_with("too many failed logins for this email; try again in "));
        }
        other => panic!("{other:?}"),
    }
    // The count is in the database: another app instance (or a restarted
    // one) refuses as well, without hashing.
    let other = store_with(&db, &[("LOGIN_MAX_FAILURES", "5")]).await;
    assert!(throttled(
        &other.authenticate("victim@example.com", PW).await
    ));
    assert_eq!(other.passwords().verifications(), 0);
}

#[tokio::test]
async fn a_success_clears_the_count_and_a_passed_window_frees_the_account() {
    let db = TestDb::migrated().await;
    let store = store_with(&db, &[("LOGIN_MAX_FAILURES", "3")]).await;
    store
        .create_user(NewLocalUser::new("owner@example.com", PW, "Owner"))
        .await
        .expect("user");
    for _ in 0..2 {
        assert!(invalid(
            &store.authenticate("owner@example.com", "typo typo").await
        ));
    }
    store
        .authenticate("owner@example.com", PW)
        .await
        .expect("third try, right");
    for _ in 0..3 {
        assert!(invalid(
            &store.authenticate("owner@example.com", "typo typo").await
        ));
    }
    assert!(throttled(
        &store.authenticate("owner@example.com", PW).await
    ));

    // Time passes (the window start moved back, as the clock would).
    let client = db.client().await;
    let aged = client
        .execute(
            "UPDATE login_failures SET window_started_at = now() - interval '16 minutes'",
            &[],
        )
        .await
        .expect("age");
    assert_eq!(aged, 1);
    store
        .authenticate("owner@example.com", PW)
        .await
        .expect("window passed");
    assert_eq!(
        client
            .query_one("SELECT count(*) FROM login_failures", &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        0,
        "a success leaves no count behind"
    );

    // Pruning removes the counts whose window has passed, and only those.
    for email in ["a@example.com", "b@example.com"] {
        assert!(invalid(&store.authenticate(email, "whatever pw").await));
    }
    client
        .execute(
            "UPDATE login_failures SET window_started_at = now() - interval '1 hour' \
             WHERE email_digest = encode(sha256('a@example.com'), 'hex')",
            &[],
        )
        .await
        .expect("age one");
    assert_eq!(store.prune_login_failures().await.expect("prune"), 1);
}

#[tokio::test]
async fn the_throttle_does_not_tell_which_emails_have_accounts() {
    let db = TestDb::migrated().await;
    let store = store_with(&db, &[("LOGIN_MAX_FAILURES", "3")]).await;
    store
        .create_user(NewLocalUser::new("real@example.com", PW, "Real"))
        .await
        .expect("user");
    for email in ["real@example.com", "nobody@example.com"] {
        let outcomes: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(store.authenticate(email, "wrong password").await);
            }
            v
        };
        assert!(outcomes[..3].iter().all(invalid), "{email}: {outcomes:?}");
        assert!(throttled(&outcomes[3]), "{email}: {outcomes:?}");
    }
    // No stranger's email is stored: only digests.
    let rows = db
        .client()
        .await
        .query("SELECT email_digest FROM login_failures ORDER BY 1", &[])
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2);
    for row in rows {
        let key: String = row.get(0);
        assert!(
            key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
    }
}

/// Inserts `n` accounts sharing one password hash (hashing each would cost
/// more than the test).
async fn many_accounts(db: &TestDb, store: &PgStore, n: usize) -> Vec<String> {
    let hash = store.passwords().hash(PW).await.expect("hash");
    let emails: Vec<String> = (0..n).map(|i| format!("member{i}@example.com")).collect();
    db.client()
        .await
        .execute(
            "INSERT INTO users (email, display_name, password_hash) \
             SELECT e, 'Member', $2 FROM unnest($1::text[]) AS e",
            &[&emails, &hash],
        )
        .await
        .expect("insert accounts");
    emails
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_hashing_slot_is_bounded() {
    let db = TestDb::migrated().await;
    let store = Arc::new(
        store_with(
            &db,
            &[
                ("PASSWORD_HASH_CONCURRENCY", "1"),
                ("PASSWORD_HASH_WAIT_MS", "100"),
            ],
        )
        .await,
    );
    let emails = many_accounts(&db, &store, 40).await;
    let calls: Vec<_> = emails
        .into_iter()
        .map(|email| {
            let store = store.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let r = store.authenticate(&email, "wrong password").await;
                (r, started.elapsed())
            })
        })
        .collect();
    let mut unavailable = 0;
    for call in calls {
        let (r, took) = call.await.expect("task");
        match r {
            Err(Error::InvalidCredentials) => {}
            Err(Error::Unavailable { target, reason }) => {
                assert_eq!(target, "password hashing");
                assert_eq!(reason, "no hashing slot became free within 100 ms");
                // Gave up at the bound, give or take scheduling.
                assert!(took < Duration::from_millis(1000), "{took:?}");
                unavailable += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        unavailable > 0,
        "40 checks through one slot cannot all start within 100 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_login_completes_during_a_flood_on_other_accounts() {
    let db = TestDb::migrated().await;
    // The defaults: a hashing slot per core, a 2 s bound on waiting for one.
    let store = Arc::new(store_with(&db, &[]).await);
    store
        .create_user(NewLocalUser::new("legit@example.com", PW, "Legit"))
        .await
        .expect("user");
    let emails = many_accounts(&db, &store, 200).await;
    let flood: Vec<_> = emails
        .into_iter()
        .map(|email| {
            let store = store.clone();
            tokio::spawn(async move { store.authenticate(&email, "wrong password").await })
        })
        .collect();

    // The legitimate user arrives in the middle of the flood and, like a
    // client given a 503, tries again shortly after an `Unavailable`.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let mut tries = 0;
    let user = loop {
        tries += 1;
        match store.authenticate("legit@example.com", PW).await {
            Ok(user) => break user,
            Err(Error::Unavailable { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(other) => panic!("{other:?}"),
        }
    };
    let took = started.elapsed();
    assert_eq!(user.email, "legit@example.com");

    let mut unavailable = 0;
    for f in flood {
        match f.await.expect("task") {
            Err(Error::InvalidCredentials) => {}
            Err(Error::Unavailable { .. }) => unavailable += 1,
            other => panic!("{other:?}"),
        }
    }
    println!("legitimate login: {took:?} in {tries} tries; flood calls refused for want of a slot: {unavailable} of 200");
    // The bound: the 2 s wait, then one more try with the queue drained.
    assert!(took < Duration::from_secs(4), "{took:?} in {tries} tries");
}

#[tokio::test]
async fn guessing_the_current_password_through_a_password_change_is_throttled_too() {
    let db = TestDb::migrated().await;
    let store = store_with(&db, &[("LOGIN_MAX_FAILURES", "3")]).await;
    let victim = store
        .create_user(NewLocalUser::new("held@example.com", PW, "Held"))
        .await
        .expect("user");
    let meta = pronghorn_db::models::RequestMeta::default();
    // Someone with the victim's session guesses the current password.
    for i in 0..3 {
        let r = store
            .change_password(
                victim.id,
                &format!("guess {i} guess"),
                "new password 1",
                &meta,
            )
            .await;
        assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");
    }
    let checks = store.passwords().verifications();
    let r = store
        .change_password(victim.id, PW, "new password 1", &meta)
        .await;
    assert!(matches!(r, Err(Error::LoginThrottled { .. })), "{r:?}");
    assert_eq!(
        store.passwords().verifications(),
        checks,
        "refused before hashing"
    );
    // The same count guards the login.
    assert!(throttled(&store.authenticate("held@example.com", PW).await));
}

#[tokio::test]
async fn an_over_long_password_still_costs_one_check() {
    let db = TestDb::migrated().await;
    let store = store_with(&db, &[]).await;
    store
        .create_user(NewLocalUser::new("long@example.com", PW, "Long"))
        .await
        .expect("user");
    // Over 1024 bytes, in characters of several bytes each.
    let long = "é".repeat(700);
    for email in ["long@example.com", "nobody@example.com"] {
        let before = store.passwords().verifications();
        let r = store.authenticate(email, &long).await;
        assert!(
            matches!(r, Err(Error::InvalidCredentials)),
            "{email}: {r:?}"
        );
        // The first dummy check makes the dummy hash: one hash either way.
        assert_eq!(store.passwords().verifications() - before, 1, "{email}");
    }
}

/// Sessions and live refresh tokens that name `user`.
async fn credentials_of(db: &TestDb, user: uuid::Uuid) -> (i64, i64) {
    let client = db.client().await;
    let sessions: i64 = client
        .query_one(
            "SELECT count(*) FROM session WHERE sess->>'userId' = $1",
            &[&user.to_string()],
        )
        .await
        .expect("sessions")
        .get(0);
    let tokens: i64 = client
        .query_one(
            "SELECT count(*) FROM refresh_tokens \
             WHERE user_id = $1::text::uuid AND revoked_at IS NULL",
            &[&user.to_string()],
        )
        .await
        .expect("tokens")
        .get(0);
    (sessions, tokens)
}

fn a_session() -> SessionData {
    SessionData::new(SessionCookie::with_max_age(chrono::Duration::hours(1)))
}

/// The owner changes the password while the attacker's login with the
/// old one is past its password check but has not written its session
/// yet (held there deterministically: the test holds the user's row, so
/// the login's `last_login` write waits, and commits the new hash
/// meanwhile). The login must end with nothing: no session, no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_password_changed_while_it_was_checked_gets_nothing() {
    let db = TestDb::migrated().await;
    let store = Arc::new(store_with(&db, &[]).await);
    let victim = store
        .create_user(NewLocalUser::new("victim@example.com", PW, "Victim"))
        .await
        .expect("user");
    store
        .create_user(NewLocalUser::new(
            "donor@example.com",
            "the new password",
            "Donor",
        ))
        .await
        .expect("a user whose hash becomes the victim's");

    let mut holder = db.client().await;
    let watcher = db.client().await;
    let hold = holder.transaction().await.expect("begin");
    hold.execute(
        "SELECT 1 FROM users WHERE id = $1::text::uuid FOR UPDATE",
        &[&victim.id.0.to_string()],
    )
    .await
    .expect("hold the row");
    let login = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .log_in(
                    "victim@example.com",
                    PW,
                    "attackers-sid",
                    &a_session(),
                    Some(chrono::Duration::days(30)),
                )
                .await
        })
    };
    common::until_waiting(&watcher, 1).await;
    hold.execute(
        "UPDATE users SET password_hash = \
         (SELECT password_hash FROM users WHERE email = 'donor@example.com') \
         WHERE id = $1::text::uuid",
        &[&victim.id.0.to_string()],
    )
    .await
    .expect("the new hash");
    hold.commit().await.expect("commit the change");

    let outcome = login.await.expect("join");
    assert!(
        matches!(outcome, Err(Error::InvalidCredentials)),
        "a login checked against the old hash must be refused: {outcome:?}"
    );
    assert_eq!(credentials_of(&db, victim.id.0).await, (0, 0));
    store
        .authenticate("victim@example.com", "the new password")
        .await
        .expect("the new password is the account's");
}

/// An attacker who knows the old password logs in again and again, from
/// several tasks, while the owner changes it through the store: however
/// the two interleave, no session or refresh token the attacker got
/// outlives the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_racing_a_password_change_keep_nothing_after_it() {
    let db = TestDb::migrated().await;
    let store = Arc::new(store_with(&db, &[("LOGIN_MAX_FAILURES", "1000")]).await);
    let victim = store
        .create_user(NewLocalUser::new("victim@example.com", PW, "Victim"))
        .await
        .expect("user");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for task in 0..3 {
        let (store, stop) = (store.clone(), stop.clone());
        attackers.push(tokio::spawn(async move {
            let mut got = 0u32;
            for n in 0.. {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                match store
                    .log_in(
                        "victim@example.com",
                        PW,
                        &format!("attacker-{task}-{n}"),
                        &a_session(),
                        Some(chrono::Duration::days(30)),
                    )
                    .await
                {
                    Ok(_) => got += 1,
                    Err(Error::InvalidCredentials) => break,
                    // No hashing slot in time on a busy machine: try again.
                    Err(Error::Unavailable { .. }) => continue,
                    Err(e) => panic!("unexpected: {e}"),
                }
            }
            got
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    store
        .change_password(
            victim.id,
            PW,
            "the owner's new password",
            &pronghorn_db::models::RequestMeta::default(),
        )
        .await
        .expect("the owner's change");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut logged_in = 0;
    for attacker in attackers {
        logged_in += attacker.await.expect("join");
    }
    assert!(logged_in > 0, "the attack never got in before the change");
    assert_eq!(credentials_of(&db, victim.id.0).await, (0, 0));
}

/// Two logins of one user at once while its hash is of the old scheme:
/// both check the old hash, one upgrade wins, and the other login finds a
/// hash it did not check. The password did not change, so it must still
/// get in (by checking once more), not be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_logins_that_both_upgrade_the_hash_both_get_in() {
    let db = TestDb::migrated().await;
    let old_scheme = store_with(&db, &[("PASSWORD_HASH", "bcrypt")]).await;
    let user = old_scheme
        .create_user(NewLocalUser::new("twice@example.com", PW, "Twice"))
        .await
        .expect("a user with a bcrypt hash");
    let store = Arc::new(store_with(&db, &[("PASSWORD_HASH_CONCURRENCY", "2")]).await);
    let logins: Vec<_> = (0..2)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .log_in(
                        "twice@example.com",
                        PW,
                        &format!("tab-{n}"),
                        &a_session(),
                        None,
                    )
                    .await
            })
        })
        .collect();
    for login in logins {
        let done = login.await.expect("join").expect("both tabs log in");
        assert_eq!(done.user.id, user.id);
        assert!(done.refresh_token.is_none());
    }
    assert_eq!(credentials_of(&db, user.id.0).await, (2, 0));
    let hash: String = db
        .client()
        .await
        .query_one(
            "SELECT password_hash FROM users WHERE email = 'twice@example.com'",
            &[],
        )
        .await
        .expect("hash")
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "upgraded once: {hash}");
}

/// Session fixation: someone plants a session id (their own session, or
/// a row they made) and gets the victim to log in on it. A login never
/// takes over an existing row: it is refused as a conflict, the planted
/// row keeps its data, and no refresh token is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_a_planted_session_id_is_refused() {
    let db = TestDb::migrated().await;
    let store = store_with(&db, &[]).await;
    let victim = store
        .create_user(NewLocalUser::new("victim@example.com", PW, "Victim"))
        .await
        .expect("user");
    let mut planted = a_session();
    planted
        .fields
        .insert("cart".into(), serde_json::json!("the planter's"));
    store
        .set_session("planted-sid", &planted)
        .await
        .expect("the planted row");
    let r = store
        .log_in(
            "victim@example.com",
            PW,
            "planted-sid",
            &a_session(),
            Some(chrono::Duration::days(30)),
        )
        .await;
    assert!(
        matches!(&r, Err(Error::Conflict { constraint }) if constraint == "session_pkey"),
        "{r:?}"
    );
    let row = store
        .get_session("planted-sid")
        .await
        .expect("read")
        .expect("the planted row is still there");
    assert_eq!(row.data.fields.get("userId"), None);
    assert_eq!(credentials_of(&db, victim.id.0).await, (0, 0));
    // A fresh id logs in.
    store
        .log_in("victim@example.com", PW, "fresh-sid", &a_session(), None)
        .await
        .expect("a new session");
    assert_eq!(credentials_of(&db, victim.id.0).await, (1, 0));
}
