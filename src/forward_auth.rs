//! Forward-auth: the external authentication service of an ingress proxy
//! (ingress-nginx `auth-url`, Traefik ForwardAuth, Envoy `ext_authz` HTTP).
//!
//! The proxy sends a copy of the client's request headers (never the body);
//! stonegate validates the token as the sidecar would and answers 200 with the
//! identity headers for the proxy to copy upstream, 401 with
//! `WWW-Authenticate`, or the endpoint's `unavailable_status` when Keystone is
//! down. The original method and path come only from the configured flavor's
//! headers:
//!
//! | flavor | method | path |
//! | --- | --- | --- |
//! | `nginx` | `X-Original-Method` | `X-Original-URI` |
//! | `traefik` | `X-Forwarded-Method` | `X-Forwarded-Uri` |
//! | `envoy` | the request's method | the request's path after the endpoint prefix |
//! | `envoy-grpc` | `attributes.request.http.method` | `attributes.request.http.path` ([`envoy_grpc`]) |
//!
//! The original path is checked and decided on exactly as the sidecar does
//! ([`crate::path`]): the ingress forwards the client's path as it came, so
//! one that a server could resolve differently (dot segments, encoded
//! separators...) is refused. The refusal is 400, except for nginx, which
//! turns anything but 2xx/401/403 into its own 500: there it is 403.
//!
//! Browser sessions (`[session]`) work as in the sidecar: a subrequest with
//! the session cookie and no token is decided with the cookie's token, after
//! the same CSRF check (on the original method) and Origin check (on a
//! WebSocket handshake, against the original host: nginx `X-Original-URL`,
//! else `X-Forwarded-Host`; Envoy `Host`). A refused session is 401 (with
//! the cookies cleared) or 403. The listener that serves the endpoints also
//! serves the session login and logout paths, for the ingress to route
//! there (as oauth2-proxy serves its `/oauth2/` paths).

pub mod envoy_grpc;
pub mod settings;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use tower_service::Service;
use tracing::Instrument;

use crate::{
    connection::ConnectionInfo,
    gate::{Gate, Handle},
    headers,
    metrics::{Metrics, Outcome},
    path::{self, Canonical},
    rejection::{BodyLeft, Rejection},
    request_id::{self, Correlation},
    session::{Attached, Sessions},
    validator::{AuthContext, Challenges, Validator},
};

pub use settings::Section;

/// Which proxy's conventions an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// nginx `auth_request` / ingress-nginx `auth-url`.
    Nginx,
    /// Traefik ForwardAuth.
    Traefik,
    /// Envoy `ext_authz` HTTP service (`path_prefix`).
    Envoy,
    /// Envoy `ext_authz` gRPC service (`envoy.service.auth.v3.Authorization`),
    /// answered by [`envoy_grpc::Grpc`], not by [`ForwardAuth`].
    EnvoyGrpc,
}

/// One configured forward-auth endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Whose headers carry the original request.
    pub flavor: Flavor,
    /// Endpoint path (Envoy: prefix), without trailing slash; for
    /// `envoy-grpc`, the gRPC service's path.
    pub path: String,
    /// Status when Keystone is unavailable. nginx turns anything but
    /// 2xx/401/403 into 500; Traefik passes it on; Envoy answers its own
    /// `status_on_error` for a 5xx (deploy/envoy/envoy.yaml sets 503).
    pub unavailable_status: StatusCode,
}

impl Endpoint {
    /// Whether a request path addresses this endpoint.
    pub fn matches(&self, path: &str) -> bool {
        match self.flavor {
            Flavor::Nginx | Flavor::Traefik => path == self.path,
            Flavor::Envoy => {
                path == self.path
                    || (path.starts_with(&self.path) && path[self.path.len()..].starts_with('/'))
            }
            Flavor::EnvoyGrpc => false,
        }
    }

