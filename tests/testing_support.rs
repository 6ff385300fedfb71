//! The `testing` feature as an application uses it: a database per test,
//! cloned from a template that holds the crate's migrations and the
//! application's, built once per fingerprint and dropped with the value.

mod common;

use pronghorn_db::migrate::MIGRATIONS;
use pronghorn_db::testing::Template;

/// The application's migrations (`notes`, then `notes.pinned`).
const APP: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("tests/fixtures/app_migrations");

async fn databases_like(pattern: &str) -> Vec<String> {
    common::admin_client()
        .await
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
            &[&pattern],
        )
        .await
        .expect("pg_database")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn tables(url: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn each_test_gets_its_own_database_with_both_sets_and_leaves_none_behind() {
    // A folder of its own to watch, so that this family of templates is
    // this test's alone.
    let watched =
        std::env::temp_dir().join(format!("pronghorn-watch-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&watched).expect("folder");
    std::fs::write(watched.join("v.sql"), "-- one").expect("file");
    let template = Template::new(&[&MIGRATIONS, &APP]).watching(&watched);

    let first = template.database().await.expect("first");
    let second = template.database().await.expect("second");
    assert_ne!(first.name(), second.name());
    let in_first = tables(&first.url()).await;
    for table in ["notes", "users", "session", "__diesel_schema_migrations"] {
        assert!(
            in_first.contains(&table.to_owned()),
            "{table}: {in_first:?}"
        );
    }
    let store = second.store().await.expect("store");
    assert_eq!(
        pronghorn_db::migrate::list_sets(&store, &[&MIGRATIONS, &APP])
            .await
            .expect("list")
            .iter()
            .filter(|m| !m.applied)
            .count(),
        0
    );
    drop(store);

    // Dropping the value drops the database.
    let name = first.name().to_owned();
    drop(first);
    assert_eq!(databases_like(&name).await, Vec::<String>::new());

    // The template was built once; an edit to a watched file builds a new
    // one and drops the family's old one.
    let before: Vec<String> = databases_like("pronghorn\\_tpl\\_%").await;
    std::fs::write(watched.join("v.sql"), "-- two").expect("edit");
    let third = template.database().await.expect("third");
    let after: Vec<String> = databases_like("pronghorn\\_tpl\\_%").await;
    let gone: Vec<&String> = before.iter().filter(|t| !after.contains(t)).collect();
    let new: Vec<&String> = after.iter().filter(|t| !before.contains(t)).collect();
    assert_eq!(
        (gone.len(), new.len()),
        (1, 1),
        "before {before:?}, after {after:?}"
    );
    assert!(tables(&third.url()).await.contains(&"notes".to_owned()));
    drop(third);
    drop(second);
    let _ = std::fs::remove_dir_all(&watched);
}
