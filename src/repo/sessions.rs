//! Queries on `session`, the connect-pg-simple table a Node app may share.
//!
//! `expire` is a `timestamp` without time zone. connect-pg-simple writes
//! `to_timestamp(seconds)` into it, which PostgreSQL stores as the wall-clock
//! time in the writing session's `TimeZone`, and compares it with
//! `to_timestamp(now)` the same way. These queries do exactly that, on the
//! database side: an instant is written as `timezone(current_setting('TimeZone'), $1)`,
//! read back as an instant the inverse way, and compared with `now()`. With
//! the server's usual `TimeZone` of UTC the column holds UTC; with any other
//! setting both apps still agree, since neither sets `TimeZone` itself.

use super::cache_by_sql::KeepPrepared;
use crate::error::Result;
use crate::functions::{current_setting, instant, wall_clock};
use crate::models::UserId;
use crate::schema::session;
use chrono::{DateTime, Utc};
use diesel::dsl::{now, sql};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// The setting whose zone connect-pg-simple's writes use: the session's.
const TIME_ZONE: &str = "TimeZone";

/// The data and expiry of the session `sid` when it exists and has not
/// expired (`expire >= now()`, as connect-pg-simple reads), else `None`.
pub async fn find_live(
    mut conn: &AsyncPgConnection,
    sid: &str,
) -> Result<Option<(serde_json::Value, DateTime<Utc>)>> {
    Ok(session::table
        .find(sid)
        .filter(session::expire.ge(now))
        .select((
            session::sess,
            instant(current_setting(TIME_ZONE), session::expire),
        ))
        .first(&mut conn)
        .await
        .optional()?)
}

/// Inserts a new session; leaves an existing row with this id alone.
/// Returns whether it inserted.
pub async fn insert_new(
    mut conn: &AsyncPgConnection,
    sid: &str,
    sess: &serde_json::Value,
    expires_at: DateTime<Utc>,
) -> Result<bool> {
    let expire = wall_clock(current_setting(TIME_ZONE), expires_at);
    let n = diesel::insert_into(session::table)
        .values((
            session::sid.eq(sid),
            session::sess.eq(sess),
            session::expire.eq(expire),
        ))
        .on_conflict_do_nothing()
        .keep_prepared()
        .execute(&mut conn)
        .await?;
    Ok(n == 1)
}

/// Inserts the session, or replaces the data and expiry of an existing one
/// (`INSERT .. ON CONFLICT (sid) DO UPDATE`, as connect-pg-simple does).
pub async fn upsert(
    mut conn: &AsyncPgConnection,
    sid: &str,
    sess: &serde_json::Value,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    let expire = wall_clock(current_setting(TIME_ZONE), expires_at);
    diesel::insert_into(session::table)
        .values((
            session::sid.eq(sid),
            session::sess.eq(sess),
            session::expire.eq(expire),
        ))
        .on_conflict(session::sid)
        .do_update()
        .set((
            session::sess.eq(excluded(session::sess)),
            session::expire.eq(excluded(session::expire)),
        ))
        .keep_prepared()
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Moves the expiry of a session that has not expired yet; its data is left
/// exactly as stored. Returns whether such a session existed.
pub async fn touch(
    mut conn: &AsyncPgConnection,
    sid: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool> {
    let n = diesel::update(session::table.find(sid).filter(session::expire.ge(now)))
        .set(session::expire.eq(wall_clock(current_setting(TIME_ZONE), expires_at)))
        .keep_prepared()
        .execute(&mut conn)
        .await?;
    Ok(n == 1)
}

/// Deletes the session. Returns whether it existed.
pub async fn delete(mut conn: &AsyncPgConnection, sid: &str) -> Result<bool> {
    let n = diesel::delete(session::table.find(sid))
        .execute(&mut conn)
        .await?;
    Ok(n == 1)
}

/// Deletes every session, live or expired, whose `sess` is an object with a
/// `userId` equal to the user's id as text (lowercase and hyphenated, as the
/// store and `uuid::Uuid`'s `Display` write it); returns how many. Sessions
/// that are not objects, have no `userId`, or hold another value are left
/// alone.
///
/// The key is SQL text, not a bind parameter, so that the statement matches
/// the partial index `idx_session_user_id` on `(sess ->> 'userId')` in its
/// generic plan too.
pub async fn delete_all_of_user(mut conn: &AsyncPgConnection, user: UserId) -> Result<usize> {
    let user_id = session::sess.retrieve_as_text(sql::<Text>("'userId'"));
    Ok(
        diesel::delete(session::table.filter(user_id.eq(user.0.to_string())))
            .keep_prepared()
            .execute(&mut conn)
            .await?,
    )
}

/// Deletes every expired session (`expire < now()`, through
/// `IDX_session_expire`); returns how many.
pub async fn delete_expired(mut conn: &AsyncPgConnection) -> Result<usize> {
    Ok(
        diesel::delete(session::table.filter(session::expire.lt(now)))
            .execute(&mut conn)
            .await?,
    )
}
