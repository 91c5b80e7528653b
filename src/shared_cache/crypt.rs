//! keystonemiddleware's `memcache_security_strategy`, byte for byte
//! (`keystonemiddleware/auth_token/_memcache_crypt.py` and the key format of
//! `_cache.py`'s `SecureTokenCache`), so stonegate and Python services can
//! share one cache.
//!
//! HMAC-SHA384(secret, token ‖ strategy) gives 48 bytes: the first 16 name
//! the entry, the next 16 key its MAC, the last 16 its AES-128-CBC
//! encryption (`ENCRYPT` only). A stored value is
//! `base64(HMAC-SHA384(mac_key, b64data)) ‖ b64data`, where `b64data` is
//! `base64(data)` (`MAC`) or `base64(iv ‖ AES-128-CBC(data, PKCS7))`
//! (`ENCRYPT`). Without the secret nobody can find a token's entry, forge
//! one, or (`ENCRYPT`) read one.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use hmac::{Hmac, Mac};
use sha2::Sha384;
use zeroize::Zeroize;

type HmacSha384 = Hmac<Sha384>;
type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// Length of the base64 MAC that starts every value (48 bytes → 64 chars).
const MAC_B64_LEN: usize = 64;
/// AES block size, also the IV length.
const IV_LEN: usize = 16;

/// How entries are protected (`memcache_security_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Authenticated, readable by whoever can read the cache.
    Mac,
    /// Authenticated and encrypted.
    Encrypt,
}

impl Strategy {
    /// The name keystonemiddleware derives keys from (upper case, as written
    /// in its configuration).
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Mac => "MAC",
            Strategy::Encrypt => "ENCRYPT",
        }
    }
}

/// Why a stored value was not accepted. Either way it is a cache miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    /// The MAC does not match: written with another secret, or tampered with.
    #[error("invalid MAC; the entry was not written with this secret or was altered")]
    Mac,
    /// The MAC matched but the content does not decode or decrypt.
    #[error("entry cannot be decoded or decrypted")]
    Decode,
}

/// The keys of one token's entry, derived from the shared secret.
pub struct Keys {
    cache_key: [u8; 16],
    mac: [u8; 16],
    encryption: [u8; 16],
    strategy: Strategy,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.cache_key.zeroize();
        self.mac.zeroize();
        self.encryption.zeroize();
    }
}

impl Keys {
    /// keystonemiddleware's `derive_keys(token, secret, strategy)`.
    pub fn derive(secret: &[u8], token: &[u8], strategy: Strategy) -> Self {
        let mut mac = hmac_sha384(secret);
        mac.update(token);
        mac.update(strategy.as_str().as_bytes());
        let mut digest: [u8; 48] = mac.finalize().into_bytes().into();
        let mut keys = Keys {
            cache_key: [0; 16],
            mac: [0; 16],
            encryption: [0; 16],
            strategy,
        };
        keys.cache_key.copy_from_slice(&digest[..16]);
        keys.mac.copy_from_slice(&digest[16..32]);
        keys.encryption.copy_from_slice(&digest[32..]);
        digest.zeroize();
        keys
    }

    /// The entry's name, exactly as keystonemiddleware spells it on
    /// Python 3: `'tokens/%s' % base64(...)` formats the *bytes* object, so
    /// the key is `tokens/b'<base64>'`.
    pub fn cache_key(&self) -> String {
        format!("tokens/b'{}'", B64.encode(self.cache_key))
    }

    /// keystonemiddleware's `protect_data`, with `iv` as the ENCRYPT IV
    /// (random per value: see [`Keys::protect`]).
    pub fn protect_with_iv(&self, data: &[u8], iv: [u8; IV_LEN]) -> Vec<u8> {
        let encoded = match self.strategy {
            Strategy::Mac => B64.encode(data),
            Strategy::Encrypt => {
                let mut sealed = Vec::with_capacity(IV_LEN + data.len() + IV_LEN);
                sealed.extend_from_slice(&iv);
                sealed.extend_from_slice(
                    &Encryptor::new(&self.encryption.into(), &iv.into())
                        .encrypt_padded_vec_mut::<Pkcs7>(data),
                );
                B64.encode(sealed)
            }
        };
        let mut out = Vec::with_capacity(MAC_B64_LEN + encoded.len());
        out.extend_from_slice(self.sign(encoded.as_bytes()).as_bytes());
        out.extend_from_slice(encoded.as_bytes());
        out
    }

    /// keystonemiddleware's `protect_data` with a random IV from the OS.
    pub fn protect(&self, data: &[u8]) -> Result<Vec<u8>, getrandom::Error> {
        let mut iv = [0u8; IV_LEN];
        if self.strategy == Strategy::Encrypt {
            getrandom::getrandom(&mut iv)?;
        }
        Ok(self.protect_with_iv(data, iv))
    }

    /// keystonemiddleware's `unprotect_data`: checks the MAC (in constant
    /// time) before anything else, then decodes and, for ENCRYPT, decrypts.
    pub fn unprotect(&self, value: &[u8]) -> Result<Vec<u8>, CryptError> {
        if value.len() < MAC_B64_LEN {
            return Err(CryptError::Mac);
        }
        let (provided, encoded) = value.split_at(MAC_B64_LEN);
        let expected = self.sign(encoded);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(provided, expected.as_bytes())) {
            return Err(CryptError::Mac);
        }
        let data = B64.decode(encoded).map_err(|_| CryptError::Decode)?;
        match self.strategy {
            Strategy::Mac => Ok(data),
            Strategy::Encrypt => {
                if data.len() < 2 * IV_LEN {
                    return Err(CryptError::Decode);
                }
                let (iv, sealed) = data.split_at(IV_LEN);
                let mut iv_arr = [0u8; IV_LEN];
                iv_arr.copy_from_slice(iv);
                Decryptor::new(&self.encryption.into(), &iv_arr.into())
                    .decrypt_padded_vec_mut::<Pkcs7>(sealed)
                    .map_err(|_| CryptError::Decode)
            }
        }
    }

    /// keystonemiddleware's `sign_data`: base64 of HMAC-SHA384.
    fn sign(&self, data: &[u8]) -> String {
        let mut mac = hmac_sha384(&self.mac);
        mac.update(data);
        B64.encode(mac.finalize().into_bytes())
    }
}

