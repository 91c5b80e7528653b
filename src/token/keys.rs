//! Keystone's Fernet key repository: integer-named files, `0` the staged key,
//! the highest number the primary. Keys are tried primary first, `0` last, as
//! Keystone's `load_keys` orders them. Key bytes are zeroized on drop and never
//! printed.

use std::{fmt, path::Path};

use base64::Engine as _;
use zeroize::Zeroize;

/// Why a key repository could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The directory could not be read.
    #[error("key repository {path}: {source}")]
    Io {
        /// The directory or file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file does not hold a base64url-encoded 32-byte key.
    #[error("key file {path}: not a Fernet key (want base64url of 32 bytes)")]
    Malformed {
        /// The file.
        path: String,
    },
    /// No usable key.
    #[error("key repository {path} holds no key")]
    Empty {
        /// The directory.
        path: String,
    },
}

/// One Fernet key: 16 bytes HMAC-SHA256 signing key, 16 bytes AES-128 key.
pub struct Key {
    /// The file number (`0` = staged).
    pub id: u64,
    pub(crate) signing: [u8; 16],
    pub(crate) encryption: [u8; 16],
}

impl Drop for Key {
    fn drop(&mut self) {
        self.signing.zeroize();
        self.encryption.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}, [redacted])", self.id)
    }
}

impl Key {
    /// Parses a key file's text (base64url of 32 bytes, surrounding whitespace ignored).
    pub fn parse(id: u64, text: &str) -> Option<Self> {
        let mut raw = base64::engine::general_purpose::URL_SAFE
            .decode(text.trim())
            .ok()?;
        if raw.len() != 32 {
            raw.zeroize();
            return None;
        }
        let mut key = Key {
            id,
            signing: [0; 16],
            encryption: [0; 16],
        };
        key.signing.copy_from_slice(&raw[..16]);
        key.encryption.copy_from_slice(&raw[16..]);
        raw.zeroize();
        Some(key)
    }
}

/// An immutable set of keys in the order they are tried.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Keys from explicit values (ordered as Keystone orders files).
    pub fn from_keys(mut keys: Vec<Key>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty {
                path: "<memory>".into(),
            });
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.id));
        Ok(Self { keys })
    }

    /// Loads a Keystone key repository. Files whose names are not integers
    /// (e.g. `0.tmp` during rotation), empty files and non-files are skipped;
    /// a malformed key is an error naming the file.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            let path = entry.path();
            // Follows symlinks, as Keystone's os.path.isfile does.
            if !path.is_file() {
                continue;
            }
            let mut text = std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
                path: path.display().to_string(),
                source,
            })?;
            if text.trim().is_empty() {
                continue;
            }
            let key = Key::parse(id, &text);
            text.zeroize();
            keys.push(key.ok_or_else(|| KeyError::Malformed {
                path: path.display().to_string(),
            })?);
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                path: dir.display().to_string(),
            });
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.id));
        Ok(Self { keys })
    }

    /// The keys, primary first, staged (`0`) last.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The file numbers, in trial order.
    pub fn ids(&self) -> Vec<u64> {
        self.keys.iter().map(|k| k.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_is_loaded_like_keystone() {
        let dir = tempfile::tempdir().unwrap();
        let k = |b: u8| base64::engine::general_purpose::URL_SAFE.encode([b; 32]);
        std::fs::write(dir.path().join("0"), k(0)).unwrap();
        std::fs::write(dir.path().join("1"), k(1) + "\n").unwrap();
        std::fs::write(dir.path().join("7"), k(7)).unwrap();
        std::fs::write(dir.path().join("0.tmp"), "garbage").unwrap();
        std::fs::write(dir.path().join("3"), "").unwrap();
        let set = KeySet::load(dir.path()).unwrap();
        assert_eq!(set.ids(), vec![7, 1, 0]);
        assert!(!format!("{set:?}").contains(&k(7)));

        std::fs::write(dir.path().join("9"), "not a key").unwrap();
        let err = KeySet::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("/9"), "{err}");
    }

    #[test]
    fn missing_or_empty_repository_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            KeySet::load(dir.path()),
            Err(KeyError::Empty { .. })
        ));
        assert!(matches!(
            KeySet::load(&dir.path().join("nope")),
            Err(KeyError::Io { .. })
        ));
    }
}
