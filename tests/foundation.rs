//! The foundation against a real PostgreSQL: disabled mode, an unreachable
//! server, a server restart under a live pool, TLS modes, close, and the
//! per-call tracing spans.

mod common;

use common::cluster::Cluster;
use common::{admin_config, admin_url, configured, TestDb};
use pronghorn_db::{
    store_from, Configuration, DbConfig, Error, HealthStore, PgStore, PoolSettings, SslMode,
};
use std::time::{Duration, Instant};

#[tokio::test]
async fn nothing_configured_gives_a_disabled_store() {
    let configuration = DbConfig::from_lookup(|_| None).expect("not malformed");
    let store = store_from(configuration)
        .await
        .expect("never fails when unconfigured");
    assert!(!store.is_configured());
    assert!(!store.is_connected());
    assert!(!store.test_connection().await);
    assert_eq!(store.pool_stats(), None);
    assert_eq!(store.target(), None);
    assert!(matches!(store.server_info().await, Err(Error::Disabled)));
    store.close().await;
    assert!(matches!(store.server_info().await, Err(Error::Disabled)));
}

#[tokio::test]
async fn one_call_gives_an_app_the_store_and_its_pg_store() {
    let disabled = pronghorn_db::Database::open(DbConfig::from_lookup(|_| None).expect("read"))
        .await
        .expect("open");
    assert!(disabled.pg.is_none());
    assert!(matches!(
        disabled.store.server_info().await,
        Err(Error::Disabled)
    ));

    let db = common::TestDb::migrated().await;
    let url = db.url();
    let opened = pronghorn_db::Database::open(
        DbConfig::from_lookup(|k| (k == "DB_CONNECTION_STRING").then(|| url.clone()))
            .expect("read"),
    )
    .await
    .expect("open");
    let pg = opened.pg.clone().expect("a PgStore when configured");
    // One store behind both handles: a write through the PgStore's
    // transaction is what the store reads.
    pg.transaction(|conn| {
        Box::pin(async move {
            diesel_async::RunQueryDsl::execute(
                diesel::sql_query(
                    "INSERT INTO users (email, display_name) VALUES ('both@example.com', 'Both')",
                ),
                conn,
            )
            .await?;
            Ok::<_, Error>(())
        })
    })
    .await
    .expect("transaction");
    let user = opened
        .store
        .user_by_email("both@example.com")
        .await
        .expect("the store sees it");
    assert_eq!(user.display_name, "Both");
    assert_eq!(pg.pool_stats(), opened.store.pool_stats());
}

