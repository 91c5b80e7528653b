//! The authorization webhook's wire format: a `SubjectAccessReview`
//! (`authorization.k8s.io/v1` or `v1beta1`) as kube-apiserver's webhook
//! authorizer POSTs it, and the answer, decided by the k8s-keystone-auth
//! [`Policy`] on the user the TokenReview answered
//! (`user`, `uid`, `groups`, the `alpha.kubernetes.io/identity/*` extra).
//!
//! The answer echoes `apiVersion` and `kind` and carries `status.allowed`
//! and `status.reason`. Not allowed is "no opinion" (`denied` is never
//! set: k8s-keystone-auth's policies only grant), so with
//! `--authorization-mode=...,RBAC,Webhook` RBAC still decides what no rule
//! grants. Parsing and deciding do no I/O.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::policy::{Attributes, Decision, Policy, Reason, Request, User};

/// The `kind` this module answers.
pub const KIND: &str = "SubjectAccessReview";
/// The API versions accepted (the answer echoes the request's).
pub const API_VERSIONS: [&str; 2] = ["authorization.k8s.io/v1", "authorization.k8s.io/v1beta1"];

/// Why a body is not a review this webhook can answer (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not JSON, or not of the SubjectAccessReview's shape.
    #[error("not a SubjectAccessReview: {0}")]
    Invalid(String),
    /// Another `kind` or `apiVersion`.
    #[error("unknown kind/apiVersion {kind:?} {api_version:?} (expected SubjectAccessReview, authorization.k8s.io/v1 or v1beta1)")]
    Version {
        /// The body's `kind`.
        kind: String,
        /// The body's `apiVersion`.
        api_version: String,
    },
    /// Neither `spec.resourceAttributes` nor `spec.nonResourceAttributes`.
    #[error("spec has neither resourceAttributes nor nonResourceAttributes")]
    NoAttributes,
}

/// A `SubjectAccessReview` as the apiserver sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAccessReview {
    /// `authorization.k8s.io/v1` or `v1beta1`.
    pub api_version: String,
    /// `SubjectAccessReview`.
    pub kind: String,
    /// What is asked, by whom.
    #[serde(default)]
    pub spec: Spec,
}

/// `spec` (v1 and v1beta1 differ only in the groups' field name).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// A resource request.
    pub resource_attributes: Option<ResourceAttributes>,
    /// A non-resource request.
    pub non_resource_attributes: Option<NonResourceAttributes>,
    /// The user name.
    #[serde(default)]
    pub user: String,
    /// The user's uid.
    #[serde(default)]
    pub uid: String,
    /// The groups (`v1`).
    pub groups: Option<Vec<String>>,
    /// The groups (`v1beta1`).
    pub group: Option<Vec<String>>,
    /// The TokenReview's `extra`.
    pub extra: Option<BTreeMap<String, Vec<String>>>,
}

/// `resourceAttributes` (selectors and `name` are not decided on).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResourceAttributes {
    /// `""`: cluster-wide.
    pub namespace: String,
    /// `get`, `list`, `create`, ...
    pub verb: String,
    /// The API group (`""`: core).
    pub group: String,
    /// The API version.
    pub version: String,
    /// The resource.
    pub resource: String,
    /// The subresource.
    pub subresource: String,
    /// The object's name.
    pub name: String,
}

/// `nonResourceAttributes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NonResourceAttributes {
    /// The URL path.
    pub path: String,
    /// The HTTP verb, lowercase.
    pub verb: String,
}

/// The answer: the request's `apiVersion` and `kind`, and `status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// Echoed.
    pub api_version: String,
    /// `SubjectAccessReview`.
    pub kind: &'static str,
    /// The decision.
    pub status: Status,
}

/// `status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Whether a rule allows the request.
    pub allowed: bool,
    /// Why, for the apiserver's audit log (`authorization.k8s.io/reason`).
    pub reason: String,
}

impl SubjectAccessReview {
    /// Parses a body, refusing another kind or version.
    pub fn from_slice(body: &[u8]) -> Result<Self, Error> {
        let review: Self =
            serde_json::from_slice(body).map_err(|e| Error::Invalid(e.to_string()))?;
        if review.kind != KIND || !API_VERSIONS.contains(&review.api_version.as_str()) {
            return Err(Error::Version {
                kind: review.kind,
                api_version: review.api_version,
            });
        }
        review.attributes()?;
        Ok(review)
    }

    /// The groups, from the field this `apiVersion` names them in.
    pub fn groups(&self) -> &[String] {
        let groups = if self.api_version.ends_with("/v1beta1") {
            &self.spec.group
        } else {
            &self.spec.groups
        };
        groups.as_deref().unwrap_or_default()
    }

    /// What the policy decides on (resource attributes win when, against
    /// the API's validation, both are present: k8s-keystone-auth's order).
    pub fn attributes(&self) -> Result<Attributes<'_>, Error> {
        let spec = &self.spec;
        let request = match (&spec.resource_attributes, &spec.non_resource_attributes) {
            (Some(r), _) => Request::Resource {
                verb: &r.verb,
                namespace: &r.namespace,
                group: &r.group,
                resource: &r.resource,
                subresource: &r.subresource,
            },
            (None, Some(n)) => Request::NonResource {
                verb: &n.verb,
                path: &n.path,
            },
            (None, None) => return Err(Error::NoAttributes),
        };
        Ok(Attributes {
            user: User {
                name: &spec.user,
                uid: &spec.uid,
                groups: self.groups(),
                extra: spec.extra.as_ref(),
            },
            request,
        })
    }

    /// Decides the review with `policy` (`None`: no policy file, no
    /// opinion) and builds the answer.
    pub fn answer(&self, policy: Option<&Policy>) -> Result<(Decision, Answer), Error> {
        let attributes = self.attributes()?;
        let decision = policy.map_or(
            Decision {
                allowed: false,
                reason: Reason::NoPolicyFile,
            },
            |p| p.decide(&attributes),
        );
        let answer = Answer {
            api_version: self.api_version.clone(),
            kind: KIND,
            status: Status {
                allowed: decision.allowed,
                reason: decision.reason.to_string(),
            },
        };
        Ok((decision, answer))
    }
}

/// Answers one SubjectAccessReview `body` with `policy` (`None`: no
/// `policy_file`, every review is no opinion, as k8s-keystone-auth without
/// a policy): 200 and the answer, or 400 and `{"error": ...}` for a body
/// that is not a v1/v1beta1 SubjectAccessReview.
pub fn review(policy: Option<&Policy>, body: &[u8]) -> (StatusCode, serde_json::Value) {
    let answered = SubjectAccessReview::from_slice(body).and_then(|review| review.answer(policy));
    match answered.and_then(|(decision, answer)| {
        let doc = serde_json::to_value(answer).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok((decision, doc))
    }) {
        Ok((decision, doc)) => {
            tracing::debug!(allowed = decision.allowed, reason = %decision.reason, "kubernetes: SubjectAccessReview");
            (StatusCode::OK, doc)
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

#[cfg(test)]
mod tests;
