//! [`PgStore`]: the store backed by PostgreSQL through the bb8 pool.

use super::replicas::{ReplicaStatus, Replicas};
use super::{HealthStore, ServerInfo};
use crate::config::DbConfig;
use crate::error::{Error, Result};
use crate::observe::observed;
use crate::page::{paginate, Cursor, Page, PageRequest};
use crate::password::Passwords;
use crate::pool::{self, DbPool, Health, PoolStats, PooledConn};
use async_trait::async_trait;
use diesel::sql_types::{Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Where a listing reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadFrom {
    /// The primary: for reads that must see the caller's own writes.
    Primary,
    /// A healthy replica when there is one (else the primary).
    Replica,
}

/// A transaction isolation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// PostgreSQL's default.
    ReadCommitted,
    /// Snapshot isolation.
    RepeatableRead,
    /// Full serializability; conflicting transactions fail and are retried.
    Serializable,
}

/// The store backed by PostgreSQL.
///
/// Cheap to share: hold it in an `Arc` (or as `Arc<dyn Store>`).
pub struct PgStore {
    pool: RwLock<Option<DbPool>>,
    config: DbConfig,
    target: String,
    health: Arc<Health>,
    turns: Arc<pool::Queue>,
    replicas: Replicas,
    passwords: Passwords,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("connected", &self.health.is_connected())
            .finish_non_exhaustive()
    }
}

#[derive(diesel::QueryableByName)]
struct ServerInfoRow {
    #[diesel(sql_type = Timestamptz)]
    now: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = Text)]
    version: String,
}

impl PgStore {
    /// Builds the store and its pool without waiting for the server: the
    /// pool opens its connections in the background, and each read replica
    /// gets a background probe task (ended by [`HealthStore::close`]). Must
    /// be called inside a Tokio runtime.
    ///
    /// Fails with [`Error::Config`] when the TLS settings cannot be built
    /// (an unreadable `DB_SSL_ROOT_CERT`) or the pool settings are unusable
    /// (a zero maximum or timeout, a minimum above the maximum), and with [`Error::Unavailable`]
    /// when it has read replicas but runs outside a Tokio runtime.
    pub async fn new(config: DbConfig) -> Result<Self> {
        let health = Arc::new(Health::default());
        let pool = pool::build(&config, health.clone())?;
        Ok(PgStore {
            pool: RwLock::new(Some(pool)),
            target: config.redacted_target(),
            turns: pool::queue(config.pool().max_size),
            replicas: Replicas::new(&config)?,
            passwords: Passwords::with_scheme(config.hash_concurrency(), config.hash_scheme())
                .with_wait(config.login().hash_wait),
            config,
            health,
        })
    }

    /// The configuration the store was built with.
    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// The underlying bb8 pool, for hand-written queries.
    ///
    /// Fails with [`Error::Unavailable`] after [`HealthStore::close`].
    pub fn pool(&self) -> Result<DbPool> {
        self.pool
            .read()
            .ok()
            .and_then(|p| p.clone())
            .ok_or_else(|| self.closed())
    }

    fn closed(&self) -> Error {
        Error::Unavailable {
            target: self.target.clone(),
            reason: "the store was closed".to_owned(),
        }
    }

    /// Checks a connection out of the pool for hand-written SQL; it returns
    /// to the pool when dropped.
    ///
    /// Fails with [`Error::Unavailable`] (naming the redacted target and the
    /// last connection error) when none is available within the connection
    /// timeout.
    pub async fn conn(&self) -> Result<PooledConn> {
        let pool = self.pool()?;
        let result = pool::checkout(&pool, &self.turns, &self.target, &self.health).await;
        if result.is_ok() {
            self.health.mark_connected();
        }
        result
    }

    /// A connection for a read that may lag behind the primary: to a read
    /// replica whose last background probe found it answering within
    /// `DB_REPLICA_MAX_LAG_MS` when there is one, taken in turn, else to the
    /// primary (it never waits on a probe). Never use it for a read that
    /// must see the caller's own write.
    ///
    /// Fails with [`Error::Unavailable`] only when the primary is unavailable
    /// too.
    pub async fn read_conn(&self) -> Result<PooledConn> {
        match self.replicas.checkout().await {
            Some((_, conn)) => Ok(conn),
            None => self.conn().await,
        }
    }

