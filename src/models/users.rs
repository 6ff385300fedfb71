//! The `users` table: accounts, local (with a password hash) or OAuth.

use crate::error::Error;
use crate::schema::users;
use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The id of a user (`users.id`, and every column that refers to it).
///
/// Maps to SQL `uuid` both ways, so it can be bound in queries and read
/// from rows in place of a bare [`Uuid`].
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    AsExpression,
    FromSqlRow,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
#[diesel(sql_type = sql_types::Uuid)]
pub struct UserId(pub Uuid);

impl UserId {
    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for UserId {
    fn from(id: Uuid) -> Self {
        UserId(id)
    }
}

impl From<UserId> for Uuid {
    fn from(id: UserId) -> Self {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromSql<sql_types::Uuid, Pg> for UserId {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <Uuid as FromSql<sql_types::Uuid, Pg>>::from_sql(bytes).map(UserId)
    }
}

impl ToSql<sql_types::Uuid, Pg> for UserId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Uuid as ToSql<sql_types::Uuid, Pg>>::to_sql(&self.0, out)
    }
}

/// A user's role in the template's hierarchy.
///
/// The `role` column is free text (the template put no CHECK on it), so a
/// row may hold a name that is not a `Role`: [`User::parsed_role`] then
/// gives `None`, and the SQL functions give it level 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including managing admins (`superadmin`, level 100).
    Superadmin,
    /// Manages ordinary users (`admin`, level 50).
    Admin,
    /// An ordinary account (`user`, level 10; the column's default).
    User,
}

impl Role {
    /// Every role, highest first.
    pub const ALL: [Role; 3] = [Role::Superadmin, Role::Admin, Role::User];

    /// The role's level, as the SQL function `get_role_level` gives it:
    /// 100, 50 or 10 (unknown names have 0 there).
    pub fn level(self) -> i32 {
        match self {
            Role::Superadmin => 100,
            Role::Admin => 50,
            Role::User => 10,
        }
    }

    /// The name stored in `users.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Superadmin => "superadmin",
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    /// Parses the exact stored name (`superadmin`, `admin`, `user`; case
    /// matters, as it does for `is_valid_role`).
    ///
    /// Fails with [`Error::Validation`] on field `role` for any other text.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::validation("role", format!("unknown role {s:?}")))
    }
}

/// One row of `users`.
///
/// `Debug` shows whether `password_hash` and `reset_token` are set, never
/// their values, and `Serialize` (for JSON responses) leaves both out.
#[derive(
    Clone, PartialEq, serde::Serialize, diesel::Queryable, diesel::Selectable, diesel::Identifiable,
)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct User {
    /// Primary key.
    pub id: UserId,
    /// Login email; unique.
    pub email: String,
    /// The password hash (argon2id PHC string, or a legacy bcrypt hash from
    /// the template); `None` for OAuth accounts.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// The name shown in the UI.
    pub display_name: String,
    /// UI language code (default `en`).
    pub language_preference: Option<String>,
    /// `local`, or the OAuth provider's name (e.g. `google`).
    pub oauth_provider: Option<String>,
    /// The account's id at the OAuth provider.
    pub oauth_id: Option<String>,
    /// Whether the email address was verified.
    pub email_verified: Option<bool>,
    /// The role name, free text; see [`User::parsed_role`].
    pub role: Option<String>,
    /// When the row was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When the row last changed (kept by the `users_updated_at` trigger).
    pub updated_at: Option<DateTime<Utc>>,
    /// The last successful login.
    pub last_login: Option<DateTime<Utc>>,
    /// Profile picture URL.
    pub avatar_url: Option<String>,
    /// Extra role names, a JSON array (default `[]`).
    pub additional_roles: Option<serde_json::Value>,
    /// Whether the account is blocked.
    pub is_blocked: Option<bool>,
    /// When it was blocked (set and cleared by the `user_blocked_at` trigger).
    pub blocked_at: Option<DateTime<Utc>>,
    /// Who blocked it.
    pub blocked_by: Option<UserId>,
    /// Why it was blocked.
    pub blocked_reason: Option<String>,
    /// The hash of the current password reset token, if any.
    #[serde(skip)]
    pub reset_token: Option<String>,
    /// When the current reset token expires.
    pub reset_token_expires: Option<DateTime<Utc>>,
    /// Whether the current reset token was used.
    pub reset_token_used: Option<bool>,
    /// Failed reset attempts since `reset_attempts_reset_at`.
    pub reset_attempts: Option<i32>,
    /// When the reset attempt counter was last reset.
    pub reset_attempts_reset_at: Option<DateTime<Utc>>,
}

