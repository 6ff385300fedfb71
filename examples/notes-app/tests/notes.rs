//! The app against a real PostgreSQL, each test on a database of its own
//! from pronghorn-db's `testing` support: both migration sets, the join,
//! the transaction and the handler.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pronghorn_db::migrate::MIGRATIONS as CRATE;
use pronghorn_db::models::NewLocalUser;
use pronghorn_db::testing::Template;
use pronghorn_db::UserStore;
use std::sync::Arc;
use tower::ServiceExt;

fn template() -> Template {
    Template::new(&[&CRATE, &notes_app::MIGRATIONS])
        .watching(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
}

/// One GET through the router, as a client would send it.
async fn get(router: axum::Router, path: &str) -> axum::response::Response {
    router
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("response")
}

#[tokio::test]
async fn notes_join_their_authors_and_are_served() {
    let db = template().database().await.expect("database");
    let pg = Arc::new(db.store().await.expect("store"));
    let ann = pg
        .create_user(NewLocalUser::new(
            "ann@example.com",
            "ann-password-1",
            "Ann",
        ))
        .await
        .expect("ann");
    notes_app::write_note(&pg, ann.id, "first")
        .await
        .expect("write");
    notes_app::write_note(&pg, ann.id, "second")
        .await
        .expect("write");
    let seen = pg.user_by_id(ann.id).await.expect("ann");
    assert!(
        seen.last_login.is_some(),
        "the transaction wrote the crate's table too"
    );

    let notes = notes_app::notes_of(&pg, "Ann@Example.com")
        .await
        .expect("notes");
    let titles: Vec<&str> = notes.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles, ["second", "first"]);
    assert!(notes.iter().all(|n| n.author == "Ann"));

    let response = get(
        notes_app::router(Some(pg.clone())),
        "/notes/ann@example.com",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(json[0]["title"], "second");
    assert_eq!(json[1]["author"], "Ann");
}

#[tokio::test]
async fn a_note_for_no_author_writes_nothing() {
    let db = template().database().await.expect("database");
    let pg = db.store().await.expect("store");
    let nobody = pronghorn_db::models::UserId(uuid::Uuid::new_v4());
    // The foreign key refuses it; nothing of the transaction stays.
    assert!(notes_app::write_note(&pg, nobody, "orphan").await.is_err());
    let mut conn = pg.conn().await.expect("conn");
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let count: i64 = notes_app::schema::notes::table
        .count()
        .get_result(&mut *conn)
        .await
        .expect("count");
    assert_eq!(count, 0);
}

#[tokio::test]
async fn without_a_database_the_handler_answers_503() {
    let response = get(notes_app::router(None), "/notes/ann@example.com").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
