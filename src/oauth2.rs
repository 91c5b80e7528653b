//! `[oauth2]`: the OAuth 2.0 ways Keystone tokens arrive, as
//! keystonemiddleware's `oauth2_token` filter reads them: an
//! `Authorization: Bearer <token>` header (RFC 6750), taken only when the
//! request has no `X-Auth-Token`. Off by default: a service that never
//! announced Bearer keeps refusing it.

use serde::Deserialize;

use crate::settings::Problem;

/// `[oauth2]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Accept `Authorization: Bearer <token>` when no `X-Auth-Token` (or
    /// `X-Storage-Token`) is sent.
    #[serde(default)]
    pub bearer: bool,
}

/// `[oauth2]`, checked.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Whether `Authorization: Bearer` is a token source.
    pub bearer: bool,
}

impl Section {
    /// Checks the section (nothing in it can be wrong yet; `p` is where its
    /// problems would go, as for every section).
    pub fn build(&self, _p: &mut Vec<Problem>) -> Settings {
        Settings {
            bearer: self.bearer,
        }
    }
}

/// The RFC 6750 challenge a 401 carries beside Keystone's when Bearer tokens
/// are accepted: `realm` is the URI Keystone's challenge names, and the
/// error says the token sent (if any) is not usable. `None` when `realm`
/// cannot be a quoted header parameter (Keystone's challenge, checked
/// first, refuses such a URI already).
pub fn bearer_challenge(realm: &str) -> Option<http::HeaderValue> {
    if realm.contains(['"', '\\']) {
        return None;
    }
    http::HeaderValue::from_str(&format!(
        "Bearer realm=\"{realm}\", error=\"invalid_token\""
    ))
    .ok()
}
