//! The [`Store`] trait that applications hold as `Arc<dyn Store>`, and its
//! two implementations. Everything public here is reached from the crate
//! root.
//!
//! The trait is split by aggregate; each part is a supertrait of [`Store`],
//! so an `Arc<dyn Store>` reaches every method.
//!
//! # Adding a method
//!
//! A store method is written once, in its part's `impl ... for PgStore`
//! block under `#[store_part]`, with its doc comment (which says what it
//! returns on failure). The attribute generates the part's trait from those
//! signatures and docs, and the [`DisabledStore`] implementation, whose
//! every method fails with [`crate::Error::Disabled`]. A new part is one
//! such block in its own file, plus a `mod` line, a `pub use` line and its
//! name in [`Store`]'s list of parts below. [`HealthStore`] is the one part written
//! by hand for both stores, since a disabled store answers it without
//! failing.
//!
//! # Layers inside the store
//!
//! A part imports only from below it: `policy` (who may act on whom) and
//! the audit writer in `user_audit_log` sit at the bottom; `sessions` and
//! `refresh_tokens` use the repositories alone; `users` and
//! `password_reset_requests` build on those. A helper two parts need moves down, never sideways.

mod conversations;
mod disabled;
mod password_reset_requests;
mod pg;
mod policy;
mod refresh_tokens;
pub(crate) mod replicas;
pub(crate) mod sessions;
mod user_audit_log;
mod users;
mod websocket_connections;

// Everything public in a part is public at the crate root, through these.
pub use conversations::*;
pub use disabled::DisabledStore;
pub use password_reset_requests::*;
pub use pg::{Isolation, PgStore};
pub use refresh_tokens::*;
pub use replicas::ReplicaStatus;
pub(crate) use sessions::end_everywhere;
pub use sessions::*;
pub use user_audit_log::*;
pub(crate) use users::count_by_role;
pub use users::*;
pub use websocket_connections::*;

use crate::error::Result;
use crate::pool::PoolStats;
use async_trait::async_trait;

/// What `SELECT now(), version()` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerInfo {
    /// The server's clock at the time of the query.
    pub now: chrono::DateTime<chrono::Utc>,
    /// The server's `version()` string.
    pub version: String,
}

/// Health and lifecycle of the data layer.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Whether a database is configured (false for [`DisabledStore`]).
    fn is_configured(&self) -> bool;

    /// The last known connection state: true after a connection or query
    /// succeeded, false after one failed or when nothing is configured.
    fn is_connected(&self) -> bool;

    /// The connection target with its password redacted, or `None` when no
    /// database is configured.
    fn target(&self) -> Option<String>;

    /// Runs `SELECT now(), version()`.
    ///
    /// Fails with [`crate::Error::Disabled`] when nothing is configured and
    /// [`crate::Error::Unavailable`] when the server cannot be reached within
    /// the connection timeout.
    async fn server_info(&self) -> Result<ServerInfo>;

    /// Checks the connection with [`HealthStore::server_info`] and logs the
    /// outcome (server version, or a warning with a hint). Returns whether
    /// it succeeded; never fails.
    async fn test_connection(&self) -> bool;

    /// Every migration this build embeds, oldest first, with whether the
    /// database has it applied. Reads only.
    ///
    /// Fails with [`crate::Error::Disabled`] or [`crate::Error::Unavailable`].
    async fn migrations(&self) -> Result<Vec<crate::migrate::MigrationState>>;

    /// Each read replica's last known state and lag (empty when there are
    /// none, or nothing is configured).
    fn replica_status(&self) -> Vec<replicas::ReplicaStatus>;

    /// The pool's figures, or `None` when nothing is configured.
    fn pool_stats(&self) -> Option<PoolStats>;

    /// Closes the pool: idle connections are closed now, checked-out ones
    /// when they are returned, and later calls fail with
    /// [`crate::Error::Unavailable`]. Never fails.
    async fn close(&self);
}

/// Declares [`Store`] as the sum of its parts, with the blanket
/// implementation that gives it to every type implementing them all: the
/// list of parts is written once.
macro_rules! store_of_parts {
    ($(#[$doc:meta])* $first:ident $(+ $part:ident)*) => {
        $(#[$doc])*
        pub trait Store: $first $(+ $part)* {}

        impl<T: $first $(+ $part)*> Store for T {}
    };
}

store_of_parts! {
    /// The data layer an application holds, as `Arc<dyn Store>`.
    ///
    /// [`PgStore`] does the work on PostgreSQL; [`DisabledStore`] answers every
    /// data method with [`crate::Error::Disabled`].
    HealthStore
        + UserStore
        + AuditStore
        + ConversationStore
        + WebsocketStore
        + SessionStore
        + RefreshTokenStore
        + PasswordResetStore
}
