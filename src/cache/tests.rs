//! The cache's lifetimes: an entry is served until it ends, never after, and
//! an ended entry leaves the cache.

use std::{convert::Infallible, sync::Arc, time::Duration};

use super::{Cache, Key, Outcome};
use crate::{identity::Identity, token::Fingerprint};

fn key(n: u8) -> Key {
    Key {
        fingerprint: Fingerprint([n; 32]),
        allow_expired: false,
    }
}

/// A token expiring `left` seconds from now.
fn identity(left: i64) -> Arc<Identity> {
    let fmt = time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc();
    let expires = (now + time::Duration::seconds(left)).format(&fmt).unwrap();
    let doc = format!(
        r#"{{"token": {{"methods": ["password"], "expires_at": "{expires}",
          "issued_at": "{issued}", "audit_ids": ["aaaaaaaaaaaaaaaaaaaaaa"],
          "user": {{"id": "u", "name": "n", "domain": {{"id": "default", "name": "Default"}}}}}}}}"#,
        issued = now.format(&fmt).unwrap(),
    );
    Arc::new(crate::keystone::model::parse_token(doc.as_bytes()).unwrap())
}

/// Looks `key` up, validating with `outcome` on a miss: (outcome, hit).
async fn get(cache: &Cache, key: Key, outcome: Outcome) -> (Outcome, bool) {
    cache
        .get_or_validate(key, async { Ok::<_, Infallible>(outcome) })
        .await
        .unwrap()
}

/// True when `key` is looked up without validating (a hit).
async fn hit(cache: &Cache, key: Key) -> bool {
    cache
        .get_or_validate(key, async { Err::<Outcome, _>("validated") })
        .await
        .is_ok_and(|(_, hit)| hit)
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_valid_entry_is_served_until_token_cache_time() {
    let cache = Cache::new(1 << 30, HOUR, HOUR);
    let (_, was_hit) = get(&cache, key(1), Outcome::Valid(identity(7200))).await;
    assert!(!was_hit);
    assert!(hit(&cache, key(1)).await);

    let cache = Cache::new(1 << 30, Duration::ZERO, HOUR);
    get(&cache, key(1), Outcome::Valid(identity(7200))).await;
    assert!(
        !hit(&cache, key(1)).await,
        "token_cache_time 0: never reused"
    );
}

#[tokio::test]
async fn token_cache_time_0_keeps_no_valid_token_but_still_its_refusals() {
    let cache = Cache::new(1 << 30, Duration::ZERO, HOUR);
    for _ in 0..3 {
        let (outcome, was_hit) = get(&cache, key(1), Outcome::Valid(identity(7200))).await;
        assert!(!was_hit && matches!(outcome, Outcome::Valid(_)));
    }
    cache.inner.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 0, "a valid outcome was kept");

    get(&cache, key(2), Outcome::Invalid).await;
    assert!(hit(&cache, key(2)).await, "negative_ttl still applies");
    get(&cache, key(3), Outcome::Unopened).await;
    assert!(!hit(&cache, key(3)).await);
    let down = cache
        .get_or_validate(key(4), async { Err::<Outcome, _>("Keystone down") })
        .await;
    assert!(down.is_err());
    assert!(!hit(&cache, key(4)).await, "an error was kept");
}

#[tokio::test]
async fn a_valid_entry_ends_with_its_token() {
    let cache = Cache::new(1 << 30, HOUR, HOUR);
    // Expires now: the entry has no lifetime left.
    get(&cache, key(1), Outcome::Valid(identity(0))).await;
    assert!(!hit(&cache, key(1)).await);
}

#[tokio::test]
async fn a_token_no_key_opens_is_refused_but_never_kept() {
    let cache = Cache::new(1 << 30, HOUR, HOUR);
    let (outcome, was_hit) = get(&cache, key(1), Outcome::Unopened).await;
    assert!(!was_hit);
    assert!(matches!(outcome, Outcome::Invalid | Outcome::Unopened));
    assert!(
        !hit(&cache, key(1)).await,
        "a refusal the keys' lag may explain was served again"
    );
}

