//! Select lists rendered to SQL once per process.
//!
//! diesel-async renders the whole SQL text of every query it runs, even one
//! whose prepared statement it already holds, and Diesel's query builder
//! allocates a string for each quoted identifier. A model's select list is
//! most of that text (`"users"."id", "users"."email", ...`: two identifiers
//! per column), yet it never changes. [`Rendered::columns`] is the model's
//! `as_select()` with its text rendered by Diesel once and then pushed as one
//! string: the same SQL, the same SQL type and the same row mapping, without
//! rebuilding the list on every query.

use diesel::dsl::AsSelect;
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::{QueryResult, Selectable, SelectableHelper};
use std::any::TypeId;
use std::sync::{OnceLock, RwLock};

/// A model's select list, with its SQL text rendered once. Wherever the
/// text could not be rendered (it never fails for a list of columns), the
/// list is rendered on every query as usual.
pub(crate) struct Columns<T: Selectable<Pg>> {
    selection: AsSelect<T, Pg>,
    sql: Option<&'static str>,
}

/// A model whose select list is rendered once per process. Every
/// `Selectable` model is one: nothing to register for a new table.
pub(crate) trait Rendered: Selectable<Pg> + Sized {
    /// `Self::as_select()`, rendered once: use it in `select` and
    /// `returning` clauses wherever `as_select()` or `as_returning()` would
    /// go.
    fn columns() -> Columns<Self>;
}

/// The SQL text of `selection`, or `None` when it holds bind parameters
/// (the text would then not stand on its own) or cannot be rendered.
fn render<E: QueryFragment<Pg>>(selection: &E) -> Option<String> {
    use std::fmt::Write;
    // `write!` rather than `to_string()`: a walk that fails comes back as
    // an error here instead of a panic.
    let mut debug = String::new();
    write!(debug, "{}", diesel::debug_query::<Pg, _>(selection)).ok()?;
    debug.strip_suffix(" -- binds: []").map(str::to_owned)
}

/// Each model's rendered text, by type. A text is rendered once per model
/// type and kept for the life of the process (there are as many as there
/// are models), so that a lookup is all a query pays.
fn rendered_text<T: 'static, E: QueryFragment<Pg>>(selection: &E) -> Option<&'static str> {
    type Texts = super::cache_by_sql::ByType<Option<&'static str>>;
    static TEXTS: OnceLock<RwLock<Texts>> = OnceLock::new();
    let texts = TEXTS.get_or_init(Default::default);
    let key = TypeId::of::<T>();
    if let Some(text) = texts.read().ok().and_then(|t| t.get(&key).copied()) {
        return text;
    }
    let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    match texts.write() {
        // Rendered under the lock, so that each type's text is made once.
        Ok(mut texts) => *texts
            .entry(key)
            .or_insert_with(|| render(selection).map(leak)),
        // A poisoned map (a panic while rendering) is left alone: this query
        // renders its list itself, as `None` makes it do.
        Err(_) => None,
    }
}

impl<T: Selectable<Pg> + 'static> Rendered for T
where
    AsSelect<T, Pg>: QueryFragment<Pg>,
{
    fn columns() -> Columns<Self> {
        let selection = T::as_select();
        let sql = rendered_text::<T, _>(&selection);
        Columns { selection, sql }
    }
}

impl<T: Selectable<Pg>> Expression for Columns<T>
where
    AsSelect<T, Pg>: Expression,
{
    type SqlType = <AsSelect<T, Pg> as Expression>::SqlType;
}

impl<T: Selectable<Pg>, GB> ValidGrouping<GB> for Columns<T>
where
    AsSelect<T, Pg>: ValidGrouping<GB>,
{
    type IsAggregate = <AsSelect<T, Pg> as ValidGrouping<GB>>::IsAggregate;
}

impl<T: Selectable<Pg>, QS> SelectableExpression<QS> for Columns<T> where
    AsSelect<T, Pg>: SelectableExpression<QS>
{
}

impl<T: Selectable<Pg>, QS> AppearsOnTable<QS> for Columns<T> where
    AsSelect<T, Pg>: AppearsOnTable<QS>
{
}

impl<T: Selectable<Pg> + 'static> QueryId for Columns<T>
where
    AsSelect<T, Pg>: QueryId,
{
    // The text is a function of the type alone, so a statement holding this
    // list is keyed by type like one holding `as_select()`, under its own key.
    type QueryId = Columns<T>;
    const HAS_STATIC_QUERY_ID: bool = <AsSelect<T, Pg> as QueryId>::HAS_STATIC_QUERY_ID;
}

