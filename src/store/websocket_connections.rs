//! WebSocket connections: the [`WebsocketStore`] part of the store, its
//! input type, and its implementations for [`PgStore`] and
//! [`DisabledStore`](crate::DisabledStore).

use super::pg::ReadFrom;
use super::PgStore;
use crate::error::{Error, Result};
use crate::models::NewWebsocketConnectionRow;
use crate::models::{ActiveWebsocketConnection, WebsocketConnectionStats};
use crate::models::{NewWebsocketConnection, UserId, WebsocketConnection};
use crate::observe::observed;
use crate::page::{Page, PageRequest};
use crate::repo::websocket_connections as repo;
use crate::validate;
use ipnet::IpNet;
use pronghorn_db_macros::store_part;
use std::net::IpAddr;

/// `websocket_connections.connection_id` is VARCHAR(64).
pub const CONNECTION_ID_MAX: usize = 64;
/// User agents are cut to this many characters before they are stored.
pub const USER_AGENT_MAX: usize = 512;
/// Longest block reason.
pub const REASON_MAX: usize = 1000;
/// The largest metadata object, in bytes of its JSON text (64 KiB).
pub const METADATA_MAX_BYTES: usize = 64 << 10;
/// The most days [`WebsocketStore::cleanup_websocket_connections`] keeps
/// (100 years; larger values would reach outside PostgreSQL's time range).
pub const CLEANUP_DAYS_MAX: i32 = 36_500;

// ---- validation -------------------------------------------------------

fn check_connection_id(value: &str) -> Result<String> {
    Ok(validate::required("connection_id", value, CONNECTION_ID_MAX)?.to_owned())
}

fn check_reason(value: &str) -> Result<String> {
    Ok(validate::required("reason", value, REASON_MAX)?.to_owned())
}

fn user_agent(value: Option<&str>) -> Option<String> {
    value.map(|ua| {
        ua.chars()
            .filter(|c| *c != '\0')
            .take(USER_AGENT_MAX)
            .collect()
    })
}

/// Checks metadata: a JSON object, no NUL character in any key or string
/// (PostgreSQL's jsonb cannot hold `\u0000`), at most
/// [`METADATA_MAX_BYTES`] of JSON text.
fn metadata(value: &serde_json::Value) -> Result<()> {
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(map) => {
                map.iter().any(|(k, v)| k.contains('\0') || has_nul(v))
            }
            _ => false,
        }
    }
    if !value.is_object() {
        return Err(Error::validation("metadata", "must be a JSON object"));
    }
    if has_nul(value) {
        return Err(Error::validation(
            "metadata",
            "must not contain a NUL character",
        ));
    }
    let size = value.to_string().len();
    if size > METADATA_MAX_BYTES {
        return Err(Error::validation(
            "metadata",
            format!("must be at most {METADATA_MAX_BYTES} bytes of JSON, got {size}"),
        ));
    }
    Ok(())
}

/// The address as it is stored: IPv4-mapped IPv6 becomes IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Every form under which `ip` may be stored: the canonical address, and
/// for IPv4 also its IPv4-mapped IPv6 form (rows written by the Node
/// template hold whatever the socket reported).
fn stored_forms(ip: IpAddr) -> Vec<IpNet> {
    match canonical(ip) {
        IpAddr::V4(v4) => vec![
            IpNet::from(IpAddr::V4(v4)),
            IpNet::from(IpAddr::V6(v4.to_ipv6_mapped())),
        ],
        v6 => vec![IpNet::from(v6)],
    }
}

fn check_days(days: i32) -> Result<i32> {
    if (0..=CLEANUP_DAYS_MAX).contains(&days) {
        Ok(days)
    } else {
        Err(Error::validation(
            "days_to_keep",
            format!("must be between 0 and {CLEANUP_DAYS_MAX}, got {days}"),
        ))
    }
}

