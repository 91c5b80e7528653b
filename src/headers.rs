//! The security boundary: which request headers are removed before anything
//! else happens, and which are set from a validated identity.
//!
//! Removal matches names case-insensitively and with `_` read as `-`, so a
//! WSGI/CGI upstream (which sees `X_User_Id` and `X-User-Id` as the same
//! `HTTP_X_USER_ID`) cannot be fed a forged identity either.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::identity::{Identity, Named, Scope};

/// Every identity header name (lower-case, dashes), user and service forms.
/// keystonemiddleware's `_all_auth_headers` plus `OpenStack-System-Scope`.
pub const IDENTITY_HEADERS: &[&str] = &[
    "x-identity-status",
    "x-service-identity-status",
    "x-service-catalog",
    "x-is-admin-project",
    "x-roles",
    "x-role",
    "x-user",
    "x-user-id",
    "x-user-name",
    "x-user-domain-id",
    "x-user-domain-name",
    "x-project-id",
    "x-project-name",
    "x-project-domain-id",
    "x-project-domain-name",
    "x-domain-id",
    "x-domain-name",
    "x-tenant",
    "x-tenant-id",
    "x-tenant-name",
    "openstack-system-scope",
    "x-service-roles",
    "x-service-user-id",
    "x-service-user-name",
    "x-service-user-domain-id",
    "x-service-user-domain-name",
    "x-service-project-id",
    "x-service-project-name",
    "x-service-project-domain-id",
    "x-service-project-domain-name",
    "x-service-domain-id",
    "x-service-domain-name",
    "x-service-openstack-system-scope",
];

/// True when `name` (any case, `_` or `-`) is an identity header.
pub fn is_identity_header(name: &str) -> bool {
    let b = name.as_bytes();
    // Cheap prefilter: every identity header starts with "x" or "openstack".
    if !(b.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'x'))
        || b.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'o')))
    {
        return false;
    }
    IDENTITY_HEADERS.iter().any(|h| {
        h.len() == b.len()
            && h.bytes().zip(b).all(|(w, &c)| {
                w == if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
    })
}

/// Removes every identity header from `headers`; returns how many names were removed.
pub fn strip_identity(headers: &mut HeaderMap) -> usize {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_identity_header(n.as_str()))
        .cloned()
        .collect();
    for name in &doomed {
        headers.remove(name);
    }
    doomed.len()
}

/// `X-Identity-Status` / `X-Service-Identity-Status` values.
pub const CONFIRMED: HeaderValue = HeaderValue::from_static("Confirmed");
/// The status of a missing or invalid token.
pub const INVALID: HeaderValue = HeaderValue::from_static("Invalid");

fn put(headers: &mut HeaderMap, name: &'static str, value: Option<&str>) {
    if let Some(v) = value {
        match HeaderValue::from_str(v) {
            Ok(hv) => {
                headers.insert(HeaderName::from_static(name), hv);
            }
            Err(_) => match HeaderValue::from_bytes(v.as_bytes()) {
                // Non-ASCII names (UTF-8 bytes are valid obs-text).
                Ok(hv) => {
                    headers.insert(HeaderName::from_static(name), hv);
                }
                Err(_) => tracing::warn!(
                    header = name,
                    "identity value not representable as a header; omitted"
                ),
            },
        }
    }
}

fn named(n: &Named) -> (Option<&str>, Option<&str>) {
    (n.id.as_deref(), n.name.as_deref())
}

/// Sets the headers of a valid user token, exactly as keystonemiddleware's
/// `_set_auth_headers` + deprecated aliases (absent values are omitted).
/// The block is rendered once per identity and copied afterwards.
pub fn set_user(headers: &mut HeaderMap, id: &Identity, include_catalog: bool) {
    let block = id
        .rendered
        .user
        .get_or_init(|| render(|h| render_user(h, id)));
    copy(headers, block);
    if include_catalog {
        let catalog = id.rendered.catalog.get_or_init(|| {
            id.service_catalog
                .as_deref()
                .and_then(|c| HeaderValue::from_str(c).ok())
        });
        if let Some(c) = catalog {
            headers.insert(HeaderName::from_static("x-service-catalog"), c.clone());
        }
    }
}

/// Sets the `X-Service-*` headers of a valid service token.
pub fn set_service(headers: &mut HeaderMap, id: &Identity) {
    let block = id.rendered.service.get_or_init(|| {
        render(|h| {
            h.insert(
                HeaderName::from_static("x-service-identity-status"),
                CONFIRMED,
            );
            set_common(h, id, true);
        })
    });
    copy(headers, block);
}

