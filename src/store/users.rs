//! Users, passwords, roles and the audit log: the [`UserStore`] and
//! [`AuditStore`] parts of the store, their input types, and their
//! implementations for [`PgStore`] and [`DisabledStore`](crate::DisabledStore).

use super::pg::ReadFrom;
use super::policy::{authorize, lock_actor, lock_actor_and_target};
use super::refresh_tokens::{IssuedRefreshToken, MAX_REFRESH_TOKEN_TTL};
use super::sessions::{check_sid, end_everywhere, SessionData};
use super::user_audit_log::{audit, AuditAction};
use super::PgStore;
use crate::error::{Error, Result};
use crate::models::{
    NewLocalUser, NewOAuthUser, ProfileUpdate, RequestMeta, Role, User, UserFilter, UserId,
};
use crate::models::{NewUserRow, ProfileChanges};
use crate::observe::observed;
use crate::page::{Page, PageRequest};
use crate::password::{HashScheme, Verified, MAX_PASSWORD_BYTES};
use crate::repo::login_failures as login_repo;
use crate::repo::refresh_tokens as refresh_repo;
use crate::repo::sessions as sessions_repo;
use crate::repo::users as repo;
use crate::token::Token;
use crate::validate;
use crate::validate::interval;
use diesel_async::AsyncPgConnection;
use futures_util::future::{join, join3, join4, OptionFuture};
use pronghorn_db_macros::store_part;
use serde_json::json;
use uuid::Uuid;

/// What [`UserStore::log_in`] handed out.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedIn {
    /// The user, with `last_login` set to now.
    pub user: User,
    /// When the session row expires (as
    /// [`SessionStore::set_session`](super::SessionStore::set_session)
    /// returns it).
    pub session_expires_at: chrono::DateTime<chrono::Utc>,
    /// The refresh token, when one was asked for.
    pub refresh_token: Option<IssuedRefreshToken>,
}

/// `users.language_preference` is VARCHAR(10).
const LANGUAGE_MAX: usize = 10;
/// `users.avatar_url` is VARCHAR(500).
const AVATAR_MAX: usize = 500;
/// `users.oauth_provider` is VARCHAR(50).
const PROVIDER_MAX: usize = 50;
/// `users.oauth_id` is VARCHAR(255).
const OAUTH_ID_MAX: usize = 255;
/// Longest additional role name.
const EXTRA_ROLE_MAX: usize = 50;
/// Longest block reason.
const REASON_MAX: usize = 1000;

/// How many users hold one role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoleCount {
    /// The role name (`None` for users whose role is NULL).
    pub role: Option<String>,
    /// How many users hold it.
    pub count: i64,
}

// ---- validation -------------------------------------------------------

fn check_language(lang: &str) -> Result<&str> {
    validate::required("language_preference", lang, LANGUAGE_MAX)
}

