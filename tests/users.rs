//! Users, passwords, roles and the audit log through the store, against a
//! real PostgreSQL.

mod common;

use common::TestDb;
use pronghorn_db::models::AuditQuery;
use pronghorn_db::models::RequestMeta;
use pronghorn_db::models::Role;
use pronghorn_db::models::UserFilter;
use pronghorn_db::models::{NewLocalUser, NewOAuthUser, ProfileUpdate};
use pronghorn_db::models::{User, UserId};
use pronghorn_db::PageRequest;
use pronghorn_db::{AuditStore, DisabledStore, Error, PgStore, UserStore};
use std::sync::Arc;

const PW: &str = "correct horse battery";

fn meta() -> RequestMeta {
    RequestMeta {
        ip: Some("203.0.113.7".parse().expect("ip")),
        user_agent: Some("tests/1.0".into()),
    }
}

async fn user(store: &PgStore, email: &str, role: Role) -> User {
    let mut new = NewLocalUser::new(email, PW, format!("Name of {email}"));
    new.role = role;
    store.create_user(new).await.expect("create user")
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

async fn text(db: &TestDb, sql: &str) -> Option<String> {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

fn validation_field<T: std::fmt::Debug>(r: Result<T, Error>) -> &'static str {
    match r {
        Err(Error::Validation { field, .. }) => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn conflict<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Conflict { constraint }) => constraint,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::Forbidden { .. })),
        "expected Forbidden, got {r:?}"
    );
}