fn render(fill: impl FnOnce(&mut HeaderMap)) -> crate::identity::HeaderBlock {
    let mut h = HeaderMap::new();
    fill(&mut h);
    h.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
}

fn copy(headers: &mut HeaderMap, block: &[(HeaderName, HeaderValue)]) {
    headers.reserve(block.len());
    for (n, v) in block {
        headers.insert(n.clone(), v.clone());
    }
}

fn render_user(headers: &mut HeaderMap, id: &Identity) {
    headers.insert(HeaderName::from_static("x-identity-status"), CONFIRMED);
    set_common(headers, id, false);
    let is_admin = if id.is_admin_project { "True" } else { "False" };
    headers.insert(
        HeaderName::from_static("x-is-admin-project"),
        HeaderValue::from_static(is_admin),
    );
    if matches!(id.scope, Scope::System) {
        headers.insert(
            HeaderName::from_static("openstack-system-scope"),
            HeaderValue::from_static("all"),
        );
    }
    // Deprecated names old services still read.
    let roles = headers.get("x-roles").cloned();
    if let Some(r) = roles {
        headers.insert(HeaderName::from_static("x-role"), r);
    }
    put(headers, "x-user", id.user.name.as_deref());
    if let Scope::Project(p) = &id.scope {
        put(headers, "x-tenant-id", p.project.id.as_deref());
        put(headers, "x-tenant-name", p.project.name.as_deref());
        put(headers, "x-tenant", p.project.name.as_deref());
    }
}

fn set_common(headers: &mut HeaderMap, id: &Identity, service: bool) {
    macro_rules! name {
        ($user:literal, $svc:literal) => {
            if service {
                $svc
            } else {
                $user
            }
        };
    }
    let (uid, uname) = named(&id.user);
    put(headers, name!("x-user-id", "x-service-user-id"), uid);
    put(headers, name!("x-user-name", "x-service-user-name"), uname);
    let (did, dname) = named(&id.user_domain);
    put(
        headers,
        name!("x-user-domain-id", "x-service-user-domain-id"),
        did,
    );
    put(
        headers,
        name!("x-user-domain-name", "x-service-user-domain-name"),
        dname,
    );
    match &id.scope {
        Scope::Project(p) => {
            let (pid, pname) = named(&p.project);
            put(headers, name!("x-project-id", "x-service-project-id"), pid);
            put(
                headers,
                name!("x-project-name", "x-service-project-name"),
                pname,
            );
            let (pdid, pdname) = named(&p.domain);
            put(
                headers,
                name!("x-project-domain-id", "x-service-project-domain-id"),
                pdid,
            );
            put(
                headers,
                name!("x-project-domain-name", "x-service-project-domain-name"),
                pdname,
            );
        }
        Scope::Domain(d) => {
            let (did, dname) = named(d);
            put(headers, name!("x-domain-id", "x-service-domain-id"), did);
            put(
                headers,
                name!("x-domain-name", "x-service-domain-name"),
                dname,
            );
        }
        Scope::System | Scope::Unscoped => {}
    }
    // Present (possibly empty) even for unscoped tokens, as keystonemiddleware.
    let roles = id.roles.join(",");
    put(headers, name!("x-roles", "x-service-roles"), Some(&roles));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forged_headers_in_any_spelling_are_removed() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("x-user-id", "evil"),
            ("X_User_Id", "evil"),
            ("x-ROLES", "admin"),
            ("x_service_roles", "service"),
            ("openstack-system-scope", "all"),
            ("OpenStack_System_Scope", "all"),
            ("x-identity-status", "Confirmed"),
            ("x-service-catalog", "[]"),
            ("x-tenant", "t"),
            ("x-auth-token", "keep"),
            ("x-user-agent-ish", "keep"),
            ("content-type", "keep"),
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        h.append("x-roles", HeaderValue::from_static("second"));
        strip_identity(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            vec!["content-type", "x-auth-token", "x-user-agent-ish"]
        );
    }

    #[test]
    fn every_header_we_set_is_one_we_strip() {
        for name in [
            "x-identity-status",
            "x-user-id",
            "x-user-name",
            "x-user-domain-id",
            "x-user-domain-name",
            "x-project-id",
            "x-project-name",
            "x-project-domain-id",
            "x-project-domain-name",
            "x-domain-id",
            "x-domain-name",
            "x-roles",
            "x-role",
            "x-user",
            "x-tenant-id",
            "x-tenant-name",
            "x-tenant",
            "x-is-admin-project",
            "x-service-catalog",
            "openstack-system-scope",
            "x-service-identity-status",
            "x-service-user-id",
            "x-service-roles",
            "x-service-project-id",
            "x-service-domain-name",
        ] {
            assert!(is_identity_header(name), "{name}");
        }
    }
}
