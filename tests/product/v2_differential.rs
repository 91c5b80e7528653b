//! The Identity v2.0 differential: the real keystonemiddleware 13.0.1 of the
//! harness venv (its v2.0 token fetch given back by `kmw_oracle.py`, every
//! other step its own) and stonegate with `auth_version = "v2.0"`, in front
//! of the same echo app, both pointed at one in-process v2.0 Keystone
//! ([`V2Keystone`]) serving the token documents keystoneauth's own
//! `V2Token` fixture wrote (`tests/fixtures/v2/served.json`). What the
//! application receives must be the same byte for byte; a refusal the same
//! status, `WWW-Authenticate` and JSON body. The README's v2.0 differences
//! are asserted exceptions.

use crate::harness::kmw::{
    check, check_storage_token_and_a_body, forwarded, Expect, Pair, Request,
};
use crate::harness::v2_keystone::V2Keystone;

async fn pair(v2: &V2Keystone, options: &[(&str, toml::Value)]) -> Pair {
    let mut all = vec![("auth_version", toml::Value::from("v2.0"))];
    all.extend(options.iter().cloned());
    Pair::start(v2, &all).await
}

fn header<'a>(a: &'a crate::harness::kmw::Answer, name: &str) -> Option<&'a [u8]> {
    a.forwarded.as_ref()?.get(name).map(Vec::as_slice)
}

#[tokio::test]
async fn v2_tokens_get_keystonemiddlewares_headers_byte_for_byte() {
    let v2 = V2Keystone::start().await;
    let pair = pair(&v2, &[]).await;
    for name in [
        "project",
        "project_no_catalog",
        "project_no_roles",
        "admin_role",
        "service",
    ] {
        let token = v2.token(name);
        let (sg, _) = check(
            &pair,
            name,
            Request::get("/v2.1/servers?limit=1", &[("X-Auth-Token", token)]),
            Expect::Same,
        )
        .await;
        assert!(forwarded(&sg), "{name}: not forwarded: {sg:?}");
        let catalog = header(&sg, "x-service-catalog");
        if name == "project" || name == "admin_role" {
            assert!(
                catalog.is_some_and(|c| c.starts_with(b"[{\"")),
                "{name}: {catalog:?}"
            );
        }
        if name == "project_no_catalog" {
            assert_eq!(catalog, None, "{name}");
        }
    }
    let project = v2.token("project");
    let (sg, _) = check(
        &pair,
        "project token, spelled out",
        Request::get("/", &[("X-Auth-Token", project)]),
        Expect::Same,
    )
    .await;
    // What the golden document says, so the agreement is not an empty one.
    let h = |n: &str| header(&sg, n).map(|v| String::from_utf8_lossy(v).into_owned());
    assert_eq!(h("x-user-id").as_deref(), Some("u-v2"));
    assert_eq!(h("x-user-name").as_deref(), Some("d\u{e9}mo"));
    assert_eq!(h("x-tenant-id").as_deref(), Some("t-v2"));
    assert_eq!(h("x-project-name").as_deref(), Some("demo-tenant"));
    assert_eq!(h("x-roles").as_deref(), Some("member,reader"));
    assert_eq!(h("x-is-admin-project").as_deref(), Some("True"));
    assert_eq!(h("x-user-domain-id"), None, "v2.0 has no domains");

    check_storage_token_and_a_body(&pair, project).await;

    // A service token holding the service role: X-Service-*.
    let (sg, _) = check(
        &pair,
        "project token + service token",
        Request::get(
            "/v2.1/servers",
            &[
                ("X-Auth-Token", project),
                ("X-Service-Token", v2.token("service")),
            ],
        ),
        Expect::Same,
    )
    .await;
    assert_eq!(header(&sg, "x-service-roles"), Some(&b"service"[..]));
    assert_eq!(
        header(&sg, "x-service-project-id"),
        Some(&b"service-tenant"[..])
    );

    // Refusals: the same 401, challenge and body.
    for (what, headers) in [
        (
            "service token without the service role",
            vec![
                ("X-Auth-Token", project),
                ("X-Service-Token", v2.token("service_without_service_role")),
            ],
        ),
        (
            "unknown token",
            vec![("X-Auth-Token", "0123456789abcdef0123456789abcdef")],
        ),
        ("expired token", vec![("X-Auth-Token", v2.token("expired"))]),
        // keystonemiddleware requires a tenant of every v2.0 token ("Unable
        // to determine service tenancy"), user's and service's.
        (
            "unscoped token",
            vec![("X-Auth-Token", v2.token("unscoped"))],
        ),
        (
            "unscoped service token",
            vec![
                ("X-Auth-Token", project),
                ("X-Service-Token", v2.token("unscoped")),
            ],
        ),
        ("no token", vec![]),
    ] {
        let (sg, _) = check(&pair, what, Request::get("/", &headers), Expect::Same).await;
        assert_eq!(sg.status, 401, "{what}");
    }

    // The README's difference: v2.0 has no allow_expired, so stonegate never
    // lets a service token extend an expired user token; keystonemiddleware
    // (v2.0 ignores allow_expired) forwards it.
    check(
        &pair,
        "expired user token + service token",
        Request::get(
            "/",
            &[
                ("X-Auth-Token", v2.token("expired")),
                ("X-Service-Token", v2.token("service")),
            ],
        ),
        Expect::Differs {
            why: "a service token never extends an expired v2.0 user token",
            status: Some((401, 200)),
            headers: &[],
        },
    )
    .await;

    // Both validated at the catalog's internal identity endpoint.
    let paths = v2.validations();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/internal/v2.0/tokens/")),
        "{paths:?}"
    );
    assert!(v2.auth_calls() >= 2, "each stack authenticated itself");
}

