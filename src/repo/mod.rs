//! Repository functions: the only place that writes queries. Each takes
//! `&mut AsyncPgConnection`, so any set of them composes inside one
//! transaction; the store checks connections out and calls them.

mod cache_by_sql;
mod columns;
pub mod conversations;
pub mod login_failures;
pub mod messages;
pub mod password_reset_requests;
pub mod refresh_tokens;
pub mod sessions;
pub mod user_audit_log;
pub mod users;
pub mod websocket_connections;
