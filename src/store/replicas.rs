//! Read replicas: one pool per replica, a background task per replica that
//! measures its replay lag, and the choice of where a lag-tolerant read goes.
//!
//! Each replica's probe task starts with the store and measures the lag
//! every `DB_REPLICA_PROBE_INTERVAL_MS` on a connection of its own (outside
//! the pool), each probe bounded by `DB_REPLICA_PROBE_TIMEOUT_MS`. A read
//! only looks at the last figure and never waits on a probe, so a stopped or
//! black-holed replica costs reads nothing once a probe has failed on it.
//!
//! A replica is used only while its last probe answered, within the last
//! few probe periods, with a replay lag within `DB_REPLICA_MAX_LAG_MS`;
//! otherwise (never probed yet, probe failed or timed out, lagging, figure
//! stale) reads fall back to the primary with no error. Lag is
//! `now() - pg_last_xact_replay_timestamp()` while the replica has received
//! WAL it has not replayed, and zero once it has replayed all it received
//! (an idle primary does not make a caught-up replica look late) — but only
//! while its WAL receiver is streaming: a replica cut off from its primary
//! has replayed all it received and still falls behind.
//!
//! The tasks end when the store closes (and when it is dropped).

use crate::config::{DbConfig, ReplicaProbeSettings};
use crate::error::{Error, Result};
use crate::pool::{self, DbPool, Health, PoolStats, PooledConn};
use diesel::sql_types::{Double, Nullable};
use diesel_async::AsyncPgConnection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How long a read waits for a connection of a replica its probe found
/// healthy before it is skipped for this read.
const REPLICA_WAIT: Duration = Duration::from_millis(1000);

/// A replica's state as last measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplicaStatus {
    /// The replica's target, password redacted.
    pub target: String,
    /// Whether reads go to it now: it answered the last probe, recently,
    /// and its lag was within the limit.
    pub healthy: bool,
    /// The replay lag at the last probe, in milliseconds (`None` when it
    /// did not answer or has not been probed yet).
    pub lag_ms: Option<u64>,
    /// Its pool's figures.
    pub pool: PoolStats,
}

#[derive(Debug, Default)]
struct Measured {
    /// When the last probe finished (`None`: never).
    probed_at: Option<Instant>,
    healthy: bool,
    lag: Option<Duration>,
}

pub(crate) struct Replica {
    /// `None` once the store is closed.
    pool: std::sync::RwLock<Option<DbPool>>,
    turns: Arc<pool::Queue>,
    health: Arc<Health>,
    target: String,
    measured: Mutex<Measured>,
    /// The probes' own connection, outside the pool (so that a probe never
    /// waits behind reads, nor leaves a connection it gave up on in the
    /// pool); dropped after a failed probe and opened again by the next.
    probe_conn: tokio::sync::Mutex<Option<AsyncPgConnection>>,
}

#[derive(diesel::QueryableByName)]
struct LagRow {
    #[diesel(sql_type = Nullable<Double>)]
    lag_ms: Option<f64>,
}