#[tokio::test]
async fn closed_port_fails_within_the_connection_timeout() {
    let timeout_ms = 1000;
    let config = configured(&[
        (
            "DB_CONNECTION_STRING",
            "postgres://u:s3cretpw@127.0.0.1:1/x",
        ),
        ("DB_POOL_CONNECTION_TIMEOUT", "1000"),
    ]);
    let started = Instant::now();
    let store = store_from(Configuration::Configured(Box::new(config)))
        .await
        .expect("builds");
    let built_in = started.elapsed();
    assert!(
        built_in <= Duration::from_millis(timeout_ms + 500),
        "the entry point took {built_in:?}"
    );
    assert!(store.is_configured());
    assert!(!store.is_connected());

    let started = Instant::now();
    let err = store
        .server_info()
        .await
        .expect_err("nothing listens on port 1");
    let took = started.elapsed();
    assert!(
        took <= Duration::from_millis(timeout_ms + 500),
        "took {took:?}"
    );
    match &err {
        Error::Unavailable { target, reason } => {
            assert_eq!(target, "postgres://u:***@127.0.0.1:1/x");
            assert!(reason.contains("Connection refused"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let shown = format!("{err} {err:?} {store:?}", store = store.target());
    assert!(!shown.contains("s3cretpw"), "{shown}");
    assert!(!store.test_connection().await);
}

#[tokio::test]
async fn the_same_store_serves_again_after_a_server_restart() {
    let cluster = Cluster::start();
    let config = configured(&[
        ("DB_CONNECTION_STRING", &cluster.url()),
        ("DB_SSL", "false"),
    ])
    .with_pool(PoolSettings {
        min_idle: 2,
        max_size: 4,
        idle_timeout: Duration::from_secs(30),
        connection_timeout: Duration::from_millis(1500),
    });
    let store = PgStore::new(config).await.expect("store");
    assert!(store.server_info().await.is_ok());
    assert!(store.is_connected());

    cluster.stop();
    let started = Instant::now();
    let err = store.server_info().await.expect_err("the server is down");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        started.elapsed() <= Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(!store.is_connected());

    cluster.restart();
    let started = Instant::now();
    let mut served = false;
    while started.elapsed() < Duration::from_secs(10) {
        if store.server_info().await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the store did not recover within 10 s");
    assert!(store.is_connected());
    // Every pooled connection is a new one: the old ones were dropped.
    for _ in 0..8 {
        store.server_info().await.expect("serves after the restart");
    }
    store.close().await;
}

async fn ssl_in_use(store: &PgStore) -> bool {
    use diesel::sql_types::Bool;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Bool)]
        ssl: bool,
    }
    let mut conn = store.conn().await.expect("conn");
    let row: Row = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(&mut *conn)
        .await
        .expect("pg_stat_ssl");
    row.ssl
}

fn local(mode: &str, extra: &[(&str, &str)]) -> DbConfig {
    let url = format!(
        "{}?sslmode={mode}",
        admin_url().split('?').next().unwrap_or_default()
    );
    let mut vars = vec![
        ("DB_CONNECTION_STRING", url.as_str()),
        ("DB_POOL_CONNECTION_TIMEOUT", "2000"),
    ];
    vars.extend_from_slice(extra);
    configured(&vars)
}

#[tokio::test]
async fn sslmode_require_encrypts() {
    let store = PgStore::new(local("require", &[])).await.expect("store");
    assert!(
        ssl_in_use(&store).await,
        "pg_stat_ssl says the connection is plain"
    );
}

#[tokio::test]
async fn sslmode_disable_is_plain_text() {
    let store = PgStore::new(local("disable", &[])).await.expect("store");
    assert!(
        !ssl_in_use(&store).await,
        "pg_stat_ssl says the connection is encrypted"
    );
}

#[tokio::test]
async fn verify_full_without_the_right_ca_fails_clearly() {
    let store = PgStore::new(local("verify-full", &[]))
        .await
        .expect("store");
    let err = store
        .server_info()
        .await
        .expect_err("the self-signed certificate is not trusted");
    match err {
        Error::Unavailable { reason, .. } => {
            assert!(
                reason.contains("certificate"),
                "the reason should name the certificate: {reason}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

#[tokio::test]
async fn verify_ca_trusts_the_given_root_but_not_the_name() {
    if !std::path::Path::new(SNAKEOIL).exists() {
        panic!("{SNAKEOIL} is missing: the local server's certificate is needed for this test");
    }
    // The server's own self-signed certificate is its root: the chain
    // verifies. Its name is the machine's, not 127.0.0.1, so verify-full
    // still refuses.
    let store = PgStore::new(local("verify-ca", &[("DB_SSL_ROOT_CERT", SNAKEOIL)]))
        .await
        .expect("store");
    assert!(ssl_in_use(&store).await);

    let store = PgStore::new(local("verify-full", &[("DB_SSL_ROOT_CERT", SNAKEOIL)]))
        .await
        .expect("store");
    let err = store.server_info().await.expect_err("name mismatch");
    assert!(
        err.to_string()
            .contains("certificate not valid for name \"127.0.0.1\""),
        "expected a host name error: {err}"
    );

    // Under the name the certificate carries, verify-full accepts it.
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full",
        admin_config().hosts()[0].port
    );
    let store = PgStore::new(configured(&[
        ("DB_CONNECTION_STRING", &url),
        ("DB_SSL_ROOT_CERT", SNAKEOIL),
    ]))
    .await
    .expect("store");
    assert!(ssl_in_use(&store).await);
}

#[tokio::test]
async fn an_unreadable_root_certificate_is_a_config_error() {
    let config = local(
        "verify-full",
        &[("DB_SSL_ROOT_CERT", "/nonexistent/root.pem")],
    );
    match PgStore::new(config).await {
        Err(Error::Config(e)) => {
            assert_eq!(e.variable, "DB_SSL_ROOT_CERT");
            assert!(e.problem.contains("/nonexistent/root.pem"), "{}", e.problem);
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[tokio::test]
async fn pool_stats_and_close() {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    for _ in 0..3 {
        store.server_info().await.expect("query");
    }
    let stats = store.pool_stats().expect("configured");
    assert!(stats.size >= 1, "{stats:?}");
    assert_eq!(stats.in_use, 0, "{stats:?}");
    assert_eq!(stats.max, 8);
    assert_eq!(stats.waiting, 0);
    {
        let _held = store.conn().await.expect("conn");
        let stats = store.pool_stats().expect("configured");
        assert_eq!(stats.in_use, 1, "{stats:?}");
    }
    store.close().await;
    match store.server_info().await {
        Err(Error::Unavailable { reason, .. }) => assert!(reason.contains("closed"), "{reason}"),
        other => panic!("expected Unavailable after close, got {other:?}"),
    }
    assert_eq!(store.pool_stats().map(|s| s.size), Some(0));
}

#[tokio::test]
async fn ssl_mode_parsing_reaches_the_store() {
    let config = admin_config().with_ssl_mode(SslMode::Disable);
    let store = PgStore::new(config).await.expect("store");
    assert_eq!(store.config().ssl_mode(), SslMode::Disable);
    assert!(!ssl_in_use(&store).await);
}

#[tokio::test]
async fn verify_ca_with_a_ca_that_did_not_sign_the_server_fails_clearly() {
    // The public roots did not sign Debian's self-signed certificate.
    let store = PgStore::new(local(
        "verify-ca",
        &[("DB_SSL_ROOT_CERT", "/etc/ssl/certs/ca-certificates.crt")],
    ))
    .await
    .expect("store");
    let err = store.server_info().await.expect_err("unknown issuer");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        err.to_string()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
}

#[tokio::test]
async fn require_against_a_server_without_ssl_fails_clearly() {
    let cluster = Cluster::start(); // initdb leaves ssl off
    let config = configured(&[
        (
            "DB_CONNECTION_STRING",
            &format!("{}?sslmode=require", cluster.url()),
        ),
        ("DB_POOL_CONNECTION_TIMEOUT", "1500"),
    ]);
    let store = PgStore::new(config).await.expect("store");
    let err = store
        .server_info()
        .await
        .expect_err("no TLS on that server");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        err.to_string().contains("server does not support TLS"),
        "{err}"
    );

    // prefer falls back to plain text there.
    let config = configured(&[(
        "DB_CONNECTION_STRING",
        &format!("{}?sslmode=prefer", cluster.url()),
    )]);
    let store = PgStore::new(config).await.expect("store");
    assert!(!ssl_in_use(&store).await);
}

#[tokio::test]
async fn pool_settings_set_in_code_are_checked_too() {
    let bad = [
        (0, 0, 1000, "DB_POOL_MAX"),
        (3, 2, 1000, "DB_POOL_MIN"),
        (0, 2, 0, "DB_POOL_CONNECTION_TIMEOUT"),
    ];
    for (min, max, timeout_ms, variable) in bad {
        let config = admin_config().with_pool(PoolSettings {
            min_idle: min,
            max_size: max,
            idle_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_millis(timeout_ms),
        });
        match PgStore::new(config).await {
            Err(Error::Config(e)) => assert_eq!(e.variable, variable),
            other => panic!("{variable}: expected a config error, got {other:?}"),
        }
    }
}