#[tokio::test]
async fn create_and_find_users() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let mut new = NewLocalUser::new("  Ann.Example@Example.COM ", PW, " Ann ");
    new.language = Some("fr".into());
    new.additional_roles = vec!["beta".into(), "beta".into()];
    let ann = store.create_user(new).await.expect("create");
    assert_eq!(ann.email, "ann.example@example.com");
    assert_eq!(ann.display_name, "Ann");
    assert_eq!(ann.language_preference.as_deref(), Some("fr"));
    assert_eq!(ann.role.as_deref(), Some("user"));
    assert_eq!(ann.oauth_provider.as_deref(), Some("local"));
    assert_eq!(ann.email_verified, Some(false));
    assert_eq!(ann.additional_roles, Some(serde_json::json!(["beta"])));
    let hash = ann.password_hash.clone().expect("hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!format!("{ann:?}").contains(&hash));

    assert_eq!(store.user_by_id(ann.id).await.expect("by id").id, ann.id);
    for probe in [
        "ann.example@example.com",
        "ANN.EXAMPLE@EXAMPLE.COM",
        "  Ann.Example@example.com\t",
    ] {
        assert_eq!(store.user_by_email(probe).await.expect(probe).id, ann.id);
    }
    assert!(matches!(
        store.user_by_email("nobody@example.com").await,
        Err(Error::NotFound { entity: "user" })
    ));
    assert!(matches!(
        store.user_by_id(UserId(uuid::Uuid::new_v4())).await,
        Err(Error::NotFound { entity: "user" })
    ));

    // Taken, whatever the letter case.
    let again = NewLocalUser::new("ANN.example@example.com", PW, "Other");
    assert_eq!(conflict(store.create_user(again).await), "users_email_key");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn a_template_era_mixed_case_email_is_found_and_guarded() {
    let db = TestDb::migrated().await;
    db.client()
        .await
        .batch_execute(
            "INSERT INTO users (email, display_name) VALUES ('Mixed.Case@Example.com', 'Old')",
        )
        .await
        .expect("insert");
    let store = db.store().await;
    let found = store
        .user_by_email("mixed.case@example.com")
        .await
        .expect("found");
    assert_eq!(found.email, "Mixed.Case@Example.com");
    let twin = NewLocalUser::new("mixed.case@example.com", PW, "Twin");
    assert_eq!(conflict(store.create_user(twin).await), "users_email_key");
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_query() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let cases: Vec<(NewLocalUser, &str)> = vec![
        (NewLocalUser::new("", PW, "Name"), "email"),
        (NewLocalUser::new("   ", PW, "Name"), "email"),
        (
            NewLocalUser::new(format!("{}@x.io", "a".repeat(260)), PW, "Name"),
            "email",
        ),
        (NewLocalUser::new("no-at-sign", PW, "Name"), "email"),
        (NewLocalUser::new("a\0b@x.io", PW, "Name"), "email"),
        (
            NewLocalUser::new("ok@x.io", PW, "n".repeat(101)),
            "display_name",
        ),
        (NewLocalUser::new("ok@x.io", PW, "  "), "display_name"),
        (
            NewLocalUser::new("ok@x.io", PW, "nul\0name"),
            "display_name",
        ),
        (NewLocalUser::new("ok@x.io", "short", "Name"), "password"),
        (
            NewLocalUser::new("ok@x.io", "with\0nul-password", "Name"),
            "password",
        ),
    ];
    for (new, field) in cases {
        let shown = format!("{new:?}");
        assert_eq!(
            validation_field(store.create_user(new).await),
            field,
            "{shown}"
        );
    }
    let mut long_role = NewLocalUser::new("ok@x.io", PW, "Name");
    long_role.additional_roles = vec!["r".repeat(51)];
    assert_eq!(
        validation_field(store.create_user(long_role).await),
        "additional_roles"
    );
    let mut long_lang = NewLocalUser::new("ok@x.io", PW, "Name");
    long_lang.language = Some("x".repeat(11));
    assert_eq!(
        validation_field(store.create_user(long_lang).await),
        "language_preference"
    );
    assert!(matches!(
        "owner".parse::<Role>(),
        Err(Error::Validation { field: "role", .. })
    ));
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 0);

    // A display name of exactly 100 characters (multi-byte) fits.
    let new = NewLocalUser::new("ok@x.io", PW, "é".repeat(100));
    assert!(store.create_user(new).await.is_ok());
    // SQL metacharacters are stored verbatim.
    let odd = "O'Brien \"; DROP TABLE users; --";
    let new = NewLocalUser::new("quote'@x.io", PW, odd);
    let created = store.create_user(new).await.expect("quotes are data");
    assert_eq!(
        store
            .user_by_id(created.id)
            .await
            .expect("read")
            .display_name,
        odd
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_registrations_of_one_email_make_one_user() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_user(NewLocalUser::new(
                    "race@example.com",
                    PW,
                    format!("Racer {i}"),
                ))
                .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(Error::Conflict { constraint }) => {
                assert_eq!(constraint, "users_email_key");
                conflicts += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 49));
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn oauth_users_are_found_or_created() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let new = NewOAuthUser {
        provider: "google".into(),
        oauth_id: "g-123".into(),
        email: "Oauth@Example.com".into(),
        display_name: "OAuth Person".into(),
        avatar_url: Some("https://example.com/a.png".into()),
        email_verified: true,
    };
    let (u, created) = store
        .find_or_create_oauth_user(new.clone())
        .await
        .expect("create");
    assert!(created);
    assert_eq!(u.password_hash, None);
    assert_eq!(u.oauth_provider.as_deref(), Some("google"));
    assert_eq!(u.email_verified, Some(true));
    let (again, created) = store
        .find_or_create_oauth_user(new.clone())
        .await
        .expect("find");
    assert!(!created);
    assert_eq!(again.id, u.id);

    // Another identity with the same email is a conflict, not a takeover.
    let mut other = new.clone();
    other.oauth_id = "g-999".into();
    assert_eq!(
        conflict(store.find_or_create_oauth_user(other).await),
        "users_email_key"
    );
    let mut local = new.clone();
    local.provider = "local".into();
    assert_eq!(
        validation_field(store.find_or_create_oauth_user(local).await),
        "oauth_provider"
    );
    let mut empty = new;
    empty.oauth_id = " ".into();
    assert_eq!(
        validation_field(store.find_or_create_oauth_user(empty).await),
        "oauth_id"
    );

    // An OAuth account has no password to log in with.
    assert!(matches!(
        store.authenticate("oauth@example.com", PW).await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test]
async fn authentication_outcomes() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let admin = user(&store, "admin@x.io", Role::Admin).await;
    let bob = user(&store, "bob@x.io", Role::User).await;
    assert_eq!(bob.last_login, None);

    let me = store.authenticate(" BOB@x.io ", PW).await.expect("login");
    assert_eq!(me.id, bob.id);
    assert!(me.last_login.is_some());

    let unknown = store.authenticate("nobody@x.io", PW).await;
    let wrong = store.authenticate("bob@x.io", "not the password").await;
    assert!(matches!(unknown, Err(Error::InvalidCredentials)));
    assert!(matches!(wrong, Err(Error::InvalidCredentials)));
    // One message for both: it does not say which part was wrong.
    assert_eq!(
        unknown.expect_err("unknown").to_string(),
        wrong.expect_err("wrong").to_string()
    );
    assert_eq!(validation_field(store.authenticate("", PW).await), "email");

    store
        .block_user(admin.id, bob.id, "spam", &meta())
        .await
        .expect("block");
    assert!(matches!(
        store.authenticate("bob@x.io", PW).await,
        Err(Error::AccountBlocked)
    ));
    // A wrong password on a blocked account says nothing about the block.
    assert!(matches!(
        store.authenticate("bob@x.io", "not the password").await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test]
async fn legacy_bcrypt_and_weak_argon2_hashes_are_upgraded_on_login() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let mut emails = Vec::new();
    for (i, prefix) in ["$2a$", "$2b$", "$2y$"].iter().enumerate() {
        let h = bcrypt::hash("legacy password", 4).expect("bcrypt");
        let h = format!("{prefix}{}", &h[4..]);
        let email = format!("legacy{i}@x.io");
        client
            .batch_execute(&format!(
                "INSERT INTO users (email, display_name, password_hash) VALUES ('{email}', 'L', '{h}')"
            ))
            .await
            .expect("insert");
        emails.push(email);
    }
    for email in &emails {
        assert!(matches!(
            store.authenticate(email, "wrong password").await,
            Err(Error::InvalidCredentials)
        ));
        let u = store
            .authenticate(email, "legacy password")
            .await
            .expect("bcrypt login");
        let stored = text(
            &db,
            &format!("SELECT password_hash FROM users WHERE id = '{}'", u.id),
        )
        .await;
        assert!(stored
            .expect("hash")
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        store
            .authenticate(email, "legacy password")
            .await
            .expect("argon2 login after the upgrade");
    }

    // argon2id with parameters below the current ones is upgraded too.
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let weak = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8192, 1, 1, None).expect("params"),
    )
    .hash_password(b"weak params pw")
    .expect("hash")
    .to_string();
    client
        .batch_execute(&format!(
            "INSERT INTO users (email, display_name, password_hash) VALUES ('weak@x.io', 'W', '{weak}')"
        ))
        .await
        .expect("insert");
    store
        .authenticate("weak@x.io", "weak params pw")
        .await
        .expect("login");
    let stored = text(
        &db,
        "SELECT password_hash FROM users WHERE email = 'weak@x.io'",
    )
    .await
    .expect("hash");
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert_ne!(stored, weak);
}

#[tokio::test]
async fn a_user_made_by_the_node_template_logs_in_and_gets_an_argon2id_hash() {
    let db = TestDb::empty().await;
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/template_schema.sql"
    ))
    .expect("fixture");
    db.client()
        .await
        .batch_execute(&fixture)
        .await
        .expect("load fixture");
    let store = db.store().await;
    pronghorn_db::migrate::run_pending(&store)
        .await
        .expect("adopt");

    let email = text(&db, "SELECT email FROM users WHERE password_hash LIKE '$2a$12$%' AND NOT coalesce(is_blocked, false) ORDER BY email LIMIT 1")
        .await
        .expect("a bcryptjs user");
    let u = store
        .authenticate(&email, "TemplatePass123!")
        .await
        .expect("login with the template's password");
    let stored = text(
        &db,
        &format!("SELECT password_hash FROM users WHERE id = '{}'", u.id),
    )
    .await
    .expect("hash");
    assert!(stored.starts_with("$argon2id$"), "{stored}");
}

