//! The Redis backend: `GET` (with `TTL`), `SET … EX`, `DEL` and counters
//! (`MULTI`: `SET … EX … NX`, `INCRBY`) through the `redis` crate's
//! auto-reconnecting [`ConnectionManager`], created on first use (so a
//! validator can be built outside a runtime and with Redis down).

use std::{
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use ::redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, AsyncCommands, Client};
use secrecy::{ExposeSecret, SecretString};

use super::{BackendError, Stored};

/// One Redis server (or proxy in front of several).
pub struct Redis {
    client: Client,
    manager: OnceLock<ConnectionManager>,
    timeout: Duration,
    dead_retry: Duration,
    dead_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").finish_non_exhaustive()
    }
}

impl Redis {
    /// A client for `url` (checked by the configuration); no connection yet.
    pub fn new(
        url: &SecretString,
        timeout: Duration,
        dead_retry: Duration,
    ) -> Result<Self, BackendError> {
        let client = Client::open(url.expose_secret())
            .map_err(|e| BackendError::Redis(e.category().to_owned()))?;
        Ok(Self {
            client,
            manager: OnceLock::new(),
            timeout,
            dead_retry,
            dead_until: Mutex::new(None),
        })
    }

    /// The stored bytes of `key`, `None` when absent.
    pub async fn get(&self, key: &str) -> Result<Option<Stored>, BackendError> {
        let mut conn = self.connection()?;
        let result = tokio::time::timeout(self.timeout, async move {
            ::redis::pipe()
                .get(key)
                .ttl(key)
                .query_async::<(Option<Vec<u8>>, i64)>(&mut conn)
                .await
        })
        .await;
        let (value, ttl) = self.finish(result)?;
        Ok(value.map(|value| Stored {
            value,
            // -1: no expiry, -2: gone meanwhile.
            ttl: u64::try_from(ttl).ok().map(Duration::from_secs),
        }))
    }

    /// Stores `value` under `key` for `ttl` (whole seconds, at least 1).
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), BackendError> {
        let mut conn = self.connection()?;
        let ttl = ttl.as_secs().max(1);
        let result = tokio::time::timeout(self.timeout, async move {
            conn.set_ex::<_, _, ()>(key, value, ttl).await
        })
        .await;
        self.finish(result)
    }

    /// Adds `delta` to the counter `key` and returns its new value; a counter
    /// is created with lifetime `ttl` in the same transaction (`MULTI`:
    /// `SET key 0 EX ttl NX`, `INCRBY`), so no crash or lost connection can
    /// leave a counter that never expires — which would lock a user out for
    /// good. `INCRBY` keeps the lifetime it finds.
    pub async fn add_to(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, BackendError> {
        let mut conn = self.connection()?;
        let ttl = ttl.as_secs().max(1);
        let result = tokio::time::timeout(self.timeout, async move {
            let (n, left): (i64, i64) = ::redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(key)
                .arg(0)
                .arg("EX")
                .arg(ttl)
                .arg("NX")
                .ignore()
                .incr(key, delta)
                .ttl(key)
                .query_async(&mut conn)
                .await?;
            // A counter without a lifetime can only be a leftover of a
            // version that set it in a second step: give it one.
            if left == -1 {
                conn.expire::<_, ()>(key, i64::try_from(ttl).unwrap_or(i64::MAX))
                    .await?;
            }
            Ok(n)
        })
        .await;
        self.finish(result)
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), BackendError> {
        let mut conn = self.connection()?;
        let result =
            tokio::time::timeout(self.timeout, async move { conn.del::<_, ()>(key).await }).await;
        self.finish(result)
    }

    fn connection(&self) -> Result<ConnectionManager, BackendError> {
        if let Ok(mut until) = self.dead_until.lock() {
            match *until {
                Some(t) if t > Instant::now() => return Err(BackendError::NoServer),
                Some(_) => *until = None,
                None => {}
            }
        }
        if let Some(m) = self.manager.get() {
            return Ok(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.timeout);
        // Lazy: connects on the first command, reconnects by itself.
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| BackendError::Redis(e.category().to_owned()))?;
        // Two first callers may race: one manager is kept, the other dropped.
        Ok(self.manager.get_or_init(|| manager).clone())
    }

    fn finish<T>(
        &self,
        result: Result<::redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, BackendError> {
        let error = match result {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => BackendError::Redis(e.category().to_owned()),
            Err(_) => BackendError::Timeout,
        };
        tracing::warn!(error = %error, "Redis failed; skipping it");
        if let Ok(mut until) = self.dead_until.lock() {
            *until = Some(Instant::now() + self.dead_retry);
        }
        Err(error)
    }
}
