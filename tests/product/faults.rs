//! How stonegate talks to Keystone, and Keystone failing: stonegate answers 503 for tokens it cannot check (never
//! 401, never forwarded), renews its own token when Keystone rejects it, and
//! is not ready while it has none.

use std::time::{Duration, Instant};

use crate::harness::{FakeKeystone, Fault, Stonegate, Upstream};

async fn assert_unavailable(resp: reqwest::Response) {
    assert_eq!(resp.status(), 503);
    assert!(
        !resp.headers().contains_key("www-authenticate"),
        "a 503 is not an auth challenge"
    );
}

#[tokio::test]
async fn keystone_timeout_answers_503_and_does_not_forward() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .option("http_request_timeout", 1)
        .option("http_request_max_retries", 0)
        .start()
        .await;
    fk.set_fault(Fault::Hang);
    let t = Instant::now();
    assert_unavailable(
        sg.get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(1))])
            .await,
    )
    .await;
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn keystone_500_answers_503() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .start()
        .await;
    fk.set_fault(Fault::Status(500));
    assert_unavailable(
        sg.get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(1))])
            .await,
    )
    .await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn keystone_failure_is_503_even_with_delay_auth_decision() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .option("delay_auth_decision", true)
        .start()
        .await;
    fk.set_fault(Fault::Status(500));
    assert_unavailable(
        sg.get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(1))])
            .await,
    )
    .await;
    assert_eq!(up.hits(), 0, "an unchecked token was forwarded");
}

#[tokio::test]
async fn keystone_unreachable_answers_503_but_cached_tokens_keep_working() {
    let mut fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .option("http_request_max_retries", 1)
        .start()
        .await;
    let cached = FakeKeystone::valid_token(1);
    assert_eq!(
        sg.get("/", &[("X-Auth-Token", &cached)]).await.status(),
        200
    );
    fk.stop();
    let t = Instant::now();
    assert_unavailable(
        sg.get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(2))])
            .await,
    )
    .await;
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        sg.get("/", &[("X-Auth-Token", &cached)]).await.status(),
        200,
        "served from cache"
    );
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn rejected_service_token_is_renewed_once_and_the_request_succeeds() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .start()
        .await;
    let auths = fk.auth_calls();
    fk.set_fault(Fault::RejectServiceTokenOnce);
    let resp = sg
        .get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(1))])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(fk.auth_calls() - auths, 1, "re-authenticated exactly once");
    assert_eq!(up.hits(), 1);
    // And the new token keeps working.
    assert_eq!(
        sg.get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(2))])
            .await
            .status(),
        200
    );
    assert_eq!(fk.auth_calls() - auths, 1);
}

#[tokio::test]
async fn not_ready_until_its_own_service_token_works() {
    let fk = FakeKeystone::start().await;
    fk.set_auth_fault(Some(401));
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .dont_wait_ready()
        .start()
        .await;
    let client = crate::harness::client();
    let ready = client.get(sg.admin_url("/readyz")).send().await.unwrap();
    assert_ne!(ready.status(), 200, "ready without a service token");
    let healthy = client.get(sg.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), 200, "alive even so");
    // Requests cannot be checked meanwhile: 503, not 401.
    assert_unavailable(
        sg.get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(1))])
            .await,
    )
    .await;

    fk.set_auth_fault(None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client.get(sg.admin_url("/readyz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 30 s after Keystone recovered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        sg.get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(1))])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn validation_uses_the_catalog_endpoint_of_the_configured_interface() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    for (interface, token) in [(None, 1), (Some("public"), 2), (Some("admin"), 3)] {
        let mut b = Stonegate::builder().keystone(&fk).upstream(&up);
        if let Some(i) = interface {
            b = b.option("interface", i);
        }
        let sg = b.start().await;
        let resp = sg
            .get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(token))])
            .await;
        assert_eq!(resp.status(), 200);
        let v = fk.last_validation();
        assert_eq!(
            v.path,
            format!("/{}/v3/auth/tokens", interface.unwrap_or("internal"))
        );
        // keystonemiddleware's request: our token, the subject, access-rules support.
        assert!(v
            .headers
            .get("x-auth-token")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("fake-service-token-"));
        assert_eq!(
            v.headers.get("x-subject-token").unwrap(),
            &FakeKeystone::valid_token(token)
        );
        assert_eq!(
            v.headers.get("openstack-identity-access-rules").unwrap(),
            "1"
        );
        // The catalog is wanted (include_service_catalog = true): no nocatalog.
        assert!(!v.query.contains("nocatalog"), "query {:?}", v.query);
    }
}

#[tokio::test]
async fn circuit_breaker_stops_calling_a_failing_keystone_and_recovers_after_cooldown() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .option("circuit_breaker_threshold", 3)
        .option("circuit_breaker_cooldown", 2)
        .start()
        .await;
    fk.set_fault(Fault::Status(500));
    // Distinct tokens: none is cached, every one needs Keystone.
    for n in 0..3 {
        assert_unavailable(
            sg.get(
                "/",
                &[("X-Auth-Token", &FakeKeystone::valid_token(100 + n))],
            )
            .await,
        )
        .await;
    }
    let calls = fk.validate_calls();
    // Open: further misses are answered 503 without calling Keystone.
    for n in 3..10 {
        assert_unavailable(
            sg.get(
                "/",
                &[("X-Auth-Token", &FakeKeystone::valid_token(100 + n))],
            )
            .await,
        )
        .await;
    }
    assert_eq!(
        fk.validate_calls(),
        calls,
        "Keystone called while the breaker was open"
    );
    assert_eq!(up.hits(), 0);

    // Keystone is back; after the cooldown stonegate recovers by itself.
    fk.set_fault(Fault::None);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let resp = sg
        .get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(1))])
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn slow_keystone_within_the_timeout_is_waited_for_beyond_it_is_503() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .option("http_request_timeout", 1)
        .start()
        .await;
    fk.set_validate_delay(Duration::from_millis(300));
    let resp = sg
        .get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(41))])
        .await;
    assert_eq!(
        resp.status(),
        200,
        "a slow but timely Keystone is waited for"
    );
    fk.set_validate_delay(Duration::from_millis(2500));
    assert_unavailable(
        sg.get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(42))])
            .await,
    )
    .await;
    assert_eq!(up.hits(), 1, "the timed-out request was not forwarded");
    // The cached token keeps working while Keystone is slow.
    let resp = sg
        .get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(41))])
        .await;
    assert_eq!(resp.status(), 200);
}
