//! Configuration: [`DbConfig`] read from the process environment and `.env`.
//!
//! The rules, in order:
//!
//! 1. `DB_CONNECTION_STRING` wins when it is non-blank, holds no `your_`
//!    placeholder and starts with `postgres://` or `postgresql://`.
//! 2. Otherwise the parts `DB_HOST`, `DB_PORT` (5432), `DB_NAME` (pronghorn),
//!    `DB_USER` (postgres), `DB_PASSWORD`: configured only when `DB_HOST` is set
//!    and `DB_PASSWORD` is non-blank and holds no placeholder.
//! 3. Otherwise the database is not configured, and the reason says why.
//! 4. `DB_SSL` of true/1/require means `sslmode=require` unless the string
//!    names an `sslmode` itself.
//! 5. Pool settings: `DB_POOL_MIN` (2), `DB_POOL_MAX` (20),
//!    `DB_POOL_IDLE_TIMEOUT` ms (30000), `DB_POOL_CONNECTION_TIMEOUT` ms (5000);
//!    `APP_NAME` becomes the `application_name`.
//! 6. A value that is present but malformed is a [`ConfigError`] naming the
//!    variable; it is never replaced by a default. Blank values count as unset.
//! 7. The password never appears in `Debug`, `Display`, logs or errors.
//!
//! The module is split along those lines: `env` reads the variables,
//! `rules` applies the rules above, `settings` holds the TLS, pool, TCP,
//! login and replica-probe settings with their readers, and `tests` checks
//! them all.

mod env;
mod rules;
mod settings;
#[cfg(test)]
mod tests;

use self::{rules::*, settings::*};
pub use settings::{
    LoginSettings, PoolSettings, ReplicaProbeSettings, SslMode, TargetSessionAttrs, TcpSettings,
};

use crate::conninfo::{self, HostPort};
use crate::password::HashScheme;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The placeholder marker of the template's `.env.example` values.
const PLACEHOLDER: &str = "your_";

/// A configuration value that is present but malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault (or `.env` for a file that does not parse).
    pub variable: &'static str,
    /// What is wrong with its value. Never contains a password.
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            variable,
            problem: problem.into(),
        }
    }
}

/// A password that prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The secret itself, for handing to the driver only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the connection settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// `DB_CONNECTION_STRING`.
    ConnectionString,
    /// `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`.
    Parts,
    /// `DATABASE_URL`, the diesel CLI's variable: the last fallback.
    DatabaseUrl,
}

/// A complete, validated database configuration.
///
/// `Debug` and `Display` show the password as `***`.
#[derive(Clone)]
pub struct DbConfig {
    pub(crate) user: String,
    pub(crate) password: Option<Password>,
    pub(crate) hosts: Vec<HostPort>,
    pub(crate) dbname: String,
    pub(crate) ssl_mode: SslMode,
    pub(crate) ssl_root_cert: Option<PathBuf>,
    pub(crate) application_name: String,
    pub(crate) target_session_attrs: TargetSessionAttrs,
    pub(crate) options: Option<String>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) pool: PoolSettings,
    pub(crate) slow_call: Duration,
    pub(crate) auto_migrate: bool,
    pub(crate) hash_concurrency: usize,
    pub(crate) hash_scheme: HashScheme,
    pub(crate) login: LoginSettings,
    pub(crate) transaction_retries: u32,
    pub(crate) tcp: TcpSettings,
    pub(crate) replicas: Vec<DbConfig>,
    pub(crate) replica_max_lag: Duration,
    pub(crate) replica_probe: ReplicaProbeSettings,
    pub(crate) source: ConfigSource,
}

/// The outcome of reading the configuration when it is not malformed.
#[derive(Debug, Clone)]
pub enum Configuration {
    /// A database is configured.
    Configured(Box<DbConfig>),
    /// No database is configured; the store will be disabled.
    NotConfigured {
        /// Which variable is missing or holds a placeholder.
        reason: String,
    },
}

/// Every variable [`DbConfig`] reads, for docs and for tests that clear them.
pub const VARIABLES: &[&str] = &[
    "DB_CONNECTION_STRING",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_SSL",
    "DB_SSL_ROOT_CERT",
    "DB_POOL_MIN",
    "DB_POOL_MAX",
    "DB_POOL_IDLE_TIMEOUT",
    "DB_POOL_CONNECTION_TIMEOUT",
    "DB_SLOW_QUERY_MS",
    "DB_AUTO_MIGRATE",
    "PASSWORD_HASH_CONCURRENCY",
    "PASSWORD_HASH",
    "PASSWORD_HASH_WAIT_MS",
    "LOGIN_MAX_FAILURES",
    "LOGIN_FAILURE_WINDOW_MS",
    "DB_TRANSACTION_RETRIES",
    "DB_KEEPALIVES_IDLE",
    "DB_TCP_USER_TIMEOUT",
    "DB_READ_REPLICA_URLS",
    "DATABASE_URL",
    "DB_REPLICA_MAX_LAG_MS",
    "DB_REPLICA_PROBE_INTERVAL_MS",
    "DB_REPLICA_PROBE_TIMEOUT_MS",
    "APP_NAME",
];

impl DbConfig {
    /// The connection target with the password replaced by `***`, e.g.
    /// `postgres://user:***@host:5432/db`.
    pub fn redacted_target(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
        let secret = if self.password.is_some() { ":***" } else { "" };
        format!(
            "postgres://{}{}@{}/{}",
            self.user,
            secret,
            hosts.join(","),
            self.dbname
        )
    }

    /// The TLS mode in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The pool settings.
    pub fn pool(&self) -> PoolSettings {
        self.pool
    }

