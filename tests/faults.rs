//! Slow fault and load tests: the server killed under write load and
//! restarted (on a private cluster), and a long mixed load over one pool.

mod common;

use common::cluster::Cluster;
use common::TestDb;
use pronghorn_db::models::{MessageOrder, NewConversation, NewLocalUser, NewMessage, UserId};
use pronghorn_db::{
    ConversationStore, Error, HealthStore, PageRequest, PgStore, PoolSettings, UserStore,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

async fn owner_and_conversation(store: &PgStore) -> (UserId, Uuid) {
    let user = store
        .create_user(NewLocalUser::new(
            "writer@x.io",
            "writer password",
            "Writer",
        ))
        .await
        .expect("user");
    let conv = store
        .create_conversation(NewConversation::new(user.id, "openai"))
        .await
        .expect("conversation");
    (user.id, conv.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_a_server_killed_and_restarted_under_load() {
    let cluster = Cluster::start();
    let timeout = Duration::from_millis(2000);
    let url = cluster.url();
    let config = match pronghorn_db::DbConfig::from_lookup(|k| match k {
        "DB_CONNECTION_STRING" => Some(url.clone()),
        "DB_SSL" => Some("false".into()),
        _ => None,
    }) {
        Ok(pronghorn_db::Configuration::Configured(c)) => c.with_pool(PoolSettings {
            min_idle: 4,
            max_size: 16,
            idle_timeout: Duration::from_secs(30),
            connection_timeout: timeout,
        }),
        other => panic!("{other:?}"),
    };
    let store = Arc::new(PgStore::new(config).await.expect("store"));
    pronghorn_db::migrate::run_pending(&store)
        .await
        .expect("migrate");
    let (owner, conv) = owner_and_conversation(&store).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = Vec::new();
            let mut failed = 0u32;
            let mut slowest = Duration::ZERO;
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                let result = store
                    .append_message(
                        owner,
                        conv,
                        NewMessage::new("user", format!("task {t} write {i}")),
                    )
                    .await;
                slowest = slowest.max(started.elapsed());
                match result {
                    Ok(m) => stored.push(m.id),
                    Err(e) => {
                        assert!(
                            e.is_unavailable(),
                            "a failed write must be Unavailable, got {e:?}"
                        );
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (stored, failed, slowest)
        }));
    }

    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.kill();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.restart();
    let restarted_at = Instant::now();
    // The same store serves again soon after the restart.
    let mut recovered = None;
    while restarted_at.elapsed() < Duration::from_secs(10) {
        if store.server_info().await.is_ok() {
            recovered = Some(restarted_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = recovered.expect("the store never served again");
    assert!(
        recovered <= Duration::from_secs(5),
        "served again after {recovered:?}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);

    let mut stored = Vec::new();
    let mut failed = 0;
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (s, f, slow) = t.await.expect("task");
        stored.extend(s);
        failed += f;
        slowest = slowest.max(slow);
    }
    assert!(
        failed > 0,
        "the kill was noticed ({:?} after it)",
        killed_at.elapsed()
    );
    assert!(!stored.is_empty());
    // No call hung: none took longer than the connection timeout, plus the
    // time a query itself may take.
    assert!(
        slowest <= timeout + Duration::from_millis(1000),
        "a call took {slowest:?}"
    );
    // Every write that returned Ok is there, row by row.
    let (client, conn) = tokio_postgres::connect(&cluster.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let ids: Vec<String> = stored.iter().map(Uuid::to_string).collect();
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM messages WHERE id::text = ANY($1)",
            &[&ids],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        found as usize,
        stored.len(),
        "{} Ok writes, {found} found",
        stored.len()
    );
    eprintln!(
        "kill test: {} writes stored, {failed} failed while down, served again {recovered:?} after restart, slowest call {slowest:?}",
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_mixed_operations_complete_without_an_error() {
    let db = TestDb::migrated().await;
    let config = db.config().with_pool(PoolSettings {
        min_idle: 2,
        max_size: 20,
        idle_timeout: Duration::from_secs(30),
        connection_timeout: Duration::from_secs(10),
    });
    let store = Arc::new(PgStore::new(config).await.expect("store"));
    let (owner, conv) = owner_and_conversation(&store).await;
    const TASKS: usize = 64;
    const OPS: usize = 20_000;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            for i in 0..OPS / TASKS + usize::from(t < OPS % TASKS) {
                let result: Result<(), Error> = match i % 5 {
                    0 => store.user_by_id(owner).await.map(drop),
                    1 => store
                        .append_message(owner, conv, NewMessage::new("user", format!("{t}/{i}")))
                        .await
                        .map(drop),
                    2 => store
                        .list_messages(
                            owner,
                            conv,
                            MessageOrder::NewestFirst,
                            &PageRequest::first(20),
                        )
                        .await
                        .map(drop),
                    3 => {
                        store
                            .transaction(move |conn| {
                                Box::pin(async move {
                                    pronghorn_db::repo::conversations::touch(conn, owner, conv)
                                        .await?;
                                    pronghorn_db::repo::users::find_by_id(conn, owner).await?;
                                    Ok(())
                                })
                            })
                            .await
                    }
                    _ => store.conversation(owner, conv).await.map(drop),
                };
                result.unwrap_or_else(|e| panic!("operation {t}/{i} failed: {e:?}"));
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    assert_eq!(total, OPS);
    let stats = store.pool_stats().expect("stats");
    assert_eq!((stats.in_use, stats.waiting), (0, 0), "{stats:?}");
    assert!(stats.size <= 20, "{stats:?}");
    let page = store
        .list_messages(
            owner,
            conv,
            MessageOrder::NewestFirst,
            &PageRequest::first(1),
        )
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    let usage = store
        .conversation_token_usage(owner, conv)
        .await
        .expect("usage");
    let appends: usize = (0..TASKS)
        .map(|t| {
            (0..OPS / TASKS + usize::from(t < OPS % TASKS))
                .filter(|i| i % 5 == 1)
                .count()
        })
        .sum();
    assert_eq!(usage.messages, appends as i64, "every append is stored");
}
