//! Express sessions in the connect-pg-simple layout: the [`SessionStore`]
//! part of the store, the session data types, and their implementations for
//! [`PgStore`] and [`DisabledStore`](crate::DisabledStore).
//!
//! What the part guarantees is in the trait's docs.

use super::user_audit_log::AuditAction;
use super::PgStore;
use crate::error::{Error, Result};
use crate::models::UserId;
use crate::observe::observed;
use crate::repo::sessions as repo;
use crate::validate;
use chrono::{DateTime, SecondsFormat, Utc};
use diesel_async::AsyncPgConnection;
use futures_util::future::{join, join4};
use pronghorn_db_macros::store_part;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

mod signing;
pub use signing::CookieSigner;

/// How long a session lives when its cookie has no expiry (a browser-session
/// cookie): one day, connect-pg-simple's default.
pub const DEFAULT_SESSION_TTL: chrono::Duration = chrono::Duration::days(1);

/// Longest session id accepted. express-session's ids are 32 characters;
/// the column itself has no limit.
pub const SID_MAX: usize = 255;

/// The `cookie` object of an express-session session, as express-session
/// serialises it (`Cookie.prototype.toJSON`).
///
/// Fields this type does not name (e.g. `partitioned`, `priority`) are kept
/// in [`SessionCookie::other`] and written back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCookie {
    /// The cookie's lifetime when it was set, in milliseconds; `None`
    /// (`null`) for a browser-session cookie.
    #[serde(default, deserialize_with = "millis")]
    pub original_max_age: Option<i64>,
    /// When the cookie expires; `None` (`null`) for a browser-session
    /// cookie. Written as JavaScript's `Date.prototype.toJSON` does
    /// (`2024-06-01T12:00:00.000Z`).
    #[serde(default, serialize_with = "js_date")]
    pub expires: Option<DateTime<Utc>>,
    /// Whether the cookie is sent over HTTPS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    /// Whether scripts are denied the cookie (express-session's default:
    /// true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// The cookie's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The cookie's path (express-session's default: `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The `SameSite` attribute: `true`, `false`, `"lax"`, `"strict"` or
    /// `"none"`, as express-session accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<Value>,
    /// Any other field of the cookie object, kept as read.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl SessionCookie {
    /// A cookie that expires `max_age` from now, with express-session's
    /// defaults (`httpOnly: true`, `path: "/"`).
    pub fn with_max_age(max_age: chrono::Duration) -> Self {
        SessionCookie {
            original_max_age: Some(max_age.num_milliseconds()),
            expires: Some(Utc::now() + max_age),
            ..SessionCookie::browser_session()
        }
    }

    /// A browser-session cookie (no `expires`), with express-session's
    /// defaults (`httpOnly: true`, `path: "/"`). Stored sessions with such a
    /// cookie expire after [`DEFAULT_SESSION_TTL`].
    pub fn browser_session() -> Self {
        SessionCookie {
            original_max_age: None,
            expires: None,
            secure: None,
            http_only: Some(true),
            domain: None,
            path: Some("/".to_owned()),
            same_site: None,
            other: Map::new(),
        }
    }

    /// When a session with this cookie expires in the table: the cookie's
    /// `expires`, else `now` plus [`DEFAULT_SESSION_TTL`].
    pub fn session_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.expires.unwrap_or(now + DEFAULT_SESSION_TTL)
    }
}

/// Reads `originalMaxAge` as JavaScript wrote it: any number (a fraction is
/// rounded) or `null`.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|ms| ms.round() as i64))
}

/// Writes a time as JavaScript's `Date.prototype.toJSON`: milliseconds and `Z`.
fn js_date<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true)),
        None => s.serialize_none(),
    }
}