#[tokio::test]
async fn profile_password_and_flags() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let u = user(&store, "pat@x.io", Role::User).await;
    let update = ProfileUpdate {
        display_name: Some("Pat".into()),
        language_preference: Some("de".into()),
        avatar_url: Some(Some("https://x.io/p.png".into())),
    };
    let after = store
        .update_profile(u.id, &update, &meta())
        .await
        .expect("update");
    assert_eq!(after.display_name, "Pat");
    assert_eq!(after.language_preference.as_deref(), Some("de"));
    assert_eq!(after.avatar_url.as_deref(), Some("https://x.io/p.png"));
    assert!(after.updated_at >= u.updated_at);
    let cleared = ProfileUpdate {
        avatar_url: Some(None),
        ..Default::default()
    };
    assert_eq!(
        store
            .update_profile(u.id, &cleared, &meta())
            .await
            .expect("clear")
            .avatar_url,
        None
    );
    let bad = ProfileUpdate {
        display_name: Some("x".repeat(101)),
        ..Default::default()
    };
    assert_eq!(
        validation_field(store.update_profile(u.id, &bad, &meta()).await),
        "display_name"
    );

    let log = store
        .audit_log(
            &AuditQuery::Action("profile_updated".into()),
            &PageRequest::default(),
        )
        .await
        .expect("log");
    assert_eq!(log.items.len(), 2);
    assert_eq!(
        log.items[1].details,
        Some(
            serde_json::json!({ "fields": ["display_name", "language_preference", "avatar_url"] })
        )
    );
    assert_eq!(
        log.items[1]
            .ip_address
            .map(|i| i.addr().to_string())
            .as_deref(),
        Some("203.0.113.7")
    );
    assert_eq!(log.items[1].user_agent.as_deref(), Some("tests/1.0"));

    assert!(matches!(
        store
            .change_password(u.id, "not it at all", "a new password", &meta())
            .await,
        Err(Error::InvalidCredentials)
    ));
    assert_eq!(
        validation_field(store.change_password(u.id, PW, "short", &meta()).await),
        "password"
    );
    store
        .change_password(u.id, PW, "a new password", &meta())
        .await
        .expect("change");
    assert!(store
        .authenticate("pat@x.io", "a new password")
        .await
        .is_ok());
    assert!(matches!(
        store.authenticate("pat@x.io", PW).await,
        Err(Error::InvalidCredentials)
    ));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM user_audit_log WHERE action = 'password_changed'"
        )
        .await,
        1
    );

    assert_eq!(
        store
            .verify_email(u.id)
            .await
            .expect("verify")
            .email_verified,
        Some(true)
    );
    assert!(store
        .record_login(u.id)
        .await
        .expect("login")
        .last_login
        .is_some());
    let with = store
        .add_additional_role(u.id, "moderator")
        .await
        .expect("add");
    let again = store
        .add_additional_role(u.id, "moderator")
        .await
        .expect("add twice");
    assert_eq!(
        with.additional_roles,
        Some(serde_json::json!(["moderator"]))
    );
    assert_eq!(again.additional_roles, with.additional_roles);
    let without = store
        .remove_additional_role(u.id, "moderator")
        .await
        .expect("remove");
    assert_eq!(without.additional_roles, Some(serde_json::json!([])));
    assert!(store
        .remove_additional_role(u.id, "moderator")
        .await
        .is_ok());
    assert_eq!(
        validation_field(store.add_additional_role(u.id, "").await),
        "additional_roles"
    );
    let ghost = UserId(uuid::Uuid::new_v4());
    assert!(matches!(
        store.verify_email(ghost).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.add_additional_role(ghost, "x").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn role_hierarchy_guards_every_admin_action() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let root = user(&store, "root@x.io", Role::Superadmin).await;
    let admin = user(&store, "admin@x.io", Role::Admin).await;
    let admin2 = user(&store, "admin2@x.io", Role::Admin).await;
    let u = user(&store, "u@x.io", Role::User).await;
    let m = meta();

    // An admin may manage users, within its own rank.
    forbidden(store.change_role(admin.id, u.id, Role::Admin, &m).await);
    forbidden(
        store
            .change_role(admin.id, u.id, Role::Superadmin, &m)
            .await,
    );
    forbidden(store.change_role(admin.id, admin2.id, Role::User, &m).await);
    forbidden(store.change_role(admin.id, root.id, Role::User, &m).await);
    forbidden(store.change_role(admin.id, admin.id, Role::User, &m).await);
    forbidden(store.change_role(root.id, u.id, Role::Superadmin, &m).await);
    forbidden(
        store
            .change_role(UserId(uuid::Uuid::new_v4()), u.id, Role::User, &m)
            .await,
    );
    assert!(matches!(
        store
            .change_role(root.id, UserId(uuid::Uuid::new_v4()), Role::User, &m)
            .await,
        Err(Error::NotFound { entity: "user" })
    ));
    // A superadmin promotes a user to admin, and demotes an admin.
    let promoted = store
        .change_role(root.id, u.id, Role::Admin, &m)
        .await
        .expect("promote");
    assert_eq!(promoted.role.as_deref(), Some("admin"));
    let demoted = store
        .change_role(root.id, admin2.id, Role::User, &m)
        .await
        .expect("demote");
    assert_eq!(demoted.role.as_deref(), Some("user"));
    let entries = store
        .audit_log(
            &AuditQuery::Action("role_changed".into()),
            &PageRequest::default(),
        )
        .await
        .expect("audit");
    assert_eq!(entries.items.len(), 2);
    assert_eq!(
        entries.items[1].details,
        Some(serde_json::json!({"previousRole": "user", "newRole": "admin"}))
    );
    assert_eq!(entries.items[1].actor_id, Some(root.id));
    assert_eq!(entries.items[1].user_id, Some(u.id));

    // Block, unblock, delete follow the same rule.
    forbidden(store.block_user(admin.id, root.id, "no", &m).await);
    forbidden(
        store
            .block_user(admin.id, u.id, "u is an admin now", &m)
            .await,
    );
    forbidden(store.delete_user(admin.id, root.id, &m).await);
    let blocked = store
        .block_user(admin.id, admin2.id, "spam", &m)
        .await
        .expect("block");
    assert!(blocked.blocked());
    assert!(blocked.blocked_at.is_some());
    assert_eq!(blocked.blocked_by, Some(admin.id));
    assert_eq!(blocked.blocked_reason.as_deref(), Some("spam"));
    assert_eq!(
        validation_field(store.block_user(admin.id, admin2.id, "  ", &m).await),
        "reason"
    );
    // A blocked admin cannot act.
    let b2 = store
        .block_user(root.id, admin.id, "rogue", &m)
        .await
        .expect("block admin");
    assert!(b2.blocked());
    forbidden(store.unblock_user(admin.id, admin2.id, &m).await);
    let unblocked = store
        .unblock_user(root.id, admin2.id, &m)
        .await
        .expect("unblock");
    assert!(!unblocked.blocked());
    assert_eq!(unblocked.blocked_at, None);
    assert_eq!(unblocked.blocked_reason, None);
    assert_eq!(unblocked.blocked_by, None);

    // Deleting an admin who blocked someone keeps the block, forgets the actor.
    store
        .block_user(root.id, admin2.id, "again", &m)
        .await
        .expect("block");
    store
        .unblock_user(root.id, admin.id, &m)
        .await
        .expect("unblock admin");
    store
        .block_user(admin.id, admin2.id, "by admin", &m)
        .await
        .expect("block by admin");
    store
        .delete_user(root.id, admin.id, &m)
        .await
        .expect("delete admin");
    let still = store.user_by_id(admin2.id).await.expect("still there");
    assert!(still.blocked());
    assert_eq!(still.blocked_by, None);
    let deleted = store
        .audit_log(
            &AuditQuery::Action("user_deleted".into()),
            &PageRequest::default(),
        )
        .await
        .expect("audit");
    assert_eq!(
        deleted.items[0].details,
        Some(serde_json::json!({"email": "admin@x.io"}))
    );
    assert_eq!(
        deleted.items[0].user_id, None,
        "ON DELETE SET NULL keeps the entry"
    );
    assert!(matches!(
        store.user_by_id(admin.id).await,
        Err(Error::NotFound { .. })
    ));
    let actions: Vec<String> = store
        .audit_log(&AuditQuery::Actor(root.id), &PageRequest::first(100))
        .await
        .expect("by actor")
        .items
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "user_deleted",   // admin
            "user_unblocked", // admin
            "user_blocked",   // admin2, again
            "user_unblocked", // admin2
            "user_blocked",   // admin (rogue)
            "role_changed",
            "role_changed"
        ]
    );
}

