//! Sessions in the connect-pg-simple layout through the store, against a
//! real PostgreSQL: rows written the way connect-pg-simple writes them are
//! read and touched by the store, and rows the store writes are read by
//! connect-pg-simple's own queries. Changes that must log a user out (a new
//! password, a block, a deletion, a new role, "log out everywhere") delete
//! that user's sessions, and only in the change's own transaction.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::TestDb;
use pronghorn_db::models::{NewLocalUser, RequestMeta, Role, User, UserId};
use pronghorn_db::{
    DisabledStore, EndedSessions, Error, PasswordResetStore, PgStore, RefreshTokenStore,
    ResetPolicy, SessionCookie, SessionData, SessionStore, StoredSession, TokenProblem, UserStore,
};
use serde_json::json;
use uuid::Uuid;

/// connect-pg-simple's `set` (v7 and later), verbatim but for the table
/// name; node-postgres sends the session object as its JSON text.
const NODE_SET: &str =
    "INSERT INTO \"session\" (sess, expire, sid) SELECT $1::text::json, to_timestamp($2), $3 \
     ON CONFLICT (sid) DO UPDATE SET sess=$1::text::json, expire=to_timestamp($2) RETURNING sid";
/// connect-pg-simple's `get`.
const NODE_GET: &str =
    "SELECT sess::text FROM \"session\" WHERE sid = $1 AND expire >= to_timestamp($2)";
/// connect-pg-simple's `pruneSessions`.
const NODE_PRUNE: &str = "DELETE FROM \"session\" WHERE expire < to_timestamp($1)";

/// connect-pg-simple's `currentTimestamp()`: whole seconds, rounded up.
fn node_now() -> f64 {
    (Utc::now().timestamp_millis() as f64 / 1000.0).ceil()
}

fn close(a: DateTime<Utc>, b: DateTime<Utc>, slack: Duration) -> bool {
    (a - b).abs() <= slack
}

async fn raw(db: &TestDb, sid: &str) -> Option<(String, String)> {
    db.client()
        .await
        .query_opt(
            "SELECT sess::text, expire::text FROM \"session\" WHERE sid = $1",
            &[&sid],
        )
        .await
        .expect("read session row")
        .map(|r| (r.get(0), r.get(1)))
}

async fn count(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM \"session\"", &[])
        .await
        .expect("count")
        .get(0)
}

fn app_session(max_age: Duration) -> SessionData {
    let mut data = SessionData::new(SessionCookie::with_max_age(max_age));
    data.fields
        .insert("passport".into(), json!({ "user": "a11ce" }));
    data.fields.insert("views".into(), json!(3));
    data
}

#[tokio::test]
async fn a_session_we_set_reads_back_and_is_in_connect_pg_simple_format() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let data = app_session(Duration::hours(2));
    let expires = data.cookie.expires.expect("cookie expiry");

    let stored_until = store.set_session("sid-1", &data).await.expect("set");
    assert_eq!(stored_until, expires);

    let StoredSession {
        data: read,
        expires_at,
    } = store
        .get_session("sid-1")
        .await
        .expect("get")
        .expect("live session");
    assert_eq!(read.fields, data.fields);
    assert_eq!(read.cookie.original_max_age, Some(7_200_000));
    assert!(close(
        read.cookie.expires.expect("expires"),
        expires,
        Duration::milliseconds(1)
    ));
    // `expire` is timestamp(6): microseconds survive.
    assert!(close(expires_at, expires, Duration::microseconds(1)));

    // The row, as Node would see it.
    let (sess, _) = raw(&db, "sid-1").await.expect("row");
    let sess: serde_json::Value = serde_json::from_str(&sess).expect("sess is JSON");
    let cookie = &sess["cookie"];
    assert_eq!(cookie["originalMaxAge"], json!(7_200_000));
    assert_eq!(cookie["httpOnly"], json!(true));
    assert_eq!(cookie["path"], json!("/"));
    let iso = cookie["expires"].as_str().expect("expires is a string");
    assert_eq!(
        iso,
        expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    assert_eq!(sess["passport"], json!({ "user": "a11ce" }));
    assert_eq!(sess["views"], json!(3));

    // `expire` holds the cookie's expiry as connect-pg-simple writes it:
    // `to_timestamp(seconds)` stored in the session's time zone (UTC here).
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT expire = to_timestamp($2)::timestamp, \
                    expire = (to_timestamp($2) AT TIME ZONE 'UTC'), \
                    current_setting('TimeZone') \
             FROM \"session\" WHERE sid = $1",
            &[&"sid-1", &(expires.timestamp_micros() as f64 / 1_000_000.0)],
        )
        .await
        .expect("compare expire");
    assert!(row.get::<_, bool>(0), "expire differs from to_timestamp()");
    if row.get::<_, String>(2) == "UTC" || row.get::<_, String>(2) == "Etc/UTC" {
        assert!(row.get::<_, bool>(1), "expire is not UTC");
    }

    // connect-pg-simple's own queries find it live and do not prune it.
    let found = client
        .query_opt(NODE_GET, &[&"sid-1", &node_now()])
        .await
        .expect("node get");
    assert!(found.is_some());
    client
        .execute(NODE_PRUNE, &[&node_now()])
        .await
        .expect("node prune");
    assert_eq!(count(&db).await, 1);
}