/// One session's data: the express-session object stored in `sess`.
///
/// `Debug` shows the cookie and the names of the app's fields, never their
/// values (they can hold the logged-in user and other auth state).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    /// The session cookie's settings.
    pub cookie: SessionCookie,
    /// The app's fields beside `cookie` (e.g. `passport: {user: ...}`),
    /// kept as read. Must not hold a key named `cookie`.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl SessionData {
    /// A session with this cookie and no fields yet.
    pub fn new(cookie: SessionCookie) -> Self {
        SessionData {
            cookie,
            fields: Map::new(),
        }
    }

    /// Reads `sess` as stored by either app. Returns `None` when it is not
    /// a JSON object (connect-pg-simple treats such a row as no session).
    /// An object without `cookie` reads with a browser-session cookie.
    pub fn from_json(sess: Value) -> Option<Self> {
        let Value::Object(mut fields) = sess else {
            return None;
        };
        let cookie = match fields.remove("cookie") {
            None | Some(Value::Null) => SessionCookie::browser_session(),
            Some(c) => serde_json::from_value(c).ok()?,
        };
        Some(SessionData { cookie, fields })
    }

    /// The JSON written to `sess`.
    ///
    /// Fails with [`Error::Validation`] on `sess` when a field is named
    /// `cookie`, which would shadow the cookie object.
    pub fn to_json(&self) -> Result<Value> {
        if self.fields.contains_key("cookie") {
            return Err(Error::validation(
                "sess",
                "an app field must not be named `cookie`",
            ));
        }
        serde_json::to_value(self)
            .map_err(|e| Error::validation("sess", format!("cannot be serialised: {e}")))
    }
}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionData")
            .field("cookie", &self.cookie)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A live session as read from the table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    /// The session's data.
    pub data: SessionData,
    /// When the row expires (its `expire` column as an instant). After
    /// [`SessionStore::touch_session`] this is later than `data.cookie.expires`,
    /// which touching leaves as it was.
    pub expires_at: DateTime<Utc>,
}

/// What ending a user's sessions everywhere removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndedSessions {
    /// Session rows deleted (those whose `sess` holds the user's `userId`).
    pub sessions: usize,
    /// Refresh tokens revoked (those that were still live).
    pub refresh_tokens: usize,
}

/// Ends every way `user` is logged in, or could log in without the
/// password: deletes the sessions whose `sess` holds the user's `userId`,
/// revokes the user's live refresh tokens, and cuts the user's pending
/// password resets short (a link requested before a password change, or
/// generated by an admin before a role change, must not outlive it). It
/// also cuts short the reset links `user` generated for others as an admin:
/// a block, a new role or a password change (of an admin account that may
/// have been in other hands) takes back what that account handed out. All
/// on `conn` (so inside the caller's transaction, which should hold the
/// user's row locked first, as every transaction revoking all of a user's
/// tokens does). Returns the sessions and tokens it removed.
///
/// The four statements are pipelined: sent together, one round trip.
pub(crate) async fn end_everywhere(
    conn: &AsyncPgConnection,
    user: UserId,
) -> Result<EndedSessions> {
    use crate::repo::password_reset_requests as resets;
    let (refresh_tokens, sessions, pending, generated) = join4(
        crate::repo::refresh_tokens::revoke_all_of_user(conn, user),
        repo::delete_all_of_user(conn, user),
        resets::expire_pending_of_user(conn, user),
        resets::expire_generated_by(conn, user, AuditAction::AdminGeneratedResetToken.as_str()),
    )
    .await;
    // The first error in the order sent is the cause; a later one is only
    // "current transaction is aborted".
    let refresh_tokens = refresh_tokens?;
    let sessions = sessions?;
    pending?;
    generated?;
    Ok(EndedSessions {
        sessions,
        refresh_tokens,
    })
}

/// Checks a session id: not empty, at most [`SID_MAX`] characters.
pub(crate) fn check_sid(sid: &str) -> Result<String> {
    if sid.is_empty() {
        return Err(Error::validation("sid", "must not be empty"));
    }
    Ok(validate::text("sid", sid, SID_MAX)?.to_owned())
}

