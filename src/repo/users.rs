//! Queries on `users`. Each function takes a connection, so any set of them
//! composes inside one transaction. Inputs are already validated.

use super::cache_by_sql::{KeepPrepared, RenderOnce};
use super::columns::Rendered;
use crate::error::{Error, Result};
use crate::functions::{
    coalesce_nullable_varchar, coalesce_ts, coalesce_varchar, jsonb_typeof, lower,
};
use crate::models::{NewUserRow, ProfileChanges};
use crate::models::{User, UserFilter, UserId};
use crate::page::Cursor;
use crate::schema::users;
use chrono::{DateTime, Utc};
use diesel::dsl::{case_when, not};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Jsonb, Nullable, Varchar};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// A user listing is ordered newest first; rows whose `created_at` is NULL
/// (possible in adopted data) sort as the epoch.
fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The keyset position of a user in listings.
pub(crate) fn cursor_of(user: &User) -> Cursor {
    Cursor {
        at: user.created_at.unwrap_or_else(epoch),
        id: user.id.0,
    }
}

fn not_found() -> Error {
    Error::NotFound { entity: "user" }
}

/// Inserts a user under a new random id and returns the row.
///
/// Fails with [`Error::Conflict`] on `users_email_key` (email taken) or
/// `unique_oauth` (OAuth identity taken).
pub async fn insert(conn: &AsyncPgConnection, row: &NewUserRow<'_>) -> Result<User> {
    insert_with_id(conn, UserId(uuid::Uuid::new_v4()), row).await
}

/// Inserts a user under an id the caller chose (a random UUID, as the
/// column's default would be) and returns the row: statements that refer
/// to the new user can then be pipelined with the insert.
///
/// Fails as [`insert`] does, and with [`Error::Conflict`] on `users_pkey`
/// when the id is taken.
pub async fn insert_with_id(
    mut conn: &AsyncPgConnection,
    id: UserId,
    row: &NewUserRow<'_>,
) -> Result<User> {
    Ok(diesel::insert_into(users::table)
        .values((users::id.eq(id), row))
        .returning(User::columns())
        .get_result(&mut conn)
        .await?)
}

