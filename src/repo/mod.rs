//! Repository functions: the only place that writes queries. Each takes
//! `&mut AsyncPgConnection`, so any set of them composes inside one
//! transaction; the store checks connections out and calls them.

pub mod audit;
mod cache_by_sql;
mod clock;
mod columns;
pub mod conversations;
pub mod login_failures;
pub mod messages;
pub mod password_resets;
pub mod refresh_tokens;
pub mod sessions;
pub mod sql;
pub mod users;
pub mod websocket;