#[tokio::test]
async fn a_row_written_by_connect_pg_simple_is_read_and_touched_without_changing_its_data() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let client = db.client().await;
    let expires = Utc::now() + Duration::days(1);
    let expires_ms = expires.timestamp_millis();
    let expires_iso = DateTime::<Utc>::from_timestamp_millis(expires_ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // What express-session hands connect-pg-simple, as JSON.stringify
    // writes it (key order, no spaces).
    let sess = format!(
        r#"{{"cookie":{{"originalMaxAge":86400000,"expires":"{expires_iso}","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"}},"passport":{{"user":{{"id":"u-1","role":"admin"}}}},"csrfSecret":"abc","returnTo":"/x?y=1"}}"#
    );
    let seconds = (expires_ms as f64 / 1000.0).ceil();
    client
        .query_one(NODE_SET, &[&sess, &seconds, &"node-sid"])
        .await
        .expect("node set");

    let stored = store
        .get_session("node-sid")
        .await
        .expect("get")
        .expect("live");
    assert_eq!(stored.data.cookie.original_max_age, Some(86_400_000));
    assert_eq!(
        stored.data.cookie.expires.map(|e| e.timestamp_millis()),
        Some(expires_ms)
    );
    assert_eq!(stored.data.cookie.secure, Some(false));
    assert_eq!(stored.data.cookie.http_only, Some(true));
    assert_eq!(stored.data.cookie.path.as_deref(), Some("/"));
    assert_eq!(stored.data.cookie.same_site, Some(json!("lax")));
    assert_eq!(
        stored.data.fields["passport"],
        json!({ "user": { "id": "u-1", "role": "admin" } })
    );
    assert_eq!(stored.data.fields["csrfSecret"], json!("abc"));
    assert_eq!(stored.data.fields["returnTo"], json!("/x?y=1"));
    assert_eq!(stored.expires_at.timestamp() as f64, seconds);

    // Touching moves `expire` only: `sess` keeps its exact text.
    let later = Utc::now() + Duration::days(3);
    assert!(store.touch_session("node-sid", later).await.expect("touch"));
    let (after, _) = raw(&db, "node-sid").await.expect("row");
    assert_eq!(after, sess);
    let touched = store
        .get_session("node-sid")
        .await
        .expect("get")
        .expect("live");
    assert!(close(touched.expires_at, later, Duration::microseconds(1)));
    assert_eq!(touched.data, stored.data);
    let moved: bool = client
        .query_one(
            "SELECT expire = to_timestamp($1)::timestamp FROM \"session\" WHERE sid = 'node-sid'",
            &[&(later.timestamp_micros() as f64 / 1_000_000.0)],
        )
        .await
        .expect("expire")
        .get(0);
    assert!(moved);

    // Written back by us, it is still the same session to Node.
    store
        .set_session("node-sid", &stored.data)
        .await
        .expect("set");
    let node_view: String = client
        .query_one(NODE_GET, &[&"node-sid", &node_now()])
        .await
        .expect("node get")
        .get(0);
    let ours: serde_json::Value = serde_json::from_str(&node_view).expect("json");
    let theirs: serde_json::Value = serde_json::from_str(&sess).expect("json");
    assert_eq!(ours, theirs);
}

