//! Tokens as secrets: [`Token`] never prints itself, [`Fingerprint`] is its
//! printable and cache-key form (SHA-256). Submodules decode Keystone's Fernet
//! tokens locally: [`keys`] (the key repository), [`fernet`] (decryption),
//! [`payload`] (the msgpack payload); and Keystone's JWS tokens:
//! [`jws_keys`] (the public key repository), [`jws`] (verification and
//! claims, decoded to the same [`payload::Payload`]).

pub mod fernet;
pub mod jws;
pub mod jws_keys;
pub mod keys;
pub mod payload;

use std::fmt;

use sha2::{Digest, Sha256};

/// Longest token accepted (bytes). Fernet tokens are ~180–260 characters;
/// federated ones grow with their groups. Anything longer is rejected before hashing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A bearer token taken from a request header. `Debug` is redacted and there is
/// no `Display`: the only ways to see it are [`Token::expose`] (to send it to
/// Keystone) and its [`Fingerprint`].
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Box<str>);

impl Token {
    /// Takes a header value as a token: surrounding whitespace is removed (as
    /// keystonemiddleware does); empty, non-ASCII, or longer than
    /// [`MAX_TOKEN_LEN`] values are refused.
    pub fn from_header(value: &http::HeaderValue) -> Option<Self> {
        // A header value's only whitespace is space and tab; the ASCII
        // check first (a word at a time) leaves UTF-8 validation nothing
        // to decode.
        let bytes = value.as_bytes().trim_ascii();
        if bytes.is_empty() || bytes.len() > MAX_TOKEN_LEN || !bytes.is_ascii() {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        Some(Self(text.into()))
    }

    /// Reads an `Authorization` value as RFC 6750 credentials
    /// (`Bearer <b64token>`, the scheme in any case): `None` when its scheme
    /// is another (that is not a token), `Some(None)` when it is `Bearer` but
    /// what follows is not one b64token (empty, two values merged with a
    /// comma, spaces inside, too long), else the token.
    pub fn from_authorization(value: &http::HeaderValue) -> Option<Option<Self>> {
        let text = value.as_bytes().trim_ascii();
        let (scheme, rest) = match text.iter().position(|b| *b == b' ') {
            Some(i) => (&text[..i], &text[i..]),
            None => (text, &b""[..]),
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return None;
        }
        let credentials = rest.trim_ascii_start();
        let body_end = credentials
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || b"-._~+/".contains(b)))
            .unwrap_or(credentials.len());
        let well_formed = body_end > 0
            && credentials.len() <= MAX_TOKEN_LEN
            && credentials[body_end..].iter().all(|b| *b == b'=');
        // All ASCII by now.
        Some(
            well_formed
                .then(|| {
                    std::str::from_utf8(credentials)
                        .ok()
                        .map(|t| Self(t.into()))
                })
                .flatten(),
        )
    }

    /// The token text, for the one place that must send it (the Keystone client).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token: the cache key and the only form that is logged.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.fingerprint())
    }
}

/// SHA-256 of a token. `Display` shows a 12-hex-digit prefix, enough to
/// correlate log lines, useless to an attacker.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// SHA-256 of any bytes (e.g. a username, for logs).
    pub fn of(bytes: &[u8]) -> Self {
        Fingerprint(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0[..6]))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let t = Token::from_header(&http::HeaderValue::from_static(" gAAAAAsecretvalue ")).unwrap();
        assert_eq!(t.expose(), "gAAAAAsecretvalue");
        let shown = format!("{t:?} {} {:?}", t.fingerprint(), t.fingerprint());
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn empty_and_oversized_values_are_not_tokens() {
        assert!(Token::from_header(&http::HeaderValue::from_static("  ")).is_none());
        let big = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(Token::from_header(&http::HeaderValue::from_str(&big).unwrap()).is_none());
    }

    #[test]
    fn bearer_credentials_are_one_b64token() {
        let read = |v: &str| Token::from_authorization(&http::HeaderValue::from_str(v).unwrap());
        let token = |v: &str| read(v).flatten().map(|t| t.expose().to_owned());
        assert_eq!(
            token("Bearer gAAAAA-x_y.z~1+2/3=="),
            Some("gAAAAA-x_y.z~1+2/3==".into())
        );
        assert_eq!(token("bearer  abc "), Some("abc".into()));
        // Other schemes are not tokens at all.
        assert!(read("Basic dXNlcjpwYXNz").is_none());
        assert!(read("Bearerx abc").is_none());
        // Bearer, but not one token: refused, never partly read.
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer abc, Bearer def",
            "Bearer abc,def",
            "Bearer abc def",
            "Bearer a=b",
            "Bearer \"abc\"",
        ] {
            assert_eq!(read(bad), Some(None), "{bad}");
        }
        let big = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(read(&big), Some(None));
    }
}
