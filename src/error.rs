//! The crate's one error type, and the single place where lower-level errors
//! (diesel, bb8, tokio-postgres) are mapped onto it.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Result alias used by every fallible function of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the data layer.
///
/// Messages never contain a password, a password hash, a token or a
/// connection string with its password: targets are always the redacted form
/// (`postgres://user:***@host:5432/db`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No database is configured; the store runs in "database disabled" mode.
    #[error("the database is disabled (no database configured)")]
    Disabled,

    /// The server could not be reached, a connection broke, or no pooled
    /// connection became free within the connection timeout.
    #[error("the database at {target} is unavailable: {reason}")]
    Unavailable {
        /// The redacted connection target.
        target: String,
        /// Why: the last connection error, or the pool time-out.
        reason: String,
    },

    /// The requested row does not exist (or is not visible to the caller).
    #[error("{entity} not found")]
    NotFound {
        /// What was looked up, e.g. `"user"`.
        entity: &'static str,
    },

    /// A unique or foreign-key constraint refused the write.
    #[error("conflict: constraint {constraint} refused the write")]
    Conflict {
        /// The constraint's name, e.g. `users_email_key`.
        constraint: String,
    },

    /// Input was rejected before any query ran.
    #[error("invalid {field}: {reason}")]
    Validation {
        /// The offending field, e.g. `"email"`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The caller may not do this (role hierarchy).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why the action was refused.
        reason: String,
    },

    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] DieselError),

    /// Applying or reverting migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),

    /// A transaction kept failing with serialization failures or deadlocks
    /// and was given up after this many attempts.
    #[error("the transaction conflicted with concurrent transactions {attempts} times; giving up")]
    TransactionConflict {
        /// How many times it ran.
        attempts: u32,
    },

    /// Email and password do not match a user that may log in. Deliberately
    /// does not say whether the email exists or the password was wrong.
    #[error("invalid credentials")]
    InvalidCredentials,

    /// Too many logins for this email failed within the configured window
    /// (`LOGIN_MAX_FAILURES` in `LOGIN_FAILURE_WINDOW_MS`): this one was
    /// refused before any password was checked, right or wrong. Unknown
    /// emails are counted the same way, so this does not say that an
    /// account exists.
    #[error("too many failed logins for this email; try again in {} s", retry_after.as_secs())]
    LoginThrottled {
        /// How long until the window ends (at least one second).
        retry_after: std::time::Duration,
    },

    /// The password was right, but the account is blocked.
    #[error("the account is blocked")]
    AccountBlocked,

    /// A presented token (a refresh token or a password reset token) was
    /// not accepted; `problem` says why. Never holds the token or its digest.
    #[error("token rejected: {problem}")]
    TokenRejected {
        /// Why the token was not accepted.
        problem: TokenProblem,
    },

    /// A refresh token that had already been revoked was presented again,
    /// which means a copy of it is in someone else's hands: every refresh
    /// token of its user has been revoked, so the user must log in again.
    #[error("refresh token reuse detected: every refresh token of the user was revoked")]
    TokenReused,

    /// A background task of the data layer failed (a bug, not bad input).
    #[error("internal error: {0}")]
    Internal(String),

    /// The configuration is present but malformed.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// What to do when the server does not know a statement the connection
/// prepared: the one setup known to cause it, and its fixes.
const LOST_STATEMENT_FIX: &str = "the server connection changed under this client, as behind \
    PgBouncer in pool_mode = transaction, which before PgBouncer 1.21 cannot carry prepared \
    statements (this crate prepares every statement, with or without a statement cache); use \
    PgBouncer 1.21 or later with max_prepared_statements set above zero, or pool_mode = session";

/// Whether a server error says that a prepared statement this connection
/// made is missing, or that its name is taken (SQLSTATE 26000 or 42P05).
fn is_lost_prepared_statement(message: &str) -> bool {
    message.starts_with("prepared statement \"")
        && (message.ends_with("does not exist") || message.ends_with("already exists"))
}

/// A connection failure's text, with the fix appended when it is a lost
/// prepared statement (a connection whose setup ran behind a
/// transaction-mode PgBouncer fails that way before any call maps it).
pub(crate) fn explain_connection_failure(reason: String) -> String {
    if is_lost_prepared_statement(&reason) {
        format!("{reason}: {LOST_STATEMENT_FIX}")
    } else {
        reason
    }
}

impl Error {
    /// Builds a [`Error::Validation`].
    pub fn validation(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Validation {
            field,
            reason: reason.into(),
        }
    }

