//! Queries on `websocket_connections`, its two views and its cleanup
//! function. Inputs are already validated; IP addresses arrive as every
//! form under which the address may be stored (see the store).

use super::cache_by_sql::KeepPrepared;
use super::columns::Rendered;
use crate::error::{Error, Result};
use crate::functions::cleanup_old_websocket_connections;
use crate::functions::coalesce_jsonb;
use crate::models::NewWebsocketConnectionRow;
use crate::models::{ActiveWebsocketConnection, WebsocketConnectionStats};
use crate::models::{UserId, WebsocketConnection};
use crate::page::Cursor;
use crate::schema::websocket_connections as ws;
use crate::schema::{
    active_websocket_connections as active, websocket_connection_stats as stats_view,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ipnet::IpNet;

fn not_found() -> Error {
    Error::NotFound {
        entity: "websocket connection",
    }
}

/// The keyset position of an open connection in the active listing.
pub(crate) fn cursor_of(row: &ActiveWebsocketConnection) -> Cursor {
    Cursor {
        at: row.connected_at,
        id: row.id,
    }
}

/// Records a connection in one statement: inserts the row, or, when a row
/// with the same `connection_id` exists, reopens it (`connected_at` and
/// `last_activity_at` now, `disconnected_at` cleared, `user_id` and
/// `is_authenticated` from `row`; counters, block and metadata kept).
/// Returns the row as stored.
///
/// Fails with [`Error::Conflict`] on `websocket_connections_user_id_fkey`
/// when the user does not exist.
pub async fn upsert(
    mut conn: &AsyncPgConnection,
    row: &NewWebsocketConnectionRow<'_>,
) -> Result<WebsocketConnection> {
    Ok(diesel::insert_into(ws::table)
        .values(row)
        .on_conflict(ws::connection_id)
        .do_update()
        .set((
            ws::connected_at.eq(diesel::dsl::now),
            ws::disconnected_at.eq(None::<DateTime<Utc>>),
            ws::last_activity_at.eq(diesel::dsl::now),
            ws::user_id.eq(excluded(ws::user_id)),
            ws::is_authenticated.eq(excluded(ws::is_authenticated)),
        ))
        .returning(WebsocketConnection::columns())
        .keep_prepared()
        .get_result(&mut conn)
        .await?)
}

/// The connection with this id. Fails with [`Error::NotFound`].
pub async fn find(
    mut conn: &AsyncPgConnection,
    connection_id: &str,
) -> Result<WebsocketConnection> {
    ws::table
        .filter(ws::connection_id.eq(connection_id))
        .select(WebsocketConnection::columns())
        .first(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Counts one message on the connection (`message_count + 1`,
/// `last_activity_at` now) and returns the new count.
/// Fails with [`Error::NotFound`].
pub async fn record_activity(mut conn: &AsyncPgConnection, connection_id: &str) -> Result<i32> {
    diesel::update(ws::table.filter(ws::connection_id.eq(connection_id)))
        .set((
            ws::message_count.eq(ws::message_count + 1),
            ws::last_activity_at.eq(diesel::dsl::now),
        ))
        .returning(ws::message_count)
        .keep_prepared()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Merges the top-level keys of `patch` (a JSON object) into the
/// connection's metadata (jsonb `||`: keys in `patch` win, a NULL metadata
/// counts as `{}`) and returns the row. Fails with [`Error::NotFound`].
pub async fn merge_metadata(
    mut conn: &AsyncPgConnection,
    connection_id: &str,
    patch: &serde_json::Value,
) -> Result<WebsocketConnection> {
    diesel::update(ws::table.filter(ws::connection_id.eq(connection_id)))
        .set(
            ws::metadata.eq(coalesce_jsonb(ws::metadata, serde_json::json!({}))
                .concat(patch)
                .nullable()),
        )
        .returning(WebsocketConnection::columns())
        .keep_prepared()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Marks the connection closed and returns the row. Closing an already
/// closed connection keeps its first `disconnected_at`.
/// Fails with [`Error::NotFound`].
pub async fn disconnect(
    mut conn: &AsyncPgConnection,
    connection_id: &str,
) -> Result<WebsocketConnection> {
    diesel::update(ws::table.filter(ws::connection_id.eq(connection_id)))
        .set(
            ws::disconnected_at.eq(crate::functions::coalesce_ts(
                ws::disconnected_at,
                diesel::dsl::now,
            )
            .nullable()),
        )
        .returning(WebsocketConnection::columns())
        .keep_prepared()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Blocks (with reason and actor) or, with `None`, unblocks one connection
/// and returns the row. The `ws_connection_blocked_at` trigger sets
/// `blocked_at` on block and clears the block columns on unblock.
///
/// Fails with [`Error::NotFound`], or [`Error::Conflict`] on
/// `websocket_connections_blocked_by_fkey` when the actor does not exist.
pub async fn set_blocked(
    mut conn: &AsyncPgConnection,
    connection_id: &str,
    block: Option<(&str, UserId)>,
) -> Result<WebsocketConnection> {
    let (is_blocked, reason, actor) = split_block(block);
    diesel::update(ws::table.filter(ws::connection_id.eq(connection_id)))
        .set((
            ws::is_blocked.eq(is_blocked),
            ws::blocked_reason.eq(reason),
            ws::blocked_by.eq(actor),
        ))
        .returning(WebsocketConnection::columns())
        .keep_prepared()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Blocks every connection, open or closed, whose address is one of `ips`,
/// or, with `None`, unblocks those of them that are blocked; returns how
/// many rows changed.
///
/// Fails with [`Error::Conflict`] on `websocket_connections_blocked_by_fkey`
/// when the actor does not exist.
pub async fn set_blocked_ip(
    mut conn: &AsyncPgConnection,
    ips: &[IpNet],
    block: Option<(&str, UserId)>,
) -> Result<usize> {
    let (is_blocked, reason, actor) = split_block(block);
    let changes = (
        ws::is_blocked.eq(is_blocked),
        ws::blocked_reason.eq(reason),
        ws::blocked_by.eq(actor),
    );
    let from_ips = ws::table.filter(ws::ip_address.eq_any(ips));
    let n = if is_blocked {
        diesel::update(from_ips)
            .set(changes)
            .execute(&mut conn)
            .await?
    } else {
        // Rows that are not blocked need no write (nor an updated_at bump).
        diesel::update(from_ips.filter(ws::is_blocked.eq(true)))
            .set(changes)
            .execute(&mut conn)
            .await?
    };
    Ok(n)
}

fn split_block(block: Option<(&str, UserId)>) -> (bool, Option<&str>, Option<UserId>) {
    match block {
        Some((reason, actor)) => (true, Some(reason), Some(actor)),
        None => (false, None, None),
    }
}

/// Whether a blocked row exists for `connection_id`, or for any of `ips`.
/// With neither, nothing matches and the answer is `false`.
pub async fn is_blocked(
    mut conn: &AsyncPgConnection,
    connection_id: Option<&str>,
    ips: &[IpNet],
) -> Result<bool> {
    let query = ws::table.filter(ws::is_blocked.eq(true)).into_boxed();
    let query = match (connection_id, ips.is_empty()) {
        (Some(id), true) => query.filter(ws::connection_id.eq(id)),
        (Some(id), false) => query.filter(ws::connection_id.eq(id).or(ws::ip_address.eq_any(ips))),
        (None, false) => query.filter(ws::ip_address.eq_any(ips)),
        (None, true) => return Ok(false),
    };
    Ok(diesel::select(diesel::dsl::exists(query))
        .get_result(&mut conn)
        .await?)
}

/// One page of open connections (the `active_websocket_connections` view),
/// most recently connected first, after `after` when given.
pub async fn active(
    mut conn: &AsyncPgConnection,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<ActiveWebsocketConnection>> {
    let mut query = active::table
        .select(ActiveWebsocketConnection::columns())
        .into_boxed();
    if let Some(c) = after {
        query = query.filter(
            active::connected_at
                .lt(c.at)
                .or(active::connected_at.eq(c.at).and(active::id.lt(c.id))),
        );
    }
    Ok(query
        .order((active::connected_at.desc(), active::id.desc()))
        .limit(limit)
        .load(&mut conn)
        .await?)
}

/// The one row of the `websocket_connection_stats` view.
pub async fn stats(mut conn: &AsyncPgConnection) -> Result<WebsocketConnectionStats> {
    Ok(stats_view::table
        .select(WebsocketConnectionStats::columns())
        .first(&mut conn)
        .await?)
}

/// Runs `cleanup_old_websocket_connections(days_to_keep)`: deletes the
/// connections closed more than that many days ago and returns how many.
pub async fn cleanup(mut conn: &AsyncPgConnection, days_to_keep: i32) -> Result<i32> {
    Ok(
        diesel::select(cleanup_old_websocket_connections(days_to_keep))
            .get_result(&mut conn)
            .await?,
    )
}
