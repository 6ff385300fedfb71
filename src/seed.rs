//! The template's development users: seed them, reset their passwords, or
//! clear every other user. The destructive operations refuse to run in
//! production.

use crate::error::{Error, Result};
use crate::models::users::NewUserRow;
use crate::models::Role;
use crate::repo::users as repo;
use crate::store::users::RoleCount;
use crate::store::PgStore;
use serde_json::json;

/// The seed password used when `SEED_PASSWORD` is not set. Development only:
/// a plain seed in production refuses it.
pub const DEFAULT_SEED_PASSWORD: &str = "Pronghorn-Dev-Password-1";

/// One of the template's seed users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedUser {
    /// Login email.
    pub email: &'static str,
    /// Display name.
    pub display_name: &'static str,
    /// Role.
    pub role: Role,
    /// Additional role names.
    pub additional_roles: &'static [&'static str],
    /// UI language.
    pub language: &'static str,
}

/// The template's four seed users.
pub const SEED_USERS: [SeedUser; 4] = [
    SeedUser {
        email: "superadmin@example.com",
        display_name: "Super Admin",
        role: Role::Superadmin,
        additional_roles: &["system_config"],
        language: "en",
    },
    SeedUser {
        email: "admin@example.com",
        display_name: "Admin User",
        role: Role::Admin,
        additional_roles: &["moderator"],
        language: "en",
    },
    SeedUser {
        email: "user@example.com",
        display_name: "Test User",
        role: Role::User,
        additional_roles: &[],
        language: "en",
    },
    SeedUser {
        email: "user.fr@example.com",
        display_name: "Utilisateur Test",
        role: Role::User,
        additional_roles: &["beta_tester"],
        language: "fr",
    },
];

/// Whether `APP_ENV` or `NODE_ENV` (as `lookup` reports them) is `production`.
pub fn is_production(lookup: impl Fn(&str) -> Option<String>) -> bool {
    ["APP_ENV", "NODE_ENV"]
        .iter()
        .any(|k| lookup(k).is_some_and(|v| v.trim().eq_ignore_ascii_case("production")))
}

/// What a plain seed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Seed users that did not exist and were created.
    pub created: Vec<&'static str>,
    /// Seed users that existed; their role, additional roles and language
    /// were set (never their password or name).
    pub updated: Vec<&'static str>,
    /// Users per role afterwards.
    pub counts: Vec<RoleCount>,
}

/// Creates the missing seed users (local, email verified, with `password`)
/// and, for existing ones, sets only role, additional roles and language.
/// Runs in one transaction.
///
/// Fails with [`Error::Validation`] on `password` when it is unacceptable,
/// or with [`Error::Forbidden`] when `production` is true and the password
/// is the development default.
pub async fn seed(store: &PgStore, password: &str, production: bool) -> Result<SeedReport> {
    if production && password == DEFAULT_SEED_PASSWORD {
        return Err(Error::Forbidden {
            reason: "refusing to seed production with the default password; set SEED_PASSWORD"
                .into(),
        });
    }
    let hash = store.passwords().hash(password).await?;
    let (created, updated) = store
        .transaction(move |conn| {
            Box::pin(async move {
                let mut created = Vec::new();
                let mut updated = Vec::new();
                for s in SEED_USERS {
                    let extra = json!(s.additional_roles);
                    match repo::find_by_email(conn, s.email).await? {
                        Some(user) => {
                            repo::set_role(conn, user.id, s.role.as_str()).await?;
                            let roles: Vec<String> =
                                s.additional_roles.iter().map(|r| r.to_string()).collect();
                            repo::set_additional_roles(conn, user.id, &roles).await?;
                            repo::update_profile(
                                conn,
                                user.id,
                                &crate::models::users::ProfileChanges {
                                    language_preference: Some(s.language),
                                    ..Default::default()
                                },
                            )
                            .await?;
                            updated.push(s.email);
                        }
                        None => {
                            repo::insert(
                                conn,
                                &NewUserRow {
                                    email: s.email,
                                    password_hash: Some(&hash),
                                    display_name: s.display_name,
                                    language_preference: s.language,
                                    oauth_provider: "local",
                                    oauth_id: None,
                                    email_verified: true,
                                    role: s.role.as_str(),
                                    avatar_url: None,
                                    additional_roles: extra,
                                },
                            )
                            .await?;
                            created.push(s.email);
                        }
                    }
                }
                Ok((created, updated))
            })
        })
        .await?;
    let counts = role_counts(store).await?;
    Ok(SeedReport {
        created,
        updated,
        counts,
    })
}

async fn role_counts(store: &PgStore) -> Result<Vec<RoleCount>> {
    use crate::store::UserStore;
    store.count_users_by_role().await
}

fn refuse_in_production(production: bool, what: &str) -> Result<()> {
    if production {
        return Err(Error::Forbidden {
            reason: format!("refusing to {what}: APP_ENV or NODE_ENV is production"),
        });
    }
    Ok(())
}

/// Sets the password of every seed user that exists; returns their emails.
///
/// Fails with [`Error::Forbidden`] in production (nothing changes) and with
/// [`Error::Validation`] on `password` when it is unacceptable.
pub async fn reset_passwords(
    store: &PgStore,
    password: &str,
    production: bool,
) -> Result<Vec<&'static str>> {
    refuse_in_production(production, "reset the seed users' passwords")?;
    let hash = store.passwords().hash(password).await?;
    store
        .transaction(move |conn| {
            Box::pin(async move {
                let mut reset = Vec::new();
                for s in SEED_USERS {
                    if let Some(user) = repo::find_by_email(conn, s.email).await? {
                        repo::set_password_hash(conn, user.id, &hash).await?;
                        reset.push(s.email);
                    }
                }
                Ok(reset)
            })
        })
        .await
}

/// Deletes every user that is not a superadmin; returns how many.
///
/// Fails with [`Error::Forbidden`] in production (nothing is deleted).
pub async fn clear_users(store: &PgStore, production: bool) -> Result<usize> {
    refuse_in_production(production, "clear users")?;
    store
        .transaction(|conn| Box::pin(repo::delete_all_but_superadmins(conn)))
        .await
}
