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

/// How TLS is used on connections, with libpq's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, without verification; plain otherwise.
    Prefer,
    /// TLS required; the certificate is not verified.
    Require,
    /// TLS required; the certificate chain is verified against the root
    /// certificates, the host name is not.
    VerifyCa,
    /// TLS required; the chain and the host name are verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disable" => Ok(SslMode::Disable),
            "prefer" | "allow" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(format!(
                "unknown sslmode '{other}' (expected disable, prefer, require, verify-ca or verify-full)"
            )),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which server of a multi-host string is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSessionAttrs {
    /// Any server that accepts the connection.
    Any,
    /// Only a server that accepts writes (the primary).
    ReadWrite,
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

/// Pool sizing and time-outs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Idle connections the pool keeps open (`DB_POOL_MIN`, default 2).
    pub min_idle: u32,
    /// Most connections the pool opens (`DB_POOL_MAX`, default 20).
    pub max_size: u32,
    /// How long an idle connection above `min_idle` lives (`DB_POOL_IDLE_TIMEOUT`, default 30 s).
    pub idle_timeout: Duration,
    /// How long a caller waits for a connection (`DB_POOL_CONNECTION_TIMEOUT`, default 5 s).
    pub connection_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            min_idle: 2,
            max_size: 20,
            idle_timeout: Duration::from_millis(30_000),
            connection_timeout: Duration::from_millis(5_000),
        }
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

/// Bounds on the work logins can cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginSettings {
    /// Login attempts per email allowed within [`LoginSettings::failure_window`]
    /// before further ones fail with
    /// [`Error::LoginThrottled`](crate::Error::LoginThrottled) without
    /// hashing (`LOGIN_MAX_FAILURES`, default 10). A success clears the count.
    pub max_failures: u32,
    /// The window the count covers, from the first counted attempt
    /// (`LOGIN_FAILURE_WINDOW_MS`, default 15 minutes).
    pub failure_window: Duration,
    /// The longest a password check or hash waits for a hashing slot before
    /// failing with [`Error::Unavailable`](crate::Error::Unavailable)
    /// (`PASSWORD_HASH_WAIT_MS`, default 2000).
    pub hash_wait: Duration,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            max_failures: 10,
            failure_window: Duration::from_secs(15 * 60),
            hash_wait: Duration::from_millis(2000),
        }
    }
}

/// Reads [`LoginSettings`]; each value must be at least 1.
fn read_login(get: &mut impl FnMut(&str) -> Option<String>) -> Result<LoginSettings, ConfigError> {
    let defaults = LoginSettings::default();
    let mut positive = |var: &'static str| -> Result<Option<u64>, ConfigError> {
        match get(var) {
            None => Ok(None),
            Some(v) => match parse_u64(var, &v)? {
                0 => Err(ConfigError::new(var, "must be at least 1, got 0")),
                n => Ok(Some(n)),
            },
        }
    };
    let max_failures = match positive("LOGIN_MAX_FAILURES")? {
        None => defaults.max_failures,
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n <= 1_000_000)
            .ok_or_else(|| {
                ConfigError::new("LOGIN_MAX_FAILURES", format!("{n} is above 1000000"))
            })?,
    };
    const DAY_MS: u64 = 24 * 60 * 60 * 1000;
    let failure_window = match positive("LOGIN_FAILURE_WINDOW_MS")? {
        None => defaults.failure_window,
        Some(ms) if ms > 30 * DAY_MS => {
            return Err(ConfigError::new(
                "LOGIN_FAILURE_WINDOW_MS",
                format!("{ms} is above 30 days"),
            ))
        }
        Some(ms) => Duration::from_millis(ms),
    };
    let hash_wait =
        positive("PASSWORD_HASH_WAIT_MS")?.map_or(defaults.hash_wait, Duration::from_millis);
    Ok(LoginSettings {
        max_failures,
        failure_window,
        hash_wait,
    })
}