    /// Probes every read replica now (reachable? lag?), each within
    /// `DB_REPLICA_PROBE_TIMEOUT_MS`, and returns their states, as
    /// [`HealthStore::replica_status`] then reports them. Reads never wait
    /// on this: each replica is also probed in the background.
    pub async fn check_replicas(&self) -> Vec<ReplicaStatus> {
        self.replicas.check_all().await
    }

    /// How many background replica probe tasks are running: one per read
    /// replica from [`PgStore::new`] until [`HealthStore::close`], zero
    /// after it (and always zero with no replica). Never fails.
    pub fn replica_probes_running(&self) -> usize {
        self.replicas.probes_running()
    }

    /// Runs `f` on a [`PgStore::read_conn`] connection; when the replica
    /// turns out unreachable mid-read, it is skipped and `f` runs again on
    /// the primary, so the caller sees no error.
    pub(crate) async fn with_read_conn<R, F>(&self, f: F) -> Result<R>
    where
        R: Send,
        F: for<'c> Fn(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<R>> + Send + Sync,
    {
        if let Some((i, mut conn)) = self.replicas.checkout().await {
            match f(&mut conn).await {
                // Unreachable, or a query cancelled by a conflict with the
                // standby's recovery: the primary answers instead.
                Err(e) if e.is_unavailable() || e.is_retryable_conflict() => {
                    self.replicas.failed(i)
                }
                other => return other,
            }
        }
        self.with_conn(|c| f(c)).await
    }

    /// One page of a keyset listing: decodes the cursor (which must belong
    /// to `scope`), asks `fetch` for one row more than the page size, and
    /// builds the page with the next cursor.
    ///
    /// Fails with [`Error::Validation`] on `cursor` for a cursor of another
    /// listing, and otherwise as `fetch` does.
    pub(crate) async fn page<T, F>(
        &self,
        from: ReadFrom,
        page: &PageRequest,
        scope: u64,
        key: fn(&T) -> Cursor,
        fetch: F,
    ) -> Result<Page<T>>
    where
        T: Send,
        F: for<'c> Fn(
                &'c mut AsyncPgConnection,
                Option<Cursor>,
                i64,
            ) -> BoxFuture<'c, Result<Vec<T>>>
            + Send
            + Sync,
    {
        let after = page
            .cursor
            .as_deref()
            .map(|c| Cursor::decode(c, scope))
            .transpose()?;
        let size = page.size();
        let rows = match from {
            ReadFrom::Replica => self.with_read_conn(|c| fetch(c, after, size + 1)).await?,
            ReadFrom::Primary => self.with_conn(|c| fetch(c, after, size + 1)).await?,
        };
        Ok(paginate(rows, size, scope, key))
    }

    /// Runs `f` in one transaction on a pooled connection: committed when
    /// `f` returns `Ok`, rolled back when it returns `Err` or panics.
    ///
    /// Returns `f`'s error, or [`Error::Unavailable`] when no connection is
    /// available or the connection is lost.
    pub async fn transaction<R, F>(&self, f: F) -> Result<R>
    where
        R: Send,
        F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<R>> + Send,
    {
        let mut conn = self.conn().await?;
        let result = conn.transaction(async move |c| f(c).await).await;
        self.settle(result)
    }

    /// Runs `f` in a transaction at the given isolation level, and runs it
    /// again (on a fresh transaction, after a short back-off) when it fails
    /// with a serialization failure or a deadlock, up to
    /// `DB_TRANSACTION_RETRIES` more times. `f` must therefore be safe to
    /// run more than once.
    ///
    /// Fails with [`Error::TransactionConflict`] when every attempt
    /// conflicted, and otherwise as [`PgStore::transaction`] does.
    pub async fn transaction_with_retry<R, F>(&self, isolation: Isolation, f: F) -> Result<R>
    where
        R: Send,
        F: for<'c> Fn(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<R>> + Send + Sync,
    {
        let retries = self.config.transaction_retries();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut conn = self.conn().await?;
            let result = match isolation {
                Isolation::ReadCommitted => conn.transaction(async |c| f(c).await).await,
                Isolation::RepeatableRead => {
                    conn.build_transaction()
                        .repeatable_read()
                        .run(async |c| f(c).await)
                        .await
                }
                Isolation::Serializable => {
                    conn.build_transaction()
                        .serializable()
                        .run(async |c| f(c).await)
                        .await
                }
            };
            drop(conn);
            match result {
                Err(e) if e.is_retryable_conflict() => {
                    if attempt > retries {
                        return Err(Error::TransactionConflict { attempts: attempt });
                    }
                    tracing::debug!(attempt, "transaction conflicted; retrying");
                    // Spread the retries of conflicting callers apart.
                    let jitter = u64::from(getrandom::u32().unwrap_or(0) % 10);
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5 + jitter))
                        .await;
                }
                other => return self.settle(other),
            }
        }
    }

    /// Maps connection-level failures to the redacted target and records
    /// them in the health state.
    pub(crate) fn settle<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| self.settle_err(e))
    }

    /// [`PgStore::settle`] for one error.
    pub(crate) fn settle_err(&self, err: Error) -> Error {
        match err {
            Error::Unavailable { reason, .. } => {
                self.health.mark_failed(reason.clone());
                Error::Unavailable {
                    target: self.target.clone(),
                    reason,
                }
            }
            other => other,
        }
    }

    /// The password hasher (argon2id off the async workers, capped).
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Runs `f` on a pooled connection (no transaction) and settles
    /// connection errors.
    pub(crate) async fn with_conn<R, F>(&self, f: F) -> Result<R>
    where
        R: Send,
        F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<R>> + Send,
    {
        let mut conn = self.conn().await?;
        let result = f(&mut conn).await;
        self.settle(result)
    }

    pub(crate) fn slow(&self) -> Duration {
        self.config.slow_call_threshold()
    }
}

