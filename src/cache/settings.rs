//! `[cache]`: the token cache, as written ([`Section`]) and checked
//! ([`Settings`]). Its `redis_url` belongs to the shared cache, which reads
//! it from here.

use std::{fmt, time::Duration};

use serde::Deserialize;

use crate::settings::{problem, Problem};

/// `[cache]`: the token cache.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Section {
    /// Upper bound of the cache in (estimated) bytes.
    pub capacity_bytes: u64,
    /// Seconds an invalid token is remembered.
    pub negative_ttl: u64,
    /// A Redis server as the shared second-level cache (instead of
    /// `keystone_authtoken.memcached_servers`).
    pub redis_url: Option<String>,
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("negative_ttl", &self.negative_ttl)
            // May hold a password.
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Default for Section {
    fn default() -> Self {
        Self {
            capacity_bytes: 64 * 1024 * 1024,
            negative_ttl: 10,
            redis_url: None,
        }
    }
}

/// Compiled `[cache]` (the token cache's part).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Cache capacity in bytes.
    pub capacity_bytes: u64,
    /// Lifetime of a negative (invalid token) entry.
    pub negative_ttl: Duration,
}

impl Section {
    /// Checks the section, recording problems in `p`.
    pub fn build(&self, p: &mut Vec<Problem>) -> Settings {
        if self.capacity_bytes < 1024 {
            problem(p, "cache.capacity_bytes", "must be at least 1024");
        }
        Settings {
            capacity_bytes: self.capacity_bytes,
            negative_ttl: Duration::from_secs(self.negative_ttl),
        }
    }
}
