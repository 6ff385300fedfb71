//! Test harness: every test gets its own database, cloned from a template
//! database that holds the migrated schema.
//!
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! is an admin connection. The template is named after a fingerprint of the
//! embedded migrations, built once under an advisory lock (so parallel test
//! processes build it once), and rebuilt when the migrations change.

#![allow(dead_code)]

pub mod cluster;

use pronghorn_db::{Configuration, DbConfig, PgStore, PoolSettings};
use std::time::Duration;

/// The admin URL the tests use.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

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

fn fingerprint() -> String {
    use diesel::migration::MigrationSource;
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let migrations =
        MigrationSource::<diesel::pg::Pg>::migrations(&pronghorn_db::migrate::MIGRATIONS)
            .expect("embedded migrations");
    for m in migrations {
        m.name().to_string().hash(&mut hasher);
    }
    // The SQL text is part of the fingerprint through the source files.
    for entry in walk("migrations") {
        entry.hash(&mut hasher);
        std::fs::read(&entry).unwrap_or_default().hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

fn walk(dir: &str) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.to_string_lossy().into_owned());
                }
            }
        }
    }
    out.sort();
    out
}

/// Pool settings for tests: small, with a short connection timeout.
pub fn test_pool() -> PoolSettings {
    PoolSettings {
        min_idle: 1,
        max_size: 8,
        idle_timeout: Duration::from_secs(30),
        connection_timeout: Duration::from_secs(5),
    }
}

const TEMPLATE_LOCK: i64 = 0x7465_7374_746d_706c;

/// Makes sure the migrated template database exists; returns its name.
async fn template(admin: &tokio_postgres::Client) -> String {
    let name = format!("pronghorn_tpl_{}", fingerprint());
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
        .await
        .expect("template lock");
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("pg_database")
        .is_some();
    if !exists {
        // Older templates (other fingerprints) are dropped as they go stale.
        let old = admin
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'pronghorn_tpl_%'",
                &[],
            )
            .await
            .expect("list templates");
        for row in old {
            let old: String = row.get(0);
            let _ = admin
                .batch_execute(&format!(
                    "ALTER DATABASE \"{old}\" WITH IS_TEMPLATE false; DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"
                ))
                .await;
        }
        let building = format!("{name}_building");
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
            ))
            .await
            .expect("drop stale build");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{building}\""))
            .await
            .expect("create template");
        let store = PgStore::new(admin_config().with_dbname(&building).with_pool(test_pool()))
            .await
            .expect("template store");
        pronghorn_db::migrate::run_pending(&store)
            .await
            .expect("migrating the template");
        pronghorn_db::HealthStore::close(&store).await;
        drop(store);
        // The closed pool's sessions may still be ending; a rename and a
        // clone both need the database to have none.
        let finish = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{building}'; \
             ALTER DATABASE \"{building}\" RENAME TO \"{name}\"; \
             ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
        );
        let mut tries = 0;
        while let Err(e) = admin.batch_execute(&finish).await {
            tries += 1;
            assert!(tries < 50, "cannot finish the template database: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
        .await
        .expect("template unlock");
    name
}

/// A database of its own for one test, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// A fresh database holding the migrated schema.
    pub async fn migrated() -> TestDb {
        let admin = admin_client().await;
        let tpl = template(&admin).await;
        Self::create(&admin, Some(&tpl)).await
    }

    /// A fresh, empty database (no migrations applied).
    pub async fn empty() -> TestDb {
        let admin = admin_client().await;
        Self::create(&admin, None).await
    }

    async fn create(admin: &tokio_postgres::Client, template: Option<&str>) -> TestDb {
        let name = format!("pronghorn_test_{}", uuid::Uuid::new_v4().simple());
        let sql = match template {
            Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        admin
            .batch_execute(&sql)
            .await
            .expect("create test database");
        TestDb { name }
    }

    /// The configuration for this database (the admin URL's server and user).
    pub fn config(&self) -> DbConfig {
        admin_config()
            .with_dbname(&self.name)
            .with_pool(test_pool())
    }

    /// A libpq-style URL for this database (for the CLI and psql).
    pub fn url(&self) -> String {
        let admin = admin_url();
        let base = admin.split('?').next().unwrap_or(&admin);
        let cut = base
            .rfind('/')
            .filter(|&i| i > "postgres://".len())
            .unwrap_or(base.len());
        format!("{}/{}", &base[..cut], self.name)
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

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
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
