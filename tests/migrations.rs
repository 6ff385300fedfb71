//! Embedded migrations through the library: every runtime flavour, the
//! listing, and `DB_AUTO_MIGRATE` at start-up (including a failure there).

mod common;

use common::TestDb;
use pronghorn_db::migrate::{self, MigrationEvent, RevertSteps};
use pronghorn_db::{connect, HealthStore};
use std::sync::{Arc, Mutex};

/// How many migrations this build embeds (the template's 18 and this crate's additions).
fn total() -> usize {
    use diesel::migration::MigrationSource;
    MigrationSource::<diesel::pg::Pg>::migrations(&migrate::MIGRATIONS)
        .expect("embedded migrations")
        .len()
}

async fn applied_count(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM __diesel_schema_migrations", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "current_thread")]
async fn migrations_run_on_a_current_thread_runtime() {
    let db = TestDb::empty().await;
    let store = db.store().await;
    let applied = migrate::run_pending(&store).await.expect("migrations run");
    assert_eq!(applied.len(), total());
    assert!(total() >= 18);
    assert_eq!(applied[0], "2024-01-01-000001_create_users_table");
    assert_eq!(applied[17], "2024-01-01-000018_create_user_audit_log_table");
    assert_eq!(applied_count(&db).await as usize, total());
    assert!(migrate::run_pending(&store)
        .await
        .expect("again")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_on_a_multi_thread_runtime_and_report_progress() {
    let db = TestDb::empty().await;
    let store = db.store().await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let applied = migrate::run_pending_with(
        &store,
        Box::new(move |e| sink.lock().expect("events").push(e.clone())),
    )
    .await
    .expect("migrations run");
    assert_eq!(applied.len(), total());
    let events = events.lock().expect("events").clone();
    assert_eq!(events.len(), total());
    assert_eq!(
        events[17],
        MigrationEvent::Applied("2024-01-01-000018_create_user_audit_log_table".into())
    );

    let listed = migrate::list(&store).await.expect("list");
    assert_eq!(listed.len(), total());
    assert!(listed.iter().all(|m| m.applied));
    assert_eq!(listed[0].version, "20240101000001");

    let reverted = migrate::revert(&store, RevertSteps::All, Box::new(|_| {}))
        .await
        .expect("revert all");
    assert_eq!(reverted.len(), total());
    assert_eq!(
        reverted[total() - 18],
        "2024-01-01-000018_create_user_audit_log_table"
    );
    assert!(migrate::list(&store)
        .await
        .expect("list")
        .iter()
        .all(|m| !m.applied));
}

#[tokio::test]
async fn list_on_an_empty_database_creates_nothing() {
    let db = TestDb::empty().await;
    let store = db.store().await;
    let listed = migrate::list(&store).await.expect("list");
    assert_eq!(listed.iter().filter(|m| !m.applied).count(), total());
    let tables: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(tables, 0, "listing must not create the migrations table");
}

#[tokio::test]
async fn auto_migrate_applies_pending_migrations_at_start() {
    let db = TestDb::empty().await;
    let config = pronghorn_db::DbConfig::from_lookup(|k| match k {
        "DB_CONNECTION_STRING" => Some(db.url()),
        "DB_AUTO_MIGRATE" => Some("true".into()),
        _ => None,
    });
    let Ok(pronghorn_db::Configuration::Configured(config)) = config else {
        panic!("configured")
    };
    let store = connect(*config).await.expect("store");
    assert_eq!(applied_count(&db).await as usize, total());
    assert!(store.is_connected());
}

#[tokio::test]
async fn a_failing_auto_migrate_is_logged_and_the_store_still_starts() {
    let db = TestDb::empty().await;
    // A `users` table of another shape makes the first migration's index fail.
    db.client()
        .await
        .batch_execute("CREATE TABLE users (id integer PRIMARY KEY)")
        .await
        .expect("conflicting table");
    let config = pronghorn_db::DbConfig::from_lookup(|k| match k {
        "DB_CONNECTION_STRING" => Some(db.url()),
        "DB_AUTO_MIGRATE" => Some("1".into()),
        _ => None,
    });
    let Ok(pronghorn_db::Configuration::Configured(config)) = config else {
        panic!("configured")
    };
    let store = connect(*config).await.expect("the store starts anyway");
    assert!(store.server_info().await.is_ok());
    assert_eq!(
        applied_count(&db).await,
        0,
        "the failed migration was rolled back"
    );

    let err = migrate::run_pending(&store).await.expect_err("fails again");
    match err {
        pronghorn_db::Error::Migration(m) => {
            assert!(
                m.starts_with("2024-01-01-000001_create_users_table: "),
                "{m}"
            )
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
}