#[tokio::test]
async fn set_inserts_or_replaces() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    store
        .set_session("s", &app_session(Duration::hours(1)))
        .await
        .expect("insert");
    let mut second = SessionData::new(SessionCookie::with_max_age(Duration::hours(5)));
    second.fields.insert("views".into(), json!(4));
    let until = store.set_session("s", &second).await.expect("replace");
    assert_eq!(count(&db).await, 1);
    let got = store.get_session("s").await.expect("get").expect("live");
    assert_eq!(got.data.fields, second.fields);
    assert_eq!(got.data.cookie.original_max_age, Some(5 * 3_600_000));
    assert!(close(got.expires_at, until, Duration::microseconds(1)));
}

#[tokio::test]
async fn a_browser_session_cookie_lives_one_day() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let data = SessionData::new(SessionCookie::browser_session());
    let until = store.set_session("b", &data).await.expect("set");
    assert!(close(
        until,
        Utc::now() + Duration::days(1),
        Duration::seconds(10)
    ));
    let (sess, _) = raw(&db, "b").await.expect("row");
    let sess: serde_json::Value = serde_json::from_str(&sess).expect("json");
    assert_eq!(
        sess,
        json!({ "cookie": { "originalMaxAge": null, "expires": null, "httpOnly": true, "path": "/" } })
    );
    let got = store.get_session("b").await.expect("get").expect("live");
    assert_eq!(got.data, data);
}

#[tokio::test]
async fn expired_sessions_are_not_read_not_revived_and_are_deleted() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    for sid in ["old", "older", "live"] {
        store
            .set_session(sid, &app_session(Duration::hours(1)))
            .await
            .expect("set");
    }
    db.client()
        .await
        .batch_execute(
            "UPDATE \"session\" SET expire = now() - interval '1 second' WHERE sid = 'old'; \
             UPDATE \"session\" SET expire = now() - interval '3 days' WHERE sid = 'older'",
        )
        .await
        .expect("expire");
    let (_, expire_before) = raw(&db, "old").await.expect("row");

    assert!(store.get_session("old").await.expect("get").is_none());
    assert!(store.get_session("older").await.expect("get").is_none());
    assert!(store.get_session("live").await.expect("get").is_some());

    // Touching an expired session does not bring it back.
    let later = Utc::now() + Duration::hours(1);
    assert!(!store.touch_session("old", later).await.expect("touch"));
    let (_, expire_after) = raw(&db, "old").await.expect("row");
    assert_eq!(expire_after, expire_before);
    assert!(store.get_session("old").await.expect("get").is_none());

    assert_eq!(store.delete_expired_sessions().await.expect("delete"), 2);
    assert_eq!(count(&db).await, 1);
    assert_eq!(store.delete_expired_sessions().await.expect("delete"), 0);
    assert!(raw(&db, "live").await.is_some());
}

#[tokio::test]
async fn destroy_and_unknown_sessions() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    store
        .set_session("gone", &app_session(Duration::hours(1)))
        .await
        .expect("set");
    assert!(store.destroy_session("gone").await.expect("destroy"));
    assert!(!store.destroy_session("gone").await.expect("destroy again"));
    assert!(store.get_session("gone").await.expect("get").is_none());
    assert_eq!(count(&db).await, 0);

    let later = Utc::now() + Duration::hours(1);
    assert!(store.get_session("never").await.expect("get").is_none());
    assert!(!store.touch_session("never", later).await.expect("touch"));
    assert!(!store.destroy_session("never").await.expect("destroy"));
    assert_eq!(count(&db).await, 0);
}

