//! Embedded migrations: run, revert, redo and list, under a PostgreSQL
//! advisory lock so that concurrent migrators apply each migration once.
//!
//! Diesel's migration harness is synchronous, so it runs on an
//! `AsyncConnectionWrapper` inside `spawn_blocking`: that works on every
//! Tokio runtime flavour, unlike a harness that uses `block_in_place`.

use crate::error::{Error, Result};
use crate::pool::{DbPool, PooledConn};
use async_trait::async_trait;
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

/// What migrations run on: the primary server's pool. The crate's
/// [`PgStore`](crate::PgStore) is one (so is an `Arc` of one); the functions
/// of this module need nothing else of a store.
#[async_trait]
pub trait MigrationTarget: Send + Sync {
    /// The pool of connections to the primary server. Fails with
    /// [`Error::Unavailable`] once it is closed.
    fn primary_pool(&self) -> Result<DbPool>;

    /// A pooled connection to the primary, for reads. Fails with
    /// [`Error::Unavailable`].
    async fn primary_conn(&self) -> Result<PooledConn>;

    /// The server's address with its password redacted, for errors.
    fn redacted_target(&self) -> String;

    /// Lets the holder record what an error says about the server's health
    /// (a lost connection) and returns the error to report.
    fn settle_err(&self, err: Error) -> Error {
        err
    }
}

#[async_trait]
impl<T: MigrationTarget + ?Sized> MigrationTarget for std::sync::Arc<T> {
    fn primary_pool(&self) -> Result<DbPool> {
        (**self).primary_pool()
    }

    async fn primary_conn(&self) -> Result<PooledConn> {
        (**self).primary_conn().await
    }

    fn redacted_target(&self) -> String {
        (**self).redacted_target()
    }

    fn settle_err(&self, err: Error) -> Error {
        (**self).settle_err(err)
    }
}

fn migration_error(e: impl std::fmt::Display) -> Error {
    Error::Migration(e.to_string())
}

