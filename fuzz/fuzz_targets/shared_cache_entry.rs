//! Shared-cache entry decoding (`shared_cache::crypt::Keys::unprotect`, then
//! the token document), against golden entries that keystonemiddleware's own
//! `SecureTokenCache` wrote (`fuzz/golden/shared_cache_entries.json`, made
//! by `fuzz/golden/kmw_cache_entries.py` from real Keystone validations).
//!
//! Input: a selector byte (entry = byte / 4, mode = byte % 4), then bytes.
//! Invariants:
//! - golden (every run): each entry's key is keystonemiddleware's, it opens
//!   to exactly the bytes keystonemiddleware protected, and that document is
//!   the token of the entry's user;
//! - mode 0, a stored value: it opens only if it is the golden value itself
//!   (nobody without the secret makes an entry that opens), never under the
//!   other strategy or another token's keys, and never panics;
//! - mode 1, data to store (an IV, then the document): what stonegate
//!   protects opens to the same data, and a MAC entry is keystonemiddleware's
//!   layout (the base64 of the data after its 64-byte MAC);
//! - mode 2, a golden value with one byte changed (position, XOR mask):
//!   never opens;
//! - mode 3, a golden value cut short: never opens.
#![no_main]

use base64::{engine::general_purpose::STANDARD, Engine as _};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stonegate::keystone::model::parse_token;
use stonegate::shared_cache::crypt::{Keys, Strategy};

struct Golden {
    keys: Keys,
    other_strategy: Keys,
    value: Vec<u8>,
    data: Vec<u8>,
    strategy: Strategy,
}

fn golden() -> &'static [Golden] {
    static G: std::sync::OnceLock<Vec<Golden>> = std::sync::OnceLock::new();
    G.get_or_init(|| {
        let doc: Value = serde_json::from_str(include_str!("../golden/shared_cache_entries.json")).unwrap();
        let mut out = Vec::new();
        for e in doc.as_array().unwrap() {
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            let (strategy, other) = match s("strategy").as_str() {
                "MAC" => (Strategy::Mac, Strategy::Encrypt),
                _ => (Strategy::Encrypt, Strategy::Mac),
            };
            let (secret, token) = (s("secret"), s("token"));
            let keys = Keys::derive(secret.as_bytes(), token.as_bytes(), strategy);
            assert_eq!(keys.cache_key(), s("key"), "{}: not keystonemiddleware's key", s("name"));
            let (value, data) = (s("value").into_bytes(), s("data").into_bytes());
            let opened = keys.unprotect(&value).expect("a golden entry opens");
            assert_eq!(opened, data, "{}: opened to other bytes", s("name"));
            let identity = parse_token(&opened).expect("a golden entry is a token document");
            assert_eq!(identity.user.id.as_deref(), Some(s("user_id").as_str()));
            let other_strategy = Keys::derive(secret.as_bytes(), token.as_bytes(), other);
            out.push(Golden { keys, other_strategy, value, data, strategy });
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let all = golden();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let g = &all[(selector as usize / 4) % all.len()];
    let neighbour = &all[(selector as usize / 4 + 1) % all.len()];
    match selector % 4 {
        0 => {
            match g.keys.unprotect(rest) {
                Ok(opened) => {
                    assert_eq!(rest, g.value.as_slice(), "a value that is not the entry opened");
                    assert_eq!(opened, g.data);
                }
                Err(_) => assert_ne!(rest, g.value.as_slice(), "the golden entry did not open"),
            }
            assert!(g.other_strategy.unprotect(rest).is_err(), "opened under the other strategy");
            if neighbour.value != rest {
                assert!(neighbour.keys.unprotect(rest).is_err(), "opened under another token's keys");
            }
            if let Ok(opened) = g.keys.unprotect(rest) {
                let _ = parse_token(&opened);
            }
        }
        1 => {
            let Some((iv, doc)) = rest.split_first_chunk::<16>() else {
                return;
            };
            let stored = g.keys.protect_with_iv(doc, *iv);
            assert_eq!(g.keys.unprotect(&stored).unwrap(), doc, "round trip");
            assert!(neighbour.keys.unprotect(&stored).is_err() || neighbour.keys.cache_key() == g.keys.cache_key());
            if g.strategy == Strategy::Mac {
                assert_eq!(&stored[64..], STANDARD.encode(doc).as_bytes(), "not keystonemiddleware's layout");
            } else {
                // IV, then at least one AES block.
                let raw = STANDARD.decode(&stored[64..]).unwrap();
                assert_eq!(&raw[..16], iv);
                assert!(raw.len() >= 32 && raw.len() % 16 == 0);
            }
        }
        2 => {
            let (Some(&pos), Some(&mask)) = (rest.first(), rest.get(1)) else {
                return;
            };
            if mask == 0 {
                return;
            }
            let mut v = g.value.clone();
            let at = (usize::from(pos) * 131 + rest.len()) % v.len();
            v[at] ^= mask;
            assert!(g.keys.unprotect(&v).is_err(), "a tampered entry opened (byte {at})");
        }
        _ => {
            let cut = rest.iter().fold(0usize, |a, &b| a.wrapping_mul(31).wrapping_add(b.into())) % g.value.len();
            assert!(g.keys.unprotect(&g.value[..cut]).is_err(), "a truncated entry opened");
        }
    }
});