fn hmac_sha384(key: &[u8]) -> HmacSha384 {
    match HmacSha384::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from keystonemiddleware 13.0.1 (`_memcache_crypt` and
    // `SecureTokenCache._get_cache_key`), with `os.urandom(16)` patched to
    // return bytes 0..16 for the ENCRYPT IV.
    const TOKEN: &[u8] = b"gAAAAABtoken";
    const SECRET: &[u8] = b"s3cret";
    const DATA: &[u8] = br#"{"token": {"user": {"id": "u1"}}}"#;
    const MAC_KEY: &str = "tokens/b'bv5yumXsEBh3koGfIAvx2A=='";
    const MAC_VALUE: &str = "EbzwssE7PTswcJYPE1ci3JR+3tQmicS7xzc6bqGarodJyRH5Fi3zAcUNEnN7d9INeyJ0b2tlbiI6IHsidXNlciI6IHsiaWQiOiAidTEifX19";
    const ENC_KEY: &str = "tokens/b'GjbMg9ocxe9YWxpI2PHMCQ=='";
    const ENC_VALUE: &str = "rN2FJSiYuXMK7sXzDmOJIWKMR3V+VnwqgRwEvkCOeenqY8CvUD718tkRSFAPQbTuAAECAwQFBgcICQoLDA0OD+8rdLcSTIFGcZzVdMK/FLZVSC3g6oxE/7WN8HYOWZWui7tMYwXnBbGCA9n/H0LLgA==";

    fn iv() -> [u8; 16] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn mac_matches_keystonemiddleware() {
        let k = Keys::derive(SECRET, TOKEN, Strategy::Mac);
        assert_eq!(k.cache_key(), MAC_KEY);
        assert_eq!(k.protect_with_iv(DATA, iv()), MAC_VALUE.as_bytes());
        assert_eq!(k.unprotect(MAC_VALUE.as_bytes()).unwrap(), DATA);
    }

    #[test]
    fn encrypt_matches_keystonemiddleware() {
        let k = Keys::derive(SECRET, TOKEN, Strategy::Encrypt);
        assert_eq!(k.cache_key(), ENC_KEY);
        assert_eq!(k.protect_with_iv(DATA, iv()), ENC_VALUE.as_bytes());
        assert_eq!(k.unprotect(ENC_VALUE.as_bytes()).unwrap(), DATA);
        // A random IV: different bytes, same plaintext.
        let a = k.protect(DATA).unwrap();
        assert_ne!(a, k.protect(DATA).unwrap());
        assert_eq!(k.unprotect(&a).unwrap(), DATA);
        // The stored bytes (MAC, then base64 of IV and ciphertext) hold no
        // trace of the plaintext: neither its text nor, decoded, its bytes.
        // (Random base64 contains a short string such as "u1" now and then,
        // so the check is on a long one.)
        let text = String::from_utf8_lossy(&a);
        assert!(!text.contains(r#""id": "u1""#));
        let stored = B64.decode(&a[MAC_B64_LEN..]).unwrap();
        assert!(!stored.windows(10).any(|w| w == br#""id": "u1""#));
    }

    #[test]
    fn tampering_wrong_secret_and_strategy_are_rejected() {
        let k = Keys::derive(SECRET, TOKEN, Strategy::Mac);
        let mut v = MAC_VALUE.as_bytes().to_vec();
        let last = v.len() - 3;
        v[last] ^= 1;
        assert_eq!(k.unprotect(&v), Err(CryptError::Mac));
        let mut v = MAC_VALUE.as_bytes().to_vec();
        v[0] = if v[0] == b'A' { b'B' } else { b'A' };
        assert_eq!(k.unprotect(&v), Err(CryptError::Mac));
        assert_eq!(k.unprotect(b"short"), Err(CryptError::Mac));
        assert_eq!(k.unprotect(b""), Err(CryptError::Mac));
        let other = Keys::derive(b"other", TOKEN, Strategy::Mac);
        assert_eq!(other.unprotect(MAC_VALUE.as_bytes()), Err(CryptError::Mac));
        let enc = Keys::derive(SECRET, TOKEN, Strategy::Encrypt);
        assert_eq!(enc.unprotect(MAC_VALUE.as_bytes()), Err(CryptError::Mac));
        // Another token's entry does not open with this token's keys.
        let t2 = Keys::derive(SECRET, b"another", Strategy::Mac);
        assert_ne!(t2.cache_key(), k.cache_key());
        assert_eq!(t2.unprotect(MAC_VALUE.as_bytes()), Err(CryptError::Mac));
    }

    #[test]
    fn authentic_but_undecryptable_is_a_decode_error() {
        let k = Keys::derive(SECRET, TOKEN, Strategy::Encrypt);
        // A validly MACed value whose ciphertext is not block-aligned.
        let body = B64.encode([7u8; 37]);
        let mut v = k.sign(body.as_bytes()).into_bytes();
        v.extend_from_slice(body.as_bytes());
        assert_eq!(k.unprotect(&v), Err(CryptError::Decode));
    }
}
