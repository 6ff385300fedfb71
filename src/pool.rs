//! The bb8 pool of diesel-async connections: TLS through a custom setup, an
//! error sink that logs why connections fail, and [`PoolStats`].

use crate::config::{ConfigError, DbConfig};
use crate::error::Error;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError, PoolableConnection, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;
use futures_util::FutureExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// The pool type behind [`crate::PgStore`].
pub type DbPool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

/// A connection checked out of the pool; it returns to the pool when
/// dropped. Dereferences to [`AsyncPgConnection`], so repository functions
/// and hand-written diesel queries take `&mut *conn`.
pub struct PooledConn {
    conn: bb8::PooledConnection<'static, AsyncDieselConnectionManager<AsyncPgConnection>>,
    // Released after the connection went back (fields drop in order).
    _turn: Turn,
}

/// A caller's turn at the pool, given back when dropped.
struct Turn(Arc<Queue>);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.turns.add_permits(1);
    }
}

impl std::ops::Deref for PooledConn {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

/// First come, first served: bb8 wakes waiters without an order, so under
/// contention a caller that returns a connection and asks again can keep
/// overtaking one that has been waiting. Callers first take a turn from this
/// FIFO semaphore (one permit per connection the pool may open), then the
/// connection.
pub(crate) fn queue(max_size: u32) -> Arc<Queue> {
    Arc::new(Queue {
        turns: Semaphore::new(max_size as usize),
        waiting: AtomicU64::new(0),
    })
}

/// The FIFO line in front of a pool, and how many callers stand in it.
#[derive(Debug)]
pub(crate) struct Queue {
    turns: Semaphore,
    waiting: AtomicU64,
}

impl Queue {
    /// Closes the line: later checkouts fail at once.
    pub(crate) fn close(&self) {
        self.turns.close();
    }
}

/// Counts a caller as waiting until it is dropped (served, timed out or
/// cancelled alike).
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicU64) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot of the pool's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PoolStats {
    /// Connections open now (idle and in use).
    pub size: u32,
    /// Open connections not checked out.
    pub idle: u32,
    /// Connections checked out by callers.
    pub in_use: u32,
    /// Callers waiting for a connection.
    pub waiting: u64,
    /// The most connections the pool opens.
    pub max: u32,
    /// Idle connections the pool tries to keep.
    pub min_idle: u32,
}

/// What the pool last learned about the server, shared with the setup
/// function and the error sink.
#[derive(Debug, Default)]
pub(crate) struct Health {
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Health {
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_connected(&self) {
        // Called on every checkout: the common case costs one atomic swap.
        if self.connected.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = None;
        }
    }

    pub(crate) fn mark_failed(&self, reason: String) {
        self.connected.store(false, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(crate::error::explain_connection_failure(reason));
        }
    }

    /// The last connection error, if no connection succeeded since.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|l| l.clone())
    }
}

/// Logs connection failures that bb8 meets in the background (where no
/// caller would see them) and remembers the last one for error messages.
#[derive(Debug, Clone)]
struct LogSink {
    target: Arc<str>,
    health: Arc<Health>,
}

