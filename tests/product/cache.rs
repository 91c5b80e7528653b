//! The token cache: one validation per token while cached, a short negative
//! entry for invalid tokens (both against the real Keystone, counted by
//! stonegate's `stonegate_keystone_requests_total`), and, with the fake
//! Keystone's faults, one validation for concurrent first requests while
//! Keystone is slow and no entry at all for Keystone's errors.

use std::time::{Duration, Instant};

use crate::harness::{FakeKeystone, Fault, Keystone, Stonegate, Upstream};
use crate::local::validate_calls;

#[tokio::test]
async fn repeated_requests_with_one_token_cost_one_keystone_validation() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let base = validate_calls(&sg).await;
    let token = ks.demo_token().await;
    for _ in 0..10 {
        assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    }
    assert_eq!(validate_calls(&sg).await - base, 1.0);
    assert_eq!(up.hits(), 10);
    assert_eq!(up.last().header("x-user-name").as_deref(), Some("demo"));
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
    // The fault: Keystone answers slowly, so all 50 requests wait on the
    // same validation.
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
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .cache_option("negative_ttl", 1)
        .start()
        .await;
    // A token Keystone answers 404 for.
    let bad = "not-a-token-keystone-ever-issued";
    let base = validate_calls(&sg).await;
    let cached_at = Instant::now();
    for _ in 0..10 {
        assert_eq!(sg.get("/", &[("X-Auth-Token", bad)]).await.status(), 401);
    }
    assert_eq!(
        validate_calls(&sg).await - base,
        1.0,
        "a flood of one bad token costs one call"
    );
    // The entry ends after negative_ttl: the next request goes to Keystone
    // again, not before 1 s and well within 3 s.
    loop {
        assert_eq!(sg.get("/", &[("X-Auth-Token", bad)]).await.status(), 401);
        if validate_calls(&sg).await - base >= 2.0 {
            break;
        }
        assert!(
            cached_at.elapsed() < Duration::from_secs(3),
            "the negative entry never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        cached_at.elapsed() >= Duration::from_secs(1),
        "expired before negative_ttl"
    );
    assert_eq!(validate_calls(&sg).await - base, 2.0);
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
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("token_cache_time", -1)
        .start()
        .await;
    let token = ks.demo_token().await;
    let before = validate_calls(&sg).await;
    for _ in 0..3 {
        assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    }
    assert_eq!(
        validate_calls(&sg).await - before,
        3.0,
        "keystonemiddleware's -1: nothing is cached"
    );
}
