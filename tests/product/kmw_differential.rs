//! The differential against the reference: the real keystonemiddleware
//! (13.0.1, the harness venv's) and stonegate, configured alike, get the same
//! requests with the same real tokens from the same real Keystone; what the
//! application behind each receives must be the same, byte for byte: every
//! identity header (`X-Service-Catalog` included), every token header, the
//! method, path and body length. A refusal must be the same status, the same
//! `WWW-Authenticate` and the same JSON error document.
//!
//! The deliberate differences of the README's behaviour section are asserted
//! exceptions, each named where it is expected ([`Expect::Differs`]).

use crate::harness::kmw::{
    check, check_storage_token_and_a_body, forwarded, Expect, Pair, Request,
};
use crate::harness::{Keystone, Scope};

#[tokio::test]
async fn every_token_kind_gets_keystonemiddlewares_headers_byte_for_byte() {
    let ks = Keystone::from_env();
    let pair = Pair::start(&ks, &[]).await;
    let svc = ks.svc_token().await;
    let cases = [
        ("project token", ks.demo_token().await),
        (
            "project of another domain",
            ks.token("demo", Scope::ProjectIn("demo-alt", "demo-domain"))
                .await,
        ),
        (
            "domain token",
            ks.token("demo", Scope::Domain("demo-domain")).await,
        ),
        ("system token", ks.token("admin", Scope::System).await),
        ("unscoped token", ks.token("demo", Scope::Unscoped).await),
        (
            "application credential",
            ks.app_cred_token("unrestricted").await,
        ),
        ("trust token", ks.trust_token().await),
        (
            "admin project token",
            ks.token("admin", Scope::Project("admin")).await,
        ),
    ];
    for (what, token) in &cases {
        let (sg, _) = check(
            &pair,
            what,
            Request::get("/v2.1/servers?limit=1", &[("X-Auth-Token", token)]),
            Expect::Same,
        )
        .await;
        assert!(forwarded(&sg), "{what}: not forwarded: {sg:?}");
        if *what != "unscoped token" {
            let cat = &sg.forwarded.as_ref().unwrap()["x-service-catalog"];
            assert!(cat.starts_with(b"[{\""), "{what}: catalog {cat:?}");
        }
    }
    // With a valid service token (svc holds the service role): X-Service-*.
    let (sg, _) = check(
        &pair,
        "project token + service token",
        Request::get(
            "/v2.1/servers",
            &[("X-Auth-Token", &cases[0].1), ("X-Service-Token", &svc)],
        ),
        Expect::Same,
    )
    .await;
    let h = sg.forwarded.unwrap();
    assert_eq!(h["x-service-identity-status"], b"Confirmed");
    assert!(h["x-service-roles"]
        .split(|b| *b == b',')
        .any(|r| r == b"service"));
    // The user token through X-Storage-Token, and with a body.
    check_storage_token_and_a_body(&pair, &cases[0].1).await;

    // OpenStack-System-Scope comes from the user token only: the README's
    // documented difference (keystonemiddleware lets the service token's
    // scope overwrite it, and a project-scoped service token erases it).
    check(
        &pair,
        "system token + project-scoped service token",
        Request::get(
            "/v2.1/servers",
            &[("X-Auth-Token", &cases[3].1), ("X-Service-Token", &svc)],
        ),
        Expect::Differs {
            why: "OpenStack-System-Scope is set from the user token only",
            status: None,
            headers: &[("openstack-system-scope", Some("all"), None)],
        },
    )
    .await;
}

