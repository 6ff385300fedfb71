//! Secret tokens for refresh and password-reset flows: 256 random bits,
//! handed to the caller once as base64url text, and stored only as their
//! SHA-256 hex digest, so that a copy of the database cannot be replayed.
//!
//! Neither [`Token`] nor [`TokenDigest`] prints its value through `Debug`,
//! and neither implements `Display`: the text leaves only through
//! [`Token::expose`], at the one place that sends it to the client.

use crate::error::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// Random bytes in a token (256 bits).
pub const TOKEN_BYTES: usize = 32;

/// Characters in a token's text: 32 bytes in base64url without padding.
pub const TOKEN_CHARS: usize = 43;

/// A secret token: 256 random bits as base64url text without padding
/// (43 characters from `A-Z a-z 0-9 - _`).
///
/// `Debug` prints `Token(***)`; use [`Token::expose`] to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A new token from the operating system's random number generator.
    ///
    /// Fails with [`Error::Internal`] when the generator fails (it never
    /// falls back to a weaker source).
    pub fn generate() -> Result<Token> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::Internal(format!("the system random number generator failed: {e}"))
        })?;
        Ok(Token(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The token's text, to hand to the client (in a cookie, a response
    /// body, or a link in an email). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest stored in place of the token.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of_text(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// The SHA-256 digest of a token, as 64 lower-case hex digits: the value
/// stored in `refresh_tokens.token_hash` and
/// `password_reset_requests.reset_token_hash`, and looked up through their
/// unique indexes.
///
/// A token has 256 bits of entropy, so a fast unsalted hash is enough: a
/// stolen digest cannot be turned back into a token, and an exact lookup by
/// digest needs no constant-time comparison. `Debug` prints
/// `TokenDigest(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest(String);

impl TokenDigest {
    /// The digest of a token a client presented, or `None` when the text
    /// cannot be a token this crate issued (not 43 base64url characters), so
    /// that no query runs for it.
    pub fn of_presented(text: &str) -> Option<TokenDigest> {
        let well_formed = text.len() == TOKEN_CHARS
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| TokenDigest::of_text(text))
    }

    fn of_text(text: &str) -> TokenDigest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hash = Sha256::digest(text.as_bytes());
        let mut hex = String::with_capacity(hash.len() * 2);
        for byte in hash.iter() {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        TokenDigest(hex)
    }

    /// The hex text, for binding in a query.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_base64url_characters_and_differ() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), TOKEN_CHARS);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(),
            TOKEN_BYTES
        );
        assert!(TokenDigest::of_presented(a.expose()).is_some());
    }

    #[test]
    fn digests_are_sha256_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            TokenDigest::of_text("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = Token::generate().unwrap();
        assert_eq!(TokenDigest::of_presented(t.expose()), Some(t.digest()));
    }

    #[test]
    fn malformed_presented_tokens_have_no_digest() {
        let ok = "A".repeat(TOKEN_CHARS);
        assert!(TokenDigest::of_presented(&ok).is_some());
        for bad in [
            String::new(),
            "A".repeat(TOKEN_CHARS - 1),
            "A".repeat(TOKEN_CHARS + 1),
            format!("{}=", "A".repeat(TOKEN_CHARS - 1)),
            format!("{}+", "A".repeat(TOKEN_CHARS - 1)),
            format!("{}é", "A".repeat(TOKEN_CHARS - 2)),
        ] {
            assert!(TokenDigest::of_presented(&bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_value() {
        let t = Token::generate().unwrap();
        let shown = format!("{t:?} {:?}", t.digest());
        assert_eq!(shown, "Token(***) TokenDigest(***)");
        assert!(!shown.contains(t.expose()));
    }
}
