//! Micro-benchmarks of local validation:
//!
//! - `fernet_decrypt_decode`: base64url + HMAC + AES-CBC + msgpack of a
//!   project-scoped token (the spec's Keystone-made vector);
//! - `revocation_10k`: one token checked against 10,000 revocation events
//!   (user, audit and project events; none matching);
//! - `local_decision`: the two together, as `local::Local::decode` + the
//!   revocation check run for an uncached token;
//! - `jws_verify_decode`: ES256 verification + claims of a project-scoped
//!   JWS token made by Keystone's JWS formatter (`tests/fixtures/jws`);
//! - `jws_refuse_alg_none`: an `alg: none` token refused before any
//!   signature work.
//!
//! Run: `cargo bench --bench local`.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use stonegate::{
    revocation::{Event, Known, List, TokenValues},
    token::{
        fernet, jws,
        jws_keys::{PublicKey, PublicKeys},
        keys::{Key, KeySet},
        payload::{self, Methods},
    },
};

/// Keystone-made vector of keystone-tokens.md §9 (key = bytes 0..31).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PROJECT: &str = "gAAAAABpVarwAAECAwQFBgcICQoLDA0OD1NPl6i7w4v67dC2qdMLP8tUIhIwZYSJW3B1_x1ToyTj3-UMyw_PbZRD19hoIwdxQtRulMDGWoqDNCa3b8kAhq9cYI7cAEcfizicEX3-jHua4tQ4Jy-pgxswWmflhose9esmaun0U4eP56eHk7Ux3Pw";

fn events() -> List {
    let mut v = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        let mut e = Event {
            issued_before: 1_767_300_000,
            revoked_at: 1_767_300_000,
            ..Event::default()
        };
        match i % 3 {
            0 => e.user_id = Some(format!("{i:032x}")),
            1 => e.audit_id = Some(format!("audit-{i:016}")),
            _ => e.project_id = Some(format!("p{i:031x}")),
        }
        v.push(e);
    }
    List::new(v)
}

fn bench(c: &mut Criterion) {
    let keys = KeySet::from_keys(vec![Key::parse(1, KEY).unwrap()]).unwrap();
    let methods = Methods::default();
    c.bench_function("fernet_decrypt_decode", |b| {
        b.iter(|| {
            let d = fernet::decrypt(black_box(PROJECT), &keys, 8192).unwrap();
            black_box(payload::decode(&d.plaintext, &methods).unwrap())
        })
    });

    let list = events();
    let d = fernet::decrypt(PROJECT, &keys, 8192).unwrap();
    let p = payload::decode(&d.plaintext, &methods).unwrap();
    let roles: Vec<std::sync::Arc<str>> = vec!["r1".into(), "r2".into()];
    let values = TokenValues {
        user_id: Some(&p.user_id),
        trustor_id: None,
        trustee_id: None,
        identity_domain_id: Known::Is(Some("default")),
        project_id: Some("0f92ff022b0f4960b6bf6edfb628994e"),
        assignment_domain_id: None,
        trust_id: None,
        consumer_id: Known::Is(None),
        audit_id: p.audit_ids.first().map(String::as_str),
        parent_audit_id: None,
        roles: Known::Is(&roles),
        issued_at: 1_767_222_000,
        expires_at: p.expires_at,
    };
    assert!(!list.is_revoked(&values));
    c.bench_function("revocation_10k", |b| {
        b.iter(|| black_box(list.is_revoked(black_box(&values))))
    });

    c.bench_function("local_decision", |b| {
        b.iter(|| {
            let d = fernet::decrypt(black_box(PROJECT), &keys, 8192).unwrap();
            let p = payload::decode(&d.plaintext, &methods).unwrap();
            let v = TokenValues {
                user_id: Some(&p.user_id),
                audit_id: p.audit_ids.first().map(String::as_str),
                expires_at: p.expires_at,
                ..values.clone()
            };
            black_box(list.is_revoked(&v))
        })
    });

    let public = PublicKeys::from_keys(vec![PublicKey::parse(
        "public.pem",
        include_str!("../tests/fixtures/jws/public/public.pem"),
    )
    .unwrap()])
    .unwrap();
    let tokens: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/jws/tokens.json")).unwrap();
    let project = tokens["project"].as_str().unwrap().to_owned();
    c.bench_function("jws_verify_decode", |b| {
        b.iter(|| black_box(jws::verify(black_box(&project), &public, 8192).unwrap()))
    });
    let (_, rest) = project.split_once('.').unwrap();
    let none = format!("eyJhbGciOiJub25lIn0.{rest}");
    c.bench_function("jws_refuse_alg_none", |b| {
        b.iter(|| black_box(jws::verify(black_box(&none), &public, 8192).unwrap_err()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
