//! A valid token reaches the upstream with exactly the identity headers
//! keystonemiddleware would set, value by value against Keystone's own
//! validation response, for every kind of token the real Keystone issues.

use crate::harness::keystone::{assert_headers, expected_user_headers, v2_catalog};
use crate::harness::upstream::Seen;
use crate::harness::{fingerprint, Keystone, Scope, Stonegate, Upstream, IDENTITY_HEADERS};
use serde_json::Value;

/// Sends one GET through a fresh stonegate with `token` in `header`; returns
/// what the upstream saw and Keystone's own validation of the token.
async fn through_stonegate(ks: &Keystone, header: &str, token: &str) -> (Seen, Value) {
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .start()
        .await;
    let resp = sg.get("/v2.1/servers?limit=1", &[(header, token)]).await;
    let status = resp.status();
    assert_eq!(
        status,
        200,
        "body: {}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(up.hits(), 1);
    let seen = up.last();
    assert_eq!(seen.method, http::Method::GET);
    assert_eq!(seen.uri.path(), "/v2.1/servers");
    assert_eq!(seen.uri.query(), Some("limit=1"));
    (seen, ks.validate(token).await)
}

/// The user headers match Keystone's validation; no service identity appears.
fn assert_user_identity(seen: &Seen, token: &Value) {
    assert_headers(&seen.headers, &expected_user_headers(token));
    for name in IDENTITY_HEADERS
        .iter()
        .filter(|n| n.starts_with("x-service-") && **n != "x-service-catalog")
    {
        assert!(
            seen.header(name).is_none(),
            "{name} set without a service token"
        );
    }
}

#[tokio::test]
async fn valid_project_token_reaches_upstream_with_keystone_identity() {
    let ks = Keystone::from_env();
    let token = ks.demo_token().await;
    let (seen, body) = through_stonegate(&ks, "X-Auth-Token", &token).await;
    assert_user_identity(&seen, &body);

    // The fields users rely on, spelled out against the fixtures too.
    assert_eq!(
        seen.header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
    assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
    assert_eq!(seen.header("x-user-name").as_deref(), Some("demo"));
    assert_eq!(seen.header("x-project-id"), Some(ks.project_id("demo")));
    assert_eq!(seen.header("x-project-name").as_deref(), Some("demo"));
    assert_eq!(
        seen.header("x-tenant").as_deref(),
        Some("demo"),
        "X-Tenant is the project NAME"
    );
    assert_eq!(seen.header("x-user").as_deref(), Some("demo"));
    let roles = seen.header("x-roles").unwrap();
    let mut sorted: Vec<&str> = roles.split(',').collect();
    sorted.sort_unstable();
    assert_eq!(sorted, ["member", "reader"]);
    assert_eq!(seen.header("x-is-admin-project").as_deref(), Some("True"));

    // The token itself is forwarded unchanged.
    assert_eq!(seen.header("x-auth-token").as_deref(), Some(token.as_str()));

    // X-Service-Catalog: the v2 shape of Keystone's catalog, Python json.dumps style.
    let catalog = seen
        .header("x-service-catalog")
        .expect("X-Service-Catalog is set");
    let parsed: Value = serde_json::from_str(&catalog).expect("X-Service-Catalog is JSON");
    assert_eq!(parsed, v2_catalog(&body));
    assert!(
        catalog.contains("\": \"") && !catalog.contains("\":\""),
        "json.dumps separators: {catalog}"
    );
    assert!(parsed
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["type"] == "identity"));
}

#[tokio::test]
async fn service_catalog_is_omitted_when_include_service_catalog_is_false() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("include_service_catalog", false)
        .start()
        .await;
    let token = ks.demo_token().await;
    let resp = sg.get("/", &[("X-Auth-Token", &token)]).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert!(seen.header("x-service-catalog").is_none());
    assert_eq!(
        seen.header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
}

#[tokio::test]
async fn project_in_another_domain_reports_the_project_domain() {
    let ks = Keystone::from_env();
    let token = ks
        .token("demo", Scope::ProjectIn("demo-alt", "demo-domain"))
        .await;
    let (seen, body) = through_stonegate(&ks, "X-Auth-Token", &token).await;
    assert_user_identity(&seen, &body);
    assert_eq!(
        seen.header("x-project-domain-name").as_deref(),
        Some("demo-domain")
    );
    assert_eq!(seen.header("x-user-domain-id").as_deref(), Some("default"));
}

#[tokio::test]
async fn unscoped_token_has_empty_roles_and_no_project() {
    let ks = Keystone::from_env();
    let token = ks.token("demo", Scope::Unscoped).await;
    let (seen, body) = through_stonegate(&ks, "X-Auth-Token", &token).await;
    assert_user_identity(&seen, &body);
    assert_eq!(
        seen.header("x-roles").as_deref(),
        Some(""),
        "X-Roles is present and empty"
    );
    for name in [
        "x-project-id",
        "x-project-name",
        "x-tenant-id",
        "x-tenant",
        "x-domain-id",
        "x-service-catalog",
    ] {
        assert!(seen.header(name).is_none(), "{name} on an unscoped token");
    }
}

#[tokio::test]
async fn domain_scoped_token_sets_domain_headers() {
    let ks = Keystone::from_env();
    let token = ks.token("demo", Scope::Domain("demo-domain")).await;
    let (seen, body) = through_stonegate(&ks, "X-Auth-Token", &token).await;
    assert_user_identity(&seen, &body);
    assert_eq!(
        seen.header("x-domain-id").as_deref(),
        ks.fixtures()["domains"]["demo-domain"].as_str()
    );
    assert_eq!(seen.header("x-domain-name").as_deref(), Some("demo-domain"));
    assert!(seen.header("x-project-id").is_none());
}

#[tokio::test]
async fn system_scoped_token_sets_openstack_system_scope() {
    let ks = Keystone::from_env();
    let token = ks.token("admin", Scope::System).await;
    let (seen, body) = through_stonegate(&ks, "X-Auth-Token", &token).await;
    assert_user_identity(&seen, &body);
    assert_eq!(
        seen.header("openstack-system-scope").as_deref(),
        Some("all")
    );
    assert!(seen.header("x-project-id").is_none());
    assert!(seen.header("x-domain-id").is_none());
}

#[tokio::test]
async fn application_credential_token_carries_the_credential_roles() {
    let ks = Keystone::from_env();
    let token = ks.app_cred_token("unrestricted").await;
    let (seen, body) = through_stonegate(&ks, "X-Auth-Token", &token).await;
    assert_user_identity(&seen, &body);
    assert_eq!(seen.header("x-user-name").as_deref(), Some("demo"));
    assert_eq!(seen.header("x-roles").as_deref(), Some("reader"));
}

#[tokio::test]
async fn access_rule_token_only_reaches_what_its_rules_allow() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.app_cred_token("access_rules").await;
    // The rule: compute, GET /v2.1/servers.
    let ok = sg.get("/v2.1/servers", &[("X-Auth-Token", &token)]).await;
    assert_eq!(ok.status(), 200);
    let other_path = sg.get("/v2.1/flavors", &[("X-Auth-Token", &token)]).await;
    assert_eq!(other_path.status(), 401);
    let other_method = crate::harness::client()
        .delete(sg.url("/v2.1/servers"))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(other_method.status(), 401);
    assert_eq!(up.hits(), 1, "only the allowed request was forwarded");
}