/// Replaces every column `row` names (email, password hash, name, language,
/// OAuth identity, verification, role, avatar, additional roles) of the user
/// `id`, `None` writing NULL, and returns the row. Id, creation time, login
/// and block state stay. Fails with [`Error::NotFound`], or with
/// [`Error::Conflict`] on `users_email_key` when the email is another user's.
pub async fn overwrite(
    mut conn: &AsyncPgConnection,
    id: UserId,
    row: &NewUserRow<'_>,
) -> Result<User> {
    diesel::update(users::table.find(id))
        .set(row)
        .returning(User::columns())
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// The user with this id. Fails with [`Error::NotFound`].
pub async fn find_by_id(mut conn: &AsyncPgConnection, id: UserId) -> Result<User> {
    users::table
        .find(id)
        .select(User::columns())
        .limit(1)
        .render_once()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// The user with this id, locked until the transaction ends.
/// Fails with [`Error::NotFound`].
pub async fn lock_by_id(mut conn: &AsyncPgConnection, id: UserId) -> Result<User> {
    users::table
        .find(id)
        .select(User::columns())
        .for_update()
        .first(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// The user with this id, share-locked until the transaction ends: a
/// change that locks the row for update waits for this transaction, and
/// this waits for one in flight. Fails with [`Error::NotFound`].
pub async fn share_lock_by_id(mut conn: &AsyncPgConnection, id: UserId) -> Result<User> {
    users::table
        .find(id)
        .select(User::columns())
        .for_share()
        .first(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// The users with these ids (those that exist), locked until the
/// transaction ends, in one statement. Rows are locked in id order, so two
/// transactions locking overlapping sets cannot deadlock on them; the
/// result is in id order too.
pub async fn lock_by_ids(mut conn: &AsyncPgConnection, ids: &[UserId]) -> Result<Vec<User>> {
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .order(users::id)
        .select(User::columns())
        .for_update()
        .load(&mut conn)
        .await?)
}

/// The user whose email equals `email` ignoring case (`email` is already
/// normalised), or `None`. Served by the `lower(email)` index; when a
/// template-era database holds several emails differing only in case, the
/// exact match wins.
pub async fn find_by_email(mut conn: &AsyncPgConnection, email: &str) -> Result<Option<User>> {
    Ok(users::table
        .filter(lower(users::email).eq(email))
        .order((users::email.eq(email).desc(), users::created_at.asc()))
        .select(User::columns())
        .limit(1)
        .render_once()
        .get_result(&mut conn)
        .await
        .optional()?)
}

/// The OAuth user with this provider and id, or `None`.
pub async fn find_by_oauth(
    mut conn: &AsyncPgConnection,
    provider: &str,
    oauth_id: &str,
) -> Result<Option<User>> {
    Ok(users::table
        .filter(users::oauth_provider.eq(provider))
        .filter(users::oauth_id.eq(oauth_id))
        .select(User::columns())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Escapes `%`, `_` and `\` so that a search term matches literally inside
/// an ILIKE pattern.
fn like_pattern(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// One page of users, newest first, after `after` when given: `limit`
/// rows at most (the caller asks for one more than it shows).
pub async fn list(
    mut conn: &AsyncPgConnection,
    filter: &UserFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<User>> {
    let created = coalesce_ts(users::created_at, epoch());
    let mut query = users::table.select(User::columns()).into_boxed();
    if let Some(role) = filter.role {
        query = query.filter(users::role.eq(role.as_str()));
    }
    match filter.blocked {
        Some(true) => query = query.filter(users::is_blocked.eq(true)),
        Some(false) => {
            query = query.filter(users::is_blocked.is_null().or(users::is_blocked.eq(false)))
        }
        None => {}
    }
    if let Some(term) = filter.search.as_deref().filter(|t| !t.is_empty()) {
        let pattern = like_pattern(term);
        query = query.filter(
            users::email
                .ilike(pattern.clone())
                .or(users::display_name.ilike(pattern)),
        );
    }
    if let Some(c) = after {
        query = query.filter(
            coalesce_ts(users::created_at, epoch())
                .lt(c.at)
                .or(coalesce_ts(users::created_at, epoch())
                    .eq(c.at)
                    .and(users::id.lt(UserId(c.id)))),
        );
    }
    Ok(query
        .order((created.desc(), users::id.desc()))
        .limit(limit)
        .load(&mut conn)
        .await?)
}

/// Applies profile changes and returns the row. Fails with [`Error::NotFound`].
pub async fn update_profile(
    mut conn: &AsyncPgConnection,
    id: UserId,
    changes: &ProfileChanges<'_>,
) -> Result<User> {
    if changes.is_empty() {
        return find_by_id(conn, id).await;
    }
    // One text for every set of changes (a field left out keeps its
    // value), so the statement stays prepared.
    let avatar = changes.avatar_url;
    diesel::update(users::table.find(id))
        .set((
            users::display_name.eq(coalesce_varchar(changes.display_name, users::display_name)),
            users::language_preference.eq(coalesce_nullable_varchar(
                changes.language_preference,
                users::language_preference,
            )),
            users::avatar_url.eq(case_when(
                avatar.is_some().into_sql::<Bool>(),
                avatar.flatten().into_sql::<Nullable<Varchar>>(),
            )
            .otherwise(users::avatar_url)),
        ))
        .returning(User::columns())
        .keep_prepared()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Replaces the password hash. Fails with [`Error::NotFound`].
pub async fn set_password_hash(mut conn: &AsyncPgConnection, id: UserId, hash: &str) -> Result<()> {
    let n = diesel::update(users::table.find(id))
        .set(users::password_hash.eq(hash))
        .keep_prepared()
        .execute(&mut conn)
        .await?;
    if n == 0 {
        return Err(not_found());
    }
    Ok(())
}

/// Detaches the OAuth identity of `id` when the account's email is not
/// verified: the provider then never showed that whoever signed in owns
/// the address, so a password reset, which proves it, ends that sign-in
/// (`oauth_provider` back to `'local'`, `oauth_id` cleared). Returns
/// whether an identity was detached.
pub async fn detach_unverified_oauth(mut conn: &AsyncPgConnection, id: UserId) -> Result<bool> {
    let n = diesel::update(
        users::table
            .find(id)
            // NULL (a template column that allows it) is not verified either.
            .filter(users::email_verified.is_distinct_from(true))
            .filter(users::oauth_id.is_not_null()),
    )
    .set((
        users::oauth_provider.eq("local"),
        users::oauth_id.eq(None::<String>),
    ))
    .keep_prepared()
    .execute(&mut conn)
    .await?;
    Ok(n > 0)
}

/// Replaces the password hash only if it still is `old` (a concurrent
/// password change wins over a rehash). Returns whether it was replaced.
pub async fn upgrade_password_hash(
    mut conn: &AsyncPgConnection,
    id: UserId,
    old: &str,
    new: &str,
) -> Result<bool> {
    let n = diesel::update(users::table.find(id).filter(users::password_hash.eq(old)))
        .set(users::password_hash.eq(new))
        .keep_prepared()
        .execute(&mut conn)
        .await?;
    Ok(n == 1)
}

/// Whether any user's password hash is bcrypt, and whether any is argon2:
/// `(bcrypt, argon2)`. Each stops at the first such row.
pub async fn hash_schemes_present(mut conn: &AsyncPgConnection) -> Result<(bool, bool)> {
    let bcrypt = users::table.filter(users::password_hash.like("$2%"));
    let argon2 = users::table.filter(users::password_hash.like("$argon2%"));
    Ok(
        diesel::select((diesel::dsl::exists(bcrypt), diesel::dsl::exists(argon2)))
            .get_result(&mut conn)
            .await?,
    )
}

/// Sets `last_login` to now and returns the row. Fails with [`Error::NotFound`].
pub async fn record_login(mut conn: &AsyncPgConnection, id: UserId) -> Result<User> {
    diesel::update(users::table.find(id))
        .set(users::last_login.eq(diesel::dsl::now))
        .returning(User::columns())
        .keep_prepared()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Marks the email verified and returns the row. Fails with [`Error::NotFound`].
pub async fn set_email_verified(mut conn: &AsyncPgConnection, id: UserId) -> Result<User> {
    diesel::update(users::table.find(id))
        .set(users::email_verified.eq(true))
        .returning(User::columns())
        .keep_prepared()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Appends `role` to the user's additional roles unless it is there
/// already, in one statement, and returns the changed row: `None` when the
/// role was there (nothing is written) or the user does not exist. Other
/// entries of the JSON array are kept as they are; a column that holds no
/// JSON array (SQL NULL, JSON `null`, a string, an object) counts as an
/// empty list and is replaced, so a stray scalar never becomes a role.
pub async fn add_additional_role(
    mut conn: &AsyncPgConnection,
    id: UserId,
    role: &str,
) -> Result<Option<User>> {
    let entry = serde_json::json!([role]);
    let roles = || {
        case_when(
            jsonb_typeof(users::additional_roles).eq("array"),
            users::additional_roles,
        )
        .otherwise(serde_json::json!([]).into_sql::<Nullable<Jsonb>>())
    };
    Ok(diesel::update(
        users::table
            .find(id)
            .filter(not(roles().contains(entry.clone()))),
    )
    .set(users::additional_roles.eq(roles().concat(entry)))
    .returning(User::columns())
    .keep_prepared()
    .get_result(&mut conn)
    .await
    .optional()?)
}

/// Removes every `role` entry from the user's additional roles when there
/// is one, in one statement, and returns the changed row: `None` when the
/// role was not there (nothing is written; a column holding no JSON array
/// holds no role) or the user does not exist.
pub async fn remove_additional_role(
    mut conn: &AsyncPgConnection,
    id: UserId,
    role: &str,
) -> Result<Option<User>> {
    let entry = serde_json::json!([role]);
    Ok(diesel::update(
        users::table
            .find(id)
            .filter(users::additional_roles.contains(entry)),
    )
    .set(users::additional_roles.eq(users::additional_roles.remove(role)))
    .returning(User::columns())
    .keep_prepared()
    .get_result(&mut conn)
    .await
    .optional()?)
}

/// Sets the role and returns the row. Fails with [`Error::NotFound`].
pub async fn set_role(mut conn: &AsyncPgConnection, id: UserId, role: &str) -> Result<User> {
    diesel::update(users::table.find(id))
        .set(users::role.eq(role))
        .returning(User::columns())
        .keep_prepared()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Blocks (with reason and actor) or unblocks a user and returns the row;
/// the `user_blocked_at` trigger keeps `blocked_at` and clears the block
/// columns on unblock. Fails with [`Error::NotFound`].
pub async fn set_blocked(
    mut conn: &AsyncPgConnection,
    id: UserId,
    block: Option<(&str, UserId)>,
) -> Result<User> {
    let (is_blocked, reason, actor) = match block {
        Some((reason, actor)) => (true, Some(reason), Some(actor)),
        None => (false, None, None),
    };
    diesel::update(users::table.find(id))
        .set((
            users::is_blocked.eq(is_blocked),
            users::blocked_reason.eq(reason),
            users::blocked_by.eq(actor),
        ))
        .returning(User::columns())
        .keep_prepared()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Deletes a user (its refresh tokens, conversations and reset requests go
/// with it; audit entries stay, with the user set to NULL). Blocks this user
/// imposed stay in force with their actor forgotten, since `blocked_by` has
/// no ON DELETE clause in the template's schema. Fails with
/// [`Error::NotFound`].
/// Its three statements are pipelined (sent together, run in order).
pub async fn delete(mut conn: &AsyncPgConnection, id: UserId) -> Result<()> {
    let ids = [id];
    let (forgotten, deleted) = futures_util::future::join(
        forget_blockers(conn, &ids),
        diesel::delete(users::table.find(id)).execute(&mut conn),
    )
    .await;
    forgotten?;
    if deleted? == 0 {
        return Err(not_found());
    }
    Ok(())
}

/// Clears `blocked_by` (on users and websocket connections) where it points
/// at one of `ids`: two statements, pipelined.
async fn forget_blockers(conn: &AsyncPgConnection, ids: &[UserId]) -> Result<()> {
    use crate::schema::websocket_connections as ws;
    let (mut on_connections, mut on_users) = (conn, conn);
    let (connections, users) = futures_util::future::join(
        diesel::update(ws::table.filter(ws::blocked_by.eq_any(ids)))
            .set(ws::blocked_by.eq(None::<UserId>))
            .keep_prepared()
            .execute(&mut on_connections),
        diesel::update(users::table.filter(users::blocked_by.eq_any(ids)))
            .set(users::blocked_by.eq(None::<UserId>))
            .keep_prepared()
            .execute(&mut on_users),
    )
    .await;
    connections?;
    users?;
    Ok(())
}

/// How many users hold each role (`None` for a NULL role), most common first.
pub async fn count_by_role(mut conn: &AsyncPgConnection) -> Result<Vec<(Option<String>, i64)>> {
    Ok(users::table
        .group_by(users::role)
        .select((users::role, diesel::dsl::count_star()))
        .order((diesel::dsl::count_star().desc(), users::role.asc()))
        .load(&mut conn)
        .await?)
}

/// Deletes every user whose role is not `superadmin` (as [`delete`] does
/// for one); returns how many.
pub async fn delete_all_but_superadmins(mut conn: &AsyncPgConnection) -> Result<usize> {
    let doomed: Vec<UserId> = users::table
        .filter(users::role.is_distinct_from("superadmin"))
        .select(users::id)
        .load(&mut conn)
        .await?;
    forget_blockers(conn, &doomed).await?;
    Ok(
        diesel::delete(users::table.filter(users::id.eq_any(&doomed)))
            .execute(&mut conn)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(like_pattern("plain"), "%plain%");
    }
}
