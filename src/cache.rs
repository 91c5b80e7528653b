//! The token cache (moka): `Fingerprint → Outcome`, never the token itself.
//!
//! A valid entry lives min(`token_cache_time`, the token's expiry); an invalid
//! one (Keystone said 404) lives `negative_ttl`; Keystone errors are never
//! stored. Concurrent misses for one key share one validation (moka's
//! single-flight `or_try_insert_with`). Capacity is bounded in bytes: each
//! entry weighs what it holds (`weigh`, with moka's own overhead).
//!
//! An entry's lifetime is kept in the entry (the instant it ends, checked on
//! every read: an ended entry is never served, it is removed and the token
//! validated again) rather than in a per-entry moka timer, whose timer-wheel
//! node cost ~100 bytes per entry (issue 16). Moka's `time_to_live`, the
//! longest lifetime an entry can have, removes ended entries nobody reads.

pub mod settings;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use moka::{future::Cache as Moka, ops::compute::Op};

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
    /// Refused because no key stonegate holds opens it, which its keys
    /// lagging Keystone's would also explain: it answers the lookups it was
    /// made for and is not kept, so the token is tried again, with the keys
    /// of the next reload, on its next request.
    Unopened,
}

/// Cache key: the token's hash and whether it was validated with
/// `allow_expired` (such results are never served to ordinary requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// SHA-256 of the token.
    pub fingerprint: Fingerprint,
    /// Validated with `allow_expired=1`.
    pub allow_expired: bool,
}

/// Feeds the cache's hasher (moka's `RandomState`, a keyed SipHash) one
/// word: the first 8 bytes of the fingerprint, the flag in its lowest bit.
/// A SHA-256 is already uniform, so hashing all 33 bytes of the key buys
/// nothing but the time (a third of a cache hit's lookup); the keyed hash
/// still keeps a client from choosing tokens that collide in the table,
/// and equal hashes are told apart by the whole key.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.fingerprint.0;
        let word = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
        state.write_u64((word & !1) | u64::from(self.allow_expired));
    }
}

/// Bounded, expiring token cache.
#[derive(Clone)]
pub struct Cache {
    inner: Moka<Key, Entry>,
    lifetimes: Lifetimes,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

/// A cached outcome, 16 bytes: the identity (none: invalid) and when the
/// entry ends, in milliseconds since the cache was made, the top bit telling
/// a shared-cache result (`Outcome::Shared`) from Keystone's own.
#[derive(Debug, Clone)]
struct Entry {
    identity: Option<Arc<Identity>>,
    until: u64,
}

/// The bit of [`Entry::until`] set for `Outcome::Shared`.
const SHARED: u64 = 1 << 63;

impl Entry {
    /// Milliseconds since the cache's `base` (saturating).
    fn ms(base: Instant, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(base).as_millis()).unwrap_or(SHARED - 1)
    }

    /// The entry of `outcome`, served for `lifetime` from `now`.
    fn new(outcome: Outcome, base: Instant, now: Instant, lifetime: Duration) -> Self {
        let lifetime = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        let until = Self::ms(base, now).saturating_add(lifetime).min(SHARED - 1);
        match outcome {
            Outcome::Valid(id) => Self {
                identity: Some(id),
                until,
            },
            Outcome::Shared(id, _) => Self {
                identity: Some(id),
                until: until | SHARED,
            },
            Outcome::Invalid | Outcome::Unopened => Self {
                identity: None,
                until,
            },
        }
    }

    /// Still served at `now`: strictly before its end, so an entry of zero
    /// lifetime serves only the validation that made it.
    fn live(&self, base: Instant, now: Instant) -> bool {
        Self::ms(base, now) < self.until & !SHARED
    }

