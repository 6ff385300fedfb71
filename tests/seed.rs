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

/// The seed emails the CLI warned about on stderr, in order: one line each.
fn warned(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
        .collect()
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

    // Someone changed a seed user; a second seed changes nothing at all,
    // names each existing account on stderr and still succeeds outside
    // production.
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
    assert_eq!(stdout(&second).matches("Created  ").count(), 0);
    assert_eq!(
        warned(&second),
        vec![
            "superadmin@example.com",
            "admin@example.com",
            "user@example.com",
            "user.fr@example.com"
        ]
    );
    let mut expected_after = expected.clone();
    expected_after[0].1 = "Renamed Admin".to_owned();
    expected_after[0].2 = "user".to_owned();
    expected_after[0].3 = serde_json::json!([]);
    expected_after[0].4 = "de".to_owned();
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
    // A session of the account from before the reset.
    use pronghorn_db::{SessionCookie, SessionData, SessionStore};
    let mut data = SessionData::new(SessionCookie::with_max_age(chrono::Duration::hours(1)));
    data.fields
        .insert("userId".into(), serde_json::json!(u.id.0.to_string()));
    store
        .set_session("before-the-reset", &data)
        .await
        .expect("session");

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
    assert_eq!(
        store.get_session("before-the-reset").await.expect("read"),
        None,
        "a reset ends the account's sessions, as every password change does"
    );
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
    // A first seed with a real password is allowed in production.
    let first = run(
        &db,
        &[
            ("APP_ENV", "production"),
            ("SEED_PASSWORD", "prod-ok-password"),
        ],
        &["seed"],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(stdout(&first).matches("Created  ").count(), 4);
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
    for env in [("APP_ENV", "production"), ("NODE_ENV", "production")] {
        let out = run(
            &db,
            &[env, ("SEED_PASSWORD", "whatever-pass-1")],
            &["seed", "--take-over-existing"],
        );
        assert_eq!(out.status.code(), Some(1), "{env:?}");
        assert!(
            stderr(&out).contains("refusing to take over existing accounts"),
            "{}",
            stderr(&out)
        );
        // Seeding again finds the four accounts existing: they are left
        // alone, and production cannot tell them from a stranger's.
        let out = run(
            &db,
            &[env, ("SEED_PASSWORD", "prod-ok-password")],
            &["seed"],
        );
        assert_eq!(out.status.code(), Some(1), "{env:?}: {}", stderr(&out));
        assert_eq!(warned(&out).len(), 4, "{}", stderr(&out));
        assert!(
            stderr(&out)
                .contains("error: 4 seed account(s) already existed and were left unchanged"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(rows(&db).await, before, "nothing changed");
    for flags in [
        ["--clear-users", "--reset-passwords"],
        ["--take-over-existing", "--reset-passwords"],
        ["--take-over-existing", "--clear-users"],
    ] {
        let out = run(&db, &[], &["seed", flags[0], flags[1]]);
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
    }
}

const STRANGER_PASSWORD: &str = "strangers-own-password-1";
const SEED_PASSWORD: &str = "the-seed-password-1";

/// The whole `users` row of the account whose email is `email` ignoring
/// case, as JSON text (every column, the password hash included).
async fn account_row(db: &TestDb, email: &str) -> String {
    db.client()
        .await
        .query_one(
            "SELECT row_to_json(u)::text FROM users u WHERE lower(email) = lower($1)",
            &[&email],
        )
        .await
        .expect("exactly one account")
        .get(0)
}

/// A stranger registers a seed email before any seed, through the store's
/// normal registration, with a password of their own.
async fn stranger_registers(
    store: &pronghorn_db::PgStore,
    email: &str,
) -> pronghorn_db::models::User {
    use pronghorn_db::models::NewLocalUser;
    use pronghorn_db::UserStore;
    let stranger = store
        .create_user(NewLocalUser::new(email, STRANGER_PASSWORD, "Not An Admin"))
        .await
        .expect("register");
    assert_eq!(stranger.role.as_deref(), Some("user"));
    stranger
}

/// Whether `password` logs in to `email`; any other outcome than success or
/// `InvalidCredentials` fails the test.
async fn logs_in(store: &pronghorn_db::PgStore, email: &str, password: &str) -> bool {
    use pronghorn_db::{Error, UserStore};
    match store.authenticate(email, password).await {
        Ok(_) => true,
        Err(Error::InvalidCredentials) => false,
        Err(e) => panic!("unexpected login error: {e}"),
    }
}

#[tokio::test]
async fn seed_leaves_a_strangers_account_alone_and_reports_it() {
    use pronghorn_db::seed::{self, ExistingAccount, ExistingAccounts};
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let stranger = stranger_registers(&store, "superadmin@example.com").await;
    let before = account_row(&db, "superadmin@example.com").await;

    let report = seed::seed(&store, SEED_PASSWORD, false, ExistingAccounts::Leave)
        .await
        .expect("seed");
    assert_eq!(
        report.skipped,
        vec![ExistingAccount {
            seed_email: "superadmin@example.com",
            email: "superadmin@example.com".to_owned(),
            id: stranger.id,
        }]
    );
    assert_eq!(
        report.created,
        vec![
            "admin@example.com",
            "user@example.com",
            "user.fr@example.com"
        ]
    );
    assert!(report.taken_over.is_empty());
    assert_eq!(
        account_row(&db, "superadmin@example.com").await,
        before,
        "not one column of the stranger's account changed"
    );
    let superadmins: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM users WHERE role = 'superadmin'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(superadmins, 0);
    assert!(logs_in(&store, "superadmin@example.com", STRANGER_PASSWORD).await);
    assert!(!logs_in(&store, "superadmin@example.com", SEED_PASSWORD).await);
    assert!(logs_in(&store, "admin@example.com", SEED_PASSWORD).await);
}

#[tokio::test]
async fn the_cli_names_a_strangers_account_and_fails_in_production() {
    use pronghorn_db::UserStore;
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let stranger = stranger_registers(&store, "superadmin@example.com").await;
    let before = account_row(&db, "superadmin@example.com").await;

    let out = run(
        &db,
        &[("NODE_ENV", "production"), ("SEED_PASSWORD", SEED_PASSWORD)],
        &["seed"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).matches("Created  ").count(),
        3,
        "the missing seed users are still created: {}",
        stdout(&out)
    );
    assert_eq!(warned(&out), vec!["superadmin@example.com"]);
    assert!(
        stderr(&out).contains(&format!(
            "warning: superadmin@example.com already belongs to an existing account \
             (superadmin@example.com, id {}); left unchanged",
            stranger.id
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("error: 1 seed account(s) already existed"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(SEED_PASSWORD) && !stdout(&out).contains(SEED_PASSWORD));

    let out = run(&db, &[("SEED_PASSWORD", SEED_PASSWORD)], &["seed"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(warned(&out).len(), 4, "{}", stderr(&out));
    assert_eq!(warned(&out)[0], "superadmin@example.com");

    assert_eq!(account_row(&db, "superadmin@example.com").await, before);
    assert!(logs_in(&store, "superadmin@example.com", STRANGER_PASSWORD).await);
    assert!(!logs_in(&store, "superadmin@example.com", SEED_PASSWORD).await);
    let user = store.user_by_id(stranger.id).await.expect("stranger");
    assert_eq!(user.role.as_deref(), Some("user"));
}

#[tokio::test]
async fn a_case_variant_of_a_seed_email_is_the_same_account() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    // Through registration the email is normalised...
    let stranger = stranger_registers(&store, "SuperAdmin@Example.com").await;
    assert_eq!(stranger.email, "superadmin@example.com");
    // ...but an app that wrote the table directly (the Node template did)
    // may have stored the case as typed.
    let hash = store
        .passwords()
        .hash(STRANGER_PASSWORD)
        .await
        .expect("hash");
    db.client()
        .await
        .execute(
            "INSERT INTO users (email, password_hash, display_name, role)
             VALUES ('Admin@EXAMPLE.com', $1, 'Also Not An Admin', 'user')",
            &[&hash],
        )
        .await
        .expect("raw insert");
    let before_superadmin = account_row(&db, "superadmin@example.com").await;
    let before_admin = account_row(&db, "admin@example.com").await;

    for vars in [
        vec![("SEED_PASSWORD", SEED_PASSWORD), ("NODE_ENV", "production")],
        vec![("SEED_PASSWORD", SEED_PASSWORD)],
    ] {
        let out = run(&db, &vars, &["seed"]);
        let production = vars.len() == 2;
        assert_eq!(
            out.status.code(),
            Some(if production { 1 } else { 0 }),
            "{vars:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            warned(&out)[..2],
            ["superadmin@example.com", "admin@example.com"],
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("(Admin@EXAMPLE.com, id "),
            "the stored spelling is named: {}",
            stderr(&out)
        );
    }
    // account_row expects exactly one row per address: no twin was created.
    assert_eq!(
        account_row(&db, "superadmin@example.com").await,
        before_superadmin
    );
    assert_eq!(account_row(&db, "admin@example.com").await, before_admin);
    for email in ["SuperAdmin@Example.com", "admin@example.com"] {
        assert!(logs_in(&store, email, STRANGER_PASSWORD).await, "{email}");
        assert!(!logs_in(&store, email, SEED_PASSWORD).await, "{email}");
    }

    // Taken over deliberately, the account gets the seed email as spelled.
    let out = run(
        &db,
        &[("SEED_PASSWORD", SEED_PASSWORD)],
        &["seed", "--take-over-existing"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let emails: Vec<String> = rows(&db).await.into_iter().map(|r| r.0).collect();
    assert_eq!(
        emails,
        [
            "admin@example.com",
            "superadmin@example.com",
            "user.fr@example.com",
            "user@example.com"
        ]
    );
    assert!(logs_in(&store, "admin@example.com", SEED_PASSWORD).await);
    assert!(!logs_in(&store, "admin@example.com", STRANGER_PASSWORD).await);
}

#[tokio::test]
async fn take_over_existing_raises_the_account_and_logs_its_owner_out() {
    use pronghorn_db::models::NewLocalUser;
    use pronghorn_db::{
        Error, PasswordResetStore, RefreshTokenStore, SessionCookie, SessionData, SessionStore,
        TokenProblem, UserStore,
    };
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let stranger = stranger_registers(&store, "superadmin@example.com").await;
    let bystander = store
        .create_user(NewLocalUser::new(
            "bystander@example.org",
            STRANGER_PASSWORD,
            "Bystander",
        ))
        .await
        .expect("bystander");
    let session_of = |id: pronghorn_db::models::UserId| {
        let mut data = SessionData::new(SessionCookie::with_max_age(chrono::Duration::hours(1)));
        data.fields.insert("userId".into(), serde_json::json!(id));
        data
    };
    store
        .set_session("stranger-sid", &session_of(stranger.id))
        .await
        .expect("session");
    store
        .set_session("bystander-sid", &session_of(bystander.id))
        .await
        .expect("session");
    let ttl = chrono::Duration::days(7);
    let stranger_token = store
        .issue_refresh_token(stranger.id, ttl)
        .await
        .expect("token");
    let bystander_token = store
        .issue_refresh_token(bystander.id, ttl)
        .await
        .expect("token");
    let reset = store
        .request_password_reset(
            "superadmin@example.com",
            &pronghorn_db::ResetPolicy::default(),
            &pronghorn_db::models::RequestMeta::default(),
        )
        .await
        .expect("reset")
        .delivery
        .expect("a token for an existing account");
    // Had the stranger's account been made an admin, the links it
    // generated for others go with the take-over too.
    db.client()
        .await
        .execute(
            "UPDATE users SET role = 'admin' WHERE email = 'superadmin@example.com'",
            &[],
        )
        .await
        .expect("make the stranger an admin");
    let generated = store
        .admin_generate_password_reset(
            stranger.id,
            bystander.id,
            &pronghorn_db::models::RequestMeta::default(),
        )
        .await
        .expect("a link the stranger generated")
        .token;

    let out = run(
        &db,
        &[("SEED_PASSWORD", SEED_PASSWORD)],
        &["seed", "--take-over-existing"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "Took over  superadmin@example.com (id {}): 1 session(s) ended, 1 refresh token(s) revoked",
            stranger.id
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(stdout(&out).matches("Created  ").count(), 3);
    assert!(warned(&out).is_empty(), "{}", stderr(&out));

    let row = rows(&db)
        .await
        .into_iter()
        .find(|r| r.0 == "superadmin@example.com")
        .expect("row");
    assert_eq!(
        row,
        (
            "superadmin@example.com".to_owned(),
            "Super Admin".to_owned(),
            "superadmin".to_owned(),
            serde_json::json!(["system_config"]),
            "en".to_owned(),
            true,
            "local".to_owned(),
        )
    );
    assert!(logs_in(&store, "superadmin@example.com", SEED_PASSWORD).await);
    assert!(!logs_in(&store, "superadmin@example.com", STRANGER_PASSWORD).await);

    assert!(store
        .get_session("stranger-sid")
        .await
        .expect("get")
        .is_none());
    let left: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM session WHERE sess->>'userId' = $1",
            &[&stranger.id.to_string()],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
    assert!(store
        .get_session("bystander-sid")
        .await
        .expect("get")
        .is_some());
    match store
        .verify_refresh_token(stranger_token.token.expose())
        .await
    {
        Err(Error::TokenRejected {
            problem: TokenProblem::Revoked,
        }) => {}
        other => panic!("expected a revoked token, got {other:?}"),
    }
    assert_eq!(
        store
            .verify_refresh_token(bystander_token.token.expose())
            .await
            .expect("the bystander's token lives")
            .user_id,
        bystander.id
    );
    // The link the account asked for, and the one it generated as an admin.
    for (link, token) in [("requested", &reset.token), ("generated", &generated)] {
        match store
            .reset_password(
                token.expose(),
                "strangers-new-password-2",
                &pronghorn_db::models::RequestMeta::default(),
            )
            .await
        {
            Err(Error::TokenRejected {
                problem: TokenProblem::Expired,
            }) => {}
            other => panic!("expected the {link} link expired, got {other:?}"),
        }
    }
    assert!(logs_in(&store, "superadmin@example.com", SEED_PASSWORD).await);
    assert!(logs_in(&store, "bystander@example.org", STRANGER_PASSWORD).await);
}
