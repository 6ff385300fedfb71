//! The rules that turn the variables into a [`Configuration`]: which
//! source wins, what counts as unset, and the error for a malformed value
//! (the module docs of `config` list them in order).

use super::*;

impl DbConfig {
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
                    ..base.settings(ConfigSource::Parts)
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
}

#[derive(Clone)]
pub(super) struct Base {
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

impl Base {
    /// A configuration holding the settings read beside the target (pool,
    /// timings, hashing, login, TCP), for `source`; its target fields are
    /// placeholders that each source overwrites, and its replicas are added
    /// by [`with_replicas`].
    fn settings(&self, source: ConfigSource) -> DbConfig {
        DbConfig {
            user: String::new(),
            password: None,
            hosts: Vec::new(),
            dbname: String::new(),
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
            application_name: String::new(),
            target_session_attrs: TargetSessionAttrs::Any,
            options: None,
            connect_timeout: None,
            pool: self.pool,
            slow_call: self.slow_call,
            auto_migrate: self.auto_migrate,
            hash_concurrency: self.hash_concurrency,
            hash_scheme: self.hash_scheme,
            login: self.login,
            transaction_retries: self.transaction_retries,
            tcp: self.tcp,
            replicas: Vec::new(),
            replica_max_lag: Duration::ZERO,
            replica_probe: ReplicaProbeSettings::default(),
            source,
        }
    }
}

/// Adds the read replicas of `DB_READ_REPLICA_URLS` (comma-separated
/// strings, each under the primary string's rules; a string holding a
/// `your_` placeholder is skipped) and `DB_REPLICA_MAX_LAG_MS` (default 5000).
pub(super) fn with_replicas(
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

/// Splits a comma-separated list of connection strings. A comma starts a
/// new entry only when a scheme follows it, so that a multi-host string
/// (`postgres://u@h1:5432,h2:5433/db`) stays whole.
pub(super) fn split_urls(list: &str) -> Vec<String> {
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

pub(super) fn default_app_name() -> String {
    "pronghorn".to_owned()
}

pub(super) fn from_string(var: &'static str, s: &str, base: Base) -> Result<DbConfig, ConfigError> {
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
    let settings = base.settings(ConfigSource::ConnectionString);
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
        ..settings
    })
}

/// A connection-string variable's value when it is one to use; otherwise
/// why not (unset, a `your_` placeholder, or no `postgres://` scheme).
pub(super) fn usable_string(var: &str, value: Option<String>) -> Result<String, String> {
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

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_u64(var: &'static str, v: &str) -> Result<u64, ConfigError> {
    v.trim().parse::<u64>().map_err(|_| {
        ConfigError::new(
            var,
            format!("'{}' is not a non-negative whole number", v.trim()),
        )
    })
}
