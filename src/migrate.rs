//! Embedded migrations: run, revert, redo and list, under a PostgreSQL
//! advisory lock so that concurrent migrators apply each migration once.
//!
//! Diesel's migration harness is synchronous, so it runs on an
//! `AsyncConnectionWrapper` inside `spawn_blocking`: that works on every
//! Tokio runtime flavour, unlike a harness that uses `block_in_place`.

use crate::error::{Error, Result};
use crate::store::PgStore;
use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The crate's migrations, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The advisory lock key every migrator of this crate takes ("pronghor" in ASCII).
pub const LOCK_KEY: i64 = 0x7072_6f6e_6768_6f72;

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationState {
    /// The version (the folder name's leading digits), e.g. `20240101000001`.
    pub version: String,
    /// The full folder name, e.g. `2024-01-01-000001_create_users_table`.
    pub name: String,
    /// Whether the database records it as applied.
    pub applied: bool,
}

/// What a migration run did to one migration, reported as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationEvent {
    /// The migration was applied.
    Applied(String),
    /// The migration was reverted.
    Reverted(String),
}

/// How many migrations [`revert`] undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertSteps {
    /// The newest `n` applied migrations.
    Steps(usize),
    /// Every applied migration.
    All,
}

type Progress = Box<dyn FnMut(&MigrationEvent) + Send>;

fn migration_error(e: impl std::fmt::Display) -> Error {
    Error::Migration(e.to_string())
}

/// Runs `job` on a dedicated connection (not taken from the pool's slots),
/// off the async workers, holding the advisory lock.
async fn locked<T, F>(store: &PgStore, job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut SyncConn) -> Result<T> + Send + 'static,
{
    let pool = store.pool()?;
    let conn = pool
        .dedicated_connection()
        .await
        .map_err(|e| Error::Unavailable {
            target: store.target_string(),
            reason: e.to_string(),
        })?;
    let handle = tokio::task::spawn_blocking(move || {
        let mut conn = SyncConn::from(conn);
        conn.batch_execute(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))
            .map_err(Error::from)?;
        let result = job(&mut conn);
        // The lock also ends with the session; unlocking here keeps a
        // long-lived connection from holding it.
        let unlocked = conn
            .batch_execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
            .map_err(Error::from);
        let value = result?;
        unlocked?;
        Ok(value)
    });
    let result = handle
        .await
        .map_err(|e| Error::Migration(format!("the migration task failed: {e}")))?;
    store.settle(result)
}

fn all_migrations() -> Result<Vec<Box<dyn Migration<Pg>>>> {
    MigrationSource::<Pg>::migrations(&MIGRATIONS).map_err(migration_error)
}

fn find<'a>(
    all: &'a [Box<dyn Migration<Pg>>],
    version: &diesel::migration::MigrationVersion<'_>,
) -> Result<&'a dyn Migration<Pg>> {
    all.iter()
        .find(|m| m.name().version() == *version)
        .map(|m| &**m)
        .ok_or_else(|| {
            Error::Migration(format!(
                "applied migration {version} is not one of this build's migrations"
            ))
        })
}

/// Applies every pending migration, oldest first, calling `progress` after
/// each. Returns the names applied (empty when none was pending).
///
/// Fails with [`Error::Migration`] naming the migration that failed (the
/// ones before it stay applied), or [`Error::Unavailable`].
pub async fn run_pending_with(store: &PgStore, mut progress: Progress) -> Result<Vec<String>> {
    locked(store, move |conn| {
        let pending = conn
            .pending_migrations(MIGRATIONS)
            .map_err(migration_error)?;
        let mut applied = Vec::new();
        for m in pending {
            let name = m.name().to_string();
            conn.run_migration(&*m)
                .map_err(|e| Error::Migration(format!("{name}: {e}")))?;
            progress(&MigrationEvent::Applied(name.clone()));
            applied.push(name);
        }
        Ok(applied)
    })
    .await
}

/// [`run_pending_with`] without progress reports.
pub async fn run_pending(store: &PgStore) -> Result<Vec<String>> {
    run_pending_with(store, Box::new(|_| {})).await
}

/// Reverts the newest applied migrations, newest first, calling `progress`
/// after each. Returns the names reverted.
///
/// Fails with [`Error::Migration`] when a `down.sql` fails or an applied
/// version is not among the embedded migrations.
pub async fn revert(
    store: &PgStore,
    steps: RevertSteps,
    mut progress: Progress,
) -> Result<Vec<String>> {
    locked(store, move |conn| {
        let all = all_migrations()?;
        let mut reverted = Vec::new();
        loop {
            if let RevertSteps::Steps(n) = steps {
                if reverted.len() >= n {
                    break;
                }
            }
            let applied = conn.applied_migrations().map_err(migration_error)?;
            let Some(newest) = applied.first() else { break };
            let m = find(&all, newest)?;
            let name = m.name().to_string();
            conn.revert_migration(m)
                .map_err(|e| Error::Migration(format!("{name}: {e}")))?;
            progress(&MigrationEvent::Reverted(name.clone()));
            reverted.push(name);
        }
        Ok(reverted)
    })
    .await
}

/// Reverts the newest applied migration and applies it again, in one
/// locked session. Returns its name, or `None` when nothing is applied.
///
/// Fails as [`revert`] and [`run_pending_with`] do.
pub async fn redo(store: &PgStore, mut progress: Progress) -> Result<Option<String>> {
    locked(store, move |conn| {
        let all = all_migrations()?;
        let applied = conn.applied_migrations().map_err(migration_error)?;
        let Some(newest) = applied.first() else {
            return Ok(None);
        };
        let m = find(&all, newest)?;
        let name = m.name().to_string();
        conn.revert_migration(m)
            .map_err(|e| Error::Migration(format!("{name}: {e}")))?;
        progress(&MigrationEvent::Reverted(name.clone()));
        conn.run_migration(m)
            .map_err(|e| Error::Migration(format!("{name}: {e}")))?;
        progress(&MigrationEvent::Applied(name.clone()));
        Ok(Some(name))
    })
    .await
}

#[derive(diesel::QueryableByName)]
struct AppliedRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Every embedded migration, oldest first, with whether it is applied.
///
/// Reads only: it takes no lock and creates nothing, so it suits health
/// probes. Fails with [`Error::Unavailable`] or [`Error::Migration`].
pub async fn list(store: &PgStore) -> Result<Vec<MigrationState>> {
    use diesel_async::RunQueryDsl;
    let mut conn = store.conn().await?;
    let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
        "to_regclass('__diesel_schema_migrations') IS NOT NULL",
    ))
    .get_result(&mut *conn)
    .await
    .map_err(|e| store.settle_err(e.into()))?;
    let applied: Vec<String> = if exists {
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<AppliedRow>(&mut *conn)
            .await
            .map_err(|e| store.settle_err(e.into()))?
            .into_iter()
            .map(|r| r.version)
            .collect()
    } else {
        Vec::new()
    };
    let mut all = all_migrations()?;
    all.sort_by(|a, b| a.name().version().cmp(&b.name().version()));
    Ok(all
        .iter()
        .map(|m| {
            let version = m.name().version().to_string();
            MigrationState {
                applied: applied.contains(&version),
                name: m.name().to_string(),
                version,
            }
        })
        .collect())
}
