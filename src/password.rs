//! Password hashing: argon2id for new hashes, legacy bcrypt verification for
//! hashes the Node template stored, and upgrade detection.
//!
//! While a Node app still shares the database, [`HashScheme::Bcrypt`]
//! (`PASSWORD_HASH=bcrypt`) keeps every hash readable by bcryptjs: new and
//! changed passwords are bcrypt cost 12 in the `$2b$` form, bcrypt hashes
//! are never upgraded, and an argon2 hash that verifies is rewritten as
//! bcrypt so that the Node app can log that user in too.
//!
//! Each hash costs about 19 MiB and tens of milliseconds of CPU, so it runs
//! on Tokio's blocking threads (never on the async workers), and a semaphore
//! caps how many run at once, which bounds memory.

use crate::error::{Error, Result};
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Longest password accepted, in bytes; longer input is refused before any
/// hashing, so that a huge body cannot buy a long hash.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Shortest password accepted for new passwords, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The `target` of the [`Error::Unavailable`] a password check or hash
/// fails with when no hashing slot frees in time (`PASSWORD_HASH_WAIT_MS`),
/// to tell it from an unreachable database.
pub const HASHING_TARGET: &str = "password hashing";

/// The bcrypt cost of hashes written under [`HashScheme::Bcrypt`]: the
/// template's.
pub const BCRYPT_COST: u32 = 12;

/// bcrypt reads at most this many bytes of a password; under
/// [`HashScheme::Bcrypt`] longer new passwords are refused rather than cut.
pub const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// Which algorithm new password hashes use (`PASSWORD_HASH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashScheme {
    /// argon2id (OWASP's m=19456 KiB, t=2, p=1); bcrypt and weaker argon2
    /// hashes are replaced on the next successful login. The default.
    #[default]
    Argon2id,
    /// bcrypt cost [`BCRYPT_COST`] in the `$2b$` form, for the time a Node
    /// app using bcryptjs shares the database: nothing is upgraded to
    /// argon2id, and argon2 hashes are rewritten as bcrypt on login.
    Bcrypt,
}

impl std::str::FromStr for HashScheme {
    type Err = String;

    /// `argon2id` (or `argon2`) and `bcrypt`, in any case; anything else is
    /// an error naming the accepted values.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "argon2id" | "argon2" => Ok(HashScheme::Argon2id),
            "bcrypt" => Ok(HashScheme::Bcrypt),
            other => Err(format!("'{other}' is not argon2id or bcrypt")),
        }
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password does not match (or the stored value is not a known hash).
    No,
    /// It matches, and the stored hash uses the current algorithm and parameters.
    Yes,
    /// It matches, but the stored hash is not what the [`HashScheme`] writes
    /// (under argon2id: bcrypt, or argon2 with weaker parameters; under
    /// bcrypt: argon2): it should be replaced by a new hash of the same
    /// password.
    YesNeedsRehash,
}

impl Verified {
    /// Whether the password matched.
    pub fn matched(self) -> bool {
        !matches!(self, Verified::No)
    }
}

/// Hashes and verifies passwords off the async workers, at most `limit` at
/// once.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    params: Params,
    scheme: HashScheme,
    /// The longest a call waits for a permit.
    wait: Duration,
    /// Password checks run so far (real and dummy).
    verifications: Arc<AtomicU64>,
    /// A hash of a fixed text in each scheme (argon2id, bcrypt), checked
    /// against for logins whose email has no password, once it exists.
    dummies: Arc<[std::sync::OnceLock<String>; 2]>,
    /// Whether the database holds hashes of the other scheme, and when
    /// that was last read (ms since the Unix epoch; 0: never).
    other_present: Arc<(std::sync::atomic::AtomicBool, AtomicU64)>,
}

/// How long a reading of "hashes of the other scheme exist" is trusted.
const OTHER_SCHEME_TTL_MS: u64 = 60_000;

impl HashScheme {
    /// The other scheme.
    pub fn other(self) -> HashScheme {
        match self {
            HashScheme::Argon2id => HashScheme::Bcrypt,
            HashScheme::Bcrypt => HashScheme::Argon2id,
        }
    }

    /// The scheme a stored hash is in.
    pub fn of(stored: &str) -> HashScheme {
        if is_bcrypt(stored) {
            HashScheme::Bcrypt
        } else {
            HashScheme::Argon2id
        }
    }