/// Express sessions, shared with connect-pg-simple.
///
/// A Node app using express-session with connect-pg-simple and a Rust app
/// using this store can share one `session` table: each reads and touches
/// the other's rows. `sess` holds the JSON of the express-session object, a
/// `cookie` object (`originalMaxAge`, `expires`, `httpOnly`, `path`, ...)
/// beside the app's own fields; `expire` holds the cookie's expiry as a
/// `timestamp` without time zone, written and compared in the database
/// session's `TimeZone` exactly as connect-pg-simple does (UTC under the
/// server's usual setting); see [`crate::repo::sessions`].
///
/// [`CookieSigner`] signs and verifies the session cookie as express-session
/// does, so that the same browser session is valid in both apps.
///
/// A session belongs to a user only through the `userId` field an app puts
/// in `sess` (the example server writes the user's id there). Logging out
/// everywhere ([`SessionStore::end_all_sessions`]), and every change that
/// must log a user out (a new password, a block, a deletion, a new role),
/// delete the rows whose `sess ->> 'userId'` is that id, through the index
/// `idx_session_user_id`.
///
/// Session ids are checked before any query ([`Error::Validation`] on `sid`
/// when empty, longer than [`SID_MAX`] or holding a NUL byte). On
/// [`DisabledStore`](crate::DisabledStore) every method fails with [`Error::Disabled`]; on any
/// store a lost connection is [`Error::Unavailable`].
#[store_part]
impl SessionStore for PgStore {
    /// The session `sid` when it exists and has not expired; `None` when it
    /// does not exist, has expired, or its `sess` is not a JSON object.
    async fn get_session(&self, sid: &str) -> Result<Option<StoredSession>> {
        observed!(self.slow(), "get_session", async {
            let sid = check_sid(sid)?;
            let found = self
                .with_conn(move |conn| Box::pin(async move { repo::find_live(conn, &sid).await }))
                .await?;
            Ok(
                found.and_then(|(sess, expires_at)| match SessionData::from_json(sess) {
                    Some(data) => Some(StoredSession { data, expires_at }),
                    None => {
                        tracing::warn!("a stored session's data is not an express-session object");
                        None
                    }
                }),
            )
        })
    }

    /// Stores the session, inserting it or replacing the data and expiry of
    /// the row with this id. The row expires at the cookie's `expires`, or
    /// [`DEFAULT_SESSION_TTL`] from now for a browser-session cookie.
    /// Returns that expiry.
    ///
    /// Fails with [`Error::Validation`] on `sess` when an app field is named
    /// `cookie`.
    async fn set_session(&self, sid: &str, data: &SessionData) -> Result<DateTime<Utc>> {
        observed!(self.slow(), "set_session", async {
            let sid = check_sid(sid)?;
            let sess = data.to_json()?;
            let expires_at = data.cookie.session_expiry(Utc::now());
            self.with_conn(move |conn| {
                Box::pin(async move { repo::upsert(conn, &sid, &sess, expires_at).await })
            })
            .await?;
            Ok(expires_at)
        })
    }

    /// Moves the expiry of a live session to `expires_at`, leaving its data
    /// untouched (as connect-pg-simple's `touch`). Returns whether a live
    /// session was touched: an expired one is not revived.
    async fn touch_session(&self, sid: &str, expires_at: DateTime<Utc>) -> Result<bool> {
        observed!(self.slow(), "touch_session", async {
            let sid = check_sid(sid)?;
            self.with_conn(move |conn| {
                Box::pin(async move { repo::touch(conn, &sid, expires_at).await })
            })
            .await
        })
    }

    /// Deletes the session (logout). Returns whether it existed.
    async fn destroy_session(&self, sid: &str) -> Result<bool> {
        observed!(self.slow(), "destroy_session", async {
            let sid = check_sid(sid)?;
            self.with_conn(move |conn| Box::pin(async move { repo::delete(conn, &sid).await }))
                .await
        })
    }

    /// Deletes every expired session; returns how many.
    async fn delete_expired_sessions(&self) -> Result<usize> {
        observed!(self.slow(), "delete_expired_sessions", async {
            self.with_conn(|conn| Box::pin(repo::delete_expired(conn)))
                .await
        })
    }

