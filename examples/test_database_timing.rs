//! How long one per-test database of `pronghorn_db::testing` takes to get
//! ready, beside two baselines measured in the same run: an empty database
//! (the floor: what `CREATE DATABASE` costs), and an empty database migrated
//! from scratch (what a test would pay without the template).
//!
//! `cargo run --release --example test_database_timing [rounds]` against
//! `TEST_DATABASE_URL` (default: the local server). Prints medians and
//! ratios; the machine is shared, so compare ratios, not absolute times.

use pronghorn_db::migrate::{self, CRATE_ONLY};
use pronghorn_db::testing::{Template, TestDb};
use pronghorn_db::HealthStore;
use std::time::{Duration, Instant};

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 20,
    };
    let template = Template::new(CRATE_ONLY);
    // The template is built once, before the rounds: what every test after
    // the first one in a run sees.
    drop(template.database().await?);

    let (mut cloned, mut empty, mut migrated) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let db = template.database().await?;
        cloned.push(started.elapsed());
        drop(db);

        let started = Instant::now();
        let db = TestDb::empty().await?;
        empty.push(started.elapsed());

        let started = Instant::now();
        let store = db.store().await?;
        migrate::run_pending(&store).await?;
        store.close().await;
        migrated.push(started.elapsed() + empty[empty.len() - 1]);
        drop(store);
        drop(db);
    }
    let (cloned, empty, migrated) = (median(cloned), median(empty), median(migrated));
    let ratio = |d: Duration| d.as_secs_f64() / empty.as_secs_f64();
    println!("per-test database, median of {rounds} rounds:");
    println!("  empty CREATE DATABASE (floor)    {empty:>10.1?}  1.00x");
    println!(
        "  cloned from the template         {cloned:>10.1?}  {:.2}x",
        ratio(cloned)
    );
    println!(
        "  empty, then every migration run  {migrated:>10.1?}  {:.2}x",
        ratio(migrated)
    );
    Ok(())
}
