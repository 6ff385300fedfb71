//! An application with a table of its own (`notes`) beside pronghorn-db's:
//! its own migration and generated `schema.rs`, a checked join with the
//! crate's `users`, a transaction that writes both, and an axum handler.

pub mod schema;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use pronghorn_db::models::UserId;
use pronghorn_db::schema::users;
use pronghorn_db::{Error, PgStore};
use schema::notes;
use std::sync::Arc;

diesel::joinable!(notes -> users (author_id));
// One line lets `notes` meet every table and view of the crate in a query.
pronghorn_db::join_crate_tables!(notes);

/// The app's migrations, run in one history with the crate's:
/// `migrate::run_pending_sets(&pg, &[&pronghorn_db::migrate::MIGRATIONS, &MIGRATIONS], ..)`.
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// A note with its author, as the listing shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Queryable)]
pub struct NoteWithAuthor {
    /// The note's title.
    pub title: String,
    /// When it was written.
    pub written_at: DateTime<Utc>,
    /// The author's display name (from the crate's `users`).
    pub author: String,
}

/// Writes a note and records the author as active (`users.last_login`) in
/// one transaction: both rows, or neither.
pub async fn write_note(pg: &PgStore, author: UserId, title: &str) -> Result<(), Error> {
    let title = title.to_owned();
    pg.transaction(move |conn| {
        Box::pin(async move {
            diesel::insert_into(notes::table)
                .values((notes::author_id.eq(author.0), notes::title.eq(title)))
                .execute(conn)
                .await?;
            let touched = diesel::update(users::table.find(author.0))
                .set(users::last_login.eq(diesel::dsl::now))
                .execute(conn)
                .await?;
            if touched == 0 {
                // No such author: the note is rolled back with the error.
                return Err(Error::NotFound { entity: "user" });
            }
            Ok(())
        })
    })
    .await
}

/// The notes of the author with this email, newest first, joined to the
/// crate's `users` in Diesel's checked DSL.
pub async fn notes_of(pg: &PgStore, email: &str) -> Result<Vec<NoteWithAuthor>, Error> {
    let mut conn = pg.conn().await?;
    Ok(notes::table
        .inner_join(users::table)
        .filter(users::email.eq(email.trim().to_lowercase()))
        .order(notes::written_at.desc())
        .select((notes::title, notes::written_at, users::display_name))
        .load(&mut *conn)
        .await?)
}

/// `GET /notes/{email}`: the author's notes as JSON; 503 when the database
/// is disabled or down.
pub fn router(pg: Option<Arc<PgStore>>) -> axum::Router {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::Json;
    async fn list(
        State(pg): State<Option<Arc<PgStore>>>,
        Path(email): Path<String>,
    ) -> Result<Json<Vec<NoteWithAuthor>>, (StatusCode, String)> {
        let pg = pg.ok_or((
            StatusCode::SERVICE_UNAVAILABLE,
            "database disabled".to_owned(),
        ))?;
        notes_of(&pg, &email)
            .await
            .map(Json)
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.kind().to_owned()))
    }
    axum::Router::new()
        .route("/notes/{email}", axum::routing::get(list))
        .with_state(pg)
}
