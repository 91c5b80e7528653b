//! [`AuthTokenLayer`]: the `tower::Layer` Rust services embed (axum or any
//! tower stack), and the core of the sidecar proxy.
//!
//! For every request it sanitizes the head (`headers::sanitize`: the client's
//! `Connection` list, forged identity headers, aliases), checks the path
//! ([`crate::path`]: an ambiguous one gets 400, any other is put in its
//! canonical form, the one public routes and access rules are decided on and
//! the inner service receives), authenticates, and either calls the inner
//! service with the identity headers set and an [`AuthContext`] in the
//! request extensions, or answers itself (400/401/503).
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
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{field::Empty, Instrument};

use crate::{
    audit::{Auditor, Record},
    connection::ConnectionInfo,
    gate::{Gate, Handle},
    headers,
    metrics::{Metrics, Outcome},
    oauth2::ConnectionCertificate,
    path::{self, Canonical},
    rejection::{BodyLeft, Rejection, UpstreamFailure},
    request_id::{Correlation, RequestId},
    session::{Attached, Endpoint, Sessions},
    validator::Validator,
};

pub use crate::validator::AuthContext;

/// Adds Keystone token authentication to a service.
#[derive(Clone, Debug)]
pub struct AuthTokenLayer {
    authenticator: Arc<Authenticator>,
}

/// What every service of one layer shares: the gate it decides with
/// and the metrics it counts into; it runs each request through the checks.
#[derive(Debug)]
struct Authenticator {
    gate: Handle,
    metrics: Metrics,
}

impl AuthTokenLayer {
    /// A layer deciding with `gate` (from [`crate::stack::build`]), counting
    /// into `metrics`.
    pub fn new(gate: Gate, metrics: Metrics) -> Self {
        Self::with_handle(Handle::new(gate), metrics)
    }

    /// A layer deciding with whatever gate `handle` holds (replaceable
    /// at run time, e.g. on a configuration reload).
    pub fn with_handle(handle: Handle, metrics: Metrics) -> Self {
        Self {
            authenticator: Arc::new(Authenticator {
                gate: handle,
                metrics,
            }),
        }
    }
}

