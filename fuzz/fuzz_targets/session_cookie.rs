//! Session cookie opening (`stonegate::session::seal`), with real sealed
//! cookies as the starting point.
//!
//! The input is a session (token, CSRF secret, user id, expiry) and a
//! mutation (a byte position and an XOR mask, or a replacement value).
//! Invariants:
//! - round trip: what `seal` sealed, `open` opens to exactly the same data,
//!   under the same cookie name, with the sealing key in the ring;
//! - binding: the same value does not open under another cookie name, nor
//!   with a ring that lacks the sealing key;
//! - integrity: any change to the value (a flipped bit in its bytes, a cut,
//!   an arbitrary replacement) never opens to anything, and never panics.
#![no_main]

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use libfuzzer_sys::fuzz_target;
use stonegate::session::keys::SessionKeys;
use stonegate::session::seal::{open, seal, SessionData};

fn ring(lines: &[&str]) -> SessionKeys {
    SessionKeys::parse(&lines.join("\n")).expect("a valid ring")
}

/// Two keys, made once per process as `stonegate session-key` makes them:
/// (sealing ring, rotated ring = new key first + the sealing key, a ring
/// without the sealing key).
fn rings() -> &'static (SessionKeys, SessionKeys, SessionKeys) {
    static RINGS: std::sync::OnceLock<(SessionKeys, SessionKeys, SessionKeys)> =
        std::sync::OnceLock::new();
    RINGS.get_or_init(|| {
        let a = SessionKeys::generate().unwrap();
        let b = SessionKeys::generate().unwrap();
        (ring(&[&a]), ring(&[&b, &a]), ring(&[&b]))
    })
}

fuzz_target!(|data: &[u8]| {
    let (sealing, rotated, other) = rings();
    run(data, sealing, rotated, other);
});

fn run(data: &[u8], sealing: &SessionKeys, rotated: &SessionKeys, other: &SessionKeys) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(5, '\u{1}');
    let token = parts.next().unwrap_or("").to_owned();
    let csrf = parts.next().unwrap_or("").to_owned();
    let user_id = parts.next().unwrap_or("").to_owned();
    let mutation = parts.next().unwrap_or("");
    let replacement = parts.next();
    let expires_at = data.iter().fold(0i64, |a, &b| a.wrapping_mul(31).wrapping_add(b as i64));
    let session = SessionData { token, csrf, expires_at, user_id };
    let Ok(value) = seal(sealing, "sessionid", &session) else {
        return;
    };
    // Round trip, also after a rotation that keeps the old key.
    for keys in [sealing, rotated] {
        match open(keys, "sessionid", &value) {
            Ok(d) => assert!(d == session, "opened to other data"),
            Err(e) if value.len() > 4096 => assert_eq!(e.label(), "malformed"),
            Err(e) => panic!("a sealed cookie did not open: {e}"),
        }
    }
    // Bound to its name and to its key.
    assert!(open(sealing, "csrftoken", &value).is_err(), "opened under another name");
    assert!(open(other, "sessionid", &value).is_err(), "opened without its key");

    // Integrity: flip one bit of the sealed bytes.
    let mut raw = URL_SAFE_NO_PAD.decode(&value).unwrap();
    let m = mutation.as_bytes();
    if let (Some(&pos), Some(&mask)) = (m.first(), m.get(1)) {
        if mask != 0 && !raw.is_empty() {
            let i = (pos as usize * 7919) % raw.len();
            raw[i] ^= mask;
            let tampered = URL_SAFE_NO_PAD.encode(&raw);
            assert!(open(sealing, "sessionid", &tampered).is_err(), "a tampered cookie opened (byte {i})");
            // A cut value never opens either.
            let cut = &value[..(pos as usize) % value.len()];
            assert!(open(sealing, "sessionid", cut).is_err(), "a truncated cookie opened");
        }
    }
    // Anything else the client may send: no panic, and never this session.
    if let Some(r) = replacement {
        if r != value {
            if let Ok(d) = open(sealing, "sessionid", r) {
                // Only another value sealed by us could open: the fuzzer
                // cannot forge one without the key.
                panic!("an arbitrary value opened: user {:?}", d.user_id);
            }
        }
    }
}