#[tokio::test]
async fn admin_created_and_updated_users_are_audited() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let admin = user(&store, "admin@x.io", Role::Admin).await;
    let mut new = NewLocalUser::new("made@x.io", PW, "Made");
    new.email_verified = true;
    let made = store
        .create_user_by_admin(admin.id, new, &meta())
        .await
        .expect("create");
    let mut too_high = NewLocalUser::new("boss@x.io", PW, "Boss");
    too_high.role = Role::Admin;
    forbidden(
        store
            .create_user_by_admin(admin.id, too_high, &meta())
            .await,
    );
    let update = ProfileUpdate {
        display_name: Some("Renamed".into()),
        ..Default::default()
    };
    let renamed = store
        .update_user_by_admin(admin.id, made.id, &update, &meta())
        .await
        .expect("update");
    assert_eq!(renamed.display_name, "Renamed");
    forbidden(
        store
            .update_user_by_admin(made.id, admin.id, &update, &meta())
            .await,
    );

    let log = store
        .audit_log(&AuditQuery::User(made.id), &PageRequest::default())
        .await
        .expect("log");
    let got: Vec<(String, Option<serde_json::Value>)> = log
        .items
        .into_iter()
        .map(|e| (e.action, e.details))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "user_updated_by_admin".to_owned(),
                Some(serde_json::json!({"fields": ["display_name"]}))
            ),
            (
                "user_created_by_admin".to_owned(),
                Some(serde_json::json!({"role": "user", "email_verified": true}))
            ),
        ]
    );

    store
        .delete_own_account(made.id, &meta())
        .await
        .expect("self delete");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM user_audit_log WHERE action = 'account_self_deleted'"
        )
        .await,
        1
    );
    assert!(matches!(
        store.delete_own_account(made.id, &meta()).await,
        Err(Error::NotFound { .. })
    ));
}

