//! Half-open connections: the server's network vanishes without a FIN or a
//! RST (its link goes down), and the store notices through its keepalive and
//! TCP user timeout settings instead of waiting forever.
//!
//! The server is a private cluster inside its own network namespace, joined
//! to this one by a veth pair; taking the namespace's end of the pair down
//! drops every packet silently. This needs root (as CI runs), and never
//! touches the shared server or this machine's other interfaces.

mod common;

use common::cluster::Cluster;
use common::netns::Netns;
use diesel::sql_types::Integer;
use diesel_async::RunQueryDsl;
use pronghorn_db::{Configuration, DbConfig, HealthStore, PgStore, PoolSettings};
use std::time::{Duration, Instant};

#[derive(diesel::QueryableByName)]
struct One {
    #[diesel(sql_type = Integer)]
    n: i32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_server_is_detected_not_waited_on() {
    let ns = Netns::new();
    let server = Cluster::start_in(&ns);
    let url = format!("{}?sslmode=disable", server.url());
    let config = match DbConfig::from_lookup(|k| match k {
        "DB_CONNECTION_STRING" => Some(url.clone()),
        "DB_KEEPALIVES_IDLE" => Some("1000".into()),
        "DB_TCP_USER_TIMEOUT" => Some("2000".into()),
        _ => None,
    }) {
        Ok(Configuration::Configured(c)) => c.with_pool(PoolSettings {
            min_idle: 0,
            max_size: 2,
            idle_timeout: Duration::from_secs(60),
            connection_timeout: Duration::from_secs(2),
        }),
        other => panic!("{other:?}"),
    };
    let store = std::sync::Arc::new(PgStore::new(config).await.expect("store"));
    store
        .server_info()
        .await
        .expect("the isolated server answers");

    // A long query is in flight when the network vanishes: nothing is
    // unacknowledged, so only keepalives can notice.
    let s = store.clone();
    let in_flight = tokio::spawn(async move {
        let started = Instant::now();
        let mut conn = s.conn().await.expect("conn");
        let r = diesel::sql_query("SELECT 1 AS n FROM pg_sleep(120)")
            .get_result::<One>(&mut *conn)
            .await;
        (r.map(|o| o.n), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    ns.cut();

    // A new call sends a query that is never acknowledged: the TCP user
    // timeout ends it.
    let started = Instant::now();
    let err = store.server_info().await.expect_err("the server is gone");
    let took = started.elapsed();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(took <= Duration::from_secs(6), "a new call took {took:?}");

    let (result, waited) = tokio::time::timeout(Duration::from_secs(30), in_flight)
        .await
        .expect("the in-flight query was not left waiting")
        .expect("task");
    assert!(result.is_err(), "the in-flight query cannot have succeeded");
    assert!(
        waited <= Duration::from_secs(15),
        "noticed after {waited:?}"
    );

    // The network comes back: the same store serves again.
    ns.restore();
    let back = Instant::now();
    let mut served = false;
    while back.elapsed() < Duration::from_secs(20) {
        if store.server_info().await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        served,
        "the store did not serve again after the network returned"
    );
    eprintln!("half-open: new call failed after {took:?}, in-flight query after {waited:?}");
}
