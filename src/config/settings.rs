//! The settings beside the connection target: TLS (`DB_SSL`, `sslmode`),
//! the pool, TCP keepalives, login throttling and replica probes, each with
//! its reader.

use super::*;

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
pub(super) fn read_login(
    get: &mut impl FnMut(&str) -> Option<String>,
) -> Result<LoginSettings, ConfigError> {
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
pub(super) fn read_replica_probe(
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
        let at_least_1ms = |d: Duration| d.max(Duration::from_millis(1));
        self.replica_probe = ReplicaProbeSettings {
            interval: at_least_1ms(probe.interval),
            timeout: at_least_1ms(probe.timeout),
        };
        self
    }
}

pub(super) fn parse_db_ssl(v: &str) -> Result<SslMode, String> {
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

pub(super) fn read_pool(
    get: &mut impl FnMut(&str) -> Option<String>,
) -> Result<PoolSettings, ConfigError> {
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
