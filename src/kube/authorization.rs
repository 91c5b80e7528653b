//! SubjectAccessReview (`authorization.k8s.io/v1`, `v1beta1`): the
//! authorization webhook's answer. The interface the webhook calls
//! ([`review`]); the decision with k8s-keystone-auth's policy files is
//! built here by the SubjectAccessReview work (issue 14, section 3).
//!
//! Until a policy decides, every review gets "no opinion"
//! (`allowed: false`, no `denied`), so the apiserver's next authorizer
//! (RBAC) decides, exactly as with no policy loaded.

use http::StatusCode;
use serde_json::{json, Value};

use super::settings::Settings;

/// Answers one SubjectAccessReview `body` (its `kind` already checked):
/// the HTTP status and the answer document, echoing the request's
/// `apiVersion`. `settings` is the webhook's current `[kubernetes]`
/// (replaced on reload), which holds the policy.
pub fn review(settings: &Settings, body: &[u8]) -> (StatusCode, Value) {
    let _ = settings;
    let api_version = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("apiVersion")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let Some(api_version) = api_version
        .filter(|v| v == "authorization.k8s.io/v1" || v == "authorization.k8s.io/v1beta1")
    else {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": "SubjectAccessReview apiVersion must be authorization.k8s.io/v1 or v1beta1"}),
        );
    };
    (
        StatusCode::OK,
        json!({
            "apiVersion": api_version,
            "kind": "SubjectAccessReview",
            "status": {"allowed": false, "reason": "stonegate: no authorization policy decides this request"},
        }),
    )
}
