//! The template's development users: seed them, reset their passwords, or
//! clear every other user. A seed never takes over an account that already
//! holds a seed email unless told to; the destructive operations (and such a
//! take-over) refuse to run in production.

use crate::error::{Error, Result};
use crate::models::NewUserRow;
use crate::models::{Role, UserId};
use crate::repo::users as repo;
use crate::store::PgStore;
use crate::store::RoleCount;
use diesel_async::AsyncPgConnection;
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

/// What a seed does with an account that already holds a seed user's email
/// (compared ignoring case, as logins compare emails).
///
/// Such an account may belong to anybody who registered that address before
/// the seed ran, so by default it is never touched: making it a seed user
/// would hand its owner the seed role under the owner's own password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistingAccounts {
    /// Leave the account exactly as it is and report it in
    /// [`SeedReport::skipped`].
    #[default]
    Leave,
    /// Make the account the seed user (email, name, role, additional roles,
    /// language, verified, local login with the seed password, no OAuth
    /// identity, no avatar), and end its sessions, refresh tokens, pending
    /// password resets and the reset links it generated for others as an
    /// admin, in the seed's transaction. Refused in production.
    TakeOver,
}

/// An account that held a seed user's email before the seed ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingAccount {
    /// The seed user's email.
    pub seed_email: &'static str,
    /// The account's email as stored (it may differ from `seed_email` in
    /// case).
    pub email: String,
    /// The account's id.
    pub id: UserId,
}

/// An existing account that [`ExistingAccounts::TakeOver`] made a seed user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenOver {
    /// The account, as it was found.
    pub account: ExistingAccount,
    /// Its sessions deleted.
    pub sessions_ended: usize,
    /// Its refresh tokens revoked.
    pub refresh_tokens_revoked: usize,
}

/// What a plain seed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Seed users that did not exist and were created.
    pub created: Vec<&'static str>,
    /// Accounts that held a seed email and were left unchanged
    /// ([`ExistingAccounts::Leave`]).
    pub skipped: Vec<ExistingAccount>,
    /// Accounts that held a seed email and were made seed users
    /// ([`ExistingAccounts::TakeOver`]).
    pub taken_over: Vec<TakenOver>,
    /// Users per role afterwards.
    pub counts: Vec<RoleCount>,
}

/// The row a seed user is created as, or overwritten with on a take-over.
fn seed_row<'a>(s: &SeedUser, hash: &'a str) -> NewUserRow<'a> {
    NewUserRow {
        email: s.email,
        password_hash: Some(hash),
        display_name: s.display_name,
        language_preference: s.language,
        oauth_provider: "local",
        oauth_id: None,
        email_verified: true,
        role: s.role.as_str(),
        avatar_url: None,
        additional_roles: json!(s.additional_roles),
    }
}

/// Creates the missing seed users (local, email verified, with `password`)
/// in one transaction. An account that already holds a seed email is left
/// unchanged and reported in [`SeedReport::skipped`], or, with
/// [`ExistingAccounts::TakeOver`], made the seed user and logged out
/// everywhere (see there). Skipped accounts are not an error: the caller
/// decides what they mean (the CLI fails in production).
///
/// Fails with [`Error::Validation`] on `password` when it is unacceptable;
/// with [`Error::Forbidden`] when `production` is true and the password is
/// the development default, or `existing` is `TakeOver`; with
/// [`Error::Conflict`] when an account with a seed email is registered while
/// the seed runs. On failure nothing changes.
pub async fn seed(
    store: &PgStore,
    password: &str,
    production: bool,
    existing: ExistingAccounts,
) -> Result<SeedReport> {
    if production && password == DEFAULT_SEED_PASSWORD {
        return Err(Error::Forbidden {
            reason: "refusing to seed production with the default password; set SEED_PASSWORD"
                .into(),
        });
    }
    if existing == ExistingAccounts::TakeOver {
        refuse_in_production(production, "take over existing accounts")?;
    }
    let hash = store.passwords().hash(password).await?;
    let report = store
        .transaction(move |conn| {
            Box::pin(async move {
                let mut report = SeedReport {
                    created: Vec::new(),
                    skipped: Vec::new(),
                    taken_over: Vec::new(),
                    counts: Vec::new(),
                };
                for s in SEED_USERS {
                    let Some(user) = repo::find_by_email(conn, s.email).await? else {
                        repo::insert(conn, &seed_row(&s, &hash)).await?;
                        report.created.push(s.email);
                        continue;
                    };
                    let account = ExistingAccount {
                        seed_email: s.email,
                        email: user.email,
                        id: user.id,
                    };
                    match existing {
                        ExistingAccounts::Leave => report.skipped.push(account),
                        ExistingAccounts::TakeOver => {
                            report
                                .taken_over
                                .push(take_over(conn, &s, account, &hash).await?);
                        }
                    }
                }
                // Counted on the primary, in this transaction: the report
                // shows what the seed just wrote (a replica may lag).
                report.counts = crate::store::count_by_role(conn).await?;
                Ok(report)
            })
        })
        .await?;
    Ok(report)
}

/// Makes `account` the seed user `s` and ends every way in that it held
/// before: whoever registered the address must not keep a login, a refresh
/// token, a reset link or an OAuth identity into the raised account.
async fn take_over(
    conn: &mut AsyncPgConnection,
    s: &SeedUser,
    account: ExistingAccount,
    hash: &str,
) -> Result<TakenOver> {
    repo::overwrite(conn, account.id, &seed_row(s, hash)).await?;
    // As every logout everywhere: sessions, refresh tokens, its pending
    // reset links and those it generated for others as an admin.
    let ended = crate::store::end_everywhere(conn, account.id).await?;
    Ok(TakenOver {
        account,
        sessions_ended: ended.sessions,
        refresh_tokens_revoked: ended.refresh_tokens,
    })
}

fn refuse_in_production(production: bool, what: &str) -> Result<()> {
    if production {
        return Err(Error::Forbidden {
            reason: format!("refusing to {what}: APP_ENV or NODE_ENV is production"),
        });
    }
    Ok(())
}

/// Sets the password of every account with a seed email (whoever made
/// it) and ends that account's sessions and refresh tokens, in one
/// transaction; returns their emails. A development tool: it is refused in
/// production.
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
                        // As every password change: whoever was logged in
                        // with the old password is logged out.
                        crate::store::sessions::end_everywhere(conn, user.id).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_emails_are_stored_normalised() {
        // The lookup that finds an existing account compares lower(email)
        // with the seed email as given: a seed email that normalisation
        // would change could miss its twin and create a second account.
        for s in SEED_USERS {
            assert_eq!(
                crate::validate::email(s.email).ok().as_deref(),
                Some(s.email)
            );
        }
    }
}