    /// Maps a diesel error; `target` is the redacted connection target, used
    /// when the error means the connection is gone.
    pub(crate) fn from_diesel(err: DieselError, target: &str) -> Self {
        match err {
            DieselError::NotFound => Error::NotFound { entity: "row" },
            DieselError::DatabaseError(kind, info) => match kind {
                DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::RestrictViolation
                | DatabaseErrorKind::ExclusionViolation => match info.constraint_name() {
                    Some(name) => Error::Conflict {
                        constraint: name.to_owned(),
                    },
                    None => Error::Database(DieselError::DatabaseError(kind, info)),
                },
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                    Error::Unavailable {
                        target: target.to_owned(),
                        reason: info.message().to_owned(),
                    }
                }
                DatabaseErrorKind::Unknown if is_lost_prepared_statement(info.message()) => {
                    Error::Unavailable {
                        target: target.to_owned(),
                        reason: explain_connection_failure(info.message().to_owned()),
                    }
                }
                DatabaseErrorKind::Unknown if is_server_going_away(info.message()) => {
                    Error::Unavailable {
                        target: target.to_owned(),
                        reason: info.message().to_owned(),
                    }
                }
                other => Error::Database(DieselError::DatabaseError(other, info)),
            },
            DieselError::BrokenTransactionManager => Error::Unavailable {
                target: target.to_owned(),
                reason: "the connection was lost inside a transaction".to_owned(),
            },
            other => Error::Database(other),
        }
    }

    /// True when the error means the connection (not the query) failed, so a
    /// fresh connection may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// True for serialization failures and deadlocks, which a retry of the
    /// whole transaction may resolve.
    pub fn is_retryable_conflict(&self) -> bool {
        match self {
            Error::Database(DieselError::DatabaseError(kind, info)) => {
                // Deadlocks (40P01) have no diesel kind of their own.
                matches!(kind, DatabaseErrorKind::SerializationFailure)
                    || info.message().contains("deadlock detected")
            }
            _ => false,
        }
    }

    /// A short, stable label for logs and spans (`"ok"` is used for success).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Disabled => "disabled",
            Error::Unavailable { .. } => "unavailable",
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Validation { .. } => "validation",
            Error::Forbidden { .. } => "forbidden",
            Error::Database(_) => "database",
            Error::Migration(_) => "migration",
            Error::TransactionConflict { .. } => "transaction_conflict",
            Error::InvalidCredentials => "invalid_credentials",
            Error::LoginThrottled { .. } => "login_throttled",
            Error::AccountBlocked => "account_blocked",
            Error::TokenRejected { .. } => "token_rejected",
            Error::TokenReused => "token_reused",
            Error::Internal(_) => "internal",
            Error::Config(_) => "config",
        }
    }
}

/// Why a presented token was not accepted ([`Error::TokenRejected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenProblem {
    /// No token has this value (or the text is not a token at all).
    Unknown,
    /// The token's expiry has passed.
    Expired,
    /// The token was revoked (logout, rotation, or a password reset).
    Revoked,
    /// The token was single-use and has been used.
    Used,
}

impl std::fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenProblem::Unknown => "unknown token",
            TokenProblem::Expired => "expired",
            TokenProblem::Revoked => "revoked",
            TokenProblem::Used => "already used",
        })
    }
}

/// diesel-async hides the SQLSTATE, so the server's shutdown and start-up
/// errors (class 57P: admin_shutdown, crash_shutdown, cannot_connect_now) are
/// recognised by their messages, as the server sends them in English (the
/// default `lc_messages`).
fn is_server_going_away(message: &str) -> bool {
    // "terminating connection due to administrator command", "... due to
    // immediate shutdown command", "... because of crash of another server
    // process", "... due to unexpected postmaster exit", and the refusals
    // while the server starts, stops or recovers.
    const STATES: &[&str] = &[
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "the database system is not yet accepting connections",
        "the database system is not accepting connections",
    ];
    message.starts_with("terminating connection") || STATES.iter().any(|m| message.contains(m))
}

impl From<DieselError> for Error {
    /// Maps a diesel error whose connection target is not known at the call
    /// site; [`crate::PgStore`] fills the redacted target in before the error
    /// reaches the caller.
    fn from(err: DieselError) -> Self {
        Error::from_diesel(err, "the database")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_statement_while_connecting_names_the_fix_once() {
        let lost = explain_connection_failure("prepared statement \"s88\" does not exist".into());
        assert!(lost.starts_with("prepared statement \"s88\" does not exist: "));
        assert!(lost.contains("PgBouncer 1.21") && lost.contains("pool_mode = session"));
        assert_eq!(explain_connection_failure(lost.clone()), lost);
        let refused = "connection refused".to_owned();
        assert_eq!(explain_connection_failure(refused.clone()), refused);
    }
}
