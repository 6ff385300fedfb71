//! `pronghorn-db seed`: the template's four users, idempotent, and refused
//! in production where it would destroy or weaken anything.

mod common;

use common::TestDb;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_pronghorn-db");

fn run(db: &TestDb, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let dir =
        std::env::temp_dir().join(format!("pronghorn-seed-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(&dir)
        .env("DB_CONNECTION_STRING", db.url())
        .args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn rows(
    db: &TestDb,
) -> Vec<(
    String,
    String,
    String,
    serde_json::Value,
    String,
    bool,
    String,
)> {
    db.client()
        .await
        .query(
            "SELECT email, display_name, role, additional_roles::text, language_preference,
                    email_verified, oauth_provider
             FROM users ORDER BY email",
            &[],
        )
        .await
        .expect("users")
        .into_iter()
        .map(|r| {
            let roles: String = r.get(3);
            (
                r.get(0),
                r.get(1),
                r.get(2),
                serde_json::from_str(&roles).expect("json"),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect()
}

#[tokio::test]
async fn seeding_twice_leaves_exactly_the_four_users() {
    let db = TestDb::migrated().await;
    let first = run(&db, &[], &["seed"]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    assert_eq!(
        stdout(&first).matches("Created  ").count(),
        4,
        "{}",
        stdout(&first)
    );
    assert!(
        stdout(&first).contains("superadmin   1"),
        "{}",
        stdout(&first)
    );
    assert!(
        stdout(&first).contains("user         2"),
        "{}",
        stdout(&first)
    );

    let expected = vec![
        (
            "admin@example.com".to_owned(),
            "Admin User".to_owned(),
            "admin".to_owned(),
            serde_json::json!(["moderator"]),
            "en".to_owned(),
            true,
            "local".to_owned(),
        ),
        (
            "superadmin@example.com".to_owned(),
            "Super Admin".to_owned(),
            "superadmin".to_owned(),
            serde_json::json!(["system_config"]),
            "en".to_owned(),
            true,
            "local".to_owned(),
        ),
        (
            "user.fr@example.com".to_owned(),
            "Utilisateur Test".to_owned(),
            "user".to_owned(),
            serde_json::json!(["beta_tester"]),
            "fr".to_owned(),
            true,
            "local".to_owned(),
        ),
        (
            "user@example.com".to_owned(),
            "Test User".to_owned(),
            "user".to_owned(),
            serde_json::json!([]),
            "en".to_owned(),
            true,
            "local".to_owned(),
        ),
    ];
    assert_eq!(rows(&db).await, expected);

    // Someone changed a seed user; a second seed restores role, extra roles
    // and language, never the name or the password.
    let client = db.client().await;
    let hash_before: String = client
        .query_one(
            "SELECT password_hash FROM users WHERE email = 'admin@example.com'",
            &[],
        )
        .await
        .expect("hash")
        .get(0);
    client
        .batch_execute(
            "UPDATE users SET role = 'user', additional_roles = '[]', language_preference = 'de',
                    display_name = 'Renamed Admin'
             WHERE email = 'admin@example.com'",
        )
        .await
        .expect("tamper");
    let second = run(&db, &[("SEED_PASSWORD", "another-password-1")], &["seed"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(stdout(&second).matches("Updated  ").count(), 4);
    assert_eq!(stdout(&second).matches("Created  ").count(), 0);
    let mut expected_after = expected.clone();
    expected_after[0].1 = "Renamed Admin".to_owned();
    assert_eq!(rows(&db).await, expected_after);
    let hash_after: String = client
        .query_one(
            "SELECT password_hash FROM users WHERE email = 'admin@example.com'",
            &[],
        )
        .await
        .expect("hash")
        .get(0);
    assert_eq!(
        hash_before, hash_after,
        "a plain seed never changes a password"
    );
}

#[tokio::test]
async fn seed_users_log_in_with_the_seed_password() {
    use pronghorn_db::UserStore;
    let db = TestDb::migrated().await;
    let out = run(&db, &[("SEED_PASSWORD", "seeded-password-1")], &["seed"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let store = db.store().await;
    let u = store
        .authenticate("user.fr@example.com", "seeded-password-1")
        .await
        .expect("login");
    assert_eq!(u.role.as_deref(), Some("user"));

    let out = run(
        &db,
        &[("SEED_PASSWORD", "reset-password-22")],
        &["seed", "--reset-passwords"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("4 password(s) reset."),
        "{}",
        stdout(&out)
    );
    assert!(store
        .authenticate("admin@example.com", "reset-password-22")
        .await
        .is_ok());
    assert!(store
        .authenticate("admin@example.com", "seeded-password-1")
        .await
        .is_err());
}

#[tokio::test]
async fn clear_users_keeps_superadmins() {
    let db = TestDb::migrated().await;
    assert_eq!(run(&db, &[], &["seed"]).status.code(), Some(0));
    db.client()
        .await
        .batch_execute(
            "INSERT INTO users (email, display_name, role) VALUES ('root2@x.io', 'R', 'superadmin'), ('x@x.io', 'X', NULL);
             UPDATE users SET is_blocked = true, blocked_by = (SELECT id FROM users WHERE email = 'admin@example.com')
             WHERE email = 'user@example.com'",
        )
        .await
        .expect("more users");
    let out = run(&db, &[], &["seed", "--clear-users"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Deleted 4 user(s)"),
        "{}",
        stdout(&out)
    );
    let left: Vec<String> = rows(&db).await.into_iter().map(|r| r.0).collect();
    assert_eq!(
        left,
        vec!["root2@x.io".to_owned(), "superadmin@example.com".to_owned()]
    );
}

#[tokio::test]
async fn production_refuses_destructive_seeds_and_the_default_password() {
    let db = TestDb::migrated().await;
    assert_eq!(
        run(&db, &[("SEED_PASSWORD", "prod-ok-password")], &["seed"])
            .status
            .code(),
        Some(0)
    );
    let before = rows(&db).await;
    for env in [("APP_ENV", "production"), ("NODE_ENV", "production")] {
        let out = run(&db, &[env], &["seed", "--clear-users"]);
        assert_eq!(out.status.code(), Some(1), "{env:?}");
        assert!(stderr(&out).contains("production"), "{}", stderr(&out));
        let out = run(
            &db,
            &[env, ("SEED_PASSWORD", "whatever-pass-1")],
            &["seed", "--reset-passwords"],
        );
        assert_eq!(out.status.code(), Some(1), "{env:?}");
        let out = run(&db, &[env], &["seed"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "the default password is refused in production"
        );
        assert!(stderr(&out).contains("SEED_PASSWORD"), "{}", stderr(&out));
    }
    assert_eq!(rows(&db).await, before, "nothing changed");
    // A plain seed with a real password is allowed in production.
    let out = run(
        &db,
        &[
            ("APP_ENV", "production"),
            ("SEED_PASSWORD", "prod-ok-password"),
        ],
        &["seed"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        run(&db, &[], &["seed", "--clear-users", "--reset-passwords"])
            .status
            .code(),
        Some(2)
    );
}
