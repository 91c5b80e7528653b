//! `POST /webhook`: the kube-apiserver's TokenReview and
//! SubjectAccessReview, told apart by `kind` as k8s-keystone-auth's
//! `/webhook` does, answered with the one validator.
//!
//! | TokenReview | answer |
//! | --- | --- |
//! | valid token (project-scoped unless relaxed) | 200, `authenticated: true`, the user info ([`UserInfo`]), role mappings applied |
//! | missing, invalid, expired, revoked token; another scope; groups refused | 200, `authenticated: false` (the apiserver caches it) |
//! | Keystone unavailable | 503 (the apiserver counts it an error and caches nothing) |
//! | not a TokenReview of `v1` / `v1beta1` | 400 |

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    authorization,
    settings::Settings,
    token_review::{self, Review, UserInfo},
};
use crate::{
    gate::Handle,
    identity::{Identity, Scope},
    keystone::{self, user_groups::Groups},
    metrics::{Metrics, Outcome},
    token::Token,
    validator::Denied,
};

/// The path the apiserver's webhook kubeconfigs name.
pub const PATH: &str = "/webhook";

/// Largest review body read (the apiserver's are a few KiB).
const MAX_BODY: usize = 1024 * 1024;

/// Users whose groups are held at most.
const GROUPS_CAPACITY: u64 = 10_000;

/// The webhook: the gate it decides with, its `[kubernetes]` settings
/// (replaced on reload) and the users' Keystone groups, cached per user.
#[derive(Clone, Debug)]
pub struct Webhook {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    gate: Handle,
    metrics: Metrics,
    settings: RwLock<Arc<Settings>>,
    /// User id → group names, for as long as a validated token is cached.
    groups: moka::future::Cache<Arc<str>, Arc<[String]>>,
}

/// Why a user's groups are not known.
#[derive(Debug, thiserror::Error)]
enum GroupsError {
    /// Keystone refused the listing with the user's token.
    #[error("Keystone refused to list the user's groups ({0})")]
    Refused(StatusCode),
    /// Keystone could not answer.
    #[error(transparent)]
    Keystone(#[from] keystone::Error),
}

/// Keystone could not say whether a token authenticates (answered 503).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unavailable(String);

/// The two keys every review has.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kind {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

impl Webhook {
    /// The webhook deciding with whatever gate `handle` holds; groups are
    /// kept as long as the token cache keeps a verdict (`token_cache_time`).
    pub fn new(handle: Handle, settings: Settings, metrics: Metrics) -> Self {
        let ttl = handle.get().validator.settings().token_cache_time;
        Self {
            inner: Arc::new(Inner {
                gate: handle,
                metrics: metrics.at_door(crate::metrics::Door::Kubernetes),
                settings: RwLock::new(Arc::new(settings)),
                groups: moka::future::Cache::builder()
                    .max_capacity(GROUPS_CAPACITY)
                    .time_to_live(ttl.max(Duration::from_secs(1)))
                    .build(),
            }),
        }
    }

    /// Puts reloaded `[kubernetes]` settings (role mappings, policy) in
    /// place for the reviews that start from now on.
    pub fn replace(&self, settings: Settings) {
        let settings = Arc::new(settings);
        match self.inner.settings.write() {
            Ok(mut s) => *s = settings,
            Err(p) => *p.into_inner() = settings,
        }
    }