impl<S> Layer<S> for AuthTokenLayer {
    type Service = AuthTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthTokenService {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// The service made by [`AuthTokenLayer`].
#[derive(Clone, Debug)]
pub struct AuthTokenService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthTokenService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Send + 'static,
{
    type Response = Response<Either<ResBody, Full<Bytes>>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; keep the ready one for this call (tower-http's pattern).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        // The request's future goes straight into its box: wrapping it in
        // another `async` block would move its whole state once more.
        Box::pin(self.authenticator.clone().handle(inner, req))
    }
}

/// An answer stonegate gives itself.
type Answer = Response<Full<Bytes>>;

/// What the access log and a refusal keep from the request's arrival.
#[derive(Debug, Clone)]
struct Arrival {
    started: Instant,
    /// How many forged headers were stripped.
    forged: usize,
    body_left: BodyLeft,
    /// The request's `X-OpenStack-Request-ID` and trace context, carried on
    /// the Keystone calls made for it and to the upstream.
    correlation: Correlation,
    /// The audit trail, when `[audit]` is on.
    audit: Option<Arc<Auditor>>,
}

impl Arrival {
    /// The request's `X-OpenStack-Request-ID`.
    fn request_id(&self) -> &RequestId {
        self.correlation.id()
    }

    /// The audit trail, when it audits this request (`refused` by
    /// stonegate or not).
    fn auditor<B>(&self, req: &Request<B>, refused: bool) -> Option<&Auditor> {
        (self.audit.as_deref()).filter(|a| a.audits(req.method(), req.uri().path(), refused))
    }

    /// The audit record of `req`, decided `ctx` (`None`: refused).
    fn record<B>(&self, req: &Request<B>, ctx: Option<&AuthContext>) -> Arc<Record> {
        let conn = req.extensions().get::<ConnectionInfo>();
        Record::of(
            req.method(),
            req.uri(),
            req.headers(),
            conn,
            ctx,
            self.request_id(),
        )
    }

    /// Audits a request stonegate refused with `status`: its request and
    /// response events together.
    fn audit_refusal<B>(&self, req: &Request<B>, status: u16) {
        if let Some(a) = self.auditor(req, true) {
            let record = self.record(req, None);
            a.request(&record);
            a.response(&record, status);
        }
    }
}

/// The request's method and path for the access log, taken before the
/// request goes on (the path only when the access log is on).
#[derive(Debug)]
struct AccessLine {
    log: bool,
    method: Method,
    path: String,
}

/// The decision on a request that is not a session endpoint, and the
/// session it carried.
type Decided = (Result<AuthContext, Rejection>, Option<Attached>);

impl Authenticator {
    /// One request, from its head to its answer: the head check and the
    /// request id (set on the request going on, on the Keystone calls made
    /// for it, and on the answer), then [`Self::answer`].
    async fn handle<S, ReqBody, ResBody>(
        self: Arc<Self>,
        inner: S,
        mut req: Request<ReqBody>,
    ) -> Result<Response<Either<ResBody, Full<Bytes>>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ReqBody: http_body::Body,
        ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let gate = self.gate.get();
        let (v, sessions) = (&gate.validator, gate.sessions.as_deref());
        let forged = headers::sanitize(req.headers_mut());
        let peer = req
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.peer.ip());
        let trusted = v.settings().request_id.trusts(peer);
        let correlation = Correlation::take(req.headers_mut(), trusted);
        correlation.set_on(req.headers_mut());
        req.extensions_mut().insert(correlation.id().clone());
        let id = correlation.id().header_value().clone();
        let span = request_span(&req, &correlation);
        let arrival = Arrival {
            started,
            forged,
            body_left: BodyLeft::of(&req),
            correlation,
            audit: gate.audit.clone(),
        };
        let answer = self.answer(v, sessions, inner, req, arrival);
        // Without a trace layer the span is disabled and entering it does
        // nothing: the future is not wrapped then, since each wrapper moves
        // all of it once more (issue 16).
        let mut resp = if span.is_disabled() {
            answer.await?
        } else {
            answer.instrument(span.clone()).await?
        };
        resp.headers_mut().insert(crate::request_id::HEADER, id);
        crate::trace::record_status(&span, resp.status());
        Ok(resp)
    }

    /// Counts the request's outcome, and puts it on its span.
    fn count(&self, outcome: Outcome) {
        self.metrics.request(outcome);
        tracing::Span::current().record("outcome", outcome.as_str());
    }

