//! The `pronghorn-db` binary: `status` in its three outcomes, exit codes,
//! `.env` handling, and `migrate` run / list / revert / redo, including two
//! migrators started at once.

mod common;

use common::TestDb;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pronghorn-db");

/// An empty folder (no `.env`) to run the binary in.
fn empty_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pronghorn-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs the binary with a clean environment plus `vars`, in `dir`.
fn run_in(dir: &PathBuf, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir)
        .args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run pronghorn-db")
}

fn run(vars: &[(&str, &str)], args: &[&str]) -> Output {
    let dir = empty_dir();
    let out = run_in(&dir, vars, args);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn status_with_nothing_configured_says_disabled_and_exits_0() {
    let out = run(&[], &["status"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("database:   disabled"), "{stdout}");
    assert!(stdout.contains("DB_HOST is not set"), "{stdout}");

    let out = run(&[], &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["status"], "disabled");
    assert_eq!(json["configured"], false);
}

#[tokio::test]
async fn status_when_connected_prints_version_pool_and_migrations() {
    let db = TestDb::migrated().await;
    let url = db.url();
    let out = run(&[("DB_CONNECTION_STRING", &url)], &["status"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("database:   connected"), "{stdout}");
    assert!(stdout.contains("server:     PostgreSQL "), "{stdout}");
    assert!(stdout.contains("pool:       size "), "{stdout}");
    let n = migration_names().len();
    assert!(
        stdout.contains(&format!("migrations: {n} applied, 0 pending")),
        "{stdout}"
    );

    let out = run(&[("DB_CONNECTION_STRING", &url)], &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["status"], "connected");
    assert_eq!(json["migrations_applied"], n);
    assert!(json["pool"]["max"].as_u64().is_some(), "{json}");
}

#[test]
fn status_when_unreachable_exits_1_fast_and_hides_the_password() {
    let started = Instant::now();
    let out = run(
        &[
            (
                "DB_CONNECTION_STRING",
                "postgres://u:s3cretpw@127.0.0.1:1/x",
            ),
            ("DB_POOL_CONNECTION_TIMEOUT", "2000"),
        ],
        &["status"],
    );
    let took = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(took < Duration::from_millis(3500), "took {took:?}");
    assert!(stderr.contains("unavailable"), "{stderr}");
    assert!(
        stderr.contains("postgres://u:***@127.0.0.1:1/x"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(!stdout.contains("s3cretpw") && !stderr.contains("s3cretpw"));
}

#[test]
fn malformed_configuration_exits_1_naming_the_variable() {
    let out = run(
        &[
            ("DB_HOST", "localhost"),
            ("DB_PASSWORD", "pw"),
            ("DB_PORT", "abc"),
        ],
        &["status"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr.trim(),
        "error: invalid configuration: DB_PORT: 'abc' is not a port number (1-65535)"
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&[], &["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        run(&[], &["migrate", "revert", "--steps", "0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&[], &["migrate", "revert", "--all", "--steps", "2"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn migrate_without_a_database_exits_1() {
    let out = run(&[], &["migrate"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("no database is configured"), "{stderr}");
}

#[tokio::test]
async fn dotenv_is_read_and_the_process_environment_wins() {
    let db = TestDb::migrated().await;
    let dir = empty_dir();
    std::fs::write(
        dir.join(".env"),
        format!("DB_CONNECTION_STRING={}\nDB_POOL_MAX=3\n", db.url()),
    )
    .expect("write .env");
    let out = run_in(&dir, &[], &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["status"], "connected");
    assert_eq!(json["pool"]["max"], 3);

    let out = run_in(&dir, &[("DB_POOL_MAX", "5")], &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["pool"]["max"], 5, "the environment beats .env");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

const OUR_OBJECTS: &str = "SELECT
    (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace
        AND relname NOT IN ('__diesel_schema_migrations', '__diesel_schema_migrations_pkey'))
  + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace)";

/// The migration folder names, oldest first.
fn migration_names() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("migrations folder")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn migrate_list_run_revert_redo() {
    let names = migration_names();
    let n = names.len();
    assert!(
        n >= 18,
        "the template's 18 migrations and this crate's additions"
    );
    assert_eq!(names[17], "2024-01-01-000018_create_user_audit_log_table");
    let db = TestDb::empty().await;
    let url = db.url();
    let env = [("DB_CONNECTION_STRING", url.as_str())];

    let out = run(&env, &["migrate", "list"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout.matches("[pending]").count(), n, "{stdout}");
    assert!(
        stdout.contains(&format!("0 applied, {n} pending")),
        "{stdout}"
    );

    let out = run(&env, &["migrate"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let applied: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Applied  "))
        .collect();
    assert_eq!(applied, names, "applied in order, each printed");

    let out = run(&env, &["migrate", "list"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains(&format!("{n} applied, 0 pending")),
        "{stdout}"
    );

    let out = run(&env, &["migrate", "run"]);
    assert!(text(&out).0.contains("No pending migrations."));

    let out = run(&env, &["migrate", "revert", "--steps", "2"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    let reverted: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Reverted "))
        .collect();
    assert_eq!(reverted, vec![names[n - 1].as_str(), names[n - 2].as_str()]);
    let left = i64::try_from(n - 2).expect("small");
    assert_eq!(
        count(&db, "SELECT count(*) FROM __diesel_schema_migrations").await,
        left
    );

    let out = run(&env, &["migrate", "redo"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    let newest = &names[n - 3];
    assert!(stdout.contains(&format!("Reverted {newest}")), "{stdout}");
    assert!(stdout.contains(&format!("Applied  {newest}")), "{stdout}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM __diesel_schema_migrations").await,
        left
    );

    let out = run(&env, &["migrate", "revert", "--all"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout.matches("Reverted ").count(), n - 2, "{stdout}");
    assert_eq!(
        count(&db, OUR_OBJECTS).await,
        0,
        "tables, views or functions left"
    );

    let out = run(&env, &["migrate", "revert"]);
    assert!(text(&out).0.contains("No applied migrations to revert."));
}

#[tokio::test]
async fn two_migrators_at_once_both_succeed_and_apply_each_migration_once() {
    let db = TestDb::empty().await;
    let url = db.url();
    let spawn = || {
        Command::new(BIN)
            .env_clear()
            .env("DB_CONNECTION_STRING", &url)
            .arg("migrate")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let a = spawn();
    let b = spawn();
    let a = a.wait_with_output().expect("a");
    let b = b.wait_with_output().expect("b");
    assert_eq!(a.status.code(), Some(0), "{:?}", text(&a));
    assert_eq!(b.status.code(), Some(0), "{:?}", text(&b));
    let applied_a = text(&a).0.matches("Applied  ").count();
    let applied_b = text(&b).0.matches("Applied  ").count();
    let n = migration_names().len();
    assert_eq!(
        applied_a + applied_b,
        n,
        "each migration applied by exactly one process"
    );
    let n = i64::try_from(n).expect("small");
    assert_eq!(
        count(&db, "SELECT count(*) FROM __diesel_schema_migrations").await,
        n
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT version) FROM __diesel_schema_migrations"
        )
        .await,
        n
    );
    // The template's own table records its 18 names, once each.
    assert_eq!(
        count(&db, "SELECT count(DISTINCT name) FROM migrations").await,
        18
    );
    assert_eq!(count(&db, "SELECT count(*) FROM migrations").await, 18);
}

#[tokio::test]
async fn status_shows_each_replica_with_its_password_redacted() {
    let db = TestDb::migrated().await;
    let url = db.url();
    // The server itself stands in for a replica (it is not in recovery, so
    // its lag is zero); the second entry is unreachable.
    let replica = url.replacen("postgres@", "postgres:r3plicapw@", 1);
    let replicas = format!("{replica},postgres://u:other@127.0.0.1:1/x");
    let out = run(
        &[
            ("DB_CONNECTION_STRING", &url),
            ("DB_READ_REPLICA_URLS", &replicas),
        ],
        &["status"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the primary answers: {stdout}{stderr}"
    );
    let shown = replica.replacen("r3plicapw", "***", 1);
    assert!(
        stdout.contains(&format!("replica:    {shown} (healthy, lag 0 ms)")),
        "{stdout}"
    );
    assert!(
        stdout.contains("replica:    postgres://u:***@127.0.0.1:1/x (skipped, lag unknown)"),
        "{stdout}"
    );
    assert!(!stdout.contains("r3plicapw") && !stderr.contains("r3plicapw"));
}

#[test]
fn configuration_errors_never_echo_a_password() {
    // A password with an unencoded `?` spills into the port and parameters.
    for url in [
        "postgres://app:abc?s3cretPW@db/app",
        "postgres://app:s3cretPW?x=1@db/app",
    ] {
        let out = run(&[("DB_CONNECTION_STRING", url)], &["status"]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{url}: {stdout}{stderr}");
        assert!(stderr.contains("DB_CONNECTION_STRING"), "{stderr}");
        assert!(
            !stderr.contains("s3cretPW") && !stdout.contains("s3cretPW"),
            "{stderr}"
        );
    }
    // A `.env` line that does not parse is not repeated either.
    let dir = empty_dir();
    std::fs::write(dir.join(".env"), "DB_HOST=db\nDB_PASSWORD=\"s3cretPW\n").expect(".env");
    let out = run_in(&dir, &[], &["status"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains(".env: a line does not parse"), "{stderr}");
    assert!(!stderr.contains("s3cretPW"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
