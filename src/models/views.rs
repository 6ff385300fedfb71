//! Row structs for the three views (their `table!`s are in
//! [`crate::schema`], beside the tables).
//!
//! Column types are the template's, so that a Node app sharing the database
//! reads what it always read: the durations and averages are `numeric`. The
//! row structs read them as `f64` by converting in the select
//! (`float8(column)`, PostgreSQL's own numeric-to-double conversion); a
//! query that selects such a column directly gets
//! `diesel::sql_types::Numeric` and must convert it the same way.

use crate::functions::float8;
use crate::models::UserId;
use crate::schema::{
    active_websocket_connections, pending_password_resets, websocket_connection_stats,
};
use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use ipnet::IpNet;
use std::fmt;
use uuid::Uuid;

/// One row of [`active_websocket_connections`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = active_websocket_connections)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct ActiveWebsocketConnection {
    /// The connection row's id.
    pub id: Uuid,
    /// The server's id for the connection.
    pub connection_id: String,
    /// The user, `None` for anonymous connections.
    pub user_id: Option<UserId>,
    /// The user's email, `None` for anonymous connections.
    pub user_email: Option<String>,
    /// The user's display name, `None` for anonymous connections.
    pub user_display_name: Option<String>,
    /// The client's address.
    pub ip_address: Option<IpNet>,
    /// When the connection opened.
    pub connected_at: DateTime<Utc>,
    /// The last activity.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Messages received.
    pub message_count: i32,
    /// Whether the client authenticated.
    pub is_authenticated: bool,
    /// Whether the connection is blocked.
    pub is_blocked: bool,
    /// Seconds since the connection opened, as of the query (the view's
    /// `numeric`, converted to `float8` in the select).
    #[diesel(select_expression = float8(active_websocket_connections::connection_duration_seconds))]
    #[diesel(select_expression_type = float8<active_websocket_connections::connection_duration_seconds>)]
    pub connection_duration_seconds: f64,
}

/// The one row of [`websocket_connection_stats`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = websocket_connection_stats)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct WebsocketConnectionStats {
    /// Open connections.
    pub active_connections: i64,
    /// Open, authenticated connections.
    pub authenticated_connections: i64,
    /// Open, anonymous connections.
    pub anonymous_connections: i64,
    /// Blocked connections, open or closed.
    pub blocked_connections: i64,
    /// All connections ever recorded (and not cleaned up).
    pub total_connections_all_time: i64,
    /// Average messages per connection (0 with no connections; the view's
    /// `numeric`, converted to `float8` in the select).
    #[diesel(select_expression = float8(websocket_connection_stats::avg_messages_per_connection))]
    #[diesel(select_expression_type = float8<websocket_connection_stats::avg_messages_per_connection>)]
    pub avg_messages_per_connection: f64,
    /// Most messages on one connection (0 with no connections).
    pub max_messages_per_connection: i32,
    /// Average connection duration in seconds (0 with no connections; the
    /// view's `numeric`, converted to `float8` in the select).
    #[diesel(select_expression = float8(websocket_connection_stats::avg_connection_duration_seconds))]
    #[diesel(select_expression_type = float8<websocket_connection_stats::avg_connection_duration_seconds>)]
    pub avg_connection_duration_seconds: f64,
}

/// The `status` of a [`pending_password_resets`] row.
///
/// Maps to SQL `text` both ways, so it can also be used in a filter
/// (`status.eq(ResetStatus::Pending)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[diesel(sql_type = Text)]
pub enum ResetStatus {
    /// Not used and not expired: the token can still be redeemed.
    Pending,
    /// Not used, but past `expires_at`.
    Expired,
}

impl ResetStatus {
    /// The text the view gives: `pending` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetStatus::Pending => "pending",
            ResetStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for ResetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromSql<Text, Pg> for ResetStatus {
    /// Fails (a deserialization error) on any text but `pending` and
    /// `expired`.
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        match <String as FromSql<Text, Pg>>::from_sql(bytes)?.as_str() {
            "pending" => Ok(ResetStatus::Pending),
            "expired" => Ok(ResetStatus::Expired),
            other => Err(format!("unknown password reset status {other:?}").into()),
        }
    }
}

impl ToSql<Text, Pg> for ResetStatus {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
    }
}

/// One row of [`pending_password_resets`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = pending_password_resets)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct PendingPasswordReset {
    /// The request's id.
    pub id: Uuid,
    /// The account.
    pub user_id: UserId,
    /// The account's email.
    pub email: String,
    /// The account's display name.
    pub display_name: String,
    /// When the reset was requested.
    pub requested_at: DateTime<Utc>,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// The requester's address.
    pub ip_address: Option<IpNet>,
    /// Pending or expired, as of the query.
    pub status: ResetStatus,
}