#[async_trait]
impl crate::migrate::MigrationTarget for PgStore {
    fn primary_pool(&self) -> Result<DbPool> {
        self.pool()
    }

    async fn primary_conn(&self) -> Result<PooledConn> {
        self.conn().await
    }

    fn redacted_target(&self) -> String {
        self.target.clone()
    }

    fn settle_err(&self, err: Error) -> Error {
        PgStore::settle_err(self, err)
    }
}

#[async_trait]
impl HealthStore for PgStore {
    fn is_configured(&self) -> bool {
        true
    }

    fn is_connected(&self) -> bool {
        self.health.is_connected()
    }

    fn target(&self) -> Option<String> {
        Some(self.target.clone())
    }

    async fn server_info(&self) -> Result<ServerInfo> {
        observed!(self.slow(), "server_info", async {
            let mut conn = self.conn().await?;
            let row: Result<ServerInfoRow> =
                diesel::sql_query("SELECT now() AS now, version() AS version")
                    .get_result(&mut *conn)
                    .await
                    .map_err(Error::from);
            self.settle(row.map(|r| ServerInfo {
                now: r.now,
                version: r.version,
            }))
        })
    }

    async fn test_connection(&self) -> bool {
        match self.server_info().await {
            Ok(info) => {
                tracing::info!(db = %self.target, version = %info.version, "database connection succeeded");
                true
            }
            Err(e) => {
                tracing::warn!(
                    db = %self.target,
                    error = %e,
                    "database connection failed; check that the server runs and that \
                     DB_CONNECTION_STRING (or DB_HOST, DB_PORT, DB_USER, DB_PASSWORD) is right"
                );
                false
            }
        }
    }

    async fn migrations(&self) -> Result<Vec<crate::migrate::MigrationState>> {
        observed!(self.slow(), "migrations", crate::migrate::list(self))
    }

    fn replica_status(&self) -> Vec<ReplicaStatus> {
        self.replicas.status()
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(
            self.pool()
                .map(|p| pool::stats(&p, &self.turns))
                .unwrap_or_default(),
        )
    }

    async fn close(&self) {
        let pool = self.pool.write().ok().and_then(|mut p| p.take());
        self.turns.close();
        self.replicas.close().await;
        if pool.is_some() {
            tracing::info!(db = %self.target, "database pool closed");
        }
        self.health.mark_failed("the store was closed".to_owned());
        drop(pool);
    }
}