    /// The outcome it holds (a shared one with the time it has left).
    fn outcome(self, base: Instant, now: Instant) -> Outcome {
        match self.identity {
            None => Outcome::Invalid,
            Some(id) if self.until & SHARED == 0 => Outcome::Valid(id),
            Some(id) => {
                let left = (self.until & !SHARED).saturating_sub(Self::ms(base, now));
                Outcome::Shared(id, Duration::from_millis(left))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Lifetimes {
    valid: Duration,
    invalid: Duration,
    /// The instant entries count their end from.
    base: Instant,
}

impl Lifetimes {
    /// How long `value` may be served from now (`now_unix`: the Unix time).
    fn of(&self, value: &Outcome, now_unix: i64) -> Duration {
        match value {
            Outcome::Invalid => self.invalid,
            Outcome::Unopened => Duration::ZERO,
            Outcome::Valid(id) => self.valid.min(id.lifetime_left(now_unix)),
            Outcome::Shared(id, shared_left) => {
                self.valid.min(id.lifetime_left(now_unix)).min(*shared_left)
            }
        }
    }

    /// The entry of `outcome`, made now.
    fn entry(&self, outcome: Outcome) -> Entry {
        let lifetime = self.of(&outcome, crate::clock::now());
        Entry::new(outcome, self.base, Instant::now(), lifetime)
    }

    /// The longest an entry can live (moka's `time_to_live`).
    fn longest(&self) -> Duration {
        self.valid.max(self.invalid)
    }
}

/// What an entry costs beyond [`Identity::held_bytes`]: moka's own (hash
/// bucket, entry, access and write deque nodes, key copies, the 16-byte
/// [`Entry`]; 367 bytes measured as RSS per entry in the cache minus the
/// same identities held in a `Vec`) and the allocator's slack around
/// identities parsed one after another (154 bytes: 810 measured against 656
/// held). `cargo run -p stonegate-tools --bin cache_memory -- 100000` (and
/// `-- 100000 identities`, debug build) measures both; the weigher is then
/// within 1% of the resident memory per entry, and `tools/tests/weigher.rs`
/// fails when it is off by more than 15%.
const ENTRY_OVERHEAD: usize = 521;

/// Heap bytes of an entry: moka's own plus what the identity holds alone
/// ([`Identity::held_bytes`], its rendered header block included).
fn weigh(_key: &Key, value: &Entry) -> u32 {
    let size = ENTRY_OVERHEAD + value.identity.as_ref().map_or(0, |id| id.held_bytes());
    u32::try_from(size).unwrap_or(u32::MAX)
}

impl Cache {
    /// A cache bounded to `capacity_bytes`, valid entries living at most
    /// `valid_ttl`, invalid ones `invalid_ttl`.
    pub fn new(capacity_bytes: u64, valid_ttl: Duration, invalid_ttl: Duration) -> Self {
        let lifetimes = Lifetimes {
            valid: valid_ttl,
            invalid: invalid_ttl,
            base: Instant::now(),
        };
        Self {
            inner: Moka::builder()
                .max_capacity(capacity_bytes)
                .weigher(weigh)
                // An upper bound: each entry ends at its own `until`.
                .time_to_live(lifetimes.longest())
                .build(),
            lifetimes,
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
        let lifetimes = self.lifetimes;
        if lifetimes.valid.is_zero() {
            return self.refusals_only(key, validate).await;
        }
        // A hit is a plain lookup: moka's entry API, which makes waiting on
        // another caller's validation possible, copies the key into a new
        // `Arc` on every call, hit or miss.
        if let Some(entry) = self.inner.get(&key).await {
            let now = Instant::now();
            if entry.live(lifetimes.base, now) {
                return Ok((entry.outcome(lifetimes.base, now), true));
            }
        }
        // Not polled unless this call runs the validation; then it runs to
        // the end and the loop ends.
        let mut validate = std::pin::pin!(validate);
        // An ended entry is removed and looked up again; another caller's
        // entry that has already ended (a zero lifetime) is not served
        // either. After a few, validate without the cache.
        for _ in 0..3 {
            let v = validate.as_mut();
            let entry = self
                .inner
                .entry(key)
                .or_try_insert_with(async move {
                    let outcome = v.await?;
                    Ok(lifetimes.entry(outcome))
                })
                .await?;
            let fresh = entry.is_fresh();
            let entry = entry.into_value();
            let now = Instant::now();
            if fresh || entry.live(lifetimes.base, now) {
                return Ok((entry.outcome(lifetimes.base, now), !fresh));
            }
            self.remove_ended(key).await;
        }
        let outcome = validate.await.map_err(Arc::new)?;
        Ok((outcome, false))
    }

    /// `get_or_validate` with `token_cache_time = 0`: no valid outcome is
    /// kept, so there is no entry for concurrent callers to share (one of
    /// zero lifetime serves only the call that made it, and its waiters
    /// validate again). A live refusal is served; anything else is
    /// validated, and only a refusal kept (`negative_ttl`). No single-flight
    /// entry is made, found ended by the next request and removed around
    /// each validation (README, Performance: local validation with the
    /// cache off).
    async fn refusals_only<F, E>(&self, key: Key, validate: F) -> Result<(Outcome, bool), Arc<E>>
    where
        F: Future<Output = Result<Outcome, E>>,
    {
        let lifetimes = self.lifetimes;
        if let Some(entry) = self.inner.get(&key).await {
            let now = Instant::now();
            if entry.live(lifetimes.base, now) {
                return Ok((entry.outcome(lifetimes.base, now), true));
            }
        }
        let outcome = validate.await.map_err(Arc::new)?;
        if matches!(outcome, Outcome::Invalid) && !lifetimes.invalid.is_zero() {
            self.inner
                .insert(key, lifetimes.entry(Outcome::Invalid))
                .await;
        }
        Ok((outcome, false))
    }

    /// Removes `key`'s entry if it has ended (not one another caller has
    /// just made in its place).
    async fn remove_ended(&self, key: Key) {
        let base = self.lifetimes.base;
        self.inner
            .entry(key)
            .and_compute_with(|e| async move {
                match e {
                    Some(e) if !e.value().live(base, Instant::now()) => Op::Remove,
                    _ => Op::Nop,
                }
            })
            .await;
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

#[cfg(test)]
mod tests;
