//! Joining an application's own tables to the crate's.
//!
//! `diesel::allow_tables_to_appear_in_same_query!(notes, users)` with
//! `users` from [`crate::schema`] does not compile in an application: for the
//! postgres backend it also implements Diesel's `TableNotEqual` between
//! `Only<notes::table>` (or `Tablesample<notes::table, _>`) and
//! `users::table`, and there neither side is the application's own type, so
//! the orphan rule refuses them. This crate can write those impls, for every
//! table that implements [`AppTable`]; [`join_crate_tables!`](crate::join_crate_tables) implements it
//! for the application's tables and writes the impls the application may
//! write itself, so that its tables join and filter with every table and
//! view of the crate in Diesel's checked DSL.
//!
//! ```
//! mod app_schema {
//!     diesel::table! {
//!         notes (id) {
//!             id -> Uuid,
//!             user_id -> Uuid,
//!             body -> Text,
//!         }
//!     }
//!     diesel::joinable!(notes -> pronghorn_db::schema::users (user_id));
//! }
//! use app_schema::notes;
//! pronghorn_db::join_crate_tables!(notes);
//!
//! use diesel::prelude::*;
//! use pronghorn_db::schema::users;
//! // Checked at compile time, run with diesel-async as usual.
//! let _query = notes::table
//!     .inner_join(users::table)
//!     .filter(users::email.eq("ann@example.com"))
//!     .select((notes::body, users::display_name));
//! ```
//!
//! A table left out of [`join_crate_tables!`](crate::join_crate_tables) stays refused, as Diesel
//! refuses any two tables it was not told may meet:
//!
//! ```compile_fail
//! mod app_schema {
//!     diesel::table! {
//!         notes (id) {
//!             id -> Uuid,
//!             user_id -> Uuid,
//!         }
//!     }
//! }
//! use app_schema::notes;
//! use diesel::prelude::*;
//! use pronghorn_db::schema::users;
//! let _query = notes::table
//!     .inner_join(users::table.on(users::id.eq(notes::user_id)))
//!     .select(notes::id);
//! ```

/// A table of the application's own that may appear in one query with the
/// crate's tables. Implemented by [`join_crate_tables!`](crate::join_crate_tables); this crate writes
/// the impls the application cannot (those between `Only<T>` or
/// `Tablesample<T, _>` and the crate's tables).
pub trait AppTable: diesel::Table {}

/// Calls `$callback` with `$args`, then every table and view of the crate,
/// as `module::table_module` pairs.
#[doc(hidden)]
#[macro_export]
macro_rules! __pronghorn_each_table {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback!($($args)* ;
            schema::conversations,
            schema::login_failures,
            schema::messages,
            schema::migrations,
            schema::password_reset_requests,
            schema::refresh_tokens,
            schema::session,
            schema::user_audit_log,
            schema::users,
            schema::websocket_connections,
            schema::active_websocket_connections,
            schema::pending_password_resets,
            schema::websocket_connection_stats
        );
    };
}

/// The impls only this crate may write, for each crate table: between it
/// and `Only<T>` / `Tablesample<T, _>` of any [`AppTable`] `T`.
#[doc(hidden)]
#[macro_export]
macro_rules! __pronghorn_blanket_impls {
    (; $($module:ident :: $table:ident),*) => {
        $(
            impl<T: $crate::extend::AppTable>
                $crate::__diesel::query_source::TableNotEqual<$crate::__diesel::query_builder::Only<T>>
                for $crate::$module::$table::table
            where
                $crate::__diesel::query_builder::Only<T>: $crate::__diesel::Table,
            {
            }
            impl<T: $crate::extend::AppTable>
                $crate::__diesel::query_source::TableNotEqual<$crate::$module::$table::table>
                for $crate::__diesel::query_builder::Only<T>
            where
                $crate::__diesel::query_builder::Only<T>: $crate::__diesel::Table,
            {
            }
            impl<T: $crate::extend::AppTable, TSM: $crate::__diesel::query_builder::TablesampleMethod>
                $crate::__diesel::query_source::TableNotEqual<
                    $crate::__diesel::query_builder::Tablesample<T, TSM>,
                > for $crate::$module::$table::table
            where
                $crate::__diesel::query_builder::Tablesample<T, TSM>: $crate::__diesel::Table,
            {
            }
            impl<T: $crate::extend::AppTable, TSM: $crate::__diesel::query_builder::TablesampleMethod>
                $crate::__diesel::query_source::TableNotEqual<$crate::$module::$table::table>
                for $crate::__diesel::query_builder::Tablesample<T, TSM>
            where
                $crate::__diesel::query_builder::Tablesample<T, TSM>: $crate::__diesel::Table,
            {
            }
        )*
    };
}

__pronghorn_each_table!(__pronghorn_blanket_impls!());

/// The impls the application writes for one of its tables, for each crate
/// table: between the two tables, and between each and the other's
/// `Only` / `Tablesample` where the application's table is the local type.
#[doc(hidden)]
#[macro_export]
macro_rules! __pronghorn_app_impls {
    ($app:ident ; $($module:ident :: $table:ident),*) => {
        $(
            impl $crate::__diesel::query_source::TableNotEqual<$crate::$module::$table::table>
                for $app::table
            {
            }
            impl $crate::__diesel::query_source::TableNotEqual<$app::table>
                for $crate::$module::$table::table
            {
            }
            impl $crate::__diesel::query_source::TableNotEqual<
                    $crate::__diesel::query_builder::Only<$crate::$module::$table::table>,
                > for $app::table
            {
            }
            impl $crate::__diesel::query_source::TableNotEqual<$app::table>
                for $crate::__diesel::query_builder::Only<$crate::$module::$table::table>
            {
            }
            impl<TSM: $crate::__diesel::query_builder::TablesampleMethod>
                $crate::__diesel::query_source::TableNotEqual<
                    $crate::__diesel::query_builder::Tablesample<$crate::$module::$table::table, TSM>,
                > for $app::table
            {
            }
            impl<TSM: $crate::__diesel::query_builder::TablesampleMethod>
                $crate::__diesel::query_source::TableNotEqual<$app::table>
                for $crate::__diesel::query_builder::Tablesample<$crate::$module::$table::table, TSM>
            {
            }
        )*
    };
}

/// Lets the application's tables (the modules `table!` made, in scope)
/// appear in one query with every table and view of this crate: joins,
/// filters and selects across both, checked by Diesel. One call in the
/// application, listing its tables; `diesel::joinable!` between an
/// application table and a crate table still says how they join, and the
/// application's tables among themselves still take
/// `diesel::allow_tables_to_appear_in_same_query!`.
///
/// See [`crate::extend`] for an example, and for what stays refused.
#[macro_export]
macro_rules! join_crate_tables {
    ($($app:ident),+ $(,)?) => {
        $(
            impl $crate::extend::AppTable for $app::table {}
            $crate::__pronghorn_each_table!(__pronghorn_app_impls!($app));
        )+
    };
}
