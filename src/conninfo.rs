//! Parsing of `postgres://` / `postgresql://` connection strings into their
//! parts, and their redacted display.
//!
//! Written by hand because the URL crates reject multi-host authorities
//! (`h1:5432,h2:5433`) and `tokio_postgres::Config` rejects the `verify-ca` and
//! `verify-full` ssl modes that this crate supports.

use percent_encoding::percent_decode_str;
use std::fmt;

/// One host of a connection target: a name, an IP address or a socket folder.
#[derive(Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name, IP address (IPv6 without brackets) or Unix socket folder.
    pub host: String,
    /// The port; 5432 when the string gives none.
    pub port: u16,
}

impl fmt::Debug for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The parts of a connection string. The password is kept apart by the
/// caller, which wraps it in a redacting type; `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    pub hosts: Vec<HostPort>,
    pub dbname: Option<String>,
    /// Query parameters in their order, decoded.
    pub params: Vec<(String, String)>,
}

impl std::fmt::Debug for ParsedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedUrl")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("hosts", &self.hosts)
            .field("dbname", &self.dbname)
            .field("params", &self.params)
            .finish()
    }
}

/// Why a connection string could not be parsed. The message never repeats the
/// string itself, which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

fn decode(part: &str, what: &str) -> Result<String, UrlError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| UrlError(format!("the {what} is not valid percent-encoded UTF-8")))
}

/// Returns the part after the scheme when `s` starts with `postgres://` or
/// `postgresql://` (any letter case), else `None`.
pub fn strip_scheme(s: &str) -> Option<&str> {
    for scheme in ["postgresql://", "postgres://"] {
        if s.len() >= scheme.len()
            && s.is_char_boundary(scheme.len())
            && s[..scheme.len()].eq_ignore_ascii_case(scheme)
        {
            return Some(&s[scheme.len()..]);
        }
    }
    None
}

/// Parses a connection string that starts with a postgres scheme.
pub fn parse(url: &str) -> Result<ParsedUrl, UrlError> {
    let rest = strip_scheme(url.trim())
        .ok_or_else(|| UrlError("it does not start with postgres:// or postgresql://".into()))?;
    if rest.contains('#') {
        return Err(UrlError("a fragment ('#') is not allowed".into()));
    }
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // The last '@' ends the user info, so that an unencoded '@' or '/' in a
    // password still parses the way the user meant it.
    let (userinfo, hostpath) = match before_query.rfind('@') {
        Some(at) => (Some(&before_query[..at]), &before_query[at + 1..]),
        None => (None, before_query),
    };
    let (hostlist, path) = match hostpath.find('/') {
        Some(slash) => (&hostpath[..slash], Some(&hostpath[slash + 1..])),
        None => (hostpath, None),
    };

    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((u, p)) => (Some(decode(u, "user name")?), Some(decode(p, "password")?)),
            None => (Some(decode(info, "user name")?), None),
        },
    };
    let user = user.filter(|u| !u.is_empty());

    let mut hosts = Vec::new();
    if !hostlist.is_empty() {
        for item in hostlist.split(',') {
            hosts.push(parse_host(item)?);
        }
    }

    let dbname = match path {
        Some(p) if !p.is_empty() => {
            if p.contains('/') {
                return Err(UrlError("the database name contains '/'".into()));
            }
            Some(decode(p, "database name")?)
        }
        _ => None,
    };

    let mut params = Vec::new();
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| UrlError("a parameter has no value (name=value)".into()))?;
            let key = decode(k, "parameter name")?;
            let value = decode(v, "parameter value")?;
            params.push((key, value));
        }
    }

    Ok(ParsedUrl {
        user,
        password,
        hosts,
        dbname,
        params,
    })
}

fn parse_host(item: &str) -> Result<HostPort, UrlError> {
    if item.is_empty() {
        return Err(UrlError("a host in the host list is empty".into()));
    }
    let (host, port) = if let Some(inner) = item.strip_prefix('[') {
        let close = inner
            .find(']')
            .ok_or_else(|| UrlError("an IPv6 host lacks its closing ']'".into()))?;
        let host = &inner[..close];
        let after = &inner[close + 1..];
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| UrlError("unexpected text after an IPv6 host".into()))?,
            ),
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError("a bracketed host is not an IPv6 address".into()));
        }
        (host.to_owned(), port)
    } else {
        match item.rsplit_once(':') {
            Some((h, p)) => (decode(h, "host")?, Some(p)),
            None => (decode(item, "host")?, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError("a host in the host list is empty".into()));
    }
    let port = match port {
        None | Some("") => 5432,
        Some(p) => {
            parse_port(p).map_err(|_| UrlError("a port is not a number from 1 to 65535".into()))?
        }
    };
    Ok(HostPort { host, port })
}

/// Parses a TCP port: 1-65535.
pub fn parse_port(p: &str) -> Result<u16, String> {
    match p.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("'{p}' is not a port number (1-65535)")),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_url() {
        let p = parse("postgres://app:pw@db.example.com:6543/shop?sslmode=require").unwrap();
        assert_eq!(p.user.as_deref(), Some("app"));
        assert_eq!(p.password.as_deref(), Some("pw"));
        assert_eq!(
            p.hosts,
            vec![HostPort {
                host: "db.example.com".into(),
                port: 6543
            }]
        );
        assert_eq!(p.dbname.as_deref(), Some("shop"));
        assert_eq!(p.params, vec![("sslmode".into(), "require".into())]);
    }

    #[test]
    fn password_with_unencoded_at_and_slash() {
        let p = parse("postgresql://u:p@ss/w@h/db").unwrap();
        assert_eq!(p.password.as_deref(), Some("p@ss/w"));
        assert_eq!(p.hosts[0].host, "h");
        assert_eq!(p.dbname.as_deref(), Some("db"));
    }

    #[test]
    fn ipv6_and_multi_host() {
        let p = parse("postgres://u@[::1]:5433,[fe80::2],h3:7/db").unwrap();
        assert_eq!(p.hosts[0].host, "::1");
        assert_eq!(p.hosts[0].port, 5433);
        assert_eq!(p.hosts[1].host, "fe80::2");
        assert_eq!(p.hosts[1].port, 5432);
        assert_eq!(p.hosts[2].to_string(), "h3:7");
        assert_eq!(p.hosts[0].to_string(), "[::1]:5433");
    }

    #[test]
    fn rejects_bad_ports_and_brackets() {
        assert!(parse("postgres://u@h:abc/db").is_err());
        assert!(parse("postgres://u@h:0/db").is_err());
        assert!(parse("postgres://u@h:70000/db").is_err());
        assert!(parse("postgres://u@[::1/db").is_err());
        assert!(parse("postgres://u@[nothost]:5432/db").is_err());
        assert!(parse("postgres://u@h,/db").is_err());
        assert!(parse("postgres://u@h/db?novalue").is_err());
    }

    #[test]
    fn errors_never_repeat_the_url() {
        // An unencoded `?`, `#` or `/` in a password moves parts of it into
        // the port, the host or the parameters; no error may echo them.
        for url in [
            "postgres://u:sekrit@h:port/db",
            "postgres://app:abc?sekrit@db/app",
            "postgres://app:ab?sekrit=1@db/app",
            "postgres://app:sekrit?x@[zz/db",
            "postgres://u:a?sekrit&b@h/db",
        ] {
            if let Err(err) = parse(url) {
                assert!(!err.0.contains("sekrit"), "{url}: {}", err.0);
            }
        }
        let p = parse("postgres://u:sekrit@h/db").unwrap();
        assert!(!format!("{p:?}").contains("sekrit"));
    }
}