const LAG_SQL: &str = "SELECT CASE \
    WHEN NOT pg_is_in_recovery() THEN 0::float8 \
    WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') \
         AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
    ELSE (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 \
    END AS lag_ms";

impl Replica {
    fn new(config: &DbConfig) -> Result<Replica> {
        let health = Arc::new(Health::default());
        Ok(Replica {
            pool: std::sync::RwLock::new(Some(pool::build(config, health.clone())?)),
            turns: pool::queue(config.pool().max_size),
            health,
            target: config.redacted_target(),
            measured: Mutex::new(Measured::default()),
            probe_conn: tokio::sync::Mutex::new(None),
        })
    }

    fn current_pool(&self) -> Option<DbPool> {
        self.pool.read().ok().and_then(|p| p.clone())
    }

    async fn checkout(&self, wait: Duration) -> Result<PooledConn> {
        let Some(pool) = self.current_pool() else {
            return Err(Error::Unavailable {
                target: self.target.clone(),
                reason: "the store was closed".to_owned(),
            });
        };
        match tokio::time::timeout(
            wait,
            pool::checkout(&pool, &self.turns, &self.target, &self.health),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable {
                target: self.target.clone(),
                reason: format!("no connection within {} ms", wait.as_millis()),
            }),
        }
    }

    /// Measures the lag on the probe connection (opening it when needed),
    /// all within `timeout`. `None` when the replica did not answer in
    /// time or reported no usable figure; a connection that failed or timed
    /// out is dropped, never reused.
    async fn measure(&self, timeout: Duration) -> Option<Duration> {
        use diesel_async::RunQueryDsl;
        let mut slot = self.probe_conn.lock().await;
        let answer = tokio::time::timeout(timeout, async {
            if slot.is_none() {
                let pool = self.current_pool()?;
                *slot = Some(pool.dedicated_connection().await.ok()?);
            }
            let conn = slot.as_mut()?;
            diesel::sql_query(LAG_SQL)
                .get_result::<LagRow>(conn)
                .await
                .ok()
        })
        .await
        .ok()
        .flatten();
        if answer.is_none() {
            *slot = None;
        }
        answer?
            .lag_ms
            .filter(|ms| ms.is_finite())
            .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }

    /// Probes once and records the figure.
    async fn probe(&self, max_lag: Duration, timeout: Duration) {
        let lag = self.measure(timeout).await;
        let healthy = lag.is_some_and(|l| l <= max_lag);
        if let Ok(mut m) = self.measured.lock() {
            let first = m.probed_at.is_none();
            if !healthy && (m.healthy || first) {
                tracing::warn!(replica = %self.target, lag_ms = ?lag.map(|l| l.as_millis()), "read replica skipped: unreachable or lagging");
            } else if healthy && !m.healthy {
                tracing::info!(replica = %self.target, "read replica in use");
            }
            m.probed_at = Some(Instant::now());
            m.healthy = healthy;
            m.lag = lag;
        }
    }

    /// Whether reads may go here now, from the last probe alone: it
    /// answered within the lag limit, and not longer ago than `trusted_for`.
    fn usable(&self, trusted_for: Duration) -> bool {
        self.measured
            .lock()
            .map(|m| m.healthy && m.probed_at.is_some_and(|at| at.elapsed() <= trusted_for))
            .unwrap_or(false)
    }

    /// Takes the replica out of use until its next successful probe.
    fn mark_down(&self) {
        if let Ok(mut m) = self.measured.lock() {
            m.healthy = false;
        }
    }

    fn status(&self, trusted_for: Duration) -> ReplicaStatus {
        let lag = self.measured.lock().ok().and_then(|m| m.lag);
        ReplicaStatus {
            target: self.target.clone(),
            healthy: self.usable(trusted_for),
            lag_ms: lag.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
            pool: self
                .current_pool()
                .map(|p| pool::stats(&p, &self.turns))
                .unwrap_or_default(),
        }
    }
}

