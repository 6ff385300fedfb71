//! `pronghorn-db`: status, migrations and seeds for the Pronghorn database.
//!
//! Exit codes: 0 on success, 1 when the operation fails (one line on
//! stderr), 2 on a usage error.

use clap::{Args, Parser, Subcommand};
use pronghorn_db::migrate::{self, MigrationEvent, RevertSteps};
use pronghorn_db::seed;
use pronghorn_db::{Configuration, DbConfig, HealthStore, PgStore};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pronghorn-db",
    version,
    about = "Status, migrations and seeds for the Pronghorn database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show whether a database is configured and reachable, the server
    /// version, pool figures and migrations. Exits 1 when configured but
    /// unreachable, or when the configuration is malformed.
    Status {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Apply, revert, redo or list migrations (default: apply pending ones).
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Create the template's four development users where missing, then
    /// print the users per role. The password is SEED_PASSWORD, or the
    /// development default (refused in production). An account that already
    /// holds a seed email (in any case) is left unchanged and named on
    /// stderr; in production that makes the command exit 1.
    Seed(SeedArgs),
}

#[derive(Args)]
#[group(multiple = false)]
struct SeedArgs {
    /// Set the four seed users' passwords again (refused in production).
    #[arg(long)]
    reset_passwords: bool,
    /// Delete every user that is not a superadmin (refused in production).
    #[arg(long)]
    clear_users: bool,
    /// Make accounts that already hold a seed email the seed users: set
    /// their role and fields, set their password to the seed password, and
    /// end their sessions, refresh tokens and password resets (refused in
    /// production).
    #[arg(long)]
    take_over_existing: bool,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Run,
    /// Revert the newest migration, the newest N, or all.
    Revert(RevertArgs),
    /// Revert the newest migration and apply it again.
    Redo,
    /// List every migration, applied or pending.
    List,
}

#[derive(Args)]
#[group(multiple = false)]
struct RevertArgs {
    /// Revert every applied migration.
    #[arg(long)]
    all: bool,
    /// Revert the newest N migrations.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    steps: Option<u32>,
}

/// A failure the CLI reports on stderr as one line, exiting 1.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // .env fills in what the process environment lacks (SEED_PASSWORD,
    // APP_ENV, ...); the environment wins.
    let _ = dotenvy::dotenv();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    let configuration = DbConfig::from_env()?;
    match command {
        Command::Seed(args) => {
            let store = configured_store(configuration).await?;
            let result = seed_cmd(&store, args).await;
            store.close().await;
            result
        }
        Command::Status { json } => status(configuration, json).await,
        Command::Migrate { action } => {
            let store = configured_store(configuration).await?;
            let result = migrate_cmd(&store, action.unwrap_or(MigrateAction::Run)).await;
            store.close().await;
            result
        }
    }
}

async fn configured_store(configuration: Configuration) -> Result<PgStore, Failure> {
    match configuration {
        Configuration::Configured(config) => Ok(PgStore::new(*config).await?),
        Configuration::NotConfigured { reason } => Err(Failure(format!(
            "no database is configured ({reason}); set DB_CONNECTION_STRING, or DB_HOST and DB_PASSWORD"
        ))),
    }
}

async fn seed_cmd(store: &PgStore, args: SeedArgs) -> Result<(), Failure> {
    let env = |k: &str| std::env::var(k).ok();
    let production = seed::is_production(env);
    let password = env("SEED_PASSWORD")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| seed::DEFAULT_SEED_PASSWORD.to_owned());
    if args.clear_users {
        let deleted = seed::clear_users(store, production).await?;
        println!("Deleted {deleted} user(s) that were not superadmins.");
    } else if args.reset_passwords {
        let reset = seed::reset_passwords(store, &password, production).await?;
        for email in &reset {
            println!("Reset password  {email}");
        }
        println!("{} password(s) reset.", reset.len());
    } else {
        let existing = if args.take_over_existing {
            seed::ExistingAccounts::TakeOver
        } else {
            seed::ExistingAccounts::Leave
        };
        let report = seed::seed(store, &password, production, existing).await?;
        for email in &report.created {
            println!("Created  {email}");
        }
        for t in &report.taken_over {
            println!(
                "Took over  {} (id {}): {} session(s) ended, {} refresh token(s) revoked",
                t.account.email, t.account.id, t.sessions_ended, t.refresh_tokens_revoked
            );
        }
        println!("Users by role:");
        for c in &report.counts {
            println!(
                "  {:<12} {}",
                c.role.as_deref().unwrap_or("(none)"),
                c.count
            );
        }
        for a in &report.skipped {
            eprintln!(
                "warning: {} already belongs to an existing account ({}, id {}); left unchanged \
                 (--take-over-existing makes it the seed user)",
                a.seed_email, a.email, a.id
            );
        }
        // Someone else may own such an account, so a production deploy that
        // expected fresh seed users must not pass as successful.
        if production && !report.skipped.is_empty() {
            return Err(Failure(format!(
                "{} seed account(s) already existed and were left unchanged",
                report.skipped.len()
            )));
        }
    }
    Ok(())
}

