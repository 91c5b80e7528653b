//! The shared cache's configuration: keystonemiddleware's `memcached_servers`
//! and `memcache_*` options of `[keystone_authtoken]`, or stonegate's own
//! `[cache] redis_url`, compiled into [`Settings`].

use std::time::Duration;

use secrecy::SecretString;

use super::crypt::Strategy;
use crate::settings::{problem, Problem};

/// Environment variable that may hold `memcache_secret_key`.
pub const SECRET_KEY_ENV: &str = "STONEGATE_MEMCACHE_SECRET_KEY";

/// keystonemiddleware's `memcache_pool_dead_retry` default (seconds).
pub const DEFAULT_DEAD_RETRY: u64 = 300;
/// stonegate's `memcache_pool_socket_timeout` default (seconds). Lower than
/// keystonemiddleware's 3 s: the shared cache only saves a Keystone call that
/// takes tens of milliseconds, so waiting seconds for it is worse than asking
/// Keystone. A server on the same network answers in well under a millisecond.
pub const DEFAULT_SOCKET_TIMEOUT: f64 = 0.5;
/// keystonemiddleware's `memcache_pool_maxsize` default: idle connections
/// kept per server.
pub const DEFAULT_POOL_MAXSIZE: usize = 10;

/// Where the shared entries live.
#[derive(Clone)]
pub enum Backend {
    /// memcached servers (`host:port`), chosen per key as python-memcached does.
    Memcached(Vec<String>),
    /// One Redis server or proxy (the URL may hold a password).
    Redis(SecretString),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Memcached(servers) => f.debug_tuple("Memcached").field(servers).finish(),
            Backend::Redis(_) => f.write_str("Redis([redacted])"),
        }
    }
}

impl Backend {
    /// `memcached` or `redis` (the metrics' `backend` label).
    pub fn label(&self) -> &'static str {
        match self {
            Backend::Memcached(_) => "memcached",
            Backend::Redis(_) => "redis",
        }
    }
}

/// Compiled shared-cache settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The servers.
    pub backend: Backend,
    /// `MAC` or `ENCRYPT`.
    pub strategy: Strategy,
    /// `memcache_secret_key`.
    pub secret: SecretString,
    /// Bound of one connect and of one operation.
    pub socket_timeout: Duration,
    /// How long a failed server is skipped.
    pub dead_retry: Duration,
    /// Idle connections kept per memcached server.
    pub pool_maxsize: usize,
}

/// The options as written (fields of `[keystone_authtoken]` and `[cache]`).
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// `keystone_authtoken.memcached_servers`.
    pub memcached_servers: Option<&'a [String]>,
    /// `cache.redis_url`.
    pub redis_url: Option<&'a str>,
    /// `keystone_authtoken.memcache_security_strategy`.
    pub security_strategy: Option<&'a str>,
    /// `keystone_authtoken.memcache_secret_key`.
    pub secret_key: Option<&'a String>,
    /// `keystone_authtoken.memcache_secret_key_file`.
    pub secret_key_file: Option<&'a String>,
    /// `keystone_authtoken.memcache_pool_socket_timeout` (seconds).
    pub socket_timeout: Option<f64>,
    /// `keystone_authtoken.memcache_pool_dead_retry` (seconds).
    pub dead_retry: Option<u64>,
    /// `keystone_authtoken.memcache_pool_maxsize`.
    pub pool_maxsize: Option<usize>,
    /// `[fernet]` is configured (local validation).
    pub local_validation: bool,
}

const SERVERS: &str = "keystone_authtoken.memcached_servers";
const REDIS: &str = "cache.redis_url";
const STRATEGY: &str = "keystone_authtoken.memcache_security_strategy";
const SECRET: &str = "keystone_authtoken.memcache_secret_key";

impl Options<'_> {
    /// Checks the options, recording problems in `p`; `None` when no shared
    /// cache is configured (or it is unusable, with problems recorded).
    pub fn build(
        &self,
        p: &mut Vec<Problem>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Settings> {
        let strategy = match self.security_strategy {
            None | Some("None") => None,
            Some("MAC") => Some(Strategy::Mac),
            Some("ENCRYPT") => Some(Strategy::Encrypt),
            Some(other) => {
                problem(
                    p,
                    STRATEGY,
                    &format!(
                        "{other:?} is not \"MAC\" or \"ENCRYPT\" (upper case: keystonemiddleware \
                         derives the keys from the name as written)"
                    ),
                );
                return None;
            }
        };
        let socket_timeout = self.socket_timeout.unwrap_or(DEFAULT_SOCKET_TIMEOUT);
        if !(socket_timeout.is_finite() && (0.001..=60.0).contains(&socket_timeout)) {
            problem(
                p,
                "keystone_authtoken.memcache_pool_socket_timeout",
                "must be between 0.001 and 60 seconds",
            );
        }
        if self.pool_maxsize == Some(0) {
            problem(
                p,
                "keystone_authtoken.memcache_pool_maxsize",
                "must be at least 1",
            );
        }
        let backend = match (self.memcached_servers, self.redis_url) {
            (Some(_), Some(_)) => {
                problem(
                    p,
                    REDIS,
                    &format!("set either {SERVERS} or {REDIS}, not both"),
                );
                return None;
            }
            (None, None) => return None,
            (Some([]), None) => {
                problem(
                    p,
                    SERVERS,
                    "is empty: list \"host:port\" servers, or remove the key",
                );
                return None;
            }
            (Some(servers), None) => {
                for (i, s) in servers.iter().enumerate() {
                    if !valid_server(s) {
                        problem(
                            p,
                            &format!("{SERVERS}[{i}]"),
                            &format!("{s:?} is not \"host:port\" (IPv6: \"[addr]:port\")"),
                        );
                    }
                }
                Backend::Memcached(servers.to_vec())
            }
            (None, Some(url)) => {
                if let Err(e) = ::redis::Client::open(url) {
                    // The URL may hold a password: name the problem, not the URL.
                    problem(
                        p,
                        REDIS,
                        &format!("is not a usable redis:// URL ({})", e.category()),
                    );
                }
                Backend::Redis(SecretString::from(url.to_owned()))
            }
        };
        let key = match backend {
            Backend::Memcached(_) => SERVERS,
            Backend::Redis(_) => REDIS,
        };
        if self.local_validation {
            problem(
                p,
                key,
                "the shared cache serves online validation; with [fernet] tokens are decided \
                 locally: remove one of them",
            );
        }
        let Some(strategy) = strategy else {
            problem(
                p,
                STRATEGY,
                &format!(
                    "must be \"MAC\" or \"ENCRYPT\" (with memcache_secret_key) when {key} is set: \
                     unauthenticated entries would let anyone who can write to the cache forge \
                     identities; set both, or remove {key} to use the in-process cache only"
                ),
            );
            return None;
        };
        let secret = crate::settings::secret(
            p,
            SECRET,
            &self.secret_key.cloned(),
            &self.secret_key_file.cloned(),
            SECRET_KEY_ENV,
            env,
        )?;
        Some(Settings {
            backend,
            strategy,
            secret,
            socket_timeout: Duration::from_secs_f64(socket_timeout.clamp(0.001, 60.0)),
            dead_retry: Duration::from_secs(self.dead_retry.unwrap_or(DEFAULT_DEAD_RETRY)),
            pool_maxsize: self.pool_maxsize.unwrap_or(DEFAULT_POOL_MAXSIZE).max(1),
        })
    }
}

/// `host:port` or `[v6]:port`, with a numeric port.
fn valid_server(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty() && !host.contains([':', '/', ' '])
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}