#[tokio::test]
async fn refusals_match_keystonemiddlewares_status_body_and_www_authenticate() {
    let ks = Keystone::from_env();
    let pair = Pair::start(&ks, &[]).await;
    let user = ks.demo_token().await;
    // demo's own token holds no service role: not a service token.
    let no_role = ks
        .token("demo", Scope::ProjectIn("demo-alt", "demo-domain"))
        .await;
    let cases = [
        ("no token", Request::get("/v2.1/servers", &[])),
        (
            "invalid token",
            Request::get("/v2.1/servers", &[("X-Auth-Token", "gAAAAABnot-a-token")]),
        ),
        (
            "service token without a service role",
            Request::get(
                "/v2.1/servers",
                &[("X-Auth-Token", &user), ("X-Service-Token", &no_role)],
            ),
        ),
        (
            "invalid service token",
            Request::get(
                "/v2.1/servers",
                &[("X-Auth-Token", &user), ("X-Service-Token", "garbage")],
            ),
        ),
    ];
    for (what, req) in cases {
        let (sg, _) = check(&pair, what, req, Expect::Same).await;
        assert_eq!(sg.status, 401, "{what}");
        assert_eq!(
            sg.www_authenticate.as_deref(),
            Some(format!("Keystone uri=\"{}\"", ks.auth_url).as_str())
        );
        assert_eq!(sg.error.unwrap()["error"]["code"], 401);
    }
}

#[tokio::test]
async fn access_rules_match_keystonemiddleware_on_allowed_and_refused_requests() {
    let ks = Keystone::from_env();
    let pair = Pair::start(&ks, &[]).await;
    let token = ks.app_cred_token("access_rules").await;
    let svc = ks.svc_token().await;
    // The rule: compute, GET /v2.1/servers.
    let (sg, _) = check(
        &pair,
        "allowed path and method",
        Request::get("/v2.1/servers", &[("X-Auth-Token", &token)]),
        Expect::Same,
    )
    .await;
    assert!(forwarded(&sg));
    for (what, req) in [
        (
            "refused path",
            Request::get("/v2.1/flavors", &[("X-Auth-Token", &token)]),
        ),
        (
            "refused method",
            Request::new("DELETE", "/v2.1/servers", &[("X-Auth-Token", &token)]),
        ),
        (
            "refused method with a body",
            Request::new("POST", "/v2.1/servers", &[("X-Auth-Token", &token)]).body("{}"),
        ),
    ] {
        let (sg, _) = check(&pair, what, req, Expect::Same).await;
        assert_eq!(sg.status, 401, "{what}");
    }
    // A valid service token lifts the rules in both.
    let (sg, _) = check(
        &pair,
        "refused path with a valid service token",
        Request::get(
            "/v2.1/flavors",
            &[("X-Auth-Token", &token), ("X-Service-Token", &svc)],
        ),
        Expect::Same,
    )
    .await;
    assert!(forwarded(&sg));
}

#[tokio::test]
async fn without_the_catalog_headers_match_and_access_rules_still_hold() {
    let ks = Keystone::from_env();
    let pair = Pair::start(&ks, &[("include_service_catalog", false.into())]).await;
    let (sg, _) = check(
        &pair,
        "project token, catalog off",
        Request::get("/v2.1/servers", &[("X-Auth-Token", &ks.demo_token().await)]),
        Expect::Same,
    )
    .await;
    assert!(!sg.forwarded.unwrap().contains_key("x-service-catalog"));
    // keystonemiddleware validates with ?nocatalog and then looks the
    // service type up in the (absent) catalog: it fails the request with
    // 500. stonegate refetches with the catalog for a token with access
    // rules (README: Access rules) and decides.
    let token = ks.app_cred_token("access_rules").await;
    check(
        &pair,
        "access-rule token, catalog off",
        Request::get("/v2.1/servers", &[("X-Auth-Token", &token)]),
        Expect::Differs {
            why: "stonegate refetches the catalog for tokens with access rules",
            status: Some((200, 500)),
            headers: &[],
        },
    )
    .await;
}

