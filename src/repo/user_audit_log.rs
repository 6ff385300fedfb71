//! Queries on `user_audit_log`: append and read; entries are never updated
//! or deleted here.

use super::columns::Rendered;
use crate::error::Result;
use crate::models::NewAuditEntry;
use crate::models::{AuditLogEntry, AuditQuery};
use crate::page::Cursor;
use crate::schema::user_audit_log as log;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// The keyset position of an entry.
pub(crate) fn cursor_of(entry: &AuditLogEntry) -> Cursor {
    Cursor {
        at: entry.created_at,
        id: entry.id,
    }
}

/// Appends an entry and returns its id.
pub async fn record(mut conn: &AsyncPgConnection, entry: &NewAuditEntry<'_>) -> Result<uuid::Uuid> {
    Ok(diesel::insert_into(log::table)
        .values(entry)
        .returning(log::id)
        .get_result(&mut conn)
        .await?)
}

/// Entries matching `query`, newest first, after `after` when given.
pub async fn list(
    mut conn: &AsyncPgConnection,
    query: &AuditQuery,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<AuditLogEntry>> {
    let mut q = log::table.select(AuditLogEntry::columns()).into_boxed();
    q = match query {
        AuditQuery::User(id) => q.filter(log::user_id.eq(*id)),
        AuditQuery::Actor(id) => q.filter(log::actor_id.eq(*id)),
        AuditQuery::Action(a) => q.filter(log::action.eq(a.clone())),
    };
    if let Some(c) = after {
        q = q.filter(
            log::created_at
                .lt(c.at)
                .or(log::created_at.eq(c.at).and(log::id.lt(c.id))),
        );
    }
    Ok(q.order((log::created_at.desc(), log::id.desc()))
        .limit(limit)
        .load(&mut conn)
        .await?)
}
