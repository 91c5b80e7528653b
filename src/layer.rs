//! [`AuthTokenLayer`]: the `tower::Layer` Rust services embed (axum or any
//! tower stack), and the core of the sidecar proxy.
//!
//! For every request it removes forged identity headers, authenticates, and
//! either calls the inner service with the identity headers set and an
//! [`AuthContext`] in the request extensions, or answers itself (401/503).
//! A 401 from the inner service gets `WWW-Authenticate` added. Rejections are
//! responses, never errors (`type Error = S::Error`).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    headers,
    metrics::Metrics,
    validator::{Handle, Validator},
};

pub use crate::validator::AuthContext;

/// Adds Keystone token authentication to a service.
#[derive(Clone, Debug)]
pub struct AuthTokenLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    validator: Handle,
    metrics: Metrics,
}

impl AuthTokenLayer {
    /// A layer deciding with `validator`, counting into `metrics`.
    pub fn new(validator: Arc<Validator>, metrics: Metrics) -> Self {
        Self::with_handle(Handle::new(validator), metrics)
    }

    /// A layer deciding with whatever validator `handle` holds (replaceable
    /// at run time, e.g. on a configuration reload).
    pub fn with_handle(handle: Handle, metrics: Metrics) -> Self {
        Self {
            shared: Arc::new(Shared {
                validator: handle,
                metrics,
            }),
        }
    }
}

impl<S> Layer<S> for AuthTokenLayer {
    type Service = AuthToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthToken {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`AuthTokenLayer`].
#[derive(Clone, Debug)]
pub struct AuthToken<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Marks a response that stonegate produced because the upstream failed, so
/// the request is counted under that outcome.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamFailure(pub &'static str);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthToken<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<Either<ResBody, Full<Bytes>>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; keep the ready one for this call (tower-http's pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let started = Instant::now();
            let v = &shared.validator.get();
            let settings = v.settings();
            let forged = headers::strip_identity(req.headers_mut());
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let decision = if v.is_public(req.method(), pq, req.headers()) {
                Ok(AuthContext {
                    user: None,
                    service: None,
                    user_fingerprint: None,
                    public: true,
                })
            } else {
                v.authenticate(req.method(), req.uri().path(), req.headers())
                    .await
            };
            // Log fields are built only when the access log is on.
            let log = tracing::enabled!(target: "stonegate::access", tracing::Level::INFO);
            let method = req.method().clone();
            let path_for_log = if log {
                req.uri().path().to_owned()
            } else {
                String::new()
            };
            match decision {
                Ok(ctx) => {
                    let h = req.headers_mut();
                    match &ctx.user {
                        Some(id) => headers::set_user(h, id, settings.include_service_catalog),
                        None if ctx.public => {}
                        None => {
                            h.insert("x-identity-status", headers::INVALID);
                        }
                    }
                    match &ctx.service {
                        None => {}
                        Some(Some(id)) => headers::set_service(h, id),
                        Some(None) => {
                            h.insert("x-service-identity-status", headers::INVALID);
                        }
                    }
                    let confirmed = ctx.is_confirmed();
                    let ctx_public = ctx.public;
                    let audit_id = if log {
                        ctx.user
                            .as_ref()
                            .and_then(|u| u.audit_id().map(str::to_owned))
                    } else {
                        None
                    };
                    let fp = ctx.user_fingerprint;
                    req.extensions_mut().insert(ctx);
                    let mut resp = inner.call(req).await?;
                    if resp.status() == StatusCode::UNAUTHORIZED {
                        resp.headers_mut()
                            .insert(header::WWW_AUTHENTICATE, settings.www_authenticate.clone());
                    }
                    let public = ctx_public;
                    let outcome = match resp.extensions().get::<UpstreamFailure>() {
                        Some(UpstreamFailure(o)) => o,
                        None if public => "public",
                        None if confirmed => "forwarded",
                        None => "forwarded_unconfirmed",
                    };
                    shared.metrics.request(outcome);
                    tracing::info!(
                        target: "stonegate::access",
                        %method,
                        path = %path_for_log,
                        status = resp.status().as_u16(),
                        outcome,
                        token = fp.map(|f| f.to_string()),
                        audit_id,
                        forged_headers = forged,
                        latency_us = started.elapsed().as_micros() as u64,
                    );
                    Ok(resp.map(Either::Left))
                }
                Err(rejection) => {
                    let outcome = rejection.outcome();
                    shared.metrics.request(outcome);
                    let status = rejection.status().as_u16();
                    tracing::info!(
                        target: "stonegate::access",
                        %method,
                        path = %path_for_log,
                        status,
                        outcome,
                        reason = %rejection,
                        forged_headers = forged,
                        latency_us = started.elapsed().as_micros() as u64,
                    );
                    Ok(rejection
                        .into_response(&settings.www_authenticate)
                        .map(Either::Right))
                }
            }
        })
    }
}