    /// The path check, a session endpoint, else the decision and then
    /// forwarding or refusal.
    async fn answer<S, ReqBody, ResBody>(
        &self,
        v: &Validator,
        sessions: Option<&Sessions>,
        inner: S,
        mut req: Request<ReqBody>,
        arrival: Arrival,
    ) -> Result<Response<Either<ResBody, Full<Bytes>>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ReqBody: http_body::Body,
        ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // One canonical path, decided on and forwarded; `decoded` is set
        // only when it differs from the (rewritten) URI's path.
        let decoded = match canonicalize(&mut req) {
            Ok(decoded) => decoded,
            Err(ambiguous) => {
                let resp = self.refuse_path(v, &req, ambiguous, arrival);
                return Ok(resp.map(Either::Right));
            }
        };
        if let Some(sessions) = sessions {
            if let Some(endpoint) = sessions.endpoint(req.uri().path()) {
                // Boxed: a login's future (a Keystone call) is large, and
                // would otherwise be part of every request's. Its Keystone
                // calls carry the request's id and trace context.
                let correlation = arrival.correlation.clone();
                let serve = self.session_endpoint(v, sessions, endpoint, req, arrival);
                let resp = Box::pin(correlation.scope(serve)).await;
                return Ok(resp.map(Either::Right));
            }
        }
        let (decision, session) = match self
            .decide(v, sessions, &mut req, decoded.as_deref(), &arrival)
            .await
        {
            Ok(decided) => decided,
            Err(resp) => return Ok(resp.map(Either::Right)),
        };
        // Log fields are built only when the access log is on.
        let log = tracing::enabled!(target: "stonegate::access", tracing::Level::INFO);
        let line = AccessLine {
            log,
            method: req.method().clone(),
            path: if log {
                req.uri().path().to_owned()
            } else {
                String::new()
            },
        };
        match decision {
            Ok(ctx) => self.forward(v, inner, req, ctx, line, arrival).await,
            Err(rejection) => {
                let session = session.as_ref().zip(sessions);
                let resp = self.refuse(v, &req, rejection, session, line, arrival);
                Ok(resp.map(Either::Right))
            }
        }
    }

    /// The 400 of a path that could be read more than one way.
    fn refuse_path<B>(
        &self,
        v: &Validator,
        req: &Request<B>,
        ambiguous: path::Ambiguous,
        arrival: Arrival,
    ) -> Answer {
        let rejection = Rejection::AmbiguousPath(ambiguous);
        self.count(rejection.outcome());
        tracing::info!(
            target: "stonegate::access",
            method = %req.method(),
            status = rejection.status().as_u16(),
            outcome = rejection.outcome().as_str(),
            reason = %rejection,
            request_id = %arrival.request_id(),
            forged_headers = arrival.forged,
            latency_us = arrival.started.elapsed().as_micros() as u64,
        );
        arrival.audit_refusal(req, rejection.status().as_u16());
        let resp = rejection.into_response(&v.settings().challenges);
        arrival.body_left.answer(resp)
    }

    /// Answers a session endpoint (login or logout).
    async fn session_endpoint<B>(
        &self,
        v: &Validator,
        sessions: &Sessions,
        endpoint: Endpoint,
        req: Request<B>,
        arrival: Arrival,
    ) -> Answer
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let resp = sessions.serve(v, &self.metrics, endpoint, req).await;
        self.count(Outcome::SessionEndpoint);
        tracing::info!(
            target: "stonegate::access",
            endpoint = ?endpoint,
            status = resp.status().as_u16(),
            outcome = Outcome::SessionEndpoint.as_str(),
            request_id = %arrival.request_id(),
            forged_headers = arrival.forged,
            latency_us = arrival.started.elapsed().as_micros() as u64,
        );
        arrival.body_left.answer(resp)
    }

    /// Public, or authenticated (with its session cookie's token when it
    /// has a session and no token). `Err`: the session was refused, and the
    /// answer to send.
    async fn decide<B>(
        &self,
        v: &Validator,
        sessions: Option<&Sessions>,
        req: &mut Request<B>,
        decoded: Option<&str>,
        arrival: &Arrival,
    ) -> Result<Decided, Answer> {
        let peer = req
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.peer.ip());
        // The connection's own verified client certificate (`[tls]
        // client_ca_file`), or a trusted ingress's header.
        let connection = req.extensions().get::<ConnectionCertificate>().cloned();
        let certificate = v.take_client_certificate(req.headers_mut(), peer, connection.as_ref());
        let path = decoded.unwrap_or(req.uri().path());
        if v.is_public(req.method(), path, req.headers()) {
            if req.headers().contains_key(header::UPGRADE)
                && v.allows_public_upgrade(req.method(), path)
            {
                req.extensions_mut().insert(crate::routes::PublicUpgrade);
            }
            let public = AuthContext {
                user: None,
                service: None,
                user_fingerprint: None,
                public: true,
            };
            return Ok((Ok(public), None));
        }
        let mut session = None;
        if let Some(sessions) = sessions {
            match sessions.attach(v, req, &self.metrics) {
                Ok(attached) => session = attached,
                Err(resp) => {
                    self.count(Outcome::SessionRejected);
                    tracing::info!(
                        target: "stonegate::access",
                        method = %req.method(),
                        status = resp.status().as_u16(),
                        outcome = Outcome::SessionRejected.as_str(),
                        request_id = %arrival.request_id(),
                        forged_headers = arrival.forged,
                        latency_us = arrival.started.elapsed().as_micros() as u64,
                    );
                    return Err(arrival.body_left.answer(*resp));
                }
            }
        }
        let path = decoded.unwrap_or(req.uri().path());
        // The Keystone calls made for the request carry its id and trace
        // context (only the decision makes any).
        let decision = (arrival.correlation.clone())
            .scope(v.authenticate(req.method(), path, req.headers(), certificate.as_ref()))
            .await
            .map_err(Rejection::from);
        Ok((decision, session))
    }

    /// Calls the inner service with the identity headers set and `ctx` in
    /// the request extensions; a 401 it answers gets `WWW-Authenticate`.
    async fn forward<S, ReqBody, ResBody>(
        &self,
        v: &Validator,
        mut inner: S,
        mut req: Request<ReqBody>,
        ctx: AuthContext,
        line: AccessLine,
        arrival: Arrival,
    ) -> Result<Response<Either<ResBody, Full<Bytes>>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let settings = v.settings();
        headers::inject(req.headers_mut(), &ctx, settings.include_service_catalog);
        let confirmed = ctx.is_confirmed();
        let public = ctx.public;
        let audit_id = if line.log {
            ctx.user
                .as_ref()
                .and_then(|u| u.audit_id().map(str::to_owned))
        } else {
            None
        };
        let fp = ctx.user_fingerprint;
        let audit = arrival.auditor(&req, false).map(|a| {
            let record = arrival.record(&req, Some(&ctx));
            a.request(&record);
            (a, record)
        });
        let span = tracing::Span::current();
        if !span.is_disabled() {
            if let Some(a) = ctx.user.as_ref().and_then(|u| u.audit_id()) {
                span.record("audit_id", a);
            }
        }
        req.extensions_mut().insert(ctx);
        let upstream = tracing::info_span!(
            target: crate::trace::TARGET,
            "stonegate.upstream",
            otel.kind = "client",
            http.response.status_code = Empty,
            otel.status_code = Empty,
        );
        if !upstream.is_disabled() {
            // The upstream's parent is this span, in the caller's trace.
            let _in = upstream.enter();
            arrival.correlation.set_on(req.headers_mut());
        }
        // As in `handle`: no wrapper around the upstream's future unless a
        // trace layer records its span.
        let mut resp = if upstream.is_disabled() {
            inner.call(req).await?
        } else {
            inner.call(req).instrument(upstream.clone()).await?
        };
        crate::trace::record_status(&upstream, resp.status());
        if let Some((a, record)) = &audit {
            a.response(record, resp.status().as_u16());
        }
        if resp.status() == StatusCode::UNAUTHORIZED {
            settings.challenges.set_on(resp.headers_mut());
        }
        let outcome = match resp.extensions().get::<UpstreamFailure>() {
            Some(UpstreamFailure(o)) => *o,
            None if public => Outcome::Public,
            None if confirmed => Outcome::Forwarded,
            None => Outcome::ForwardedUnconfirmed,
        };
        self.count(outcome);
        tracing::info!(
            target: "stonegate::access",
            method = %line.method,
            path = %line.path,
            status = resp.status().as_u16(),
            outcome = outcome.as_str(),
            token = fp.map(|f| f.to_string()),
            audit_id,
            request_id = %arrival.request_id(),
            forged_headers = arrival.forged,
            latency_us = arrival.started.elapsed().as_micros() as u64,
        );
        Ok(resp.map(Either::Left))
    }

    /// The refusal of a decided request; a session whose token Keystone no
    /// longer accepts is over, so its cookies are cleared.
    fn refuse<B>(
        &self,
        v: &Validator,
        req: &Request<B>,
        rejection: Rejection,
        session: Option<(&Attached, &Sessions)>,
        line: AccessLine,
        arrival: Arrival,
    ) -> Answer {
        let unauthorized = matches!(rejection, Rejection::Unauthorized);
        let outcome = rejection.outcome();
        self.count(outcome);
        let status = rejection.status().as_u16();
        tracing::info!(
            target: "stonegate::access",
            method = %line.method,
            path = %line.path,
            status,
            outcome = outcome.as_str(),
            reason = %rejection,
            request_id = %arrival.request_id(),
            forged_headers = arrival.forged,
            latency_us = arrival.started.elapsed().as_micros() as u64,
        );
        arrival.audit_refusal(req, status);
        let mut resp = rejection.into_response(&v.settings().challenges);
        // A session whose token Keystone no longer accepts is over.
        if let (Some((attached, sessions)), true) = (session, unauthorized) {
            sessions.end_rejected(attached, crate::session::request_is_tls(req), &mut resp);
        }
        arrival.body_left.answer(resp)
    }
}

