//! The `user_audit_log` table: who did what to which account.

use super::UserId;
use crate::schema::user_audit_log;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use std::net::IpAddr;
use uuid::Uuid;

/// One row of `user_audit_log`, as `log_user_action` writes it.
#[derive(
    Debug,
    Clone,
    PartialEq,
    serde::Serialize,
    diesel::Queryable,
    diesel::Selectable,
    diesel::Identifiable,
)]
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

/// A new audit log row. Every column is given explicitly, so every insert
/// shares one SQL text.
#[derive(Debug, Clone, diesel::Insertable)]
#[diesel(table_name = user_audit_log, treat_none_as_default_value = false)]
pub struct NewAuditEntry<'a> {
    /// The account the action was done to.
    pub user_id: Option<UserId>,
    /// Who did it (the user itself for self-service actions).
    pub actor_id: Option<UserId>,
    /// The action's name, e.g. `role_changed`.
    pub action: &'a str,
    /// Action-specific details (a JSON object).
    pub details: serde_json::Value,
    /// The request's client address.
    pub ip_address: Option<IpNet>,
    /// The request's user agent.
    pub user_agent: Option<&'a str>,
}

/// Which entries to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditQuery {
    /// Entries about this user.
    User(UserId),
    /// Entries this user did.
    Actor(UserId),
    /// Entries with this action name.
    Action(String),
}

impl AuditQuery {
    pub(crate) fn scope(&self) -> u64 {
        match self {
            AuditQuery::User(id) => crate::page::scope(&["audit", "user", &id.to_string()]),
            AuditQuery::Actor(id) => crate::page::scope(&["audit", "actor", &id.to_string()]),
            AuditQuery::Action(a) => crate::page::scope(&["audit", "action", a]),
        }
    }
}

/// User agents are cut to this many characters in the audit log.
const USER_AGENT_MAX: usize = 512;

/// Who made a request, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent` header. NUL bytes are dropped and it is cut
    /// to 512 characters before it is stored, since no request should fail
    /// over a header.
    pub user_agent: Option<String>,
}

impl RequestMeta {
    pub(crate) fn user_agent(&self) -> Option<String> {
        self.user_agent.as_deref().map(|ua| {
            ua.chars()
                .filter(|c| *c != '\0')
                .take(USER_AGENT_MAX)
                .collect()
        })
    }
}
