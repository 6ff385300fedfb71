//! Test support for applications (feature `testing`): a fresh database per
//! test, cloned from a template database that holds the crate's migrations
//! and the application's, and dropped when the test ends.
//!
//! The template is built once per fingerprint (the migrations' names, and
//! the files of any folder given to [`Template::watching`]), under an
//! advisory lock, so parallel tests and test binaries build it once; a
//! template of an older fingerprint is dropped when a new one is built.
//! Each test then costs one `CREATE DATABASE ... TEMPLATE`, a file copy on
//! the server.
//!
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names an admin connection that may create and drop databases.
//!
//! ```no_run
//! # async fn demo() -> pronghorn_db::Result<()> {
//! use pronghorn_db::migrate::MIGRATIONS;
//! use pronghorn_db::testing::Template;
//!
//! // In the application: `const APP: EmbeddedMigrations = embed_migrations!();`
//! let template = Template::new(&[&MIGRATIONS])
//!     .watching(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"));
//! let db = template.database().await?; // dropped at the end of the test
//! let store = db.store().await?;
//! # Ok(()) }
//! ```

use crate::config::{Configuration, DbConfig, PoolSettings};
use crate::error::{Error, Result};
use crate::migrate::{self, MigrationSet};
use crate::store::{HealthStore, PgStore};
use diesel::migration::MigrationSource;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How template databases' names start.
const TEMPLATE_PREFIX: &str = "pronghorn_tpl_";

/// The advisory lock taken while a template is built ("testtmpl").
const TEMPLATE_LOCK: i64 = 0x7465_7374_746d_706c;

/// The admin connection's URL: `TEST_DATABASE_URL`, or the local default.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
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

fn setup_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("test database: {what}: {e}"))
}

/// The server's own message, which `tokio_postgres::Error`'s `Display`
/// ("db error") leaves out.
fn server_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_owned())
}

async fn admin_client() -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .map_err(|e| setup_error("cannot connect to TEST_DATABASE_URL", server_message(&e)))?;
    tokio::spawn(conn);
    Ok(client)
}

/// The admin URL with its database replaced by `dbname` (query kept).
fn url_of(dbname: &str) -> String {
    let admin = admin_url();
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), ""), |(b, q)| (b, q));
    let cut = base
        .rfind('/')
        .filter(|&i| i > "postgres://".len())
        .unwrap_or(base.len());
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{dbname}{query}", &base[..cut])
}

/// The configuration for `dbname` on the admin connection's server.
fn config_of(dbname: &str) -> Result<DbConfig> {
    let url = url_of(dbname);
    match DbConfig::from_lookup(|k| (k == "DB_CONNECTION_STRING").then(|| url.clone()))? {
        Configuration::Configured(c) => Ok(c.with_pool(test_pool())),
        Configuration::NotConfigured { reason } => {
            Err(setup_error("TEST_DATABASE_URL is not usable", reason))
        }
    }
}

/// What test databases are cloned from: the migration sets, applied in
/// one history as [`migrate::run_pending_sets`] applies them.
#[derive(Clone)]
pub struct Template {
    sets: Vec<MigrationSet>,
    watched: Vec<PathBuf>,
}

impl Template {
    /// A template holding `sets` (for example the crate's
    /// [`migrate::MIGRATIONS`] and the application's own).
    pub fn new(sets: &[MigrationSet]) -> Template {
        Template {
            sets: sets.to_vec(),
            watched: Vec::new(),
        }
    }

    /// Also rebuilds the template when a file under `dir` changes (the
    /// application's `migrations/`): the migrations' names alone miss an
    /// edit to a migration that keeps its name.
    pub fn watching(mut self, dir: impl Into<PathBuf>) -> Template {
        self.watched.push(dir.into());
        self
    }

    /// The template's name: `pronghorn_tpl_<family>_<content>`. The family
    /// (the sets' first migrations and the watched folders) stays the same
    /// as migrations are added or edited, so that a new build replaces the
    /// family's older templates and leaves other families' alone; the
    /// content hash changes with every migration name and watched file.
    fn name(&self) -> Result<String> {
        let mut family = std::collections::hash_map::DefaultHasher::new();
        let mut content = std::collections::hash_map::DefaultHasher::new();
        env!("CARGO_PKG_VERSION").hash(&mut content);
        for set in &self.sets {
            let migrations = MigrationSource::<diesel::pg::Pg>::migrations(*set)
                .map_err(|e| setup_error("reading the migrations", e))?;
            let mut names: Vec<String> = migrations.iter().map(|m| m.name().to_string()).collect();
            names.sort();
            names.first().hash(&mut family);
            names.hash(&mut content);
        }
        for dir in &self.watched {
            dir.hash(&mut family);
            for file in files_under(dir) {
                file.hash(&mut content);
                std::fs::read(&file).unwrap_or_default().hash(&mut content);
            }
        }
        Ok(format!(
            "{TEMPLATE_PREFIX}{:016x}_{:016x}",
            family.finish(),
            content.finish()
        ))
    }