async fn listed(store: &PgStore, filter: &UserFilter, page: PageRequest) -> usize {
    store
        .list_users(filter, &page)
        .await
        .expect("list")
        .items
        .len()
}

#[tokio::test]
async fn listing_pages_through_every_user_once_with_filters() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    // Distinct creation times, set directly so that the order is known.
    client
        .batch_execute(
            "INSERT INTO users (email, display_name, role, is_blocked, created_at)
             SELECT 'u' || i || '@x.io', CASE WHEN i % 5 = 0 THEN '100%_off' ELSE 'User ' || i END,
                    CASE WHEN i % 3 = 0 THEN 'admin' ELSE 'user' END, i % 4 = 0,
                    now() - make_interval(mins => i)
             FROM generate_series(1, 23) AS i;
             INSERT INTO users (email, display_name, created_at) VALUES ('null-created@x.io', 'N', NULL);",
        )
        .await
        .expect("seed rows");

    let mut seen = Vec::new();
    let mut page = store
        .list_users(&UserFilter::default(), &PageRequest::first(5))
        .await
        .expect("p1");
    seen.extend(page.items.iter().map(|u| u.email.clone()));
    // Rows inserted between pages are newer than the cursor: never repeated, never skipped.
    client
        .batch_execute("INSERT INTO users (email, display_name) VALUES ('late@x.io', 'Late')")
        .await
        .expect("late row");
    while let Some(cursor) = page.next_cursor.clone() {
        page = store
            .list_users(&UserFilter::default(), &PageRequest::after(5, cursor))
            .await
            .expect("next page");
        seen.extend(page.items.iter().map(|u| u.email.clone()));
    }
    let expected: Vec<String> = (1..=23)
        .map(|i| format!("u{i}@x.io"))
        .chain(["null-created@x.io".to_owned()])
        .collect();
    assert_eq!(
        seen, expected,
        "newest first, each once, NULL created_at last"
    );

    let admins = UserFilter {
        role: Some(Role::Admin),
        ..Default::default()
    };
    let got = store
        .list_users(&admins, &PageRequest::first(100))
        .await
        .expect("admins");
    assert_eq!(got.items.len(), 7);
    assert!(got.next_cursor.is_none());
    let blocked = UserFilter {
        blocked: Some(true),
        ..Default::default()
    };
    assert_eq!(listed(&store, &blocked, PageRequest::first(100)).await, 5);
    let active = UserFilter {
        blocked: Some(false),
        ..Default::default()
    };
    assert_eq!(listed(&store, &active, PageRequest::first(100)).await, 20);
    // `%` and `_` in a search match themselves.
    let search = UserFilter {
        search: Some("0%_O".into()),
        ..Default::default()
    };
    assert_eq!(listed(&store, &search, PageRequest::first(100)).await, 4);
    let by_email = UserFilter {
        search: Some("U1".into()),
        ..Default::default()
    };
    assert_eq!(listed(&store, &by_email, PageRequest::first(100)).await, 11);

    // Page sizes are clamped, not refused.
    assert_eq!(
        listed(&store, &UserFilter::default(), PageRequest::first(0)).await,
        1
    );
    assert_eq!(
        listed(&store, &UserFilter::default(), PageRequest::first(-3)).await,
        1
    );
    assert_eq!(
        listed(&store, &UserFilter::default(), PageRequest::first(i64::MAX)).await,
        25
    );

    // Cursors: from another filter, or tampered, are validation errors.
    let first = store
        .list_users(&UserFilter::default(), &PageRequest::first(2))
        .await
        .expect("p");
    let cursor = first.next_cursor.expect("more");
    assert_eq!(
        validation_field(
            store
                .list_users(&admins, &PageRequest::after(2, cursor.clone()))
                .await
        ),
        "cursor"
    );
    for bad in ["x", "' OR 1=1 --", &cursor[..cursor.len() - 3], ""] {
        assert_eq!(
            validation_field(
                store
                    .list_users(&UserFilter::default(), &PageRequest::after(2, bad))
                    .await
            ),
            "cursor",
            "{bad:?}"
        );
    }
    let nul = UserFilter {
        search: Some("a\0b".into()),
        ..Default::default()
    };
    assert_eq!(
        validation_field(store.list_users(&nul, &PageRequest::default()).await),
        "search"
    );
}

