//! The shared (second-level) token cache: memcached or Redis, shared by a
//! fleet of stonegate replicas — and with Python services running
//! keystonemiddleware, which read and write the very same entries.
//!
//! Lookup order is moka (per process, [`crate::cache`]) → this → Keystone.
//! Only online validations are shared, never `allow_expired` ones, and never
//! invalid tokens (keystonemiddleware does not share those either). An entry
//! is Keystone's validation body (`{"token": {...}}`), protected as
//! keystonemiddleware's `memcache_security_strategy` does ([`crypt`]), and
//! lives min(`token_cache_time`, the token's remaining life). Everything
//! that goes wrong here — a server down, slow or answering garbage, an entry
//! that fails its MAC — is a miss: the token goes to Keystone, and no request
//! ever fails because of the shared cache. Expiry is checked on every use by
//! the validator, as for moka entries.
//!
//! The bound stated by keystonemiddleware holds here too: a token revoked in
//! Keystone stays accepted until its shared entry ends (≤ `token_cache_time`).

pub mod crypt;
pub mod memcached;
pub mod redis;
pub mod settings;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::{
    identity::Identity,
    keystone::AuthVersion,
    metrics::{Metrics, SharedCacheCounters},
    token::Token,
};
use crypt::{Keys, Strategy};
pub use settings::{Backend, Options, Settings};

/// Why the shared cache gave no answer (always handled as a miss).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The connection failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// No answer within `memcache_pool_socket_timeout`.
    #[error("timed out")]
    Timeout,
    /// Every server that could hold the key is down (skipped for `dead_retry`).
    #[error("no live server")]
    NoServer,
    /// The server's reply was not the protocol's.
    #[error("unexpected reply")]
    Protocol,
    /// The server refused to store the value (too large, out of memory).
    #[error("value refused by the server")]
    Refused,
    /// The Redis client failed (its error category).
    #[error("Redis: {0}")]
    Redis(String),
    /// No random IV could be drawn for an ENCRYPT entry.
    #[error("no randomness for the IV")]
    Random,
}

/// An entry as a server returned it.
#[derive(Debug)]
pub struct Stored {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// Its remaining lifetime, when the server tells and it has one.
    pub ttl: Option<Duration>,
}

/// A trusted shared entry.
#[derive(Debug)]
pub struct Hit {
    /// Who the token is.
    pub identity: Identity,
    /// How long the entry has left, when the server says.
    pub ttl: Option<Duration>,
}

enum Store {
    Memcached(memcached::Memcached),
    Redis(redis::Redis),
}

