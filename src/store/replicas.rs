//! Read replicas: one pool per replica, a lag check at most once a second,
//! and the choice of where a lag-tolerant read goes.
//!
//! A replica is used only while it answers and its replay lag is within
//! `DB_REPLICA_MAX_LAG_MS`; otherwise reads fall back to the primary with no
//! error. Lag is `now() - pg_last_xact_replay_timestamp()` while the replica
//! has received WAL it has not replayed, and zero once it has replayed all
//! it received (an idle primary does not make a caught-up replica look
//! late) — but only while its WAL receiver is streaming: a replica cut off
//! from its primary has replayed all it received and still falls behind.

use crate::config::DbConfig;
use crate::error::{Error, Result};
use crate::pool::{self, DbPool, Health, PoolStats, PooledConn};
use diesel::sql_types::{Double, Nullable};
use diesel_async::RunQueryDsl;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a replica's lag is measured, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a lag check or a replica checkout may take before the replica
/// is skipped for this read.
const REPLICA_WAIT: Duration = Duration::from_millis(1000);

/// A replica's state as last measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplicaStatus {
    /// The replica's target, password redacted.
    pub target: String,
    /// Whether reads go to it now: it answered the last check and its lag
    /// was within the limit.
    pub healthy: bool,
    /// The replay lag at the last check, in milliseconds (`None` when it
    /// did not answer or has not been checked yet).
    pub lag_ms: Option<u64>,
    /// Its pool's figures.
    pub pool: PoolStats,
}

#[derive(Debug, Default)]
struct Measured {
    checked_at: Option<Instant>,
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
        })
    }

    async fn checkout(&self, wait: Duration) -> Result<PooledConn> {
        let Some(pool) = self.pool.read().ok().and_then(|p| p.clone()) else {
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

    async fn measure(&self) -> Option<Duration> {
        let mut conn = self.checkout(REPLICA_WAIT).await.ok()?;
        let row = tokio::time::timeout(
            REPLICA_WAIT,
            diesel::sql_query(LAG_SQL).get_result::<LagRow>(&mut *conn),
        )
        .await
        .ok()?
        .ok()?;
        row.lag_ms
            .filter(|ms| ms.is_finite())
            .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }

    /// Whether reads may go here now, measuring the lag first when the last
    /// measurement is older than a second. While one caller measures, the
    /// others use the previous answer.
    async fn usable(&self, max_lag: Duration) -> bool {
        {
            let Ok(mut m) = self.measured.lock() else {
                return false;
            };
            if m.checked_at.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
                return m.healthy;
            }
            m.checked_at = Some(Instant::now());
        }
        let lag = self.measure().await;
        let healthy = lag.is_some_and(|l| l <= max_lag);
        if let Ok(mut m) = self.measured.lock() {
            if m.healthy && !healthy {
                tracing::warn!(replica = %self.target, lag_ms = ?lag.map(|l| l.as_millis()), "read replica skipped: unreachable or lagging");
            } else if !m.healthy && healthy {
                tracing::info!(replica = %self.target, "read replica back in use");
            }
            m.healthy = healthy;
            m.lag = lag;
        }
        healthy
    }

    /// Forgets the last measurement, so that the next use measures again.
    fn expire(&self) {
        if let Ok(mut m) = self.measured.lock() {
            m.checked_at = None;
        }
    }

    fn mark_down(&self) {
        if let Ok(mut m) = self.measured.lock() {
            m.healthy = false;
            m.checked_at = Some(Instant::now());
        }
    }

    fn status(&self) -> ReplicaStatus {
        let (healthy, lag) = self
            .measured
            .lock()
            .map(|m| (m.healthy, m.lag))
            .unwrap_or((false, None));
        ReplicaStatus {
            target: self.target.clone(),
            healthy,
            lag_ms: lag.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
            pool: self
                .pool
                .read()
                .ok()
                .and_then(|p| p.as_ref().map(|p| pool::stats(p, &self.turns)))
                .unwrap_or_default(),
        }
    }
}

/// The replicas of one store.
pub(crate) struct Replicas {
    list: Vec<Replica>,
    max_lag: Duration,
    next: AtomicUsize,
}

impl Replicas {
    /// A pool per replica of `config` (none when it names none).
    ///
    /// Fails with [`Error::Config`] when a replica's TLS settings cannot be
    /// built.
    pub(crate) fn new(config: &DbConfig) -> Result<Replicas> {
        Ok(Replicas {
            list: config
                .replicas()
                .iter()
                .map(Replica::new)
                .collect::<Result<_>>()?,
            max_lag: config.replica_max_lag(),
            next: AtomicUsize::new(0),
        })
    }

    /// A connection to a usable replica, taking them in turn, or `None`
    /// when none is usable (the caller then reads from the primary).
    pub(crate) async fn checkout(&self) -> Option<(usize, PooledConn)> {
        let n = self.list.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let i = (start + k) % n;
            let replica = &self.list[i];
            if !replica.usable(self.max_lag).await {
                continue;
            }
            match replica.checkout(REPLICA_WAIT).await {
                Ok(conn) => return Some((i, conn)),
                Err(_) => replica.mark_down(),
            }
        }
        None
    }

    /// Measures every replica now, together, and returns their states.
    pub(crate) async fn check_all(&self) -> Vec<ReplicaStatus> {
        for r in &self.list {
            r.expire();
        }
        futures_util::future::join_all(self.list.iter().map(|r| r.usable(self.max_lag))).await;
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
        self.list.iter().map(Replica::status).collect()
    }

    /// Closes every replica's pool.
    pub(crate) fn close(&self) {
        for r in &self.list {
            r.turns.close();
            let pool = r.pool.write().ok().and_then(|mut p| p.take());
            drop(pool);
        }
    }
}
