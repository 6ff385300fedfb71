//! The schedule: per workload, a short warm-up of each contender, then
//! rounds in which every contender runs for the same time, one after the
//! other (A B C, then B C A, ...), so that a disturbance on the machine
//! falls on all of them alike. pgbench joins the rounds of W1 (1 client)
//! and W2 (16 clients).

use crate::contender::handwritten::HandWritten;
use crate::contender::sqlx_pool::Sqlx;
use crate::contender::store::Store;
use crate::contender::Contender;
use crate::measure::throughput;
use crate::pgbench::Pgbench;
use crate::report::{Samples, PGBENCH};
use crate::scratch::Fixture;
use crate::workload::Workload;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;

/// How long each contender warms up on a workload before its rounds.
const WARM_UP: Duration = Duration::from_millis(500);

/// Everything that takes part in the rounds.
pub struct Lineup {
    /// Hand-written tokio-postgres.
    pub handwritten: Arc<HandWritten>,
    /// The store under test.
    pub store: Arc<Store>,
    /// sqlx.
    pub sqlx: Arc<Sqlx>,
    /// pgbench, unless left out.
    pub pgbench: Option<Pgbench>,
}

/// One slot of a round.
#[derive(Debug, Clone, Copy)]
enum Runner {
    HandWritten,
    Store,
    Sqlx,
    Pgbench { clients: usize },
}

impl Lineup {
    /// Who runs `workload`, in the order of round 0.
    fn runners(&self, workload: Workload) -> Vec<Runner> {
        let mut runners = vec![Runner::HandWritten, Runner::Store, Runner::Sqlx];
        if self.pgbench.is_some() {
            match workload {
                Workload::UserByIdSerial => runners.push(Runner::Pgbench { clients: 1 }),
                Workload::UserById => runners.push(Runner::Pgbench { clients: 16 }),
                _ => {}
            }
        }
        runners
    }

    /// Runs one slot; returns the name to file it under and its rate.
    async fn slot(
        &self,
        runner: Runner,
        fixture: &Arc<Fixture>,
        workload: Workload,
        duration: Duration,
        seed: u64,
    ) -> Result<(&'static str, f64)> {
        async fn timed<C: Contender>(
            contender: &Arc<C>,
            fixture: &Arc<Fixture>,
            workload: Workload,
            duration: Duration,
            seed: u64,
        ) -> Result<(&'static str, f64)> {
            let rate = throughput(contender, fixture, workload, duration, seed)
                .await
                .with_context(|| format!("{} on {}", workload.id(), contender.name()))?;
            Ok((contender.name(), rate))
        }
        match runner {
            Runner::HandWritten => {
                timed(&self.handwritten, fixture, workload, duration, seed).await
            }
            Runner::Store => timed(&self.store, fixture, workload, duration, seed).await,
            Runner::Sqlx => timed(&self.sqlx, fixture, workload, duration, seed).await,
            Runner::Pgbench { clients } => {
                let pgbench = self.pgbench.as_ref().context("pgbench is not prepared")?;
                Ok((PGBENCH, pgbench.select_only(clients, duration).await?))
            }
        }
    }

    /// Warms up, then runs `rounds` rounds of `duration` per runner on
    /// `workload`, adding every rate to `samples`.
    ///
    /// Fails with the first operation that fails.
    pub async fn run(
        &self,
        fixture: &Arc<Fixture>,
        workload: Workload,
        rounds: usize,
        duration: Duration,
        samples: &mut Samples,
    ) -> Result<()> {
        let runners = self.runners(workload);
        for &runner in &runners {
            if !matches!(runner, Runner::Pgbench { .. }) {
                self.slot(runner, fixture, workload, WARM_UP, 0).await?;
            }
        }
        for round in 0..rounds {
            let mut order = runners.clone();
            order.rotate_left(round % runners.len());
            for runner in order {
                let seed = round as u64 + 1;
                let (name, rate) = self.slot(runner, fixture, workload, duration, seed).await?;
                eprintln!(
                    "  {} round {}: {name:<14} {:>12.0} {}",
                    workload.id(),
                    round + 1,
                    rate * workload.rows_per_op(),
                    workload.unit()
                );
                samples.add(workload, name, rate);
            }
        }
        Ok(())
    }
}