/// How a connection whose server vanished (no FIN, no RST: a cable pulled,
/// a host gone) is noticed instead of waited on forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSettings {
    /// Idle time before the first keepalive probe (`DB_KEEPALIVES_IDLE` ms,
    /// default 10 s); probes follow every half of it (at least 1 s), and
    /// three unanswered probes end the connection.
    pub keepalives_idle: Duration,
    /// How long sent data may stay unacknowledged before the connection is
    /// dropped (`DB_TCP_USER_TIMEOUT` ms, default 30 s).
    pub user_timeout: Duration,
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings {
            keepalives_idle: Duration::from_secs(10),
            user_timeout: Duration::from_secs(30),
        }
    }
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
    /// Reads the configuration from the process environment and, for
    /// variables the environment does not set, from a `.env` file found in
    /// the current folder or its parents.
    ///
    /// Returns [`Configuration::NotConfigured`] with the reason when no
    /// database is configured, and a [`ConfigError`] naming the variable when
    /// a value is malformed (or `.env` does not parse).
    pub fn from_env() -> Result<Configuration, ConfigError> {
        let mut file_vars = HashMap::new();
        match dotenvy::dotenv_iter() {
            Ok(iter) => {
                for item in iter {
                    let (k, v) = item.map_err(dotenv_error)?;
                    file_vars.insert(k, v);
                }
            }
            Err(e) if e.not_found() => {}
            Err(e) => return Err(dotenv_error(e)),
        }
        let mut bad_unicode = None;
        let config = Self::from_lookup(|name| match std::env::var(name) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotUnicode(_)) => {
                bad_unicode.get_or_insert(name.to_owned());
                None
            }
            Err(std::env::VarError::NotPresent) => file_vars.get(name).cloned(),
        });
        if let Some(name) = bad_unicode {
            let variable = VARIABLES
                .iter()
                .copied()
                .find(|v| *v == name)
                .unwrap_or("environment");
            return Err(ConfigError::new(variable, "the value is not valid UTF-8"));
        }
        config
    }

    /// Applies the rules to variables given by `lookup` (name to value);
    /// the same outcomes and errors as [`DbConfig::from_env`].
    pub fn from_lookup(
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<Configuration, ConfigError> {
        let mut get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        // Values that apply to any configured database are checked first, so
        // that a malformed one is reported whichever source wins.
        let pool = read_pool(&mut get)?;
        let ssl_env = get("DB_SSL")
            .map(|v| parse_db_ssl(&v))
            .transpose()
            .map_err(|p| ConfigError::new("DB_SSL", p))?;
        let ssl_root_cert = get("DB_SSL_ROOT_CERT").map(|v| PathBuf::from(v.trim()));
        let slow_call = match get("DB_SLOW_QUERY_MS") {
            None => Duration::from_millis(500),
            Some(v) => Duration::from_millis(parse_u64("DB_SLOW_QUERY_MS", &v)?),
        };
        let auto_migrate = match get("DB_AUTO_MIGRATE") {
            None => false,
            Some(v) => parse_bool(&v).ok_or_else(|| {
                ConfigError::new(
                    "DB_AUTO_MIGRATE",
                    format!("'{}' is not true or false", v.trim()),
                )
            })?,
        };
        let app_name = get("APP_NAME").map(|v| v.trim().to_owned());
        let hash_concurrency = match get("PASSWORD_HASH_CONCURRENCY") {
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
            Some(v) => match parse_u64("PASSWORD_HASH_CONCURRENCY", &v)? {
                0 => {
                    return Err(ConfigError::new(
                        "PASSWORD_HASH_CONCURRENCY",
                        "must be at least 1, got 0",
                    ))
                }
                n => usize::try_from(n).map_err(|_| {
                    ConfigError::new("PASSWORD_HASH_CONCURRENCY", format!("{n} is too large"))
                })?,
            },
        };
        let hash_scheme = match get("PASSWORD_HASH") {
            None => HashScheme::default(),
            Some(v) => v
                .parse::<HashScheme>()
                .map_err(|e| ConfigError::new("PASSWORD_HASH", e))?,
        };
        let login = read_login(&mut get)?;
        let transaction_retries = match get("DB_TRANSACTION_RETRIES") {
            None => 3,
            Some(v) => {
                let n = parse_u64("DB_TRANSACTION_RETRIES", &v)?;
                u32::try_from(n).ok().filter(|n| *n <= 100).ok_or_else(|| {
                    ConfigError::new("DB_TRANSACTION_RETRIES", format!("{n} is above 100"))
                })?
            }
        };
        let mut tcp = TcpSettings::default();
        for (var, slot) in [
            ("DB_KEEPALIVES_IDLE", &mut tcp.keepalives_idle),
            ("DB_TCP_USER_TIMEOUT", &mut tcp.user_timeout),
        ] {
            if let Some(v) = get(var) {
                let n = parse_u64(var, &v)?;
                if n < 1000 {
                    return Err(ConfigError::new(
                        var,
                        format!("must be at least 1000 ms, got {n}"),
                    ));
                }
                *slot = Duration::from_millis(n);
            }
        }
        let port = get("DB_PORT")
            .map(|v| conninfo::parse_port(&v))
            .transpose()
            .map_err(|p| ConfigError::new("DB_PORT", p))?;

        let mut reasons = Vec::new();
        let base = Base {
            pool,
            ssl_env,
            ssl_root_cert,
            slow_call,
            auto_migrate,
            app_name,
            hash_concurrency,
            hash_scheme,
            login,
            transaction_retries,
            tcp,
        };

        match usable_string("DB_CONNECTION_STRING", get("DB_CONNECTION_STRING")) {
            Err(reason) => reasons.push(reason),
            Ok(s) => {
                let primary = from_string("DB_CONNECTION_STRING", &s, base.clone())?;
                return with_replicas(primary, &mut get, base)
                    .map(|c| Configuration::Configured(Box::new(c)));
            }
        }

        let host = get("DB_HOST");
        let password = get("DB_PASSWORD");
        match (&host, &password) {
            (None, _) => reasons.push("DB_HOST is not set".to_owned()),
            (Some(_), None) => reasons.push("DB_PASSWORD is empty".to_owned()),
            (Some(_), Some(p)) if p.to_ascii_lowercase().contains(PLACEHOLDER) => {
                reasons.push("DB_PASSWORD holds a placeholder (your_...)".to_owned())
            }
            (Some(h), Some(p)) => {
                let host = h.trim();
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                let ssl_mode = base.ssl_env.unwrap_or(SslMode::Prefer);
                let primary = DbConfig {
                    user: get("DB_USER").map_or_else(|| "postgres".to_owned(), |u| u.trim().into()),
                    password: Some(Password(p.clone())),
                    hosts: vec![HostPort {
                        host: host.to_owned(),
                        port: port.unwrap_or(5432),
                    }],
                    dbname: get("DB_NAME")
                        .map_or_else(|| "pronghorn".to_owned(), |d| d.trim().into()),
                    ssl_mode,
                    ssl_root_cert: base.ssl_root_cert.clone(),
                    application_name: base.app_name.clone().unwrap_or_else(default_app_name),
                    target_session_attrs: TargetSessionAttrs::Any,
                    options: None,
                    connect_timeout: None,
                    pool: base.pool,
                    slow_call: base.slow_call,
                    auto_migrate: base.auto_migrate,
                    hash_concurrency: base.hash_concurrency,
                    hash_scheme: base.hash_scheme,
                    login: base.login,
                    transaction_retries: base.transaction_retries,
                    tcp: base.tcp,
                    replicas: Vec::new(),
                    replica_max_lag: Duration::ZERO,
                    replica_probe: ReplicaProbeSettings::default(),
                    source: ConfigSource::Parts,
                };
                return with_replicas(primary, &mut get, base)
                    .map(|c| Configuration::Configured(Box::new(c)));
            }
        }
        // Last: the diesel CLI's variable, so that one `.env` serves both.
        match usable_string("DATABASE_URL", get("DATABASE_URL")) {
            Err(reason) => reasons.push(reason),
            Ok(s) => {
                let mut primary = from_string("DATABASE_URL", &s, base.clone())?;
                primary.source = ConfigSource::DatabaseUrl;
                return with_replicas(primary, &mut get, base)
                    .map(|c| Configuration::Configured(Box::new(c)));
            }
        }
        Ok(Configuration::NotConfigured {
            reason: reasons.join("; "),
        })
    }

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

#[derive(Clone)]
struct Base {
    pool: PoolSettings,
    ssl_env: Option<SslMode>,
    ssl_root_cert: Option<PathBuf>,
    slow_call: Duration,
    auto_migrate: bool,
    app_name: Option<String>,
    hash_concurrency: usize,
    hash_scheme: HashScheme,
    login: LoginSettings,
    transaction_retries: u32,
    tcp: TcpSettings,
}

/// Adds the read replicas of `DB_READ_REPLICA_URLS` (comma-separated
/// strings, each under the primary string's rules; a string holding a
/// `your_` placeholder is skipped) and `DB_REPLICA_MAX_LAG_MS` (default 5000).
fn with_replicas(
    mut primary: DbConfig,
    get: &mut impl FnMut(&str) -> Option<String>,
    base: Base,
) -> Result<DbConfig, ConfigError> {
    const VAR: &str = "DB_READ_REPLICA_URLS";
    primary.replica_max_lag = match get("DB_REPLICA_MAX_LAG_MS") {
        None => Duration::from_millis(5000),
        Some(v) => Duration::from_millis(parse_u64("DB_REPLICA_MAX_LAG_MS", &v)?),
    };
    primary.replica_probe = read_replica_probe(get)?;
    if let Some(list) = get(VAR) {
        for url in split_urls(&list) {
            if url.to_ascii_lowercase().contains(PLACEHOLDER) {
                continue;
            }
            if conninfo::strip_scheme(&url).is_none() {
                return Err(ConfigError::new(
                    VAR,
                    "each entry must start with postgres:// or postgresql://",
                ));
            }
            primary.replicas.push(from_string(VAR, &url, base.clone())?);
        }
    }
    Ok(primary)
}

/// How each read replica is probed in the background: how often its replay
/// lag is measured, and how long one measurement may take. Reads use the
/// last measurement and never wait on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaProbeSettings {
    /// Time from the start of one probe of a replica to the start of the
    /// next (`DB_REPLICA_PROBE_INTERVAL_MS`, default 1000); a probe that
    /// takes longer is followed by the next at once.
    pub interval: Duration,
    /// How long one probe (opening its connection when it has none, then
    /// the lag query) may take before it counts as failed and the replica
    /// is skipped until a probe succeeds (`DB_REPLICA_PROBE_TIMEOUT_MS`,
    /// default 1000).
    pub timeout: Duration,
}