    /// The status that refuses a malformed original request (an ambiguous
    /// path, conflicting tokens) to the client: nginx's `auth_request`
    /// passes only 401 and 403 on (any other status is its 500).
    fn bad_request_status(&self) -> StatusCode {
        match self.flavor {
            Flavor::Nginx => StatusCode::FORBIDDEN,
            Flavor::Traefik | Flavor::Envoy | Flavor::EnvoyGrpc => StatusCode::BAD_REQUEST,
        }
    }

    /// Where the original request was sent: whether over TLS, and the
    /// `Host` it named, from the flavor's headers (`None`: the subrequest's
    /// own `Host` stands, as Envoy's check request carries the original).
    fn original_site(&self, h: &HeaderMap) -> (bool, Option<HeaderValue>) {
        let value = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let url = value("x-original-url")
            .filter(|_| self.flavor == Flavor::Nginx)
            .and_then(|u| u.parse::<Uri>().ok());
        if let Some(authority) = url.as_ref().and_then(Uri::authority) {
            let https = url.as_ref().and_then(Uri::scheme_str) == Some("https");
            return (https, HeaderValue::from_str(authority.as_str()).ok());
        }
        let https = value("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"));
        let host = match self.flavor {
            Flavor::Nginx | Flavor::Traefik => h.get("x-forwarded-host").cloned(),
            Flavor::Envoy | Flavor::EnvoyGrpc => None,
        };
        (https, host)
    }

    /// The original method and path-and-query, from the flavor's headers (a
    /// path header that is not UTF-8 reads as an empty, refused, target).
    fn original(
        &self,
        method: &Method,
        path_and_query: &str,
        h: &HeaderMap,
    ) -> (Option<Method>, Option<String>) {
        let header = |name: &str| {
            h.get(name)
                .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap_or_default())
        };
        let method_from = |name: &str| {
            header(name)
                .and_then(|m| Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).ok())
        };
        match self.flavor {
            Flavor::Nginx => (method_from("x-original-method"), header("x-original-uri")),
            Flavor::Traefik => (method_from("x-forwarded-method"), header("x-forwarded-uri")),
            // Never reached: gRPC endpoints match no HTTP path.
            Flavor::EnvoyGrpc => (None, None),
            Flavor::Envoy => {
                let rest = path_and_query.get(self.path.len()..).unwrap_or_default();
                let rest = if rest.is_empty() || rest.starts_with('?') {
                    format!("/{rest}")
                } else {
                    rest.to_owned()
                };
                (Some(method.clone()), Some(rest))
            }
        }
    }
}

/// The forward-auth service: all configured endpoints, one validator.
#[derive(Clone, Debug)]
pub struct ForwardAuth {
    decider: Arc<Decider>,
}

/// The gate, the endpoints answered and the metrics, shared by every
/// clone of one [`ForwardAuth`]; it decides each request.
#[derive(Debug)]
struct Decider {
    gate: Handle,
    endpoints: Vec<Endpoint>,
    metrics: Metrics,
}

impl ForwardAuth {
    /// A forward-auth service for `endpoints`.
    pub fn new(gate: Gate, endpoints: Vec<Endpoint>, metrics: Metrics) -> Self {
        Self::with_handle(Handle::new(gate), endpoints, metrics)
    }

    /// A forward-auth service deciding with whatever gate `handle` holds.
    pub fn with_handle(handle: Handle, endpoints: Vec<Endpoint>, metrics: Metrics) -> Self {
        Self {
            decider: Arc::new(Decider {
                gate: handle,
                endpoints,
                metrics: metrics.at_door(crate::metrics::Door::ForwardAuth),
            }),
        }
    }

    /// Whether `path` belongs to one of the endpoints, or is a session
    /// endpoint (login, logout) of the current `[session]`.
    pub fn handles(&self, path: &str) -> bool {
        self.decider.endpoints.iter().any(|e| e.matches(path))
            || (self.decider.gate.get().sessions.as_ref())
                .is_some_and(|s| s.endpoint(path).is_some())
    }
}

