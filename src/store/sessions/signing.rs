//! Session cookies signed the way express-session signs them, so that one
//! browser session moves between a Node app and a Rust app that share the
//! `session` table and the secret.
//!
//! express-session sets its cookie to `s:` + the session id + `.` + the
//! HMAC-SHA256 of the id under the first secret, in base64 with the `=`
//! padding removed (the `cookie-signature` package), percent-encoded as
//! JavaScript's `encodeURIComponent` does (`s%3A...`). It accepts a cookie
//! signed with any of its secrets, which is how secrets are rotated: the new
//! one first, the old ones after it until their cookies have expired. A
//! cookie without the `s:` prefix, or with a signature no secret made, names
//! no session.

use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use std::fmt;

/// What `encodeURIComponent` escapes: everything but letters, digits and
/// `-_.!~*'()`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The prefix express-session puts before a signed session id.
const SIGNED_PREFIX: &str = "s:";

/// Signs session ids into cookie values and verifies them, exactly as
/// express-session does with the same secrets.
///
/// `Debug` shows how many secrets there are, never a secret.
#[derive(Clone)]
pub struct CookieSigner {
    /// The first signs; every one verifies.
    secrets: Vec<Vec<u8>>,
}

impl fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieSigner")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl CookieSigner {
    /// A signer with these secrets, in express-session's order: the first
    /// signs new cookies, and cookies signed with any of them verify.
    ///
    /// Fails with [`Error::Validation`] on `SESSION_SECRET` when there is no
    /// secret or one is empty.
    pub fn new<S: AsRef<[u8]>>(secrets: impl IntoIterator<Item = S>) -> Result<Self> {
        let secrets: Vec<Vec<u8>> = secrets.into_iter().map(|s| s.as_ref().to_vec()).collect();
        if secrets.is_empty() {
            return Err(Error::validation(
                "SESSION_SECRET",
                "needs at least one secret",
            ));
        }
        if secrets.iter().any(Vec::is_empty) {
            return Err(Error::validation("SESSION_SECRET", "a secret is empty"));
        }
        Ok(CookieSigner { secrets })
    }

    /// A signer from the value of `SESSION_SECRET`: one secret, or several
    /// separated by commas for rotation (new first). Spaces around each are
    /// kept: they are part of the secret, as in Node.
    ///
    /// Fails with [`Error::Validation`] on `SESSION_SECRET` when the value or
    /// one of its comma-separated parts is empty.
    pub fn from_setting(value: &str) -> Result<Self> {
        CookieSigner::new(value.split(','))
    }

    /// How many secrets verify cookies.
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    fn signature(secret: &[u8], sid: &str) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
        mac.update(sid.as_bytes());
        Some(mac)
    }

    /// The signed value before percent-encoding: `s:<sid>.<signature>`.
    pub fn sign(&self, sid: &str) -> String {
        let signature = self
            .secrets
            .first()
            .and_then(|secret| CookieSigner::signature(secret, sid))
            .map(|mac| STANDARD_NO_PAD.encode(mac.finalize().into_bytes()))
            .unwrap_or_default();
        format!("{SIGNED_PREFIX}{sid}.{signature}")
    }

    /// The cookie value express-session would set for `sid`: the signed
    /// value, percent-encoded as `encodeURIComponent` encodes it.
    pub fn cookie_value(&self, sid: &str) -> String {
        utf8_percent_encode(&self.sign(sid), URI_COMPONENT).to_string()
    }

    /// The session id in a cookie value, when a secret signed it; `None`
    /// for an unsigned value, a bad or truncated signature, or a value that
    /// does not decode. The value is read as express-session reads it:
    /// percent-decoded first (left as is when it does not decode), then
    /// split at the last `.`. Signatures are compared in constant time.
    pub fn verify(&self, cookie_value: &str) -> Option<String> {
        let decoded = decode_uri_component(cookie_value);
        let signed = decoded.strip_prefix(SIGNED_PREFIX)?;
        let (sid, signature) = signed.rsplit_once('.')?;
        // The standard alphabet without padding, canonical trailing bits
        // only: one byte string has exactly one accepted spelling, as in
        // cookie-signature's comparison of the base64 text.
        let presented = STANDARD_NO_PAD.decode(signature).ok()?;
        self.secrets.iter().find_map(|secret| {
            let mac = CookieSigner::signature(secret, sid)?;
            mac.verify_slice(&presented).ok().map(|()| sid.to_owned())
        })
    }
}