impl Default for ReplicaProbeSettings {
    fn default() -> Self {
        ReplicaProbeSettings {
            interval: Duration::from_millis(1000),
            timeout: Duration::from_millis(1000),
        }
    }
}

impl ReplicaProbeSettings {
    /// How long a probe's figure is trusted: a replica whose last probe
    /// finished longer ago than this (its probe task stalled or ended) is
    /// skipped as if the probe had failed.
    pub(crate) fn trusted_for(&self) -> Duration {
        (self.interval + self.timeout).saturating_mul(2)
    }
}

/// Reads [`ReplicaProbeSettings`]: each value a whole number of
/// milliseconds from 1 to 3600000 (an hour).
fn read_replica_probe(
    get: &mut impl FnMut(&str) -> Option<String>,
) -> Result<ReplicaProbeSettings, ConfigError> {
    const HOUR_MS: u64 = 60 * 60 * 1000;
    let mut millis = |var: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        match get(var) {
            None => Ok(default),
            Some(v) => match parse_u64(var, &v)? {
                0 => Err(ConfigError::new(var, "must be at least 1, got 0")),
                ms if ms > HOUR_MS => Err(ConfigError::new(
                    var,
                    format!("{ms} is above {HOUR_MS} (an hour)"),
                )),
                ms => Ok(Duration::from_millis(ms)),
            },
        }
    };
    let defaults = ReplicaProbeSettings::default();
    Ok(ReplicaProbeSettings {
        interval: millis("DB_REPLICA_PROBE_INTERVAL_MS", defaults.interval)?,
        timeout: millis("DB_REPLICA_PROBE_TIMEOUT_MS", defaults.timeout)?,
    })
}