/// The span of one request (disabled without a trace layer), its parent the
/// caller's trace context.
fn request_span<B>(req: &Request<B>, correlation: &Correlation) -> tracing::Span {
    let span = tracing::info_span!(
        target: crate::trace::TARGET,
        "stonegate.request",
        otel.kind = "server",
        http.request.method = %req.method(),
        request_id = %correlation.id(),
        outcome = Empty,
        audit_id = Empty,
        cache.result = Empty,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    correlation.adopt(&span);
    span
}

/// Checks the request's path and puts its canonical form in the URI; the
/// decoded path when it differs from that form (percent-escapes).
fn canonicalize<B>(req: &mut Request<B>) -> Result<Option<String>, path::Ambiguous> {
    let (decoded, forward) = Canonical::parse(req.uri().path())?.into_changes();
    if let Some(forward) = forward.filter(|f| f != req.uri().path()) {
        let uri = path::with_path(req.uri(), &forward).ok_or(path::Ambiguous::NotOriginForm)?;
        *req.uri_mut() = uri;
    }
    Ok(decoded.filter(|d| d != req.uri().path()))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    /// A layer whose Keystone is never reached (requests here carry no token)
    /// and whose only public route is `/pub/**`.
    fn layer() -> AuthTokenLayer {
        let toml = r#"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:8000"
admin_listen = "127.0.0.1:9090"
[keystone_authtoken]
auth_url = "http://127.0.0.1:9/v3"
username = "svc"
password = "pw"
user_domain_name = "Default"
project_name = "service"
project_domain_name = "Default"
[routes]
public = [{ method = "GET", path = "/pub/**" }]
"#;
        let file = crate::config::File::parse(toml).unwrap();
        let settings = file.build(&|_| None).unwrap();
        let metrics = Metrics::unregistered();
        let keystone = crate::keystone::Client::new(settings.keystone, metrics.clone()).unwrap();
        let validator = Validator::new(keystone, settings.auth, metrics.clone());
        let gate = Gate {
            validator: Arc::new(validator),
            sessions: None,
            audit: None,
        };
        AuthTokenLayer::new(gate, metrics)
    }

    /// The status, and the URI the inner service saw (if it was called).
    async fn call(uri: &str) -> (StatusCode, Option<String>) {
        let seen = Arc::new(Mutex::new(None));
        let record = seen.clone();
        let inner = tower::service_fn(move |req: Request<Full<Bytes>>| {
            *record.lock().unwrap() = Some(req.uri().to_string());
            async { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new()))) }
        });
        let req = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
        let resp = layer().layer(inner).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if status == StatusCode::BAD_REQUEST {
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(doc["error"]["code"], 400);
        }
        let seen = seen.lock().unwrap().clone();
        (status, seen)
    }

    #[tokio::test]
    async fn the_inner_service_sees_the_path_public_routes_were_decided_on() {
        assert_eq!(
            call("/pub/%78?q=%2e").await,
            (StatusCode::OK, Some("/pub/x?q=%2e".into()))
        );
        assert_eq!(
            call("http://h/p%75b/x").await,
            (StatusCode::OK, Some("http://h/pub/x".into()))
        );
        for ambiguous in ["/pub/../x", "/pub/..;/x", "/pub/%2e%2e/x", "/pub//x", "*"] {
            assert_eq!(
                call(ambiguous).await,
                (StatusCode::BAD_REQUEST, None),
                "{ambiguous}"
            );
        }
        assert_eq!(call("/x").await, (StatusCode::UNAUTHORIZED, None));
    }
}
