//! Fernet decryption exactly as Keystone (via pyca `cryptography`) performs
//! it: base64url (padding optional), version byte `0x80`, HMAC-SHA256 over
//! everything before the MAC (constant-time), AES-128-CBC, PKCS7. No TTL check
//! (Keystone makes none); the timestamp is returned as the token's issued_at.
//! Never panics, whatever the input.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::keys::KeySet;

/// Strict base64url with optional `=` padding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Smallest decoded Fernet token: version, timestamp, IV, one block, MAC.
pub const MIN_LEN: usize = 1 + 8 + 16 + 16 + 32;

/// Why a token could not be decrypted. Every variant means "invalid token".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FernetError {
    /// Longer than the configured maximum (checked before decoding).
    #[error("token too long")]
    TooLong,
    /// Not base64url.
    #[error("not base64url")]
    Encoding,
    /// Wrong length or version byte.
    #[error("not a Fernet token")]
    Format,
    /// No key's HMAC matches (forged, corrupted, or its key was rotated out).
    #[error("no key opens the token")]
    Signature,
    /// The MAC matched but the ciphertext does not decrypt (cannot happen for
    /// a token made by a key holder unless it is malformed).
    #[error("undecryptable ciphertext")]
    Cipher,
}

/// A decrypted token.
#[derive(Debug)]
pub struct Decrypted {
    /// The payload bytes (msgpack).
    pub plaintext: Vec<u8>,
    /// The Fernet timestamp: the token's issued_at, Unix seconds.
    pub timestamp: u64,
    /// File number of the key that opened it.
    pub key_id: u64,
}

/// Decrypts `token` with the first key of `keys` whose MAC matches.
pub fn decrypt(token: &str, keys: &KeySet, max_len: usize) -> Result<Decrypted, FernetError> {
    if token.len() > max_len {
        return Err(FernetError::TooLong);
    }
    let data = B64
        .decode(token.trim())
        .map_err(|_| FernetError::Encoding)?;
    if data.len() < MIN_LEN || (data.len() - 57) % 16 != 0 || data[0] != 0x80 {
        return Err(FernetError::Format);
    }
    let (signed, mac) = data.split_at(data.len() - 32);
    let key = keys
        .keys()
        .iter()
        .find(|k| {
            <Hmac<Sha256> as Mac>::new_from_slice(&k.signing)
                .map(|mut h| {
                    h.update(signed);
                    h.verify_slice(mac).is_ok()
                })
                .unwrap_or(false)
        })
        .ok_or(FernetError::Signature)?;
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&signed[1..9]);
    let iv = &signed[9..25];
    let ciphertext = &signed[25..];
    let plaintext = cbc::Decryptor::<aes::Aes128>::new_from_slices(&key.encryption, iv)
        .map_err(|_| FernetError::Cipher)?
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| FernetError::Cipher)?;
    Ok(Decrypted {
        plaintext,
        timestamp: u64::from_be_bytes(ts),
        key_id: key.id,
    })
}

/// Test-only Fernet encryption (to build vectors a real Keystone cannot make).
#[cfg(test)]
pub(crate) fn encrypt(
    key: &super::keys::Key,
    timestamp: u64,
    iv: [u8; 16],
    plaintext: &[u8],
) -> String {
    use aes::cipher::BlockEncryptMut;
    let mut out = vec![0x80];
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&iv);
    let ct = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key.encryption, &iv)
        .unwrap_or_else(|_| unreachable!())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    out.extend_from_slice(&ct);
    let mut h =
        <Hmac<Sha256> as Mac>::new_from_slice(&key.signing).unwrap_or_else(|_| unreachable!());
    h.update(&out);
    out.extend_from_slice(&h.finalize().into_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::keys::Key;

    /// Spec §9: key file `1` = bytes 0..31.
    pub(crate) fn spec_keys() -> KeySet {
        KeySet::from_keys(vec![Key::parse(
            1,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .unwrap()])
        .unwrap()
    }

    pub(crate) const PROJECT: &str = "gAAAAABpVarwAAECAwQFBgcICQoLDA0OD1NPl6i7w4v67dC2qdMLP8tUIhIwZYSJW3B1_x1ToyTj3-UMyw_PbZRD19hoIwdxQtRulMDGWoqDNCa3b8kAhq9cYI7cAEcfizicEX3-jHua4tQ4Jy-pgxswWmflhose9esmaun0U4eP56eHk7Ux3Pw";

    #[test]
    fn spec_vector_decrypts_with_its_timestamp() {
        let d = decrypt(PROJECT, &spec_keys(), 8192).unwrap();
        assert_eq!(d.timestamp, 1767222000);
        assert_eq!(d.key_id, 1);
        assert_eq!(d.plaintext[0], 0x96); // array(6)
        assert_eq!(d.plaintext[1], 0x02); // version 2
    }

    #[test]
    fn padding_is_optional_but_the_alphabet_is_strict() {
        let padded = format!("{PROJECT}{}", "=".repeat((4 - PROJECT.len() % 4) % 4));
        assert!(decrypt(&padded, &spec_keys(), 8192).is_ok());
        let std_alphabet = PROJECT.replace('-', "+").replace('_', "/");
        assert_eq!(
            decrypt(&std_alphabet, &spec_keys(), 8192).unwrap_err(),
            FernetError::Encoding
        );
        // 181 characters: len % 4 == 1 is never base64; 180 decodes to a bad length.
        assert_eq!(
            decrypt(&PROJECT[..PROJECT.len() - 2], &spec_keys(), 8192).unwrap_err(),
            FernetError::Encoding
        );
        assert_eq!(
            decrypt(&PROJECT[..PROJECT.len() - 3], &spec_keys(), 8192).unwrap_err(),
            FernetError::Format
        );
        assert_eq!(
            decrypt(PROJECT, &spec_keys(), 100).unwrap_err(),
            FernetError::TooLong
        );
        assert!(decrypt("", &spec_keys(), 8192).is_err());
        assert!(decrypt("eyJhbGciOiJFUzI1NiJ9", &spec_keys(), 8192).is_err());
    }

    #[test]
    fn every_bit_flip_and_truncation_is_rejected_without_panic() {
        let raw = B64.decode(PROJECT).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut t = raw.clone();
                t[i] ^= 1 << bit;
                let tok = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&t);
                assert!(
                    decrypt(&tok, &spec_keys(), 8192).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
        for len in 0..raw.len() {
            let tok = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw[..len]);
            assert!(decrypt(&tok, &spec_keys(), 8192).is_err(), "len {len}");
        }
    }

    #[test]
    fn wrong_key_is_a_signature_error() {
        let other = KeySet::from_keys(vec![Key::parse(
            5,
            &base64::engine::general_purpose::URL_SAFE.encode([9u8; 32]),
        )
        .unwrap()])
        .unwrap();
        assert_eq!(
            decrypt(PROJECT, &other, 8192).unwrap_err(),
            FernetError::Signature
        );
    }

    #[test]
    fn encrypt_round_trips() {
        let keys = spec_keys();
        let tok = encrypt(&keys.keys()[0], 42, [7; 16], b"hello");
        let d = decrypt(&tok, &keys, 8192).unwrap();
        assert_eq!((d.plaintext.as_slice(), d.timestamp), (&b"hello"[..], 42));
    }
}
