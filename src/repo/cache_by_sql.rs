//! [`CacheBySql`]: keeps a statement prepared whose SQL text never changes
//! but that Diesel declines to cache, and [`KeepPrepared`], which wraps one.
//!
//! The cache keys such a statement by its SQL text, so a statement whose
//! text varied from call to call would leave one prepared statement per
//! text on every connection. Each `.keep_prepared()` call site therefore
//! remembers (in debug builds, so in every test run) the text it first
//! sent, and a later call there with another text fails with a query
//! builder error naming the call site instead of reaching the cache. Release
//! builds skip the check and its rendering.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;
use std::panic::Location;

/// Marks a statement safe to keep prepared on its connection. Diesel caches
/// no `UPDATE` (a changeset may skip `None` fields, which changes the text),
/// so each would run as prepare, execute and close: two round trips more.
/// Made by [`KeepPrepared::keep_prepared`], which records its call site.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheBySql<Q> {
    query: Q,
    site: &'static Location<'static>,
}

impl<Q> QueryId for CacheBySql<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for CacheBySql<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, backend: &Pg) -> QueryResult<bool> {
        if cfg!(debug_assertions) {
            same_text_as_before(self.site, &self.query, backend)?;
        }
        Ok(true)
    }
}

impl<Q: Query> Query for CacheBySql<Q> {
    type SqlType = Q::SqlType;
}

/// `.keep_prepared()` on any statement: wraps it in [`CacheBySql`]. Only for
/// statements whose SQL text is fixed: no changeset with optional fields,
/// no list whose length varies. A call site whose text varies fails in
/// debug builds (see the module docs).
pub(crate) trait KeepPrepared: Sized {
    /// This statement, kept prepared on its connection after it runs.
    #[track_caller]
    fn keep_prepared(self) -> CacheBySql<Self> {
        CacheBySql {
            query: self,
            site: Location::caller(),
        }
    }
}

impl<Q: QueryFragment<Pg>> KeepPrepared for Q {}

/// Checks that `query` renders to the text first seen at `site`.
fn same_text_as_before<Q: QueryFragment<Pg>>(
    site: &'static Location<'static>,
    query: &Q,
    backend: &Pg,
) -> QueryResult<()> {
    use diesel::query_builder::QueryBuilder;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    static SEEN: OnceLock<Mutex<HashMap<&'static Location<'static>, String>>> = OnceLock::new();
    let mut builder = diesel::pg::PgQueryBuilder::default();
    query.to_sql(&mut builder, backend)?;
    let sql = builder.finish();
    let seen = SEEN.get_or_init(Default::default);
    let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match seen.get(site) {
        None => {
            seen.insert(site, sql);
            Ok(())
        }
        Some(first) if *first == sql => Ok(()),
        Some(first) => Err(diesel::result::Error::QueryBuilderError(
            format!(
                ".keep_prepared() at {site} sent a different SQL text than before \
                 (first {first:?}, now {sql:?}): only a statement whose text never \
                 varies may be kept prepared by its text"
            )
            .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::users;
    use diesel::prelude::*;

    /// An update whose changeset skips `None` fields: its text depends on
    /// which fields are set.
    fn rename(name: Option<&str>, lang: Option<&str>) -> QueryResult<bool> {
        #[derive(AsChangeset)]
        #[diesel(table_name = users)]
        struct Change<'a> {
            display_name: Option<&'a str>,
            language_preference: Option<&'a str>,
        }
        let change = Change {
            display_name: name,
            language_preference: lang,
        };
        diesel::update(users::table)
            .set(change)
            .keep_prepared()
            .is_safe_to_cache_prepared(&Pg)
    }

    #[test]
    fn a_call_site_whose_text_varies_is_refused() {
        assert!(rename(Some("a"), Some("en")).expect("first text"));
        assert!(rename(Some("b"), Some("de")).expect("same text, other binds"));
        let err = rename(Some("c"), None).expect_err("a shorter SET list");
        let message = err.to_string();
        assert!(
            message.contains(".keep_prepared() at src/repo/cache_by_sql.rs:")
                && message.contains("sent a different SQL text than before"),
            "{message}"
        );
    }
}
