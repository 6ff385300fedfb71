//! Proof that the contenders do the same work: before timing anything, each
//! runs every workload a few times through the [`crate::wire`] proxy on a
//! pool of one connection, and the statements each sends (their SQL text,
//! in order) must be identical. Round trips and prepares per operation are
//! kept for the report: the proxy holds every answer back for
//! [`FLIGHT_LATENCY`], so a round trip is a wait for an answer, and
//! statements a contender pipelines count as one.

use crate::contender::handwritten::HandWritten;
use crate::contender::sqlx_pool::Sqlx;
use crate::contender::store::Store;
use crate::contender::Contender;
use crate::scratch::Fixture;
use crate::target::Target;
use crate::wire::{Proxy, Traffic};
use crate::workload::Workload;
use anyhow::{bail, ensure, Context, Result};
use fastrand::Rng;
use std::collections::BTreeMap;

/// Operations per workload before counting (statements get prepared).
const WARM_UP_OPS: usize = 2;
/// Operations per workload counted.
const COUNTED_OPS: usize = 3;
/// What the proxy adds to every answer while counting: far above a local
/// server's answer time, so that each wait shows as a pause on the wire.
const FLIGHT_LATENCY: std::time::Duration = std::time::Duration::from_millis(20);

/// What one operation of a workload sends on one contender.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The contender's name.
    pub contender: &'static str,
    /// The statements of one operation, in order.
    pub statements: Vec<String>,
    /// Round trips per operation: the times it waited for an answer
    /// before sending again.
    pub round_trips: f64,
    /// The statements prepared by one operation once warm (none when every
    /// statement is served from the contender's cache).
    pub prepared: Vec<String>,
    /// Rows the operation reported.
    pub rows: usize,
}

/// The profiles of every contender, per workload.
pub type Profiles = BTreeMap<Workload, Vec<Profile>>;

/// Runs `workloads` on the three contenders through the proxy and checks
/// that they send the same statements and report the same rows.
///
/// Fails naming the first workload where they differ.
pub async fn verify(
    target: &Target,
    fixture: &Fixture,
    workloads: &[Workload],
) -> Result<Profiles> {
    let proxy = Proxy::with_latency(target.address(), FLIGHT_LATENCY).await?;
    let via = target.via("127.0.0.1", proxy.port());
    let handwritten = HandWritten::connect(&via, 1).await?;
    let store = Store::connect(&via, 1).await?;
    let sqlx = Sqlx::connect(&via, 1).await?;
    proxy.take();

    let mut profiles = Profiles::new();
    for &workload in workloads {
        let all = vec![
            profile(&handwritten, &proxy, fixture, workload).await?,
            profile(&store, &proxy, fixture, workload).await?,
            profile(&sqlx, &proxy, fixture, workload).await?,
        ];
        let reference = &all[0];
        for other in &all[1..] {
            if other.statements != reference.statements || other.rows != reference.rows {
                bail!(
                    "{}: {} and {} do different work\n{}\n{}",
                    workload.id(),
                    reference.contender,
                    other.contender,
                    describe(reference),
                    describe(other)
                );
            }
        }
        profiles.insert(workload, all);
    }
    Ok(profiles)
}

async fn profile<C: Contender>(
    contender: &C,
    proxy: &Proxy,
    fixture: &Fixture,
    workload: Workload,
) -> Result<Profile> {
    let mut rng = Rng::with_seed(7);
    let failed = || format!("{} on {}", workload.id(), contender.name());
    for _ in 0..WARM_UP_OPS {
        workload
            .run_once(contender, fixture, &mut rng)
            .await
            .with_context(failed)?;
    }
    proxy.take();
    let mut rows = Vec::with_capacity(COUNTED_OPS);
    for _ in 0..COUNTED_OPS {
        rows.push(
            workload
                .run_once(contender, fixture, &mut rng)
                .await
                .with_context(failed)?,
        );
    }
    // Waits for an answer, not `Sync` messages: a pipelined group sends a
    // `Sync` per statement and waits once.
    let Traffic {
        statements,
        round_trips: _,
        prepared,
        flights,
    } = proxy.take();
    let statements: Vec<String> = statements.iter().map(|s| canonical(s).to_owned()).collect();
    ensure!(
        statements.len() % COUNTED_OPS == 0,
        "{}: {} operations sent {} statements",
        failed(),
        COUNTED_OPS,
        statements.len()
    );
    let per_op = statements.len() / COUNTED_OPS;
    let first = statements[..per_op].to_vec();
    ensure!(
        per_op == 0 || statements.chunks(per_op).all(|op| op == first.as_slice()),
        "{}: the operations sent different statements",
        failed()
    );
    ensure!(
        rows.iter().all(|r| *r == rows[0]),
        "{}: operations reported different row counts {rows:?}",
        failed()
    );
    Ok(Profile {
        contender: contender.name(),
        statements: first,
        round_trips: flights as f64 / COUNTED_OPS as f64,
        prepared: prepared[..prepared.len() / COUNTED_OPS].to_vec(),
        rows: rows[0],
    })
}

/// The profile in a few lines, long statements shortened.
pub fn describe(profile: &Profile) -> String {
    let mut text = format!(
        "{}: {} rows, {:.1} round trips per operation; executes:",
        profile.contender, profile.rows, profile.round_trips
    );
    for statement in &profile.statements {
        text.push_str("\n    ");
        text.push_str(&shorten(statement, 400));
    }
    if !profile.prepared.is_empty() {
        text.push_str("\n  and prepares on every operation:");
        for statement in &profile.prepared {
            text.push_str("\n    ");
            text.push_str(&shorten(statement, 120));
        }
    }
    text
}

/// The statement with transaction control spelled one way: tokio-postgres
/// opens a transaction with `START TRANSACTION`, Diesel and sqlx with
/// `BEGIN`, which PostgreSQL treats alike.
fn canonical(statement: &str) -> &str {
    match statement {
        "START TRANSACTION" => "BEGIN",
        other => other,
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}... ({} bytes)", text.len())
}
