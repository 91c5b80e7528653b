//! A client can never forge an identity: every identity header a request
//! brings, in any case and in its WSGI underscore spelling, is removed before
//! anything else happens — with a valid token, an invalid one under
//! `delay_auth_decision`, or none.

use std::time::Duration;

use crate::harness::upstream::Seen;
use crate::harness::{Keystone, Stonegate, Upstream, IDENTITY_HEADERS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Forged identity headers, spelled as an attacker would: every identity
/// header (the list is checked against keystonemiddleware's own in
/// kmw_differential.rs), dashed and in its WSGI underscore spelling.
fn forged() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in IDENTITY_HEADERS {
        out.push(((*name).to_owned(), format!("forged-{name}")));
        out.push((name.replace('-', "_"), format!("forged-underscore-{name}")));
    }
    out
}

fn with_forged<'a>(
    forged: &'a [(String, String)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut v: Vec<(&str, &str)> = forged
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    v.extend_from_slice(extra);
    v
}

/// Mixed-case spellings, sent byte for byte over a raw connection (HTTP
/// clients normalise names to lower case).
const FORGED_RAW: &[&str] = &[
    "X-uSeR-iD: forged-mixed-case",
    "x-ROLES: forged-mixed-roles",
    "X_USER_ID: forged-upper-underscore",
    "openstack-system-SCOPE: forged-system",
    "X-IDENTITY-STATUS: forged-status",
];

fn assert_nothing_forged(seen: &Seen) {
    for (name, value) in &seen.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !v.contains("forged"),
            "forged value reached the upstream: {name}: {v}"
        );
        assert!(
            !name.as_str().contains('_'),
            "underscore header reached the upstream: {name}"
        );
    }
}

/// One raw HTTP/1.1 request with extra header lines; the response status.
async fn raw_get(sg: &Stonegate, extra: &[String]) -> u16 {
    let mut s = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    let mut req = format!(
        "GET /raw HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        sg.listen
    );
    for line in extra {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("response within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn forged_identity_headers_never_reach_upstream_with_a_valid_token() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    let forged = forged();
    let headers = with_forged(&forged, &[("X-Auth-Token", &token)]);
    let resp = sg.get("/", &headers).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_nothing_forged(&seen);
    assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
    assert_eq!(
        seen.header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
    assert!(seen.header("openstack-system-scope").is_none());
    assert!(seen.header("x-service-roles").is_none());

    let mut raw: Vec<String> = FORGED_RAW.iter().map(|s| s.to_string()).collect();
    raw.push(format!("X-Auth-Token: {token}"));
    assert_eq!(raw_get(&sg, &raw).await, 200);
    let seen = up.last();
    assert_eq!(seen.uri.path(), "/raw");
    assert_nothing_forged(&seen);
    assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
}

#[tokio::test]
async fn forged_identity_headers_never_reach_upstream_with_delay_auth_decision() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("delay_auth_decision", true)
        .start()
        .await;
    // No token, then an invalid one: both forwarded as Invalid, nothing forged.
    let forged = forged();
    for token in [None, Some("not-a-valid-token")] {
        let mut headers = with_forged(&forged, &[]);
        if let Some(t) = token {
            headers.push(("X-Auth-Token", t));
        }
        let resp = sg.get("/", &headers).await;
        assert_eq!(resp.status(), 200);
        let seen = up.last();
        assert_nothing_forged(&seen);
        assert_eq!(seen.header("x-identity-status").as_deref(), Some("Invalid"));
    }
    let raw: Vec<String> = FORGED_RAW.iter().map(|s| s.to_string()).collect();
    assert_eq!(raw_get(&sg, &raw).await, 200);
    assert_nothing_forged(&up.last());
}

#[tokio::test]
async fn delay_auth_decision_forwards_invalid_token_as_invalid_without_identity() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("delay_auth_decision", true)
        .start()
        .await;
    let resp = sg
        .get("/v2.1/servers", &[("X-Auth-Token", "garbage")])
        .await;
    assert_eq!(resp.status(), 200, "forwarded: the service decides");
    let seen = up.last();
    assert_eq!(seen.header("x-identity-status").as_deref(), Some("Invalid"));
    for name in IDENTITY_HEADERS
        .iter()
        .filter(|n| **n != "x-identity-status")
    {
        assert!(
            seen.header(name).is_none(),
            "{name} set for an invalid token"
        );
    }
    assert_eq!(
        seen.header("x-auth-token").as_deref(),
        Some("garbage"),
        "token forwarded unchanged"
    );

    // A valid token still gets the full identity.
    let token = ks.demo_token().await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    let seen = up.last();
    assert_eq!(
        seen.header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
    assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
}

#[tokio::test]
async fn duplicated_and_folded_forgeries_never_reach_upstream() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    // Each identity header several times, in several spellings, before and
    // after the valid token.
    let mut raw = vec![
        "X-Roles: forged-dup-1".to_string(),
        "X-Roles: forged-dup-2".to_string(),
        "x_roles: forged-dup-3".to_string(),
        "X-User-Id: forged-dup-user".to_string(),
    ];
    raw.push(format!("X-Auth-Token: {token}"));
    raw.extend([
        "X-User-Id: forged-dup-user-after".to_string(),
        "X_USER_ID: forged-dup-underscore".to_string(),
        "OpenStack-System-Scope: forged-dup-all".to_string(),
        "OPENSTACK-SYSTEM-SCOPE: forged-dup-all-2".to_string(),
    ]);
    assert_eq!(raw_get(&sg, &raw).await, 200);
    let seen = up.last();
    assert_nothing_forged(&seen);
    assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
    assert_eq!(
        seen.headers.get_all("x-roles").iter().count(),
        1,
        "exactly stonegate's X-Roles"
    );

    // obs-fold (a continuation line) smuggling a value into X-Roles: refused
    // outright, never forwarded.
    let hits = up.hits();
    let folded = vec![
        format!("X-Auth-Token: {token}"),
        "X-Roles: member".to_string(),
        " forged-folded-admin".to_string(),
    ];
    assert_eq!(
        raw_get(&sg, &folded).await,
        400,
        "obs-fold is refused (RFC 9112 §5.2)"
    );
    assert_eq!(up.hits(), hits, "a malformed request reached the upstream");

    // Two different tokens in one request: the upstream could use either, so
    // neither counts.
    let two = vec![
        format!("X-Auth-Token: {token}"),
        "X-Auth-Token: another-token".to_string(),
    ];
    assert_eq!(raw_get(&sg, &two).await, 401);
    assert_eq!(up.hits(), hits);
}
