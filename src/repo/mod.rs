//! Repository functions: the only place that writes queries. Each takes
//! `&AsyncPgConnection` (a `&mut` one, as `PgStore::transaction` hands out,
//! coerces), so any set of them composes inside one transaction; the store
//! checks connections out and calls them.
//!
//! # Writing a query
//!
//! A query here is Diesel's DSL as its documentation writes it, with two
//! changes that keep it fast; nothing else differs.
//!
//! 1. **Select lists**: `.select(Model::columns())` and
//!    `.returning(Model::columns())` where Diesel's guide writes
//!    `Model::as_select()` / `as_returning()` (trait `Rendered`, in scope
//!    with `use super::columns::Rendered;`). It is the same select list, SQL
//!    type and row mapping, rendered to text once per process instead of on
//!    every query. Any `Selectable` model works; there is nothing to
//!    register.
//! 2. **Statements Diesel will not cache** (every `UPDATE`, an `INSERT ...
//!    ON CONFLICT`, a `DELETE` with a subselect): end them with
//!    `.keep_prepared()` (trait `KeepPrepared`) when their SQL text is the
//!    same on every call: no changeset whose `None` fields drop out of the
//!    `SET` list, no `IN` list or batch whose length varies. Such a
//!    statement is then prepared once per connection, like a `SELECT`.
//!    Leave it off otherwise: the statement is then prepared and closed on
//!    each call, which is slower but never wrong. A `.keep_prepared()` call
//!    site whose text does vary fails in every debug build (so in the test
//!    suite) with an error naming the call site, before the cache sees it.
//!
//! # Pipelining
//!
//! Because a function only borrows the connection, the futures of several
//! can be joined (`futures_util::future::join`, `join3`, ...): their
//! statements are then sent together and answered together, one round
//! trip instead of one each. The server runs them one after another in the
//! order they were joined (each statement waits for diesel-async's
//! statement cache in turn, so even a statement still to be prepared keeps
//! its place), and in `READ COMMITTED` each takes its snapshot when its
//! turn comes: a statement joined after a row lock sees what the lock
//! waited for. In a transaction, a failure aborts the statements after it,
//! and the transaction rolls back when the caller returns that error. So
//! the store joins every statement that needs no answer from an earlier one
//! of its round trip, awaits the whole join (never dropping a future
//! halfway), and returns the first error in joined order. A statement whose
//! input is the output of another cannot join it; nor can a `COMMIT`, which
//! diesel-async sends only once the transaction's closure has returned.
//!
//! The order holds because every joined future sends its statement on its
//! first poll, in join order, or queues for the statement cache on it; it
//! rests on how diesel-async 0.9 prepares and sends, which it does not
//! promise (`tests/round_trips.rs` checks it on a connection that has
//! prepared nothing yet). So a function joined with others must send one
//! statement, or join its own; one that awaits a statement and then sends
//! another would send the second after everything joined behind it. A
//! statement binding a custom SQL type looked up by name (none here) would
//! resolve that type before queueing, and could be overtaken.
//!
//! Errors are Diesel's, converted with `?` into [`crate::Error`], which maps
//! a lost connection to `Unavailable` and a named constraint to
//! `Conflict`. Plain Diesel also works here unchanged: `as_select()` and
//! an uncached statement only cost speed.

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
