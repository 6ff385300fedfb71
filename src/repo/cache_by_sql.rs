//! Statement text, rendered as little as possible.
//!
//! [`RenderOnce`] (`.render_once()`): diesel-async renders a statement's SQL
//! text on every call, even when its prepared statement is cached by type.
//! A statement Diesel proves static (a static query id, and safe to cache)
//! has one text per type, the same fact diesel-async's cache relies on, so
//! its text is rendered on the first call and reused after.
//!
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

/// A statement whose SQL text is rendered once per statement type when
/// Diesel proves the text static; rendered as usual otherwise. Made by
/// [`RenderOnce::render_once`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderedOnce<Q>(Q);

impl<Q: QueryId> QueryId for RenderedOnce<Q> {
    type QueryId = Q::QueryId;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
}

impl<Q: Query> Query for RenderedOnce<Q> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<Pg> + QueryId> QueryFragment<Pg> for RenderedOnce<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, backend: &Pg) -> QueryResult<bool> {
        self.0.is_safe_to_cache_prepared(backend)
    }

    fn to_sql(&self, out: &mut diesel::pg::PgQueryBuilder, backend: &Pg) -> QueryResult<()> {
        use diesel::query_builder::QueryBuilder;
        let Some(id) = Q::query_id() else {
            return self.0.to_sql(out, backend);
        };
        if !self.0.is_safe_to_cache_prepared(backend)? {
            return self.0.to_sql(out, backend);
        }
        let render = || -> QueryResult<String> {
            let mut fresh = diesel::pg::PgQueryBuilder::default();
            self.0.to_sql(&mut fresh, backend)?;
            Ok(fresh.finish())
        };
        match known_text(id) {
            Some(text) => {
                if cfg!(debug_assertions) && render()? != text {
                    return Err(diesel::result::Error::QueryBuilderError(
                        "a statement with a static query id rendered two texts".into(),
                    ));
                }
                out.push_sql(text);
            }
            None => match remember_text(id, render()?) {
                Ok(text) => out.push_sql(text),
                Err(text) => out.push_sql(&text),
            },
        }
        Ok(())
    }
}

/// `.render_once()` on any statement: wraps it in [`RenderedOnce`]. Safe on
/// every statement: one whose text Diesel cannot prove static is rendered
/// on each call, as without it.
pub(crate) trait RenderOnce: Sized {
    /// This statement, its text rendered once per statement type.
    fn render_once(self) -> RenderedOnce<Self> {
        RenderedOnce(self)
    }
}

impl<Q: QueryFragment<Pg> + QueryId> RenderOnce for Q {}

/// A map keyed by a Rust type: the key is already a hash, so it is used
/// as it is, instead of hashing it again with SipHash on every query.
pub(crate) type ByType<V> =
    std::collections::HashMap<std::any::TypeId, V, std::hash::BuildHasherDefault<TypeIdHasher>>;

/// The hasher of [`ByType`]: keeps the `u64` a `TypeId` writes (and folds
/// anything else it is given, FNV-style, so that it stays correct).
#[derive(Default)]
pub(crate) struct TypeIdHasher(u64);

impl std::hash::Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

type Texts = ByType<&'static str>;

/// The texts of statement types rendered so far: one per statement type in
/// the code, so a bounded set, kept for the life of the process.
fn texts() -> &'static std::sync::RwLock<Texts> {
    static TEXTS: std::sync::OnceLock<std::sync::RwLock<Texts>> = std::sync::OnceLock::new();
    TEXTS.get_or_init(Default::default)
}

/// The text of the statement type `id`, when it was rendered before.
fn known_text(id: std::any::TypeId) -> Option<&'static str> {
    texts().read().ok().and_then(|t| t.get(&id).copied())
}

/// Keeps `text` as the text of the statement type `id` (or returns the one
/// kept already). Gives `text` back when the map is unusable (poisoned).
fn remember_text(id: std::any::TypeId, text: String) -> Result<&'static str, String> {
    match texts().write() {
        Ok(mut texts) => Ok(*texts
            .entry(id)
            .or_insert_with(|| Box::leak(text.into_boxed_str()))),
        Err(_) => Err(text),
    }
}

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

    #[test]
    fn a_map_by_type_tells_types_apart() {
        use std::any::TypeId;
        let mut map: ByType<&str> = ByType::default();
        map.insert(TypeId::of::<u8>(), "u8");
        map.insert(TypeId::of::<u16>(), "u16");
        map.insert(TypeId::of::<users::table>(), "users");
        map.insert(TypeId::of::<(u8, u16)>(), "pair");
        assert_eq!(map.get(&TypeId::of::<u8>()), Some(&"u8"));
        assert_eq!(map.get(&TypeId::of::<u16>()), Some(&"u16"));
        assert_eq!(map.get(&TypeId::of::<users::table>()), Some(&"users"));
        assert_eq!(map.get(&TypeId::of::<(u8, u16)>()), Some(&"pair"));
        assert_eq!(map.get(&TypeId::of::<u32>()), None);
        assert_eq!(map.len(), 4);
    }

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

    fn text_of<Q: QueryFragment<Pg>>(query: &Q) -> String {
        use diesel::query_builder::QueryBuilder;
        let mut out = diesel::pg::PgQueryBuilder::default();
        query.to_sql(&mut out, &Pg).expect("renders");
        out.finish()
    }

    #[test]
    fn a_static_statement_is_rendered_once_and_the_same() {
        let by_id = |id: uuid::Uuid| users::table.find(id).select(users::email).limit(1);
        let plain = text_of(&by_id(uuid::Uuid::nil()));
        let first = text_of(&by_id(uuid::Uuid::nil()).render_once());
        let again = text_of(&by_id(uuid::Uuid::max()).render_once());
        assert_eq!(first, plain);
        assert_eq!(again, plain);
        let id = <diesel::dsl::Limit<
            diesel::dsl::Select<diesel::dsl::Find<users::table, uuid::Uuid>, users::email>,
        > as QueryId>::query_id()
        .expect("a static query id");
        assert_eq!(known_text(id), Some(plain.as_str()));
    }

    #[test]
    fn a_statement_diesel_cannot_prove_static_is_rendered_each_time() {
        // Boxed: no static query id. Its text follows its filters.
        let boxed = |search: bool| {
            let mut q = users::table.select(users::email).into_boxed();
            if search {
                q = q.filter(users::email.like("%a%"));
            }
            q
        };
        assert_ne!(
            text_of(&boxed(false).render_once()),
            text_of(&boxed(true).render_once())
        );
        // Static id, but not safe to cache: a changeset without its `None`
        // fields, so the text follows which fields are set.
        #[derive(AsChangeset)]
        #[diesel(table_name = users)]
        struct Change<'a> {
            display_name: Option<&'a str>,
            language_preference: Option<&'a str>,
        }
        let update = |lang: Option<&'static str>| {
            diesel::update(users::table).set(Change {
                display_name: Some("a"),
                language_preference: lang,
            })
        };
        let both = text_of(&update(Some("en")).render_once());
        let one = text_of(&update(None).render_once());
        assert_ne!(both, one);
        assert_eq!(one, text_of(&update(None)));
    }
}
