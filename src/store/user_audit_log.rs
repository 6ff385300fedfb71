//! The user audit log (`user_audit_log`): the [`AuditStore`] part of the
//! store, the writer the other parts call in their transactions, the names
//! of the actions and who made the request.

use super::pg::ReadFrom;
use super::PgStore;
use crate::error::Result;
use crate::models::NewAuditEntry;
use crate::models::{AuditLogEntry, AuditQuery, RequestMeta, UserId};
use crate::observe::observed;
use crate::page::{Page, PageRequest};
use crate::repo::user_audit_log as audit_repo;
use crate::validate;
use diesel_async::AsyncPgConnection;
use pronghorn_db_macros::store_part;

/// The names of the audit actions this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// A user changed its own profile; details `{fields}`.
    ProfileUpdated,
    /// A user changed its own password.
    PasswordChanged,
    /// A user deleted its own account.
    AccountSelfDeleted,
    /// An admin created a user; details `{role, email_verified}`.
    UserCreatedByAdmin,
    /// An admin changed a user's profile; details `{fields}`.
    UserUpdatedByAdmin,
    /// An admin changed a user's role; details `{previousRole, newRole}`.
    RoleChanged,
    /// An admin blocked a user; details `{reason}`.
    UserBlocked,
    /// An admin unblocked a user.
    UserUnblocked,
    /// An admin deleted a user; details `{email}`.
    UserDeleted,
    /// An admin generated a password reset token for a user; details
    /// `{requestId}`, which lets a block, role change, deletion or password
    /// change of that admin end the link (an entry without it, as the Node
    /// app writes them, is skipped).
    AdminGeneratedResetToken,
    /// A user set a new password with a password reset token; details
    /// `{requestId}`.
    PasswordReset,
}

impl AuditAction {
    /// The name stored in `user_audit_log.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ProfileUpdated => "profile_updated",
            AuditAction::PasswordChanged => "password_changed",
            AuditAction::AccountSelfDeleted => "account_self_deleted",
            AuditAction::UserCreatedByAdmin => "user_created_by_admin",
            AuditAction::UserUpdatedByAdmin => "user_updated_by_admin",
            AuditAction::RoleChanged => "role_changed",
            AuditAction::UserBlocked => "user_blocked",
            AuditAction::UserUnblocked => "user_unblocked",
            AuditAction::UserDeleted => "user_deleted",
            AuditAction::AdminGeneratedResetToken => "admin_generated_reset_token",
            AuditAction::PasswordReset => "password_reset",
        }
    }
}

/// Appends one entry to the audit log, on the caller's connection (inside
/// its transaction). Fails as the insert does.
pub(crate) async fn audit(
    conn: &AsyncPgConnection,
    action: AuditAction,
    user: Option<UserId>,
    actor: Option<UserId>,
    details: serde_json::Value,
    meta: &RequestMeta,
) -> Result<()> {
    let user_agent = meta.user_agent();
    audit_repo::record(
        conn,
        &NewAuditEntry {
            user_id: user,
            actor_id: actor,
            action: action.as_str(),
            details,
            ip_address: meta.ip.map(ipnet::IpNet::from),
            user_agent: user_agent.as_deref(),
        },
    )
    .await?;
    Ok(())
}

/// Reading the audit log (entries are only ever appended, by the store).
#[store_part]
impl AuditStore for PgStore {
    /// Entries about a user, by an actor or with an action, newest first.
    /// Fails with [`Error::Validation`](crate::Error::Validation) on `cursor` for a foreign cursor.
    async fn audit_log(
        &self,
        query: &AuditQuery,
        page: &PageRequest,
    ) -> Result<Page<AuditLogEntry>> {
        observed!(self.slow(), "audit_log", async {
            if let AuditQuery::Action(a) = query {
                validate::required("action", a, 100)?;
            }
            let scope = query.scope();
            let query = query.clone();
            self.page(
                ReadFrom::Replica,
                page,
                scope,
                audit_repo::cursor_of,
                move |conn, after, n| {
                    let query = query.clone();
                    Box::pin(async move { audit_repo::list(conn, &query, after, n).await })
                },
            )
            .await
        })
    }
}