/// A service token lifts an access-rule token's rules only when it is valid:
/// an invalid one refuses the request (401) whatever the path.
#[tokio::test]
async fn access_rules_are_lifted_by_a_valid_service_token_only() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.app_cred_token("access_rules").await;
    let svc = ks.svc_token().await;
    for bad in ["garbage", "gAAAAABnot-a-token", &ks.demo_token().await] {
        let outside = sg
            .get(
                "/v2.1/flavors",
                &[("X-Auth-Token", &token), ("X-Service-Token", bad)],
            )
            .await;
        assert_eq!(
            outside.status(),
            401,
            "an invalid service token lifted the rules"
        );
    }
    assert_eq!(up.hits(), 0);
    let lifted = sg
        .get(
            "/v2.1/flavors",
            &[("X-Auth-Token", &token), ("X-Service-Token", &svc)],
        )
        .await;
    assert_eq!(lifted.status(), 200);
    assert_eq!(
        up.last().header("x-service-identity-status").as_deref(),
        Some("Confirmed")
    );
}

/// Without `service_type` stonegate cannot tell which rules apply: a token
/// with access rules is refused even on the path its rules allow; a token
/// without rules is not affected.
#[tokio::test]
async fn access_rule_tokens_are_refused_while_service_type_is_unset() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .unset_option("service_type")
        .start()
        .await;
    assert!(!std::fs::read_to_string(&sg.config)
        .unwrap()
        .contains("service_type"));
    let token = ks.app_cred_token("access_rules").await;
    let allowed = sg.get("/v2.1/servers", &[("X-Auth-Token", &token)]).await;
    assert_eq!(allowed.status(), 401);
    assert_eq!(up.hits(), 0);
    let plain = ks.app_cred_token("unrestricted").await;
    assert_eq!(
        sg.get("/v2.1/servers", &[("X-Auth-Token", &plain)])
            .await
            .status(),
        200
    );
    assert_eq!(
        sg.get("/v2.1/servers", &[("X-Auth-Token", &ks.demo_token().await)])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn trust_token_reaches_upstream_as_the_trustee_on_the_trust_project() {
    let ks = Keystone::from_env();
    let token = ks.trust_token().await;
    let (seen, body) = through_stonegate(&ks, "X-Auth-Token", &token).await;
    assert_user_identity(&seen, &body);
    assert_eq!(seen.header("x-user-name").as_deref(), Some("trustee"));
    assert_eq!(seen.header("x-project-name").as_deref(), Some("demo"));
    // The trust delegates member; Keystone adds the roles member implies (reader).
    let roles = seen.header("x-roles").unwrap();
    assert!(roles.split(',').any(|r| r == "member"), "X-Roles {roles}");
}

#[tokio::test]
async fn x_storage_token_is_accepted_like_x_auth_token() {
    let ks = Keystone::from_env();
    let token = ks.demo_token().await;
    let (seen, body) = through_stonegate(&ks, "X-Storage-Token", &token).await;
    assert_user_identity(&seen, &body);
    assert_eq!(
        seen.header("x-storage-token").as_deref(),
        Some(token.as_str())
    );
}

#[tokio::test]
async fn tokens_never_appear_in_logs_or_metrics() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .log_filter("trace")
        .start()
        .await;
    let user = ks.demo_token().await;
    let service = ks.svc_token().await;
    let bogus = "gAAAAABbogus-token-that-must-not-be-logged-0123456789";
    let resp = sg
        .get(
            "/",
            &[("X-Auth-Token", &user), ("X-Service-Token", &service)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(sg.get("/", &[("X-Auth-Token", bogus)]).await.status(), 401);
    let metrics = crate::harness::client()
        .get(sg.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Wait for the access log lines of exactly these two requests (a
    // condition, not a sleep): they name each token by its SHA-256 prefix.
    let user_line = format!("token=\"{}\"", fingerprint(&user));
    // The refusal's line names no token at all.
    let bogus_line = "status=401 outcome=\"unauthorized\"";
    sg.log_with(&user_line).await;
    let log = sg.log_with(bogus_line).await;
    let line_of = |needle: &str| {
        log.lines()
            .find(|l| l.contains("stonegate::access") && l.contains(needle))
            .unwrap_or_else(|| panic!("no access log line with {needle}:\n{log}"))
            .to_owned()
    };
    let ok = line_of(&user_line);
    assert!(ok.contains("status=200"), "{ok}");
    let refused = line_of(bogus_line);
    assert!(!refused.contains(&fingerprint(&user)), "{refused}");
    for (what, token) in [
        ("user token", user.as_str()),
        ("service token", &service),
        ("invalid token", bogus),
    ] {
        // Even a long fragment of a token is a leak.
        let fragment = &token[token.len() / 4..token.len() * 3 / 4];
        assert!(
            !log.contains(fragment),
            "the {what} appears in stonegate's log"
        );
        assert!(
            !metrics.contains(fragment),
            "the {what} appears in /metrics"
        );
    }
    // Nor stonegate's own password, which it sent to Keystone.
    let password = ks.password("svc");
    assert!(
        !log.contains(&password),
        "the service password appears in the log"
    );
    assert!(!metrics.contains(&password));
}
