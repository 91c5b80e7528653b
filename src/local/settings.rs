//! `[fernet]`: local validation, as written ([`Section`]) and checked
//! ([`Settings`]).

use std::{path::Path, time::Duration};

use serde::Deserialize;

use crate::{
    settings::{problem, Problem},
    token::{keys::KeySet, payload::Methods},
};

/// `[fernet]`: local validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Keystone's `[fernet_tokens] key_repository`.
    pub key_repository: String,
    /// Keystone's `[auth] methods`, in order (it defines the methods bitmask).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Seconds between checks of the key repository for rotations.
    #[serde(default = "default_key_reload_interval")]
    pub key_reload_interval: u64,
    /// Seconds of clock skew allowed on expiry.
    #[serde(default)]
    pub clock_skew: u64,
    /// Resolve names and roles from Keystone once per (user, scope, ...).
    #[serde(default = "default_true")]
    pub enrich: bool,
    /// Seconds resolved names and roles are reused.
    #[serde(default = "default_enrichment_cache_time")]
    pub enrichment_cache_time: u64,
}

fn default_key_reload_interval() -> u64 {
    2
}
fn default_true() -> bool {
    true
}
fn default_enrichment_cache_time() -> u64 {
    300
}

/// Compiled `[fernet]` and `[jws]`: local validation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Fernet key repository directory (`[fernet]`).
    pub key_repository: Option<std::path::PathBuf>,
    /// JWS public key repository directory (`[jws]`).
    pub public_key_repository: Option<std::path::PathBuf>,
    /// Method order of the bitmask.
    pub methods: Methods,
    /// Repository check interval (every repository).
    pub key_reload_interval: Duration,
    /// Expiry leeway, seconds.
    pub clock_skew: i64,
    /// Enrich from Keystone.
    pub enrich: bool,
    /// Enrichment lifetime.
    pub enrichment_cache_time: Duration,
}

impl Section {
    /// Checks the section (the key repository must load), recording
    /// problems in `p`.
    pub fn build(&self, p: &mut Vec<Problem>) -> Settings {
        let f = self;
        if f.key_reload_interval == 0 {
            problem(p, "fernet.key_reload_interval", "must be at least 1 second");
        }
        if f.methods
            .as_ref()
            .is_some_and(|m| m.is_empty() || m.len() > 63)
        {
            problem(
                p,
                "fernet.methods",
                "must list 1 to 63 methods, in Keystone's [auth] methods order",
            );
        }
        if let Err(e) = KeySet::load(Path::new(&f.key_repository)) {
            problem(p, "fernet.key_repository", &e.to_string());
        }
        Settings {
            key_repository: Some(f.key_repository.clone().into()),
            public_key_repository: None,
            methods: f.methods.clone().map(Methods::new).unwrap_or_default(),
            key_reload_interval: Duration::from_secs(f.key_reload_interval.max(1)),
            clock_skew: i64::try_from(f.clock_skew).unwrap_or(i64::MAX),
            enrich: f.enrich,
            enrichment_cache_time: Duration::from_secs(f.enrichment_cache_time),
        }
    }
}