    /// Logs `user` out everywhere, in one transaction: deletes every session
    /// whose `sess` holds the user's id as `userId` (live or expired) and
    /// revokes every live refresh token of the user, including a successor
    /// that a rotation in flight is issuing, and cuts short the user's
    /// pending password resets and those it generated for others as an
    /// admin (their links stop working). Returns how many
    /// sessions and tokens; an unknown user has no tokens, but sessions
    /// naming it are still deleted.
    ///
    /// Sessions are matched by the id's text as the store writes it
    /// (lowercase, hyphenated): an application should accept no other form
    /// when it reads `userId` back.
    async fn end_all_sessions(&self, user: UserId) -> Result<EndedSessions> {
        observed!(self.slow(), "end_all_sessions", async {
            self.transaction(move |conn| {
                Box::pin(async move {
                    // The lock waits for rotations in flight; the statements
                    // after it, pipelined with it, each take their snapshot
                    // once it is granted, so they see (and revoke) the
                    // successors those rotations committed.
                    let (locked, ended) = join(
                        crate::repo::users::lock_by_id(conn, user),
                        end_everywhere(conn, user),
                    )
                    .await;
                    match locked {
                        Ok(_) | Err(Error::NotFound { .. }) => ended,
                        Err(e) => Err(e),
                    }
                })
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn express_session_json_round_trips() {
        let sess = json!({
            "cookie": {
                "originalMaxAge": 86_400_000,
                "expires": "2030-01-02T03:04:05.678Z",
                "secure": false,
                "httpOnly": true,
                "domain": "example.test",
                "path": "/",
                "sameSite": "lax",
                "priority": "high"
            },
            "passport": { "user": 42 },
            "flash": []
        });
        let data = SessionData::from_json(sess.clone()).unwrap();
        assert_eq!(data.cookie.original_max_age, Some(86_400_000));
        assert_eq!(
            data.cookie.expires.unwrap().to_rfc3339(),
            "2030-01-02T03:04:05.678+00:00"
        );
        assert_eq!(data.cookie.other.get("priority"), Some(&json!("high")));
        assert_eq!(data.fields.len(), 2);
        assert_eq!(data.to_json().unwrap(), sess);
    }

    #[test]
    fn new_cookies_are_written_as_express_session_writes_them() {
        let data = SessionData::new(SessionCookie::browser_session());
        assert_eq!(
            data.to_json().unwrap(),
            json!({"cookie": {"originalMaxAge": null, "expires": null, "httpOnly": true, "path": "/"}})
        );
        let cookie = SessionCookie::with_max_age(chrono::Duration::hours(2));
        let v = serde_json::to_value(&cookie).unwrap();
        assert_eq!(v["originalMaxAge"], json!(7_200_000));
        let expires = v["expires"].as_str().unwrap();
        assert!(expires.len() == 24 && expires.ends_with('Z'), "{expires}");
    }

    #[test]
    fn odd_sess_values() {
        assert!(SessionData::from_json(json!("text")).is_none());
        assert!(SessionData::from_json(json!({"cookie": "not an object"})).is_none());
        let bare = SessionData::from_json(json!({"n": 1})).unwrap();
        assert_eq!(bare.cookie, SessionCookie::browser_session());
        let frac = SessionData::from_json(json!({"cookie": {"originalMaxAge": 1500.4}})).unwrap();
        assert_eq!(frac.cookie.original_max_age, Some(1500));
        let mut clash = SessionData::new(SessionCookie::browser_session());
        clash.fields.insert("cookie".into(), json!(1));
        assert!(matches!(
            clash.to_json(),
            Err(Error::Validation { field: "sess", .. })
        ));
    }

    #[test]
    fn debug_hides_field_values() {
        let mut data = SessionData::new(SessionCookie::browser_session());
        data.fields.insert("secret".into(), json!("s3cr3t-value"));
        let shown = format!("{data:?}");
        assert!(shown.contains("secret"), "{shown}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
    }
}
