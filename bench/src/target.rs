//! Where the contenders connect: the server of `BENCH_DATABASE_URL` and one
//! database on it, rendered as the one URL every contender parses (TLS off for
//! all of them alike).

use anyhow::{bail, Context, Result};
use tokio_postgres::config::Host;

/// The admin URL used when `BENCH_DATABASE_URL` is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database on the benchmark server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// TCP host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// Password, when the server asks for one.
    pub password: Option<String>,
    /// Database name.
    pub dbname: String,
}

impl Target {
    /// Reads the admin connection from `BENCH_DATABASE_URL`, or
    /// [`DEFAULT_ADMIN_URL`].
    ///
    /// Fails when the URL does not parse or names a Unix socket (the
    /// counting proxy of [`crate::wire`] speaks TCP only).
    pub fn admin_from_env() -> Result<Target> {
        let url = std::env::var("BENCH_DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned());
        Target::parse(&url).with_context(|| "BENCH_DATABASE_URL".to_owned())
    }

    fn parse(url: &str) -> Result<Target> {
        let config: tokio_postgres::Config = url.parse().context("not a PostgreSQL URL")?;
        let host = match config.get_hosts() {
            [Host::Tcp(host)] => host.clone(),
            [] => "localhost".to_owned(),
            _ => bail!("needs exactly one TCP host"),
        };
        let password = config
            .get_password()
            .map(|p| String::from_utf8(p.to_vec()).context("the password is not UTF-8"))
            .transpose()?;
        Ok(Target {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            user: config.get_user().unwrap_or("postgres").to_owned(),
            password,
            dbname: config.get_dbname().unwrap_or("postgres").to_owned(),
        })
    }

    /// The same server, another database.
    pub fn database(&self, dbname: &str) -> Target {
        Target {
            dbname: dbname.to_owned(),
            ..self.clone()
        }
    }

    /// The same database reached through another TCP endpoint (the proxy).
    pub fn via(&self, host: &str, port: u16) -> Target {
        Target {
            host: host.to_owned(),
            port,
            ..self.clone()
        }
    }

    /// `postgres://user[:password]@host:port/dbname?sslmode=disable`.
    pub fn url(&self) -> String {
        let secret = self
            .password
            .as_deref()
            .map(|p| format!(":{}", encode(p)))
            .unwrap_or_default();
        format!(
            "postgres://{}{secret}@{}:{}/{}?sslmode=disable",
            encode(&self.user),
            self.host,
            self.port,
            encode(&self.dbname)
        )
    }

    /// `host:port`, for a raw TCP connection.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A plain client of this database; its connection runs on a spawned
    /// task.
    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {}/{}", self.address(), self.dbname))?;
        tokio::spawn(connection);
        Ok(client)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_round_trip_through_the_driver() {
        let target = Target::parse("postgres://bench:p%40ss%20w@db.local:6543/main").unwrap();
        assert_eq!(target.password.as_deref(), Some("p@ss w"));
        let again = Target::parse(&target.database("other db").url()).unwrap();
        assert_eq!(again, target.database("other db"));
    }
}
