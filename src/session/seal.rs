//! The session cookie's value: the Keystone token and the session's CSRF
//! secret, sealed with XChaCha20-Poly1305 under a key of the ring.
//!
//! `base64url( 0x01 | key id (4) | nonce (24) | ciphertext+tag )`; the
//! version, key id and cookie name are the associated data, so a value is
//! bound to its format, its key and its cookie. Anything that does not open
//! is "no session", never an identity.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keys::SessionKeys;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Longest cookie value opened (a Fernet token is ~250 characters; browsers
/// cap a cookie at 4096 bytes).
const MAX_VALUE_LEN: usize = 4096;

/// What a session cookie carries.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionData {
    /// The Keystone token.
    #[serde(rename = "t")]
    pub token: String,
    /// The session's CSRF secret (also the `csrftoken` cookie's value).
    #[serde(rename = "c")]
    pub csrf: String,
    /// The token's expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// The user's id (for logs).
    #[serde(rename = "u")]
    pub user_id: String,
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionData")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// Why a cookie value did not open (for logs and metrics only; the client
/// just sees "no valid session").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not our format (bad base64, wrong version, too short or too long).
    #[error("not a stonegate session cookie")]
    Malformed,
    /// Sealed with a key that is no longer in the ring.
    #[error("sealed with a key that is no longer configured")]
    UnknownKey,
    /// The tag did not verify: tampered with, or another cookie's value.
    #[error("does not authenticate")]
    Forged,
}

impl OpenError {
    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            OpenError::Malformed => "malformed",
            OpenError::UnknownKey => "unknown_key",
            OpenError::Forged => "forged",
        }
    }
}

fn aad(header: &[u8], cookie_name: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() - NONCE_LEN + cookie_name.len() + 1);
    a.extend_from_slice(&header[..5]);
    a.push(0);
    a.extend_from_slice(cookie_name.as_bytes());
    a
}

/// Seals `data` for the cookie `cookie_name` with the ring's current key.
pub fn seal(
    keys: &SessionKeys,
    cookie_name: &str,
    data: &SessionData,
) -> Result<String, super::SessionError> {
    let key = keys.current();
    let mut header = [0u8; HEADER_LEN];
    header[0] = VERSION;
    header[1..5].copy_from_slice(&key.id);
    super::random(&mut header[5..])?;
    let plaintext =
        Zeroizing::new(serde_json::to_vec(data).map_err(|_| super::SessionError::Seal)?);
    let cipher = XChaCha20Poly1305::new(key.bytes.as_slice().into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&header[5..]),
            Payload {
                msg: &plaintext,
                aad: &aad(&header, cookie_name),
            },
        )
        .map_err(|_| super::SessionError::Seal)?;
    let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&ct);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Opens a cookie value sealed by [`seal`] for `cookie_name`.
pub fn open(keys: &SessionKeys, cookie_name: &str, value: &str) -> Result<SessionData, OpenError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(OpenError::Malformed);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| OpenError::Malformed)?;
    if raw.len() < HEADER_LEN + 16 || raw[0] != VERSION {
        return Err(OpenError::Malformed);
    }
    let key = keys.find(&raw[1..5]).ok_or(OpenError::UnknownKey)?;
    let cipher = XChaCha20Poly1305::new(key.bytes.as_slice().into());
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&raw[5..HEADER_LEN]),
                Payload {
                    msg: &raw[HEADER_LEN..],
                    aad: &aad(&raw[..HEADER_LEN], cookie_name),
                },
            )
            .map_err(|_| OpenError::Forged)?,
    );
    // Authenticated but unparsable would mean our own bug or a foreign
    // writer holding our key: either way, no session.
    serde_json::from_slice(&plaintext).map_err(|_| OpenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> SessionData {
        SessionData {
            token: "gAAAAABtoken".into(),
            csrf: "csrf-secret".into(),
            expires_at: 1_900_000_000,
            user_id: "u1".into(),
        }
    }

    fn ring(n: usize) -> SessionKeys {
        let keys: Vec<String> = (0..n).map(|_| SessionKeys::generate().unwrap()).collect();
        SessionKeys::parse(&keys.join("\n")).unwrap()
    }

    #[test]
    fn round_trip_hides_the_token_and_differs_each_time() {
        let keys = ring(1);
        let a = seal(&keys, "sessionid", &data()).unwrap();
        let b = seal(&keys, "sessionid", &data()).unwrap();
        assert_ne!(a, b, "random nonce");
        assert!(!a.contains("token") && !a.contains("gAAAA"));
        assert_eq!(open(&keys, "sessionid", &a).unwrap(), data());
    }

    #[test]
    fn every_flipped_byte_is_forged_or_malformed() {
        let keys = ring(1);
        let v = seal(&keys, "sessionid", &data()).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&v).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            let r = open(&keys, "sessionid", &URL_SAFE_NO_PAD.encode(&t));
            assert!(r.is_err(), "byte {i} flipped still opens");
        }
        let truncated = &v[..v.len() - 4];
        assert!(open(&keys, "sessionid", truncated).is_err());
    }

    #[test]
    fn bound_to_cookie_name_and_key() {
        let keys = ring(1);
        let v = seal(&keys, "sessionid", &data()).unwrap();
        assert_eq!(open(&keys, "other", &v), Err(OpenError::Forged));
        assert_eq!(open(&ring(1), "sessionid", &v), Err(OpenError::UnknownKey));
    }

    #[test]
    fn rotation_keeps_old_sessions_until_the_key_is_dropped() {
        let old = SessionKeys::generate().unwrap();
        let new = SessionKeys::generate().unwrap();
        let before = SessionKeys::parse(&old).unwrap();
        let v = seal(&before, "sessionid", &data()).unwrap();
        let during = SessionKeys::parse(&format!("{new}\n{old}")).unwrap();
        assert_eq!(open(&during, "sessionid", &v).unwrap(), data());
        let fresh = seal(&during, "sessionid", &data()).unwrap();
        assert_eq!(
            open(&before, "sessionid", &fresh),
            Err(OpenError::UnknownKey)
        );
        let after = SessionKeys::parse(&new).unwrap();
        assert_eq!(open(&after, "sessionid", &v), Err(OpenError::UnknownKey));
    }
}
