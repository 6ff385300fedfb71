//! Beyond one server, on PostgreSQL's own streaming replication: a primary
//! and a standby made with `pg_basebackup -R`, as throwaway clusters.

mod common;

use common::cluster::Cluster;
use diesel::sql_types::{Bool, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use pronghorn_db::models::{NewLocalUser, UserFilter};
use pronghorn_db::{Configuration, DbConfig, HealthStore, PageRequest, PgStore, UserStore};
use std::time::{Duration, Instant};

#[derive(diesel::QueryableByName)]
struct Recovery {
    #[diesel(sql_type = Bool)]
    standby: bool,
}

#[derive(diesel::QueryableByName)]
struct Port {
    #[diesel(sql_type = Integer)]
    port: i32,
}

async fn on_standby(conn: &mut AsyncPgConnection) -> bool {
    diesel::sql_query("SELECT pg_is_in_recovery() AS standby")
        .get_result::<Recovery>(conn)
        .await
        .expect("pg_is_in_recovery")
        .standby
}

fn store_config(vars: &[(&str, String)]) -> DbConfig {
    match DbConfig::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
            .or_else(|| match k {
                "DB_SSL" => Some("false".into()),
                "DB_POOL_CONNECTION_TIMEOUT" => Some("1500".into()),
                "DB_POOL_MIN" => Some("1".into()),
                _ => None,
            })
    }) {
        Ok(Configuration::Configured(c)) => *c,
        other => panic!("{other:?}"),
    }
}

async fn exec(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
}

async fn listed(store: &PgStore) -> Vec<String> {
    store
        .list_users(&UserFilter::default(), &PageRequest::first(100))
        .await
        .expect("list users")
        .items
        .into_iter()
        .map(|u| u.email)
        .collect()
}

/// Waits until `check` holds, for at most `limit`.
/// Waits until `store`'s lag-tolerant reads land on the standby (or, with
/// `standby` false, on the primary), failing with `what` after 10 s.
async fn reads_on_standby(store: &PgStore, standby: bool, what: &str) {
    eventually(Duration::from_secs(10), what, || async {
        let mut conn = store.read_conn().await.expect("read conn");
        on_standby(&mut conn).await == standby
    })
    .await;
}

async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_use_a_healthy_replica_and_fall_back_to_the_primary() {
    let primary = Cluster::start();
    let setup = PgStore::new(store_config(&[("DB_CONNECTION_STRING", primary.url())]))
        .await
        .expect("store");
    pronghorn_db::migrate::run_pending(&setup)
        .await
        .expect("migrate");
    setup.close().await;
    let standby = Cluster::start_standby(&primary);
    let store = PgStore::new(store_config(&[
        ("DB_CONNECTION_STRING", primary.url()),
        ("DB_READ_REPLICA_URLS", standby.url()),
        ("DB_REPLICA_MAX_LAG_MS", "1000".into()),
    ]))
    .await
    .expect("store");

    // Writes go to the primary; the replica serves lag-tolerant reads and
    // soon sees the write.
    store
        .create_user(NewLocalUser::new("first@x.io", "first password", "First"))
        .await
        .expect("write");
    let mut conn = store.conn().await.expect("primary");
    assert!(
        !on_standby(&mut conn).await,
        "writes and checks use the primary"
    );
    drop(conn);
    reads_on_standby(&store, true, "the replica serves reads").await;
    eventually(
        Duration::from_secs(10),
        "the replica has the write",
        || async { listed(&store).await == ["first@x.io"] },
    )
    .await;
    let status = &store.replica_status()[0];
    assert!(status.healthy, "{status:?}");
    assert!(status.lag_ms.is_some_and(|l| l < 1000), "{status:?}");
    assert!(
        status.pool.size >= 1,
        "the replica's pool holds connections: {status:?}"
    );
    assert_eq!(
        status.target,
        format!("postgres://postgres@127.0.0.1:{}/postgres", standby.port)
    );

    // Replay paused and the primary writing: the lag passes the limit and
    // reads go to the primary, with no error.
    exec(&standby.url(), "SELECT pg_wal_replay_pause()").await;
    store
        .create_user(NewLocalUser::new(
            "second@x.io",
            "second password",
            "Second",
        ))
        .await
        .expect("write");
    reads_on_standby(&store, false, "lagging replica skipped").await;
    let status = &store.replica_status()[0];
    assert!(!status.healthy, "{status:?}");
    assert!(status.lag_ms.is_some_and(|l| l > 1000), "{status:?}");
    assert_eq!(
        listed(&store).await,
        ["second@x.io", "first@x.io"],
        "read from the primary"
    );

    // Replay resumed: the replica catches up and serves again.
    exec(&standby.url(), "SELECT pg_wal_replay_resume()").await;
    reads_on_standby(&store, true, "caught-up replica used again").await;

    // The replica stopped: reads still succeed, from the primary.
    standby.stop();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(listed(&store).await.len(), 2);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut conn = store.read_conn().await.expect("read conn");
    assert!(!on_standby(&mut conn).await);
    assert!(!store.replica_status()[0].healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_host_store_writes_again_after_the_standby_is_promoted() {
    let primary = Cluster::start();
    let standby = Cluster::start_standby(&primary);
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let store = PgStore::new(store_config(&[("DB_CONNECTION_STRING", url)]))
        .await
        .expect("store");
    pronghorn_db::migrate::run_pending(&store)
        .await
        .expect("migrate");
    store
        .create_user(NewLocalUser::new(
            "before@x.io",
            "before password",
            "Before",
        ))
        .await
        .expect("write on the primary");

    primary.kill();
    let killed = Instant::now();
    standby.promote();
    let mut n = 0;
    let wrote = loop {
        n += 1;
        let email = format!("after{n}@x.io");
        if store
            .create_user(NewLocalUser::new(email, "after password", "After"))
            .await
            .is_ok()
        {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no write within 10 s of the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut conn = store.conn().await.expect("conn");
    let port = diesel::sql_query("SELECT inet_server_port() AS port")
        .get_result::<Port>(&mut *conn)
        .await
        .expect("port")
        .port;
    assert_eq!(
        port,
        i32::from(standby.port),
        "the write went to the promoted standby"
    );
    assert!(!on_standby(&mut conn).await);
    drop(conn);
    assert_eq!(
        listed(&store).await.len(),
        2,
        "the row written before the failover replicated"
    );
    eprintln!("failover: writing again {wrote:?} after the primary was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_its_primary_is_not_taken_for_fresh() {
    let primary = Cluster::start();
    let standby = Cluster::start_standby(&primary);
    let store = PgStore::new(store_config(&[
        ("DB_CONNECTION_STRING", primary.url()),
        ("DB_READ_REPLICA_URLS", standby.url()),
        ("DB_REPLICA_MAX_LAG_MS", "1000".into()),
    ]))
    .await
    .expect("store");
    exec(
        &primary.url(),
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1)",
    )
    .await;
    // Streaming and caught up: no lag, however long ago the last write was.
    eventually(Duration::from_secs(10), "the replica streams", || async {
        store.check_replicas().await[0].lag_ms == Some(0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(store.check_replicas().await[0].healthy);

    // The primary gone, the replica has replayed all it received but is no
    // longer streaming: its lag is the age of its last replayed write.
    primary.stop();
    eventually(
        Duration::from_secs(15),
        "the cut-off replica skipped",
        || async {
            let s = &store.check_replicas().await[0];
            !s.healthy && s.lag_ms.is_some_and(|l| l > 1000)
        },
    )
    .await;
}
