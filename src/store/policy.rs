//! Who may act on whom: the template's role hierarchy for admin actions,
//! and the row locks that keep it true until the action commits.
//!
//! Used by the store parts that act for an admin ([`UserStore`](super::UserStore),
//! [`PasswordResetStore`](super::PasswordResetStore)); it imports nothing above
//! the repositories.

use crate::error::{Error, Result};
use crate::models::{Role, User, UserId};
use crate::repo::users as repo;
use diesel_async::AsyncPgConnection;

fn role_level(role: Option<&str>) -> i32 {
    role.and_then(|r| r.parse::<Role>().ok())
        .map_or(0, Role::level)
}

/// The template's hierarchy: the actor's level must be strictly above the
/// target's current level and, when a new role is given, above it too.
pub(crate) fn authorize(
    actor: &User,
    target_role: Option<&str>,
    new_role: Option<Role>,
) -> Result<()> {
    if actor.blocked() {
        return Err(Error::Forbidden {
            reason: "a blocked account cannot manage users".into(),
        });
    }
    let mine = role_level(actor.role.as_deref());
    if mine <= role_level(target_role) {
        return Err(Error::Forbidden {
            reason: "only users below the actor's own role can be managed".into(),
        });
    }
    if let Some(new_role) = new_role {
        if mine <= new_role.level() {
            return Err(Error::Forbidden {
                reason: format!("the actor cannot grant the role {new_role}"),
            });
        }
    }
    Ok(())
}

/// Loads and locks the actor, so that its role cannot change until the
/// action commits (unknown actors are refused, not "not found").
pub(crate) async fn lock_actor(conn: &AsyncPgConnection, actor: UserId) -> Result<User> {
    match repo::lock_by_id(conn, actor).await {
        Err(Error::NotFound { .. }) => Err(Error::Forbidden {
            reason: "the acting user does not exist".into(),
        }),
        other => other,
    }
}

/// Locks the acting admin and the target user in one statement, in id
/// order (so that two admins acting on each other cannot deadlock), so that
/// neither's role or block can change until the action commits. Returns
/// `(actor, target)`.
///
/// Fails with [`Error::Forbidden`] when the actor does not exist (whether
/// or not the target does), and [`Error::NotFound`] when only the target
/// does not.
pub(crate) async fn lock_actor_and_target(
    conn: &AsyncPgConnection,
    actor: UserId,
    target: UserId,
) -> Result<(User, User)> {
    let locked = repo::lock_by_ids(conn, &[actor, target]).await?;
    let find = |id: UserId| locked.iter().find(|u| u.id == id).cloned();
    let admin = find(actor).ok_or_else(|| Error::Forbidden {
        reason: "the acting user does not exist".into(),
    })?;
    let user = find(target).ok_or(Error::NotFound { entity: "user" })?;
    Ok((admin, user))
}
