//! The token cache (moka): `Fingerprint → Outcome`, never the token itself.
//!
//! A valid entry lives min(`token_cache_time`, the token's expiry); an invalid
//! one (Keystone said 404) lives `negative_ttl`; Keystone errors are never
//! stored. Concurrent misses for one key share one validation (moka's
//! single-flight `or_try_insert_with`). Capacity is bounded in bytes: each
//! entry weighs what it holds (`weigh`, with moka's own overhead).

pub mod settings;

use std::{future::Future, sync::Arc, time::Duration};

use moka::{future::Cache as Moka, Expiry};

use crate::{identity::Identity, token::Fingerprint};

pub use settings::{Section, Settings};

/// What the cache remembers about a token.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Valid, with its identity.
    Valid(Arc<Identity>),
    /// Valid, read from the shared cache whose entry ends after the
    /// duration: the local entry ends no later, so that a result is reused
    /// nowhere longer than `token_cache_time` after Keystone gave it.
    Shared(Arc<Identity>, Duration),
    /// Keystone rejected it.
    Invalid,
}

/// Cache key: the token's hash and whether it was validated with
/// `allow_expired` (such results are never served to ordinary requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// SHA-256 of the token.
    pub fingerprint: Fingerprint,
    /// Validated with `allow_expired=1`.
    pub allow_expired: bool,
}

/// Bounded, expiring token cache.
#[derive(Clone)]
pub struct Cache {
    inner: Moka<Key, Outcome>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

struct Lifetimes {
    valid: Duration,
    invalid: Duration,
}

impl Expiry<Key, Outcome> for Lifetimes {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Outcome,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(match value {
            Outcome::Invalid => self.invalid,
            Outcome::Valid(id) => self.valid.min(id.lifetime_left(crate::clock::now())),
            Outcome::Shared(id, shared_left) => self
                .valid
                .min(id.lifetime_left(crate::clock::now()))
                .min(*shared_left),
        })
    }
}

/// What an entry costs beyond [`Identity::held_bytes`]: moka's own (hash
/// bucket, entry, access and write deque nodes, timer-wheel node, key
/// copies; 389 bytes measured as RSS per entry in the cache minus the same
/// identities held in a `Vec`) and the allocator's slack around identities
/// parsed one after another (~90 bytes: 919 measured against 800 held).
/// `tools/src/bin/cache_memory.rs` (300,000 entries) measures both; the
/// weigher is then within 3% of the resident memory per entry.
const ENTRY_OVERHEAD: usize = 480;

/// Heap bytes of an entry: moka's own plus what the identity holds alone
/// ([`Identity::held_bytes`], its rendered header block included).
fn weigh(_key: &Key, value: &Outcome) -> u32 {
    let size = ENTRY_OVERHEAD
        + match value {
            Outcome::Invalid => 0,
            Outcome::Valid(id) | Outcome::Shared(id, _) => id.held_bytes(),
        };
    u32::try_from(size).unwrap_or(u32::MAX)
}

impl Cache {
    /// A cache bounded to `capacity_bytes`, valid entries living at most
    /// `valid_ttl`, invalid ones `invalid_ttl`.
    pub fn new(capacity_bytes: u64, valid_ttl: Duration, invalid_ttl: Duration) -> Self {
        Self {
            inner: Moka::builder()
                .max_capacity(capacity_bytes)
                .weigher(weigh)
                .expire_after(Lifetimes {
                    valid: valid_ttl,
                    invalid: invalid_ttl,
                })
                .build(),
        }
    }

    /// The cached outcome for `key`, or the result of `validate` (run once for
    /// all concurrent callers of the same key). Errors are returned, not cached.
    /// The boolean is true on a cache hit.
    pub async fn get_or_validate<F, E>(
        &self,
        key: Key,
        validate: F,
    ) -> Result<(Outcome, bool), Arc<E>>
    where
        F: Future<Output = Result<Outcome, E>>,
        E: Send + Sync + 'static,
    {
        let entry = self.inner.entry(key).or_try_insert_with(validate).await?;
        let fresh = entry.is_fresh();
        Ok((entry.into_value(), !fresh))
    }

    /// Drops one entry (used when a cached identity turns out unusable).
    pub async fn invalidate(&self, key: &Key) {
        self.inner.invalidate(key).await;
    }

    /// Number of entries (approximate).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Estimated bytes held.
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }
}
