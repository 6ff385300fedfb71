//! An application's own table beside the crate's, as a dependent crate
//! (each integration test is one) writes it: its migration run in one
//! history with the crate's, its `table!` joined to `users` in Diesel's
//! checked DSL through `join_crate_tables!`, and a transaction across both.

mod common;

use common::TestDb;
use diesel::dsl::OnlyDsl;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use pronghorn_db::models::NewLocalUser;
use pronghorn_db::schema::users;
use pronghorn_db::{migrate, Error, UserStore};

/// The application's migrations (`notes`, then `notes.pinned`).
const APP: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("tests/fixtures/app_migrations");

mod app_schema {
    diesel::table! {
        notes (id) {
            id -> Uuid,
            user_id -> Uuid,
            body -> Text,
            created_at -> Timestamptz,
            pinned -> Bool,
        }
    }
    diesel::joinable!(notes -> pronghorn_db::schema::users (user_id));
}
use app_schema::notes;

pronghorn_db::join_crate_tables!(notes);

#[tokio::test]
async fn an_apps_table_joins_the_crates_in_checked_queries() {
    let db = TestDb::empty().await;
    let store = db.store().await;
    migrate::run_pending_sets(&store, &[&migrate::MIGRATIONS, &APP], Box::new(|_| {}))
        .await
        .expect("both sets");
    let ann = store
        .create_user(NewLocalUser::new(
            "ann@example.com",
            "ann-password-1",
            "Ann",
        ))
        .await
        .expect("ann");
    let bob = store
        .create_user(NewLocalUser::new(
            "bob@example.com",
            "bob-password-1",
            "Bob",
        ))
        .await
        .expect("bob");

    // One transaction across the app's table and the crate's.
    let (ann_id, bob_id) = (ann.id.0, bob.id.0);
    store
        .transaction(move |conn| {
            Box::pin(async move {
                diesel::insert_into(notes::table)
                    .values(&[
                        (
                            notes::user_id.eq(ann_id),
                            notes::body.eq("first"),
                            notes::pinned.eq(true),
                        ),
                        (
                            notes::user_id.eq(ann_id),
                            notes::body.eq("second"),
                            notes::pinned.eq(false),
                        ),
                        (
                            notes::user_id.eq(bob_id),
                            notes::body.eq("bob's"),
                            notes::pinned.eq(false),
                        ),
                    ])
                    .execute(conn)
                    .await?;
                diesel::update(users::table.find(ann_id))
                    .set(users::display_name.eq("Ann N."))
                    .execute(conn)
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .expect("transaction");

    let mut conn = store.conn().await.expect("conn");
    // Joined and filtered on the crate's columns.
    let anns: Vec<(String, String)> = notes::table
        .inner_join(users::table)
        .filter(users::email.eq("ann@example.com"))
        .order(notes::body.asc())
        .select((notes::body, users::display_name))
        .load(&mut *conn)
        .await
        .expect("join");
    assert_eq!(
        anns,
        [
            ("first".to_owned(), "Ann N.".to_owned()),
            ("second".to_owned(), "Ann N.".to_owned())
        ]
    );
    // From the crate's side, with a count per user.
    let per_user: Vec<(String, i64)> = users::table
        .left_join(notes::table)
        .group_by(users::email)
        .select((users::email, diesel::dsl::count(notes::id.nullable())))
        .order(users::email.asc())
        .load(&mut *conn)
        .await
        .expect("left join");
    assert_eq!(
        per_user,
        [
            ("ann@example.com".to_owned(), 2),
            ("bob@example.com".to_owned(), 1)
        ]
    );
    // A subquery on the crate's table inside a filter on the app's.
    let pinned_of_admins: i64 = notes::table
        .filter(notes::pinned)
        .filter(
            notes::user_id.eq_any(
                users::table
                    .filter(users::display_name.like("Ann%"))
                    .select(users::id),
            ),
        )
        .count()
        .get_result(&mut *conn)
        .await
        .expect("subquery");
    assert_eq!(pinned_of_admins, 1);
    // `ONLY` on either side: the impls only this crate can write.
    let only: i64 = users::table
        .only()
        .inner_join(notes::table)
        .filter(notes::body.eq("bob's"))
        .count()
        .get_result(&mut *conn)
        .await
        .expect("only");
    assert_eq!(only, 1);
    let only_app: Vec<String> = notes::table
        .only()
        .filter(notes::user_id.eq_any(users::table.select(users::id)))
        .filter(notes::body.eq("first"))
        .select(notes::body)
        .load(&mut *conn)
        .await
        .expect("only on the app's table");
    assert_eq!(only_app, ["first"]);
}
