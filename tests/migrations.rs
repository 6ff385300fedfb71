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

/// An application's own migrations (a `notes` table referencing `users`,
/// then a column added to it), embedded as a dependent app embeds its set.
/// The first version falls between two of the crate's; the second is newer
/// than all of them.
const APP: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("tests/fixtures/app_migrations");

async fn has_table(db: &TestDb, name: &str) -> bool {
    db.client()
        .await
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .expect("to_regclass")
        .get(0)
}

#[tokio::test]
async fn an_apps_migrations_share_the_crates_history() {
    let db = TestDb::empty().await;
    let store = db.store().await;
    let sets: &[migrate::MigrationSet] = &[&migrate::MIGRATIONS, &APP];

    // Applied together, in version order: the app's between the crate's.
    let applied = migrate::run_pending_sets(&store, sets, Box::new(|_| {}))
        .await
        .expect("run both sets");
    assert_eq!(applied.len(), total() + 2);
    let mut sorted = applied.clone();
    sorted.sort();
    assert_eq!(applied, sorted, "version order across the sets");
    let at = applied
        .iter()
        .position(|n| n == "2026-12-01-000001_create_notes")
        .expect("the app's migration ran");
    assert!(at > 0 && at < applied.len() - 2, "{applied:?}");
    assert_eq!(
        applied.last().map(String::as_str),
        Some("2099-12-31-000001_add_notes_pinned")
    );
    assert!(has_table(&db, "notes").await);

    // The crate's listing sees its own set, all applied, and does not
    // trip over the app's version; the combined listing has both.
    let crate_only = migrate::list(&store).await.expect("list");
    assert_eq!(crate_only.len(), total());
    assert!(crate_only.iter().all(|m| m.applied));
    let both = migrate::list_sets(&store, sets).await.expect("list both");
    assert_eq!(both.len(), total() + 2);

    // The binary, which knows only the crate's set, reverts the crate's
    // newest although the app's is newer, and lists only its own.
    let url = db.url();
    let (code, out, err) = common::run_cli(&url, &["migrate", "revert"]);
    let said = out + &err;
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&crate_only.last().expect("newest").name),
        "{said}"
    );
    assert!(!said.contains("add_notes_pinned"), "{said}");
    let (code, _, _) = common::run_cli(&url, &["migrate", "run"]);
    assert_eq!(code, Some(0));
    let (code, listed, _) = common::run_cli(&url, &["migrate", "list"]);
    assert_eq!(code, Some(0), "{listed}");
    assert!(!listed.contains("notes"), "{listed}");

    // Reverting the crate's newest skips nothing of its own and leaves the
    // app's migration applied; redo likewise.
    let newest_crate = crate_only.last().expect("newest").name.clone();
    let reverted = migrate::revert(&store, RevertSteps::Steps(1), Box::new(|_| {}))
        .await
        .expect("revert the crate's newest");
    assert_eq!(reverted, std::slice::from_ref(&newest_crate));
    assert!(has_table(&db, "notes").await);
    migrate::run_pending(&store).await.expect("re-apply");
    assert_eq!(
        migrate::redo(&store, Box::new(|_| {})).await.expect("redo"),
        Some(newest_crate)
    );

    // The app reverts only its own.
    let reverted = migrate::revert_set(&store, &APP, RevertSteps::All, Box::new(|_| {}))
        .await
        .expect("revert the app's set");
    assert_eq!(
        reverted,
        [
            "2099-12-31-000001_add_notes_pinned",
            "2026-12-01-000001_create_notes"
        ]
    );
    assert!(!has_table(&db, "notes").await);
    assert!(has_table(&db, "users").await);
    assert_eq!(applied_count(&db).await, total() as i64);

    // Two sets holding one version cannot share a history.
    let clash: &[migrate::MigrationSet] = &[&APP, &APP];
    match migrate::run_pending_sets(&store, clash, Box::new(|_| {})).await {
        Err(pronghorn_db::Error::Migration(m)) => assert!(
            m.contains("have the same version; one history cannot hold both"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_repair_migration_leaves_views_with_the_template_types_and_their_grants_alone() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    // A role of the Node app's, granted the view as a template database may
    // have it (roles are cluster-wide: one name per test database).
    let role = format!(
        "node_reader_{}",
        db.name().trim_start_matches("pronghorn_test_")
    );
    client
        .batch_execute(&format!(
            "CREATE ROLE {role}; GRANT SELECT ON active_websocket_connections TO {role}"
        ))
        .await
        .expect("grant");
    let oid_before: u32 = client
        .query_one("SELECT 'active_websocket_connections'::regclass::oid", &[])
        .await
        .expect("oid")
        .get(0);

    // Back to before the repair, then forward again: it runs on views that
    // already have the template's types.
    let names = migrate::list(&store).await.expect("list");
    let repair_at = names
        .iter()
        .position(|m| {
            m.name
                .contains("repair_role_function_arguments_and_view_types")
        })
        .expect("the repair migration");
    let steps = names.len() - repair_at;
    let reverted = migrate::revert(&store, RevertSteps::Steps(steps), Box::new(|_| {}))
        .await
        .expect("revert");
    assert_eq!(reverted.len(), steps);
    migrate::run_pending(&store).await.expect("forward again");

    let row = client
        .query_one(
            "SELECT 'active_websocket_connections'::regclass::oid, \
                    has_table_privilege($1, 'active_websocket_connections', 'SELECT')",
            &[&role],
        )
        .await
        .expect("after");
    let (oid_after, granted): (u32, bool) = (row.get(0), row.get(1));
    assert_eq!(
        oid_after, oid_before,
        "the view was not dropped and made again"
    );
    assert!(granted, "the grant survived");
    client
        .batch_execute(&format!(
            "REVOKE ALL ON active_websocket_connections FROM {role}; DROP ROLE {role}"
        ))
        .await
        .expect("clean up the role");
}
