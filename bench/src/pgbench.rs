//! The physical ceiling: `pgbench -S -M prepared` (select-only, prepared
//! statements) on its own scratch database of the same server.

use crate::scratch;
use crate::target::Target;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::Command;

/// The database pgbench initialises and reads.
pub const DATABASE: &str = "pronghorn_bench_pgbench";

/// A pgbench that can run against the server.
#[derive(Debug, Clone)]
pub struct Pgbench {
    program: PathBuf,
    url: String,
}

impl Pgbench {
    /// Finds pgbench (on `PATH`, else under `/usr/lib/postgresql/*/bin`),
    /// recreates [`DATABASE`] and initialises it at scale 1.
    ///
    /// Fails when pgbench is missing or its initialisation fails.
    pub async fn prepare(admin: &Target) -> Result<Pgbench> {
        let program = find().context("pgbench is not installed")?;
        scratch::recreate(admin, DATABASE).await?;
        let url = admin.database(DATABASE).url();
        let output = Command::new(&program)
            .args(["-i", "-q", "-s", "1", &url])
            .output()
            .await
            .context("running pgbench -i")?;
        if !output.status.success() {
            bail!(
                "pgbench -i failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(Pgbench { program, url })
    }

    /// Runs the select-only script with `clients` clients (on two threads
    /// when there are several) for `duration` rounded to whole seconds, at
    /// least one. Returns the transactions (one `SELECT` each) per second
    /// without the initial connection time.
    ///
    /// Fails when pgbench fails or prints no rate.
    pub async fn select_only(&self, clients: usize, duration: Duration) -> Result<f64> {
        let seconds = duration.as_secs_f64().round().max(1.0).to_string();
        let clients = clients.to_string();
        let threads = if clients == "1" { "1" } else { "2" };
        let output = Command::new(&self.program)
            .args(["-S", "-M", "prepared", "-n", "-c", &clients, "-j", threads])
            .args(["-T", &seconds, &self.url])
            .output()
            .await
            .context("running pgbench")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "pgbench failed: {}{}",
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        parse_tps(&stdout).with_context(|| format!("no rate in pgbench's output:\n{stdout}"))
    }
}

/// The `tps = N (without initial connection time)` figure.
fn parse_tps(output: &str) -> Option<f64> {
    output
        .lines()
        .filter(|line| line.contains("without initial connection time"))
        .find_map(|line| {
            line.strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("pgbench"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|entry| entry.path().join("bin/pgbench"))
            .filter(|p| p.is_file())
            .collect();
        installed.sort();
        installed.pop()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_without_connection_time_is_read() {
        let output = "number of transactions actually processed: 61234\n\
                      latency average = 0.261 ms\n\
                      initial connection time = 12.345 ms\n\
                      tps = 30617.123456 (without initial connection time)\n";
        assert_eq!(parse_tps(output), Some(30617.123456));
        assert_eq!(
            parse_tps("tps = 1 (including connections establishing)"),
            None
        );
    }
}