    fn index(self) -> usize {
        match self {
            HashScheme::Argon2id => 0,
            HashScheme::Bcrypt => 1,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("available_permits", &self.permits.available_permits())
            .field("m_cost", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .field("scheme", &self.scheme)
            .field("wait", &self.wait)
            .finish()
    }
}

impl Default for Passwords {
    /// OWASP's argon2id setting (m=19456 KiB, t=2, p=1), as many at once as
    /// the machine has cores.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Passwords::new(cores)
    }
}

impl Passwords {
    /// Argon2id with m=19456 KiB, t=2, p=1, at most `limit` hashes at once
    /// (at least one).
    pub fn new(limit: usize) -> Self {
        Passwords::with_scheme(limit, HashScheme::Argon2id)
    }

    /// Hashes new passwords with `scheme`, at most `limit` hashes at once
    /// (at least one).
    pub fn with_scheme(limit: usize, scheme: HashScheme) -> Self {
        Passwords {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            params: Params::default(),
            scheme,
            wait: DEFAULT_WAIT,
            verifications: Arc::new(AtomicU64::new(0)),
            dummies: Arc::new([std::sync::OnceLock::new(), std::sync::OnceLock::new()]),
            other_present: Arc::new((std::sync::atomic::AtomicBool::new(false), AtomicU64::new(0))),
        }
    }

    /// The same, with calls waiting at most `wait` for a hashing slot
    /// (default 2 s) before failing with [`Error::Unavailable`].
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// How many password checks (real or dummy) have run: each costs one
    /// hash.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    fn hasher(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    async fn off_runtime<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        // The permit moves into the blocking job: a caller that gives up (a
        // dropped request) does not free a slot while its hash still runs.
        // Waiting is bounded, so that a flood of logins makes the excess
        // fail fast instead of queueing every later caller behind it.
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::Unavailable {
                target: HASHING_TARGET.to_owned(),
                reason: format!(
                    "no hashing slot became free within {} ms",
                    self.wait.as_millis()
                ),
            })?
            .map_err(|_| Error::Internal("password hashing was shut down".into()))?;
        tokio::task::spawn_blocking(move || {
            let result = job();
            drop(permit);
            result
        })
        .await
        .map_err(|e| Error::Internal(format!("password hashing task failed: {e}")))?
    }

    /// The scheme new hashes use.
    pub fn scheme(&self) -> HashScheme {
        self.scheme
    }

    /// Hashes a new password: an argon2id PHC string, or under
    /// [`HashScheme::Bcrypt`] a `$2b$12$` bcrypt hash.
    ///
    /// Fails with [`Error::Validation`] on field `password` when it is
    /// shorter than [`MIN_PASSWORD_CHARS`], longer than
    /// [`MAX_PASSWORD_BYTES`] (under bcrypt: [`BCRYPT_MAX_PASSWORD_BYTES`],
    /// since bcrypt would ignore the rest) or holds a NUL byte.
    pub async fn hash(&self, password: &str) -> Result<String> {
        validate_new(password)?;
        if self.scheme == HashScheme::Bcrypt && password.len() > BCRYPT_MAX_PASSWORD_BYTES {
            return Err(Error::validation(
                "password",
                format!(
                    "must be at most {BCRYPT_MAX_PASSWORD_BYTES} bytes while PASSWORD_HASH=bcrypt"
                ),
            ));
        }
        self.rehash(password).await
    }

    /// Hashes a password that already verified against an older hash, to
    /// upgrade it. Unlike [`Passwords::hash`] it does not apply the rules
    /// for new passwords (an old password may be shorter than they allow).
    pub(crate) async fn rehash(&self, password: &str) -> Result<String> {
        self.hash_as(password, self.scheme).await
    }

    async fn hash_as(&self, password: &str, scheme: HashScheme) -> Result<String> {
        let password = password.to_owned();
        let params = self.params.clone();
        self.off_runtime(move || match scheme {
            HashScheme::Argon2id => Self::hasher(&params)
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("password hashing failed: {e}"))),
            HashScheme::Bcrypt => bcrypt::hash_with_result(password.as_bytes(), BCRYPT_COST)
                .map(|h| h.format_for_version(bcrypt::Version::TwoB))
                .map_err(|e| Error::Internal(format!("password hashing failed: {e}"))),
        })
        .await
    }

    /// Checks `password` against a stored hash: argon2 (any variant and
    /// parameters) or bcrypt (`$2a$`, `$2b$`, `$2y$`). A stored value in no
    /// known format, or an over-long password, never matches.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<Verified> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(Verified::No);
        }
        let password = password.to_owned();
        let stored = stored.to_owned();
        let current = self.params.clone();
        let scheme = self.scheme;
        let count = self.verifications.clone();
        self.off_runtime(move || {
            count.fetch_add(1, Ordering::Relaxed);
            Ok(verify_blocking(&password, &stored, &current, scheme))
        })
        .await
    }

    /// Spends what checking a password against a hash of the current scheme
    /// costs, for a login whose email has no password (no such user, or an
    /// OAuth account), so that timing does not tell which emails exist.
    /// Always reports no match. The first call hashes a fixed text instead
    /// (a hash costs what a check costs) and keeps that hash to check
    /// against from then on.
    ///
    /// Fails with [`Error::Unavailable`] when no hashing slot frees in time.
    pub async fn verify_dummy(&self, password: &str) -> Result<Verified> {
        self.verify_dummy_as(password, self.scheme).await
    }

    /// [`Passwords::verify_dummy`] against a hash of `scheme`: what
    /// checking a password against such a hash costs.
    ///
    /// Fails with [`Error::Unavailable`] when no hashing slot frees in time.
    pub async fn verify_dummy_as(&self, password: &str, scheme: HashScheme) -> Result<Verified> {
        match self.dummies[scheme.index()].get() {
            Some(stored) => {
                let stored = stored.clone();
                // Cut to at most MAX_PASSWORD_BYTES bytes on a character
                // boundary, so that an over-long input is still checked
                // (and costs a check) rather than refused at once.
                let mut end = password.len().min(MAX_PASSWORD_BYTES);
                while !password.is_char_boundary(end) {
                    end -= 1;
                }
                self.verify(&password[..end], &stored)
                    .await
                    .map(|_| Verified::No)
            }
            None => {
                let made = self.hash_as(DUMMY_PASSWORD, scheme).await?;
                self.verifications.fetch_add(1, Ordering::Relaxed);
                let _ = self.dummies[scheme.index()].set(made);
                Ok(Verified::No)
            }
        }
    }

    /// Whether the database held hashes of the scheme other than the
    /// configured one at the last reading, when that reading is under a
    /// minute old; `None` when it must be read again.
    pub(crate) fn other_scheme_present(&self) -> Option<bool> {
        let (present, at) = &*self.other_present;
        let at = at.load(Ordering::Relaxed);
        (at != 0 && now_ms().saturating_sub(at) < OTHER_SCHEME_TTL_MS)
            .then(|| present.load(Ordering::Relaxed))
    }

    /// Records a reading of [`Passwords::other_scheme_present`].
    pub(crate) fn note_other_scheme_present(&self, present: bool) {
        let (flag, at) = &*self.other_present;
        flag.store(present, Ordering::Relaxed);
        at.store(now_ms().max(1), Ordering::Relaxed);
    }
}

