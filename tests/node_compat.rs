//! One database shared with the Node app, checked against the real Node
//! packages from npm (tests/node/package.json, installed with `npm ci` into a
//! scratch folder on first use): express-session with connect-pg-simple,
//! configured as the template configures them, and bcryptjs 3 and 2.4.3.
//!
//! Needs `node` and `npm` on PATH (Node 20) and the npm registry reachable on
//! the first run.

mod common;
mod example;

use chrono::{DateTime, Duration, Utc};
use common::TestDb;
use example::{call, login, serve, Outbox, M, SESSION_SECRET};
use pronghorn_db::models::{NewLocalUser, RequestMeta};
use pronghorn_db::{
    CookieSigner, PgStore, SessionCookie, SessionData, SessionStore, Store, UserStore,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use tokio::io::AsyncBufReadExt;

/// The scripts and package files copied into the scratch folder.
const NODE_FILES: [&str; 4] = [
    "package.json",
    "package-lock.json",
    "session_app.js",
    "bcrypt.js",
];

/// The scratch folder holding tests/node and its installed packages; `npm
/// ci` runs when the lock file changed since the last install.
fn node_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-compat");
        std::fs::create_dir_all(&dir).expect("scratch folder");
        for file in NODE_FILES {
            std::fs::copy(src.join(file), dir.join(file))
                .unwrap_or_else(|e| panic!("copy tests/node/{file}: {e}"));
        }
        let lock = std::fs::read(src.join("package-lock.json")).expect("package-lock.json");
        let stamp = dir.join("node_modules/.pronghorn-installed-lock");
        if std::fs::read(&stamp).ok().as_ref() != Some(&lock) {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .output()
                .expect("run npm (Node 20 and npm must be installed; .ci/run checks)");
            assert!(
                out.status.success(),
                "npm ci failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&stamp, &lock).expect("install stamp");
        }
        dir
    })
}

/// The Node app of tests/node/session_app.js, stopped when dropped.
struct NodeApp {
    base: String,
    http: reqwest::Client,
    _child: tokio::process::Child,
}

impl NodeApp {
    async fn start(db: &TestDb) -> NodeApp {
        let mut child = tokio::process::Command::new("node")
            .arg("session_app.js")
            .current_dir(node_dir())
            .env("DATABASE_URL", db.url())
            .env("SESSION_SECRET", SESSION_SECRET)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().expect("node's stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the Node app starts within 30 s")
            .expect("read node's stdout")
            .expect("the Node app prints its port");
        let port = serde_json::from_str::<Value>(&first).expect("JSON")["port"]
            .as_u64()
            .expect("port");
        NodeApp {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _child: child,
        }
    }

    /// One request to the Node app, with the session cookie when given;
    /// returns the status, the JSON body and the `pronghorn.sid` value it set.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        cookie: Option<&str>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(c) = cookie {
            req = req.header("cookie", format!("pronghorn.sid={c}"));
        }
        let res = req.send().await.expect("request to the Node app");
        let status = res.status();
        let set = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("pronghorn.sid="))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body, set)
    }

    /// Logs in on the Node side as `user_id`; returns its cookie value.
    async fn login(&self, user_id: &str) -> String {
        let (status, body, cookie) = self
            .call(M::POST, "/login", Some(json!({ "userId": user_id })), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        cookie.expect("express-session sets pronghorn.sid")
    }
}

fn signer() -> CookieSigner {
    CookieSigner::from_setting(SESSION_SECRET).expect("signer")
}