#[tokio::test]
async fn counts_by_role_and_audit_paging() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let root = user(&store, "root@x.io", Role::Superadmin).await;
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(user(&store, &format!("u{i}@x.io"), Role::User).await);
    }
    user(&store, "a@x.io", Role::Admin).await;
    let counts = store.count_users_by_role().await.expect("counts");
    let pairs: Vec<(Option<String>, i64)> = counts.into_iter().map(|c| (c.role, c.count)).collect();
    assert_eq!(
        pairs,
        vec![
            (Some("user".into()), 3),
            (Some("admin".into()), 1),
            (Some("superadmin".into()), 1)
        ]
    );

    for (i, u) in users.iter().enumerate() {
        store
            .block_user(root.id, u.id, &format!("reason {i}"), &meta())
            .await
            .expect("block");
    }
    let q = AuditQuery::Action("user_blocked".into());
    let p1 = store
        .audit_log(&q, &PageRequest::first(2))
        .await
        .expect("p1");
    assert_eq!(p1.items.len(), 2);
    let p2 = store
        .audit_log(
            &q,
            &PageRequest::after(2, p1.next_cursor.clone().expect("more")),
        )
        .await
        .expect("p2");
    assert_eq!(p2.items.len(), 1);
    assert!(p2.next_cursor.is_none());
    let reasons: Vec<serde_json::Value> = p1
        .items
        .iter()
        .chain(&p2.items)
        .filter_map(|e| e.details.clone())
        .collect();
    assert_eq!(
        reasons,
        vec![
            serde_json::json!({"reason": "reason 2"}),
            serde_json::json!({"reason": "reason 1"}),
            serde_json::json!({"reason": "reason 0"}),
        ]
    );
    let other = AuditQuery::Actor(root.id);
    assert_eq!(
        validation_field(
            store
                .audit_log(&other, &PageRequest::after(2, p1.next_cursor.expect("c")))
                .await
        ),
        "cursor"
    );
    assert_eq!(
        validation_field(
            store
                .audit_log(&AuditQuery::Action(String::new()), &PageRequest::default())
                .await
        ),
        "action"
    );
}