impl<B> Service<Request<B>> for ForwardAuth
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let decider = self.decider.clone();
        Box::pin(async move { Ok(decider.decide(req).await) })
    }
}

type Answer = Response<Full<Bytes>>;

impl Decider {
    /// One forward-auth request: its request id (kept from a trusted peer,
    /// else new; sent on the Keystone calls made for it and carried by every
    /// answer, for the proxy to copy upstream), then [`Self::decide_on`].
    async fn decide<B>(&self, mut req: Request<B>) -> Answer
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let gate = self.gate.get();
        let peer = req
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.peer.ip());
        let trusted = gate.validator.settings().request_id.trusts(peer);
        let correlation = Correlation::take(req.headers_mut(), trusted);
        let id = correlation.id().header_value().clone();
        let span = tracing::info_span!(
            target: crate::trace::TARGET,
            "stonegate.request",
            otel.kind = "server",
            door = "forward_auth",
            http.request.method = %req.method(),
            request_id = %correlation.id(),
            outcome = tracing::field::Empty,
            audit_id = tracing::field::Empty,
            cache.result = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        correlation.adopt(&span);
        let mut resp = correlation
            .scope(self.decide_on(&gate, req))
            .instrument(span.clone())
            .await;
        resp.headers_mut().insert(request_id::HEADER, id);
        crate::trace::record_status(&span, resp.status());
        resp
    }

    /// Counts the answer's outcome, and puts it on the request's span.
    fn count(&self, outcome: Outcome) {
        self.metrics.request(outcome);
        tracing::Span::current().record("outcome", outcome.as_str());
    }

    /// The answer to one request: a session endpoint's, or the decision on
    /// the original request the proxy describes.
    async fn decide_on<B>(&self, gate: &Gate, req: Request<B>) -> Answer
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let v = &gate.validator;
        let www = &v.settings().challenges;
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let Some(endpoint) = self.endpoints.iter().find(|e| e.matches(req.uri().path())) else {
            return self.session_endpoint(gate, req).await;
        };
        let mut request_headers = req.headers().clone();
        headers::sanitize(&mut request_headers);
        // The ingress's own header naming the client's certificate.
        let peer = req
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.peer.ip());
        // Not the connection's own certificate: that is the ingress's,
        // never the original client's.
        let certificate = v.take_client_certificate(&mut request_headers, peer, None);
        let (method, original) = endpoint.original(req.method(), pq, &request_headers);

        // The original path, decided on as the sidecar would.
        let canonical = match original
            .as_deref()
            .map(|t| path::target_path(t).and_then(Canonical::parse))
        {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(ambiguous)) => {
                let rejection = Rejection::AmbiguousPath(ambiguous);
                tracing::info!(reason = %rejection, "forward-auth: original path refused");
                self.count(rejection.outcome());
                let mut resp = rejection.into_response(www);
                *resp.status_mut() = endpoint.bad_request_status();
                return resp;
            }
        };
        if let (Some(m), Some(c)) = (&method, &canonical) {
            if v.settings()
                .public_routes
                .is_public(m, c.decoded(), &request_headers)
            {
                self.count(Outcome::Public);
                return ok_with(HeaderMap::new());
            }
        }
        // Without the original method and path, access rules cannot pass:
        // an empty method or path matches no rule (fail closed).
        let method =
            method.unwrap_or_else(|| Method::from_bytes(b"UNKNOWN").unwrap_or(Method::GET));
        let path = canonical.as_ref().map_or("", Canonical::decoded);
        // A session cookie stands in for the token, as in the layer.
        let session = match gate.sessions.as_deref() {
            None => None,
            Some(sessions) => {
                match self.attach(v, endpoint, sessions, &method, &mut request_headers) {
                    Ok(attached) => attached.map(|a| (a, sessions)),
                    Err(resp) => return *resp,
                }
            }
        };
        let decision = v
            .authenticate(&method, path, &request_headers, certificate.as_ref())
            .await
            .map_err(Rejection::from);
        let include_catalog = v.settings().include_service_catalog;
        self.answer(endpoint, decision, session, include_catalog, www)
    }

    /// A session endpoint (login, logout) on the forward-auth listener, for
    /// the ingress to route there; 404 for any other path.
    async fn session_endpoint<B>(&self, gate: &Gate, mut req: Request<B>) -> Answer
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let sessions = gate.sessions.as_deref();
        let Some((sessions, endpoint)) =
            sessions.and_then(|s| Some((s, s.endpoint(req.uri().path())?)))
        else {
            return status_only(StatusCode::NOT_FOUND);
        };
        // The head the layer would read: the client's Connection list
        // applied, forged identity and `_` aliases gone.
        headers::sanitize(req.headers_mut());
        let body_left = BodyLeft::of(&req);
        let resp = sessions
            .serve(&gate.validator, &self.metrics, endpoint, req)
            .await;
        self.count(Outcome::SessionEndpoint);
        tracing::info!(
            target: "stonegate::access",
            endpoint = ?endpoint,
            status = resp.status().as_u16(),
            outcome = Outcome::SessionEndpoint.as_str(),
        );
        body_left.answer(resp)
    }

    /// The original request's session, opened as the layer opens its own:
    /// the request is rebuilt from the original method and `Host` so the
    /// CSRF and Origin rules read what the client sent. On success the
    /// cookie's token is in `headers` as `X-Auth-Token` (with whether the
    /// client's request was over TLS); `Err` is the refusal.
    fn attach(
        &self,
        v: &Validator,
        endpoint: &Endpoint,
        sessions: &Sessions,
        method: &Method,
        headers: &mut HeaderMap,
    ) -> Result<Option<(Attached, bool)>, Box<Answer>> {
        let (https, host) = endpoint.original_site(headers);
        if let Some(host) = host {
            headers.insert(header::HOST, host);
        }
        let authority = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let uri = authority
            .and_then(|a| {
                let scheme = if https { "https" } else { "http" };
                Uri::builder()
                    .scheme(scheme)
                    .authority(a)
                    .path_and_query("/")
                    .build()
                    .ok()
            })
            .unwrap_or_else(|| Uri::from_static("/"));
        let mut original = Request::new(());
        *original.method_mut() = method.clone();
        *original.uri_mut() = uri;
        *original.headers_mut() = std::mem::take(headers);
        let attached = sessions.attach(v, &mut original, &self.metrics);
        *headers = std::mem::take(original.headers_mut());
        match attached {
            Ok(a) => Ok(a.map(|a| (a, https))),
            Err(resp) => {
                self.count(Outcome::SessionRejected);
                tracing::info!(
                    target: "stonegate::access",
                    method = %method,
                    status = resp.status().as_u16(),
                    outcome = Outcome::SessionRejected.as_str(),
                );
                Err(resp)
            }
        }
    }

    /// The answer to a decided subrequest: 200 with the identity headers,
    /// or the refusal (a session whose token is refused is over: its
    /// cookies are cleared, for the ingress to pass on).
    fn answer(
        &self,
        endpoint: &Endpoint,
        decision: Result<AuthContext, Rejection>,
        session: Option<((Attached, bool), &Sessions)>,
        include_catalog: bool,
        www: &Challenges,
    ) -> Answer {
        let mut answer = HeaderMap::new();
        match decision {
            Ok(ctx) => {
                if let Some(a) = ctx.user.as_ref().and_then(|u| u.audit_id()) {
                    tracing::Span::current().record("audit_id", a);
                }
                headers::inject(&mut answer, &ctx, include_catalog);
                let outcome = if ctx.is_confirmed() {
                    Outcome::Forwarded
                } else {
                    Outcome::ForwardedUnconfirmed
                };
                self.count(outcome);
                ok_with(answer)
            }
            Err(rejection) => {
                self.count(rejection.outcome());
                let unavailable = matches!(rejection, Rejection::KeystoneUnavailable(_));
                let unauthorized = matches!(rejection, Rejection::Unauthorized);
                let conflict = matches!(rejection, Rejection::ConflictingTokens);
                let mut resp = rejection.into_response(www);
                if unavailable {
                    *resp.status_mut() = endpoint.unavailable_status;
                }
                if conflict {
                    *resp.status_mut() = endpoint.bad_request_status();
                }
                if let (Some(((attached, tls), sessions)), true) = (session, unauthorized) {
                    sessions.end_rejected(&attached, tls, &mut resp);
                }
                resp
            }
        }
    }
}

