//! Timed runs: a workload's tasks loop on one contender until the time is
//! up; the throughput counts every finished operation over the time until
//! the last task stopped.

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