#[tokio::test]
async fn the_disabled_store_refuses_every_user_method() {
    let s = DisabledStore::new("test");
    let id = UserId(uuid::Uuid::nil());
    let m = RequestMeta::default();
    let d = |r: Result<(), Error>| assert!(matches!(r, Err(Error::Disabled)), "{r:?}");
    d(s.create_user(NewLocalUser::new("a@x.io", PW, "A"))
        .await
        .map(drop));
    d(
        s.create_user_by_admin(id, NewLocalUser::new("a@x.io", PW, "A"), &m)
            .await
            .map(drop),
    );
    d(s.find_or_create_oauth_user(NewOAuthUser {
        provider: "g".into(),
        oauth_id: "1".into(),
        email: "a@x.io".into(),
        display_name: "A".into(),
        avatar_url: None,
        email_verified: false,
    })
    .await
    .map(drop));
    d(s.user_by_id(id).await.map(drop));
    d(s.user_by_email("a@x.io").await.map(drop));
    d(
        s.list_users(&UserFilter::default(), &PageRequest::default())
            .await
            .map(drop),
    );
    d(s.update_profile(id, &ProfileUpdate::default(), &m)
        .await
        .map(drop));
    d(
        s.update_user_by_admin(id, id, &ProfileUpdate::default(), &m)
            .await
            .map(drop),
    );
    d(s.change_password(id, PW, PW, &m).await);
    d(s.authenticate("a@x.io", PW).await.map(drop));
    d(s.record_login(id).await.map(drop));
    d(s.verify_email(id).await.map(drop));
    d(s.add_additional_role(id, "r").await.map(drop));
    d(s.remove_additional_role(id, "r").await.map(drop));
    d(s.change_role(id, id, Role::User, &m).await.map(drop));
    d(s.block_user(id, id, "r", &m).await.map(drop));
    d(s.unblock_user(id, id, &m).await.map(drop));
    d(s.delete_user(id, id, &m).await);
    d(s.delete_own_account(id, &m).await);
    d(s.count_users_by_role().await.map(drop));
    d(s.audit_log(&AuditQuery::User(id), &PageRequest::default())
        .await
        .map(drop));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_oauth_logins_make_one_user_and_all_succeed() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .find_or_create_oauth_user(NewOAuthUser {
                    provider: "github".into(),
                    oauth_id: "gh-42".into(),
                    email: "octo@x.io".into(),
                    display_name: "Octo".into(),
                    avatar_url: None,
                    email_verified: true,
                })
                .await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for t in tasks {
        let (user, new) = t.await.expect("task").expect("every login succeeds");
        ids.push(user.id);
        created += usize::from(new);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one user");
    assert_eq!(created, 1, "created once");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_demoted_while_acting_never_acts_as_a_user() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let admin = user(&store, "admin@x.io", Role::Admin).await;
    let target = user(&store, "target@x.io", Role::User).await;

    // Another session is demoting the admin and has not committed yet.
    let (mut other, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let demotion = other.transaction().await.expect("begin");
    demotion
        .batch_execute(&format!(
            "UPDATE users SET role = 'user' WHERE id = '{}'",
            admin.id
        ))
        .await
        .expect("demote");

    // The admin's block waits for that decision instead of acting on the
    // role it read before it...
    let s = store.clone();
    let block =
        tokio::spawn(async move { s.block_user(admin.id, target.id, "race", &meta()).await });
    common::until_waiting(&db.client().await, 1).await;
    assert!(
        !block.is_finished(),
        "the block did not wait for the acting admin's row"
    );
    demotion.commit().await.expect("commit");

    // ... and then sees a user, who may block no one.
    let result = block.await.expect("task");
    assert!(matches!(result, Err(Error::Forbidden { .. })), "{result:?}");
    assert!(!store.user_by_id(target.id).await.expect("target").blocked());
}

/// Adding and removing a role is one `UPDATE` of the JSON array in the
/// database: a column holding no array (SQL NULL, JSON `null`, a stray
/// string or object, as template-era rows may) counts as an empty list, so
/// a stray `"admin"` never becomes a role; entries the store did not write
/// are kept; and an addition waiting on a row lock keeps what the lock's
/// holder added.
#[tokio::test]
async fn role_changes_keep_what_else_the_list_holds() {
    let db = TestDb::migrated().await;
    let store = Arc::new(db.store().await);
    let u = user(&store, "roles@example.com", Role::User).await;
    let client = db.client().await;
    client
        .execute(
            "UPDATE users SET additional_roles = NULL WHERE email = 'roles@example.com'",
            &[],
        )
        .await
        .expect("null list");
    let added = store.add_additional_role(u.id, "beta").await.expect("add");
    assert_eq!(added.additional_roles, Some(serde_json::json!(["beta"])));
    for stray in ["'null'", "'\"admin\"'", "'{\"admin\": true}'"] {
        client
            .execute(
                &format!(
                    "UPDATE users SET additional_roles = {stray}::jsonb \
                     WHERE email = 'roles@example.com'"
                ),
                &[],
            )
            .await
            .expect("stray value");
        let removed = store
            .remove_additional_role(u.id, "admin")
            .await
            .expect("remove from a stray value");
        assert!(removed.additional_roles.is_some(), "left as it was");
        let added = store.add_additional_role(u.id, "beta").await.expect("add");
        assert_eq!(
            added.additional_roles,
            Some(serde_json::json!(["beta"])),
            "{stray} counts as an empty list"
        );
    }

    client
        .execute(
            "UPDATE users SET additional_roles = '[\"beta\", {\"legacy\": 1}]' \
             WHERE email = 'roles@example.com'",
            &[],
        )
        .await
        .expect("legacy entry");
    let added = store.add_additional_role(u.id, "gamma").await.expect("add");
    assert_eq!(
        added.additional_roles,
        Some(serde_json::json!(["beta", {"legacy": 1}, "gamma"]))
    );
    let removed = store
        .remove_additional_role(u.id, "beta")
        .await
        .expect("remove");
    assert_eq!(
        removed.additional_roles,
        Some(serde_json::json!([{"legacy": 1}, "gamma"]))
    );

    // Another transaction holds the row and adds "one"; the store's
    // addition of "two" waits, then applies to the row as committed.
    let mut holder = db.client().await;
    let tx = holder.transaction().await.expect("begin");
    tx.execute(
        "SELECT 1 FROM users WHERE email = 'roles@example.com' FOR UPDATE",
        &[],
    )
    .await
    .expect("lock");
    let adding = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.add_additional_role(u.id, "two").await })
    };
    common::until_waiting(&client, 1).await;
    tx.execute(
        "UPDATE users SET additional_roles = additional_roles || '[\"one\"]' \
         WHERE email = 'roles@example.com'",
        &[],
    )
    .await
    .expect("add one");
    tx.commit().await.expect("commit");
    adding.await.expect("task").expect("two");
    let roles = store
        .user_by_id(u.id)
        .await
        .expect("user")
        .additional_roles
        .expect("roles");
    let roles = roles.as_array().expect("an array");
    assert!(roles.contains(&serde_json::json!("one")), "{roles:?}");
    assert!(roles.contains(&serde_json::json!("two")), "{roles:?}");
}

