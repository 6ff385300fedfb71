//! [`CacheBySql`]: keeps a statement prepared whose SQL text never changes
//! but that Diesel declines to cache, and [`KeepPrepared`], which wraps one.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// Marks a statement safe to keep prepared on its connection. Diesel caches
/// no `UPDATE` (a changeset may skip `None` fields, which changes the text),
/// so each would run as prepare, execute and close: two round trips more.
/// The cache then keys the statement by its SQL text, so wrap only
/// statements whose text is fixed (no optional changeset fields, no
/// variable-length lists); a text that varied would cost one cache entry
/// per text on every connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheBySql<Q>(pub(crate) Q);

impl<Q> QueryId for CacheBySql<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for CacheBySql<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: Query> Query for CacheBySql<Q> {
    type SqlType = Q::SqlType;
}

/// `.keep_prepared()` on any statement: wraps it in [`CacheBySql`]. The
/// same caution holds: only for statements whose SQL text is fixed.
pub(crate) trait KeepPrepared: Sized {
    /// This statement, kept prepared on its connection after it runs.
    fn keep_prepared(self) -> CacheBySql<Self> {
        CacheBySql(self)
    }
}

impl<Q: QueryFragment<Pg>> KeepPrepared for Q {}
