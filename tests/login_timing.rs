//! The attacker with a stopwatch: an unknown email, a wrong password and a
//! right one cost the same work (one password check of the current scheme),
//! so their times tell them apart no better than noise does. Alone in its
//! own test binary, so that no other test competes for the two cores.

mod common;

use common::TestDb;
use pronghorn_db::models::NewLocalUser;
use pronghorn_db::{Error, PgStore, UserStore};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
/// Rounds of the three kinds of login, interleaved.
const ROUNDS: usize = 60;
/// Rounds once a bcrypt account is present (each login then costs a
/// bcrypt check too: about ten times an argon2id one).
const MIXED_ROUNDS: usize = 20;
/// The stated tolerance: each kind's median within this share of the others'.
const TOLERANCE: f64 = 0.10;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Median login time of each kind, over `rounds` interleaved rounds.
async fn medians(
    store: &PgStore,
    rounds: usize,
    kinds: &[(&'static str, &str, &str, bool)],
) -> Vec<(&'static str, Duration)> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for i in 0..rounds {
        for (k, (kind, email, password, succeeds)) in kinds.iter().enumerate() {
            let email = email.replace("{i}", &i.to_string());
            let started = Instant::now();
            let r = store.authenticate(&email, password).await;
            times[k].push(started.elapsed());
            if *succeeds {
                assert!(r.is_ok(), "{kind}: {r:?}");
            } else {
                assert!(matches!(r, Err(Error::InvalidCredentials)), "{kind}: {r:?}");
            }
        }
    }
    kinds
        .iter()
        .zip(times)
        .map(|((kind, ..), t)| (*kind, median(t)))
        .collect()
}

fn assert_alike(medians: &[(&'static str, Duration)]) {
    let slowest = medians.iter().map(|m| m.1).max().unwrap_or_default();
    for (kind, m) in medians {
        let gap = (slowest - *m).as_secs_f64() / slowest.as_secs_f64();
        assert!(
            gap <= TOLERANCE,
            "{kind}: median {m:?} is {:.0}% below the slowest {slowest:?}",
            gap * 100.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_email_wrong_password_and_success_take_the_same_time() {
    let db = TestDb::migrated().await;
    let url = db.url();
    // No throttle in the way: this measures the work, not the limit.
    let store = PgStore::new(common::configured(&[
        ("DB_CONNECTION_STRING", &url),
        ("LOGIN_MAX_FAILURES", "1000000"),
    ]))
    .await
    .expect("store");
    store
        .create_user(NewLocalUser::new("known@example.com", PW, "Known"))
        .await
        .expect("user");
    // Warm up: connections opened, statements prepared, the dummy hash made.
    for _ in 0..3 {
        let _ = store.authenticate("warm@example.com", PW).await;
        let _ = store
            .authenticate("known@example.com", "wrong password")
            .await;
        store
            .authenticate("known@example.com", PW)
            .await
            .expect("login");
    }

    let found = medians(
        &store,
        ROUNDS,
        &[
            ("unknown email", "nobody{i}@example.com", PW, false),
            (
                "wrong password",
                "known@example.com",
                "wrong password",
                false,
            ),
            ("success", "known@example.com", PW, true),
        ],
    )
    .await;
    println!("median login times over {ROUNDS} rounds: {found:?}");
    assert_alike(&found);

    // A template-era account with a bcrypt hash (cost 12, far slower to
    // check than argon2id) joins: every login now checks one hash of each
    // scheme, so none of the kinds stands out.
    let legacy = bcrypt::hash("legacy password", 12).expect("bcrypt");
    db.client()
        .await
        .execute(
            "INSERT INTO users (email, display_name, password_hash) VALUES ('legacy@example.com', 'L', $1)",
            &[&legacy],
        )
        .await
        .expect("insert");
    let mixed = PgStore::new(common::configured(&[
        ("DB_CONNECTION_STRING", &url),
        ("LOGIN_MAX_FAILURES", "1000000"),
    ]))
    .await
    .expect("store");
    let _ = mixed.authenticate("warm@example.com", PW).await;
    let _ = mixed
        .authenticate("legacy@example.com", "wrong password")
        .await;
    let found = medians(
        &mixed,
        MIXED_ROUNDS,
        &[
            ("unknown email", "nobody{i}@example.com", PW, false),
            (
                "wrong password, argon2id",
                "known@example.com",
                "wrong password",
                false,
            ),
            (
                "wrong password, bcrypt",
                "legacy@example.com",
                "wrong password",
                false,
            ),
            ("success, argon2id", "known@example.com", PW, true),
        ],
    )
    .await;
    println!("with a bcrypt account, median login times over {MIXED_ROUNDS} rounds: {found:?}");
    assert_alike(&found);
}