/// A block naming an actor that does not exist is refused, as the user
/// store refuses unknown actors.
fn unknown_actor(e: Error) -> Error {
    match e {
        Error::Conflict { constraint } if constraint == "websocket_connections_blocked_by_fkey" => {
            Error::Forbidden {
                reason: "the acting user does not exist".into(),
            }
        }
        other => other,
    }
}

fn missing_user(e: Error) -> Error {
    match e {
        Error::Conflict { constraint } if constraint == "websocket_connections_user_id_fkey" => {
            Error::NotFound { entity: "user" }
        }
        other => other,
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn active_scope() -> u64 {
    crate::page::scope(&["websocket_connections", "active"])
}

/// WebSocket connections: recording them, blocking them, and monitoring.
///
/// Every method validates its input before any query runs
/// ([`Error::Validation`] naming the field). Methods naming one connection
/// fail with [`Error::NotFound`] when no row has that `connection_id`. On
/// [`DisabledStore`](crate::DisabledStore) every method fails with [`Error::Disabled`]; on any
/// store a lost connection is [`Error::Unavailable`].
#[store_part]
impl WebsocketStore for PgStore {
    /// Records an opened connection in one statement (`INSERT .. ON
    /// CONFLICT (connection_id) DO UPDATE`): a new row, or, when the id is
    /// known, the same row reopened (`connected_at` and `last_activity_at`
    /// now, `disconnected_at` cleared, user and `is_authenticated` replaced;
    /// its address, user agent, message count, block and metadata kept, as
    /// the id names one client). Returns the row.
    ///
    /// Fails with [`Error::NotFound`] (entity `user`) when the user does not
    /// exist.
    async fn websocket_connected(
        &self,
        new: NewWebsocketConnection,
    ) -> Result<WebsocketConnection> {
        observed!(self.slow(), "websocket_connected", async {
            let id = check_connection_id(&new.connection_id)?;
            let meta = new.metadata.unwrap_or_else(|| serde_json::json!({}));
            metadata(&meta)?;
            let ua = user_agent(new.user_agent.as_deref());
            let ip = new.ip.map(|ip| IpNet::from(canonical(ip)));
            let user = new.user_id;
            self.with_conn(move |conn| {
                Box::pin(async move {
                    repo::upsert(
                        conn,
                        &NewWebsocketConnectionRow {
                            connection_id: &id,
                            user_id: user,
                            ip_address: ip,
                            user_agent: ua.as_deref(),
                            is_authenticated: user.is_some(),
                            metadata: meta,
                        },
                    )
                    .await
                })
            })
            .await
            .map_err(missing_user)
        })
    }

    /// The connection with this id. Fails with [`Error::NotFound`].
    async fn websocket_connection(&self, connection_id: &str) -> Result<WebsocketConnection> {
        observed!(self.slow(), "websocket_connection", async {
            let id = check_connection_id(connection_id)?;
            self.with_conn(move |conn| Box::pin(async move { repo::find(conn, &id).await }))
                .await
        })
    }

    /// Counts one message on the connection (`message_count + 1`,
    /// `last_activity_at` now) and returns the new count.
    /// Fails with [`Error::NotFound`].
    async fn record_websocket_activity(&self, connection_id: &str) -> Result<i32> {
        observed!(self.slow(), "record_websocket_activity", async {
            let id = check_connection_id(connection_id)?;
            self.with_conn(move |conn| {
                Box::pin(async move { repo::record_activity(conn, &id).await })
            })
            .await
        })
    }

    /// Merges the top-level keys of `patch` into the connection's metadata
    /// (keys in `patch` replace existing ones; set a key to `null` to blank
    /// it) and returns the row.
    ///
    /// Fails with [`Error::Validation`] on `metadata` unless `patch` is a
    /// JSON object without NUL characters of at most
    /// [`METADATA_MAX_BYTES`]; with [`Error::NotFound`].
    async fn update_websocket_metadata(
        &self,
        connection_id: &str,
        patch: serde_json::Value,
    ) -> Result<WebsocketConnection> {
        observed!(self.slow(), "update_websocket_metadata", async {
            let id = check_connection_id(connection_id)?;
            metadata(&patch)?;
            self.with_conn(move |conn| {
                Box::pin(async move { repo::merge_metadata(conn, &id, &patch).await })
            })
            .await
        })
    }

    /// Marks the connection closed (`disconnected_at` now; a second call
    /// keeps the first time) and returns the row. Fails with
    /// [`Error::NotFound`].
    async fn websocket_disconnected(&self, connection_id: &str) -> Result<WebsocketConnection> {
        observed!(self.slow(), "websocket_disconnected", async {
            let id = check_connection_id(connection_id)?;
            self.with_conn(move |conn| Box::pin(async move { repo::disconnect(conn, &id).await }))
                .await
        })
    }

    /// Blocks one connection with a reason, on behalf of `actor`; the
    /// `blocked_at` trigger stamps the time. Returns the row.
    ///
    /// Fails with [`Error::NotFound`], or [`Error::Forbidden`] when the
    /// actor does not exist.
    async fn block_websocket_connection(
        &self,
        connection_id: &str,
        reason: &str,
        actor: UserId,
    ) -> Result<WebsocketConnection> {
        observed!(self.slow(), "block_websocket_connection", async {
            let id = check_connection_id(connection_id)?;
            let reason = check_reason(reason)?;
            self.with_conn(move |conn| {
                Box::pin(async move { repo::set_blocked(conn, &id, Some((&reason, actor))).await })
            })
            .await
            .map_err(unknown_actor)
        })
    }

    /// Blocks every recorded connection, open or closed, from `ip` (in its
    /// IPv4 and IPv4-mapped IPv6 forms alike), with a reason, on behalf of
    /// `actor`. Returns how many rows were blocked: 0 when the address never
    /// connected, in which case nothing records the block (the template
    /// keeps blocks on connection rows only; note too that
    /// [`WebsocketStore::cleanup_websocket_connections`] deletes old closed
    /// rows, blocked or not).
    ///
    /// Fails with [`Error::Forbidden`] when the actor does not exist.
    async fn block_websocket_ip(&self, ip: IpAddr, reason: &str, actor: UserId) -> Result<u64> {
        observed!(self.slow(), "block_websocket_ip", async {
            let reason = check_reason(reason)?;
            let ips = stored_forms(ip);
            self.with_conn(move |conn| {
                Box::pin(async move {
                    repo::set_blocked_ip(conn, &ips, Some((&reason, actor)))
                        .await
                        .map(count)
                })
            })
            .await
            .map_err(unknown_actor)
        })
    }

    /// Lifts the block of one connection (the trigger clears reason, actor
    /// and time) and returns the row. Fails with [`Error::NotFound`].
    async fn unblock_websocket_connection(
        &self,
        connection_id: &str,
    ) -> Result<WebsocketConnection> {
        observed!(self.slow(), "unblock_websocket_connection", async {
            let id = check_connection_id(connection_id)?;
            self.with_conn(move |conn| {
                Box::pin(async move { repo::set_blocked(conn, &id, None).await })
            })
            .await
        })
    }

    /// Lifts the block of every blocked connection from `ip` (in either
    /// form); returns how many were blocked.
    async fn unblock_websocket_ip(&self, ip: IpAddr) -> Result<u64> {
        observed!(self.slow(), "unblock_websocket_ip", async {
            let ips = stored_forms(ip);
            self.with_conn(move |conn| {
                Box::pin(async move { repo::set_blocked_ip(conn, &ips, None).await.map(count) })
            })
            .await
        })
    }

    /// Whether the connection `connection_id` is blocked, or any connection
    /// from `ip` is: pass both to check a client on each message. An unknown
    /// connection id is not blocked.
    ///
    /// Fails with [`Error::Validation`] on `connection_id` when neither is
    /// given.
    async fn is_websocket_blocked(
        &self,
        connection_id: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<bool> {
        observed!(self.slow(), "is_websocket_blocked", async {
            if connection_id.is_none() && ip.is_none() {
                return Err(Error::validation(
                    "connection_id",
                    "give a connection id, an IP address, or both",
                ));
            }
            let id = connection_id.map(check_connection_id).transpose()?;
            let ips = ip.map(stored_forms).unwrap_or_default();
            self.with_conn(move |conn| {
                Box::pin(async move { repo::is_blocked(conn, id.as_deref(), &ips).await })
            })
            .await
        })
    }

    /// Open connections (the `active_websocket_connections` view), most
    /// recently connected first, one page at a time.
    ///
    /// Fails with [`Error::Validation`] on `cursor` for a cursor that is not
    /// from this listing.
    async fn active_websocket_connections(
        &self,
        page: &PageRequest,
    ) -> Result<Page<ActiveWebsocketConnection>> {
        observed!(self.slow(), "active_websocket_connections", async {
            self.page(
                ReadFrom::Replica,
                page,
                active_scope(),
                repo::cursor_of,
                |conn, after, n| Box::pin(repo::active(conn, after, n)),
            )
            .await
        })
    }

    /// The counters of the `websocket_connection_stats` view.
    async fn websocket_stats(&self) -> Result<WebsocketConnectionStats> {
        observed!(self.slow(), "websocket_stats", async {
            self.with_read_conn(|conn| Box::pin(repo::stats(conn)))
                .await
        })
    }

    /// Deletes the connections closed more than `days_to_keep` days ago
    /// (open ones are kept whatever their age) with the SQL function
    /// `cleanup_old_websocket_connections`; returns how many it deleted.
    ///
    /// Fails with [`Error::Validation`] on `days_to_keep` unless it is in
    /// `0..=`[`CLEANUP_DAYS_MAX`].
    async fn cleanup_websocket_connections(&self, days_to_keep: i32) -> Result<u64> {
        observed!(self.slow(), "cleanup_websocket_connections", async {
            let days = check_days(days_to_keep)?;
            let deleted = self
                .with_conn(move |conn| Box::pin(repo::cleanup(conn, days)))
                .await?;
            Ok(u64::try_from(deleted).unwrap_or(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mapped_addresses_are_stored_as_ipv4_and_matched_in_both_forms() {
        let v4: IpAddr = "203.0.113.10".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.10".parse().unwrap();
        assert_eq!(canonical(mapped), v4);
        assert_eq!(stored_forms(v4), stored_forms(mapped));
        assert_eq!(stored_forms(v4).len(), 2);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(stored_forms(v6), vec![IpNet::from(v6)]);
    }

    #[test]
    fn metadata_must_be_a_storable_object() {
        assert!(metadata(&json!({"path": "/ws", "n": [1, {"a": null}]})).is_ok());
        for bad in [
            json!([1]),
            json!("x"),
            json!({"a": "b\u{0}c"}),
            json!({"a\u{0}": 1}),
            json!({"a": ["\u{0}"]}),
            json!({"big": "x".repeat(METADATA_MAX_BYTES)}),
        ] {
            assert!(
                matches!(
                    metadata(&bad),
                    Err(Error::Validation {
                        field: "metadata",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        // A backslash followed by "u0000" is ordinary text, not a NUL.
        assert!(metadata(&json!({"a": "\\u0000"})).is_ok());
    }

    #[test]
    fn user_agents_are_cleaned_not_refused() {
        assert_eq!(user_agent(Some("a\0b")).as_deref(), Some("ab"));
        assert_eq!(
            user_agent(Some(&"é".repeat(600))).map(|s| s.chars().count()),
            Some(USER_AGENT_MAX)
        );
        assert_eq!(user_agent(None), None);
    }

    #[test]
    fn cleanup_days_are_bounded() {
        assert_eq!(check_days(0).unwrap(), 0);
        assert_eq!(check_days(CLEANUP_DAYS_MAX).unwrap(), CLEANUP_DAYS_MAX);
        for bad in [-1, CLEANUP_DAYS_MAX + 1, i32::MIN, i32::MAX] {
            assert!(matches!(
                check_days(bad),
                Err(Error::Validation {
                    field: "days_to_keep",
                    ..
                })
            ));
        }
    }
}