#[tokio::test]
async fn delay_auth_decision_forwards_like_keystonemiddleware() {
    let ks = Keystone::from_env();
    let pair = Pair::start(&ks, &[("delay_auth_decision", true.into())]).await;
    let user = ks.demo_token().await;
    for (what, req) in [
        ("no token", Request::get("/v2.1/servers", &[])),
        (
            "invalid token",
            Request::get("/v2.1/servers", &[("X-Auth-Token", "gAAAAABnot-a-token")]),
        ),
        (
            "valid token, invalid service token",
            Request::get(
                "/v2.1/servers",
                &[("X-Auth-Token", &user), ("X-Service-Token", "garbage")],
            ),
        ),
    ] {
        let (sg, _) = check(&pair, what, req, Expect::Same).await;
        assert!(forwarded(&sg), "{what}");
    }
    // An access-rule token outside its rules, with an INVALID service
    // token: keystonemiddleware skips the rules when a service token is
    // present at all and forwards the user as Confirmed; stonegate lifts
    // the rules only for a valid service token (README: Access rules).
    let token = ks.app_cred_token("access_rules").await;
    let (sg, kmw) = pair
        .send(&Request::get(
            "/v2.1/flavors",
            &[("X-Auth-Token", &token), ("X-Service-Token", "garbage")],
        ))
        .await;
    let (sg, kmw) = (sg.forwarded.unwrap(), kmw.forwarded.unwrap());
    assert_eq!(
        kmw["x-identity-status"], b"Confirmed",
        "keystonemiddleware changed"
    );
    assert_eq!(kmw["x-project-name"], b"demo");
    assert_eq!(sg["x-identity-status"], b"Invalid", "the rules were lifted");
    assert_eq!(sg["x-service-identity-status"], b"Invalid");
    for name in crate::harness::IDENTITY_HEADERS {
        if !name.ends_with("identity-status") {
            assert!(
                !sg.contains_key(*name),
                "{name} forwarded for an Invalid user"
            );
        }
    }
}

#[tokio::test]
async fn service_token_roles_not_required_matches_keystonemiddleware() {
    let ks = Keystone::from_env();
    let pair = Pair::start(&ks, &[("service_token_roles_required", false.into())]).await;
    let user = ks.demo_token().await;
    let no_role = ks
        .token("demo", Scope::ProjectIn("demo-alt", "demo-domain"))
        .await;
    let (sg, _) = check(
        &pair,
        "service token without a service role, roles not required",
        Request::get(
            "/v2.1/servers",
            &[("X-Auth-Token", &user), ("X-Service-Token", &no_role)],
        ),
        Expect::Same,
    )
    .await;
    assert_eq!(
        sg.forwarded.unwrap()["x-service-identity-status"],
        b"Confirmed"
    );
    // Only a service token holding a role lifts access rules, even with
    // roles not required (README: Tokens and sessions); keystonemiddleware
    // lifts them for any service token.
    let token = ks.app_cred_token("access_rules").await;
    check(
        &pair,
        "access-rule token outside its rules, service token without the role",
        Request::get(
            "/v2.1/flavors",
            &[("X-Auth-Token", &token), ("X-Service-Token", &no_role)],
        ),
        Expect::Differs {
            why: "only a service token holding a service_token_roles role lifts access rules",
            status: Some((401, 200)),
            headers: &[],
        },
    )
    .await;
}

/// The harness's list of identity headers (what the forged-header tests send
/// and the differential compares) is keystonemiddleware's own: every header
/// its `remove_auth_headers` strips, plus `OpenStack-System-Scope`, which it
/// sets but forgets to strip (README: Behaviour).
#[tokio::test]
async fn the_identity_header_list_is_keystonemiddlewares() {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(crate::harness::venv_python())
            .args([
                "-c",
                "from keystonemiddleware.auth_token import _request as r\n\
                 q = r._AuthTokenRequest.blank('/')\n\
                 names = set(h.lower() for h in q._all_auth_headers())\n\
                 names.add(q._SYSTEM_SCOPE_HEADER.lower())\n\
                 print('\\n'.join(sorted(names)))",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python within 60 s")
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kmw: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut ours: Vec<String> = crate::harness::IDENTITY_HEADERS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    ours.sort();
    assert_eq!(ours, kmw);
    assert_eq!(
        kmw.iter()
            .filter(|h| h.starts_with("x-service-") && *h != "x-service-catalog")
            .count(),
        12,
        "the 12 service headers"
    );
}
