//! Queries on `password_reset_requests`, the reset-attempt counters on
//! `users`, and the `pending_password_resets` view. Requests are looked up
//! only by their token's digest, through the unique index
//! `idx_reset_requests_token_hash`; expiry is decided on the database's
//! clock (`now()`).

use super::cache_by_sql::KeepPrepared;
use super::columns::Rendered;
use crate::error::Result;
use crate::functions::clock;
use crate::functions::lower;
use crate::models::PendingPasswordReset;
use crate::models::{PasswordResetRequest, UserId};
use crate::page::Cursor;
use crate::schema::password_reset_requests as prr;
use crate::schema::pending_password_resets as pending;
use crate::schema::users;
use crate::token::TokenDigest;
use diesel::dsl::now;
use diesel::pg::data_types::PgInterval;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ipnet::IpNet;
use uuid::Uuid;

/// A user's reset-attempt counter, read under a row lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCounter {
    /// The user.
    pub user_id: UserId,
    /// The user's email as stored.
    pub email: String,
    /// `users.reset_attempts` (NULL read as 0).
    pub attempts: i32,
    /// Whether the counter's window, which began at
    /// `users.reset_attempts_reset_at`, is still open (false when it never
    /// began).
    pub window_open: bool,
}

/// The reset-attempt counter of the user whose email equals `email`
/// ignoring case (`email` is already normalised), with the user's row locked
/// until the transaction ends, or `None` when no user has that email. The
/// exact-case match wins, as in [`crate::repo::users::find_by_email`].
pub async fn lock_counter_by_email(
    mut conn: &AsyncPgConnection,
    email: &str,
    window: PgInterval,
) -> Result<Option<AttemptCounter>> {
    let row: Option<(UserId, String, Option<i32>, Option<bool>)> = users::table
        .filter(lower(users::email).eq(email))
        .order((users::email.eq(email).desc(), users::created_at.asc()))
        .select((
            users::id,
            users::email,
            users::reset_attempts,
            users::reset_attempts_reset_at.gt(clock::ago(window).nullable()),
        ))
        .for_update()
        .first(&mut conn)
        .await
        .optional()?;
    Ok(row.map(|(user_id, email, attempts, open)| AttemptCounter {
        user_id,
        email,
        attempts: attempts.unwrap_or(0),
        window_open: open.unwrap_or(false),
    }))
}