impl<T: Selectable<Pg>> QueryFragment<Pg> for Columns<T>
where
    AsSelect<T, Pg>: QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        match self.sql {
            Some(sql) => {
                out.push_sql(sql);
                Ok(())
            }
            None => self.selection.walk_ast(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{
        Conversation, Message, PasswordResetRequest, RefreshToken, User, WebsocketConnection,
    };
    use crate::schema::users;
    use diesel::prelude::*;

    /// The rendered list is in use (not the fallback), and walking it gives
    /// the text and binds that walking `as_select()` gives.
    fn same_text<T: Rendered>()
    where
        AsSelect<T, Pg>: QueryFragment<Pg>,
    {
        let rendered = T::columns();
        assert!(rendered
            .sql
            .is_some_and(|t| t.starts_with('"') && !t.contains('$')));
        assert_eq!(
            diesel::debug_query::<Pg, _>(&rendered).to_string(),
            diesel::debug_query::<Pg, _>(&T::as_select()).to_string()
        );
    }

    #[test]
    fn every_model_list_is_rendered_as_diesel_renders_it() {
        same_text::<User>();
        same_text::<Message>();
        same_text::<Conversation>();
        same_text::<RefreshToken>();
        same_text::<PasswordResetRequest>();
        same_text::<WebsocketConnection>();
        same_text::<crate::models::AuditLogEntry>();
        same_text::<crate::models::ActiveWebsocketConnection>();
        same_text::<crate::models::WebsocketConnectionStats>();
        same_text::<crate::models::PendingPasswordReset>();
    }

    #[test]
    fn a_query_with_the_rendered_list_is_the_query_with_as_select() {
        let id = uuid::Uuid::nil();
        let with_rendered = users::table
            .filter(users::id.eq(id))
            .select(User::columns())
            .limit(1);
        let with_select = users::table
            .filter(users::id.eq(id))
            .select(User::as_select())
            .limit(1);
        assert_eq!(
            diesel::debug_query::<Pg, _>(&with_rendered).to_string(),
            diesel::debug_query::<Pg, _>(&with_select).to_string()
        );
        let returning = diesel::update(users::table.filter(users::id.eq(id)))
            .set(users::role.eq("user"))
            .returning(User::columns());
        let expected = diesel::update(users::table.filter(users::id.eq(id)))
            .set(users::role.eq("user"))
            .returning(User::as_returning());
        assert_eq!(
            diesel::debug_query::<Pg, _>(&returning).to_string(),
            diesel::debug_query::<Pg, _>(&expected).to_string()
        );
    }

    #[test]
    fn inserts_tuples_and_boxed_queries_render_as_with_as_select() {
        use crate::models::NewMessageRow;
        use crate::schema::{messages, refresh_tokens};
        let row = NewMessageRow {
            id: uuid::Uuid::nil(),
            conversation_id: uuid::Uuid::nil(),
            role: "user",
            content: "hello",
            tokens_used: None,
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        };
        let insert = diesel::insert_into(messages::table)
            .values(&row)
            .returning(Message::columns());
        let expected = diesel::insert_into(messages::table)
            .values(&row)
            .returning(Message::as_returning());
        assert_eq!(
            diesel::debug_query::<Pg, _>(&insert).to_string(),
            diesel::debug_query::<Pg, _>(&expected).to_string()
        );

        let tuple = refresh_tokens::table
            .select((
                RefreshToken::columns(),
                refresh_tokens::expires_at.le(diesel::dsl::now),
            ))
            .for_update();
        let expected = refresh_tokens::table
            .select((
                RefreshToken::as_select(),
                refresh_tokens::expires_at.le(diesel::dsl::now),
            ))
            .for_update();
        assert_eq!(
            diesel::debug_query::<Pg, _>(&tuple).to_string(),
            diesel::debug_query::<Pg, _>(&expected).to_string()
        );

        let boxed = users::table
            .select(User::columns())
            .into_boxed()
            .filter(users::role.eq("admin"))
            .order(users::id.desc())
            .limit(5);
        let expected = users::table
            .select(User::as_select())
            .into_boxed()
            .filter(users::role.eq("admin"))
            .order(users::id.desc())
            .limit(5);
        assert_eq!(
            diesel::debug_query::<Pg, _>(&boxed).to_string(),
            diesel::debug_query::<Pg, _>(&expected).to_string()
        );
    }
}
