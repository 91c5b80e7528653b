//! Login throttling: a fixed window per username and per client address.
//!
//! An attempt is counted *before* Keystone is asked, so a burst of parallel
//! guesses is cut at the limit, not after the answers come back. The user's
//! count is per username, whatever domain (or spelling of it) the login
//! names, so spelling one user's domain by name, by id or in another case
//! gains a guesser nothing. A successful login takes back from that count the
//! attempts made with exactly its own credentials' spelling (username and
//! domain as sent: only the user who knows that password could succeed with
//! them), so a user who mistyped starts over, but a success as a namesake in
//! another domain never clears a victim's count. It also takes its own
//! attempt back from the address's count, so only failures accumulate
//! against an address (many users behind one NAT can still log in).
//!
//! With a shared cache configured ([`crate::shared_cache`]), the counters
//! live there, so the limits hold for the whole fleet (a guesser spreading
//! attempts over replicas gains nothing) and survive restarts and reloads;
//! counter names are HMACs, so the store holds no username or address. When
//! the store cannot answer, the attempt is counted in this process instead —
//! throttling degrades to per replica, it never fails a login.

use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use moka::future::Cache;

use crate::shared_cache::{BackendError, SharedCache};

/// Counter kinds in the shared store.
const USER: &str = "user";
const SPELLING: &str = "spelling";
const ADDRESS: &str = "address";

/// Limits of one throttle.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Attempts per username per window.
    pub per_user: u32,
    /// Failed attempts per client address per window.
    pub per_address: u32,
    /// The window.
    pub window: Duration,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    count: AtomicU32,
}

/// Counts login attempts.
#[derive(Debug, Clone)]
pub struct Throttle {
    limits: Limits,
    users: Cache<String, Arc<Window>>,
    spellings: Cache<String, Arc<Window>>,
    addresses: Cache<IpAddr, Arc<Window>>,
    shared: Option<Arc<SharedCache>>,
}

/// A counted attempt; give it to [`Throttle::succeeded`] when it succeeds.
#[derive(Debug)]
pub struct Attempt {
    user: String,
    spelling: String,
    address: Option<IpAddr>,
    /// Counted in the shared store (else in this process).
    shared: bool,
}

impl Throttle {
    /// A throttle with `limits`, tracking at most `capacity` keys of each kind
    /// (a flood of distinct usernames cannot grow memory without bound).
    pub fn new(limits: Limits, capacity: u64) -> Self {
        Self {
            limits,
            users: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(limits.window)
                .build(),
            spellings: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(limits.window)
                .build(),
            addresses: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(limits.window)
                .build(),
            shared: None,
        }
    }

    /// Counts in `shared` (fleet-wide), falling back to this process.
    pub fn with_shared(mut self, shared: Option<Arc<SharedCache>>) -> Self {
        self.shared = shared;
        self
    }

    /// Counts an attempt for `user` (the normalised username) from
    /// `address`; `spelling` is the credentials' exact username and domain,
    /// which a success refunds (see the module docs). `Err(retry_after)`
    /// when either limit is reached (nothing is counted then).
    pub async fn attempt(
        &self,
        user: &str,
        spelling: &str,
        address: Option<IpAddr>,
    ) -> Result<Attempt, Duration> {
        if let Some(shared) = &self.shared {
            match self.attempt_shared(shared, user, spelling, address).await {
                Ok(verdict) => return verdict,
                Err(e) => {
                    tracing::debug!(error = %e, "shared login throttle unavailable; counting here")
                }
            }
        }
        self.attempt_local(user, spelling, address).await
    }

    /// [`Self::attempt`] in the shared store. `Retry-After` is then the whole
    /// window: memcached does not say when a counter's window started.
    async fn attempt_shared(
        &self,
        shared: &SharedCache,
        user: &str,
        spelling: &str,
        address: Option<IpAddr>,
    ) -> Result<Result<Attempt, Duration>, BackendError> {
        let window = self.limits.window;
        let refused = Duration::from_secs(window.as_secs().max(1));
        let n = shared.count(USER, user, 1, window).await?;
        if n > i64::from(self.limits.per_user) {
            let _ = shared.count(USER, user, -1, window).await;
            return Ok(Err(refused));
        }
        if let Some(ip) = address {
            let ip = ip.to_string();
            let a = match shared.count(ADDRESS, &ip, 1, window).await {
                Ok(a) => a,
                Err(e) => {
                    let _ = shared.count(USER, user, -1, window).await;
                    return Err(e);
                }
            };
            if a > i64::from(self.limits.per_address) {
                let _ = shared.count(ADDRESS, &ip, -1, window).await;
                let _ = shared.count(USER, user, -1, window).await;
                return Ok(Err(refused));
            }
        }
        // Only what a success takes back: losing it costs the user a
        // refund, never the guesser a count.
        if let Err(e) = shared.count(SPELLING, spelling, 1, window).await {
            tracing::debug!(error = %e, "shared login throttle: attempt not recorded for a refund");
        }
        Ok(Ok(Attempt {
            user: user.to_owned(),
            spelling: spelling.to_owned(),
            address,
            shared: true,
        }))
    }

