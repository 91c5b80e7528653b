//! Arbitrary request heads (`name:value` lines) through the real request
//! pipeline of `stonegate::headers`, the one every front door and the proxy
//! call: `sanitize` (the client's `Connection` list, identity and underscore
//! aliases) → inject an identity (`set_user` / `set_service` /
//! `X-Identity-Status: Invalid`, chosen by the first byte) →
//! `forward_request` (the proxy's outgoing head).
//!
//! Invariants:
//! - after `strip_identity` alone, no identity header remains in any
//!   spelling — checked against `is_identity_header` AND against an
//!   independent list (keystonemiddleware's `_all_auth_headers` plus
//!   `OpenStack-System-Scope`, names compared case-insensitively with `_`
//!   read as `-`) — and every other header is left alone;
//! - the outgoing head holds every injected identity header with exactly its
//!   injected values, and no other identity header (so nothing the client
//!   supplied, whatever it named in `Connection`);
//! - it holds no header named with anything but letters, digits and `-`,
//!   no hop-by-hop header, no client `Forwarded` / `X-Real-IP` / `X-Forwarded-*`; `Host` and
//!   `X-Forwarded-Host` are the client's `Host`, `X-Forwarded-Proto` and the
//!   last `X-Forwarded-For` entry are stonegate's.
#![no_main]

use http::{header, HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use stonegate::headers::{
    forward_request, is_identity_header, sanitize, set_service, set_user, strip_identity,
    Forwarding, HOP_BY_HOP, INVALID,
};
use stonegate::identity::{Catalog, Identity, Named, Project, Rendered, Scope};

/// Written out here, not taken from `stonegate::headers`.
const ORACLE: &[&str] = &[
    "x-service-catalog",
    "x-identity-status",
    "x-service-identity-status",
    "x-is-admin-project",
    "x-role",
    "x-roles",
    "x-service-roles",
    "x-user",
    "x-tenant",
    "x-tenant-id",
    "x-tenant-name",
    "openstack-system-scope",
    "x-domain-id",
    "x-domain-name",
    "x-project-id",
    "x-project-name",
    "x-project-domain-id",
    "x-project-domain-name",
    "x-user-id",
    "x-user-name",
    "x-user-domain-id",
    "x-user-domain-name",
    "x-service-domain-id",
    "x-service-domain-name",
    "x-service-project-id",
    "x-service-project-name",
    "x-service-project-domain-id",
    "x-service-project-domain-name",
    "x-service-user-id",
    "x-service-user-name",
    "x-service-user-domain-id",
    "x-service-user-domain-name",
    "x-service-openstack-system-scope",
];

fn in_oracle(name: &str) -> bool {
    let n: String = name
        .chars()
        .map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() })
        .collect();
    ORACLE.contains(&n.as_str())
}

/// Letters, digits and `-` only: no WSGI/CGI alias of another name.
fn plain(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn named(id: &str, name: &str) -> Named {
    Named {
        id: Some(id.into()),
        name: Some(name.into()),
    }
}

fn identity(scope: Scope, who: &str) -> Identity {
    Identity {
        user: named(&format!("{who}-user-id"), &format!("{who}-user")),
        user_domain: named("default", "Default"),
        scope,
        roles: vec!["member".into(), format!("{who}-role").into()].into(),
        role_ids: vec!["r1".into(), "r2".into()].into(),
        is_admin_project: false,
        expires_at: 0,
        issued_at: 0,
        audit_ids: stonegate::identity::AuditIds::new(&["audit"]),
        methods: vec!["password".into()].into(),
        catalog: Some(Catalog::pooled(&[], "[]".into())),
        extras: None,
        rendered: Rendered::default(),
    }
}

/// What stonegate injects, by mode: a project user (with catalog), a system
/// user plus a service token, `Invalid` (delay_auth_decision), or nothing
/// (a public route).
fn inject(h: &mut HeaderMap, mode: u8, user: &Identity, system: &Identity, svc: &Identity) {
    match mode % 4 {
        0 => set_user(h, user, true),
        1 => {
            set_user(h, system, false);
            set_service(h, svc);
        }
        2 => {
            h.insert("x-identity-status", INVALID);
            h.insert("x-service-identity-status", INVALID);
        }
        _ => {}
    }
}

fn values<'a>(h: &'a HeaderMap, n: &HeaderName) -> Vec<&'a [u8]> {
    h.get_all(n).iter().map(HeaderValue::as_bytes).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut client = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let mut parts = line.splitn(2, |b| *b == b':');
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            client.append(n, v);
        }
    }

    // 1. strip_identity alone.
    let mut headers = client.clone();
    let innocent: usize = headers
        .keys()
        .filter(|n| !in_oracle(n.as_str()))
        .map(|n| headers.get_all(n).iter().count())
        .sum();
    strip_identity(&mut headers);
    for name in headers.keys() {
        assert!(!is_identity_header(name.as_str()), "{name} survived stripping");
        assert!(!in_oracle(name.as_str()), "{name} (a keystonemiddleware identity header) survived");
    }
    assert_eq!(headers.len(), innocent, "a non-identity header was removed");

    // 2. The whole request pipeline.
    let mode = data.first().copied().unwrap_or(0);
    let user = identity(
        Scope::Project(std::sync::Arc::new(Project {
            project: named("pid", "demo"),
            domain: named("default", "Default"),
        })),
        "fuzz",
    );
    let system = identity(Scope::System, "admin");
    let svc = identity(Scope::Domain(named("did", "services")), "svc");
    let mut injected = HeaderMap::new();
    inject(&mut injected, mode, &user, &system, &svc);

    let mut h = client.clone();
    sanitize(&mut h);
    for name in h.keys() {
        assert!(!in_oracle(name.as_str()), "{name} survived sanitize");
        assert!(plain(name.as_str()), "{name} survived sanitize");
    }
    inject(&mut h, mode, &user, &system, &svc);
    // As the proxy does: the Host it keeps is the one in the head now.
    let tls = mode & 4 != 0;
    let to = Forwarding {
        host: h.get(header::HOST).cloned(),
        peer: Some(("127.0.0.1".parse().unwrap(), tls)),
    };
    forward_request(&mut h, &to);

    for (n, _) in &injected {
        assert_eq!(values(&h, n), values(&injected, n), "{n}: not exactly what was injected");
    }
    for name in h.keys() {
        let s = name.as_str();
        if in_oracle(s) {
            assert!(injected.contains_key(name), "{name}: an identity header stonegate did not set");
        }
        assert!(plain(s), "{name}: an alias (`_`, `.`...) went out");
        assert!(!HOP_BY_HOP.contains(&s), "{name}: hop-by-hop went out");
        assert!(s != "forwarded" && s != "x-real-ip", "{name}: the client's went out");
        if let Some(rest) = s.strip_prefix("x-forwarded-") {
            assert!(["for", "host", "proto"].contains(&rest), "{name}: the client's went out");
        }
    }
    // Host is never removed by anything the client names.
    let host = client.get(header::HOST);
    assert_eq!(h.get(header::HOST), host, "Host changed");
    assert_eq!(h.get("x-forwarded-host"), host, "X-Forwarded-Host is not Host");
    assert_eq!(
        h.get("x-forwarded-proto").map(HeaderValue::as_bytes),
        Some(if tls { &b"https"[..] } else { &b"http"[..] })
    );
    let xff = values(&h, &HeaderName::from_static("x-forwarded-for"));
    assert_eq!(xff.len(), 1, "one X-Forwarded-For");
    assert!(xff[0] == b"127.0.0.1" || xff[0].ends_with(b", 127.0.0.1"), "XFF: {xff:?}");
});
