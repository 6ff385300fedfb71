//! Command-line settings.

use crate::workload::Workload;
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// The usage text.
pub const USAGE: &str = "\
usage: pronghorn-bench [--rounds N] [--secs S] [--only W1,W2,...] [--no-pgbench] [--show-sql]
       pronghorn-bench --contender NAME --ops N [--only W1,W2,...]

  --rounds N     rounds per workload (default 7, at least 1)
  --secs S       seconds each contender runs per round (default 2; pgbench rounds to whole seconds)
  --only LIST    run only these workloads
  --no-pgbench   leave pgbench out
  --show-sql     print the statements each workload sends, as the wire showed them
  --contender NAME --ops N
                 instead of timing: run exactly N operations of each workload on one
                 contender (tokio-postgres, store or sqlx), for counting instructions
                 under valgrind (instructions.sh)

BENCH_DATABASE_URL is the admin connection (default postgres://postgres@127.0.0.1:5432/postgres);
the run recreates the databases pronghorn_bench and pronghorn_bench_pgbench on that server.";

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Rounds per workload.
    pub rounds: usize,
    /// Time each contender runs per round.
    pub round: Duration,
    /// The workloads, in order.
    pub workloads: Vec<Workload>,
    /// Whether pgbench joins W1 and W2.
    pub pgbench: bool,
    /// Whether to print each workload's statements.
    pub show_sql: bool,
    /// Instead of timing: the contender and the number of operations to
    /// run of each workload.
    pub fixed: Option<(String, u64)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rounds: 7,
            round: Duration::from_secs(2),
            workloads: Workload::ALL.to_vec(),
            pgbench: true,
            show_sql: false,
            fixed: None,
        }
    }
}

impl Settings {
    /// Reads the arguments (without the program name). `Ok(None)` asks for
    /// the usage text.
    ///
    /// Fails naming the argument that is unknown or malformed.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Settings>> {
        let mut settings = Settings::default();
        let (mut contender, mut ops) = (None, None);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--rounds" => {
                    settings.rounds = value()?.parse().context("--rounds")?;
                    if settings.rounds == 0 {
                        bail!("--rounds must be at least 1");
                    }
                }
                "--secs" => {
                    let secs: f64 = value()?.parse().context("--secs")?;
                    settings.round = Duration::try_from_secs_f64(secs)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .context("--secs must be a positive number of seconds")?;
                }
                "--only" => {
                    settings.workloads = value()?
                        .split(',')
                        .map(|w| {
                            Workload::parse(w).with_context(|| format!("unknown workload {w:?}"))
                        })
                        .collect::<Result<_>>()?;
                }
                "--no-pgbench" => settings.pgbench = false,
                "--show-sql" => settings.show_sql = true,
                "--contender" => {
                    let name = value()?;
                    if !CONTENDERS.contains(&name.as_str()) {
                        bail!("--contender must be one of {CONTENDERS:?}, not {name:?}");
                    }
                    contender = Some(name);
                }
                "--ops" => {
                    let n: u64 = value()?.parse().context("--ops")?;
                    if n == 0 {
                        bail!("--ops must be at least 1");
                    }
                    ops = Some(n);
                }
                "-h" | "--help" => return Ok(None),
                other => bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        settings.fixed = match (contender, ops) {
            (Some(name), Some(n)) => Some((name, n)),
            (None, None) => None,
            _ => bail!("--contender and --ops go together"),
        };
        Ok(Some(settings))
    }
}

/// The names `--contender` accepts.
pub const CONTENDERS: [&str; 3] = ["tokio-postgres", "store", "sqlx"];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Settings>> {
        Settings::parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn arguments_override_the_defaults() {
        let s = parse(&[
            "--rounds",
            "7",
            "--secs",
            "1.5",
            "--only",
            "W2,8",
            "--no-pgbench",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.rounds, 7);
        assert_eq!(s.round, Duration::from_millis(1500));
        assert_eq!(s.workloads, [Workload::UserById, Workload::Checkout]);
        assert!(!s.pgbench);
        assert_eq!(parse(&[]).unwrap().unwrap(), Settings::default());
    }

    #[test]
    fn bad_arguments_are_named() {
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--only", "W9"]).is_err());
        assert!(parse(&["--secs"]).is_err());
        assert!(parse(&["--fast"]).is_err());
        assert!(parse(&["--ops", "10"]).is_err());
        assert!(parse(&["--contender", "diesel", "--ops", "10"]).is_err());
        assert!(parse(&["--contender", "store", "--ops", "0"]).is_err());
        assert_eq!(
            parse(&["--contender", "store", "--ops", "10"])
                .unwrap()
                .unwrap()
                .fixed,
            Some(("store".to_owned(), 10))
        );
        assert_eq!(parse(&["--help"]).unwrap(), None);
    }
}