impl User {
    /// The role as a [`Role`]; `None` when the column is NULL or holds a
    /// name that is not a role.
    pub fn parsed_role(&self) -> Option<Role> {
        self.role.as_deref().and_then(|r| r.parse().ok())
    }

    /// Whether the account is blocked (a NULL `is_blocked` counts as not).
    pub fn blocked(&self) -> bool {
        self.is_blocked.unwrap_or(false)
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &super::redacted(&self.password_hash))
            .field("display_name", &self.display_name)
            .field("language_preference", &self.language_preference)
            .field("oauth_provider", &self.oauth_provider)
            .field("oauth_id", &self.oauth_id)
            .field("email_verified", &self.email_verified)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("last_login", &self.last_login)
            .field("avatar_url", &self.avatar_url)
            .field("additional_roles", &self.additional_roles)
            .field("is_blocked", &self.is_blocked)
            .field("blocked_at", &self.blocked_at)
            .field("blocked_by", &self.blocked_by)
            .field("blocked_reason", &self.blocked_reason)
            .field("reset_token", &super::redacted(&self.reset_token))
            .field("reset_token_expires", &self.reset_token_expires)
            .field("reset_token_used", &self.reset_token_used)
            .field("reset_attempts", &self.reset_attempts)
            .field("reset_attempts_reset_at", &self.reset_attempts_reset_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_rank() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
            assert_eq!(role.to_string(), role.as_str());
        }
        assert!(Role::Superadmin.level() > Role::Admin.level());
        assert!(Role::Admin.level() > Role::User.level());
        assert!(matches!(
            "Admin".parse::<Role>(),
            Err(Error::Validation { field: "role", .. })
        ));
        assert!("".parse::<Role>().is_err());
    }
}

/// A new row of `users`, as the repository inserts it; also the full set of
/// columns that [`crate::repo::users::overwrite`] replaces.
///
/// Every column is given explicitly (no `None` falls back to a column
/// default, and as a changeset `None` writes NULL), so every insert has the
/// same SQL text and reuses one prepared statement. `Debug` never shows the
/// password hash.
#[derive(Clone, diesel::Insertable, diesel::AsChangeset)]
#[diesel(
    table_name = users,
    treat_none_as_default_value = false,
    treat_none_as_null = true
)]
pub struct NewUserRow<'a> {
    /// Normalised (trimmed, lower-case) email.
    pub email: &'a str,
    /// argon2id PHC string; `None` for OAuth accounts.
    pub password_hash: Option<&'a str>,
    /// The name shown in the UI.
    pub display_name: &'a str,
    /// UI language code.
    pub language_preference: &'a str,
    /// `local` or the OAuth provider.
    pub oauth_provider: &'a str,
    /// The account's id at the OAuth provider.
    pub oauth_id: Option<&'a str>,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// The role name.
    pub role: &'a str,
    /// Profile picture URL.
    pub avatar_url: Option<&'a str>,
    /// Extra role names (a JSON array of strings).
    pub additional_roles: serde_json::Value,
}

impl fmt::Debug for NewUserRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUserRow")
            .field("email", &self.email)
            .field("password_hash", &super::redacted(&self.password_hash))
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("oauth_provider", &self.oauth_provider)
            .finish_non_exhaustive()
    }
}

/// The profile columns a user may change; `None` leaves a column as it is
/// (`avatar_url: Some(None)` clears the avatar).
#[derive(Debug, Clone, Default, diesel::AsChangeset)]
#[diesel(table_name = users)]
pub struct ProfileChanges<'a> {
    /// New display name.
    pub display_name: Option<&'a str>,
    /// New UI language code.
    pub language_preference: Option<&'a str>,
    /// New avatar URL, or `Some(None)` to clear it.
    pub avatar_url: Option<Option<&'a str>>,
}

