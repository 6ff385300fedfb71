//! Refresh tokens: the [`RefreshTokenStore`] part of the store and its
//! implementations for [`PgStore`] and [`DisabledStore`](crate::DisabledStore).
//!
//! What the part guarantees is in the trait's docs.

use super::PgStore;
use crate::error::{Error, Result, TokenProblem};
use crate::models::{RefreshToken, UserId};
use crate::observe::observed;
use crate::repo::refresh_tokens::{self as repo, FoundToken};
use crate::token::{Token, TokenDigest};
use crate::validate::interval;
use chrono::{DateTime, Utc};
use futures_util::future::join;
use pronghorn_db_macros::store_part;
use uuid::Uuid;

/// The longest lifetime a refresh token may be issued with (one year).
pub const MAX_REFRESH_TOKEN_TTL: chrono::Duration = chrono::Duration::days(365);

/// A refresh token just issued: the only time its value is available.
///
/// `Debug` shows `token` as `Token(***)`.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedRefreshToken {
    /// The row's id (`refresh_tokens.id`).
    pub id: Uuid,
    /// The token's owner.
    pub user_id: UserId,
    /// The token, to hand to the client; the database has only its digest.
    pub token: Token,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl IssuedRefreshToken {
    pub(crate) fn new(row: RefreshToken, token: Token) -> Self {
        IssuedRefreshToken {
            id: row.id,
            user_id: row.user_id,
            token,
            expires_at: row.expires_at,
        }
    }
}

fn rejected(problem: TokenProblem) -> Error {
    Error::TokenRejected { problem }
}

/// A user that does not exist shows up as the foreign key refusing the row.
fn user_not_found(e: Error) -> Error {
    match e {
        Error::Conflict { constraint } if constraint == "refresh_tokens_user_id_fkey" => {
            Error::NotFound { entity: "user" }
        }
        other => other,
    }
}

/// What a rotation found, decided inside its transaction.
enum Rotation {
    Issued(IssuedRefreshToken),
    /// The token was already revoked; every token of this user now is.
    Reused(UserId),
    /// The token's user is blocked; every token of this user now is revoked.
    Blocked,
}

/// Refresh tokens.
///
/// A refresh token is 256 random bits handed out once ([`Token`]); the table
/// keeps only its SHA-256 digest, looked up through `unique_token_hash`.
/// Rotation revokes the presented token and issues its successor in one
/// transaction, under a row lock, so one token never has two live
/// successors. Presenting a token that is already revoked means a copy of it
/// leaked: every token of its user is revoked and the call fails with
/// [`Error::TokenReused`].
///
/// Methods that take a presented token accept any text: text that cannot be
/// a token this crate issued is rejected as unknown without a query. On
/// [`DisabledStore`](crate::DisabledStore) every method fails with [`Error::Disabled`]; on any
/// store a lost connection is [`Error::Unavailable`].
#[store_part]
impl RefreshTokenStore for PgStore {
    /// Issues a new refresh token for `user`, valid for `ttl`.
    ///
    /// Fails with [`Error::Validation`] on `ttl` unless it is positive and
    /// at most [`MAX_REFRESH_TOKEN_TTL`], and with [`Error::NotFound`] when
    /// the user does not exist.
    async fn issue_refresh_token(
        &self,
        user: UserId,
        ttl: chrono::Duration,
    ) -> Result<IssuedRefreshToken> {
        observed!(self.slow(), "issue_refresh_token", async {
            let ttl = interval("ttl", ttl, MAX_REFRESH_TOKEN_TTL)?;
            let token = Token::generate()?;
            let digest = token.digest();
            let row = self
                .with_conn(move |conn| {
                    Box::pin(async move { repo::insert(conn, user, &digest, ttl).await })
                })
                .await
                .map_err(user_not_found)?;
            Ok(IssuedRefreshToken::new(row, token))
        })
    }

    /// Checks a presented token and returns its row (whose `Debug` hides the
    /// digest). Read-only: it never revokes anything.
    ///
    /// Fails with [`Error::TokenRejected`]: [`TokenProblem::Unknown`],
    /// [`TokenProblem::Revoked`] or [`TokenProblem::Expired`].
    async fn verify_refresh_token(&self, token: &str) -> Result<RefreshToken> {
        observed!(self.slow(), "verify_refresh_token", async {
            let digest =
                TokenDigest::of_presented(token).ok_or_else(|| rejected(TokenProblem::Unknown))?;
            let found = self
                .with_conn(move |conn| {
                    Box::pin(async move { repo::find_by_digest(conn, &digest).await })
                })
                .await?;
            match found {
                None => Err(rejected(TokenProblem::Unknown)),
                Some(FoundToken { row, .. }) if row.revoked_at.is_some() => {
                    Err(rejected(TokenProblem::Revoked))
                }
                Some(FoundToken { expired: true, .. }) => Err(rejected(TokenProblem::Expired)),
                Some(FoundToken { row, .. }) => Ok(row),
            }
        })
    }

