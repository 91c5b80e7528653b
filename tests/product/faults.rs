//! How stonegate talks to Keystone, and Keystone failing: stonegate answers 503 for tokens it cannot check (never
//! 401, never forwarded), renews its own token when Keystone rejects it, and
//! is not ready while it has none.

use std::time::{Duration, Instant};

use crate::harness::{FakeKeystone, Fault, Stonegate, Upstream};

/// The README's 503: `Retry-After: 5`, no challenge, the JSON error body.
pub(crate) async fn assert_unavailable(resp: reqwest::Response) {
    assert_eq!(resp.status(), 503);
    assert!(
        !resp.headers().contains_key("www-authenticate"),
        "a 503 is not an auth challenge"
    );
    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..]),
        "Retry-After: 5"
    );
    assert_error_body(resp, 503, "Service Unavailable").await;
}

/// `{"error": {"code": status, "title": title, "message": <text>}}` as
/// `application/json`, nothing else.
pub(crate) async fn assert_error_body(resp: reqwest::Response, status: u16, title: &str) {
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], status, "{body}");
    assert_eq!(body["error"]["title"], title, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["error"].as_object().unwrap().len(), 3, "{body}");
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

/// Keystone rejects stonegate's own token, and then the fresh one too: the
/// second 401 is a 503 for the client (never a 401: the client's token was
/// not judged), after exactly one re-authentication.
#[tokio::test]
async fn a_second_401_for_stonegates_own_token_is_a_503() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .start()
        .await;
    let auths = fk.auth_calls();
    fk.set_fault(Fault::Status(401));
    assert_unavailable(
        sg.get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(1))])
            .await,
    )
    .await;
    assert_eq!(fk.auth_calls() - auths, 1, "re-authenticated exactly once");
    assert_eq!(up.hits(), 0);
}

/// stonegate's own token is renewed 120 s before it expires (keystoneauth's
/// rule), before it is used, not after Keystone refuses it.
#[tokio::test]
async fn the_service_token_is_renewed_120_s_before_expiry() {
    let fk = FakeKeystone::start().await;
    // Issued now, expiring in 128 s: due for renewal 8 s from now.
    fk.set_service_token_lifetime(Duration::from_secs(128));
    let issued = Instant::now();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .start()
        .await;
    let auths = fk.auth_calls();
    let first = fk.last_validation_token_after(&sg, 1).await;
    assert!(
        issued.elapsed() < Duration::from_secs(7),
        "the machine is too slow for this test's first window ({:?})",
        issued.elapsed()
    );
    assert_eq!(fk.auth_calls(), auths, "renewed while still fresh");
    // Once fewer than 120 s are left, the next use renews first.
    fk.set_service_token_lifetime(Duration::from_secs(3600));
    let due = Duration::from_secs(8) + Duration::from_millis(500);
    tokio::time::sleep(due.saturating_sub(issued.elapsed())).await;
    let second = fk.last_validation_token_after(&sg, 2).await;
    assert_eq!(fk.auth_calls(), auths + 1, "renewed once");
    assert_ne!(first, second, "the validation used the renewed token");
    assert_eq!(up.hits(), 2);
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