    async fn attempt_local(
        &self,
        user: &str,
        spelling: &str,
        address: Option<IpAddr>,
    ) -> Result<Attempt, Duration> {
        let now = Instant::now();
        let fresh = || async move {
            Arc::new(Window {
                started: now,
                count: AtomicU32::new(0),
            })
        };
        let u = self.users.get_with(user.to_owned(), fresh()).await;
        let a = match address {
            Some(ip) => Some(self.addresses.get_with(ip, fresh()).await),
            None => None,
        };
        let retry = |w: &Window| {
            let left = self.limits.window.saturating_sub(now - w.started);
            Duration::from_secs(left.as_secs_f64().ceil().max(1.0) as u64)
        };
        if let Some(a) = &a {
            if a.count.load(Ordering::Relaxed) >= self.limits.per_address {
                return Err(retry(a));
            }
        }
        if u.count.fetch_add(1, Ordering::Relaxed) >= self.limits.per_user {
            u.count.fetch_sub(1, Ordering::Relaxed);
            return Err(retry(&u));
        }
        if let Some(a) = &a {
            if a.count.fetch_add(1, Ordering::Relaxed) >= self.limits.per_address {
                a.count.fetch_sub(1, Ordering::Relaxed);
                u.count.fetch_sub(1, Ordering::Relaxed);
                return Err(retry(a));
            }
        }
        self.spellings
            .get_with(spelling.to_owned(), fresh())
            .await
            .count
            .fetch_add(1, Ordering::Relaxed);
        Ok(Attempt {
            user: user.to_owned(),
            spelling: spelling.to_owned(),
            address,
            shared: false,
        })
    }

    /// The attempt succeeded: take back from the username's count the
    /// attempts made with exactly these credentials' spelling (this one
    /// included), and give the address its attempt back.
    pub async fn succeeded(&self, attempt: Attempt) {
        if let (true, Some(shared)) = (attempt.shared, &self.shared) {
            let window = self.limits.window;
            let reset = async {
                // At least this attempt, even if its record was lost.
                let made = shared.count(SPELLING, &attempt.spelling, 0, window).await?;
                shared.reset_count(SPELLING, &attempt.spelling).await?;
                let left = shared
                    .count(USER, &attempt.user, -made.max(1), window)
                    .await?;
                // The user's window may have started after these attempts:
                // never below zero (Redis would go negative; memcached stops).
                if left < 0 {
                    shared.reset_count(USER, &attempt.user).await?;
                }
                Ok(())
            }
            .await;
            let refund = match attempt.address {
                Some(ip) => shared
                    .count(ADDRESS, &ip.to_string(), -1, window)
                    .await
                    .map(|_| ()),
                None => Ok(()),
            };
            if let Err(e) = reset.and(refund) {
                tracing::debug!(error = %e, "shared login throttle not updated after a login");
            }
            return;
        }
        let made = match self.spellings.remove(&attempt.spelling).await {
            Some(w) => w.count.load(Ordering::Relaxed).max(1),
            None => 1,
        };
        if let Some(w) = self.users.get(&attempt.user).await {
            let _ = w
                .count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    Some(c.saturating_sub(made))
                });
        }
        if let Some(ip) = attempt.address {
            if let Some(w) = self.addresses.get(&ip).await {
                let _ = w
                    .count
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            per_user: 3,
            per_address: 5,
            window: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn per_user_limit_then_retry_after_within_the_window() {
        let t = Throttle::new(limits(), 1000);
        for _ in 0..3 {
            t.attempt("alice", "alice@d", None).await.unwrap();
        }
        let retry = t.attempt("alice", "alice@d", None).await.unwrap_err();
        assert!(retry <= Duration::from_secs(60) && retry >= Duration::from_secs(59));
        // Another user is unaffected.
        t.attempt("bob", "bob@d", None).await.unwrap();
    }

    #[tokio::test]
    async fn per_address_counts_failures_across_usernames() {
        let t = Throttle::new(limits(), 1000);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..5 {
            t.attempt(&format!("user{i}"), "s", Some(ip)).await.unwrap();
        }
        assert!(t.attempt("user9", "s", Some(ip)).await.is_err());
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        t.attempt("user9", "s", Some(other)).await.unwrap();
    }

    #[tokio::test]
    async fn success_clears_the_user_and_refunds_the_address() {
        let t = Throttle::new(limits(), 1000);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..2 {
            t.attempt("alice", "alice@d", Some(ip)).await.unwrap();
        }
        let ok = t.attempt("alice", "alice@d", Some(ip)).await.unwrap();
        t.succeeded(ok).await;
        // alice starts over; the address holds only the 2 failures.
        for _ in 0..3 {
            let a = t.attempt("alice", "alice@d", Some(ip)).await.unwrap();
            t.succeeded(a).await;
        }
        for i in 0..3 {
            t.attempt(&format!("x{i}"), "x", Some(ip)).await.unwrap();
        }
        assert!(t.attempt("y", "y", Some(ip)).await.is_err());
    }

    #[tokio::test]
    async fn every_spelling_shares_the_count_and_a_namesakes_success_refunds_only_its_own() {
        let t = Throttle::new(limits(), 1000);
        // A guesser against alice of domain "default", in two spellings.
        t.attempt("alice", "alice@id:default", None).await.unwrap();
        t.attempt("alice", "alice@name:Default", None)
            .await
            .unwrap();
        // Another alice (another domain) logs in: only her attempt comes back.
        let namesake = t.attempt("alice", "alice@name:Other", None).await.unwrap();
        t.succeeded(namesake).await;
        t.attempt("alice", "alice@id:default", None).await.unwrap();
        assert!(
            t.attempt("alice", "alice@name:Other", None).await.is_err(),
            "3 guesses counted"
        );
        // The real alice mistyped once, then logs in: her spelling's
        // attempts come back, the guesser's other spelling stays counted.
        let t = Throttle::new(limits(), 1000);
        t.attempt("alice", "alice@name:Default", None)
            .await
            .unwrap();
        t.attempt("alice", "alice@id:default", None).await.unwrap();
        let ok = t.attempt("alice", "alice@id:default", None).await.unwrap();
        t.succeeded(ok).await;
        t.attempt("alice", "alice@id:default", None).await.unwrap();
        t.attempt("alice", "alice@id:default", None).await.unwrap();
        assert!(t.attempt("alice", "alice@id:default", None).await.is_err());
    }
}
