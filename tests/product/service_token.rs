//! `X-Service-Token`: validated too, sets the `X-Service-*` identity, must hold
//! one of `service_token_roles`, and lets an expired user token through within
//! Keystone's allow_expired window.

use std::time::{Duration, SystemTime};

use crate::harness::keystone::{assert_headers, expected_service_headers, expected_user_headers};
use crate::harness::{Keystone, Stonegate, Upstream};

#[tokio::test]
async fn service_token_with_service_role_sets_service_identity_headers() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let user = ks.demo_token().await;
    let service = ks.svc_token().await;
    let resp = sg
        .get(
            "/",
            &[("X-Auth-Token", &user), ("X-Service-Token", &service)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_headers(
        &seen.headers,
        &expected_user_headers(&ks.validate(&user).await),
    );
    assert_headers(
        &seen.headers,
        &expected_service_headers(&ks.validate(&service).await),
    );
    assert_eq!(seen.header("x-service-user-name").as_deref(), Some("svc"));
    assert_eq!(
        seen.header("x-service-project-name").as_deref(),
        Some("service")
    );
    assert_eq!(
        seen.header("x-service-token").as_deref(),
        Some(service.as_str())
    );
    assert_eq!(seen.header("x-auth-token").as_deref(), Some(user.as_str()));
}

#[tokio::test]
async fn service_token_without_a_service_role_is_rejected() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let user = ks.demo_token().await;
    // demo holds member + reader, not "service".
    let not_a_service = ks
        .token("demo", crate::harness::Scope::Domain("demo-domain"))
        .await;
    let resp = sg
        .get(
            "/",
            &[("X-Auth-Token", &user), ("X-Service-Token", &not_a_service)],
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let garbage = sg
        .get(
            "/",
            &[("X-Auth-Token", &user), ("X-Service-Token", "garbage")],
        )
        .await;
    assert_eq!(garbage.status(), 401);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn service_token_roles_are_not_required_when_configured_so() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("service_token_roles_required", false)
        .start()
        .await;
    let user = ks.demo_token().await;
    let other = ks
        .token("demo", crate::harness::Scope::Domain("demo-domain"))
        .await;
    let resp = sg
        .get("/", &[("X-Auth-Token", &user), ("X-Service-Token", &other)])
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(
        seen.header("x-service-identity-status").as_deref(),
        Some("Confirmed")
    );
    assert_eq!(
        seen.header("x-service-domain-name").as_deref(),
        Some("demo-domain")
    );
}

#[tokio::test]
async fn invalid_service_token_is_marked_invalid_under_delay_auth_decision() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("delay_auth_decision", true)
        .start()
        .await;
    let user = ks.demo_token().await;
    let resp = sg
        .get(
            "/",
            &[("X-Auth-Token", &user), ("X-Service-Token", "garbage")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(
        seen.header("x-service-identity-status").as_deref(),
        Some("Invalid")
    );
    assert!(seen.header("x-service-user-id").is_none());
}

#[tokio::test]
async fn expired_user_token_is_accepted_with_a_service_token_within_allow_expired() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let (token, expires_at) = ks.short_lived_token(Duration::from_secs(3)).await;
    let service = ks.svc_token().await;
    let wait = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + Duration::from_millis(1100);
    tokio::time::sleep(wait).await;
    assert_eq!(
        ks.validate_raw(&token, false).await.0,
        404,
        "expired for Keystone"
    );
    assert_eq!(
        ks.validate_raw(&token, true).await.0,
        200,
        "inside allow_expired"
    );

    // With a valid service token holding "service": forwarded with the user's identity.
    let resp = sg
        .get(
            "/",
            &[("X-Auth-Token", &token), ("X-Service-Token", &service)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(
        seen.header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
    assert_eq!(seen.header("x-user-name").as_deref(), Some("revokee"));
    assert_eq!(
        seen.header("x-service-identity-status").as_deref(),
        Some("Confirmed")
    );

    // The same token alone must not be served from that cache entry.
    let alone = sg.get("/", &[("X-Auth-Token", &token)]).await;
    assert_eq!(
        alone.status(),
        401,
        "an allow_expired result leaked into the ordinary cache"
    );
    // Nor with a service token lacking the role.
    let weak = ks
        .token("demo", crate::harness::Scope::Domain("demo-domain"))
        .await;
    let resp = sg
        .get("/", &[("X-Auth-Token", &token), ("X-Service-Token", &weak)])
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(up.hits(), 1);
}
