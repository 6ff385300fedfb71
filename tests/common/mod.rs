//! Test harness: every test gets its own database, cloned from a template
//! database that holds the migrated schema.
//!
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! is an admin connection. The template is named after a fingerprint of the
//! embedded migrations, built once under an advisory lock (so parallel test
//! processes build it once), and rebuilt when the migrations change.

#![allow(dead_code)]

pub mod cluster;
pub mod netns;

use pronghorn_db::{Configuration, DbConfig, PgStore, PoolSettings};
use std::time::Duration;

pub use pronghorn_db::testing::{admin_url, test_pool};

/// The admin configuration, parsed by the crate's own rules.
pub fn admin_config() -> DbConfig {
    let url = admin_url();
    match DbConfig::from_lookup(|k| (k == "DB_CONNECTION_STRING").then(|| url.clone())) {
        Ok(Configuration::Configured(c)) => *c,
        other => panic!("TEST_DATABASE_URL is not a usable connection string: {other:?}"),
    }
}

/// The configuration `vars` give (name, value); panics unless it is
/// configured.
pub fn configured(vars: &[(&str, &str)]) -> DbConfig {
    match DbConfig::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    }) {
        Ok(Configuration::Configured(c)) => *c,
        other => panic!("expected a configuration: {other:?}"),
    }
}

/// A store whose server does not exist: any query would fail with
/// `Unavailable`, so a `Validation` error from it proves the input was
/// refused before a query was tried.
pub async fn store_without_server() -> PgStore {
    let config = configured(&[
        (
            "DB_CONNECTION_STRING",
            "postgres://postgres@127.0.0.1:9/none",
        ),
        ("DB_SSL", "false"),
    ]);
    PgStore::new(config.with_pool(PoolSettings {
        min_idle: 0,
        max_size: 1,
        idle_timeout: Duration::from_secs(30),
        connection_timeout: Duration::from_millis(300),
    }))
    .await
    .expect("store")
}

/// The plan `sql` gets with sequential scans forbidden (so that a usable
/// index shows even on a small table), as one text.
pub async fn forced_plan(client: &tokio_postgres::Client, sql: &str) -> String {
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .expect("set");
    let lines: Vec<String> = client
        .query(&format!("EXPLAIN {sql}"), &[])
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get(0))
        .collect();
    lines.join("\n")
}

/// A plain admin connection (no TLS), for creating and dropping databases.
pub async fn admin_client() -> tokio_postgres::Client {
    let url = admin_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to TEST_DATABASE_URL: {e}"));
    tokio::spawn(conn);
    client
}

/// A database of its own for one test, dropped when the value is dropped:
/// the crate's `testing` support, with the crate's migrations folder
/// watched so that an edited migration rebuilds the template.
pub struct TestDb(pronghorn_db::testing::TestDb);

impl TestDb {
    /// A fresh database holding the migrated schema.
    pub async fn migrated() -> TestDb {
        let template = pronghorn_db::testing::Template::new(pronghorn_db::migrate::CRATE_ONLY)
            .watching(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"));
        TestDb(template.database().await.expect("a migrated test database"))
    }

    /// A fresh, empty database (no migrations applied).
    pub async fn empty() -> TestDb {
        TestDb(
            pronghorn_db::testing::TestDb::empty()
                .await
                .expect("an empty test database"),
        )
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// The configuration for this database (the admin URL's server and user).
    pub fn config(&self) -> DbConfig {
        admin_config()
            .with_dbname(self.0.name())
            .with_pool(test_pool())
    }

    /// A libpq-style URL for this database (for the CLI and psql).
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// A store on this database.
    pub async fn store(&self) -> PgStore {
        PgStore::new(self.config()).await.expect("store")
    }

    /// A store of one connection on this database, so that every call
    /// shares that connection's prepared statements.
    pub async fn one_connection_store(&self) -> PgStore {
        PgStore::new(self.config().with_pool(PoolSettings {
            min_idle: 1,
            max_size: 1,
            idle_timeout: Duration::from_secs(30),
            connection_timeout: Duration::from_secs(5),
        }))
        .await
        .expect("store")
    }

    /// A plain client on this database, for checking what the store did.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }
}

/// Waits until `n` sessions of the client's database wait for a lock (as
/// `pg_stat_activity` shows), so that a test knows a call is blocked
/// instead of guessing from a sleep. Panics after about 5 s.
pub async fn until_waiting(client: &tokio_postgres::Client, n: i64) {
    for _ in 0..500 {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if waiting >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never waited for a lock");
}

/// Runs the `pronghorn-db` binary against `url` with a clean environment
/// (only `PATH` and `DB_CONNECTION_STRING`); returns its exit code, stdout
/// and stderr. For test binaries that require the `cli` feature (which
/// builds the binary).
pub fn run_cli(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let Some(bin) = option_env!("CARGO_BIN_EXE_pronghorn-db") else {
        panic!("this test binary must require the `cli` feature, which builds pronghorn-db");
    };
    let out = std::process::Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DB_CONNECTION_STRING", url)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .args(args)
        .output()
        .expect("run pronghorn-db");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