    /// Exchanges a presented token for a new one valid for `ttl`: in one
    /// transaction, the presented token is revoked and its successor
    /// issued. When two calls present the same token at once, one gets the
    /// successor and the other waits, then finds the token revoked.
    ///
    /// Fails with [`Error::AccountBlocked`] when the token's user is blocked
    /// (its tokens are then all revoked), with [`Error::TokenReused`] when
    /// the token was already revoked
    /// (after revoking every token of its user, committed), with
    /// [`Error::TokenRejected`] ([`TokenProblem::Unknown`] or
    /// [`TokenProblem::Expired`]) otherwise, and with [`Error::Validation`]
    /// on `ttl` as [`RefreshTokenStore::issue_refresh_token`].
    async fn rotate_refresh_token(
        &self,
        token: &str,
        ttl: chrono::Duration,
    ) -> Result<IssuedRefreshToken> {
        observed!(self.slow(), "rotate_refresh_token", async {
            let ttl = interval("ttl", ttl, MAX_REFRESH_TOKEN_TTL)?;
            let digest =
                TokenDigest::of_presented(token).ok_or_else(|| rejected(TokenProblem::Unknown))?;
            let next = Token::generate()?;
            let outcome = self
                .transaction(move |conn| {
                    Box::pin(async move {
                        // The owner is locked before the token, the order
                        // every transaction that revokes all of a user's
                        // tokens uses, so that none of them misses the
                        // successor inserted here. Both locks are one round
                        // trip, and so are both writes.
                        let (owner, found) = join(
                            repo::share_lock_owner(conn, &digest),
                            repo::lock_by_digest(conn, &digest),
                        )
                        .await;
                        let (Some(owner), Some(found)) = (owner?, found?) else {
                            return Err(rejected(TokenProblem::Unknown));
                        };
                        let user = owner.id;
                        if found.row.revoked_at.is_some() {
                            // Committed, not rolled back: the revocation is
                            // the point of detecting the reuse.
                            repo::revoke_all_of_user(conn, user).await?;
                            return Ok(Rotation::Reused(user));
                        }
                        if found.expired {
                            return Err(rejected(TokenProblem::Expired));
                        }
                        if owner.blocked() {
                            repo::revoke_all_of_user(conn, user).await?;
                            return Ok(Rotation::Blocked);
                        }
                        let digest = next.digest();
                        let (revoked, row) = join(
                            repo::revoke(conn, found.row.id),
                            repo::insert(conn, user, &digest, ttl),
                        )
                        .await;
                        revoked?;
                        let row = row?;
                        Ok(Rotation::Issued(IssuedRefreshToken::new(row, next)))
                    })
                })
                .await?;
            match outcome {
                Rotation::Issued(issued) => Ok(issued),
                Rotation::Blocked => Err(Error::AccountBlocked),
                Rotation::Reused(user) => {
                    // A rotation of another of the user's tokens may have
                    // been issuing a successor meanwhile, under the shared
                    // owner lock; revoking again under the exclusive lock
                    // waits for it and revokes that successor too.
                    self.revoke_user_refresh_tokens(user).await?;
                    tracing::warn!(
                        user_id = %user,
                        "a revoked refresh token was presented again; \
                         every refresh token of its user was revoked"
                    );
                    Err(Error::TokenReused)
                }
            }
        })
    }

    /// Revokes a presented token (logout). Returns whether it was live:
    /// false when it is unknown or already revoked, so that logging out
    /// twice is not an error.
    async fn revoke_refresh_token(&self, token: &str) -> Result<bool> {
        observed!(self.slow(), "revoke_refresh_token", async {
            let Some(digest) = TokenDigest::of_presented(token) else {
                return Ok(false);
            };
            self.with_conn(move |conn| {
                Box::pin(async move { repo::revoke_by_digest(conn, &digest).await })
            })
            .await
        })
    }

    /// Revokes every live token of `user` (logout everywhere), including a
    /// successor that a rotation in flight is issuing; returns how many (0
    /// for an unknown user).
    async fn revoke_user_refresh_tokens(&self, user: UserId) -> Result<usize> {
        observed!(self.slow(), "revoke_user_refresh_tokens", async {
            self.transaction(move |conn| {
                Box::pin(async move {
                    // The lock waits for rotations in flight; the revoke,
                    // pipelined after it, takes its snapshot once the lock
                    // is granted and so revokes their successors too.
                    let (locked, revoked) = join(
                        crate::repo::users::lock_by_id(conn, user),
                        repo::revoke_all_of_user(conn, user),
                    )
                    .await;
                    match locked {
                        // An unknown user has no tokens: `revoked` is 0.
                        Ok(_) | Err(Error::NotFound { .. }) => revoked,
                        Err(e) => Err(e),
                    }
                })
            })
            .await
        })
    }

    /// Deletes every token past its expiry, revoked or not; returns how
    /// many. Revoked tokens stay until they expire, so that presenting one
    /// is still recognised as reuse.
    async fn delete_expired_refresh_tokens(&self) -> Result<usize> {
        observed!(self.slow(), "delete_expired_refresh_tokens", async {
            self.with_conn(|conn| Box::pin(repo::delete_expired(conn)))
                .await
        })
    }
}