impl ProfileChanges<'_> {
    /// Whether no column would change.
    pub fn is_empty(&self) -> bool {
        self.display_name.is_none()
            && self.language_preference.is_none()
            && self.avatar_url.is_none()
    }

    /// The names of the columns that change, for the audit entry.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.display_name.is_some() {
            fields.push("display_name");
        }
        if self.language_preference.is_some() {
            fields.push("language_preference");
        }
        if self.avatar_url.is_some() {
            fields.push("avatar_url");
        }
        fields
    }
}

/// The filters of a user listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Only users with this role.
    pub role: Option<crate::models::Role>,
    /// Only blocked (`true`) or only not blocked (`false`) users.
    pub blocked: Option<bool>,
    /// Only users whose email or display name contains this text
    /// (case-insensitive; `%` and `_` match themselves).
    pub search: Option<String>,
}

impl UserFilter {
    /// The parts that make a cursor belong to this listing.
    pub(crate) fn scope(&self) -> u64 {
        let role = self.role.map_or("", |r| r.as_str());
        let blocked = match self.blocked {
            None => "",
            Some(true) => "blocked",
            Some(false) => "active",
        };
        crate::page::scope(&["users", role, blocked, self.search.as_deref().unwrap_or("")])
    }
}

/// A new local account (email and password).
#[derive(Clone)]
pub struct NewLocalUser {
    /// Login email; trimmed and lower-cased before it is stored.
    pub email: String,
    /// The password (hashed with the configured scheme, argon2id by default;
    /// never stored as given).
    pub password: String,
    /// The name shown in the UI (at most 100 characters).
    pub display_name: String,
    /// UI language code (default `en`, at most 10 characters).
    pub language: Option<String>,
    /// The role (default [`Role::User`]).
    pub role: Role,
    /// Whether the email counts as verified.
    pub email_verified: bool,
    /// Extra role names.
    pub additional_roles: Vec<String>,
}

impl NewLocalUser {
    /// A user with role `user`, language `en`, unverified email and no
    /// additional roles.
    pub fn new(
        email: impl Into<String>,
        password: impl Into<String>,
        display_name: impl Into<String>,
    ) -> Self {
        NewLocalUser {
            email: email.into(),
            password: password.into(),
            display_name: display_name.into(),
            language: None,
            role: Role::User,
            email_verified: false,
            additional_roles: Vec::new(),
        }
    }
}

impl fmt::Debug for NewLocalUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewLocalUser")
            .field("email", &self.email)
            .field("password", &"***")
            .field("display_name", &self.display_name)
            .field("language", &self.language)
            .field("role", &self.role)
            .field("email_verified", &self.email_verified)
            .field("additional_roles", &self.additional_roles)
            .finish()
    }
}

/// A user signing in through an OAuth provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOAuthUser {
    /// The provider's name, e.g. `google` (not `local`).
    pub provider: String,
    /// The account's id at the provider.
    pub oauth_id: String,
    /// The email the provider reports.
    pub email: String,
    /// The name the provider reports.
    pub display_name: String,
    /// The picture the provider reports.
    pub avatar_url: Option<String>,
    /// Whether the provider verified the email.
    pub email_verified: bool,
}

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ProfileUpdate {
    /// New display name (at most 100 characters).
    pub display_name: Option<String>,
    /// New UI language code (at most 10 characters).
    pub language_preference: Option<String>,
    /// New avatar URL (at most 500 characters); `Some(None)` clears it.
    /// In JSON, an absent field leaves it and `null` clears it.
    #[serde(default, deserialize_with = "present")]
    pub avatar_url: Option<Option<String>>,
}

/// Reads a field that is present (possibly `null`) as `Some(..)`, so that
/// `null` and absence differ.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    use serde::Deserialize;
    Option::<String>::deserialize(d).map(Some)
}
