//! Keeps the revocation list current: a full fetch at start, then
//! `since = newest revoked_at − 1 s` every `poll_interval` (Keystone compares
//! `revoked_at > since` at second precision, so the overlap catches events of
//! the same second; duplicates are merged away), a full resync every tenth
//! poll, and pruning of events too old to match any acceptable token.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use super::{Event, List, TokenValues};

/// Where events come from (Keystone, or a test double).
pub trait EventSource: Send + Sync + 'static {
    /// Error of a failed fetch.
    type Error: std::fmt::Display + Send;
    /// Events recorded after `since` (Unix seconds), or all of them.
    fn fetch(
        &self,
        since: Option<i64>,
    ) -> impl Future<Output = Result<Vec<Event>, Self::Error>> + Send;
}

/// Polling settings.
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// Time between polls.
    pub interval: Duration,
    /// Keystone's `[token] expiration` (seconds), for pruning.
    pub max_token_lifetime: i64,
    /// Keystone's `[token] allow_expired_window` (seconds), for pruning.
    pub allow_expired_window: i64,
}

/// The shared, current revocation list and the health of its polling.
#[derive(Debug)]
pub struct Revocations {
    list: RwLock<Arc<List>>,
    last_success: AtomicI64,
    failures: AtomicU64,
    polls: AtomicU64,
    config: PollConfig,
}

impl Revocations {
    /// An empty list that has never been polled.
    pub fn new(config: PollConfig) -> Self {
        Self {
            list: RwLock::new(Arc::new(List::default())),
            last_success: AtomicI64::new(0),
            failures: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            config,
        }
    }

    /// The current list.
    pub fn snapshot(&self) -> Arc<List> {
        match self.list.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether a current event revokes the token.
    pub fn is_revoked(&self, t: &TokenValues<'_>) -> bool {
        self.snapshot().is_revoked(t)
    }

    /// True when the list has not been refreshed for `limit` seconds at `now`
    /// (or never was).
    pub fn is_stale(&self, now: i64, limit: i64) -> bool {
        let last = self.last_success.load(Ordering::Relaxed);
        last == 0 || now - last > limit
    }

    /// Unix time of the last successful poll (0 = never).
    pub fn last_success(&self) -> i64 {
        self.last_success.load(Ordering::Relaxed)
    }

    /// Polls that failed so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// One poll: a full fetch when `full` or nothing was fetched yet, else an
    /// incremental one. Returns the number of events held afterwards.
    pub async fn poll_once<S: EventSource>(
        &self,
        source: &S,
        full: bool,
        now: i64,
    ) -> Result<usize, S::Error> {
        let current = self.snapshot();
        let since = if full || self.last_success() == 0 {
            None
        } else {
            current.newest().map(|n| n - 1)
        };
        match source.fetch(since).await {
            Ok(events) => {
                let merged = if since.is_none() {
                    List::new(events)
                } else {
                    current.merged(events)
                };
                let pruned = merged.pruned(
                    now,
                    self.config.max_token_lifetime,
                    self.config.allow_expired_window,
                );
                let n = pruned.len();
                if let Ok(mut g) = self.list.write() {
                    *g = Arc::new(pruned);
                }
                self.last_success.store(now, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Polls forever (until the task is dropped), every `interval`, with a
    /// full resync every tenth poll. `observe` is told each outcome.
    pub async fn run<S: EventSource>(
        self: Arc<Self>,
        source: S,
        observe: impl Fn(Result<usize, &S::Error>) + Send,
    ) {
        loop {
            let n = self.polls.fetch_add(1, Ordering::Relaxed);
            let now = crate::clock::now();
            match self.poll_once(&source, n % 10 == 0, now).await {
                Ok(held) => observe(Ok(held)),
                Err(e) => {
                    tracing::warn!(error = %e, "revocation events poll failed");
                    observe(Err(&e));
                }
            }
            tokio::time::sleep(self.config.interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Fake {
        events: Mutex<Vec<Event>>,
        fail: Mutex<bool>,
        sinces: Mutex<Vec<Option<i64>>>,
    }

    impl EventSource for Arc<Fake> {
        type Error = String;
        async fn fetch(&self, since: Option<i64>) -> Result<Vec<Event>, String> {
            self.sinces.lock().unwrap().push(since);
            if *self.fail.lock().unwrap() {
                return Err("down".into());
            }
            let all = self.events.lock().unwrap().clone();
            Ok(all
                .into_iter()
                .filter(|e| since.is_none_or(|s| e.revoked_at > s))
                .collect())
        }
    }

    fn event(user: &str, at: i64) -> Event {
        Event {
            user_id: Some(user.into()),
            issued_before: at,
            revoked_at: at,
            ..Event::default()
        }
    }

    #[tokio::test]
    async fn incremental_polls_overlap_one_second_and_merge() {
        let fake = Arc::new(Fake::default());
        fake.events.lock().unwrap().push(event("u1", 100));
        let r = Revocations::new(PollConfig {
            interval: Duration::from_secs(10),
            max_token_lifetime: 3600,
            allow_expired_window: 0,
        });
        assert!(r.is_stale(100, 60));
        assert_eq!(r.poll_once(&fake, false, 100).await.unwrap(), 1);
        fake.events.lock().unwrap().push(event("u2", 100));
        assert_eq!(r.poll_once(&fake, false, 101).await.unwrap(), 2);
        assert_eq!(*fake.sinces.lock().unwrap(), vec![None, Some(99)]);
        assert!(!r.is_stale(120, 60));

        *fake.fail.lock().unwrap() = true;
        assert!(r.poll_once(&fake, false, 200).await.is_err());
        assert_eq!(r.failures(), 1);
        assert_eq!(r.snapshot().len(), 2, "a failed poll keeps the last list");
        assert!(r.is_stale(200, 60));
    }

    #[tokio::test]
    async fn full_resync_drops_events_keystone_pruned() {
        let fake = Arc::new(Fake::default());
        fake.events.lock().unwrap().push(event("u1", 100));
        let r = Revocations::new(PollConfig {
            interval: Duration::from_secs(10),
            max_token_lifetime: 3600,
            allow_expired_window: 0,
        });
        r.poll_once(&fake, true, 100).await.unwrap();
        fake.events.lock().unwrap().clear();
        assert_eq!(r.poll_once(&fake, true, 110).await.unwrap(), 0);
    }
}