#[tokio::test]
async fn an_invalid_entry_lives_negative_ttl() {
    let cache = Cache::new(1 << 30, HOUR, HOUR);
    get(&cache, key(1), Outcome::Invalid).await;
    assert!(hit(&cache, key(1)).await);

    let cache = Cache::new(1 << 30, HOUR, Duration::ZERO);
    get(&cache, key(1), Outcome::Invalid).await;
    assert!(!hit(&cache, key(1)).await, "negative_ttl 0: never reused");
}

#[tokio::test]
async fn a_shared_entry_lives_no_longer_than_the_shared_one() {
    let cache = Cache::new(1 << 30, HOUR, HOUR);
    get(&cache, key(1), Outcome::Shared(identity(7200), HOUR)).await;
    assert!(hit(&cache, key(1)).await);
    get(
        &cache,
        key(2),
        Outcome::Shared(identity(7200), Duration::ZERO),
    )
    .await;
    assert!(!hit(&cache, key(2)).await);
}

#[tokio::test]
async fn an_ended_entry_is_validated_again_and_leaves_the_cache() {
    let cache = Cache::new(1 << 30, HOUR, Duration::from_millis(20));
    get(&cache, key(1), Outcome::Invalid).await;
    std::thread::sleep(Duration::from_millis(30));
    // Ended: validated again, and the error is not cached...
    let again = cache
        .get_or_validate(key(1), async { Err::<Outcome, _>("Keystone down") })
        .await;
    assert!(again.is_err());
    // ...nor is the ended entry still there.
    let (outcome, was_hit) = get(&cache, key(1), Outcome::Valid(identity(7200))).await;
    assert!(!was_hit);
    assert!(matches!(outcome, Outcome::Valid(_)));
    assert!(hit(&cache, key(1)).await);
}

#[tokio::test]
async fn a_shared_entry_is_served_as_shared() {
    let cache = Cache::new(1 << 30, HOUR, HOUR);
    get(&cache, key(1), Outcome::Shared(identity(7200), HOUR)).await;
    let (outcome, was_hit) = get(&cache, key(1), Outcome::Invalid).await;
    assert!(was_hit);
    assert!(matches!(outcome, Outcome::Shared(_, left) if left <= HOUR));
}

#[test]
fn an_entry_is_sixteen_bytes() {
    // What moka holds per entry besides its own nodes (issue 16).
    assert_eq!(std::mem::size_of::<super::Entry>(), 16);
}

/// Keys the cache hashes alike (the same first 8 bytes of fingerprint, or
/// the same fingerprint with and without `allow_expired`) are still
/// different entries: each is validated on its own and served its own
/// outcome, never another's.
#[tokio::test]
async fn keys_that_hash_alike_are_still_different_entries() {
    let cache = Cache::new(1 << 20, Duration::from_secs(60), Duration::from_secs(60));
    let mut other = [7u8; 32];
    other[31] = 8;
    let a = key(7);
    let b = Key {
        fingerprint: Fingerprint(other),
        allow_expired: false,
    };
    let expired = Key {
        allow_expired: true,
        ..a
    };
    assert!(!get(&cache, a, Outcome::Valid(identity(600))).await.1);
    assert!(matches!(
        get(&cache, b, Outcome::Invalid).await,
        (Outcome::Invalid, false)
    ));
    assert!(matches!(
        get(&cache, expired, Outcome::Invalid).await,
        (Outcome::Invalid, false)
    ));
    assert!(matches!(
        get(&cache, a, Outcome::Invalid).await,
        (Outcome::Valid(_), true)
    ));
    assert!(matches!(
        get(&cache, b, Outcome::Valid(identity(600))).await,
        (Outcome::Invalid, true)
    ));
}