/// How long a call waits for a hashing slot unless told otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(2);

/// The text behind the dummy hash; never anyone's password that matters,
/// since a dummy check always reports no match.
const DUMMY_PASSWORD: &str = "pronghorn-db dummy password";

fn verify_blocking(password: &str, stored: &str, current: &Params, scheme: HashScheme) -> Verified {
    if is_bcrypt(stored) {
        return match bcrypt::verify(password, stored) {
            Ok(true) if scheme == HashScheme::Bcrypt => Verified::Yes,
            Ok(true) => Verified::YesNeedsRehash,
            Ok(false) => Verified::No,
            Err(e) => {
                tracing::warn!(error = %e, "a stored bcrypt hash does not parse");
                Verified::No
            }
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        tracing::warn!("a stored password hash is in no known format");
        return Verified::No;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return Verified::No;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return Verified::No;
    };
    let verifier = Argon2::new(algorithm, Version::V0x13, params.clone());
    if verifier
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Verified::No;
    }
    if scheme == HashScheme::Bcrypt {
        // Rewritten as bcrypt so that the Node app can verify it too, unless
        // bcrypt would cut the password short.
        return if password.len() > BCRYPT_MAX_PASSWORD_BYTES {
            Verified::Yes
        } else {
            Verified::YesNeedsRehash
        };
    }
    let weaker = algorithm != Algorithm::Argon2id
        || parsed.version != Some(Version::V0x13.into())
        || params.m_cost() < current.m_cost()
        || params.t_cost() < current.t_cost()
        || params.p_cost() < current.p_cost();
    if weaker {
        Verified::YesNeedsRehash
    } else {
        Verified::Yes
    }
}

