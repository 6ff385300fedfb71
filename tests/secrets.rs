//! Secrets never leak: with a password in the connection string, user
//! passwords and hashes, and refresh, reset and session tokens in play,
//! every error path and every returned value is formatted with `Display`
//! and `Debug`, every log line of the crate is captured (down to TRACE,
//! with every call logged as slow), and none of it contains a secret.

mod common;

use common::TestDb;
use pronghorn_db::models::{NewLocalUser, RequestMeta};
use pronghorn_db::{
    Configuration, DbConfig, Error, HealthStore, PasswordResetStore, PgStore, RefreshTokenStore,
    ResetPolicy, SessionCookie, SessionData, SessionStore, UserStore,
};
use std::sync::{Arc, Mutex};
use tracing_subscriber::layer::SubscriberExt;

const DB_PASSWORD: &str = "S3cretDbPw-7781";
const USER_PASSWORD: &str = "UserPlainPw-123";
const NEW_PASSWORD: &str = "NewPlainPw-4567";
const RESET_PASSWORD: &str = "ResetPlainPw-890";

/// Everything the crate logs, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn config(url: &str) -> DbConfig {
    let url = url.to_owned();
    match DbConfig::from_lookup(|k| match k {
        "DB_CONNECTION_STRING" => Some(url.clone()),
        "DB_SLOW_QUERY_MS" => Some("0".into()),
        "DB_POOL_CONNECTION_TIMEOUT" => Some("1000".into()),
        _ => None,
    }) {
        Ok(Configuration::Configured(c)) => *c,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_display_debug_or_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(logs.clone())
            .with_ansi(false),
    );
    // No filter: every level of every target is kept.
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut shown: Vec<String> = Vec::new();
    let mut show = |s: String| shown.push(s);

    // An unreachable server, with a password in the string.
    let down = PgStore::new(config(&format!(
        "postgres://app:{DB_PASSWORD}@127.0.0.1:1/x"
    )))
    .await
    .expect("store");
    let e = down.server_info().await.expect_err("down");
    show(format!(
        "{e} {e:?} {down:?} {:?} {}",
        down.config(),
        down.config()
    ));
    assert!(!down.test_connection().await);
    let e = down
        .authenticate("a@b.io", USER_PASSWORD)
        .await
        .expect_err("down");
    show(format!("{e} {e:?}"));

    // The real server (trust auth ignores the password, which is still sent).
    let db = TestDb::migrated().await;
    let url = db
        .url()
        .replacen("postgres@", &format!("postgres:{DB_PASSWORD}@"), 1);
    assert!(
        url.contains(DB_PASSWORD),
        "the test must put a password in the string"
    );
    let store = PgStore::new(config(&url)).await.expect("store");
    let meta = RequestMeta::default();

    let user = store
        .create_user(NewLocalUser::new("leak@x.io", USER_PASSWORD, "Leak"))
        .await
        .expect("user");
    let hash: String = db
        .client()
        .await
        .query_one(
            "SELECT password_hash FROM users WHERE id::text = $1",
            &[&user.id.to_string()],
        )
        .await
        .expect("hash")
        .get(0);
    show(format!(
        "{user:?} {}",
        serde_json::to_string(&user).expect("json")
    ));
    for (email, pw) in [
        ("leak@x.io", "wrong-password"),
        ("nobody@x.io", USER_PASSWORD),
    ] {
        let e = store.authenticate(email, pw).await.expect_err("refused");
        show(format!("{e} {e:?}"));
    }
    let e = store
        .change_password(user.id, "wrong-password", NEW_PASSWORD, &meta)
        .await
        .expect_err("wrong current");
    show(format!("{e} {e:?}"));
    let e = store
        .create_user(NewLocalUser::new("leak@x.io", USER_PASSWORD, "Twin"))
        .await
        .expect_err("taken");
    show(format!("{e} {e:?}"));
    let new = NewLocalUser::new("x@x.io", "short", "X");
    show(format!("{new:?}"));
    let e = store.create_user(new).await.expect_err("short");
    show(format!("{e} {e:?}"));
    store
        .change_password(user.id, USER_PASSWORD, NEW_PASSWORD, &meta)
        .await
        .expect("change");
    let me = store
        .authenticate("leak@x.io", NEW_PASSWORD)
        .await
        .expect("login");
    show(format!("{me:?}"));

    // Refresh tokens: issue, rotate, reuse, garbage.
    let first = store
        .issue_refresh_token(user.id, chrono::Duration::hours(1))
        .await
        .expect("issue");
    let second = store
        .rotate_refresh_token(first.token.expose(), chrono::Duration::hours(1))
        .await
        .expect("rotate");
    let e = store
        .rotate_refresh_token(first.token.expose(), chrono::Duration::hours(1))
        .await
        .expect_err("reuse");
    assert!(matches!(e, Error::TokenReused));
    show(format!("{first:?} {second:?} {e} {e:?}"));
    let e = store
        .verify_refresh_token(second.token.expose())
        .await
        .expect_err("revoked by the reuse");
    show(format!("{e} {e:?}"));

    // Password reset: request, bad token, good token, used again.
    let requested = store
        .request_password_reset("leak@x.io", &ResetPolicy::default(), &meta)
        .await
        .expect("request");
    show(format!("{requested:?}"));
    let delivery = requested.delivery.expect("a token for a real account");
    let e = store
        .reset_password("not-a-token", RESET_PASSWORD, &meta)
        .await
        .expect_err("bad token");
    show(format!("{e} {e:?}"));
    let done = store
        .reset_password(delivery.token.expose(), RESET_PASSWORD, &meta)
        .await
        .expect("reset");
    show(format!("{done:?}"));
    let e = store
        .reset_password(delivery.token.expose(), RESET_PASSWORD, &meta)
        .await
        .expect_err("used");
    show(format!("{e} {e:?}"));

    // Sessions: the id is a credential too.
    let sid = pronghorn_db::Token::generate().expect("sid");
    let mut data = SessionData::new(SessionCookie::with_max_age(chrono::Duration::hours(1)));
    data.fields
        .insert("userId".into(), serde_json::json!(user.id));
    store.set_session(sid.expose(), &data).await.expect("set");
    let got = store.get_session(sid.expose()).await.expect("get");
    show(format!("{sid:?} {data:?} {got:?} {store:?}"));
    store.close().await;
    let e = store.server_info().await.expect_err("closed");
    show(format!("{e} {e:?}"));
    drop(_guard);

    let logged = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(
        logged.contains("slow database call"),
        "the calls were logged: {logged}"
    );
    assert!(
        logged.contains("could not open a database connection"),
        "{logged}"
    );
    let everything = format!("{}\n{logged}", shown.join("\n"));
    let digest = |t: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(t.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let secrets = [
        ("the database password", DB_PASSWORD.to_owned()),
        ("a user password", USER_PASSWORD.to_owned()),
        ("a new password", NEW_PASSWORD.to_owned()),
        ("a reset password", RESET_PASSWORD.to_owned()),
        ("a password hash", hash.clone()),
        (
            "a hash's salt and output",
            hash.rsplit('$').take(2).collect::<Vec<_>>().join("$"),
        ),
        ("a refresh token", first.token.expose().to_owned()),
        ("a rotated refresh token", second.token.expose().to_owned()),
        ("a refresh token digest", digest(first.token.expose())),
        ("a reset token", delivery.token.expose().to_owned()),
        ("a reset token digest", digest(delivery.token.expose())),
        ("a session id", sid.expose().to_owned()),
    ];
    for (what, secret) in secrets {
        assert!(
            !everything.contains(&secret),
            "{what} leaked:\n{everything}"
        );
    }
}
