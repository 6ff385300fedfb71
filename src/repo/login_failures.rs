//! Queries on `login_failures`: failed logins counted per email (by the
//! SHA-256 hex of the normalised email), on the database's clock, so that
//! every app instance sees the same count.

use super::cache_by_sql::KeepPrepared;
use crate::error::Result;
use crate::functions::clock;
use crate::models::UserId;
use crate::schema::login_failures;
use chrono::{DateTime, Utc};
use diesel::dsl::case_when;
use diesel::pg::data_types::PgInterval;
use diesel::prelude::*;
use diesel::sql_types::{Int4, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Counts one more login attempt for `digest` and returns the count in the
/// current window, this attempt included, with the window's start. A window
/// that began `window` or longer ago starts again now, at 1.
///
/// One statement: concurrent attempts for one email are counted one after
/// the other on its row, so no two of them see the same count.
pub async fn count_attempt(
    mut conn: &AsyncPgConnection,
    digest: &str,
    window: PgInterval,
) -> Result<(i32, DateTime<Utc>)> {
    let passed = || login_failures::window_started_at.le(clock::ago(window));
    Ok(diesel::insert_into(login_failures::table)
        .values((
            login_failures::email_digest.eq(digest),
            login_failures::failures.eq(1),
        ))
        .on_conflict(login_failures::email_digest)
        .do_update()
        .set((
            login_failures::failures
                .eq(case_when(passed(), 1.into_sql::<Int4>())
                    .otherwise(login_failures::failures + 1)),
            login_failures::window_started_at
                .eq(case_when(passed(), clock::current())
                    .otherwise(login_failures::window_started_at)),
        ))
        .returning((login_failures::failures, login_failures::window_started_at))
        .keep_prepared()
        .get_result(&mut conn)
        .await?)
}

/// `last_login` and `updated_at` of a user after [`record_success`].
#[derive(diesel::QueryableByName)]
pub struct LoginRecorded {
    /// The new `users.last_login`.
    #[diesel(sql_type = Timestamptz)]
    pub last_login: DateTime<Utc>,
    /// The new `users.updated_at` (set by the `users_updated_at` trigger).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// After a successful login: forgets the attempts counted for `digest` and
/// sets the user's `last_login` to now, in one statement (so that a success
/// costs one write, as a failure does). Returns the user's new times, or
/// `None` when no user has that id.
pub async fn record_success(
    mut conn: &AsyncPgConnection,
    digest: &str,
    user: UserId,
) -> Result<Option<LoginRecorded>> {
    Ok(diesel::sql_query(
        "WITH cleared AS (DELETE FROM login_failures WHERE email_digest = $1) \
         UPDATE users SET last_login = NOW() WHERE id = $2 \
         RETURNING last_login, updated_at",
    )
    .bind::<Text, _>(digest)
    .bind::<diesel::sql_types::Uuid, _>(user.0)
    .keep_prepared()
    .get_result(&mut conn)
    .await
    .optional()?)
}

/// After a failed login: notes when it failed, in one statement (the
/// attempt itself was counted before the check).
pub async fn record_failure(mut conn: &AsyncPgConnection, digest: &str) -> Result<()> {
    diesel::update(login_failures::table.find(digest))
        .set(login_failures::last_failed_at.eq(clock::current().nullable()))
        .keep_prepared()
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Deletes the counts whose window began `window` or longer ago (they no
/// longer hold anyone back); returns how many.
pub async fn delete_passed(mut conn: &AsyncPgConnection, window: PgInterval) -> Result<usize> {
    Ok(diesel::delete(
        login_failures::table.filter(login_failures::window_started_at.le(clock::ago(window))),
    )
    .execute(&mut conn)
    .await?)
}
