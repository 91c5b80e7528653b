//! The session key ring: 32-byte XChaCha20-Poly1305 keys, the first one
//! sealing new cookies, every one opening them. Rotation is "prepend a new
//! key, reload every replica, drop the old key once the longest token it
//! sealed has expired".
//!
//! Text form (a file, or `STONEGATE_SESSION_KEYS`): one key per line (or
//! separated by commas or spaces), base64 (standard or URL-safe, padding
//! optional) of exactly 32 random bytes; blank lines and `#` comments ignored.
//! `stonegate session-key` prints a fresh one.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Bytes of one key.
pub const KEY_LEN: usize = 32;

/// Why a key ring could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// No key at all.
    #[error("holds no key (want one base64-encoded 32-byte key per line; `stonegate session-key` makes one)")]
    Empty,
    /// An entry that is not base64 of 32 bytes (the entry itself is never echoed).
    #[error("key #{0} is not base64 of exactly 32 bytes")]
    Malformed(usize),
    /// The same key twice.
    #[error("key #{0} repeats an earlier key")]
    Duplicate(usize),
}

/// One key and its public id (a hash prefix, carried in the cookie so the
/// right key is picked without trial decryption).
pub(crate) struct Key {
    pub(crate) id: [u8; 4],
    pub(crate) bytes: Zeroizing<[u8; KEY_LEN]>,
}

/// An ordered set of session keys; the first seals.
pub struct SessionKeys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| hex::encode(k.id)).collect();
        f.debug_struct("SessionKeys").field("ids", &ids).finish()
    }
}

impl Clone for SessionKeys {
    fn clone(&self) -> Self {
        Self {
            keys: self
                .keys
                .iter()
                .map(|k| Key {
                    id: k.id,
                    bytes: k.bytes.clone(),
                })
                .collect(),
        }
    }
}

impl SessionKeys {
    /// Parses the text form (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys: Vec<Key> = Vec::new();
        let entries = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.split([',', ' ', '\t']))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        for (i, entry) in entries.enumerate() {
            let n = i + 1;
            let raw = Zeroizing::new(decode(entry).ok_or(KeyError::Malformed(n))?);
            let bytes: [u8; KEY_LEN] = raw
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::Malformed(n))?;
            let key = Key::new(bytes);
            if keys
                .iter()
                .any(|k| k.id == key.id && *k.bytes == *key.bytes)
            {
                return Err(KeyError::Duplicate(n));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys })
    }

    /// A fresh random key in the text form.
    pub fn generate() -> Result<String, super::SessionError> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        super::random(k.as_mut_slice())?;
        Ok(base64::engine::general_purpose::STANDARD.encode(k.as_slice()))
    }

    /// The key that seals new cookies.
    pub(crate) fn current(&self) -> &Key {
        &self.keys[0]
    }

    /// The key with `id`, if it is still in the ring.
    pub(crate) fn find(&self, id: &[u8]) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Hex ids of the keys, sealing key first (for logs; ids reveal nothing).
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex::encode(k.id)).collect()
    }
}

impl Key {
    fn new(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"stonegate session key id\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; 4];
        id.copy_from_slice(&digest[..4]);
        Self {
            id,
            bytes: Zeroizing::new(bytes),
        }
    }
}

fn decode(entry: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(entry).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_files_with_comments_and_both_alphabets() {
        let a = SessionKeys::generate().unwrap();
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb_u8; 32]);
        let ring = SessionKeys::parse(&format!("# current\n{a}\n\n{b}  # previous\n")).unwrap();
        assert_eq!(ring.ids().len(), 2);
        assert_ne!(ring.ids()[0], ring.ids()[1]);
        let env_form = SessionKeys::parse(&format!("{a},{b}")).unwrap();
        assert_eq!(env_form.ids(), ring.ids());
    }

    #[test]
    fn rejects_short_garbage_empty_and_repeated_keys() {
        assert_eq!(
            SessionKeys::parse("# nothing\n").unwrap_err(),
            KeyError::Empty
        );
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert_eq!(
            SessionKeys::parse(&short).unwrap_err(),
            KeyError::Malformed(1)
        );
        let a = SessionKeys::generate().unwrap();
        assert_eq!(
            SessionKeys::parse(&format!("{a}\nnot-base64!")).unwrap_err(),
            KeyError::Malformed(2)
        );
        assert_eq!(
            SessionKeys::parse(&format!("{a}\n{a}")).unwrap_err(),
            KeyError::Duplicate(2)
        );
        // The error text never contains the key.
        assert!(!KeyError::Malformed(1).to_string().contains(&short));
    }
}