#[tokio::test]
async fn a_row_whose_sess_is_not_an_object_reads_as_no_session() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    db.client()
        .await
        .batch_execute(
            "INSERT INTO \"session\" (sid, sess, expire) VALUES \
             ('text', '\"just text\"', now() + interval '1 hour'), \
             ('bad-cookie', '{\"cookie\": 5}', now() + interval '1 hour'), \
             ('no-cookie', '{\"n\": 1}', now() + interval '1 hour')",
        )
        .await
        .expect("insert");
    assert!(store.get_session("text").await.expect("get").is_none());
    assert!(store
        .get_session("bad-cookie")
        .await
        .expect("get")
        .is_none());
    let bare = store
        .get_session("no-cookie")
        .await
        .expect("get")
        .expect("an object without a cookie still reads");
    assert_eq!(bare.data.fields["n"], json!(1));
    assert_eq!(bare.data.cookie, SessionCookie::browser_session());
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_query() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let data = app_session(Duration::hours(1));
    let long = "s".repeat(256);
    for sid in ["", "nul\0sid", long.as_str()] {
        for result in [
            store.get_session(sid).await.map(|_| ()),
            store.set_session(sid, &data).await.map(|_| ()),
            store.touch_session(sid, Utc::now()).await.map(|_| ()),
            store.destroy_session(sid).await.map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(Error::Validation { field: "sid", .. })),
                "{sid:?}: {result:?}"
            );
        }
    }
    assert!(store.set_session(&"s".repeat(255), &data).await.is_ok());

    let mut clash = app_session(Duration::hours(1));
    clash.fields.insert("cookie".into(), json!({}));
    assert!(matches!(
        store.set_session("clash", &clash).await,
        Err(Error::Validation { field: "sess", .. })
    ));
    assert_eq!(count(&db).await, 1);
}

#[tokio::test]
async fn the_disabled_store_stores_no_session() {
    let store = DisabledStore::new("test");
    let data = app_session(Duration::hours(1));
    assert!(matches!(store.get_session("s").await, Err(Error::Disabled)));
    assert!(matches!(
        store.set_session("s", &data).await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.touch_session("s", Utc::now()).await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.destroy_session("s").await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.delete_expired_sessions().await,
        Err(Error::Disabled)
    ));
    assert!(matches!(
        store.end_all_sessions(UserId(Uuid::new_v4())).await,
        Err(Error::Disabled)
    ));
}

#[tokio::test]
async fn session_data_is_not_printed() {
    let data = app_session(Duration::hours(1));
    let shown = format!("{data:?}");
    assert!(shown.contains("passport"), "{shown}");
    assert!(!shown.contains("a11ce"), "{shown}");
}

// ---- ending a user's sessions ------------------------------------------------

const PW: &str = "correct horse battery";
const NEW_PW: &str = "new staple password";

async fn user(store: &PgStore, email: &str, role: Role) -> User {
    let mut new = NewLocalUser::new(email, PW, format!("Name of {email}"));
    new.role = role;
    store.create_user(new).await.expect("create user")
}

/// Stores the session `sid` logged in as `user`, as the example server
/// does (`"userId": "<uuid>"`).
async fn log_in(store: &PgStore, sid: &str, user: UserId) {
    let mut data = app_session(Duration::hours(1));
    data.fields.insert("userId".into(), json!(user));
    store.set_session(sid, &data).await.expect("set session");
}

/// Every session id in the table, sorted.
async fn sids(db: &TestDb) -> Vec<String> {
    db.client()
        .await
        .query("SELECT sid FROM \"session\" ORDER BY sid", &[])
        .await
        .expect("sids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn sessions_of(db: &TestDb, user: UserId) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM \"session\" WHERE sess ->> 'userId' = $1",
            &[&user.to_string()],
        )
        .await
        .expect("count")
        .get(0)
}

