//! Keystone's JWS public key repository (`[jwt_tokens]
//! jws_public_key_repository`): every file of the directory is a P-256
//! public key in SubjectPublicKeyInfo PEM (what `keystone-manage
//! create_jws_keypair` writes as `public.pem`), tried in turn as Keystone
//! tries them. Files whose names start with `.` (editor and rotation
//! temporaries) and empty files are skipped; anything else that is not such a
//! key is an error naming the file. Public keys are not secret.

use std::{path::Path, sync::Arc};

use p256::{ecdsa::VerifyingKey, pkcs8::DecodePublicKey as _};

/// Largest key file read (a P-256 PEM public key is 178 bytes).
const MAX_FILE_LEN: u64 = 16 * 1024;

/// Why a public key repository could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PublicKeyError {
    /// The directory or a file could not be read.
    #[error("public key repository {path}: {source}")]
    Io {
        /// The directory or file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not a P-256 public key in PEM.
    #[error("public key file {path}: not an ES256 (P-256) public key in PEM (SubjectPublicKeyInfo), as `keystone-manage create_jws_keypair` writes")]
    Malformed {
        /// The file.
        path: String,
    },
    /// No key.
    #[error("public key repository {path} holds no public key (copy Keystone's jws_public_key_repository here)")]
    Empty {
        /// The directory.
        path: String,
    },
}

/// One public key and the file it came from.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The file name.
    pub name: Arc<str>,
    /// The key's point, uncompressed SEC1 (`04 || x || y`), validated on the
    /// curve when it was parsed: what ring's verifier takes.
    pub(crate) point: [u8; 65],
}

impl PublicKey {
    /// A key under a name (tests, fuzzing).
    pub fn new(name: &str, verifying: VerifyingKey) -> Self {
        let mut point = [0; 65];
        point.copy_from_slice(verifying.to_encoded_point(false).as_bytes());
        Self {
            name: name.into(),
            point,
        }
    }

    /// Parses a PEM SubjectPublicKeyInfo P-256 key.
    pub fn parse(name: &str, pem: &str) -> Option<Self> {
        let verifying = VerifyingKey::from_public_key_pem(pem.trim()).ok()?;
        Some(Self::new(name, verifying))
    }
}

/// An immutable set of public keys, in file-name order.
#[derive(Debug, Clone)]
pub struct PublicKeys {
    keys: Vec<PublicKey>,
}

impl PublicKeys {
    /// Keys from explicit values.
    pub fn from_keys(mut keys: Vec<PublicKey>) -> Result<Self, PublicKeyError> {
        if keys.is_empty() {
            return Err(PublicKeyError::Empty {
                path: "<memory>".into(),
            });
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self { keys })
    }

    /// Loads a public key repository (see module docs).
    pub fn load(dir: &Path) -> Result<Self, PublicKeyError> {
        let io = |source| PublicKeyError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_key_file(&name) {
                continue;
            }
            let path = entry.path();
            let file_io = |source| PublicKeyError::Io {
                path: path.display().to_string(),
                source,
            };
            // Follows symlinks (a Kubernetes Secret volume links every file).
            let meta = std::fs::metadata(&path).map_err(file_io)?;
            if !meta.is_file() {
                continue;
            }
            let malformed = || PublicKeyError::Malformed {
                path: path.display().to_string(),
            };
            if meta.len() > MAX_FILE_LEN {
                return Err(malformed());
            }
            let text = std::fs::read_to_string(&path).map_err(file_io)?;
            if text.trim().is_empty() {
                continue;
            }
            keys.push(PublicKey::parse(&name, &text).ok_or_else(malformed)?);
        }
        if keys.is_empty() {
            return Err(PublicKeyError::Empty {
                path: dir.display().to_string(),
            });
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self { keys })
    }

    /// The keys, in trial order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The file names, in trial order.
    pub fn names(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.name.to_string()).collect()
    }
}

/// Whether a file of the repository is read as a key (dot-files are not).
pub fn is_key_file(name: &str) -> bool {
    !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::{ecdsa::SigningKey, pkcs8::EncodePublicKey as _};

    fn pem(b: u8) -> String {
        let k = SigningKey::from_bytes(&[b; 32].into()).unwrap();
        k.verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn repository_is_every_file_but_dot_files_and_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("public.pem"), pem(1)).unwrap();
        std::fs::write(dir.path().join("next.pem"), pem(2)).unwrap();
        std::fs::write(dir.path().join(".public.pem.swp"), "garbage").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let set = PublicKeys::load(dir.path()).unwrap();
        assert_eq!(set.names(), vec!["next.pem", "public.pem"]);

        std::fs::write(dir.path().join("README"), "not a key").unwrap();
        let err = PublicKeys::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("/README"), "{err}");
        std::fs::remove_file(dir.path().join("README")).unwrap();

        // A private key or another curve is not a public key of ours.
        std::fs::write(
            dir.path().join("private.pem"),
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(matches!(
            PublicKeys::load(dir.path()),
            Err(PublicKeyError::Malformed { .. })
        ));
    }

    #[test]
    fn missing_or_empty_repository_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            PublicKeys::load(dir.path()),
            Err(PublicKeyError::Empty { .. })
        ));
        assert!(matches!(
            PublicKeys::load(&dir.path().join("nope")),
            Err(PublicKeyError::Io { .. })
        ));
    }
}
