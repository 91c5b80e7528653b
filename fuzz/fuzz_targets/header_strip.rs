//! Arbitrary header names and values (`name:value` lines): after
//! `strip_identity`, no identity header remains in any spelling — checked
//! against `is_identity_header` AND against an independent list
//! (keystonemiddleware's `_all_auth_headers` plus `OpenStack-System-Scope`,
//! names compared case-insensitively with `_` read as `-`) — and every other
//! header is left alone.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use stonegate::headers::{is_identity_header, strip_identity};

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
];

fn in_oracle(name: &str) -> bool {
    let n: String = name
        .chars()
        .map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() })
        .collect();
    ORACLE.contains(&n.as_str())
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let mut parts = line.splitn(2, |b| *b == b':');
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    let innocent: usize = headers
        .keys()
        .filter(|n| !is_identity_header(n.as_str()))
        .map(|n| headers.get_all(n).iter().count())
        .sum();
    strip_identity(&mut headers);
    for name in headers.keys() {
        assert!(!is_identity_header(name.as_str()), "{name} survived stripping");
        assert!(!in_oracle(name.as_str()), "{name} (a keystonemiddleware identity header) survived");
    }
    assert_eq!(headers.len(), innocent, "a non-identity header was removed");
});
