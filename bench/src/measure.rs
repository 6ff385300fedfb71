//! Timed runs: a workload's tasks loop on one contender until the time is
//! up; the throughput counts every finished operation over the time until
//! the last task stopped. Counted runs: the tasks share a fixed number of
//! operations, for counting instructions per operation.

use crate::contender::Contender;
use crate::scratch::Fixture;
use crate::workload::Workload;
use anyhow::{Context, Result};
use fastrand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `workload` on `contender` for `duration` with the workload's number
/// of tasks; returns operations per second. `seed` makes the inputs
/// reproducible.
///
/// Fails with the first operation that fails.
pub async fn throughput<C: Contender>(
    contender: &Arc<C>,
    fixture: &Arc<Fixture>,
    workload: Workload,
    duration: Duration,
    seed: u64,
) -> Result<f64> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..workload.tasks())
        .map(|task| {
            let contender = Arc::clone(contender);
            let fixture = Arc::clone(fixture);
            let mut rng = Rng::with_seed(seed.wrapping_mul(1_000_003).wrapping_add(task as u64));
            tokio::spawn(async move {
                let mut done: u64 = 0;
                while Instant::now() < deadline {
                    workload
                        .run_once(contender.as_ref(), &fixture, &mut rng)
                        .await?;
                    done += 1;
                }
                Ok::<u64, anyhow::Error>(done)
            })
        })
        .collect();
    let mut done: u64 = 0;
    for task in tasks {
        done += task.await.context("a benchmark task panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(done as f64 / elapsed)
}

/// Runs exactly `ops` operations of `workload` on `contender`, shared by the
/// workload's number of tasks.
///
/// Fails with the first operation that fails.
pub async fn counted<C: Contender>(
    contender: &Arc<C>,
    fixture: &Arc<Fixture>,
    workload: Workload,
    ops: u64,
) -> Result<()> {
    let tasks = workload.tasks() as u64;
    let runs: Vec<_> = (0..tasks)
        .map(|task| {
            let contender = Arc::clone(contender);
            let fixture = Arc::clone(fixture);
            let mut rng = Rng::with_seed(task);
            let share = ops / tasks + u64::from(task < ops % tasks);
            tokio::spawn(async move {
                for _ in 0..share {
                    workload
                        .run_once(contender.as_ref(), &fixture, &mut rng)
                        .await?;
                }
                Ok::<(), anyhow::Error>(())
            })
        })
        .collect();
    for run in runs {
        run.await.context("a benchmark task panicked")??;
    }
    Ok(())
}