    fn settings(&self) -> Arc<Settings> {
        match self.inner.settings.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Answers one request of the webhook listener.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if req.uri().path() != PATH {
            return answer(
                StatusCode::NOT_FOUND,
                &json!({"error": "not found: the webhook is POST /webhook"}),
            );
        }
        if req.method() != Method::POST {
            let mut r = answer(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "the webhook takes POST"}),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &json!({"error": "review body unreadable or over 1 MiB"}),
                )
            }
        };
        let kind: Kind = match serde_json::from_slice(&body) {
            Ok(k) => k,
            Err(e) => return bad_request(&format!("not a JSON review: {e}")),
        };
        match kind.kind.as_str() {
            "TokenReview" => self.token_review(&body).await,
            "SubjectAccessReview" => {
                let (status, doc) = authorization::review(self.settings().policy.as_ref(), &body);
                answer(status, &doc)
            }
            other => bad_request(&format!(
                "unknown kind {other:?} (apiVersion {:?}): the webhook takes TokenReview and SubjectAccessReview",
                kind.api_version
            )),
        }
    }

    /// One TokenReview.
    async fn token_review(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let review = match Review::parse(body) {
            Ok(r) => r,
            Err(e) => return bad_request(&e.to_string()),
        };
        match self.authenticate(&review).await {
            Ok(Some(user)) => {
                self.inner.metrics.request(Outcome::Forwarded);
                answer(StatusCode::OK, &token_review::answer(&review, Some(&user)))
            }
            Ok(None) => {
                self.inner.metrics.request(Outcome::Unauthorized);
                answer(StatusCode::OK, &token_review::answer(&review, None))
            }
            Err(e) => {
                self.inner.metrics.request(Outcome::KeystoneUnavailable);
                tracing::warn!(error = %e, "kubernetes: Keystone unavailable; answering 503");
                let mut doc = token_review::answer(&review, None);
                doc["status"]["error"] =
                    json!("Keystone is temporarily unavailable; the token is not authenticated");
                answer(StatusCode::SERVICE_UNAVAILABLE, &doc)
            }
        }
    }

    /// The user info of the review's token: `Ok(None)` when it does not
    /// authenticate, `Err` when Keystone could not say.
    async fn authenticate(&self, review: &Review) -> Result<Option<UserInfo>, Unavailable> {
        let Some(token) = &review.token else {
            return Ok(None);
        };
        let Some(id) = self.identify(token).await? else {
            return Ok(None);
        };
        let settings = self.settings();
        let fingerprint = token.fingerprint();
        if settings.require_project_scope && !matches!(id.scope, Scope::Project(_)) {
            tracing::info!(token = %fingerprint, audit_id = id.audit_id(), "kubernetes: token is not project-scoped; not authenticated (kubernetes.require_project_scope)");
            return Ok(None);
        }
        let groups = match self.groups(&id, token).await {
            Ok(g) => g,
            Err(e) => match &*e {
                GroupsError::Refused(status) => {
                    tracing::info!(token = %fingerprint, audit_id = id.audit_id(), %status, "kubernetes: Keystone refused the user's group listing; not authenticated");
                    return Ok(None);
                }
                GroupsError::Keystone(_) => return Err(Unavailable(e.to_string())),
            },
        };
        let Some(mut user) = UserInfo::of(&id, &groups, settings.require_project_scope) else {
            tracing::info!(token = %fingerprint, audit_id = id.audit_id(), "kubernetes: token without user name, id or project id; not authenticated");
            return Ok(None);
        };
        settings.role_mappings.apply(&id.roles, &mut user);
        Ok(Some(user))
    }

    /// The validator's verdict on `token`, as if it came in `X-Auth-Token`
    /// (the same cache, local validation, revocation checks).
    async fn identify(&self, token: &Token) -> Result<Option<Arc<Identity>>, Unavailable> {
        let Ok(mut value) = HeaderValue::from_str(token.expose()) else {
            return Ok(None);
        };
        value.set_sensitive(true);
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert("x-auth-token", value);
        let gate = self.inner.gate.get();
        // A TokenReview names no client certificate: a certificate-bound
        // token is refused here.
        match gate
            .validator
            .identify(&Method::POST, PATH, &headers, None)
            .await
        {
            Ok(ctx) => Ok(ctx.user),
            // Only `X-Auth-Token` is set: no conflict can arise; fail closed anyway.
            Err(Denied::Unauthorized | Denied::Forbidden { .. } | Denied::ConflictingTokens) => {
                Ok(None)
            }
            Err(Denied::KeystoneUnavailable(e)) => Err(Unavailable(e.to_string())),
        }
    }

    /// The user's Keystone groups. A federated token carries the groups its
    /// identity provider's mapping gave the user (their ids: the token names
    /// no group, and an ephemeral user has no membership Keystone would
    /// list); any other user's group names are asked with the user's own
    /// token and cached per user (only answers, never failures).
    async fn groups(
        &self,
        id: &Identity,
        token: &Token,
    ) -> Result<Arc<[String]>, Arc<GroupsError>> {
        if let Some(federation) = id.federation() {
            return Ok(federation.group_ids.iter().map(|g| g.to_string()).collect());
        }
        let Some(user_id) = id.user.id.clone() else {
            return Ok(Arc::from(Vec::new()));
        };
        let keystone = self.inner.gate.get().validator.keystone().clone();
        self.inner
            .groups
            .try_get_with(user_id.clone(), async move {
                match keystone.user_groups(&user_id, token).await? {
                    Groups::Listed(names) => Ok(Arc::from(names)),
                    Groups::Refused(status) => Err(GroupsError::Refused(status)),
                }
            })
            .await
    }
}

fn bad_request(message: &str) -> Response<Full<Bytes>> {
    answer(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

fn answer(status: StatusCode, doc: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(doc.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
