//! Runs the benchmark and prints the markdown report on standard output
//! (progress goes to standard error). `--help` lists the options.

use anyhow::{Context, Result};
use pronghorn_bench::contender::handwritten::HandWritten;
use pronghorn_bench::contender::sqlx_pool::Sqlx;
use pronghorn_bench::contender::store::Store;
use pronghorn_bench::contender::Contender;
use pronghorn_bench::pgbench::Pgbench;
use pronghorn_bench::report::{self, Samples};
use pronghorn_bench::rounds::Lineup;
use pronghorn_bench::scratch::Fixture;
use pronghorn_bench::settings::{Settings, USAGE};
use pronghorn_bench::target::Target;
use pronghorn_bench::verify::{self, Profiles};
use pronghorn_bench::{contender, measure, scratch};
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    match Settings::parse(std::env::args().skip(1)) {
        Ok(Some(settings)) => match run(&settings).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(settings: &Settings) -> Result<()> {
    let admin = Target::admin_from_env()?;
    eprintln!("seeding {} ...", scratch::DATABASE);
    let fixture = Arc::new(scratch::prepare(&admin).await?);
    let target = admin.database(scratch::DATABASE);
    if let Some((name, ops)) = &settings.fixed {
        return counted(&target, &fixture, settings, name, *ops).await;
    }

    eprintln!("checking on the wire that the contenders send the same statements ...");
    let profiles = verify::verify(&target, &fixture, &settings.workloads).await?;
    if settings.show_sql {
        print_statements(&profiles);
    }

    let pgbench = if settings.pgbench {
        eprintln!("initialising {} ...", pronghorn_bench::pgbench::DATABASE);
        Some(Pgbench::prepare(&admin).await?)
    } else {
        None
    };
    let lineup = Lineup {
        handwritten: Arc::new(HandWritten::connect(&target, contender::POOL_SIZE).await?),
        store: Arc::new(Store::benchmark(&target).await?),
        sqlx: Arc::new(Sqlx::connect(&target, contender::POOL_SIZE).await?),
        pgbench,
    };
    let mut samples = Samples::default();
    for &workload in &settings.workloads {
        eprintln!("{}: {}", workload.id(), workload.title());
        lineup
            .run(
                &fixture,
                workload,
                settings.rounds,
                settings.round,
                &mut samples,
            )
            .await?;
    }

    println!("{}", machine(&target, settings).await?);
    println!();
    print!(
        "{}",
        report::table(&samples, &profiles, &settings.workloads)
    );
    println!();
    print!("{}", report::targets(&samples, &settings.workloads));
    Ok(())
}

/// Runs `ops` operations of each selected workload on the contender `name`
/// and nothing else, so that the instructions a run counts under valgrind,
/// less those of a run with fewer operations, are the contender's alone.
async fn counted(
    target: &Target,
    fixture: &Arc<Fixture>,
    settings: &Settings,
    name: &str,
    ops: u64,
) -> Result<()> {
    async fn each<C: Contender>(
        contender: Arc<C>,
        fixture: &Arc<Fixture>,
        settings: &Settings,
        ops: u64,
    ) -> Result<()> {
        for &workload in &settings.workloads {
            measure::counted(&contender, fixture, workload, ops)
                .await
                .with_context(|| format!("{} on {}", workload.id(), contender.name()))?;
            eprintln!(
                "{}: {ops} operations on {}",
                workload.id(),
                contender.name()
            );
        }
        Ok(())
    }
    match name {
        "tokio-postgres" => {
            let c = HandWritten::connect(target, contender::POOL_SIZE).await?;
            each(Arc::new(c), fixture, settings, ops).await
        }
        "store" => {
            each(
                Arc::new(Store::benchmark(target).await?),
                fixture,
                settings,
                ops,
            )
            .await
        }
        _ => {
            let c = Sqlx::connect(target, contender::POOL_SIZE).await?;
            each(Arc::new(c), fixture, settings, ops).await
        }
    }
}

/// One line on the machine and the run's settings.
async fn machine(target: &Target, settings: &Settings) -> Result<String> {
    let client = target.client().await?;
    let version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .context("reading the server version")?
        .try_get(0)?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    Ok(format!(
        "{when}: {cores} cores ({cpu}), PostgreSQL {version} on {}; {} rounds of {:.1} s per \
         contender and workload, interleaved; pools of {}; medians (min–max of the rounds).",
        target.address(),
        settings.rounds,
        settings.round.as_secs_f64(),
        contender::POOL_SIZE,
    ))
}

fn print_statements(profiles: &Profiles) {
    for (workload, all) in profiles {
        eprintln!("{}: {}", workload.id(), workload.title());
        for profile in all {
            eprintln!("  {}", verify::describe(profile).replace('\n', "\n  "));
        }
    }
}
