//! Queries on `refresh_tokens`. Tokens are looked up only by their digest,
//! through the unique index `unique_token_hash`; expiry is decided on the
//! database's clock (`now()`), for writes and checks alike.

use super::cache_by_sql::KeepPrepared;
use super::columns::Rendered;
use crate::error::Result;
use crate::functions::clock;
use crate::models::{RefreshToken, User, UserId};
use crate::schema::refresh_tokens as rt;
use crate::schema::users;
use crate::token::TokenDigest;
use diesel::dsl::now;
use diesel::pg::data_types::PgInterval;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// A token row as found by its digest, with whether it has expired by the
/// database's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundToken {
    /// The row.
    pub row: RefreshToken,
    /// `expires_at <= now()`.
    pub expired: bool,
}

/// Inserts a token for `user` expiring `ttl` from now and returns the row.
///
/// Fails with [`crate::Error::Conflict`] on `refresh_tokens_user_id_fkey`
/// when the user does not exist (and on `unique_token_hash` should a digest
/// ever repeat).
pub async fn insert(
    mut conn: &AsyncPgConnection,
    user: UserId,
    digest: &TokenDigest,
    ttl: PgInterval,
) -> Result<RefreshToken> {
    Ok(diesel::insert_into(rt::table)
        .values((
            rt::user_id.eq(user),
            rt::token_hash.eq(digest.as_str()),
            rt::expires_at.eq(clock::from_now(ttl)),
        ))
        .returning(RefreshToken::columns())
        .get_result(&mut conn)
        .await?)
}

/// The token with this digest, or `None`.
pub async fn find_by_digest(
    mut conn: &AsyncPgConnection,
    digest: &TokenDigest,
) -> Result<Option<FoundToken>> {
    Ok(rt::table
        .filter(rt::token_hash.eq(digest.as_str()))
        .select((RefreshToken::columns(), rt::expires_at.le(now)))
        .first(&mut conn)
        .await
        .optional()?
        .map(|(row, expired)| FoundToken { row, expired }))
}

/// The token with this digest, locked until the transaction ends (a
/// concurrent rotation of the same token waits, then sees it revoked), or
/// `None`.
pub async fn lock_by_digest(
    mut conn: &AsyncPgConnection,
    digest: &TokenDigest,
) -> Result<Option<FoundToken>> {
    Ok(rt::table
        .filter(rt::token_hash.eq(digest.as_str()))
        .select((RefreshToken::columns(), rt::expires_at.le(now)))
        .for_update()
        .first(&mut conn)
        .await
        .optional()?
        .map(|(row, expired)| FoundToken { row, expired }))
}

/// Locks the row of the user owning the token with this digest in share
/// mode until the transaction ends, so that a transaction revoking every
/// token of the user (which locks the row for update first) waits for this
/// one to commit and then sees the tokens it inserted. Returns the owner,
/// or `None` for an unknown digest.
pub async fn share_lock_owner(
    mut conn: &AsyncPgConnection,
    digest: &TokenDigest,
) -> Result<Option<User>> {
    let owner = rt::table
        .filter(rt::token_hash.eq(digest.as_str()))
        .select(rt::user_id);
    Ok(users::table
        .filter(users::id.eq_any(owner))
        .select(User::columns())
        .for_share()
        .first(&mut conn)
        .await
        .optional()?)
}

/// Revokes the token with this id unless it already is revoked. Returns
/// whether it was revoked now.
pub async fn revoke(mut conn: &AsyncPgConnection, id: Uuid) -> Result<bool> {
    let n = diesel::update(rt::table.find(id).filter(rt::revoked_at.is_null()))
        .set(rt::revoked_at.eq(now))
        .keep_prepared()
        .execute(&mut conn)
        .await?;
    Ok(n == 1)
}

/// Revokes the token with this digest unless it already is revoked.
/// Returns whether it was revoked now (false for an unknown digest).
pub async fn revoke_by_digest(mut conn: &AsyncPgConnection, digest: &TokenDigest) -> Result<bool> {
    let n = diesel::update(
        rt::table
            .filter(rt::token_hash.eq(digest.as_str()))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(now))
    .keep_prepared()
    .execute(&mut conn)
    .await?;
    Ok(n == 1)
}

/// Revokes every token of `user` that is not revoked yet; returns how many.
pub async fn revoke_all_of_user(mut conn: &AsyncPgConnection, user: UserId) -> Result<usize> {
    Ok(diesel::update(
        rt::table
            .filter(rt::user_id.eq(user))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(now))
    .keep_prepared()
    .execute(&mut conn)
    .await?)
}

/// Deletes every token past its expiry, revoked or not (a revoked token is
/// kept until then, so that presenting it again is still recognised as
/// reuse); returns how many.
pub async fn delete_expired(mut conn: &AsyncPgConnection) -> Result<usize> {
    Ok(diesel::delete(rt::table.filter(rt::expires_at.le(now)))
        .execute(&mut conn)
        .await?)
}