/// Runs `job` on a dedicated connection (not taken from the pool's slots),
/// off the async workers, holding the advisory lock.
async fn locked<T, F>(store: &(impl MigrationTarget + ?Sized), job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut SyncConn) -> Result<T> + Send + 'static,
{
    let pool = store.primary_pool()?;
    let conn = pool
        .dedicated_connection()
        .await
        .map_err(|e| Error::Unavailable {
            target: store.redacted_target(),
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
    result.map_err(|e| store.settle_err(e))
}

/// One application's embedded migrations beside the crate's: a set made
/// with `diesel_migrations::embed_migrations!` and kept in a `const` or
/// `static`.
pub type MigrationSet = &'static EmbeddedMigrations;

/// The crate's own set, alone.
pub const CRATE_ONLY: &[MigrationSet] = &[&MIGRATIONS];

fn migrations_of(set: MigrationSet) -> Result<Vec<Box<dyn Migration<Pg>>>> {
    MigrationSource::<Pg>::migrations(set).map_err(migration_error)
}

/// Every migration of `sets`, oldest first by version. Fails when two
/// sets hold the same version (they would share one history row).
fn migrations_of_all(sets: &[MigrationSet]) -> Result<Vec<Box<dyn Migration<Pg>>>> {
    let mut all = Vec::new();
    for set in sets {
        all.extend(migrations_of(set)?);
    }
    all.sort_by(|a, b| a.name().version().cmp(&b.name().version()));
    if let Some(pair) = all
        .windows(2)
        .find(|w| w[0].name().version() == w[1].name().version())
    {
        return Err(Error::Migration(format!(
            "{} and {} have the same version; one history cannot hold both",
            pair[0].name(),
            pair[1].name()
        )));
    }
    Ok(all)
}

/// Applies every pending migration of the crate's set, oldest first,
/// calling `progress` after each. Returns the names applied (empty when
/// none was pending).
///
/// Fails with [`Error::Migration`] naming the migration that failed (the
/// ones before it stay applied), or [`Error::Unavailable`].
pub async fn run_pending_with(
    store: &(impl MigrationTarget + ?Sized),
    progress: Progress,
) -> Result<Vec<String>> {
    run_pending_sets(store, CRATE_ONLY, progress).await
}

/// Applies every pending migration of `sets` (for example the crate's
/// [`MIGRATIONS`] and an application's own set) as one history: all of
/// them in version order, under the one advisory lock, calling `progress`
/// after each. Versions applied by sets not given here are left alone.
/// Returns the names applied.
///
/// Fails with [`Error::Migration`] naming the migration that failed (the
/// ones before it stay applied) or two migrations with one version, or
/// with [`Error::Unavailable`].
pub async fn run_pending_sets(
    store: &(impl MigrationTarget + ?Sized),
    sets: &[MigrationSet],
    mut progress: Progress,
) -> Result<Vec<String>> {
    let sets = sets.to_vec();
    locked(store, move |conn| {
        let all = migrations_of_all(&sets)?;
        let done = conn.applied_migrations().map_err(migration_error)?;
        let mut applied = Vec::new();
        for m in all.iter().filter(|m| !done.contains(&m.name().version())) {
            let name = m.name().to_string();
            conn.run_migration(&**m)
                .map_err(|e| Error::Migration(format!("{name}: {e}")))?;
            progress(&MigrationEvent::Applied(name.clone()));
            applied.push(name);
        }
        Ok(applied)
    })
    .await
}

/// [`run_pending_with`] without progress reports.
pub async fn run_pending(store: &(impl MigrationTarget + ?Sized)) -> Result<Vec<String>> {
    run_pending_with(store, Box::new(|_| {})).await
}

/// Reverts the newest applied migrations of the crate's set, newest first,
/// calling `progress` after each; versions applied by other sets (an
/// application's) are someone else's and stay. Returns the names reverted.
///
/// Fails with [`Error::Migration`] when a `down.sql` fails.
pub async fn revert(
    store: &(impl MigrationTarget + ?Sized),
    steps: RevertSteps,
    progress: Progress,
) -> Result<Vec<String>> {
    revert_set(store, &MIGRATIONS, steps, progress).await
}

/// Reverts the newest applied migrations of `set`, newest first, calling
/// `progress` after each. Versions applied by other sets are skipped, not
/// reverted and not an error. Returns the names reverted.
///
/// Fails with [`Error::Migration`] when a `down.sql` fails (for example
/// because another set's table still depends on what it drops).
pub async fn revert_set(
    store: &(impl MigrationTarget + ?Sized),
    set: MigrationSet,
    steps: RevertSteps,
    mut progress: Progress,
) -> Result<Vec<String>> {
    locked(store, move |conn| {
        let own = migrations_of(set)?;
        let mut reverted = Vec::new();
        loop {
            if let RevertSteps::Steps(n) = steps {
                if reverted.len() >= n {
                    break;
                }
            }
            let Some(m) = newest_applied(conn, &own)? else {
                break;
            };
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

/// The newest applied migration among `own`, or `None`.
fn newest_applied<'a>(
    conn: &mut SyncConn,
    own: &'a [Box<dyn Migration<Pg>>],
) -> Result<Option<&'a dyn Migration<Pg>>> {
    let applied = conn.applied_migrations().map_err(migration_error)?;
    Ok(own
        .iter()
        .filter(|m| applied.contains(&m.name().version()))
        .max_by(|a, b| a.name().version().cmp(&b.name().version()))
        .map(|m| &**m))
}

/// Reverts the newest applied migration of the crate's set and applies it
/// again, in one locked session. Returns its name, or `None` when none is
/// applied.
///
/// Fails as [`revert`] and [`run_pending_with`] do.
pub async fn redo(
    store: &(impl MigrationTarget + ?Sized),
    progress: Progress,
) -> Result<Option<String>> {
    redo_set(store, &MIGRATIONS, progress).await
}

/// [`redo`] for the newest applied migration of `set`; other sets'
/// versions are left alone.
///
/// Fails as [`revert_set`] and [`run_pending_sets`] do.
pub async fn redo_set(
    store: &(impl MigrationTarget + ?Sized),
    set: MigrationSet,
    mut progress: Progress,
) -> Result<Option<String>> {
    locked(store, move |conn| {
        let own = migrations_of(set)?;
        let Some(m) = newest_applied(conn, &own)? else {
            return Ok(None);
        };
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

/// Every migration of the crate's set, oldest first, with whether it is
/// applied; versions other sets applied are not listed.
///
/// Reads only: it takes no lock and creates nothing, so it suits health
/// probes. Fails with [`Error::Unavailable`] or [`Error::Migration`].
pub async fn list(store: &(impl MigrationTarget + ?Sized)) -> Result<Vec<MigrationState>> {
    list_sets(store, CRATE_ONLY).await
}

/// Every migration of `sets`, oldest first by version, with whether it is
/// applied. Reads only, as [`list`].
///
/// Fails with [`Error::Unavailable`], or [`Error::Migration`] when two
/// migrations share a version.
pub async fn list_sets(
    store: &(impl MigrationTarget + ?Sized),
    sets: &[MigrationSet],
) -> Result<Vec<MigrationState>> {
    use diesel_async::RunQueryDsl;
    let mut conn = store.primary_conn().await?;
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
    let all = migrations_of_all(sets)?;
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