#[tokio::test]
async fn v2_without_the_catalog_and_with_roles_not_required_headers_match() {
    let v2 = V2Keystone::start().await;
    let pair = pair(
        &v2,
        &[
            ("include_service_catalog", false.into()),
            ("service_token_roles_required", false.into()),
        ],
    )
    .await;
    let (sg, _) = check(
        &pair,
        "project token without the catalog",
        Request::get("/", &[("X-Auth-Token", v2.token("project"))]),
        Expect::Same,
    )
    .await;
    assert!(forwarded(&sg));
    assert_eq!(header(&sg, "x-service-catalog"), None);
    // Roles not required: another valid service token is taken too.
    let (sg, _) = check(
        &pair,
        "service token without the service role, roles not required",
        Request::get(
            "/",
            &[
                ("X-Auth-Token", v2.token("project")),
                ("X-Service-Token", v2.token("service_without_service_role")),
            ],
        ),
        Expect::Same,
    )
    .await;
    assert_eq!(header(&sg, "x-service-roles"), Some(&b"member"[..]));
    // An expired user token stays refused by both: keystonemiddleware's
    // allow_expired needs the role check to pass.
    check(
        &pair,
        "expired user token + service token without the role",
        Request::get(
            "/",
            &[
                ("X-Auth-Token", v2.token("expired")),
                ("X-Service-Token", v2.token("service_without_service_role")),
            ],
        ),
        Expect::Same,
    )
    .await;
}

#[tokio::test]
async fn v2_delay_auth_decision_forwards_like_keystonemiddleware() {
    let v2 = V2Keystone::start().await;
    let pair = pair(&v2, &[("delay_auth_decision", true.into())]).await;
    for (what, headers) in [
        (
            "unknown token",
            vec![("X-Auth-Token", "0123456789abcdef0123456789abcdef")],
        ),
        ("no token", vec![]),
        ("valid token", vec![("X-Auth-Token", v2.token("project"))]),
        (
            "valid token + service token without the role",
            vec![
                ("X-Auth-Token", v2.token("project")),
                ("X-Service-Token", v2.token("service_without_service_role")),
            ],
        ),
    ] {
        let (sg, _) = check(&pair, what, Request::get("/", &headers), Expect::Same).await;
        assert!(forwarded(&sg), "{what}: {sg:?}");
    }
}
