//! `[revocation]`: revocation-event polling, as written ([`Section`]) and
//! checked ([`Settings`]).

use std::time::Duration;

use serde::Deserialize;

use super::poller::PollConfig;
use crate::settings::{problem, Problem};

/// `[revocation]`: revocation-event polling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Poll `GET /v3/OS-REVOKE/events` (default: on).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds between polls.
    #[serde(default = "default_poll_interval")]
    pub revocation_poll_interval: u64,
    /// Seconds without a successful poll after which local validation stops
    /// (tokens are then treated as with Keystone unreachable).
    #[serde(default = "default_staleness_limit")]
    pub staleness_limit: u64,
    /// Keystone's `[token] expiration`, for pruning old events.
    #[serde(default = "default_token_expiration")]
    pub token_expiration: u64,
    /// Keystone's `[token] allow_expired_window`.
    #[serde(default = "default_allow_expired_window")]
    pub allow_expired_window: u64,
}

impl Default for Section {
    /// The section as an empty `[revocation]` table gives it.
    fn default() -> Self {
        Self {
            enabled: default_true(),
            revocation_poll_interval: default_poll_interval(),
            staleness_limit: default_staleness_limit(),
            token_expiration: default_token_expiration(),
            allow_expired_window: default_allow_expired_window(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_poll_interval() -> u64 {
    10
}
fn default_staleness_limit() -> u64 {
    60
}
fn default_token_expiration() -> u64 {
    3600
}
fn default_allow_expired_window() -> u64 {
    172_800
}

/// Compiled `[revocation]`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Polling and pruning.
    pub poll: PollConfig,
    /// Staleness limit, seconds.
    pub staleness_limit: i64,
}

impl Section {
    /// Polling is on by default with local validation, off otherwise: the
    /// section as written, or its defaults when `local_validation` and it is
    /// absent; `None` when polling is off.
    pub fn resolve(section: Option<&Self>, local_validation: bool) -> Option<Self> {
        match (section, local_validation) {
            (Some(r), _) if !r.enabled => None,
            (Some(r), _) => Some(r.clone()),
            (None, true) => Some(Self::default()),
            (None, false) => None,
        }
    }

    /// Checks the section, recording problems in `p`.
    pub fn build(&self, p: &mut Vec<Problem>) -> Settings {
        let r = self;
        if r.revocation_poll_interval == 0 {
            problem(
                p,
                "revocation.revocation_poll_interval",
                "must be at least 1 second",
            );
        }
        let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Settings {
            poll: PollConfig {
                interval: Duration::from_secs(r.revocation_poll_interval.max(1)),
                max_token_lifetime: secs(r.token_expiration),
                allow_expired_window: secs(r.allow_expired_window),
            },
            staleness_limit: secs(r.staleness_limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_an_empty_table() {
        let empty: Section = toml::from_str("").unwrap();
        let d = Section::default();
        assert_eq!(
            (
                empty.enabled,
                empty.revocation_poll_interval,
                empty.staleness_limit,
                empty.token_expiration,
                empty.allow_expired_window
            ),
            (
                d.enabled,
                d.revocation_poll_interval,
                d.staleness_limit,
                d.token_expiration,
                d.allow_expired_window
            )
        );
    }
}