/// Whether a stored hash is bcrypt in one of the prefixes bcrypt libraries
/// (bcryptjs among them) write.
pub fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// Checks a new password before hashing.
///
/// Fails with [`Error::Validation`] on field `password`.
pub fn validate_new(password: &str) -> Result<()> {
    if password.contains('\0') {
        return Err(Error::validation("password", "must not contain a NUL byte"));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::validation(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::validation(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn new_hashes_are_argon2id_with_owasp_parameters() {
        let p = Passwords::new(2);
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(p.verify("correct horse", &h).await.unwrap(), Verified::Yes);
        assert_eq!(p.verify("wrong horse!", &h).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn bcrypt_verifies_and_asks_for_a_rehash() {
        let p = Passwords::new(1);
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let h = bcrypt::hash("legacy-pass", 4).unwrap();
            let h = format!("{prefix}{}", &h[4..]);
            assert_eq!(
                p.verify("legacy-pass", &h).await.unwrap(),
                Verified::YesNeedsRehash,
                "{prefix}"
            );
            assert_eq!(
                p.verify("other-pass", &h).await.unwrap(),
                Verified::No,
                "{prefix}"
            );
        }
    }

    #[tokio::test]
    async fn weaker_argon2_parameters_ask_for_a_rehash() {
        let weak = Params::new(4096, 1, 1, None).unwrap();
        let h = Argon2::new(Algorithm::Argon2id, Version::V0x13, weak)
            .hash_password(b"some password")
            .unwrap()
            .to_string();
        let p = Passwords::new(1);
        assert_eq!(
            p.verify("some password", &h).await.unwrap(),
            Verified::YesNeedsRehash
        );
        let h = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default())
            .hash_password(b"some password")
            .unwrap()
            .to_string();
        assert_eq!(
            p.verify("some password", &h).await.unwrap(),
            Verified::YesNeedsRehash
        );
    }

    #[tokio::test]
    async fn unknown_formats_and_oversized_input_never_match() {
        let p = Passwords::new(1);
        assert_eq!(p.verify("x", "plaintext").await.unwrap(), Verified::No);
        assert_eq!(p.verify("x", "").await.unwrap(), Verified::No);
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let h = p.hash("a valid password").await.unwrap();
        assert_eq!(p.verify(&long, &h).await.unwrap(), Verified::No);
        assert_eq!(p.verify_dummy("anything").await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn the_bcrypt_scheme_writes_2b_cost_12_and_upgrades_nothing() {
        let p = Passwords::with_scheme(2, HashScheme::Bcrypt);
        let h = p.hash("shared with node").await.unwrap();
        assert!(h.starts_with("$2b$12$") && h.len() == 60, "{h}");
        assert_eq!(
            p.verify("shared with node", &h).await.unwrap(),
            Verified::Yes
        );
        let legacy = bcrypt::hash("legacy-pass", 4).unwrap();
        let legacy = format!("$2a${}", &legacy[4..]);
        assert_eq!(
            p.verify("legacy-pass", &legacy).await.unwrap(),
            Verified::Yes
        );
        let argon = Passwords::new(1).hash("was argon2id").await.unwrap();
        assert_eq!(
            p.verify("was argon2id", &argon).await.unwrap(),
            Verified::YesNeedsRehash
        );
        match p.hash(&"x".repeat(BCRYPT_MAX_PASSWORD_BYTES + 1)).await {
            Err(Error::Validation { field, reason }) => {
                assert_eq!(field, "password");
                assert_eq!(
                    reason,
                    "must be at most 72 bytes while PASSWORD_HASH=bcrypt"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!("BCRYPT".parse::<HashScheme>(), Ok(HashScheme::Bcrypt));
        assert_eq!(" argon2id ".parse::<HashScheme>(), Ok(HashScheme::Argon2id));
        assert_eq!(
            "md5".parse::<HashScheme>(),
            Err("'md5' is not argon2id or bcrypt".to_owned())
        );
    }

    #[test]
    fn new_password_rules() {
        assert!(validate_new("short").is_err());
        assert!(validate_new("has\0nul-byte").is_err());
        assert!(validate_new(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(validate_new("long enough").is_ok());
        match validate_new("short") {
            Err(Error::Validation { field, .. }) => assert_eq!(field, "password"),
            other => panic!("{other:?}"),
        }
    }
}
