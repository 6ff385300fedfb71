//! `pronghorn-db`: the PostgreSQL data layer of Pronghorn web applications.
//!
//! Diesel checks every query against the schema at compile time; a bb8 pool
//! of diesel-async connections serves them; the [`Store`] trait lets an
//! application run with a database ([`PgStore`]) or without one
//! ([`DisabledStore`], whose data methods fail with [`Error::Disabled`]).
//!
//! Configuration comes from the environment and `.env` (see [`DbConfig`]);
//! [`connect_from_env`] picks the right store.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pronghorn_db::{Error, Store};
//!
//! // A handler receives the store as shared state and calls it.
//! async fn health(store: Arc<dyn Store>) -> (u16, String) {
//!     match store.server_info().await {
//!         Ok(info) => (200, format!("connected to {}", info.version)),
//!         Err(Error::Disabled) => (503, "database disabled".to_owned()),
//!         Err(e) => (503, e.to_string()),
//!     }
//! }
//!
//! # async fn run() -> Result<(), Error> {
//! let store = pronghorn_db::connect_from_env().await?;
//! let (status, body) = health(store.clone()).await;
//! println!("{status} {body}");
//! store.close().await;
//! # Ok(())
//! # }
//! ```

// The store's API lives at the crate root, one path per item; the modules
// below that are public hold everything else, reached through them alone.
mod config;
mod conninfo;
mod error;
pub mod extend;
pub mod functions;
pub mod migrate;
pub mod models;
pub(crate) mod observe;
mod page;
pub mod password;
mod pool;
pub mod repo;
pub mod schema;
pub mod seed;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod token;
pub mod validate;

pub use config::{
    ConfigError, ConfigSource, Configuration, DbConfig, LoginSettings, Password, PoolSettings,
    ReplicaProbeSettings, SslMode, TargetSessionAttrs, TcpSettings, VARIABLES,
};
pub use conninfo::HostPort;
pub use error::{Error, Result, TokenProblem};
pub use page::{Cursor, Page, PageRequest, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use pool::{DbPool, PoolStats, PooledConn};
pub use store::*;
pub use token::{Token, TokenDigest, TOKEN_BYTES, TOKEN_CHARS};

use std::sync::Arc;

/// The Diesel this crate is built with, for [`join_crate_tables!`]'s
/// expansion in applications.
#[doc(hidden)]
pub use diesel as __diesel;

/// Builds the store the environment asks for: a [`PgStore`] when a database
/// is configured, else a [`DisabledStore`] (logging one line that says why and
/// how to configure). When configured, it tests the connection once and logs
/// the outcome, and runs pending migrations when `DB_AUTO_MIGRATE` is true
/// (a failure there is logged, and the store is returned anyway).
///
/// Never fails because the configuration is missing or the server is down;
/// fails with [`Error::Config`] only when a value is malformed.
pub async fn connect_from_env() -> Result<Arc<dyn Store>> {
    Ok(Database::open_from_env().await?.store)
}

/// Builds the store for an already-read [`Configuration`], as
/// [`connect_from_env`] does: [`DisabledStore`] (with one log line) or
/// [`PgStore`] via [`connect`].
///
/// Fails with [`Error::Config`] only when the TLS settings cannot be built
/// (an unreadable `DB_SSL_ROOT_CERT`) or the pool settings are unusable (a
/// zero maximum or timeout, a minimum above the maximum).
pub async fn store_from(configuration: Configuration) -> Result<Arc<dyn Store>> {
    Ok(Database::open(configuration).await?.store)
}

/// Everything an application needs from the data layer, from one call.
///
/// `store` serves the crate's methods with or without a database.
/// `pg` is the same [`PgStore`] when a database is configured, for the
/// application's own queries on its own tables and for transactions that
/// span its tables and the crate's ([`PgStore::transaction`]); `None` when
/// the database is disabled.
#[derive(Clone)]
pub struct Database {
    /// The store for the crate's methods: the [`PgStore`] below, or a
    /// [`DisabledStore`].
    pub store: Arc<dyn Store>,
    /// The store as a [`PgStore`], when a database is configured.
    pub pg: Option<Arc<PgStore>>,
}

impl Database {
    /// Opens what the environment configures, as [`connect_from_env`]
    /// does (tests the connection once, honours `DB_AUTO_MIGRATE`, logs
    /// why the database is disabled when it is).
    ///
    /// Fails with [`Error::Config`] only when a value is malformed.
    pub async fn open_from_env() -> Result<Database> {
        Database::open(DbConfig::from_env()?).await
    }

    /// Opens what `configuration` says: a [`PgStore`] via [`connect`], or
    /// a [`DisabledStore`] with one log line saying why and how to
    /// configure.
    ///
    /// Fails with [`Error::Config`] only when the TLS settings cannot be
    /// built or the pool settings are unusable (as [`connect`]).
    pub async fn open(configuration: Configuration) -> Result<Database> {
        match configuration {
            Configuration::NotConfigured { reason } => {
                tracing::info!(
                    %reason,
                    "database disabled: set DB_CONNECTION_STRING, or DB_HOST and DB_PASSWORD, \
                     or DATABASE_URL, to enable it"
                );
                Ok(Database {
                    store: Arc::new(DisabledStore::new(reason)),
                    pg: None,
                })
            }
            Configuration::Configured(config) => {
                let pg = Arc::new(connect(*config).await?);
                Ok(Database {
                    store: pg.clone(),
                    pg: Some(pg),
                })
            }
        }
    }
}

/// Builds a [`PgStore`] for `config`, tests the connection once (logging the
/// outcome) and honours `DB_AUTO_MIGRATE`, as [`connect_from_env`] does.
///
/// Fails with [`Error::Config`] only when the TLS settings cannot be built
/// (an unreadable `DB_SSL_ROOT_CERT`) or the pool settings are unusable (a
/// zero maximum or timeout, a minimum above the maximum).
pub async fn connect(config: DbConfig) -> Result<PgStore> {
    let auto_migrate = config.auto_migrate();
    let store = PgStore::new(config).await?;
    if store.test_connection().await && auto_migrate {
        match migrate::run_pending(&store).await {
            Ok(applied) => tracing::info!(count = applied.len(), "applied pending migrations"),
            Err(e) => tracing::error!(error = %e, "DB_AUTO_MIGRATE: running migrations failed"),
        }
    }
    Ok(store)
}
