//! Property test: over arbitrary values of every variable `DbConfig` reads,
//! reading the configuration never panics, and every outcome is one of the
//! three: configured, not configured (with a reason), or an error naming a
//! variable it reads.

use pronghorn_db::VARIABLES;
use pronghorn_db::{Configuration, DbConfig};
use proptest::prelude::*;
use std::collections::HashMap;

/// Values that reach the interesting branches: numbers, booleans, modes,
/// URLs with odd parts, placeholders, unicode, NUL bytes, and noise.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("  ".to_owned()),
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("true".to_owned()),
        Just("require".to_owned()),
        Just("verify-full".to_owned()),
        Just("your_password".to_owned()),
        Just("postgres://u:p@h:5432/db".to_owned()),
        Just("postgresql://u@[::1]:5433,h2/db?sslmode=verify-ca".to_owned()),
        Just("postgres://u:p@h:99999/db".to_owned()),
        Just("postgres://@/".to_owned()),
        Just("postgres://u@h/db?sslmode".to_owned()),
        Just("postgres://u:%zz@h/db".to_owned()),
        Just("mysql://u@h/db".to_owned()),
        "[0-9]{1,6}",
        "postgres(ql)?://[a-z%@:/\\[\\],?=&.0-9]{0,40}",
        "\\PC{0,30}",
        any::<String>(),
    ]
}

/// Connection strings whose password is the sentinel, well formed or not.
fn url_with_sentinel() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("postgres://u:Zq9sentinelpw@h:5432/db".to_owned()),
        Just("postgresql://u:Zq9sentinel%2Fpw@[::1]:5433,h2/db?sslmode=require".to_owned()),
        Just("postgres://u:Zq9sentinel@h:99999/db".to_owned()),
        Just("postgres://u:Zq9sentinel%zz@h/db".to_owned()),
        Just("postgres://u:Zq9sentinelpw@h/db?sslmode=bogus".to_owned()),
        Just("postgres://u:Zq9sentinelpw@h/db?target_session_attrs=x".to_owned()),
        Just("postgres://u:Zq9sentinelpw@h/db,postgres://v:Zq9sentinelx@h2/db".to_owned()),
        "postgres(ql)?://[a-z]{1,4}:Zq9sentinel[a-z0-9%@:/]{0,12}@[a-z0-9.:\\[\\]]{0,12}(/[a-z]{0,6})?(\\?[a-z_=&-]{0,20})?",
    ]
}

/// The variables that hold connection strings.
const URL_VARIABLES: [&str; 3] = [
    "DB_CONNECTION_STRING",
    "DB_READ_REPLICA_URLS",
    "DATABASE_URL",
];

fn vars() -> impl Strategy<Value = HashMap<&'static str, String>> {
    let strategies: Vec<_> = VARIABLES
        .iter()
        .map(|k| {
            if URL_VARIABLES.contains(k) {
                proptest::option::of(prop_oneof![value(), url_with_sentinel()]).boxed()
            } else {
                proptest::option::of(value()).boxed()
            }
        })
        .collect();
    strategies.prop_map(|values| {
        VARIABLES
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_environment_gives_one_of_three_outcomes(mut env in vars()) {
        // Mark a usable password so that any leak of it can be seen.
        if let Some(pw) = env.get_mut("DB_PASSWORD") {
            if !pw.trim().is_empty() && !pw.contains("your_") {
                *pw = format!("Zq9sentinel{pw}");
            }
        }
        let outcome = std::panic::catch_unwind(|| {
            DbConfig::from_lookup(|k| env.get(k).cloned())
        });
        let outcome = outcome.map_err(|_| TestCaseError::fail("DbConfig panicked"))?;
        match outcome {
            Ok(Configuration::Configured(c)) => {
                // A configured target always renders, without a password
                // (whether it came from DB_PASSWORD or the string).
                let shown = format!("{c} {c:?}");
                prop_assert!(shown.contains("postgres://"));
                prop_assert!(!shown.contains("Zq9sentinel"), "password shown: {shown}");
            }
            Ok(Configuration::NotConfigured { reason }) => {
                prop_assert!(!reason.is_empty());
                prop_assert!(!reason.contains("Zq9sentinel"), "password in the reason: {reason}");
            }
            Err(e) => {
                prop_assert!(
                    VARIABLES.contains(&e.variable),
                    "the error names {:?}, which is not a variable DbConfig reads", e.variable
                );
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains("Zq9sentinel"), "password in the error: {shown}");
            }
        }
    }
}