fn js_time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a JavaScript date: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_browser_session_moves_between_the_rust_and_node_apps() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let rust = serve(store.clone(), Arc::new(Outbox::default())).await;
    let node = NodeApp::start(&db).await;

    let who =
        json!({"email": "dana@example.com", "password": "dana-password-1", "display_name": "Dana"});
    let (status, body, _) = call(&rust, M::POST, "/auth/register", Some(who), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user_id = body["id"].as_str().expect("id").to_owned();

    // Logged in on the Rust side: express-session loads the session.
    let (rust_cookie, _) = login(&rust, "dana@example.com", "dana-password-1").await;
    let (status, body, _) = node.call(M::GET, "/me", None, Some(&rust_cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["userId"], user_id.as_str());
    assert_eq!(body["cookie"]["originalMaxAge"], 86_400_000);
    assert_eq!(body["cookie"]["httpOnly"], true);
    assert_eq!(body["cookie"]["path"], "/");
    let sid = signer().verify(&rust_cookie).expect("a signed cookie");
    assert_eq!(body["sid"], sid.as_str());

    // Logged in on the Node side: the Rust app knows the user.
    let node_cookie = node.login(&user_id).await;
    assert!(node_cookie.starts_with("s%3A"), "{node_cookie}");
    let (status, body, _) = call(&rust, M::GET, "/auth/me", None, Some(&node_cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], user_id.as_str());

    // Logging out on either side ends the session for both.
    let (status, _, _) = node
        .call(M::POST, "/logout", None, Some(&node_cookie))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&rust, M::GET, "/auth/me", None, Some(&node_cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&rust, M::POST, "/auth/logout", None, Some(&rust_cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = node.call(M::GET, "/me", None, Some(&rust_cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A cookie signed with a secret the apps do not share is refused by both.
    let forged = CookieSigner::new(["not-the-secret"])
        .expect("signer")
        .cookie_value(&sid);
    let (status, _, _) = node.call(M::GET, "/me", None, Some(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&rust, M::GET, "/auth/me", None, Some(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_store_and_connect_pg_simple_share_session_rows() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let node = NodeApp::start(&db).await;

    // Saved by connect-pg-simple: read, touched and destroyed by the store.
    let cookie = node.login("user-from-node").await;
    let sid = signer()
        .verify(&cookie)
        .expect("signed with the first secret");
    assert_eq!(
        cookie,
        signer().cookie_value(&sid),
        "signed as the Rust side signs"
    );
    let stored = store
        .get_session(&sid)
        .await
        .expect("read")
        .expect("the Node session is live");
    assert_eq!(stored.data.fields["userId"], "user-from-node");
    let c = &stored.data.cookie;
    assert_eq!(c.original_max_age, Some(86_400_000));
    assert_eq!(c.http_only, Some(true));
    assert_eq!(c.path.as_deref(), Some("/"));
    assert_eq!(c.same_site, Some(json!("lax")));
    let expires = c.expires.expect("a cookie with maxAge expires");
    // connect-pg-simple stores the cookie's expiry rounded up to the second.
    let gap = stored.expires_at - expires;
    assert!(
        gap >= Duration::zero() && gap < Duration::seconds(1),
        "{gap}"
    );

    let later = Utc::now() + Duration::days(2);
    assert!(store.touch_session(&sid, later).await.expect("touch"));
    let touched = store.get_session(&sid).await.expect("read").expect("live");
    assert!((touched.expires_at - later).num_milliseconds().abs() < 1);
    assert_eq!(
        touched.data, stored.data,
        "touching leaves the data as it was"
    );
    let (status, body, _) = node.call(M::GET, "/me", None, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert!(store.destroy_session(&sid).await.expect("destroy"));
    let (status, _, _) = node.call(M::GET, "/me", None, Some(&cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Saved by the store: loaded by express-session with its fields and cookie.
    let sid = "rust-made-session-id-0001";
    let mut data = SessionData::new(SessionCookie::with_max_age(Duration::hours(2)));
    data.fields.insert("userId".into(), json!("user-from-rust"));
    store.set_session(sid, &data).await.expect("set");
    let cookie = signer().cookie_value(sid);
    let (status, body, _) = node.call(M::GET, "/me", None, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["userId"], "user-from-rust");
    assert_eq!(body["sid"], sid);
    assert_eq!(body["cookie"]["originalMaxAge"], 7_200_000);
    assert_eq!(body["cookie"]["httpOnly"], true);
    let set = data.cookie.expires.expect("expires");
    let seen = js_time(&body["cookie"]["expires"]);
    assert!(
        (seen - set).num_milliseconds().abs() <= 1,
        "{seen} vs {set}"
    );

    let (status, _, _) = node.call(M::POST, "/logout", None, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.get_session(sid).await.expect("read"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_agree_on_expiry() {
    let db = TestDb::migrated().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let rust = serve(store.clone(), Arc::new(Outbox::default())).await;
    let node = NodeApp::start(&db).await;
    let user = store
        .create_user(NewLocalUser::new(
            "erin@example.com",
            "erin-password-1",
            "Erin",
        ))
        .await
        .expect("user");

    // Written by the store with a cookie that has just expired: neither app
    // loads it.
    let sid = "rust-session-expired-0001";
    let mut cookie = SessionCookie::with_max_age(Duration::hours(1));
    cookie.expires = Some(Utc::now() - Duration::seconds(2));
    let mut data = SessionData::new(cookie);
    data.fields.insert("userId".into(), json!(user.id));
    store.set_session(sid, &data).await.expect("set");
    assert_eq!(store.get_session(sid).await.expect("read"), None);
    let value = signer().cookie_value(sid);
    let (status, _, _) = node.call(M::GET, "/me", None, Some(&value)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&rust, M::GET, "/auth/me", None, Some(&value)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Written by connect-pg-simple, live for both, then past its expiry
    // (the row aged as time would age it): neither app loads it.
    let node_cookie = node.login(&user.id.to_string()).await;
    let (status, _, _) = call(&rust, M::GET, "/auth/me", None, Some(&node_cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let node_sid = signer().verify(&node_cookie).expect("signed");
    let client = db.client().await;
    let aged = client
        .execute(
            "UPDATE session SET expire = expire - interval '1 day 1 minute' WHERE sid = $1",
            &[&node_sid],
        )
        .await
        .expect("age the row");
    assert_eq!(aged, 1);
    let (status, _, _) = call(&rust, M::GET, "/auth/me", None, Some(&node_cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = node.call(M::GET, "/me", None, Some(&node_cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The store's cleanup removes both expired rows, whoever wrote them.
    assert_eq!(store.delete_expired_sessions().await.expect("cleanup"), 2);
}

/// Runs tests/node/bcrypt.js: `hash` or `verify` with `package`, the
/// password on stdin.
fn bcryptjs(package: &str, args: &[&str], password: &str) -> String {
    let mut child = Command::new("node")
        .arg("bcrypt.js")
        .args(&args[..1])
        .arg(package)
        .args(&args[1..])
        .current_dir(node_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("node");
    assert!(
        out.status.success(),
        "bcrypt.js: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const BCRYPTJS: [&str; 2] = ["bcryptjs", "bcryptjs-2"];

async fn stored_hash(db: &TestDb, email: &str) -> String {
    db.client()
        .await
        .query_one(
            "SELECT password_hash FROM users WHERE email = $1",
            &[&email],
        )
        .await
        .expect("hash")
        .get(0)
}

async fn store_with(db: &TestDb, scheme: &str) -> PgStore {
    let url = db.url();
    let config = common::configured(&[("DB_CONNECTION_STRING", &url), ("PASSWORD_HASH", scheme)]);
    PgStore::new(config).await.expect("store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_bcrypt_mode_hashes_are_shared_with_bcryptjs() {
    let db = TestDb::migrated().await;
    let shared = store_with(&db, "bcrypt").await;
    let meta = RequestMeta::default();

    // Written by the Rust side: bcryptjs (3 and the template's 2.4.3) verifies.
    let user = shared
        .create_user(NewLocalUser::new(
            "fay@example.com",
            "fay-password-1",
            "Fay",
        ))
        .await
        .expect("create");
    let hash = stored_hash(&db, "fay@example.com").await;
    assert!(hash.starts_with("$2b$12$") && hash.len() == 60, "{hash}");
    for package in BCRYPTJS {
        assert_eq!(
            bcryptjs(package, &["verify", &hash], "fay-password-1"),
            "true"
        );
        assert_eq!(
            bcryptjs(package, &["verify", &hash], "fay-password-2"),
            "false"
        );
    }
    shared
        .change_password(user.id, "fay-password-1", "fay-password-2", &meta)
        .await
        .expect("change");
    let changed = stored_hash(&db, "fay@example.com").await;
    assert!(changed.starts_with("$2b$12$"), "{changed}");
    for package in BCRYPTJS {
        assert_eq!(
            bcryptjs(package, &["verify", &changed], "fay-password-2"),
            "true"
        );
    }
    // Logging in upgrades nothing.
    shared
        .authenticate("fay@example.com", "fay-password-2")
        .await
        .expect("login");
    assert_eq!(stored_hash(&db, "fay@example.com").await, changed);

    // Written by bcryptjs: the Rust side logs the user in and keeps the hash.
    let client = db.client().await;
    for (package, email) in BCRYPTJS.iter().zip(["gus@example.com", "hal@example.com"]) {
        shared
            .create_user(NewLocalUser::new(email, "placeholder-pass", "Node user"))
            .await
            .expect("create");
        let node_hash = bcryptjs(package, &["hash"], "made-in-node-1");
        client
            .execute(
                "UPDATE users SET password_hash = $1 WHERE email = $2",
                &[&node_hash, &email],
            )
            .await
            .expect("store the bcryptjs hash");
        let user = shared
            .authenticate(email, "made-in-node-1")
            .await
            .expect("a bcryptjs hash logs in");
        assert_eq!(user.email, email);
        assert_eq!(stored_hash(&db, email).await, node_hash, "{package}: kept");
    }

    // An argon2id hash from before the shared period becomes bcrypt on login,
    // so that the Node app can log that user in too.
    let argon = store_with(&db, "argon2id").await;
    argon
        .create_user(NewLocalUser::new(
            "ida@example.com",
            "ida-password-1",
            "Ida",
        ))
        .await
        .expect("create");
    assert!(stored_hash(&db, "ida@example.com")
        .await
        .starts_with("$argon2id$"));
    shared
        .authenticate("ida@example.com", "ida-password-1")
        .await
        .expect("login");
    let rewritten = stored_hash(&db, "ida@example.com").await;
    assert!(rewritten.starts_with("$2b$12$"), "{rewritten}");
    for package in BCRYPTJS {
        assert_eq!(
            bcryptjs(package, &["verify", &rewritten], "ida-password-1"),
            "true"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_bcryptjs_hash_logs_in_and_is_upgraded_to_argon2id() {
    let db = TestDb::migrated().await;
    let store = store_with(&db, "argon2id").await;
    store
        .create_user(NewLocalUser::new(
            "jo@example.com",
            "placeholder-pass",
            "Jo",
        ))
        .await
        .expect("create");
    let node_hash = bcryptjs("bcryptjs-2", &["hash"], "template-password-1");
    assert!(node_hash.starts_with("$2a$12$"), "{node_hash}");
    db.client()
        .await
        .execute(
            "UPDATE users SET password_hash = $1 WHERE email = 'jo@example.com'",
            &[&node_hash],
        )
        .await
        .expect("store the bcryptjs hash");
    store
        .authenticate("jo@example.com", "template-password-1")
        .await
        .expect("login");
    assert!(stored_hash(&db, "jo@example.com")
        .await
        .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
}
