//! The attacker with a stopwatch: an unknown email, a wrong password and a
//! right one cost the same work (one password check of the current scheme),
//! so their times tell them apart no better than noise does. Alone in its
//! own test binary, so that no other test competes for the two cores.

mod common;

use common::TestDb;
use pronghorn_db::{Error, NewLocalUser, PgStore, UserStore};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
/// Rounds of the three kinds of login, interleaved.
const ROUNDS: usize = 60;
/// The stated tolerance: each kind's median within this share of the others'.
const TOLERANCE: f64 = 0.10;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
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

    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    let mut right = Vec::new();
    for i in 0..ROUNDS {
        let started = Instant::now();
        let r = store
            .authenticate(&format!("nobody{i}@example.com"), PW)
            .await;
        unknown.push(started.elapsed());
        assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");

        let started = Instant::now();
        let r = store
            .authenticate("known@example.com", "wrong password")
            .await;
        wrong.push(started.elapsed());
        assert!(matches!(r, Err(Error::InvalidCredentials)), "{r:?}");

        let started = Instant::now();
        let r = store.authenticate("known@example.com", PW).await;
        right.push(started.elapsed());
        assert!(r.is_ok(), "{r:?}");
    }
    let medians = [
        ("unknown email", median(unknown)),
        ("wrong password", median(wrong)),
        ("success", median(right)),
    ];
    println!("median login times over {ROUNDS} rounds: {medians:?}");
    let slowest = medians.iter().map(|m| m.1).max().unwrap_or_default();
    for (kind, m) in medians {
        let gap = (slowest - m).as_secs_f64() / slowest.as_secs_f64();
        assert!(
            gap <= TOLERANCE,
            "{kind}: median {m:?} is {:.0}% below the slowest {slowest:?}",
            gap * 100.0
        );
    }
}
