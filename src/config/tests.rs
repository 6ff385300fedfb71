//! The configuration rules, each checked on variables given directly.

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

#[test]
fn a_zero_probe_interval_or_timeout_set_in_code_is_taken_as_1ms() {
    let config = configured(&[("DB_CONNECTION_STRING", "postgres://u@h/d")]).with_replica_probe(
        ReplicaProbeSettings {
            interval: Duration::ZERO,
            timeout: Duration::ZERO,
        },
    );
    let probe = config.replica_probe();
    assert_eq!(probe.interval, Duration::from_millis(1));
    assert_eq!(probe.timeout, Duration::from_millis(1));
    // A figure stays trusted for a while, so the replica can be used.
    assert_eq!(probe.trusted_for(), Duration::from_millis(4));
}