/// Counts a probe task as live until its future is dropped (finished or
/// aborted, polled or not).
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Probes `replica` every `probe.interval` until aborted.
async fn probe_loop(
    replica: Arc<Replica>,
    max_lag: Duration,
    probe: ReplicaProbeSettings,
    _live: Live,
) {
    let mut ticks = tokio::time::interval(probe.interval.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let timeout = probe.timeout.max(Duration::from_millis(1));
    loop {
        ticks.tick().await;
        replica.probe(max_lag, timeout).await;
    }
}

/// The replicas of one store.
pub(crate) struct Replicas {
    list: Vec<Arc<Replica>>,
    max_lag: Duration,
    probe: ReplicaProbeSettings,
    next: AtomicUsize,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    live: Arc<AtomicUsize>,
}

impl Replicas {
    /// A pool per replica of `config` (none when it names none), and a
    /// probe task per replica, started at once on the current Tokio
    /// runtime.
    ///
    /// Fails with [`Error::Config`] when a replica's TLS settings cannot be
    /// built, and with [`Error::Unavailable`] when there are replicas but
    /// no Tokio runtime to probe them on.
    pub(crate) fn new(config: &DbConfig) -> Result<Replicas> {
        let list: Vec<Arc<Replica>> = config
            .replicas()
            .iter()
            .map(|c| Replica::new(c).map(Arc::new))
            .collect::<Result<_>>()?;
        let replicas = Replicas {
            max_lag: config.replica_max_lag(),
            probe: config.replica_probe(),
            next: AtomicUsize::new(0),
            tasks: Mutex::new(Vec::new()),
            live: Arc::new(AtomicUsize::new(0)),
            list,
        };
        if let Some(first) = replicas.list.first() {
            let runtime =
                tokio::runtime::Handle::try_current().map_err(|_| Error::Unavailable {
                    target: first.target.clone(),
                    reason: "read replicas are probed on a Tokio runtime; build the store \
                             inside one"
                        .to_owned(),
                })?;
            let tasks: Vec<JoinHandle<()>> = replicas
                .list
                .iter()
                .map(|r| {
                    runtime.spawn(probe_loop(
                        r.clone(),
                        replicas.max_lag,
                        replicas.probe,
                        Live::new(&replicas.live),
                    ))
                })
                .collect();
            if let Ok(mut held) = replicas.tasks.lock() {
                *held = tasks;
            }
        }
        Ok(replicas)
    }

    /// A connection to a usable replica, taking them in turn, or `None`
    /// when none is usable (the caller then reads from the primary). Looks
    /// at the last probe figures only; never probes.
    pub(crate) async fn checkout(&self) -> Option<(usize, PooledConn)> {
        let n = self.list.len();
        if n == 0 {
            return None;
        }
        let trusted_for = self.probe.trusted_for();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let i = (start + k) % n;
            let replica = &self.list[i];
            if !replica.usable(trusted_for) {
                continue;
            }
            match replica.checkout(REPLICA_WAIT).await {
                Ok(conn) => return Some((i, conn)),
                Err(_) => replica.mark_down(),
            }
        }
        None
    }

    /// Probes every replica now, together (each bounded by the probe
    /// timeout), and returns their states.
    pub(crate) async fn check_all(&self) -> Vec<ReplicaStatus> {
        let timeout = self.probe.timeout.max(Duration::from_millis(1));
        futures_util::future::join_all(self.list.iter().map(|r| r.probe(self.max_lag, timeout)))
            .await;
        self.status()
    }

    /// Marks replica `i` down after a read on it failed to reach it.
    pub(crate) fn failed(&self, i: usize) {
        if let Some(r) = self.list.get(i) {
            r.mark_down();
        }
    }

    /// Each replica's last known state.
    pub(crate) fn status(&self) -> Vec<ReplicaStatus> {
        let trusted_for = self.probe.trusted_for();
        self.list.iter().map(|r| r.status(trusted_for)).collect()
    }

    /// How many probe tasks are running (zero once the store is closed).
    pub(crate) fn probes_running(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Ends the probe tasks (waiting until they are gone), then closes
    /// every replica's probe connection and pool.
    pub(crate) async fn close(&self) {
        let tasks = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // Aborted: ends at its next await point, with a cancellation
            // error that says nothing more.
            let _ = task.await;
        }
        for r in &self.list {
            r.turns.close();
            let pool = r.pool.write().ok().and_then(|mut p| p.take());
            drop(pool);
            r.probe_conn.lock().await.take();
            r.mark_down();
        }
    }
}

impl Drop for Replicas {
    /// A store dropped without `close()` still ends its probe tasks.
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for task in tasks.iter() {
                task.abort();
            }
        }
    }
}
