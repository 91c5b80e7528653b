//! The token cache, counted at an in-process fake Keystone: one validation per
//! token while cached (also for concurrent first requests), a short negative
//! entry for invalid tokens, and no entry at all for Keystone's errors.

use std::time::Duration;

use crate::harness::{FakeKeystone, Fault, Stonegate, Upstream};

#[tokio::test]
async fn repeated_requests_with_one_token_cost_one_keystone_validation() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .start()
        .await;
    let base = fk.validate_calls();
    let token = FakeKeystone::valid_token(1);
    for _ in 0..10 {
        assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    }
    assert_eq!(fk.validate_calls() - base, 1);
    assert_eq!(up.hits(), 10);
    assert_eq!(
        up.last().header("x-user-name").as_deref(),
        Some("fake-user")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_first_requests_cost_one_keystone_validation() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .start()
        .await;
    let base = fk.validate_calls();
    // Keystone answers slowly, so all 50 requests wait on the same validation.
    fk.set_validate_delay(Duration::from_millis(500));
    let token = FakeKeystone::valid_token(2);
    let client = crate::harness::client();
    let requests = (0..50).map(|_| {
        client
            .get(sg.url("/concurrent"))
            .header("X-Auth-Token", &token)
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    for r in responses {
        assert_eq!(r.unwrap().status(), 200);
    }
    assert_eq!(
        fk.validate_calls() - base,
        1,
        "single flight: one Keystone call for 50 requests"
    );
    assert_eq!(up.hits(), 50);
}

#[tokio::test]
async fn invalid_token_is_cached_negatively_for_negative_ttl() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .cache_option("negative_ttl", 1)
        .start()
        .await;
    let base = fk.validate_calls();
    for _ in 0..10 {
        assert_eq!(
            sg.get("/", &[("X-Auth-Token", "fake-invalid-1")])
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        fk.validate_calls() - base,
        1,
        "a flood of one bad token costs one call"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        sg.get("/", &[("X-Auth-Token", "fake-invalid-1")])
            .await
            .status(),
        401
    );
    assert_eq!(fk.validate_calls() - base, 2, "the negative entry expired");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn keystone_errors_are_never_cached() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .option("http_request_max_retries", 0)
        .start()
        .await;
    let token = FakeKeystone::valid_token(3);
    fk.set_fault(Fault::Status(500));
    assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 503);
    fk.set_fault(Fault::None);
    assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn token_cache_time_minus_one_validates_every_request_with_keystone() {
    let ks = crate::harness::Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("token_cache_time", -1)
        .start()
        .await;
    let token = ks.demo_token().await;
    let before = crate::local::validate_calls(&sg).await;
    for _ in 0..3 {
        assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    }
    assert_eq!(
        crate::local::validate_calls(&sg).await - before,
        3.0,
        "keystonemiddleware's -1: nothing is cached"
    );
}
