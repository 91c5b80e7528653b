//! `[jws]`: local validation of Keystone's JWS tokens with its public keys,
//! as written ([`Section`]) and folded into the local [`Settings`].
//!
//! With `[fernet]` too, both formats share one enrichment cache, clock skew
//! and reload interval, which `[fernet]` sets; `[jws]` then holds only its
//! repository.

use std::{path::Path, time::Duration};

use serde::Deserialize;

use super::Settings;
use crate::{
    settings::{problem, Problem},
    token::{jws_keys::PublicKeys, payload::Methods},
};

/// `[jws]`: local validation of JWS tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Keystone's `[jwt_tokens] jws_public_key_repository` (public keys only).
    pub public_key_repository: String,
    /// Seconds between checks of the repository (default 2; `[fernet]`'s with `[fernet]`).
    #[serde(default)]
    pub key_reload_interval: Option<u64>,
    /// Seconds of clock skew allowed on expiry (default 0).
    #[serde(default)]
    pub clock_skew: Option<u64>,
    /// Resolve names and roles from Keystone once per (user, scope, ...) (default true).
    #[serde(default)]
    pub enrich: Option<bool>,
    /// Seconds resolved names and roles are reused (default 300).
    #[serde(default)]
    pub enrichment_cache_time: Option<u64>,
}

impl Section {
    /// Checks the section (the repository must load) and adds it to the
    /// `[fernet]` settings, if any; problems go to `p`.
    pub fn build(&self, fernet: Option<Settings>, p: &mut Vec<Problem>) -> Settings {
        if let Err(e) = PublicKeys::load(Path::new(&self.public_key_repository)) {
            problem(p, "jws.public_key_repository", &e.to_string());
        }
        let shared = [
            ("key_reload_interval", self.key_reload_interval.is_some()),
            ("clock_skew", self.clock_skew.is_some()),
            ("enrich", self.enrich.is_some()),
            (
                "enrichment_cache_time",
                self.enrichment_cache_time.is_some(),
            ),
        ];
        let mut settings = match fernet {
            Some(f) => {
                for (key, _) in shared.iter().filter(|(_, set)| *set) {
                    problem(
                        p,
                        &format!("jws.{key}"),
                        &format!("set it in [fernet] only: with [fernet] and [jws] both on, both formats share [fernet]'s {key}"),
                    );
                }
                f
            }
            None => {
                let interval = self.key_reload_interval.unwrap_or(2);
                if interval == 0 {
                    problem(p, "jws.key_reload_interval", "must be at least 1 second");
                }
                Settings {
                    key_repository: None,
                    public_key_repository: None,
                    methods: Methods::default(),
                    key_reload_interval: Duration::from_secs(interval.max(1)),
                    clock_skew: i64::try_from(self.clock_skew.unwrap_or(0)).unwrap_or(i64::MAX),
                    enrich: self.enrich.unwrap_or(true),
                    enrichment_cache_time: Duration::from_secs(
                        self.enrichment_cache_time.unwrap_or(300),
                    ),
                }
            }
        };
        settings.public_key_repository = Some(self.public_key_repository.clone().into());
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(dir: &str) -> Section {
        Section {
            public_key_repository: dir.into(),
            key_reload_interval: None,
            clock_skew: None,
            enrich: None,
            enrichment_cache_time: None,
        }
    }

    #[test]
    fn alone_it_has_fernets_defaults_and_a_bad_directory_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Vec::new();
        let s = section(&dir.path().display().to_string()).build(None, &mut p);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].to_string().contains("jws.public_key_repository"),
            "{}",
            p[0]
        );
        assert!(p[0].to_string().contains("holds no public key"), "{}", p[0]);
        assert_eq!(s.key_repository, None);
        assert_eq!(s.public_key_repository.as_deref(), Some(dir.path()));
        assert!(s.enrich);
        assert_eq!(s.key_reload_interval, Duration::from_secs(2));
        assert_eq!(s.enrichment_cache_time, Duration::from_secs(300));
    }

    #[test]
    fn beside_fernet_the_shared_values_are_fernets_only() {
        let fernet = Settings {
            key_repository: Some("/k".into()),
            public_key_repository: None,
            methods: Methods::default(),
            key_reload_interval: Duration::from_secs(7),
            clock_skew: 3,
            enrich: false,
            enrichment_cache_time: Duration::from_secs(60),
        };
        let mut p = Vec::new();
        let mut s = section("/nonexistent");
        s.enrich = Some(true);
        s.clock_skew = Some(1);
        let built = s.build(Some(fernet), &mut p);
        let text: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text
            .iter()
            .any(|t| t.contains("jws.enrich") && t.contains("[fernet]")));
        assert!(text.iter().any(|t| t.contains("jws.clock_skew")));
        assert_eq!(built.key_repository.as_deref(), Some(Path::new("/k")));
        assert_eq!(
            built.public_key_repository.as_deref(),
            Some(Path::new("/nonexistent"))
        );
        assert!(!built.enrich);
        assert_eq!(built.key_reload_interval, Duration::from_secs(7));
    }
}