async fn live_refresh(store: &PgStore, token: &pronghorn_db::Token) -> bool {
    match store.verify_refresh_token(token.expose()).await {
        Ok(_) => true,
        Err(Error::TokenRejected {
            problem: TokenProblem::Revoked,
        }) => false,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn deleting_a_users_sessions_matches_its_user_id_and_nothing_else() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = UserId(Uuid::new_v4());
    let bob = UserId(Uuid::new_v4());
    let (a, b) = (ann.to_string(), bob.to_string());
    let upper = a.to_uppercase();
    // `sess` text exactly as stored: `json` keeps it, duplicate keys too.
    let rows = [
        (
            "ann-live",
            format!(r#"{{"cookie":{{"path":"/"}},"userId":"{a}"}}"#),
            "1 hour",
        ),
        ("ann-expired", format!(r#"{{"userId":"{a}"}}"#), "-1 hour"),
        (
            "ann-last-of-two",
            format!(r#"{{"userId":"{b}","userId":"{a}"}}"#),
            "1 hour",
        ),
        ("bob", format!(r#"{{"userId":"{b}"}}"#), "1 hour"),
        (
            "first-of-two",
            format!(r#"{{"userId":"{a}","userId":"{b}"}}"#),
            "1 hour",
        ),
        ("upper-case", format!(r#"{{"userId":"{upper}"}}"#), "1 hour"),
        (
            "nested",
            format!(r#"{{"passport":{{"user":"{a}"}}}}"#),
            "1 hour",
        ),
        (
            "object-id",
            format!(r#"{{"userId":{{"id":"{a}"}}}}"#),
            "1 hour",
        ),
        ("in-array", format!(r#"[{{"userId":"{a}"}}]"#), "1 hour"),
        ("string", format!(r#""{a}""#), "1 hour"),
        ("null", "null".to_owned(), "1 hour"),
        ("number-id", r#"{"userId":42}"#.to_owned(), "1 hour"),
        (
            "anonymous",
            r#"{"cookie":{"path":"/"}}"#.to_owned(),
            "1 hour",
        ),
    ];
    let client = db.client().await;
    for (sid, sess, ttl) in &rows {
        client
            .execute(
                "INSERT INTO \"session\" (sid, sess, expire) \
                 VALUES ($1, $2::text::json, (now() + $3::text::interval)::timestamp)",
                &[sid, sess, ttl],
            )
            .await
            .expect("insert");
    }
    // The app reads the last of duplicate keys, as `->>` does.
    let read = store
        .get_session("ann-last-of-two")
        .await
        .expect("get")
        .expect("live");
    assert_eq!(read.data.fields["userId"], json!(a));

    let conn = store.conn().await.expect("conn");
    let deleted = pronghorn_db::repo::sessions::delete_all_of_user(&conn, ann)
        .await
        .expect("delete");
    assert_eq!(deleted, 3);
    let mut left: Vec<&str> = rows
        .iter()
        .map(|(sid, _, _)| *sid)
        .filter(|sid| !sid.starts_with("ann-"))
        .collect();
    left.sort_unstable();
    assert_eq!(sids(&db).await, left);
    let again = pronghorn_db::repo::sessions::delete_all_of_user(&conn, ann)
        .await
        .expect("delete again");
    assert_eq!(again, 0);
}

#[derive(diesel::QueryableByName)]
struct Statement {
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
}

#[tokio::test]
async fn deleting_a_users_sessions_uses_the_user_id_index_even_in_a_generic_plan() {
    let db = TestDb::migrated().await;
    let store = db.one_connection_store().await;
    let mut conn = store.conn().await.expect("conn");
    pronghorn_db::repo::sessions::delete_all_of_user(&conn, UserId(Uuid::new_v4()))
        .await
        .expect("delete");
    // The statement exactly as the repository sent it, kept prepared.
    use diesel_async::RunQueryDsl;
    let kept: Vec<Statement> = diesel::sql_query(
        "SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'DELETE FROM \"session\"%'",
    )
    .load(&mut *conn)
    .await
    .expect("pg_prepared_statements");
    assert_eq!(kept.len(), 1);
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan; \
             PREPARE by_user AS {}",
            kept[0].statement
        ))
        .await
        .expect("prepare");
    let plan: Vec<String> = client
        .query("EXPLAIN EXECUTE by_user('x')", &[])
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("idx_session_user_id"), "{plan}");
}

#[tokio::test]
async fn ending_all_sessions_logs_a_user_out_everywhere_and_no_one_else() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let ann = user(&store, "ann@example.test", Role::User).await;
    let bob = user(&store, "bob@example.test", Role::User).await;
    log_in(&store, "ann-phone", ann.id).await;
    log_in(&store, "ann-laptop", ann.id).await;
    log_in(&store, "bob", bob.id).await;
    store
        .set_session("anonymous", &app_session(Duration::hours(1)))
        .await
        .expect("set");
    let hour = Duration::hours(1);
    let ann_tokens = [
        store
            .issue_refresh_token(ann.id, hour)
            .await
            .expect("issue"),
        store
            .issue_refresh_token(ann.id, hour)
            .await
            .expect("issue"),
    ];
    let bobs = store
        .issue_refresh_token(bob.id, hour)
        .await
        .expect("issue");
    let reset_link = |email: &'static str| {
        let store = &store;
        async move {
            store
                .request_password_reset(email, &ResetPolicy::default(), &RequestMeta::default())
                .await
                .expect("request")
                .delivery
                .expect("a token")
                .token
        }
    };
    let anns_link = reset_link("ann@example.test").await;
    let bobs_link = reset_link("bob@example.test").await;

    let ended = store.end_all_sessions(ann.id).await.expect("end");
    assert_eq!(
        ended,
        EndedSessions {
            sessions: 2,
            refresh_tokens: 2
        }
    );
    assert_eq!(sids(&db).await, ["anonymous", "bob"]);
    for t in &ann_tokens {
        assert!(!live_refresh(&store, &t.token).await);
    }
    assert!(live_refresh(&store, &bobs.token).await);
    // Her pending reset link ends too (his still works, at the end).
    assert!(matches!(
        store
            .reset_password(anns_link.expose(), NEW_PW, &RequestMeta::default())
            .await,
        Err(Error::TokenRejected {
            problem: TokenProblem::Expired
        })
    ));

    assert_eq!(
        store.end_all_sessions(ann.id).await.expect("again"),
        EndedSessions::default()
    );

    // Sessions naming a user the table no longer has still end.
    let gone = UserId(Uuid::new_v4());
    log_in(&store, "gone", gone).await;
    assert_eq!(
        store.end_all_sessions(gone).await.expect("unknown user"),
        EndedSessions {
            sessions: 1,
            refresh_tokens: 0
        }
    );
    assert_eq!(sids(&db).await, ["anonymous", "bob"]);
    store
        .reset_password(bobs_link.expose(), NEW_PW, &RequestMeta::default())
        .await
        .expect("his link");
}

/// The changes that must log their user out, each on a fresh user.
#[derive(Debug, Clone, Copy)]
enum Change {
    Password,
    Reset,
    Role,
    Block,
    Delete,
    SelfDelete,
}

const CHANGES: [Change; 6] = [
    Change::Password,
    Change::Reset,
    Change::Role,
    Change::Block,
    Change::Delete,
    Change::SelfDelete,
];

impl Change {
    /// Makes the change to `target` (by `admin` where an admin acts).
    async fn apply(self, store: &PgStore, admin: UserId, target: &User) -> Result<(), Error> {
        let meta = RequestMeta::default();
        match self {
            Change::Password => store.change_password(target.id, PW, NEW_PW, &meta).await,
            Change::Reset => {
                let token = store
                    .request_password_reset(&target.email, &ResetPolicy::default(), &meta)
                    .await?
                    .delivery
                    .expect("a token")
                    .token;
                store
                    .reset_password(token.expose(), NEW_PW, &meta)
                    .await
                    .map(drop)
            }
            Change::Role => store
                .change_role(admin, target.id, Role::Admin, &meta)
                .await
                .map(drop),
            Change::Block => store
                .block_user(admin, target.id, "stolen cookies", &meta)
                .await
                .map(drop),
            Change::Delete => store.delete_user(admin, target.id, &meta).await,
            Change::SelfDelete => store.delete_own_account(target.id, &meta).await,
        }
    }

    fn deletes(self) -> bool {
        matches!(self, Change::Delete | Change::SelfDelete)
    }
}

#[tokio::test]
async fn each_change_that_must_log_a_user_out_ends_that_users_sessions_only() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let root = user(&store, "root@example.test", Role::Superadmin).await;
    let bob = user(&store, "bob@example.test", Role::User).await;
    log_in(&store, "root", root.id).await;
    log_in(&store, "bob", bob.id).await;
    for (n, change) in CHANGES.into_iter().enumerate() {
        let target = user(&store, &format!("target{n}@example.test"), Role::User).await;
        log_in(&store, &format!("target{n}-a"), target.id).await;
        log_in(&store, &format!("target{n}-b"), target.id).await;
        let refresh = store
            .issue_refresh_token(target.id, Duration::hours(1))
            .await
            .expect("issue");
        // Reset links that were pending before the change: one the user
        // asked for (an attacker who once read the inbox keeps it) and one
        // an admin generated under the target's old role.
        let requested = store
            .request_password_reset(
                &target.email,
                &ResetPolicy::default(),
                &RequestMeta::default(),
            )
            .await
            .expect("request")
            .delivery
            .expect("a token")
            .token;
        let generated = store
            .admin_generate_password_reset(root.id, target.id, &RequestMeta::default())
            .await
            .expect("admin reset")
            .token;
        change
            .apply(&store, root.id, &target)
            .await
            .unwrap_or_else(|e| panic!("{change:?}: {e}"));
        assert_eq!(sessions_of(&db, target.id).await, 0, "{change:?}");
        if !change.deletes() {
            assert!(!live_refresh(&store, &refresh.token).await, "{change:?}");
        }
        for (link, token) in [("requested", &requested), ("generated", &generated)] {
            let taken = store
                .reset_password(
                    token.expose(),
                    "an attacker's password",
                    &RequestMeta::default(),
                )
                .await;
            assert!(
                matches!(taken, Err(Error::TokenRejected { .. })),
                "{change:?}: the {link} reset link still works: {taken:?}"
            );
        }
        if !change.deletes() {
            assert!(matches!(
                store
                    .authenticate(&target.email, "an attacker's password")
                    .await,
                Err(Error::InvalidCredentials)
            ));
        }
    }
    assert_eq!(sids(&db).await, ["bob", "root"]);
}

#[tokio::test]
async fn a_change_that_fails_ends_no_session() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let root = user(&store, "root@example.test", Role::Superadmin).await;
    let boss = user(&store, "boss@example.test", Role::Admin).await;
    let ann = user(&store, "ann@example.test", Role::User).await;
    log_in(&store, "root", root.id).await;
    log_in(&store, "ann", ann.id).await;
    let meta = RequestMeta::default();
    let refresh = store
        .issue_refresh_token(ann.id, Duration::hours(1))
        .await
        .expect("issue");

    // Refused before any change.
    assert!(matches!(
        store
            .change_password(ann.id, "not her password", NEW_PW, &meta)
            .await,
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        store.block_user(boss.id, root.id, "no", &meta).await,
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        store.change_role(boss.id, ann.id, Role::Admin, &meta).await,
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        store.reset_password("not-a-token", NEW_PW, &meta).await,
        Err(Error::TokenRejected { .. })
    ));
    assert_eq!(sids(&db).await, ["ann", "root"]);

    // Refused after the sessions were deleted, inside the change's
    // transaction: the audit entry that follows is refused.
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
             CREATE TRIGGER refuse_audit BEFORE INSERT ON user_audit_log \
               FOR EACH ROW EXECUTE FUNCTION refuse()",
        )
        .await
        .expect("trigger");
    for change in CHANGES.into_iter().filter(|c| !c.deletes()) {
        let result = change.apply(&store, root.id, &ann).await;
        assert!(
            matches!(result, Err(Error::Database(_))),
            "{change:?}: {result:?}"
        );
        assert_eq!(sids(&db).await, ["ann", "root"], "{change:?}");
        assert!(live_refresh(&store, &refresh.token).await, "{change:?}");
    }
    store
        .authenticate(&ann.email, PW)
        .await
        .expect("the password did not change");
    // Deletions audit first: refuse the row's delete, which follows the
    // sessions' instead.
    client
        .batch_execute(
            "DROP TRIGGER refuse_audit ON user_audit_log; \
             CREATE TRIGGER refuse_delete BEFORE DELETE ON users \
               FOR EACH ROW EXECUTE FUNCTION refuse()",
        )
        .await
        .expect("trigger");
    for change in CHANGES.into_iter().filter(|c| c.deletes()) {
        let result = change.apply(&store, root.id, &ann).await;
        assert!(
            matches!(result, Err(Error::Database(_))),
            "{change:?}: {result:?}"
        );
        assert_eq!(sids(&db).await, ["ann", "root"], "{change:?}");
    }
    store.user_by_id(ann.id).await.expect("ann is still there");
}