fn ok_with(headers: HeaderMap) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.headers_mut() = headers;
    resp
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(flavor: Flavor, path: &str) -> Endpoint {
        Endpoint {
            flavor,
            path: path.into(),
            unavailable_status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    #[test]
    fn original_request_comes_from_the_flavors_headers_only() {
        let mut h = HeaderMap::new();
        h.insert("x-original-method", "POST".parse().unwrap());
        h.insert("x-original-uri", "/v2.1/servers?x=1".parse().unwrap());
        h.insert("x-forwarded-method", "DELETE".parse().unwrap());
        h.insert("x-forwarded-uri", "/other".parse().unwrap());
        let (m, p) = ep(Flavor::Nginx, "/auth").original(&Method::GET, "/auth", &h);
        assert_eq!(
            (m.unwrap(), p.unwrap().as_str()),
            (Method::POST, "/v2.1/servers?x=1")
        );
        let (m, p) = ep(Flavor::Traefik, "/auth").original(&Method::GET, "/auth", &h);
        assert_eq!(
            (m.unwrap(), p.unwrap().as_str()),
            (Method::DELETE, "/other")
        );
        let envoy = ep(Flavor::Envoy, "/ext");
        let (m, p) = envoy.original(&Method::PUT, "/ext/v2.1/servers/1?y", &h);
        assert_eq!(
            (m.unwrap(), p.unwrap().as_str()),
            (Method::PUT, "/v2.1/servers/1?y")
        );
        let (_, p) = envoy.original(&Method::GET, "/ext", &h);
        assert_eq!(p.unwrap(), "/");
        let (m, p) = ep(Flavor::Nginx, "/auth").original(&Method::GET, "/auth", &HeaderMap::new());
        assert!(m.is_none() && p.is_none());
    }

    #[test]
    fn the_original_site_comes_from_the_flavors_headers() {
        let mut h = HeaderMap::new();
        h.insert("host", "stonegate:9091".parse().unwrap());
        h.insert("x-forwarded-host", "app.example.com".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let host = |site: (bool, Option<HeaderValue>)| {
            (site.0, site.1.map(|v| v.to_str().unwrap().to_owned()))
        };
        // nginx: X-Original-URL first (scheme and host), else X-Forwarded-*.
        assert_eq!(
            host(ep(Flavor::Nginx, "/auth").original_site(&h)),
            (true, Some("app.example.com".into()))
        );
        let mut with_url = h.clone();
        with_url.insert(
            "x-original-url",
            "http://portal.example.com:8080/x?y".parse().unwrap(),
        );
        assert_eq!(
            host(ep(Flavor::Nginx, "/auth").original_site(&with_url)),
            (false, Some("portal.example.com:8080".into()))
        );
        // Traefik ignores X-Original-URL; Envoy keeps the request's own Host.
        assert_eq!(
            host(ep(Flavor::Traefik, "/auth").original_site(&with_url)),
            (true, Some("app.example.com".into()))
        );
        assert_eq!(
            host(ep(Flavor::Envoy, "/ext").original_site(&with_url)),
            (true, None)
        );
    }

    #[test]
    fn envoy_prefix_matches_whole_segments() {
        let e = ep(Flavor::Envoy, "/ext");
        assert!(e.matches("/ext") && e.matches("/ext/x"));
        assert!(!e.matches("/extra"));
        let n = ep(Flavor::Nginx, "/auth");
        assert!(n.matches("/auth") && !n.matches("/auth/x"));
    }
}
