//! Tests of the boundary: forged headers stripped in every spelling, the
//! `Connection` list spent, and the identity headers each decision sets.

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

fn head(lines: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in lines {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The headers of `h` as (name, value) pairs, sorted.
fn sorted(h: &HeaderMap) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> = h
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    pairs.sort_unstable();
    pairs
}

fn identity() -> Identity {
    use crate::identity::{Project, Rendered};
    let named = |id: &str, name: &str| Named {
        id: Some(id.into()),
        name: Some(name.into()),
    };
    Identity {
        user: named("uid", "alice"),
        user_domain: named("default", "Default"),
        scope: Scope::Project(std::sync::Arc::new(Project {
            project: named("pid", "demo"),
            domain: named("default", "Default"),
        })),
        roles: vec!["member".into()].into(),
        role_ids: vec!["rid".into()].into(),
        is_admin_project: false,
        expires_at: 0,
        issued_at: 0,
        audit_ids: Default::default(),
        methods: Default::default(),
        catalog: None,
        extras: None,
        rendered: Rendered::default(),
    }
}

#[test]
fn inject_sets_each_verdict_of_a_decision() {
    let id = std::sync::Arc::new(identity());
    let ctx = |user, service, public| AuthContext {
        user,
        service,
        user_fingerprint: None,
        public,
    };
    let mut h = HeaderMap::new();
    inject(&mut h, &ctx(None, None, true), false);
    assert!(h.is_empty(), "a public route sets nothing");

    let mut h = HeaderMap::new();
    inject(&mut h, &ctx(None, Some(None), false), false);
    assert_eq!(h["x-identity-status"], "Invalid");
    assert_eq!(h["x-service-identity-status"], "Invalid");

    let mut h = HeaderMap::new();
    inject(
        &mut h,
        &ctx(Some(id.clone()), Some(Some(id.clone())), false),
        false,
    );
    assert_eq!(h["x-identity-status"], "Confirmed");
    assert_eq!(h["x-service-identity-status"], "Confirmed");
    assert_eq!(h["x-user-id"], "uid");
    assert_eq!(h["x-service-user-id"], "uid");
}

#[test]
fn a_connection_token_never_removes_what_stonegate_sets() {
    let mut injected = HeaderMap::new();
    set_user(&mut injected, &identity(), false);
    let names: Vec<&str> = injected.keys().map(HeaderName::as_str).collect();
    let mut h = head(&[
        ("host", "api.example"),
        ("connection", &format!("close, {}", names.join(", "))),
        (
            "connection",
            "host, x-forwarded-for, x-forwarded-host, x-forwarded-proto, forwarded",
        ),
        ("proxy-connection", "x-roles, X-Is-Admin-Project"),
        ("x-is-admin-project", "True"),
    ]);
    sanitize(&mut h);
    assert!(h.get("x-is-admin-project").is_none());
    set_user(&mut h, &identity(), false);
    let to = Forwarding {
        host: h.get(header::HOST).cloned(),
        peer: Some(("192.0.2.1".parse().unwrap(), true)),
    };
    forward_request(&mut h, &to);
    for (n, v) in &injected {
        assert_eq!(h.get_all(n).iter().collect::<Vec<_>>(), vec![v], "{n}");
    }
    assert_eq!(h["host"], "api.example");
    assert_eq!(h["x-forwarded-host"], "api.example");
    assert_eq!(h["x-forwarded-for"], "192.0.2.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert!(h.get("connection").is_none() && h.get("proxy-connection").is_none());
}

#[test]
fn sanitize_spends_the_connection_list_but_keeps_framing_host_and_upgrade() {
    let mut h = head(&[
        ("host", "h"),
        ("content-length", "3"),
        ("upgrade", "websocket"),
        ("x-private", "p"),
        ("keep-alive", "timeout=5"),
        ("x-kept", "k"),
        (
            "connection",
            "Upgrade, X-Private, host, Content-Length, keep-alive, , close",
        ),
    ]);
    sanitize(&mut h);
    let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(
        left,
        ["connection", "content-length", "host", "upgrade", "x-kept"]
    );
    assert_eq!(h["connection"], "upgrade, close");
    let mut h = head(&[("connection", "x-a"), ("x-a", "1")]);
    sanitize(&mut h);
    assert!(h.is_empty());
}

#[test]
fn underscore_aliases_of_any_header_are_removed() {
    let mut h = head(&[
        ("x-auth-token", "validated"),
        ("x_auth_token", "other"),
        ("X_Storage_Token", "other"),
        ("x_service_token", "other"),
        ("x_forwarded_for", "1.2.3.4"),
        ("x_real_ip", "1.2.3.4"),
        ("x.auth.token", "other"),
        ("x-auth-token~", "other"),
    ]);
    assert_eq!(sanitize(&mut h), 7);
    assert_eq!(h.len(), 1);
    assert_eq!(h["x-auth-token"], "validated");
}

#[test]
fn forwarding_headers_are_stonegates() {
    let mut h = head(&[
        ("host", "api.example"),
        ("forwarded", "for=1.1.1.1;host=evil"),
        ("x-real-ip", "1.1.1.1"),
        ("x-forwarded-port", "1"),
        ("x-forwarded-prefix", "/evil"),
        ("x-forwarded-host", "evil"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "203.0.113.1"),
        ("x-forwarded-for", "203.0.113.2, 203.0.113.3"),
        ("transfer-encoding", "chunked"),
        ("content-length", "4"),
        ("te", "trailers"),
    ]);
    let to = Forwarding {
        host: Some(HeaderValue::from_static("api.example")),
        peer: Some(("2001:db8::1".parse().unwrap(), false)),
    };
    forward_request(&mut h, &to);
    assert_eq!(
        sorted(&h),
        [
            ("host", "api.example"),
            (
                "x-forwarded-for",
                "203.0.113.1, 203.0.113.2, 203.0.113.3, 2001:db8::1"
            ),
            ("x-forwarded-host", "api.example"),
            ("x-forwarded-proto", "http"),
        ]
    );
}

#[test]
fn an_upstreams_hop_by_hop_headers_never_reach_the_client() {
    let mut h = head(&[
        ("content-type", "application/json"),
        ("connection", "keep-alive, X-Upstream-Hop"),
        ("connection", "Set-Cookie-Debug"),
        ("keep-alive", "timeout=5"),
        ("x-upstream-hop", "internal"),
        ("set-cookie-debug", "x"),
        ("proxy-authenticate", "Basic"),
        ("trailer", "x-checksum"),
        ("upgrade", "websocket"),
        ("transfer-encoding", "chunked"),
        ("x-end-to-end", "kept"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
    ]);
    forward_response(&mut h);
    assert_eq!(
        sorted(&h),
        [
            ("content-type", "application/json"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-end-to-end", "kept"),
        ]
    );
    // A response with none of them keeps every header as it came.
    let plain = head(&[("content-type", "text/plain"), ("etag", "\"1\"")]);
    let mut h = plain.clone();
    forward_response(&mut h);
    assert_eq!(h, plain);
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

#[test]
fn the_user_block_is_shared_by_every_request_and_every_token_of_its_scope() {
    let id = identity();
    let (mut first, mut second) = (HeaderMap::new(), HeaderMap::new());
    set_user(&mut first, &id, false);
    set_user(&mut second, &id, false);
    let got: Vec<(&str, &str)> = second
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("x-identity-status", "Confirmed"),
            ("x-user-id", "uid"),
            ("x-user-name", "alice"),
            ("x-user-domain-id", "default"),
            ("x-user-domain-name", "Default"),
            ("x-project-id", "pid"),
            ("x-project-name", "demo"),
            ("x-project-domain-id", "default"),
            ("x-project-domain-name", "Default"),
            ("x-roles", "member"),
            ("x-is-admin-project", "False"),
            ("x-role", "member"),
            ("x-user", "alice"),
            ("x-tenant-id", "pid"),
            ("x-tenant-name", "demo"),
            ("x-tenant", "demo"),
        ]
    );
    assert_eq!(first, second);
    // Every value of both requests points into the identity's two buffers:
    // the user's id and name into its own values, the rest into the block
    // its scope shares.
    let block = id.rendered.user.get().unwrap();
    let (shared, own) = (block.shared.bytes.as_ptr_range(), block.own.as_ptr_range());
    for (n, v) in first.iter().chain(second.iter()) {
        let p = v.as_bytes().as_ptr();
        let user = ["x-user-id", "x-user-name", "x-user"].contains(&n.as_str());
        let within = if user { &own } else { &shared };
        assert!(within.contains(&p), "{n}: {v:?} was copied");
    }
    // The weigher's estimate of the own values is their length.
    assert_eq!(id.own_block_len(), block.own.len());
    assert_eq!(block.own.len(), 1 + 2 * 2 + "uidalice".len());
    // Another user of the same scope: the same shared block, its own values.
    let mut other = identity();
    other.user = Named {
        id: Some("uid2".into()),
        name: Some("bob".into()),
    };
    let mut third = HeaderMap::new();
    set_user(&mut third, &other, false);
    let other_block = other.rendered.user.get().unwrap();
    assert!(std::sync::Arc::ptr_eq(&block.shared, &other_block.shared));
    assert_eq!(third["x-user-id"], "uid2");
    assert_eq!(third["x-user"], "bob");
    assert_eq!(third["x-project-id"], "pid");
    // Another scope: another block.
    let mut domain = identity();
    domain.scope = Scope::Domain(Named {
        id: Some("did".into()),
        name: Some("Default".into()),
    });
    set_user(&mut HeaderMap::new(), &domain, false);
    let domain_block = domain.rendered.user.get().unwrap();
    assert!(!std::sync::Arc::ptr_eq(&block.shared, &domain_block.shared));
}

#[test]
fn the_weighers_block_length_is_the_rendered_one_for_every_scope() {
    let scopes = [
        Scope::Domain(Named {
            id: Some("did".into()),
            name: Some("Default".into()),
        }),
        Scope::System,
        Scope::Unscoped,
    ];
    for scope in scopes {
        let mut id = identity();
        id.scope = scope;
        id.user.name = None;
        id.is_admin_project = true;
        let mut h = HeaderMap::new();
        set_user(&mut h, &id, false);
        let block = id.rendered.user.get().unwrap();
        assert_eq!(id.own_block_len(), block.own.len(), "{:?}", id.scope);
    }
}

#[test]
fn an_ipv4_peer_is_written_as_display_writes_it_and_each_peer_as_its_own() {
    // The per-thread last peer must never answer for another address.
    for ip in [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.0.1",
        "1.22.3.100",
        "10.0.0.10",
        "192.168.100.9",
        "10.0.0.1",
    ] {
        let mut h = head(&[("host", "h")]);
        let to = Forwarding {
            host: None,
            peer: Some((ip.parse().unwrap(), false)),
        };
        forward_request(&mut h, &to);
        assert_eq!(h["x-forwarded-for"], ip);
        // After a client's chain, the same text.
        let mut h = head(&[("x-forwarded-for", "203.0.113.1")]);
        forward_request(&mut h, &to);
        assert_eq!(h["x-forwarded-for"], format!("203.0.113.1, {ip}").as_str());
    }
    let mut h = head(&[("transfer-encoding", "chunked"), ("content-length", "4")]);
    forward_request(&mut h, &Forwarding::default());
    assert!(h.is_empty(), "{h:?}");
}
