//! TokenReview (`authentication.k8s.io/v1` and `v1beta1`): the request the
//! apiserver POSTs, and the answer.
//!
//! The answers differ from k8s-keystone-auth's where the apiserver's cache
//! needs it (cloud-provider-openstack#1318): an invalid, expired or revoked
//! token is HTTP 200 with `status.authenticated = false` (the apiserver
//! caches it for `--authentication-token-webhook-cache-ttl`), never a 401,
//! which it does not cache; Keystone unavailable is an HTTP error (503), so
//! nothing is cached as a denial.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    identity::{Identity, Scope},
    token::Token,
};

/// The TokenReview API versions the apiserver may send
/// (`--authentication-token-webhook-version`, `v1beta1` by default before 1.19's `v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `authentication.k8s.io/v1`.
    V1,
    /// `authentication.k8s.io/v1beta1`.
    V1beta1,
}

impl Version {
    /// The `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            Version::V1 => "authentication.k8s.io/v1",
            Version::V1beta1 => "authentication.k8s.io/v1beta1",
        }
    }
}

/// A TokenReview the apiserver sent.
#[derive(Debug)]
pub struct Review {
    /// Its version, echoed in the answer.
    pub version: Version,
    /// The bearer token to review.
    pub token: Option<Token>,
    /// `spec.audiences`, echoed in `status.audiences` when authenticated.
    pub audiences: Vec<String>,
}

/// Why a body is no TokenReview (answered 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadReview {
    /// Not JSON, or not the TokenReview shape.
    #[error("not a TokenReview: {0}")]
    Malformed(String),
    /// A TokenReview of an API version stonegate does not speak.
    #[error("unsupported apiVersion {0:?} (authentication.k8s.io/v1 or v1beta1)")]
    Version(String),
    /// Another kind.
    #[error("kind {0:?} is not TokenReview")]
    Kind(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    api_version: String,
    kind: String,
    #[serde(default)]
    spec: WireSpec,
}

#[derive(Deserialize, Default)]
struct WireSpec {
    #[serde(default)]
    token: String,
    #[serde(default)]
    audiences: Vec<String>,
}

impl Review {
    /// Parses a TokenReview request body.
    pub fn parse(body: &[u8]) -> Result<Self, BadReview> {
        let wire: Wire =
            serde_json::from_slice(body).map_err(|e| BadReview::Malformed(e.to_string()))?;
        let version = match wire.api_version.as_str() {
            "authentication.k8s.io/v1" => Version::V1,
            "authentication.k8s.io/v1beta1" => Version::V1beta1,
            other => return Err(BadReview::Version(other.to_owned())),
        };
        if wire.kind != "TokenReview" {
            return Err(BadReview::Kind(wire.kind));
        }
        let token = http::HeaderValue::from_str(&wire.spec.token)
            .ok()
            .and_then(|v| Token::from_header(&v));
        Ok(Review {
            version,
            token,
            audiences: wire.spec.audiences,
        })
    }
}

/// The user info the apiserver gets for an authenticated token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// The Keystone user name.
    pub username: String,
    /// The Keystone user id.
    pub uid: String,
    /// The user's Keystone group names (a federated token's: its mapped
    /// group ids), then the project id.
    pub groups: Vec<String>,
    /// k8s-keystone-auth's `alpha.kubernetes.io/identity/...` keys.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The `extra` key prefix of k8s-keystone-auth.
const EXTRA: &str = "alpha.kubernetes.io/identity/";

impl UserInfo {
    /// The user info of an identity whose user belongs to `groups` (names,
    /// or a federated token's group ids):
    /// project-scoped, with the project id as a group and the project keys
    /// in `extra`; any other scope only when `project_required` is false
    /// (then without them), else `None` (k8s-keystone-auth requires a
    /// project: its groups and extra keys name one).
    pub fn of(id: &Identity, groups: &[String], project_required: bool) -> Option<Self> {
        let s = |v: &Option<std::sync::Arc<str>>| v.as_deref().unwrap_or_default().to_owned();
        let project = match &id.scope {
            Scope::Project(p) => Some((p.project.id.as_deref()?.to_owned(), s(&p.project.name))),
            _ if project_required => return None,
            _ => None,
        };
        let mut extra = BTreeMap::new();
        extra.insert(
            format!("{EXTRA}roles"),
            id.roles.iter().map(|r| r.to_string()).collect(),
        );
        extra.insert(
            format!("{EXTRA}user/domain/id"),
            vec![s(&id.user_domain.id)],
        );
        extra.insert(
            format!("{EXTRA}user/domain/name"),
            vec![s(&id.user_domain.name)],
        );
        let mut all_groups: Vec<String> = groups.to_vec();
        if let Some((project_id, project_name)) = project {
            extra.insert(format!("{EXTRA}project/id"), vec![project_id.clone()]);
            extra.insert(format!("{EXTRA}project/name"), vec![project_name]);
            all_groups.push(project_id);
        }
        Some(UserInfo {
            username: id.user.name.as_deref()?.to_owned(),
            uid: id.user.id.as_deref()?.to_owned(),
            groups: all_groups,
            extra,
        })
    }
}

/// The answer body: authenticated with `user`, or not (`None`), in the
/// review's own version.
pub fn answer(review: &Review, user: Option<&UserInfo>) -> Value {
    let status = match user {
        Some(u) => json!({
            "authenticated": true,
            "user": u,
            "audiences": review.audiences,
        }),
        None => json!({ "authenticated": false }),
    };
    json!({
        "apiVersion": review.version.api_version(),
        "kind": "TokenReview",
        "status": status,
    })
}

#[cfg(test)]
mod tests;
