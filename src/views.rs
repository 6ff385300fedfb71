//! Hand-written `table!` definitions for the three views, which
//! `diesel print-schema` does not emit, and a row struct for each.
//!
//! PostgreSQL reports every view column as nullable. Here a column is
//! `Nullable<_>` only when a NULL can really reach it: it comes from a
//! nullable column, or from the outer side of a LEFT JOIN. A column is
//! non-null when its source column is `NOT NULL` through an inner join, or
//! when the view's expression cannot yield NULL (`COUNT`, `COALESCE(.., 0)`,
//! `NOW() - <NOT NULL column>`, a `CASE` with literal branches).
//!
//! Views are read-only: use these for `SELECT`s only.
//!
//! Column types are the template's, so that a Node app sharing the database
//! reads what it always read: the durations and averages are `numeric`. The
//! row structs read them as `f64` by converting in the select
//! (`float8(column)`, PostgreSQL's own numeric-to-double conversion); a
//! query that selects such a column directly gets
//! `diesel::sql_types::Numeric` and must convert it the same way.

use crate::models::UserId;
use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use ipnet::IpNet;
use std::fmt;
use uuid::Uuid;

diesel::define_sql_function! {
    /// SQL `float8(numeric)`: the nearest double to a `numeric` value.
    fn float8(value: diesel::sql_types::Numeric) -> diesel::sql_types::Double;
}

diesel::table! {
    /// The view `active_websocket_connections`: open connections
    /// (`disconnected_at IS NULL`), with their user's email and display name
    /// (LEFT JOIN on `users`, so NULL for anonymous connections).
    active_websocket_connections (id) {
        /// `websocket_connections.id`; a key of the view.
        id -> Uuid,
        /// `websocket_connections.connection_id` (NOT NULL there).
        #[max_length = 64]
        connection_id -> Varchar,
        /// The user, NULL for anonymous connections.
        user_id -> Nullable<Uuid>,
        /// `users.email`, NULL when there is no user (LEFT JOIN).
        user_email -> Nullable<Varchar>,
        /// `users.display_name`, NULL when there is no user (LEFT JOIN).
        user_display_name -> Nullable<Varchar>,
        /// The client's address (nullable column).
        ip_address -> Nullable<Inet>,
        /// When the connection opened (NOT NULL column).
        connected_at -> Timestamptz,
        /// The last activity (nullable column, though it defaults to NOW()).
        last_activity_at -> Nullable<Timestamptz>,
        /// Messages received (NOT NULL column).
        message_count -> Int4,
        /// Whether the client authenticated (NOT NULL column).
        is_authenticated -> Bool,
        /// Whether the connection is blocked (NOT NULL column).
        is_blocked -> Bool,
        /// Seconds since `connected_at`, fractional; never NULL since
        /// `connected_at` is NOT NULL. `numeric`, as the template made it;
        /// [`ActiveWebsocketConnection`] reads it as `f64`.
        connection_duration_seconds -> Numeric,
    }
}

diesel::table! {
    /// The view `websocket_connection_stats`: always exactly one row of
    /// counters over all of `websocket_connections`.
    ///
    /// The view has no key; `table!` needs one, so
    /// `total_connections_all_time` stands in. Never look rows up by it:
    /// read the one row with `select(..).first(..)`.
    websocket_connection_stats (total_connections_all_time) {
        /// Open connections.
        active_connections -> Int8,
        /// Open connections whose client authenticated.
        authenticated_connections -> Int8,
        /// Open connections whose client did not authenticate.
        anonymous_connections -> Int8,
        /// Blocked connections, open or closed.
        blocked_connections -> Int8,
        /// Every row of the table, open or closed (the stand-in key).
        total_connections_all_time -> Int8,
        /// Average `message_count`; 0 when there are no rows (the view
        /// COALESCEs it, so never NULL). `numeric`, as the template made it.
        avg_messages_per_connection -> Numeric,
        /// Largest `message_count`; 0 when there are no rows (COALESCEd).
        max_messages_per_connection -> Int4,
        /// Average duration in seconds (closed: until `disconnected_at`,
        /// open: until now); 0 when there are no rows (COALESCEd).
        /// `numeric`, as the template made it.
        avg_connection_duration_seconds -> Numeric,
    }
}

diesel::table! {
    /// The view `pending_password_resets`: unused reset requests
    /// (`used_at IS NULL`) with their user (inner join), newest first, each
    /// with its status.
    ///
    /// The view's own `ORDER BY requested_at DESC` holds for a plain
    /// `SELECT` of it, but a query that adds a filter or join may be
    /// reordered: add `.order(requested_at.desc())` when order matters.
    pending_password_resets (id) {
        /// `password_reset_requests.id`; a key of the view.
        id -> Uuid,
        /// The account (NOT NULL column).
        user_id -> Uuid,
        /// `users.email` (NOT NULL, inner join).
        #[max_length = 255]
        email -> Varchar,
        /// `users.display_name` (NOT NULL, inner join).
        #[max_length = 100]
        display_name -> Varchar,
        /// When the reset was requested (NOT NULL column).
        requested_at -> Timestamptz,
        /// When the token expires (NOT NULL column).
        expires_at -> Timestamptz,
        /// The requester's address (nullable column).
        ip_address -> Nullable<Inet>,
        /// `'expired'` when `expires_at < NOW()`, else `'pending'`; see
        /// [`ResetStatus`](crate::views::ResetStatus).
        status -> Text,
    }
}

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