    /// Makes sure the migrated template exists; returns its name.
    async fn ensure(&self, admin: &tokio_postgres::Client) -> Result<String> {
        let name = self.name()?;
        admin
            .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
            .await
            .map_err(|e| setup_error("template lock", server_message(&e)))?;
        let built = self.build_unless_there(admin, &name).await;
        let unlocked = admin
            .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
            .await
            .map_err(|e| setup_error("template unlock", server_message(&e)));
        built?;
        unlocked?;
        Ok(name)
    }

    async fn build_unless_there(&self, admin: &tokio_postgres::Client, name: &str) -> Result<()> {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(|e| setup_error("pg_database", server_message(&e)))?
            .is_some();
        if exists {
            return Ok(());
        }
        // The family's older templates are dropped as they go stale.
        let family = &name[..name.len() - 16];
        let old = admin
            .query(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND datname <> $2",
                &[&family, &name],
            )
            .await
            .map_err(|e| setup_error("listing templates", server_message(&e)))?;
        for row in old {
            let old: String = row.get(0);
            // Best effort, and two statements: DROP DATABASE cannot share
            // a batch's implicit transaction.
            let _ = admin
                .batch_execute(&format!("ALTER DATABASE \"{old}\" WITH IS_TEMPLATE false"))
                .await;
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"))
                .await;
        }
        let building = format!("{name}_building");
        // Two statements: CREATE DATABASE cannot share a batch's implicit
        // transaction.
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
            ))
            .await
            .map_err(|e| setup_error("dropping a half-built template", server_message(&e)))?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{building}\""))
            .await
            .map_err(|e| setup_error("creating the template", server_message(&e)))?;
        let store = PgStore::new(config_of(&building)?).await?;
        migrate::run_pending_sets(&store, &self.sets, Box::new(|_| {})).await?;
        store.close().await;
        drop(store);
        // The closed pool's sessions may still be ending; a rename and a
        // clone both need the database to have none.
        let finish = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{building}'; \
             ALTER DATABASE \"{building}\" RENAME TO \"{name}\"; \
             ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
        );
        let mut tries = 0;
        loop {
            match admin.batch_execute(&finish).await {
                Ok(()) => return Ok(()),
                Err(e) if tries >= 50 => {
                    return Err(setup_error("finishing the template", server_message(&e)))
                }
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A fresh database for one test, cloned from this template (built
    /// first when it does not exist yet). Dropped with the value.
    ///
    /// Fails with [`Error::Internal`] when the admin connection or a
    /// statement fails, or as [`migrate::run_pending_sets`] fails while the
    /// template is built.
    pub async fn database(&self) -> Result<TestDb> {
        let admin = admin_client().await?;
        let template = self.ensure(&admin).await?;
        TestDb::create(&admin, Some(&template)).await
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    out
}

/// A database of its own for one test, dropped (with `FORCE`) when the
/// value is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
}

impl TestDb {
    /// A fresh, empty database (no migration applied).
    ///
    /// Fails with [`Error::Internal`] when the admin connection fails.
    pub async fn empty() -> Result<TestDb> {
        let admin = admin_client().await?;
        TestDb::create(&admin, None).await
    }

    async fn create(admin: &tokio_postgres::Client, template: Option<&str>) -> Result<TestDb> {
        let name = format!("pronghorn_test_{}", uuid::Uuid::new_v4().simple());
        let sql = match template {
            Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        admin
            .batch_execute(&sql)
            .await
            .map_err(|e| setup_error("creating the test database", server_message(&e)))?;
        Ok(TestDb { name })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for this database (for the diesel CLI, psql or a child
    /// process).
    pub fn url(&self) -> String {
        url_of(&self.name)
    }

    /// The configuration for this database, with a small test pool.
    ///
    /// Fails with [`Error::Config`] or [`Error::Internal`] when
    /// `TEST_DATABASE_URL` is not a usable connection string.
    pub fn config(&self) -> Result<DbConfig> {
        config_of(&self.name)
    }

    /// A store on this database.
    ///
    /// Fails as [`TestDb::config`] does, or with [`Error::Config`] when
    /// the TLS settings cannot be built or the pool settings are unusable.
    pub async fn store(&self) -> Result<PgStore> {
        PgStore::new(self.config()?).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context: a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = admin_client().await {
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
