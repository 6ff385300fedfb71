//! The `session` table: express sessions in the connect-pg-simple layout,
//! shared with a Node app that still serves requests.

use crate::schema::session;
use chrono::NaiveDateTime;
use std::fmt;

/// One row of `session`.
///
/// `Debug` shows the size of `sess`, never its content (it can hold the
/// logged-in user and other auth state), and only the start of `sid` (a
/// session id is a bearer credential).
#[derive(Clone, PartialEq, diesel::Queryable, diesel::Selectable, diesel::Identifiable)]
#[diesel(table_name = session)]
#[diesel(primary_key(sid))]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Session {
    /// The session id (primary key `session_pkey`).
    pub sid: String,
    /// The session data as express-session serialises it (`json`, not
    /// `jsonb`: key order and spacing are kept as written).
    pub sess: serde_json::Value,
    /// When the session expires: `timestamp` without time zone.
    /// connect-pg-simple writes `to_timestamp(seconds)`, which PostgreSQL
    /// converts to local time in the writing session's `TimeZone`; compare
    /// it the same way (`expire < to_timestamp(...)` or `NOW()`), not with a
    /// UTC value computed here.
    pub expire: NaiveDateTime,
}

/// How many characters of a session id `Debug` shows.
const SID_SHOWN: usize = 4;

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sid_start: String = self.sid.chars().take(SID_SHOWN).collect();
        f.debug_struct("Session")
            .field("sid", &format_args!("{sid_start}..."))
            .field("sess_bytes", &self.sess.to_string().len())
            .field("expire", &self.expire)
            .finish()
    }
}
