//! The `migrations` table: the Node template's own migration record. This
//! crate tracks its migrations in `__diesel_schema_migrations`, but keeps
//! this table filled (by name) so that a Node app sharing the database does
//! not run its migrations again.

use crate::schema::migrations;
use chrono::{DateTime, Utc};

/// One row of the template's `migrations` table.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, diesel::Identifiable)]
#[diesel(table_name = migrations)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct TemplateMigration {
    /// Serial primary key.
    pub id: i32,
    /// The template's migration name, e.g. `create_users_table`; unique.
    pub name: String,
    /// When it was applied.
    pub executed_at: Option<DateTime<Utc>>,
}
