//! The `user_audit_log` table: who did what to which account.

use super::UserId;
use crate::schema::user_audit_log;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use uuid::Uuid;

/// One row of `user_audit_log`, as `log_user_action` writes it.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, diesel::Identifiable)]
#[diesel(table_name = user_audit_log)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct AuditLogEntry {
    /// Primary key.
    pub id: Uuid,
    /// The account acted on (NULL once it is deleted).
    pub user_id: Option<UserId>,
    /// Who acted (NULL once deleted, or for system actions).
    pub actor_id: Option<UserId>,
    /// What happened, e.g. `user_blocked`, `role_changed`.
    pub action: String,
    /// Action-specific details (default `{}`), e.g. `{"reason": ...}`.
    pub details: Option<serde_json::Value>,
    /// The actor's address.
    pub ip_address: Option<IpNet>,
    /// The actor's `User-Agent`.
    pub user_agent: Option<String>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}