impl DbConfig {
    /// How the read replicas are probed (`DB_REPLICA_PROBE_INTERVAL_MS`,
    /// `DB_REPLICA_PROBE_TIMEOUT_MS`).
    pub fn replica_probe(&self) -> ReplicaProbeSettings {
        self.replica_probe
    }

    /// The same configuration with these probe settings. A zero interval
    /// or timeout set here is taken as 1 ms.
    pub fn with_replica_probe(mut self, probe: ReplicaProbeSettings) -> Self {
        self.replica_probe = probe;
        self
    }
}

#[cfg(test)]
mod replica_probe_tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Configuration, ConfigError> {
        let mut all = vec![("DB_CONNECTION_STRING", "postgres://u@h/db")];
        all.extend_from_slice(vars);
        DbConfig::from_lookup(|k| {
            all.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn probe_settings_default_parse_and_refuse_bad_values() {
        let probe = |vars: &[(&str, &str)]| match read(vars) {
            Ok(Configuration::Configured(c)) => c.replica_probe(),
            other => panic!("expected configured, got {other:?}"),
        };
        assert_eq!(probe(&[]), ReplicaProbeSettings::default());
        assert_eq!(
            probe(&[
                ("DB_REPLICA_PROBE_INTERVAL_MS", "200"),
                ("DB_REPLICA_PROBE_TIMEOUT_MS", " 150 "),
            ]),
            ReplicaProbeSettings {
                interval: Duration::from_millis(200),
                timeout: Duration::from_millis(150),
            }
        );
        for var in [
            "DB_REPLICA_PROBE_INTERVAL_MS",
            "DB_REPLICA_PROBE_TIMEOUT_MS",
        ] {
            for (value, problem) in [
                ("0", "must be at least 1, got 0"),
                ("soon", "'soon' is not a non-negative whole number"),
                ("3600001", "3600001 is above 3600000 (an hour)"),
            ] {
                match read(&[(var, value)]) {
                    Err(e) => {
                        assert_eq!(e.variable, var, "{value}");
                        assert_eq!(e.problem, problem, "{var}={value}");
                    }
                    other => panic!("{var}={value}: expected an error, got {other:?}"),
                }
            }
        }
    }
}

/// Splits a comma-separated list of connection strings. A comma starts a
/// new entry only when a scheme follows it, so that a multi-host string
/// (`postgres://u@h1:5432,h2:5433/db`) stays whole.
fn split_urls(list: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in list.split(',') {
        let starts_entry = conninfo::strip_scheme(piece.trim()).is_some();
        match out.last_mut() {
            Some(current) if !starts_entry => {
                current.push(',');
                current.push_str(piece.trim_end());
            }
            _ => out.push(piece.trim().to_owned()),
        }
    }
    out.retain(|u| !u.is_empty());
    out
}

/// Describes a `.env` failure without repeating the file's text (a line
/// that does not parse may hold a password).
fn dotenv_error(e: dotenvy::Error) -> ConfigError {
    let problem = match e {
        dotenvy::Error::LineParse(_, at) => {
            format!("a line does not parse (at character {at}); check its quotes")
        }
        dotenvy::Error::Io(io) => format!("cannot be read: {io}"),
        _ => "cannot be read".to_owned(),
    };
    ConfigError::new(".env", problem)
}

fn default_app_name() -> String {
    "pronghorn".to_owned()
}

fn from_string(var: &'static str, s: &str, base: Base) -> Result<DbConfig, ConfigError> {
    let parsed = conninfo::parse(s).map_err(|e| ConfigError::new(var, e.0))?;
    if parsed.hosts.is_empty() {
        return Err(ConfigError::new(var, "it names no host"));
    }
    let mut ssl_mode = None;
    let mut ssl_root_cert = None;
    let mut application_name = None;
    let mut target_session_attrs = TargetSessionAttrs::Any;
    let mut options = None;
    let mut connect_timeout = None;
    for (key, value) in parsed.params {
        match key.as_str() {
            "sslmode" => {
                ssl_mode = Some(value.parse::<SslMode>().map_err(|_| {
                    ConfigError::new(
                        var,
                        "unknown sslmode (expected disable, prefer, require, \
                                 verify-ca or verify-full)",
                    )
                })?)
            }
            "sslrootcert" => ssl_root_cert = Some(PathBuf::from(value)),
            "application_name" => application_name = Some(value),
            "options" => options = Some(value),
            "connect_timeout" => {
                let secs = value.parse::<u64>().map_err(|_| {
                    ConfigError::new(var, "connect_timeout is not a number of seconds")
                })?;
                connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "target_session_attrs" => {
                target_session_attrs = match value.as_str() {
                    "any" => TargetSessionAttrs::Any,
                    "read-write" => TargetSessionAttrs::ReadWrite,
                    _ => {
                        return Err(ConfigError::new(
                            var,
                            "target_session_attrs is not any or read-write",
                        ))
                    }
                }
            }
            // The name is not repeated: a password with an unencoded `?`
            // puts part of itself here.
            _ => {
                return Err(ConfigError::new(
                    var,
                    "an unsupported parameter (supported: sslmode, sslrootcert, \
                     application_name, options, connect_timeout, target_session_attrs)",
                ))
            }
        }
    }
    let user = parsed.user.unwrap_or_else(|| "postgres".to_owned());
    Ok(DbConfig {
        dbname: parsed.dbname.unwrap_or_else(|| user.clone()),
        user,
        password: parsed.password.filter(|p| !p.is_empty()).map(Password),
        hosts: parsed.hosts,
        ssl_mode: ssl_mode.or(base.ssl_env).unwrap_or(SslMode::Prefer),
        ssl_root_cert: ssl_root_cert.or(base.ssl_root_cert),
        application_name: application_name
            .or(base.app_name)
            .unwrap_or_else(default_app_name),
        target_session_attrs,
        options,
        connect_timeout,
        pool: base.pool,
        slow_call: base.slow_call,
        auto_migrate: base.auto_migrate,
        hash_concurrency: base.hash_concurrency,
        hash_scheme: base.hash_scheme,
        login: base.login,
        transaction_retries: base.transaction_retries,
        tcp: base.tcp,
        replicas: Vec::new(),
        replica_max_lag: Duration::ZERO,
        replica_probe: ReplicaProbeSettings::default(),
        source: ConfigSource::ConnectionString,
    })
}

/// A connection-string variable's value when it is one to use; otherwise
/// why not (unset, a `your_` placeholder, or no `postgres://` scheme).
fn usable_string(var: &str, value: Option<String>) -> Result<String, String> {
    match value {
        None => Err(format!("{var} is not set")),
        Some(s) if s.to_ascii_lowercase().contains(PLACEHOLDER) => {
            Err(format!("{var} holds a placeholder (your_...)"))
        }
        Some(s) if conninfo::strip_scheme(s.trim()).is_none() => Err(format!(
            "{var} does not start with postgres:// or postgresql://"
        )),
        Some(s) => Ok(s),
    }
}

fn parse_db_ssl(v: &str) -> Result<SslMode, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "require" => Ok(SslMode::Require),
        "false" | "0" | "no" | "off" | "disable" => Ok(SslMode::Disable),
        other => other.parse::<SslMode>().map_err(|_| {
            format!(
                "'{other}' is not a boolean or an sslmode (true, false, disable, prefer, require, verify-ca, verify-full)"
            )
        }),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_u64(var: &'static str, v: &str) -> Result<u64, ConfigError> {
    v.trim().parse::<u64>().map_err(|_| {
        ConfigError::new(
            var,
            format!("'{}' is not a non-negative whole number", v.trim()),
        )
    })
}

fn read_pool(get: &mut impl FnMut(&str) -> Option<String>) -> Result<PoolSettings, ConfigError> {
    let defaults = PoolSettings::default();
    let max_size = match get("DB_POOL_MAX") {
        None => defaults.max_size,
        Some(v) => {
            let n = parse_u64("DB_POOL_MAX", &v)?;
            if n == 0 {
                return Err(ConfigError::new("DB_POOL_MAX", "must be at least 1, got 0"));
            }
            u32::try_from(n)
                .map_err(|_| ConfigError::new("DB_POOL_MAX", format!("{n} is too large")))?
        }
    };
    let min_idle = match get("DB_POOL_MIN") {
        // An unset minimum follows a smaller maximum instead of contradicting it.
        None => defaults.min_idle.min(max_size),
        Some(v) => {
            let n = parse_u64("DB_POOL_MIN", &v)?;
            let n = u32::try_from(n)
                .map_err(|_| ConfigError::new("DB_POOL_MIN", format!("{n} is too large")))?;
            if n > max_size {
                return Err(ConfigError::new(
                    "DB_POOL_MIN",
                    format!("{n} is above DB_POOL_MAX ({max_size})"),
                ));
            }
            n
        }
    };
    let ms = |var: &'static str, default: Duration, get: &mut dyn FnMut(&str) -> Option<String>| {
        match get(var) {
            None => Ok(default),
            Some(v) => {
                let n = parse_u64(var, &v)?;
                if n == 0 {
                    return Err(ConfigError::new(var, "must be at least 1 ms, got 0"));
                }
                Ok(Duration::from_millis(n))
            }
        }
    };
    let idle_timeout = ms("DB_POOL_IDLE_TIMEOUT", defaults.idle_timeout, get)?;
    let connection_timeout = ms(
        "DB_POOL_CONNECTION_TIMEOUT",
        defaults.connection_timeout,
        get,
    )?;
    Ok(PoolSettings {
        min_idle,
        max_size,
        idle_timeout,
        connection_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<Configuration, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DbConfig::from_lookup(|k| map.get(k).cloned())
    }

    fn configured(vars: &[(&str, &str)]) -> DbConfig {
        match cfg(vars) {
            Ok(Configuration::Configured(c)) => *c,
            other => panic!("expected configured, got {other:?}"),
        }
    }

    fn not_configured(vars: &[(&str, &str)]) -> String {
        match cfg(vars) {
            Ok(Configuration::NotConfigured { reason }) => reason,
            other => panic!("expected not configured, got {other:?}"),
        }
    }

    fn error(vars: &[(&str, &str)]) -> ConfigError {
        match cfg(vars) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    const PARTS: &[(&str, &str)] = &[("DB_HOST", "parts.example"), ("DB_PASSWORD", "partpw")];

    #[test]
    fn nothing_set_is_not_configured_with_reason() {
        let reason = not_configured(&[]);
        assert!(
            reason.contains("DB_CONNECTION_STRING is not set"),
            "{reason}"
        );
        assert!(reason.contains("DB_HOST is not set"), "{reason}");
    }

    #[test]
    fn blank_values_count_as_unset() {
        let reason = not_configured(&[("DB_CONNECTION_STRING", "  "), ("DB_PORT", "")]);
        assert!(
            reason.contains("DB_CONNECTION_STRING is not set"),
            "{reason}"
        );
    }

    #[test]
    fn string_beats_parts() {
        let mut vars = PARTS.to_vec();
        vars.push((
            "DB_CONNECTION_STRING",
            "postgres://s:pw@string.example:6000/sdb",
        ));
        let c = configured(&vars);
        assert_eq!(c.source(), ConfigSource::ConnectionString);
        assert_eq!(c.hosts()[0].host, "string.example");
        assert_eq!(c.hosts()[0].port, 6000);
        assert_eq!(c.dbname(), "sdb");
        assert_eq!(c.user(), "s");
    }

    #[test]
    fn both_schemes_accepted() {
        for s in [
            "postgres://u@h/db",
            "postgresql://u@h/db",
            "PostgreSQL://u@h/db",
        ] {
            let c = configured(&[("DB_CONNECTION_STRING", s)]);
            assert_eq!(c.dbname(), "db", "{s}");
        }
    }

    #[test]
    fn other_scheme_falls_through_to_parts() {
        let mut vars = PARTS.to_vec();
        vars.push(("DB_CONNECTION_STRING", "mysql://u:p@h/db"));
        let c = configured(&vars);
        assert_eq!(c.source(), ConfigSource::Parts);
        assert_eq!(c.hosts()[0].host, "parts.example");

        let reason = not_configured(&[("DB_CONNECTION_STRING", "mysql://u:p@h/db")]);
        assert!(
            reason.contains("does not start with postgres://"),
            "{reason}"
        );
    }

    #[test]
    fn placeholder_in_string_means_not_configured() {
        let reason = not_configured(&[(
            "DB_CONNECTION_STRING",
            "postgres://your_user:your_password@localhost/pronghorn",
        )]);
        assert!(
            reason.contains("DB_CONNECTION_STRING holds a placeholder"),
            "{reason}"
        );
        assert!(!reason.contains("your_password"), "{reason}");
    }

    #[test]
    fn placeholder_string_falls_through_to_parts() {
        let mut vars = PARTS.to_vec();
        vars.push(("DB_CONNECTION_STRING", "postgres://your_user@h/db"));
        assert_eq!(configured(&vars).source(), ConfigSource::Parts);
    }

    #[test]
    fn placeholder_password_means_not_configured() {
        let reason = not_configured(&[("DB_HOST", "h"), ("DB_PASSWORD", "your_password")]);
        assert!(
            reason.contains("DB_PASSWORD holds a placeholder"),
            "{reason}"
        );
        assert!(!reason.contains("your_password"), "{reason}");
    }

    #[test]
    fn empty_password_with_parts_means_not_configured() {
        let reason = not_configured(&[("DB_HOST", "h"), ("DB_PASSWORD", "")]);
        assert!(reason.contains("DB_PASSWORD is empty"), "{reason}");
        let reason = not_configured(&[("DB_HOST", "h")]);
        assert!(reason.contains("DB_PASSWORD is empty"), "{reason}");
    }

    #[test]
    fn parts_defaults() {
        let c = configured(PARTS);
        assert_eq!(c.hosts()[0].port, 5432);
        assert_eq!(c.dbname(), "pronghorn");
        assert_eq!(c.user(), "postgres");
        assert_eq!(c.ssl_mode(), SslMode::Prefer);
        assert_eq!(c.pool(), PoolSettings::default());
        assert_eq!(c.application_name(), "pronghorn");
        assert_eq!(c.slow_call_threshold(), Duration::from_millis(500));
        assert!(!c.auto_migrate());
        assert_eq!(
            c.redacted_target(),
            "postgres://postgres:***@parts.example:5432/pronghorn"
        );
    }

    #[test]
    fn parts_all_set() {
        let c = configured(&[
            ("DB_HOST", "db"),
            ("DB_PORT", "6543"),
            ("DB_NAME", "app"),
            ("DB_USER", "appuser"),
            ("DB_PASSWORD", "pw"),
            ("APP_NAME", "my-api"),
            ("DB_POOL_MIN", "1"),
            ("DB_POOL_MAX", "4"),
            ("DB_POOL_IDLE_TIMEOUT", "1000"),
            ("DB_POOL_CONNECTION_TIMEOUT", "250"),
            ("DB_SLOW_QUERY_MS", "20"),
            ("DB_AUTO_MIGRATE", "true"),
        ]);
        assert_eq!(c.redacted_target(), "postgres://appuser:***@db:6543/app");
        assert_eq!(c.application_name(), "my-api");
        assert_eq!(
            c.pool(),
            PoolSettings {
                min_idle: 1,
                max_size: 4,
                idle_timeout: Duration::from_millis(1000),
                connection_timeout: Duration::from_millis(250),
            }
        );
        assert_eq!(c.slow_call_threshold(), Duration::from_millis(20));
        assert!(c.auto_migrate());
        let pg = c.to_pg_config();
        assert_eq!(pg.get_application_name(), Some("my-api"));
        assert_eq!(pg.get_password(), Some(&b"pw"[..]));
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_millis(250)));
    }

    #[test]
    fn db_ssl_true_means_require() {
        for v in ["true", "1", "require", "TRUE"] {
            let mut vars = PARTS.to_vec();
            vars.push(("DB_SSL", v));
            assert_eq!(configured(&vars).ssl_mode(), SslMode::Require, "{v}");
        }
        let c = configured(&[
            ("DB_CONNECTION_STRING", "postgres://u@h/db"),
            ("DB_SSL", "true"),
        ]);
        assert_eq!(c.ssl_mode(), SslMode::Require);
        let c = configured(&[
            ("DB_CONNECTION_STRING", "postgres://u@h/db"),
            ("DB_SSL", "false"),
        ]);
        assert_eq!(c.ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn sslmode_in_string_beats_db_ssl() {
        let c = configured(&[
            ("DB_CONNECTION_STRING", "postgres://u@h/db?sslmode=disable"),
            ("DB_SSL", "true"),
        ]);
        assert_eq!(c.ssl_mode(), SslMode::Disable);
        let c = configured(&[
            (
                "DB_CONNECTION_STRING",
                "postgres://u@h/db?sslmode=verify-full",
            ),
            ("DB_SSL", "false"),
        ]);
        assert_eq!(c.ssl_mode(), SslMode::VerifyFull);
    }

    #[test]
    fn percent_encoded_password_decodes() {
        let c = configured(&[("DB_CONNECTION_STRING", "postgres://u:p%40ss%2Fw%3Ard@h/db")]);
        assert_eq!(c.password.as_ref().map(|p| p.expose()), Some("p@ss/w:rd"));
        assert_eq!(c.to_pg_config().get_password(), Some(&b"p@ss/w:rd"[..]));
    }

    #[test]
    fn ipv6_hosts() {
        let c = configured(&[("DB_CONNECTION_STRING", "postgres://u:pw@[::1]:5433/db")]);
        assert_eq!(c.hosts()[0].host, "::1");
        assert_eq!(c.hosts()[0].port, 5433);
        assert_eq!(c.redacted_target(), "postgres://u:***@[::1]:5433/db");

        let c = configured(&[("DB_HOST", "[2001:db8::5]"), ("DB_PASSWORD", "pw")]);
        assert_eq!(c.hosts()[0].host, "2001:db8::5");
        let c = configured(&[("DB_HOST", "2001:db8::5"), ("DB_PASSWORD", "pw")]);
        assert_eq!(
            c.redacted_target(),
            "postgres://postgres:***@[2001:db8::5]:5432/pronghorn"
        );
    }

    #[test]
    fn multi_host_string() {
        let c = configured(&[(
            "DB_CONNECTION_STRING",
            "postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write",
        )]);
        assert_eq!(c.hosts().len(), 2);
        assert_eq!(c.target_session_attrs(), TargetSessionAttrs::ReadWrite);
        assert_eq!(c.redacted_target(), "postgres://u@h1:5432,h2:5433/db");
    }

    #[test]
    fn unknown_sslmode_is_an_error_naming_the_variable() {
        let e = error(&[(
            "DB_CONNECTION_STRING",
            "postgres://u@h/db?sslmode=sometimes",
        )]);
        assert_eq!(e.variable, "DB_CONNECTION_STRING");
        assert!(e.problem.contains("unknown sslmode"), "{}", e.problem);
        let mut vars = PARTS.to_vec();
        vars.push(("DB_SSL", "sometimes"));
        assert_eq!(error(&vars).variable, "DB_SSL");
    }

    #[test]
    fn pool_max_zero_is_an_error() {
        let e = error(&[("DB_POOL_MAX", "0")]);
        assert_eq!(e.variable, "DB_POOL_MAX");
        assert_eq!(
            e.to_string(),
            "invalid configuration: DB_POOL_MAX: must be at least 1, got 0"
        );
    }

    #[test]
    fn port_abc_is_an_error() {
        let mut vars = PARTS.to_vec();
        vars.push(("DB_PORT", "abc"));
        let e = error(&vars);
        assert_eq!(e.variable, "DB_PORT");
        assert!(
            e.problem.contains("'abc' is not a port number"),
            "{}",
            e.problem
        );
    }

    #[test]
    fn min_above_max_is_an_error() {
        let e = error(&[("DB_POOL_MIN", "5"), ("DB_POOL_MAX", "3")]);
        assert_eq!(e.variable, "DB_POOL_MIN");
        assert!(e.problem.contains("above DB_POOL_MAX (3)"), "{}", e.problem);
        // An unset minimum follows a smaller maximum.
        let mut vars = PARTS.to_vec();
        vars.push(("DB_POOL_MAX", "1"));
        assert_eq!(configured(&vars).pool().min_idle, 1);
    }

    #[test]
    fn other_malformed_values_name_their_variable() {
        let cases: &[(&str, &str)] = &[
            ("DB_POOL_MIN", "-1"),
            ("DB_POOL_IDLE_TIMEOUT", "soon"),
            ("DB_POOL_CONNECTION_TIMEOUT", "0"),
            ("DB_SLOW_QUERY_MS", "1.5"),
            ("DB_AUTO_MIGRATE", "maybe"),
        ];
        for (var, value) in cases {
            let e = error(&[(var, value)]);
            assert_eq!(e.variable, *var, "{value}");
        }
        for s in [
            "postgres://u@h:abc/db",
            "postgres:///db",
            "postgres://u@h/db?colour=blue",
            "postgres://u@h/db?connect_timeout=x",
        ] {
            assert_eq!(
                error(&[("DB_CONNECTION_STRING", s)]).variable,
                "DB_CONNECTION_STRING",
                "{s}"
            );
        }
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        let c = configured(&[("DB_CONNECTION_STRING", "postgres://u:s3cretpw@h:1/x")]);
        let all = format!(
            "{c:?} {c} {:?}",
            Configuration::Configured(Box::new(c.clone()))
        );
        assert!(!all.contains("s3cretpw"), "{all}");
        assert!(all.contains("postgres://u:***@h:1/x"), "{all}");
        let c = configured(&[("DB_HOST", "h"), ("DB_PASSWORD", "p4rtsecret")]);
        let all = format!("{c:?} {c}");
        assert!(!all.contains("p4rtsecret"), "{all}");
        let e = error(&[("DB_CONNECTION_STRING", "postgres://u:s3cretpw@h:bad/x")]);
        assert!(!format!("{e} {e:?}").contains("s3cretpw"));
    }

    #[test]
    fn read_replicas_parse_with_the_primary_rules() {
        let c = configured(&[
            ("DB_CONNECTION_STRING", "postgres://u:pw@primary/db"),
            (
                "DB_READ_REPLICA_URLS",
                "postgres://r:s3cret@replica1:5433/db, postgresql://r@h1:1,h2:2/db?sslmode=disable,postgres://your_user@x/db",
            ),
            ("DB_REPLICA_MAX_LAG_MS", "1500"),
        ]);
        let targets: Vec<String> = c.replicas().iter().map(|r| r.redacted_target()).collect();
        assert_eq!(
            targets,
            vec![
                "postgres://r:***@replica1:5433/db",
                "postgres://r@h1:1,h2:2/db"
            ]
        );
        assert_eq!(c.replicas()[1].ssl_mode(), SslMode::Disable);
        assert_eq!(c.replica_max_lag(), Duration::from_millis(1500));
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = configured(PARTS);
        assert!(c.replicas().is_empty());
        assert_eq!(c.replica_max_lag(), Duration::from_millis(5000));
        let mut vars = PARTS.to_vec();
        vars.push(("DB_READ_REPLICA_URLS", "postgres://r@h:bad/db"));
        assert_eq!(error(&vars).variable, "DB_READ_REPLICA_URLS");
        let mut vars = PARTS.to_vec();
        vars.push(("DB_READ_REPLICA_URLS", "mysql://r@h/db"));
        assert_eq!(error(&vars).variable, "DB_READ_REPLICA_URLS");
        let mut vars = PARTS.to_vec();
        vars.push(("DB_REPLICA_MAX_LAG_MS", "soon"));
        assert_eq!(error(&vars).variable, "DB_REPLICA_MAX_LAG_MS");
    }

    #[test]
    fn keepalives_and_tcp_user_timeout_are_set() {
        // A server that vanishes without closing the socket must surface as
        // an error, not as a connection that waits forever.
        let pg = configured(PARTS).to_pg_config();
        assert!(pg.get_keepalives());
        assert_eq!(pg.get_keepalives_idle(), Duration::from_secs(10));
        assert_eq!(pg.get_keepalives_interval(), Some(Duration::from_secs(5)));
        assert_eq!(pg.get_keepalives_retries(), Some(3));
        assert_eq!(pg.get_tcp_user_timeout(), Some(&Duration::from_secs(30)));
        let mut vars = PARTS.to_vec();
        vars.push(("DB_KEEPALIVES_IDLE", "1000"));
        vars.push(("DB_TCP_USER_TIMEOUT", "2500"));
        let pg = configured(&vars).to_pg_config();
        assert_eq!(pg.get_keepalives_idle(), Duration::from_secs(1));
        assert_eq!(pg.get_keepalives_interval(), Some(Duration::from_secs(1)));
        assert_eq!(
            pg.get_tcp_user_timeout(),
            Some(&Duration::from_millis(2500))
        );
        let mut vars = PARTS.to_vec();
        vars.push(("DB_TCP_USER_TIMEOUT", "5"));
        assert_eq!(error(&vars).variable, "DB_TCP_USER_TIMEOUT");
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_millis(5000)));
    }

    #[test]
    fn string_without_password_or_db() {
        let c = configured(&[("DB_CONNECTION_STRING", "postgres://postgres@127.0.0.1:5432")]);
        assert_eq!(c.dbname(), "postgres");
        assert_eq!(
            c.redacted_target(),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }

    #[test]
    fn database_url_is_the_last_fallback() {
        let url = (
            "DATABASE_URL",
            "postgres://cli:clipw@cli.example:6543/clidb",
        );
        let c = configured(&[url]);
        assert_eq!(c.source(), ConfigSource::DatabaseUrl);
        assert_eq!(
            c.redacted_target(),
            "postgres://cli:***@cli.example:6543/clidb"
        );
        // The crate's own variables win over it.
        let c = configured(&[
            url,
            ("DB_CONNECTION_STRING", "postgres://own@own.example/own"),
        ]);
        assert_eq!(c.source(), ConfigSource::ConnectionString);
        let mut with_parts = PARTS.to_vec();
        with_parts.push(url);
        assert_eq!(configured(&with_parts).source(), ConfigSource::Parts);
        // Its own problems are reasons or errors naming it.
        let reason = not_configured(&[("DATABASE_URL", "postgres://u:your_password@h/db")]);
        assert!(
            reason.contains("DATABASE_URL holds a placeholder"),
            "{reason}"
        );
        let reason = not_configured(&[("DATABASE_URL", "mysql://u@h/db")]);
        assert!(
            reason.contains("DATABASE_URL does not start with postgres://"),
            "{reason}"
        );
        assert!(not_configured(&[]).contains("DATABASE_URL is not set"));
        let e = error(&[("DATABASE_URL", "postgres://u:secretpw@h:notaport/db")]);
        assert_eq!(e.variable, "DATABASE_URL");
        assert!(!e.to_string().contains("secretpw"), "{e}");
    }
}
