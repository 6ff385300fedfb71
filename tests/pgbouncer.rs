//! The store behind PgBouncer, the one Debian ships (1.18), started by the
//! test on a port of its own in front of the test server.
//!
//! Session mode: migrations, users and logins, sessions and a transaction
//! work through it. Transaction mode: PgBouncer 1.18 cannot carry named
//! prepared statements between clients, and diesel-async prepares every
//! statement by name (with its statement cache on, and through
//! tokio-postgres's `prepare` with it off), so the store reports the failure
//! as an error that names the fix.

mod common;

use common::TestDb;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use pronghorn_db::models::NewLocalUser;
use pronghorn_db::{
    Configuration, DbConfig, Error, HealthStore, PgStore, PoolSettings, SessionCookie, SessionData,
    SessionStore, UserStore,
};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// A PgBouncer serving one database of the test server, stopped on drop.
struct Bouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
    db: String,
}

impl Bouncer {
    /// Starts PgBouncer (as the `postgres` user: it refuses root) in
    /// `mode`, with at most `server_conns` server connections.
    fn start(db: &str, mode: &str, server_conns: u32) -> Bouncer {
        assert!(
            std::path::Path::new(PGBOUNCER).exists(),
            "{PGBOUNCER} is missing: apt-get install pgbouncer (.ci/run does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("pronghorn-pgbouncer-{port}"));
        std::fs::create_dir_all(&dir).expect("bouncer folder");
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").expect("userlist");
        let ini = format!(
            "[databases]\n\
             {db} = host=127.0.0.1 port=5432 dbname={db}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = {mode}\n\
             default_pool_size = {server_conns}\n\
             max_client_conn = 200\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n\
             ignore_startup_parameters = extra_float_digits,options,statement_timeout\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).expect("ini");
        let owned = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(owned.success(), "chown the bouncer folder to postgres");
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--", PGBOUNCER])
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer did not listen within 10 s: {}",
                std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Bouncer {
            child,
            port,
            dir,
            db: db.to_owned(),
        }
    }

    /// The URL of the database through PgBouncer.
    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
            self.port, self.db
        )
    }

    /// A store reaching the database through PgBouncer, `conns` connections.
    async fn store(&self, conns: u32) -> PgStore {
        let url = self.url();
        let config =
            match DbConfig::from_lookup(|k| (k == "DB_CONNECTION_STRING").then(|| url.clone())) {
                Ok(Configuration::Configured(c)) => *c,
                other => panic!("a configuration: {other:?}"),
            };
        PgStore::new(config.with_pool(PoolSettings {
            min_idle: 0,
            max_size: conns,
            idle_timeout: Duration::from_secs(30),
            connection_timeout: Duration::from_secs(5),
        }))
        .await
        .expect("store")
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // runuser forwards the signal to pgbouncer.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn session_mode_runs_migrations_logins_sessions_and_transactions() {
    let db = TestDb::empty().await;
    let bouncer = Bouncer::start(db.name(), "session", 4);
    let store = bouncer.store(4).await;

    let applied = pronghorn_db::migrate::run_pending(&store)
        .await
        .expect("migrations through pgbouncer");
    assert!(applied.len() >= 18, "{applied:?}");

    let user = store
        .create_user(NewLocalUser::new(
            "ann@example.com",
            "a long password",
            "Ann",
        ))
        .await
        .expect("create a user");
    let logged_in = store
        .authenticate("ann@example.com", "a long password")
        .await
        .expect("log in");
    assert_eq!(logged_in.id, user.id);
    assert!(matches!(
        store
            .authenticate("ann@example.com", "wrong password")
            .await,
        Err(Error::InvalidCredentials)
    ));

    let mut data = SessionData::new(SessionCookie::browser_session());
    data.fields
        .insert("userId".to_owned(), serde_json::json!(user.id.to_string()));
    store
        .set_session("sid-1", &data)
        .await
        .expect("set session");
    let found = store
        .get_session("sid-1")
        .await
        .expect("get session")
        .expect("the session");
    assert_eq!(found.data.fields.get("userId"), data.fields.get("userId"));

    let id = user.id;
    let (a, b) = store
        .transaction(move |conn| {
            Box::pin(async move {
                let a = pronghorn_db::repo::users::find_by_id(conn, id).await?;
                let b = pronghorn_db::repo::users::lock_by_id(conn, id).await?;
                Ok((a, b))
            })
        })
        .await
        .expect("a transaction");
    assert_eq!((a.id, b.id), (id, id));

    // Many calls over few server connections reuse prepared statements
    // safely: a client keeps its server connection in session mode.
    let calls = (0..40).map(|_| store.user_by_id(id));
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.expect("a lookup").id, id);
    }
    store.close().await;
}

/// Runs lookups from `stores` at once, over `rounds` rounds, and returns
/// every error.
async fn lookups(
    stores: &[PgStore],
    id: pronghorn_db::models::UserId,
    rounds: usize,
) -> Vec<Error> {
    let mut errors = Vec::new();
    for _ in 0..rounds {
        let calls = stores.iter().map(|s| s.user_by_id(id));
        for r in futures_util::future::join_all(calls).await {
            if let Err(e) = r {
                errors.push(e);
            }
        }
    }
    errors
}

#[tokio::test]
async fn transaction_mode_fails_with_an_error_that_names_the_fix() {
    let db = TestDb::migrated().await;
    let direct = db.store().await;
    let user = direct
        .create_user(NewLocalUser::new("bo@example.com", "a long password", "Bo"))
        .await
        .expect("create a user");
    let bouncer = Bouncer::start(db.name(), "transaction", 2);
    let stores = vec![
        bouncer.store(1).await,
        bouncer.store(1).await,
        bouncer.store(1).await,
    ];
    let errors = lookups(&stores, user.id, 10).await;
    assert!(!errors.is_empty(), "transaction mode went unnoticed");
    for e in &errors {
        let text = e.to_string();
        assert!(
            matches!(e, Error::Unavailable { .. })
                && text.contains("prepared statement")
                && text.contains("PgBouncer 1.21")
                && text.contains("max_prepared_statements")
                && text.contains("pool_mode = session"),
            "{text}"
        );
    }
    for s in &stores {
        s.close().await;
    }
}

#[tokio::test]
async fn transaction_mode_fails_with_the_statement_cache_off_too() {
    use diesel::connection::CacheSize;
    let db = TestDb::migrated().await;
    let bouncer = Bouncer::start(db.name(), "transaction", 2);
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut conn = AsyncPgConnection::establish(&bouncer.url())
            .await
            .expect("connect through pgbouncer");
        conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        conns.push(conn);
    }
    let mut failures = Vec::new();
    for _ in 0..10 {
        use diesel_async::RunQueryDsl;
        let runs = conns.iter_mut().map(|c| {
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1")).get_result::<i32>(c)
        });
        for r in futures_util::future::join_all(runs).await {
            if let Err(e) = r {
                failures.push(e.to_string());
            }
        }
    }
    println!(
        "cache off through transaction-mode PgBouncer 1.18: {} failures, e.g. {:?}",
        failures.len(),
        std::slice::from_ref(&failures)
            .first()
            .and_then(|f| f.first())
    );
    assert!(
        failures.iter().any(|f| f.contains("prepared statement")),
        "{failures:?}"
    );
}
