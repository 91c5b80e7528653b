//! Any input, as a token string and as a decrypted payload: decoding must
//! return an error or a payload, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stonegate::token::{
    fernet,
    keys::{Key, KeySet},
    payload::{self, Methods},
};

fuzz_target!(|data: &[u8]| {
    let keys = match Key::parse(1, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") {
        Some(k) => KeySet::from_keys(vec![k]).ok(),
        None => None,
    };
    let Some(keys) = keys else { return };
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(d) = fernet::decrypt(text, &keys, 8192) {
            let _ = payload::decode(&d.plaintext, &Methods::default());
        }
    }
    // The msgpack decoder sees attacker bytes only after a valid MAC; fuzz it directly anyway.
    let _ = payload::decode(data, &Methods::default());
});