/// Sets the user's reset-attempt counter to `attempts`; when
/// `new_window`, the window restarts now (`reset_attempts_reset_at`).
pub async fn set_counter(
    mut conn: &AsyncPgConnection,
    user: UserId,
    attempts: i32,
    new_window: bool,
) -> Result<()> {
    let target = users::table.find(user);
    if new_window {
        diesel::update(target)
            .set((
                users::reset_attempts.eq(attempts),
                users::reset_attempts_reset_at.eq(now),
            ))
            .keep_prepared()
            .execute(&mut conn)
            .await?;
    } else {
        diesel::update(target)
            .set(users::reset_attempts.eq(attempts))
            .keep_prepared()
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

/// Inserts a reset request for `user` whose token expires `ttl` from now,
/// and returns the row.
///
/// Fails with [`crate::Error::Conflict`] on
/// `password_reset_requests_user_id_fkey` when the user does not exist.
pub async fn insert(
    mut conn: &AsyncPgConnection,
    id: Uuid,
    user: UserId,
    digest: &TokenDigest,
    ttl: PgInterval,
    ip: Option<IpNet>,
    user_agent: Option<&str>,
) -> Result<PasswordResetRequest> {
    Ok(diesel::insert_into(prr::table)
        .values((
            prr::id.eq(id),
            prr::user_id.eq(user),
            prr::reset_token_hash.eq(digest.as_str()),
            prr::expires_at.eq(clock::from_now(ttl)),
            prr::ip_address.eq(ip),
            prr::user_agent.eq(user_agent),
        ))
        .returning(PasswordResetRequest::columns())
        .get_result(&mut conn)
        .await?)
}

/// A reset request as found by its digest, with whether it has expired by
/// the database's clock as the look-up runs (`clock_timestamp()`, not the
/// transaction's `now()`: a change that began after the redeeming
/// transaction and cut the request short, committing while it waited for
/// a lock, writes an expiry later than that transaction's `now()`).
#[derive(Debug, Clone, PartialEq)]
pub struct FoundRequest {
    /// The row.
    pub row: PasswordResetRequest,
    /// `expires_at <= now()`.
    pub expired: bool,
}

/// The request with this digest, or `None`.
pub async fn find_by_digest(
    mut conn: &AsyncPgConnection,
    digest: &TokenDigest,
) -> Result<Option<FoundRequest>> {
    Ok(prr::table
        .filter(prr::reset_token_hash.eq(digest.as_str()))
        .select((
            PasswordResetRequest::columns(),
            prr::expires_at.le(clock::as_it_runs()),
        ))
        .first(&mut conn)
        .await
        .optional()?
        .map(|(row, expired)| FoundRequest { row, expired }))
}

/// The request with this digest, locked until the transaction ends (a
/// concurrent use of the same token waits, then sees it used), or `None`.
pub async fn lock_by_digest(
    mut conn: &AsyncPgConnection,
    digest: &TokenDigest,
) -> Result<Option<FoundRequest>> {
    Ok(prr::table
        .filter(prr::reset_token_hash.eq(digest.as_str()))
        .select((
            PasswordResetRequest::columns(),
            prr::expires_at.le(clock::as_it_runs()),
        ))
        .for_update()
        .first(&mut conn)
        .await
        .optional()?
        .map(|(row, expired)| FoundRequest { row, expired }))
}

/// Marks the request used now.
pub async fn mark_used(mut conn: &AsyncPgConnection, id: Uuid) -> Result<()> {
    diesel::update(prr::table.find(id))
        .set(prr::used_at.eq(now))
        .keep_prepared()
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Ends every unused, unexpired request of `user`: their expiry becomes
/// now, so their tokens stop working while the rows stay (unused, hence
/// listed as expired). A request marked used earlier in the same
/// transaction is not touched. Returns how many were cut short.
pub async fn expire_pending_of_user(mut conn: &AsyncPgConnection, user: UserId) -> Result<usize> {
    Ok(diesel::update(
        prr::table
            .filter(prr::user_id.eq(user))
            .filter(prr::used_at.is_null())
            .filter(prr::expires_at.gt(now)),
    )
    .set(prr::expires_at.eq(now))
    .keep_prepared()
    .execute(&mut conn)
    .await?)
}

/// Ends the unused, unexpired requests that `admin` generated for other
/// accounts: those named by `requestId` in the audit entries of `action`
/// (the store's name for an admin-generated reset) whose actor is `admin`;
/// entries without a well-formed `requestId` are skipped. Their expiry
/// becomes now. Returns how many were cut short.
pub async fn expire_generated_by(
    mut conn: &AsyncPgConnection,
    admin: UserId,
    action: &str,
) -> Result<usize> {
    Ok(diesel::sql_query(
        "UPDATE password_reset_requests SET expires_at = NOW() \
         WHERE used_at IS NULL AND expires_at > NOW() AND id IN ( \
           SELECT CASE WHEN details->>'requestId' ~ '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$' \
                  THEN (details->>'requestId')::uuid END \
           FROM user_audit_log \
           WHERE actor_id = $1 AND action = $2)",
    )
    .bind::<diesel::sql_types::Uuid, _>(admin.0)
    .bind::<diesel::sql_types::Text, _>(action)
    .keep_prepared()
    .execute(&mut conn)
    .await?)
}

/// The keyset position of a pending reset in its listing.
pub(crate) fn cursor_of(row: &PendingPasswordReset) -> Cursor {
    Cursor {
        at: row.requested_at,
        id: row.id,
    }
}

/// Unused requests (pending and expired) from `pending_password_resets`,
/// newest first, after `after` when given: `limit` rows at most.
pub async fn list_pending(
    mut conn: &AsyncPgConnection,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<PendingPasswordReset>> {
    let mut q = pending::table
        .select(PendingPasswordReset::columns())
        .into_boxed();
    if let Some(c) = after {
        q = q.filter(
            pending::requested_at
                .lt(c.at)
                .or(pending::requested_at.eq(c.at).and(pending::id.lt(c.id))),
        );
    }
    Ok(q.order((pending::requested_at.desc(), pending::id.desc()))
        .limit(limit)
        .load(&mut conn)
        .await?)
}
