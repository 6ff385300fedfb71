//! Faults that do not need a private server: pool exhaustion, rollback on
//! error, on panic and on cancellation, and retries of conflicting
//! serializable transactions.

mod common;

use common::TestDb;
use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use pronghorn_db::{Error, HealthStore, Isolation, PgStore, PoolSettings};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    b: bool,
}

async fn users(conn: &mut AsyncPgConnection) -> i64 {
    diesel::sql_query("SELECT count(*) AS n FROM users")
        .get_result::<Count>(conn)
        .await
        .expect("count")
        .n
}

async fn insert(conn: &mut AsyncPgConnection, email: &str) -> Result<(), Error> {
    diesel::sql_query("INSERT INTO users (email, display_name) VALUES ($1, 'T')")
        .bind::<diesel::sql_types::Text, _>(email)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether this session's current transaction already wrote something: a
/// fresh statement outside any transaction has no transaction id, while one
/// inside a transaction left open by an earlier insert does.
async fn in_transaction(conn: &mut AsyncPgConnection) -> bool {
    diesel::sql_query("SELECT pg_current_xact_id_if_assigned() IS NOT NULL AS b")
        .get_result::<Flag>(conn)
        .await
        .expect("flag")
        .b
}

fn small_pool(db: &TestDb, max: u32, timeout_ms: u64) -> pronghorn_db::DbConfig {
    db.config().with_pool(PoolSettings {
        min_idle: 0,
        max_size: max,
        idle_timeout: Duration::from_secs(30),
        connection_timeout: Duration::from_millis(timeout_ms),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_times_waiters_out_and_recovers() {
    let db = TestDb::migrated().await;
    let timeout = Duration::from_millis(1000);
    let store = Arc::new(PgStore::new(small_pool(&db, 2, 1000)).await.expect("store"));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            match store.conn().await {
                Ok(conn) => {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    drop(conn);
                    Ok(started.elapsed())
                }
                Err(e) => Err((e, started.elapsed())),
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = store.pool_stats().expect("stats");
    assert_eq!((during.in_use, during.waiting), (2, 48), "{during:?}");
    let mut held = 0;
    let mut waits = Vec::new();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("no task hangs")
            .expect("task")
        {
            Ok(_) => held += 1,
            Err((e, waited)) => {
                assert!(e.is_unavailable(), "{e:?}");
                assert!(e.to_string().contains("no connection"), "{e}");
                waits.push(waited);
            }
        }
    }
    assert_eq!(held, 2, "the pool's two connections were held");
    assert_eq!(waits.len(), 48);
    for w in &waits {
        assert!(
            *w >= timeout.mul_f64(0.95) && *w <= timeout.mul_f64(1.2),
            "a waiter gave up after {w:?}, not within 20% of {timeout:?}"
        );
    }
    // Afterwards the pool serves again and returns to idle.
    store.server_info().await.expect("serves");
    let stats = store.pool_stats().expect("stats");
    assert_eq!((stats.in_use, stats.waiting), (0, 0), "{stats:?}");
    assert!(stats.idle >= 1 && stats.size <= 2, "{stats:?}");
}

#[tokio::test]
async fn an_error_inside_a_transaction_rolls_everything_back() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let result: Result<(), Error> = store
        .transaction(|conn| {
            Box::pin(async move {
                insert(conn, "a@x.io").await?;
                insert(conn, "b@x.io").await?;
                assert_eq!(users(conn).await, 2, "visible inside the transaction");
                Err(Error::validation("test", "fail on purpose"))
            })
        })
        .await;
    assert!(matches!(
        result,
        Err(Error::Validation { field: "test", .. })
    ));
    let mut conn = store.conn().await.expect("conn");
    assert_eq!(users(&mut conn).await, 0);

    // A database error half-way rolls back the statements before it too.
    drop(conn);
    let result: Result<(), Error> = store
        .transaction(|conn| {
            Box::pin(async move {
                insert(conn, "c@x.io").await?;
                insert(conn, "c@x.io").await?;
                Ok(())
            })
        })
        .await;
    assert!(
        matches!(result, Err(Error::Conflict { ref constraint }) if constraint == "users_email_key")
    );
    let mut conn = store.conn().await.expect("conn");
    assert_eq!(users(&mut conn).await, 0);
    assert!(!in_transaction(&mut conn).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_transaction_rolls_back_and_leaks_nothing() {
    let db = TestDb::migrated().await;
    // One connection, so that the next caller gets the same pool slot.
    let store = Arc::new(PgStore::new(small_pool(&db, 1, 2000)).await.expect("store"));
    let s = store.clone();
    let joined = tokio::spawn(async move {
        let _: Result<(), Error> = s
            .transaction(|conn| {
                Box::pin(async move {
                    insert(conn, "panic@x.io").await?;
                    panic!("a bug inside the transaction");
                })
            })
            .await;
    })
    .await;
    assert!(joined.expect_err("the task panicked").is_panic());
    let mut conn = store
        .conn()
        .await
        .expect("the pool still hands out a connection");
    assert!(
        !in_transaction(&mut conn).await,
        "no open transaction was handed on"
    );
    assert_eq!(users(&mut conn).await, 0);
}

#[tokio::test]
async fn a_cancelled_transaction_never_reaches_the_next_caller() {
    let db = TestDb::migrated().await;
    let store = PgStore::new(small_pool(&db, 1, 2000)).await.expect("store");
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        store.transaction(|conn| {
            Box::pin(async move {
                insert(conn, "cancel@x.io").await?;
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(())
            })
        }),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the transaction was still running and got dropped"
    );
    let mut conn = store.conn().await.expect("conn");
    assert!(
        !in_transaction(&mut conn).await,
        "no open transaction was handed on"
    );
    assert_eq!(users(&mut conn).await, 0, "the uncommitted row is gone");
    drop(conn);
    // And the store works normally afterwards.
    store
        .transaction(|conn| Box::pin(async move { insert(conn, "after@x.io").await }))
        .await
        .expect("commit");
    let mut conn = store.conn().await.expect("conn");
    assert_eq!(users(&mut conn).await, 1);
}

/// Two serializable transactions that each read the admin count and then
/// add an admin: run side by side, one of them must fail to serialize.
async fn write_skew(
    store: Arc<PgStore>,
    first_round: Arc<tokio::sync::Barrier>,
) -> (Vec<Result<i64, Error>>, u32) {
    let attempts = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for name in ["one", "two"] {
        let store = store.clone();
        let barrier = first_round.clone();
        let attempts = attempts.clone();
        tasks.push(tokio::spawn(async move {
            let tried = Arc::new(AtomicU32::new(0));
            store
                .transaction_with_retry(Isolation::Serializable, move |conn| {
                    let barrier = barrier.clone();
                    let tried = tried.clone();
                    let attempts = attempts.clone();
                    Box::pin(async move {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        let seen = diesel::sql_query("SELECT count(*) AS n FROM users WHERE role = 'admin'")
                            .get_result::<Count>(conn)
                            .await?
                            .n;
                        // Only the first attempts meet, so that they overlap.
                        if tried.fetch_add(1, Ordering::SeqCst) == 0 {
                            barrier.wait().await;
                        }
                        diesel::sql_query("INSERT INTO users (email, display_name, role) VALUES ($1, 'A', 'admin')")
                            .bind::<diesel::sql_types::Text, _>(format!("{name}-{seen}@x.io"))
                            .execute(conn)
                            .await?;
                        Ok(seen)
                    })
                })
                .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    (results, AtomicU32::load(&attempts, Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_serializable_transactions_are_retried_and_both_complete() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let (results, attempts) =
        write_skew(store.clone(), Arc::new(tokio::sync::Barrier::new(2))).await;
    let mut seen: Vec<i64> = results
        .into_iter()
        .map(|r| r.expect("both complete"))
        .collect();
    seen.sort();
    assert_eq!(seen, vec![0, 1], "the retried one saw the other's admin");
    assert!(
        attempts >= 3,
        "one transaction ran again ({attempts} attempts)"
    );
    let mut conn = store.conn().await.expect("conn");
    assert_eq!(users(&mut conn).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_past_the_retry_budget_is_a_clear_error() {
    let db = TestDb::migrated().await;
    let store = Arc::new(
        PgStore::new(db.config().with_transaction_retries(0))
            .await
            .expect("store"),
    );
    let (results, attempts) =
        write_skew(store.clone(), Arc::new(tokio::sync::Barrier::new(2))).await;
    assert_eq!(attempts, 2, "no retries");
    let failed: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    assert!(
        matches!(failed[0], Error::TransactionConflict { attempts: 1 }),
        "{:?}",
        failed[0]
    );
    assert_eq!(
        failed[0].to_string(),
        "the transaction conflicted with concurrent transactions 1 times; giving up"
    );
    let mut conn = store.conn().await.expect("conn");
    assert_eq!(users(&mut conn).await, 1, "the failed one left nothing");
}

/// Checkout is first come, first served: with the one connection held,
/// eight callers queue one after another (each seen waiting before the
/// next comes), and as the connection goes round they get it in the order
/// they came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_get_the_connection_in_the_order_they_came() {
    let db = TestDb::migrated().await;
    let store = Arc::new(
        PgStore::new(small_pool(&db, 1, 10_000))
            .await
            .expect("store"),
    );
    let held = store.conn().await.expect("the one connection");
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for n in 0..8u64 {
        let (mine, order) = (store.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let conn = mine.conn().await.expect("a turn");
            order.lock().expect("order").push(n);
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(conn);
        }));
        // The next caller comes only once this one stands in line.
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.pool_stats().map_or(0, |s| s.waiting) < n + 1 {
            assert!(Instant::now() < deadline, "caller {n} never waited");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    drop(held);
    for w in waiters {
        w.await.expect("join");
    }
    assert_eq!(*order.lock().expect("order"), (0..8).collect::<Vec<_>>());
}