/// `decodeURIComponent` as the `cookie` package applies it: values without
/// `%` are left alone, and a value that does not decode (a `%` not followed
/// by two hex digits, or bytes that are not UTF-8) is kept as it was.
fn decode_uri_component(value: &str) -> String {
    if !value.contains('%') {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return value.to_owned();
    }
    percent_decode_str(value)
        .decode_utf8()
        .map_or_else(|_| value.to_owned(), |s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    // cookie-signature's own documented example: sign('hello', 'tobiiscool').
    #[test]
    fn signs_as_cookie_signature_does() {
        let signer = CookieSigner::new(["tobiiscool"]).unwrap();
        assert_eq!(
            signer.sign("hello"),
            "s:hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI"
        );
        assert_eq!(
            signer.cookie_value("hello"),
            "s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QI"
        );
        assert_eq!(
            signer.verify("s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QI"),
            Some("hello".to_owned())
        );
        assert_eq!(
            signer.verify(&signer.sign("hello")),
            Some("hello".to_owned())
        );
    }

    #[test]
    fn the_first_secret_signs_and_every_secret_verifies() {
        let old = CookieSigner::new(["old secret"]).unwrap();
        let rotated = CookieSigner::from_setting("new secret,old secret").unwrap();
        assert_eq!(rotated.secret_count(), 2);
        let sid = "aX9_-sid";
        assert_eq!(rotated.verify(&old.cookie_value(sid)), Some(sid.to_owned()));
        let fresh = rotated.cookie_value(sid);
        assert_ne!(fresh, old.cookie_value(sid));
        assert_eq!(
            CookieSigner::new(["new secret"]).unwrap().verify(&fresh),
            Some(sid.to_owned())
        );
        assert_eq!(
            old.verify(&fresh),
            None,
            "a retired secret's signer refuses"
        );
    }

    #[test]
    fn unsigned_forged_and_mangled_values_are_refused() {
        let signer = CookieSigner::new(["k"]).unwrap();
        let good = signer.sign("abc");
        let sig = good.rsplit_once('.').unwrap().1.to_owned();
        for bad in [
            "abc".to_owned(),
            "s:abc".to_owned(),
            format!("abc.{sig}"),
            format!("s:abd.{sig}"),
            format!("s:abc.{}", &sig[..sig.len() - 1]),
            format!("s:abc.{sig}="),
            format!("s:abc.{sig}A"),
            format!("s:abc.x{sig}"),
            "s:abc.".to_owned(),
            "%zz".to_owned(),
            String::new(),
        ] {
            assert_eq!(signer.verify(&bad), None, "{bad}");
        }
        let other = CookieSigner::new(["not k"]).unwrap();
        assert_eq!(other.verify(&good), None);
    }

    #[test]
    fn secrets_are_required_and_never_shown() {
        assert!(matches!(
            CookieSigner::new(Vec::<&str>::new()),
            Err(Error::Validation {
                field: "SESSION_SECRET",
                ..
            })
        ));
        assert!(matches!(
            CookieSigner::from_setting("a,,b"),
            Err(Error::Validation {
                field: "SESSION_SECRET",
                ..
            })
        ));
        assert!(CookieSigner::from_setting("").is_err());
        let shown = format!(
            "{:?}",
            CookieSigner::from_setting("hunter2,swordfish").unwrap()
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("swordfish"),
            "{shown}"
        );
    }

    #[test]
    fn decodes_like_decode_uri_component() {
        assert_eq!(decode_uri_component("s%3Aa%2Fb"), "s:a/b");
        assert_eq!(decode_uri_component("plain"), "plain");
        assert_eq!(decode_uri_component("bad%2"), "bad%2");
        assert_eq!(decode_uri_component("bad%ff"), "bad%ff");
    }
}