/// The shared cache of one validator.
pub struct SharedCache {
    store: Store,
    strategy: Strategy,
    secret: SecretString,
    counters: SharedCacheCounters,
    /// The document kind entries hold: Keystone's validation body of this
    /// Identity API version (`{"token": ...}` for v3, `{"access": ...}` for v2.0).
    version: AuthVersion,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.store {
            Store::Memcached(m) => format!("{m:?}"),
            Store::Redis(_) => "Redis".into(),
        };
        f.debug_struct("SharedCache")
            .field("backend", &backend)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl SharedCache {
    /// A shared cache for `settings`, holding validation bodies of Identity
    /// API `version`; connections are made on first use.
    pub fn new(
        settings: &Settings,
        version: AuthVersion,
        metrics: &Metrics,
    ) -> Result<Self, BackendError> {
        let store = match &settings.backend {
            Backend::Memcached(servers) => Store::Memcached(memcached::Memcached::new(
                servers,
                settings.socket_timeout,
                settings.dead_retry,
                settings.pool_maxsize,
            )),
            Backend::Redis(url) => Store::Redis(redis::Redis::new(
                url,
                settings.socket_timeout,
                settings.dead_retry,
            )?),
        };
        Ok(Self {
            store,
            strategy: settings.strategy,
            secret: settings.secret.clone(),
            counters: metrics.shared_cache(settings.backend.label()),
            version,
        })
    }

    fn keys(&self, token: &Token) -> Keys {
        Keys::derive(
            self.secret.expose_secret().as_bytes(),
            token.expose().as_bytes(),
            self.strategy,
        )
    }

    /// The identity stored for `token` by any replica (or keystonemiddleware),
    /// or `None`: absent, unreachable, or not trustworthy.
    pub async fn get(&self, token: &Token) -> Option<Hit> {
        let keys = self.keys(token);
        let key = keys.cache_key();
        let stored = match &self.store {
            Store::Memcached(m) => m.get(&key).await,
            Store::Redis(r) => r.get(&key).await,
        };
        let c = &self.counters;
        let Stored { value, ttl } = match stored {
            Ok(Some(v)) => v,
            Ok(None) => {
                c.get_miss.inc();
                return None;
            }
            Err(e) => {
                c.get_error.inc();
                tracing::debug!(token = %token.fingerprint(), error = %e, "shared cache unavailable");
                return None;
            }
        };
        let data = match keys.unprotect(&value) {
            Ok(d) => d,
            Err(e) => {
                c.get_rejected.inc();
                tracing::warn!(token = %token.fingerprint(), error = %e, "shared cache entry rejected");
                return None;
            }
        };
        let parsed = match self.version {
            AuthVersion::V3 => crate::keystone::model::parse_token(&data),
            AuthVersion::V2 => crate::keystone::model_v2::parse_access(&data),
        };
        match parsed {
            Ok(identity) => {
                c.get_hit.inc();
                Some(Hit { identity, ttl })
            }
            Err(e) => {
                c.get_unusable.inc();
                tracing::warn!(token = %token.fingerprint(), error = %e, "shared cache entry is not a token document");
                None
            }
        }
    }

    /// Removes `token`'s entry (after a logout revoked it here), so this
    /// replica does not take it back from the shared cache.
    pub async fn delete(&self, token: &Token) {
        let key = self.keys(token).cache_key();
        let deleted = match &self.store {
            Store::Memcached(m) => m.delete(&key).await,
            Store::Redis(r) => r.delete(&key).await,
        };
        if let Err(e) = deleted {
            self.counters.delete_error.inc();
            tracing::warn!(token = %token.fingerprint(), error = %e, "shared cache entry not deleted");
        } else {
            self.counters.delete_ok.inc();
        }
    }

    /// Stores Keystone's validation `body` of `token` for `ttl` (skipped
    /// below one second). Failures are counted and logged, never returned.
    pub async fn set(&self, token: &Token, body: &[u8], ttl: Duration) {
        if ttl < Duration::from_secs(1) {
            return;
        }
        let keys = self.keys(token);
        let stored = match keys.protect(body) {
            Err(_) => Err(BackendError::Random),
            Ok(value) => {
                let key = keys.cache_key();
                match &self.store {
                    Store::Memcached(m) => m.set(&key, &value, ttl).await,
                    Store::Redis(r) => r.set(&key, &value, ttl).await,
                }
            }
        };
        match stored {
            Ok(()) => self.counters.set_ok.inc(),
            Err(e) => {
                self.counters.set_error.inc();
                tracing::debug!(token = %token.fingerprint(), error = %e, "shared cache write failed");
            }
        }
    }

    /// The name of counter `subject` of `kind` (login throttling): an HMAC
    /// under the cache secret, so the store never holds a username or an
    /// address and nobody without the secret can aim at a counter.
    fn counter_key(&self, kind: &str, subject: &str) -> String {
        use base64::Engine as _;
        use hmac::Mac as _;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"stonegate/throttle\0");
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(subject.as_bytes());
        let digest = mac.finalize().into_bytes();
        let name = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..18]);
        format!("stonegate/throttle/{kind}/{name}")
    }

    /// Adds `delta` to the fleet-wide counter `subject` of `kind`, created
    /// with lifetime `window` when absent; returns the new value.
    pub async fn count(
        &self,
        kind: &str,
        subject: &str,
        delta: i64,
        window: Duration,
    ) -> Result<i64, BackendError> {
        let key = self.counter_key(kind, subject);
        match &self.store {
            Store::Memcached(m) => m
                .add_to(&key, delta, window)
                .await
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            Store::Redis(r) => r.add_to(&key, delta, window).await,
        }
    }

    /// Removes the counter `subject` of `kind`.
    pub async fn reset_count(&self, kind: &str, subject: &str) -> Result<(), BackendError> {
        let key = self.counter_key(kind, subject);
        match &self.store {
            Store::Memcached(m) => m.delete(&key).await,
            Store::Redis(r) => r.delete(&key).await,
        }
    }
}