    /// Replaces the pool settings (for applications that size the pool in code).
    pub fn with_pool(mut self, pool: PoolSettings) -> Self {
        self.pool = pool;
        self
    }

    /// The database name.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The hosts, in the order they are tried.
    pub fn hosts(&self) -> &[HostPort] {
        &self.hosts
    }

    /// The `application_name` the server sees.
    pub fn application_name(&self) -> &str {
        &self.application_name
    }

    /// Calls slower than this log a warning (`DB_SLOW_QUERY_MS`, default 500 ms).
    pub fn slow_call_threshold(&self) -> Duration {
        self.slow_call
    }

    /// Whether pending migrations run when the store starts (`DB_AUTO_MIGRATE`).
    pub fn auto_migrate(&self) -> bool {
        self.auto_migrate
    }

    /// How many password hashes run at once (`PASSWORD_HASH_CONCURRENCY`,
    /// default: the number of cores).
    pub fn hash_concurrency(&self) -> usize {
        self.hash_concurrency
    }

    /// Which algorithm new password hashes use (`PASSWORD_HASH`: `argon2id`,
    /// the default, or `bcrypt` while a Node app shares the database).
    pub fn hash_scheme(&self) -> HashScheme {
        self.hash_scheme
    }

    /// Login throttling and the bound on waiting for a hashing slot
    /// (`LOGIN_MAX_FAILURES`, `LOGIN_FAILURE_WINDOW_MS`,
    /// `PASSWORD_HASH_WAIT_MS`).
    pub fn login(&self) -> LoginSettings {
        self.login
    }

    /// How many times a conflicting transaction is retried
    /// (`DB_TRANSACTION_RETRIES`, default 3).
    pub fn transaction_retries(&self) -> u32 {
        self.transaction_retries
    }

    /// The same configuration with another retry budget.
    pub fn with_transaction_retries(mut self, retries: u32) -> Self {
        self.transaction_retries = retries;
        self
    }

    /// The keepalive and TCP user timeout settings.
    pub fn tcp(&self) -> TcpSettings {
        self.tcp
    }

    /// The read replicas (`DB_READ_REPLICA_URLS`), each with its own pool.
    pub fn replicas(&self) -> &[DbConfig] {
        &self.replicas
    }

    /// Replicas lagging further behind than this are skipped
    /// (`DB_REPLICA_MAX_LAG_MS`, default 5 s).
    pub fn replica_max_lag(&self) -> Duration {
        self.replica_max_lag
    }

    /// The same configuration with these read replicas.
    pub fn with_replicas(mut self, replicas: Vec<DbConfig>, max_lag: Duration) -> Self {
        self.replicas = replicas;
        self.replica_max_lag = max_lag;
        self
    }

    /// Which variables the connection settings came from.
    pub fn source(&self) -> ConfigSource {
        self.source
    }

    /// The PEM file of root certificates for `verify-ca` / `verify-full`, if set.
    pub fn ssl_root_cert(&self) -> Option<&std::path::Path> {
        self.ssl_root_cert.as_deref()
    }

    /// Which server of several hosts is acceptable.
    pub fn target_session_attrs(&self) -> TargetSessionAttrs {
        self.target_session_attrs
    }

    /// The same configuration aimed at another database on the same server
    /// (used by tests and tools that create databases).
    pub fn with_dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = dbname.into();
        self
    }

    /// The same configuration with another TLS mode.
    pub fn with_ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = mode;
        self
    }

    /// Builds the driver's configuration. The password goes only here.
    pub(crate) fn to_pg_config(&self) -> tokio_postgres::Config {
        let mut pg = tokio_postgres::Config::new();
        pg.user(&self.user);
        if let Some(p) = &self.password {
            pg.password(p.expose());
        }
        for h in &self.hosts {
            pg.host(&h.host);
            pg.port(h.port);
        }
        pg.dbname(&self.dbname);
        pg.application_name(&self.application_name);
        if let Some(o) = &self.options {
            pg.options(o);
        }
        pg.connect_timeout(self.connect_timeout.unwrap_or(self.pool.connection_timeout));
        // Keepalives and a TCP user timeout turn a server that vanished
        // without closing the socket into an error instead of an endless wait.
        pg.keepalives(true);
        pg.keepalives_idle(self.tcp.keepalives_idle);
        pg.keepalives_interval((self.tcp.keepalives_idle / 2).max(Duration::from_secs(1)));
        pg.keepalives_retries(3);
        pg.tcp_user_timeout(self.tcp.user_timeout);
        pg.target_session_attrs(match self.target_session_attrs {
            TargetSessionAttrs::Any => tokio_postgres::config::TargetSessionAttrs::Any,
            TargetSessionAttrs::ReadWrite => tokio_postgres::config::TargetSessionAttrs::ReadWrite,
        });
        pg.ssl_mode(match self.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        pg
    }
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("target", &self.redacted_target())
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("application_name", &self.application_name)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("pool", &self.pool)
            .field("slow_call", &self.slow_call)
            .field("auto_migrate", &self.auto_migrate)
            .field("hash_concurrency", &self.hash_concurrency)
            .field("hash_scheme", &self.hash_scheme)
            .field("login", &self.login)
            .field(
                "replicas",
                &self
                    .replicas
                    .iter()
                    .map(DbConfig::redacted_target)
                    .collect::<Vec<_>>(),
            )
            .field("replica_max_lag", &self.replica_max_lag)
            .field("replica_probe", &self.replica_probe)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (sslmode={})", self.redacted_target(), self.ssl_mode)
    }
}