fn print_event(event: &MigrationEvent) {
    match event {
        MigrationEvent::Applied(name) => println!("Applied  {name}"),
        MigrationEvent::Reverted(name) => println!("Reverted {name}"),
    }
}

async fn migrate_cmd(store: &PgStore, action: MigrateAction) -> Result<(), Failure> {
    match action {
        MigrateAction::Run => {
            let applied = migrate::run_pending_with(store, Box::new(print_event)).await?;
            if applied.is_empty() {
                println!("No pending migrations.");
            } else {
                println!("{} migration(s) applied.", applied.len());
            }
        }
        MigrateAction::Revert(args) => {
            let steps = match (args.all, args.steps) {
                (true, _) => RevertSteps::All,
                (false, Some(n)) => RevertSteps::Steps(n as usize),
                (false, None) => RevertSteps::Steps(1),
            };
            let reverted = migrate::revert(store, steps, Box::new(print_event)).await?;
            if reverted.is_empty() {
                println!("No applied migrations to revert.");
            } else {
                println!("{} migration(s) reverted.", reverted.len());
            }
        }
        MigrateAction::Redo => match migrate::redo(store, Box::new(print_event)).await? {
            Some(_) => {}
            None => println!("No applied migration to redo."),
        },
        MigrateAction::List => {
            let all = migrate::list(store).await?;
            for m in &all {
                let state = if m.applied { "applied" } else { "pending" };
                println!("[{state}] {}", m.name);
            }
            let applied = all.iter().filter(|m| m.applied).count();
            println!("{applied} applied, {} pending", all.len() - applied);
        }
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct StatusReport {
    status: &'static str,
    configured: bool,
    connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<pronghorn_db::PoolStats>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    replicas: Vec<pronghorn_db::ReplicaStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    migrations_applied: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    migrations_pending: Option<usize>,
}

async fn status(configuration: Configuration, json: bool) -> Result<(), Failure> {
    let report = match configuration {
        Configuration::NotConfigured { reason } => StatusReport {
            status: "disabled",
            configured: false,
            connected: false,
            reason: Some(reason),
            target: None,
            server_version: None,
            pool: None,
            replicas: Vec::new(),
            migrations_applied: None,
            migrations_pending: None,
        },
        Configuration::Configured(config) => {
            let store = PgStore::new(*config).await?;
            let info = store.server_info().await;
            let info = match info {
                Ok(info) => info,
                Err(e) => {
                    store.close().await;
                    return Err(Failure(format!("status: unavailable: {e}")));
                }
            };
            let migrations = migrate::list(&store).await?;
            let replicas = store.check_replicas().await;
            let applied = migrations.iter().filter(|m| m.applied).count();
            let report = StatusReport {
                status: "connected",
                configured: true,
                connected: true,
                reason: None,
                target: store.target(),
                server_version: Some(info.version),
                pool: store.pool_stats(),
                replicas,
                migrations_applied: Some(applied),
                migrations_pending: Some(migrations.len() - applied),
            };
            store.close().await;
            report
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("database:   {}", report.status);
    if let Some(reason) = &report.reason {
        println!("reason:     {reason}");
        println!("hint:       set DB_CONNECTION_STRING, or DB_HOST and DB_PASSWORD, to enable it");
    }
    if let Some(target) = &report.target {
        println!("target:     {target}");
    }
    if let Some(version) = &report.server_version {
        println!("server:     {version}");
    }
    if let Some(p) = &report.pool {
        println!(
            "pool:       size {}, idle {}, in use {}, waiting {}, min idle {}, max {}",
            p.size, p.idle, p.in_use, p.waiting, p.min_idle, p.max
        );
    }
    for r in &report.replicas {
        let state = if r.healthy { "healthy" } else { "skipped" };
        let lag = r
            .lag_ms
            .map_or_else(|| "unknown".to_owned(), |l| format!("{l} ms"));
        println!("replica:    {} ({state}, lag {lag})", r.target);
    }
    if let (Some(a), Some(p)) = (report.migrations_applied, report.migrations_pending) {
        println!("migrations: {a} applied, {p} pending");
    }
    Ok(())
}
