//! Any input, three ways, against a fixed key (the spec's test key, bytes
//! 0..31): as a token string for `fernet::decrypt`; as raw bytes for
//! `payload::decode`; and as a plaintext sealed into a well-formed Fernet
//! token with that key, so the decrypt → decode path behind a valid MAC
//! sees attacker-chosen payloads too. Decoding must return an error or a
//! payload, never panic; a sealed plaintext must decrypt to itself.
#![no_main]

use std::sync::OnceLock;

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use stonegate::token::{
    fernet,
    keys::{Key, KeySet},
    payload::{self, Methods},
    MAX_TOKEN_LEN,
};

const KEY: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let text = base64::engine::general_purpose::URL_SAFE.encode(KEY);
        KeySet::from_keys(vec![Key::parse(1, &text).expect("a valid key")]).expect("one key")
    })
}

/// A Fernet token of `plaintext` as Keystone makes it (no `=` padding).
fn seal(timestamp: u64, iv: [u8; 16], plaintext: &[u8]) -> String {
    let mut out = vec![0x80];
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&iv);
    let ct = cbc::Encryptor::<aes::Aes128>::new_from_slices(&KEY[16..], &iv)
        .expect("key and iv lengths")
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    out.extend_from_slice(&ct);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&KEY[..16]).expect("any key length");
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
}

fuzz_target!(|data: &[u8]| {
    let methods = Methods::default();
    // 1. The input as a token.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(d) = fernet::decrypt(text, keys(), MAX_TOKEN_LEN) {
            let _ = payload::decode(&d.plaintext, &methods);
        }
    }
    // 2. The input as a decrypted payload.
    let _ = payload::decode(data, &methods);
    // 3. The input sealed behind a valid MAC.
    let mut iv = [0u8; 16];
    for (i, b) in data.iter().take(16).enumerate() {
        iv[i] = *b;
    }
    let token = seal(1_767_222_000, iv, data);
    if token.len() <= MAX_TOKEN_LEN {
        let d = fernet::decrypt(&token, keys(), MAX_TOKEN_LEN).expect("a sealed token decrypts");
        assert_eq!(d.plaintext, data, "round trip");
        assert_eq!(d.timestamp, 1_767_222_000);
        if let Ok(p) = payload::decode(&d.plaintext, &methods) {
            // Whatever decodes is a version Keystone issues.
            assert!(p.version <= 10, "version {}", p.version);
        }
    }
});
