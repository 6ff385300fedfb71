//! Reading the variables: the process environment first, then `.env` for
//! what the environment leaves unset.

use super::*;

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
}

/// Describes a `.env` failure without repeating the file's text (a line
/// that does not parse may hold a password).
pub(super) fn dotenv_error(e: dotenvy::Error) -> ConfigError {
    let problem = match e {
        dotenvy::Error::LineParse(_, at) => {
            format!("a line does not parse (at character {at}); check its quotes")
        }
        dotenvy::Error::Io(io) => format!("cannot be read: {io}"),
        _ => "cannot be read".to_owned(),
    };
    ConfigError::new(".env", problem)
}