impl bb8::ErrorSink<PoolError> for LogSink {
    fn sink(&self, error: PoolError) {
        match error {
            PoolError::ConnectionError(e) => {
                let reason = e.to_string();
                tracing::warn!(target: "pronghorn_db::pool", db = %self.target, error = %reason, "could not open a database connection");
                self.health.mark_failed(reason);
            }
            PoolError::QueryError(e) => {
                tracing::debug!(target: "pronghorn_db::pool", db = %self.target, error = %e, "dropped a pooled connection that was closed");
            }
        }
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<PoolError>> {
        Box::new(self.clone())
    }
}

/// Pool settings set in code ([`DbConfig::with_pool`]) get the checks the
/// environment's get, instead of tripping bb8's assertions.
fn check(p: &crate::config::PoolSettings) -> Result<(), ConfigError> {
    let bad = |variable, problem: &str| {
        Err(ConfigError {
            variable,
            problem: problem.to_owned(),
        })
    };
    if p.max_size == 0 {
        return bad("DB_POOL_MAX", "must be at least 1, got 0");
    }
    if p.min_idle > p.max_size {
        return bad("DB_POOL_MIN", "is above DB_POOL_MAX");
    }
    if p.connection_timeout.is_zero() {
        return bad("DB_POOL_CONNECTION_TIMEOUT", "must be at least 1 ms, got 0");
    }
    if p.idle_timeout.is_zero() {
        return bad("DB_POOL_IDLE_TIMEOUT", "must be at least 1 ms, got 0");
    }
    Ok(())
}

/// Builds the pool without contacting the server: connections are opened in
/// the background and on demand.
///
/// Fails only when the pool settings are unusable (a zero maximum or
/// timeout, a minimum above the maximum) or the TLS settings cannot be
/// built (an unreadable `DB_SSL_ROOT_CERT`).
pub(crate) fn build(config: &DbConfig, health: Arc<Health>) -> Result<DbPool, ConfigError> {
    check(&config.pool())?;
    let tls = crate::tls::connector(config)?;
    let pg_config = Arc::new(config.to_pg_config());
    let target: Arc<str> = config.redacted_target().into();

    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    let setup_health = health.clone();
    manager_config.custom_setup = Box::new(move |_url| {
        let pg_config = pg_config.clone();
        let tls = tls.clone();
        let health = setup_health.clone();
        async move {
            let result = connect(&pg_config, tls).await;
            if result.is_ok() {
                health.mark_connected();
            }
            result
        }
        .boxed()
    });
    // bb8's own check on checkout is off (see `checkout`, which asks
    // `is_broken()` itself, without a round trip or a boxed future).
    manager_config.recycling_method = RecyclingMethod::Fast;

    let manager = AsyncDieselConnectionManager::new_with_config(String::new(), manager_config);
    let settings = config.pool();
    Ok(bb8::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(Some(settings.min_idle))
        .idle_timeout(Some(settings.idle_timeout))
        .connection_timeout(settings.connection_timeout)
        .test_on_check_out(false)
        .error_sink(Box::new(LogSink { target, health }))
        .build_unchecked(manager))
}

async fn connect(
    pg_config: &tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
) -> diesel::ConnectionResult<AsyncPgConnection> {
    let bad = |e: tokio_postgres::Error| diesel::ConnectionError::BadConnection(describe(&e));
    match tls {
        Some(tls) => {
            let (client, conn) = pg_config.connect(tls).await.map_err(bad)?;
            AsyncPgConnection::try_from_client_and_connection(client, conn).await
        }
        None => {
            let (client, conn) = pg_config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(bad)?;
            AsyncPgConnection::try_from_client_and_connection(client, conn).await
        }
    }
}

/// tokio-postgres puts the useful part (refused, TLS failure, auth failure)
/// in the error's source chain; join it into one line.
fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Reads the pool's figures.
pub(crate) fn stats(pool: &DbPool, queue: &Queue) -> PoolStats {
    let state = pool.state();
    let config = pool.config();
    PoolStats {
        size: state.connections,
        idle: state.idle_connections,
        in_use: state.connections.saturating_sub(state.idle_connections),
        waiting: queue.waiting.load(Ordering::Relaxed),
        max: config.max_size,
        min_idle: config.min_idle.unwrap_or(0),
    }
}

/// Checks a connection out in turn (see [`queue`]), mapping a time-out or
/// connection failure to [`Error::Unavailable`] with the redacted target and
/// the last known reason. The whole wait, for the turn and then the
/// connection, is bounded by the pool's connection timeout.
pub(crate) async fn checkout(
    pool: &DbPool,
    queue: &Arc<Queue>,
    target: &str,
    health: &Health,
) -> Result<PooledConn, Error> {
    let waited = pool.config().connection_timeout;
    let deadline = tokio::time::Instant::now() + waited;
    let timed_out = || {
        let waited = waited.as_millis();
        let reason = match health.last_error() {
            Some(last) => format!("no connection within {waited} ms; last error: {last}"),
            None => format!("no connection became free within {waited} ms"),
        };
        Error::Unavailable {
            target: target.to_owned(),
            reason,
        }
    };
    let closed = || Error::Unavailable {
        target: target.to_owned(),
        reason: "the store was closed".to_owned(),
    };
    // A free turn is taken at once, with no timer; only a caller that has
    // to wait stands in line under the deadline.
    let (turn, waiting) = match queue.turns.try_acquire() {
        Ok(permit) => {
            permit.forget();
            (Turn(queue.clone()), None)
        }
        Err(tokio::sync::TryAcquireError::Closed) => return Err(closed()),
        Err(tokio::sync::TryAcquireError::NoPermits) => {
            let waiting = Waiting::new(&queue.waiting);
            match tokio::time::timeout_at(deadline, queue.turns.acquire()).await {
                Ok(Ok(permit)) => {
                    permit.forget();
                    (Turn(queue.clone()), Some(waiting))
                }
                Ok(Err(_)) => return Err(closed()),
                Err(_) => return Err(timed_out()),
            }
        }
    };
    // From here `turn` gives the permit back on every path.
    let mut first = waiting.is_none();
    let result = loop {
        // bb8 bounds its own wait by the connection timeout, which is the
        // whole budget when no time went on the turn.
        let got = if first {
            Ok(pool.get_owned().await)
        } else {
            tokio::time::timeout_at(deadline, pool.get_owned()).await
        };
        first = false;
        match got {
            // A connection whose socket the server closed while it sat idle
            // is dropped (bb8 discards broken connections on return), and
            // another is taken: no round trip is spent to find out.
            Ok(Ok(mut conn)) => {
                if !conn.is_broken() {
                    break Ok(PooledConn { conn, _turn: turn });
                }
            }
            Ok(Err(bb8::RunError::TimedOut)) | Err(_) => break Err(timed_out()),
            Ok(Err(bb8::RunError::User(e))) => {
                let reason = crate::error::explain_connection_failure(e.to_string());
                health.mark_failed(reason.clone());
                break Err(Error::Unavailable {
                    target: target.to_owned(),
                    reason,
                });
            }
        }
    };
    drop(waiting);
    result
}
