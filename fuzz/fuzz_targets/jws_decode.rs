//! Any input, three ways, against a fixed ES256 key pair: as a token string
//! for `jws::verify` (the checks before any signature work, then the
//! signature); as bytes for `jws::claims`; and as claims signed with the
//! key into a well-formed JWS, so the verify → claims path behind a valid
//! signature sees attacker-chosen claims too. Never a panic; a signed token
//! verifies exactly when its claims decode, to the same payload; a header
//! other than ES256's is refused whatever the signature.
#![no_main]

use std::sync::OnceLock;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::{signature::Signer as _, Signature, SigningKey};
use stonegate::token::{
    jws::{self, JwsError},
    jws_keys::{PublicKey, PublicKeys},
    MAX_TOKEN_LEN,
};

fn signing() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_bytes(&[7u8; 32].into()).expect("a valid scalar"))
}

fn keys() -> &'static PublicKeys {
    static KEYS: OnceLock<PublicKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        PublicKeys::from_keys(vec![PublicKey::new("public.pem", *signing().verifying_key())])
            .expect("one key")
    })
}

fn sign(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig: Signature = signing().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = jws::looks_like_jws(text);
        let _ = jws::verify(text, keys(), MAX_TOKEN_LEN);
    }
    let decoded = jws::claims(data);

    // Keystone's header over the input as claims: verifies iff it decodes.
    let token = sign(br#"{"alg":"ES256","typ":"JWT"}"#, data);
    match (jws::verify(&token, keys(), usize::MAX), &decoded) {
        (Ok(v), Ok((payload, iat))) => {
            assert_eq!(&v.payload, payload);
            assert_eq!(v.issued_at, *iat);
        }
        (Err(JwsError::Claims(_)), Err(_)) => {}
        (got, want) => panic!("signed token: {got:?}, claims: {want:?}"),
    }
    // The input as a header, validly signed: only exactly `alg: ES256`
    // (without `crit`) gets past the header check.
    let token = sign(data, br#"{}"#);
    if let Ok(v) = jws::verify(&token, keys(), usize::MAX) {
        panic!("{{}} claims verified: {v:?}");
    }
});
