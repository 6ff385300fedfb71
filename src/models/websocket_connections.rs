//! The `websocket_connections` table: one row per WebSocket connection, for
//! monitoring and blocking.

use super::UserId;
use crate::schema::websocket_connections;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use std::net::IpAddr;
use uuid::Uuid;

/// One row of `websocket_connections`.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, diesel::Identifiable)]
#[diesel(table_name = websocket_connections)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct WebsocketConnection {
    /// Primary key.
    pub id: Uuid,
    /// The server's id for the connection; unique.
    pub connection_id: String,
    /// The authenticated user (set to NULL when the user is deleted).
    pub user_id: Option<UserId>,
    /// The client's address.
    pub ip_address: Option<IpNet>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// When the connection opened.
    pub connected_at: DateTime<Utc>,
    /// When it closed; `None` while it is open.
    pub disconnected_at: Option<DateTime<Utc>>,
    /// The last message or ping.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Messages received on it.
    pub message_count: i32,
    /// Whether the client authenticated.
    pub is_authenticated: bool,
    /// Whether the connection is blocked.
    pub is_blocked: bool,
    /// Why it was blocked.
    pub blocked_reason: Option<String>,
    /// When it was blocked (kept by the `ws_connection_blocked_at` trigger).
    pub blocked_at: Option<DateTime<Utc>>,
    /// Who blocked it.
    pub blocked_by: Option<UserId>,
    /// Free-form JSON (default `{}`), e.g. path and sub-protocol.
    pub metadata: Option<serde_json::Value>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (kept by the `ws_connection_updated_at` trigger).
    pub updated_at: DateTime<Utc>,
}

/// A new row of `websocket_connections`, as the repository inserts it (or,
/// when the `connection_id` exists, uses to refresh that row).
///
/// Every column the caller decides is given explicitly (a `None` is stored
/// as NULL), so every insert has the same SQL text. The times, counters and
/// block columns take their column defaults.
#[derive(Debug, Clone, diesel::Insertable)]
#[diesel(table_name = websocket_connections, treat_none_as_default_value = false)]
pub struct NewWebsocketConnectionRow<'a> {
    /// The server's id for the connection.
    pub connection_id: &'a str,
    /// The authenticated user, if any.
    pub user_id: Option<UserId>,
    /// The client's address.
    pub ip_address: Option<IpNet>,
    /// The client's `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// Whether the client authenticated.
    pub is_authenticated: bool,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
}

/// A connection that just opened (or reopened under the same id).
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebsocketConnection {
    /// The server's id for the connection (trimmed, 1 to 64 characters).
    pub connection_id: String,
    /// The authenticated user; `None` for an anonymous client. The row's
    /// `is_authenticated` is `user_id.is_some()`.
    pub user_id: Option<UserId>,
    /// The client's address. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, as dual-stack sockets report IPv4 clients) is
    /// stored as the IPv4 address.
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent` header. NUL bytes are dropped and it is cut
    /// to [`USER_AGENT_MAX`](crate::USER_AGENT_MAX) characters, since no connection should fail
    /// over a header.
    pub user_agent: Option<String>,
    /// Free-form JSON object (`{}` when `None`); see
    /// [`WebsocketStore::update_websocket_metadata`](crate::WebsocketStore::update_websocket_metadata) for its limits. Only
    /// used when the row is created: a reopened row keeps its metadata.
    pub metadata: Option<serde_json::Value>,
}

impl NewWebsocketConnection {
    /// An anonymous connection with no address, user agent or metadata.
    pub fn new(connection_id: impl Into<String>) -> Self {
        NewWebsocketConnection {
            connection_id: connection_id.into(),
            user_id: None,
            ip: None,
            user_agent: None,
            metadata: None,
        }
    }
}