/// A role the store does not know, written by another app (case, spaces,
/// a stray value), grants nothing: such an actor manages nobody, and such
/// a target counts as below every admin.
#[tokio::test]
async fn a_role_written_in_another_form_grants_nothing() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let admin = user(&store, "admin@x.io", Role::Admin).await;
    let u = user(&store, "u@x.io", Role::User).await;
    let m = meta();
    let client = db.client().await;
    for (n, odd) in ["ADMIN", " admin", "admin ", "Superadmin", "root", ""]
        .into_iter()
        .enumerate()
    {
        let actor = user(&store, &format!("odd{n}@x.io"), Role::User).await;
        client
            .execute(
                "UPDATE users SET role = $1 WHERE email = $2",
                &[&odd, &format!("odd{n}@x.io")],
            )
            .await
            .expect("an odd role");
        forbidden(store.block_user(actor.id, u.id, "odd", &m).await);
        forbidden(store.change_role(actor.id, u.id, Role::Admin, &m).await);
        forbidden(store.delete_user(actor.id, u.id, &m).await);
        // As a target it is below an admin, who may block it.
        store
            .block_user(admin.id, actor.id, "odd role", &m)
            .await
            .unwrap_or_else(|e| panic!("{odd:?} as a target: {e}"));
    }
    let nulled = user(&store, "null@x.io", Role::User).await;
    client
        .execute(
            "UPDATE users SET role = NULL WHERE email = 'null@x.io'",
            &[],
        )
        .await
        .expect("a NULL role");
    forbidden(store.block_user(nulled.id, u.id, "odd", &m).await);
}