fn check_extra_roles(roles: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(roles.len());
    for r in roles {
        let r = validate::required("additional_roles", r, EXTRA_ROLE_MAX)?.to_owned();
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// A validated profile update, borrowed as the changeset.
struct CheckedProfile {
    display_name: Option<String>,
    language: Option<String>,
    avatar_url: Option<Option<String>>,
}

impl CheckedProfile {
    fn new(update: &ProfileUpdate) -> Result<Self> {
        Ok(CheckedProfile {
            display_name: update
                .display_name
                .as_deref()
                .map(validate::display_name)
                .transpose()?
                .map(str::to_owned),
            language: update
                .language_preference
                .as_deref()
                .map(check_language)
                .transpose()?
                .map(str::to_owned),
            avatar_url: match &update.avatar_url {
                None => None,
                Some(None) => Some(None),
                Some(Some(url)) => Some(Some(
                    validate::required("avatar_url", url, AVATAR_MAX)?.to_owned(),
                )),
            },
        })
    }

    fn changes(&self) -> ProfileChanges<'_> {
        ProfileChanges {
            display_name: self.display_name.as_deref(),
            language_preference: self.language.as_deref(),
            avatar_url: self.avatar_url.as_ref().map(|a| a.as_deref()),
        }
    }
}

/// A validated local user, ready to insert once hashed.
struct CheckedLocal {
    email: String,
    display_name: String,
    language: String,
    extra: Vec<String>,
}

fn check_local(new: &NewLocalUser) -> Result<CheckedLocal> {
    let email = validate::email(&new.email)?;
    let display_name = validate::display_name(&new.display_name)?.to_owned();
    let language = check_language(new.language.as_deref().unwrap_or("en"))?.to_owned();
    let extra = check_extra_roles(&new.additional_roles)?;
    crate::password::validate_new(&new.password)?;
    Ok(CheckedLocal {
        email,
        display_name,
        language,
        extra,
    })
}

/// Inserts the user under `id` inside the caller's transaction, which the
/// caller rolls back on `Err`. The look-up and the insert are pipelined (one
/// round trip): when the look-up finds a twin, the insert is undone by that
/// rollback.
async fn insert_local(
    conn: &AsyncPgConnection,
    id: UserId,
    c: &CheckedLocal,
    new: &NewLocalUser,
    hash: &str,
) -> Result<User> {
    let row = NewUserRow {
        email: &c.email,
        password_hash: Some(hash),
        display_name: &c.display_name,
        language_preference: &c.language,
        oauth_provider: "local",
        oauth_id: None,
        email_verified: new.email_verified,
        role: new.role.as_str(),
        avatar_url: None,
        additional_roles: json!(c.extra),
    };
    let (twin, inserted) = join(
        repo::find_by_email(conn, &c.email),
        repo::insert_with_id(conn, id, &row),
    )
    .await;
    // Emails are unique ignoring case; the constraint itself only sees
    // exact text, so a differently-cased twin from template days is caught here.
    if twin?.is_some() {
        return Err(Error::Conflict {
            constraint: "users_email_key".into(),
        });
    }
    inserted
}

/// Deletes `user` (locked by the caller's transaction) and its sessions,
/// with the audit entry of `action` by `actor` naming its email, in one
/// round trip. The entry is written before the delete (pipelined statements
/// run in the order sent); the row's user_id then becomes NULL (ON DELETE
/// SET NULL) and the email stays. Sessions are deleted by hand: `session`
/// is connect-pg-simple's, with no foreign key. Reset links the user
/// generated for others as an admin are cut short before the delete.
async fn delete_with_entry(
    conn: &AsyncPgConnection,
    user: &User,
    action: AuditAction,
    actor: UserId,
    meta: &RequestMeta,
) -> Result<()> {
    let details = json!({ "email": user.email });
    let (audited, sessions, generated, deleted) = join4(
        audit(conn, action, Some(user.id), Some(actor), details, meta),
        sessions_repo::delete_all_of_user(conn, user.id),
        // Before the delete, which clears the audit entries' actor.
        crate::repo::password_reset_requests::expire_generated_by(
            conn,
            user.id,
            AuditAction::AdminGeneratedResetToken.as_str(),
        ),
        repo::delete(conn, user.id),
    )
    .await;
    audited?;
    sessions?;
    generated?;
    deleted
}

/// One try of [`UserStore::log_in`]: authenticates, then writes the
/// session and the refresh token in a transaction that share-locks the
/// user's row and finds the hash checked still there. Returns `None`, with
/// every write rolled back, when the hash moved or the user is gone after
/// the password was checked; fails as `authenticate` fails before that.
async fn log_in_once(
    store: &PgStore,
    email: &str,
    password: &str,
    sid: &str,
    session: &SessionData,
    ttl: Option<diesel::pg::data_types::PgInterval>,
) -> Result<Option<LoggedIn>> {
    let token = ttl.map(|_| Token::generate()).transpose()?;
    let user = store.authenticate(email, password).await?;
    let mut data = session.clone();
    data.fields.insert("userId".into(), json!(user.id));
    let sess = data.to_json()?;
    let session_expires_at = data.cookie.session_expiry(chrono::Utc::now());
    let (id, checked) = (user.id, user.password_hash);
    let digest = token.as_ref().map(Token::digest);
    let sid = sid.to_owned();
    let written = store
        .transaction(move |conn| {
            Box::pin(async move {
                // The lock first: the writes pipelined after it run once it
                // is granted, and are rolled back when the check below fails.
                let (locked, written, issued) = join3(
                    repo::share_lock_by_id(conn, id),
                    sessions_repo::insert_new(conn, &sid, &sess, session_expires_at),
                    OptionFuture::from(
                        digest
                            .as_ref()
                            .zip(ttl)
                            .map(|(d, ttl)| refresh_repo::insert(conn, id, d, ttl)),
                    ),
                )
                .await;
                // InvalidCredentials here only rolls the writes back: the
                // password was right, and the caller checks it once more.
                let locked = match locked {
                    Err(Error::NotFound { .. }) => return Err(Error::InvalidCredentials),
                    other => other?,
                };
                if locked.password_hash != checked {
                    return Err(Error::InvalidCredentials);
                }
                if locked.blocked() {
                    return Err(Error::AccountBlocked);
                }
                if !written? {
                    return Err(Error::Conflict {
                        constraint: "session_pkey".into(),
                    });
                }
                Ok((locked, issued.transpose()?))
            })
        })
        .await;
    let (locked, row) = match written {
        Ok(written) => written,
        Err(Error::InvalidCredentials) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(LoggedIn {
        // As locked: a role change that committed since the check shows.
        user: locked,
        session_expires_at,
        refresh_token: row
            .zip(token)
            .map(|(row, t)| IssuedRefreshToken::new(row, t)),
    }))
}

/// How many users hold each role, most common first, on `conn`.
pub(crate) async fn count_by_role(conn: &AsyncPgConnection) -> Result<Vec<RoleCount>> {
    Ok(repo::count_by_role(conn)
        .await?
        .into_iter()
        .map(|(role, count)| RoleCount { role, count })
        .collect())
}

fn not_found_user(e: Error) -> Error {
    match e {
        Error::NotFound { .. } => Error::NotFound { entity: "user" },
        other => other,
    }
}

/// Users, passwords and roles.
///
/// Every method validates its input before any query runs
/// ([`Error::Validation`] naming the field). Methods that change a user the
/// template audits write the audit entry in the same transaction. On
/// [`DisabledStore`](crate::DisabledStore) every method fails with [`Error::Disabled`]; on any
/// store a lost connection is [`Error::Unavailable`].
#[store_part]
impl UserStore for PgStore {
    /// Creates a local user (password hashed with the configured scheme).
    ///
    /// Fails with [`Error::Conflict`] on `users_email_key` when the email is
    /// taken (compared ignoring case).
    async fn create_user(&self, new: NewLocalUser) -> Result<User> {
        observed!(self.slow(), "create_user", async {
            let checked = check_local(&new)?;
            let hash = self.passwords().hash(&new.password).await?;
            self.transaction(move |conn| {
                Box::pin(async move {
                    insert_local(conn, UserId(Uuid::new_v4()), &checked, &new, &hash).await
                })
            })
            .await
        })
    }

    /// Creates a local user on behalf of `actor`, whose role must be above
    /// the new user's role; audits `user_created_by_admin`.
    ///
    /// Fails with [`Error::Forbidden`] or as [`UserStore::create_user`].
    async fn create_user_by_admin(
        &self,
        actor: UserId,
        new: NewLocalUser,
        meta: &RequestMeta,
    ) -> Result<User> {
        observed!(self.slow(), "create_user_by_admin", async {
            let checked = check_local(&new)?;
            let hash = self.passwords().hash(&new.password).await?;
            let meta = meta.clone();
            self.transaction(move |conn| {
                Box::pin(async move {
                    let admin = lock_actor(conn, actor).await?;
                    authorize(&admin, Some(new.role.as_str()), Some(new.role))?;
                    // The id is chosen here, so that the audit entry naming
                    // the new user goes in the insert's round trip.
                    let id = UserId(Uuid::new_v4());
                    let details =
                        json!({ "role": new.role.as_str(), "email_verified": new.email_verified });
                    let (user, audited) = join(
                        insert_local(conn, id, &checked, &new, &hash),
                        audit(
                            conn,
                            AuditAction::UserCreatedByAdmin,
                            Some(id),
                            Some(actor),
                            details,
                            &meta,
                        ),
                    )
                    .await;
                    let user = user?;
                    audited?;
                    Ok(user)
                })
            })
            .await
        })
    }

    /// Finds the user of an OAuth identity, or creates it. Returns the user
    /// and whether it was created.
    ///
    /// Fails with [`Error::Conflict`] on `users_email_key` when a different
    /// account already uses the email.
    async fn find_or_create_oauth_user(&self, new: NewOAuthUser) -> Result<(User, bool)> {
        observed!(self.slow(), "find_or_create_oauth_user", async {
            let provider =
                validate::required("oauth_provider", &new.provider, PROVIDER_MAX)?.to_owned();
            if provider == "local" {
                return Err(Error::validation(
                    "oauth_provider",
                    "`local` is not an OAuth provider",
                ));
            }
            let oauth_id = validate::required("oauth_id", &new.oauth_id, OAUTH_ID_MAX)?.to_owned();
            let email = validate::email(&new.email)?;
            let display_name = validate::display_name(&new.display_name)?.to_owned();
            let avatar = new
                .avatar_url
                .as_deref()
                .map(|a| validate::required("avatar_url", a, AVATAR_MAX))
                .transpose()?
                .map(str::to_owned);
            let verified = new.email_verified;
            let again = (provider.clone(), oauth_id.clone());
            let created = self
                .transaction(move |conn| {
                    Box::pin(async move {
                        // Both look-ups in one round trip.
                        let (by_identity, by_email) = join(
                            repo::find_by_oauth(conn, &provider, &oauth_id),
                            repo::find_by_email(conn, &email),
                        )
                        .await;
                        let (by_identity, by_email) = (by_identity?, by_email?);
                        if let Some(user) = by_identity {
                            return Ok((user, false));
                        }
                        if by_email.is_some() {
                            return Err(Error::Conflict {
                                constraint: "users_email_key".into(),
                            });
                        }
                        let user = repo::insert(
                            conn,
                            &NewUserRow {
                                email: &email,
                                password_hash: None,
                                display_name: &display_name,
                                language_preference: "en",
                                oauth_provider: &provider,
                                oauth_id: Some(&oauth_id),
                                email_verified: verified,
                                role: Role::User.as_str(),
                                avatar_url: avatar.as_deref(),
                                additional_roles: json!([]),
                            },
                        )
                        .await?;
                        Ok((user, true))
                    })
                })
                .await;
            match created {
                // Two first logins of one identity at once: the other one
                // created it (and took the email), so find it.
                Err(Error::Conflict { constraint })
                    if constraint == "unique_oauth" || constraint == "users_email_key" =>
                {
                    let found = self
                        .with_conn(move |conn| {
                            Box::pin(
                                async move { repo::find_by_oauth(conn, &again.0, &again.1).await },
                            )
                        })
                        .await?;
                    found
                        .map(|u| (u, false))
                        .ok_or(Error::Conflict { constraint })
                }
                other => other,
            }
        })
    }

    /// The user with this id. Fails with [`Error::NotFound`].
    async fn user_by_id(&self, id: UserId) -> Result<User> {
        observed!(self.slow(), "user_by_id", async {
            self.with_conn(move |conn| Box::pin(repo::find_by_id(conn, id)))
                .await
        })
    }

    /// The user with this email (trimmed, compared ignoring case).
    /// Fails with [`Error::NotFound`].
    async fn user_by_email(&self, email: &str) -> Result<User> {
        observed!(self.slow(), "user_by_email", async {
            let email = validate::email(email)?;
            self.with_conn(move |conn| {
                Box::pin(async move {
                    repo::find_by_email(conn, &email)
                        .await?
                        .ok_or(Error::NotFound { entity: "user" })
                })
            })
            .await
        })
    }

    /// Users newest first, filtered, one page at a time (keyset pagination).
    /// Fails with [`Error::Validation`] on `cursor` for a cursor that is not
    /// from this listing with the same filters.
    async fn list_users(&self, filter: &UserFilter, page: &PageRequest) -> Result<Page<User>> {
        observed!(self.slow(), "list_users", async {
            let mut filter = filter.clone();
            if let Some(term) = filter.search.take() {
                let term = validate::text("search", term.trim(), validate::EMAIL_MAX)?;
                filter.search = (!term.is_empty()).then(|| term.to_owned());
            }
            let scope = filter.scope();
            self.page(
                ReadFrom::Replica,
                page,
                scope,
                repo::cursor_of,
                move |conn, after, n| {
                    let filter = filter.clone();
                    Box::pin(async move { repo::list(conn, &filter, after, n).await })
                },
            )
            .await
        })
    }

    /// Changes a user's own profile; audits `profile_updated {fields}`.
    /// Fails with [`Error::NotFound`].
    async fn update_profile(
        &self,
        id: UserId,
        update: &ProfileUpdate,
        meta: &RequestMeta,
    ) -> Result<User> {
        observed!(self.slow(), "update_profile", async {
            let checked = CheckedProfile::new(update)?;
            let meta = meta.clone();
            self.transaction(move |conn| {
                Box::pin(async move {
                    let changes = checked.changes();
                    // The entry only when something changed.
                    let entry = (!changes.is_empty()).then(|| {
                        let details = json!({ "fields": changes.fields() });
                        audit(
                            conn,
                            AuditAction::ProfileUpdated,
                            Some(id),
                            Some(id),
                            details,
                            &meta,
                        )
                    });
                    let (user, audited) = join(
                        repo::update_profile(conn, id, &changes),
                        OptionFuture::from(entry),
                    )
                    .await;
                    let user = user?;
                    audited.transpose()?;
                    Ok(user)
                })
            })
            .await
        })
    }

    /// Changes another user's profile on behalf of `actor` (whose role must
    /// be above the user's); audits `user_updated_by_admin {fields}`.
    /// Fails with [`Error::Forbidden`] or [`Error::NotFound`].
    async fn update_user_by_admin(
        &self,
        actor: UserId,
        id: UserId,
        update: &ProfileUpdate,
        meta: &RequestMeta,
    ) -> Result<User> {
        observed!(self.slow(), "update_user_by_admin", async {
            let checked = CheckedProfile::new(update)?;
            let meta = meta.clone();
            self.transaction(move |conn| {
                Box::pin(async move {
                    let (admin, target) = lock_actor_and_target(conn, actor, id).await?;
                    authorize(&admin, target.role.as_deref(), None)?;
                    let changes = checked.changes();
                    // The entry only when something changed.
                    let entry = (!changes.is_empty()).then(|| {
                        let details = json!({ "fields": changes.fields() });
                        audit(
                            conn,
                            AuditAction::UserUpdatedByAdmin,
                            Some(id),
                            Some(actor),
                            details,
                            &meta,
                        )
                    });
                    let (user, audited) = join(
                        repo::update_profile(conn, id, &changes),
                        OptionFuture::from(entry),
                    )
                    .await;
                    let user = user?;
                    audited.transpose()?;
                    Ok(user)
                })
            })
            .await
        })
    }

    /// Changes a user's password after verifying the current one and, in
    /// the same transaction, ends every session of the user (the caller's
    /// own included), revokes its refresh tokens and cuts its pending
    /// password resets short, as
    /// [`SessionStore::end_all_sessions`](super::SessionStore::end_all_sessions);
    /// audits `password_changed`. Nothing is ended when the change fails.
    ///
    /// Fails with [`Error::InvalidCredentials`] when the current password is
    /// wrong (or the account has none), and with [`Error::Validation`] on
    /// `password` when the new one is unacceptable.
    async fn change_password(
        &self,
        id: UserId,
        current: &str,
        new: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        observed!(self.slow(), "change_password", async {
            crate::password::validate_new(new)?;
            let user = self.user_by_id(id).await?;
            // Guesses of the current password count as failed logins of
            // the account's email, so that a stolen session cannot try
            // passwords here past the limit that stops it at login.
            self.count_login_attempt(&email_digest(&user.email)).await?;
            let Some(stored) = user.password_hash.clone() else {
                self.passwords().verify_dummy(current).await?;
                return Err(Error::InvalidCredentials);
            };
            if !self.passwords().verify(current, &stored).await?.matched() {
                return Err(Error::InvalidCredentials);
            }
            let hash = self.passwords().hash(new).await?;
            let meta = meta.clone();
            self.transaction(move |conn| {
                Box::pin(async move {
                    // One round trip. The update locks the user's row, so
                    // the revocations after it also catch a rotation in
                    // flight; whoever logged in with the old password,
                    // perhaps a stolen one, must log in again.
                    let (changed, ended, audited) = join3(
                        repo::upgrade_password_hash(conn, id, &stored, &hash),
                        end_everywhere(conn, id),
                        audit(
                            conn,
                            AuditAction::PasswordChanged,
                            Some(id),
                            Some(id),
                            json!({}),
                            &meta,
                        ),
                    )
                    .await;
                    // Only if nobody changed the password in between; else
                    // the rollback undoes the rest.
                    if !changed? {
                        return Err(Error::Conflict {
                            constraint: "users.password_hash (changed concurrently)".into(),
                        });
                    }
                    ended?;
                    audited
                })
            })
            .await
        })
    }

    /// Checks email and password. Returns the user (with `last_login` set to
    /// now). A hash that is not what the configured scheme writes
    /// (`PASSWORD_HASH`) is replaced in the same call when a hashing slot is
    /// free at once (otherwise at a later login), except an argon2 hash of a
    /// password over 72 bytes under `PASSWORD_HASH=bcrypt`, which bcrypt
    /// cannot hash and which therefore stays.
    ///
    /// Every attempt is counted per email (known or not) in the database
    /// before any password is checked; a success clears the count. Past
    /// `LOGIN_MAX_FAILURES` attempts within `LOGIN_FAILURE_WINDOW_MS` it
    /// fails with [`Error::LoginThrottled`] at once, without hashing.
    /// Otherwise it fails with [`Error::InvalidCredentials`] whether the
    /// email is unknown, has no password or the password is wrong, each at
    /// the cost a success has: one password check of the current scheme,
    /// or, while any account still holds a hash of the other scheme, one
    /// check of each scheme; with [`Error::AccountBlocked`] when the password is right but
    /// the account is blocked; and with [`Error::Unavailable`] when no
    /// hashing slot frees within `PASSWORD_HASH_WAIT_MS`.
    async fn authenticate(&self, email: &str, password: &str) -> Result<User> {
        observed!(self.slow(), "authenticate", async {
            let email = validate::email(email)?;
            let limits = self.config().login();
            let digest = email_digest(&email);
            let window = login_window(limits.failure_window)?;
            // The attempt is counted before any hash runs, in one statement
            // per attempt: concurrent attempts on one email are counted one
            // after another, so at most `max_failures` of them in a window
            // ever reach the hash. The account's look-up is pipelined with
            // the count (one round trip); a refused attempt never sees it.
            let attempt = {
                let digest = digest.clone();
                self.with_conn(move |conn| {
                    Box::pin(async move {
                        let (counted, found) = join(
                            login_repo::count_attempt(conn, &digest, window),
                            repo::find_by_email(conn, &email),
                        )
                        .await;
                        let counted = counted?;
                        if over_limit(counted.0, limits.max_failures) {
                            return Ok(Err(counted.1));
                        }
                        Ok(Ok(found?))
                    })
                })
                .await?
            };
            let found = match attempt {
                Ok(found) => found,
                Err(window_started) => {
                    return Err(throttled(window_started, limits.failure_window))
                }
            };
            // Every outcome costs one check against a hash: the account's,
            // or for an unknown email, an OAuth account without a password
            // and an over-long password a dummy of the current scheme, so
            // that time tells none of them apart from a wrong password.
            // Each outcome then costs one write: the failure noted, or the
            // count cleared and the login recorded.
            let known = found.and_then(|u| u.password_hash.clone().map(|h| (u, h)));
            let (verified, used) = match &known {
                Some((_, stored)) if password.len() <= MAX_PASSWORD_BYTES => (
                    self.passwords().verify(password, stored).await?,
                    HashScheme::of(stored),
                ),
                _ => (
                    self.passwords().verify_dummy(password).await?,
                    self.passwords().scheme(),
                ),
            };
            // While some accounts still hold hashes of the other scheme (a
            // template's bcrypt under argon2id, say), one check cannot cost
            // the same for all: each login then also checks a dummy of the
            // scheme it did not use, so that every outcome costs one check
            // of each.
            if self.other_scheme_present().await? {
                self.passwords()
                    .verify_dummy_as(password, used.other())
                    .await?;
            }
            let Some((mut user, stored)) = known.filter(|_| verified.matched()) else {
                self.with_conn(move |conn| {
                    Box::pin(async move { login_repo::record_failure(conn, &digest).await })
                })
                .await?;
                return Err(Error::InvalidCredentials);
            };
            if user.blocked() {
                return Err(Error::AccountBlocked);
            }
            let id = user.id;
            // An upgrade is worth a hash only when a slot is free: under
            // load the login succeeds and the upgrade waits for a later one.
            let upgrade = if verified == Verified::YesNeedsRehash {
                match self.passwords().rehash(password).await {
                    Ok(new) => Some(new),
                    Err(Error::Unavailable { target, .. })
                        if target == crate::password::HASHING_TARGET =>
                    {
                        None
                    }
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            if let Some(new) = upgrade {
                let replaced = new.clone();
                let upgraded = self
                    .with_conn(move |conn| {
                        Box::pin(async move {
                            repo::upgrade_password_hash(conn, id, &stored, &new).await
                        })
                    })
                    .await?;
                if upgraded {
                    user.password_hash = Some(replaced);
                }
            }
            let recorded = self
                .with_conn(move |conn| {
                    Box::pin(async move { login_repo::record_success(conn, &digest, id).await })
                })
                .await?
                .ok_or(Error::InvalidCredentials)?;
            user.last_login = Some(recorded.last_login);
            user.updated_at = recorded.updated_at;
            Ok(user)
        })
    }

    /// Logs a user in: checks email and password as
    /// [`UserStore::authenticate`] does, then writes what the login hands
    /// out in one transaction. That transaction first share-locks the
    /// user's row and checks that the hash the password was checked against
    /// is still the account's and that the account is not blocked. It then
    /// writes the session `sid` (`session` with the user's id as `userId`,
    /// stored as [`SessionStore::set_session`](super::SessionStore::set_session)
    /// stores it) and, when `refresh_ttl` is given, issues a refresh token.
    /// The session must be new: `sid` should come from
    /// [`Token::generate`](crate::Token::generate), never from the client,
    /// and an id that already has a row is refused rather than taken over
    /// (a login on an id someone else planted would hand them the login).
    ///
    /// A password change, reset, block or deletion racing the login can
    /// therefore never leave it a session or token: if it commits first,
    /// the check refuses the login; if it commits after, it ends what the
    /// login wrote. Calling `authenticate`, `set_session` and
    /// `issue_refresh_token` one after another leaves that window open for
    /// as long as the password check takes. When the hash moved without the
    /// password changing (a concurrent login of the same user upgraded it),
    /// the login checks the password once more against the new hash, so it
    /// costs a second check and counts a second attempt. Returns the user as
    /// locked, the session's expiry and the refresh token.
    ///
    /// Fails with [`Error::Validation`] on `sid`, `sess` or `ttl` (checked
    /// first, as `set_session` and `issue_refresh_token` check them), as
    /// `authenticate` fails, with [`Error::Conflict`] on `session_pkey` when
    /// a session with this id exists (nothing is written), and with
    /// [`Error::InvalidCredentials`] or
    /// [`Error::AccountBlocked`] when the password changed, the account was
    /// deleted or it was blocked while the password was being checked.
    async fn log_in(
        &self,
        email: &str,
        password: &str,
        sid: &str,
        session: &SessionData,
        refresh_ttl: Option<chrono::Duration>,
    ) -> Result<LoggedIn> {
        observed!(self.slow(), "log_in", async {
            let sid = check_sid(sid)?;
            let ttl = refresh_ttl
                .map(|ttl| interval("ttl", ttl, MAX_REFRESH_TOKEN_TTL))
                .transpose()?;
            session.to_json()?;
            // A hash that moved between the check and the lock was either
            // changed (the password is no longer this one) or upgraded by a
            // concurrent login of the same user (the password still is):
            // checking once more tells them apart.
            match log_in_once(self, email, password, &sid, session, ttl).await? {
                Some(done) => Ok(done),
                None => log_in_once(self, email, password, &sid, session, ttl)
                    .await?
                    .ok_or(Error::InvalidCredentials),
            }
        })
    }

    /// Deletes the login-attempt counts whose window has passed (they no
    /// longer hold anyone back); returns how many.
    async fn prune_login_failures(&self) -> Result<usize> {
        observed!(self.slow(), "prune_login_failures", async {
            let window = login_window(self.config().login().failure_window)?;
            self.with_conn(move |conn| Box::pin(login_repo::delete_passed(conn, window)))
                .await
        })
    }

    /// Sets `last_login` to now. Fails with [`Error::NotFound`].
    async fn record_login(&self, id: UserId) -> Result<User> {
        observed!(self.slow(), "record_login", async {
            self.with_conn(move |conn| Box::pin(repo::record_login(conn, id)))
                .await
        })
    }

    /// Marks the email verified. Fails with [`Error::NotFound`].
    async fn verify_email(&self, id: UserId) -> Result<User> {
        observed!(self.slow(), "verify_email", async {
            self.with_conn(move |conn| Box::pin(repo::set_email_verified(conn, id)))
                .await
        })
    }

    /// Adds an additional role name (no effect when present): one
    /// statement, no transaction. When the role was there already, a second
    /// statement reads the user back (a removal landing in between would
    /// show). A column holding no JSON array counts as an empty list.
    /// Fails with [`Error::NotFound`].
    async fn add_additional_role(&self, id: UserId, role: &str) -> Result<User> {
        observed!(self.slow(), "add_additional_role", async {
            let role = validate::required("additional_roles", role, EXTRA_ROLE_MAX)?.to_owned();
            self.with_conn(move |conn| {
                Box::pin(async move {
                    match repo::add_additional_role(conn, id, &role).await? {
                        Some(user) => Ok(user),
                        None => repo::find_by_id(conn, id).await,
                    }
                })
            })
            .await
        })
    }

    /// Removes an additional role name (no effect when absent): one
    /// statement, no transaction. When the role was absent, a second
    /// statement reads the user back. Fails with [`Error::NotFound`].
    async fn remove_additional_role(&self, id: UserId, role: &str) -> Result<User> {
        observed!(self.slow(), "remove_additional_role", async {
            let role = validate::required("additional_roles", role, EXTRA_ROLE_MAX)?.to_owned();
            self.with_conn(move |conn| {
                Box::pin(async move {
                    match repo::remove_additional_role(conn, id, &role).await? {
                        Some(user) => Ok(user),
                        None => repo::find_by_id(conn, id).await,
                    }
                })
            })
            .await
        })
    }

    /// Changes `target`'s role on behalf of `actor`: the actor's role must be
    /// strictly above both the target's current role and the new role. In
    /// the same transaction, ends every session of the target, revokes its
    /// refresh tokens and cuts its pending password resets short (one an
    /// admin generated under the old role included), so that it logs in
    /// again under the new role.
    /// Audits `role_changed {previousRole, newRole}`.
    ///
    /// Fails with [`Error::Forbidden`] (hierarchy, blocked or unknown actor)
    /// or [`Error::NotFound`] (target).
    async fn change_role(
        &self,
        actor: UserId,
        target: UserId,
        role: Role,
        meta: &RequestMeta,
    ) -> Result<User> {
        observed!(self.slow(), "change_role", async {
            let meta = meta.clone();
            self.transaction(move |conn| {
                Box::pin(async move {
                    let (admin, user) = lock_actor_and_target(conn, actor, target)
                        .await
                        .map_err(not_found_user)?;
                    authorize(&admin, user.role.as_deref(), Some(role))?;
                    let details = json!({ "previousRole": user.role, "newRole": role.as_str() });
                    // Sessions and tokens were granted under the old role.
                    let (updated, ended, audited) = join3(
                        repo::set_role(conn, target, role.as_str()),
                        end_everywhere(conn, target),
                        audit(
                            conn,
                            AuditAction::RoleChanged,
                            Some(target),
                            Some(actor),
                            details,
                            &meta,
                        ),
                    )
                    .await;
                    let updated = updated?;
                    ended?;
                    audited?;
                    Ok(updated)
                })
            })
            .await
        })
    }

    /// Blocks `target` with a reason, on behalf of `actor` (same hierarchy
    /// rule), and in the same transaction ends every session of the target,
    /// revokes its refresh tokens and cuts its pending password resets
    /// short; audits `user_blocked {reason}`.
    ///
    /// Fails with [`Error::Forbidden`] (hierarchy, blocked or unknown actor)
    /// or [`Error::NotFound`] (target); nothing is ended then.
    async fn block_user(
        &self,
        actor: UserId,
        target: UserId,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<User> {
        observed!(self.slow(), "block_user", async {
            let reason = validate::required("reason", reason, REASON_MAX)?.to_owned();
            let meta = meta.clone();
            self.transaction(move |conn| {
                Box::pin(async move {
                    let (admin, user) = lock_actor_and_target(conn, actor, target).await?;
                    authorize(&admin, user.role.as_deref(), None)?;
                    // A blocked user keeps no way back in.
                    let (updated, ended, audited) = join3(
                        repo::set_blocked(conn, target, Some((&reason, actor))),
                        end_everywhere(conn, target),
                        audit(
                            conn,
                            AuditAction::UserBlocked,
                            Some(target),
                            Some(actor),
                            json!({ "reason": reason }),
                            &meta,
                        ),
                    )
                    .await;
                    let updated = updated?;
                    ended?;
                    audited?;
                    Ok(updated)
                })
            })
            .await
        })
    }

    /// Unblocks `target` on behalf of `actor` (same hierarchy rule); audits
    /// `user_unblocked`.
    async fn unblock_user(
        &self,
        actor: UserId,
        target: UserId,
        meta: &RequestMeta,
    ) -> Result<User> {
        observed!(self.slow(), "unblock_user", async {
            let meta = meta.clone();
            self.transaction(move |conn| {
                Box::pin(async move {
                    let (admin, user) = lock_actor_and_target(conn, actor, target).await?;
                    authorize(&admin, user.role.as_deref(), None)?;
                    let (updated, audited) = join(
                        repo::set_blocked(conn, target, None),
                        audit(
                            conn,
                            AuditAction::UserUnblocked,
                            Some(target),
                            Some(actor),
                            json!({}),
                            &meta,
                        ),
                    )
                    .await;
                    let updated = updated?;
                    audited?;
                    Ok(updated)
                })
            })
            .await
        })
    }

    /// Deletes `target` on behalf of `actor` (same hierarchy rule), and in
    /// the same transaction its sessions (its refresh tokens go with the
    /// row); audits `user_deleted {email}`.
    ///
    /// Fails with [`Error::Forbidden`] or [`Error::NotFound`]; nothing is
    /// deleted then.
    async fn delete_user(&self, actor: UserId, target: UserId, meta: &RequestMeta) -> Result<()> {
        observed!(self.slow(), "delete_user", async {
            let meta = meta.clone();
            self.transaction(move |conn| {
                Box::pin(async move {
                    let (admin, user) = lock_actor_and_target(conn, actor, target).await?;
                    authorize(&admin, user.role.as_deref(), None)?;
                    delete_with_entry(conn, &user, AuditAction::UserDeleted, actor, &meta).await
                })
            })
            .await
        })
    }

    /// Deletes the caller's own account, and in the same transaction its
    /// sessions on every device (its refresh tokens go with the row); audits
    /// `account_self_deleted`. Fails with [`Error::NotFound`].
    async fn delete_own_account(&self, id: UserId, meta: &RequestMeta) -> Result<()> {
        observed!(self.slow(), "delete_own_account", async {
            let meta = meta.clone();
            self.transaction(move |conn| {
                Box::pin(async move {
                    let user = repo::lock_by_id(conn, id).await?;
                    delete_with_entry(conn, &user, AuditAction::AccountSelfDeleted, id, &meta).await
                })
            })
            .await
        })
    }

    /// How many users hold each role, most common first.
    async fn count_users_by_role(&self) -> Result<Vec<RoleCount>> {
        observed!(self.slow(), "count_users_by_role", async {
            self.with_read_conn(|conn| Box::pin(count_by_role(conn)))
                .await
        })
    }
}

/// The email's key in `login_failures`: the SHA-256 hex of the normalised
/// email, so that no stranger's address is stored in clear.
fn email_digest(email: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(email.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The login-failure window as an SQL interval.
fn login_window(window: std::time::Duration) -> Result<diesel::pg::data_types::PgInterval> {
    let window = chrono::Duration::from_std(window)
        .map_err(|_| Error::validation("LOGIN_FAILURE_WINDOW_MS", "is too long"))?;
    crate::validate::interval(
        "LOGIN_FAILURE_WINDOW_MS",
        window,
        chrono::Duration::days(30),
    )
}

/// Whether `count` attempts in the window are past `max_failures`.
fn over_limit(count: i32, max_failures: u32) -> bool {
    count > i32::try_from(max_failures).unwrap_or(i32::MAX)
}

/// The refusal for an email whose window began at `window_started`.
fn throttled(window_started: chrono::DateTime<chrono::Utc>, window: std::time::Duration) -> Error {
    let ends = window_started + chrono::Duration::from_std(window).unwrap_or_default();
    let left = (ends - chrono::Utc::now()).to_std().unwrap_or_default();
    Error::LoginThrottled {
        retry_after: left.max(std::time::Duration::from_secs(1)),
    }
}

impl PgStore {
    /// Whether any account holds a hash of the scheme other than the
    /// configured one: read from the database at most once a minute.
    async fn other_scheme_present(&self) -> Result<bool> {
        if let Some(present) = self.passwords().other_scheme_present() {
            return Ok(present);
        }
        let (bcrypt, argon2) = self
            .with_conn(|conn| Box::pin(repo::hash_schemes_present(conn)))
            .await?;
        let present = match self.passwords().scheme() {
            HashScheme::Argon2id => bcrypt,
            HashScheme::Bcrypt => argon2,
        };
        self.passwords().note_other_scheme_present(present);
        Ok(present)
    }

    /// Counts one password attempt for `digest` (see
    /// [`UserStore::authenticate`]); fails with [`Error::LoginThrottled`]
    /// past the limit, before any hash runs.
    async fn count_login_attempt(&self, digest: &str) -> Result<()> {
        let limits = self.config().login();
        let window = login_window(limits.failure_window)?;
        let digest = digest.to_owned();
        let (count, started) = self
            .with_conn(move |conn| {
                Box::pin(async move { login_repo::count_attempt(conn, &digest, window).await })
            })
            .await?;
        if over_limit(count, limits.max_failures) {
            return Err(throttled(started, limits.failure_window));
        }
        Ok(())
    }
}
