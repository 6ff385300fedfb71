//! Hand-written `table!` definitions for the three views, which
//! `diesel print-schema` does not emit. Their row structs are in
//! [`crate::models::views`].
//!
//! PostgreSQL reports every view column as nullable. Here a column is
//! `Nullable<_>` only when a NULL can really reach it: it comes from a
//! nullable column, or from the outer side of a LEFT JOIN. A column is
//! non-null when its source column is `NOT NULL` through an inner join, or
//! when the view's expression cannot yield NULL (`COUNT`, `COALESCE(.., 0)`,
//! `NOW() - <NOT NULL column>`, a `CASE` with literal branches).
//!
//! Views are read-only: use these for `SELECT`s only.

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
        /// [`ActiveWebsocketConnection`](crate::models::ActiveWebsocketConnection) reads it as `f64`.
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
        /// [`ResetStatus`](crate::models::ResetStatus).
        status -> Text,
    }
}
