//! Envoy `ext_authz` over gRPC (`[[forward_auth]] flavor = "envoy-grpc"`):
//! `envoy.service.auth.v3.Authorization/Check` and `grpc.health.v1.Health`,
//! served next to the HTTP endpoints (h2c, or TLS with `[tls]`).
//!
//! A thin adapter over the one validator, deciding exactly as every other
//! door: the `CheckRequest`'s headers are cleaned by [`headers::sanitize`],
//! its path goes through the canonical-path rule ([`crate::path`]), then
//! public routes, the validator and access rules. The answers:
//!
//! | decision | `CheckResponse` |
//! | --- | --- |
//! | valid token, `delay_auth_decision`, public route | `status` OK; `OkHttpResponse.headers` = the identity headers (overwrite-or-add), `headers_to_remove` = every header of the request stonegate strips that it does not set; `dynamic_metadata` = the identity's facts |
//! | missing, invalid, expired, revoked token; outside access rules | `status` UNAUTHENTICATED; `DeniedHttpResponse` 401, `WWW-Authenticate: Keystone uri="..."`, JSON |
//! | refused by an `[authorization]` rule | `status` PERMISSION_DENIED; `DeniedHttpResponse` 403, JSON |
//! | ambiguous path | `status` INVALID_ARGUMENT; `DeniedHttpResponse` 400, JSON |
//! | Keystone unavailable | the RPC fails with UNAVAILABLE: Envoy applies `status_on_error` |
//! | the route's `context_extensions` name a service profile that is not configured | `status` PERMISSION_DENIED; `DeniedHttpResponse` 403, JSON; Keystone is not asked |
//! | a refused session cookie (`[session]`) | `status` UNAUTHENTICATED (401, both cookies cleared) or PERMISSION_DENIED (403: CSRF, cross-site handshake) |
//!
//! With `[session]`, a `Check` with the session cookie and no token is
//! decided with the cookie's token, as the sidecar decides ([`Sessions::attach`]
//! on the original method, `scheme` and `host`); the OK answer overwrites
//! `Cookie` with the client's other cookies (or removes it), so neither the
//! session cookie nor the token reaches the upstream.
//!
//! One gateway may front several services: the route's `context_extensions`
//! key `stonegate_service` (`[[forward_auth]] selector`) names the service
//! profile (`[forward_auth.services.<name>]`: service type for access rules,
//! public routes) the `Check` is decided for; without it, the configuration's
//! own `service_type` and `[routes]`.
//!
//! Envoy applies `headers_to_remove` after the headers it sets, so a name
//! stonegate sets is never listed for removal: setting it overwrites the
//! client's value.
//!
//! Envoy merges repeated request headers into one comma-joined value
//! (`headers`) unless `encode_raw_headers` sends them apart (`header_map`);
//! either way a token header that came twice reaches the validator as two
//! values and counts as no token.

mod health;

use std::{
    collections::HashMap,
    convert::Infallible,
    net::IpAddr,
    sync::Arc,
    task::{Context, Poll},
};

use envoy_types::{
    ext_authz::v3::pb::{
        Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
        HeaderAppendAction, HeaderValue as EnvoyHeader, HeaderValueOption, HttpResponse,
        HttpStatus, OkHttpResponse,
    },
    pb::google::{
        protobuf::{value::Kind, ListValue, Struct, Value},
        rpc,
    },
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::BodyExt;
use tonic::{codegen::BoxFuture, Status};
use tracing::Instrument;

use crate::{
    connection::ConnectionInfo,
    gate::{Gate, Handle},
    headers,
    identity::{Identity, Scope},
    metrics::{Metrics, Outcome},
    path::{self, Canonical},
    rejection::Rejection,
    request_id::Correlation,
    session::{Attached, Sessions},
    validator::{AuthContext, Validator},
};

/// The path prefix of the `Authorization` service's methods.
pub const AUTHORIZATION_PREFIX: &str = "/envoy.service.auth.v3.Authorization/";
/// The path prefix of the gRPC health-checking service's methods.
pub const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";
/// The service name health checks ask about (besides `""`, the server).
pub const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// The token headers: a comma in one of them means Envoy merged two values.
const TOKEN_HEADERS: [&str; 3] = ["x-auth-token", "x-storage-token", "x-service-token"];

/// The gRPC services of the `envoy-grpc` flavor: `Authorization/Check` and
/// `grpc.health.v1.Health`, as one tower service routing by path.
#[derive(Clone, Debug)]
pub struct Grpc {
    authorization: AuthorizationServer<Check>,
    health: tonic_health::pb::health_server::HealthServer<health::Readiness>,
}

impl Grpc {
    /// The gRPC services deciding with whatever gate `handle` holds.
    pub fn new(handle: Handle, metrics: Metrics) -> Self {
        Self {
            authorization: AuthorizationServer::new(Check {
                decider: Arc::new(Decider {
                    gate: handle.clone(),
                    metrics: metrics.at_door(crate::metrics::Door::EnvoyGrpc),
                }),
            }),
            health: tonic_health::pb::health_server::HealthServer::new(health::Readiness::new(
                handle,
            )),
        }
    }

    /// Whether a request is for one of these services: a gRPC request
    /// (`content-type: application/grpc...`) on their paths.
    pub fn handles<B>(&self, req: &http::Request<B>) -> bool {
        is_grpc_call(req)
    }
}

/// A gRPC request (`content-type: application/grpc...`) on the paths of
/// the `Authorization` or `Health` services.
fn is_grpc_call<B>(req: &http::Request<B>) -> bool {
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let path = req.uri().path();
    grpc && (path.starts_with(AUTHORIZATION_PREFIX) || path.starts_with(HEALTH_PREFIX))
}

impl<B> tower_service::Service<http::Request<B>> for Grpc
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path().starts_with(HEALTH_PREFIX) {
            self.health.call(req)
        } else {
            // Unknown methods of the service are answered UNIMPLEMENTED by tonic.
            self.authorization.call(req)
        }
    }
}

/// The `Authorization` service.
#[derive(Clone, Debug)]
pub struct Check {
    decider: Arc<Decider>,
}

/// The gate (validator) and the metrics, shared by every clone of one [`Check`].
#[derive(Debug)]
struct Decider {
    gate: Handle,
    metrics: Metrics,
}

#[tonic::async_trait]
impl Authorization for Check {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, Status> {
        // The gRPC client (Envoy), for `[request_id] trusted_peers`.
        let peer = request
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.peer.ip());
        self.decider
            .decide(request.into_inner(), peer)
            .await
            .map(tonic::Response::new)
    }
}

/// The original request, as Envoy reported it.
struct Original {
    method: Option<Method>,
    target: String,
    /// The headers, as a client would have sent them to the sidecar.
    headers: HeaderMap,
    /// Names that are no HTTP header name (removed whatever they are).
    invalid_names: Vec<String>,
    /// The downstream client's address, for the log.
    client: Option<String>,
    /// `host` (the `:authority`), for the session's Origin check.
    host: String,
    /// Whether the client's request came over TLS (`scheme` https): the
    /// session cookies' `Secure` attribute.
    tls: bool,
    /// The downstream client certificate Envoy verified
    /// (`attributes.source.certificate`, URL-encoded PEM), as its Keystone
    /// thumbprint: what a certificate-bound token must come with.
    certificate: Option<crate::oauth2::Thumbprint>,
}

impl Original {
    /// Reads `attributes.request.http` and `attributes.source`; `None` when
    /// the request carries no HTTP attributes (not an HTTP ext_authz call).
    fn from_check(req: &CheckRequest) -> Option<Self> {
        let attributes = req.attributes.as_ref()?;
        let http = attributes.request.as_ref()?.http.as_ref()?;
        let mut original = Original {
            method: Method::from_bytes(http.method.as_bytes()).ok(),
            target: http.path.clone(),
            headers: HeaderMap::with_capacity(http.headers.len()),
            invalid_names: Vec::new(),
            client: envoy_types::ext_authz::v3::CheckRequestExt::get_client_address(req).cloned(),
            host: http.host.clone(),
            tls: http.scheme.eq_ignore_ascii_case("https"),
            certificate: attributes
                .source
                .as_ref()
                .filter(|s| !s.certificate.is_empty())
                .and_then(|s| crate::oauth2::Thumbprint::of_pem(&s.certificate)),
        };
        match &http.header_map {
            // `encode_raw_headers`: repeated headers arrive apart.
            Some(map) if http.headers.is_empty() => {
                for h in &map.headers {
                    let value = if h.raw_value.is_empty() {
                        h.value.as_bytes()
                    } else {
                        &h.raw_value
                    };
                    original.add(&h.key, value);
                }
            }
            _ => {
                for (k, v) in &http.headers {
                    original.add(k, v.as_bytes());
                }
            }
        }
        Some(original)
    }

    /// Adds one reported header. Pseudo-headers (`:path`, `:authority`...)
    /// are not request headers; a comma-joined token header is split back
    /// into the values Envoy merged.
    fn add(&mut self, key: &str, value: &[u8]) {
        if key.starts_with(':') {
            return;
        }
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            self.invalid_names.push(key.to_ascii_lowercase());
            return;
        };
        let merged_token = TOKEN_HEADERS.contains(&name.as_str()) && value.contains(&b',');
        if merged_token {
            for part in value.split(|b| *b == b',') {
                self.append(&name, part.trim_ascii());
            }
        } else {
            self.append(&name, value);
        }
    }

    fn append(&mut self, name: &HeaderName, value: &[u8]) {
        match HeaderValue::from_bytes(value) {
            Ok(v) => {
                self.headers.append(name.clone(), v);
            }
            // Envoy forwards no control characters; an unusable value still
            // leaves its name behind, so that it is stripped if it must be.
            Err(_) => {
                self.headers
                    .append(name.clone(), HeaderValue::from_static(""));
            }
        }
    }
}

impl Decider {
    /// One `Check`. Its request id is the one the client sent through a
    /// trusted Envoy (`[request_id] trusted_peers`), else a new one: sent on
    /// the Keystone calls made for it and set on the request Envoy forwards
    /// (with a well-formed trace context); a malformed `traceparent` is
    /// removed, as the sidecar drops it.
    async fn decide(
        &self,
        req: CheckRequest,
        peer: Option<IpAddr>,
    ) -> Result<CheckResponse, Status> {
        let Some(original) = Original::from_check(&req) else {
            return Err(Status::invalid_argument(
                "CheckRequest without attributes.request.http: stonegate answers HTTP ext_authz only",
            ));
        };
        let gate = self.gate.get();
        // The route's service profile, named by its `context_extensions`.
        let selected = req.attributes.as_ref().and_then(|a| {
            a.context_extensions
                .get(&gate.validator.settings().services.selector)
                .cloned()
        });
        let mut request_headers = original.headers.clone();
        let correlation = Correlation::take(
            &mut request_headers,
            gate.validator.settings().request_id.trusts(peer),
        );
        // The request's span, as on every door: the caller's trace context
        // (from the original request's headers) is its parent.
        let span = tracing::info_span!(
            target: crate::trace::TARGET,
            "stonegate.request",
            otel.kind = "server",
            door = "envoy_grpc",
            http.request.method = original.method.as_ref().map_or("", Method::as_str),
            request_id = %correlation.id(),
            outcome = tracing::field::Empty,
            audit_id = tracing::field::Empty,
            cache.result = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        correlation.adopt(&span);
        let answer = self
            .decide_on(&gate, selected, original, request_headers, correlation)
            .instrument(span.clone())
            .await;
        let status = match &answer {
            Ok(CheckResponse {
                http_response: Some(HttpResponse::DeniedResponse(denied)),
                ..
            }) => denied
                .status
                .as_ref()
                .and_then(|s| http::StatusCode::from_u16(s.code as u16).ok()),
            Ok(_) => Some(http::StatusCode::OK),
            Err(_) => Some(http::StatusCode::SERVICE_UNAVAILABLE),
        };
        if let Some(status) = status {
            crate::trace::record_status(&span, status);
        }
        answer
    }

    /// Counts the answer's outcome, and puts it on the request's span.
    fn count(&self, outcome: Outcome) {
        self.metrics.request(outcome);
        tracing::Span::current().record("outcome", outcome.as_str());
    }

    /// The decision on one `Check`, inside the request's span.
    async fn decide_on(
        &self,
        gate: &Gate,
        selected: Option<String>,
        original: Original,
        mut request_headers: HeaderMap,
        correlation: Correlation,
    ) -> Result<CheckResponse, Status> {
        let v = &gate.validator;
        let mut carried = HeaderMap::new();
        correlation.set_on(&mut carried);
        headers::sanitize(&mut request_headers);
        // Every name the boundary removed, as Envoy spells it (lower case).
        let mut stripped: Vec<String> = original
            .headers
            .keys()
            .filter(|n| !request_headers.contains_key(*n))
            .map(|n| n.as_str().to_owned())
            .collect();
        stripped.extend(original.invalid_names.iter().cloned());

        // No selector: the configuration's own service; a name no profile
        // has is a gateway misconfiguration, refused (fails closed).
        let service = match selected.as_deref() {
            None => v.default_service(),
            Some(name) => match v.service(name) {
                Some(service) => service,
                None => {
                    let rejection = Rejection::UnknownService;
                    tracing::warn!(
                        selector = %v.settings().services.selector,
                        service = ?name,
                        client = ?original.client,
                        "envoy-grpc: the route's context_extensions name a service profile that is not configured (forward_auth.services); refused"
                    );
                    self.count(rejection.outcome());
                    return Ok(refused(
                        rejection.into_response(&v.settings().challenges),
                        &carried,
                    )
                    .await);
                }
            },
        };
        let canonical = match path::target_path(&original.target).and_then(Canonical::parse) {
            Ok(c) => c,
            Err(ambiguous) => {
                let rejection = Rejection::AmbiguousPath(ambiguous);
                tracing::info!(reason = %rejection, client = ?original.client, "envoy-grpc: original path refused");
                self.count(rejection.outcome());
                return Ok(
                    refused(rejection.into_response(&v.settings().challenges), &carried).await,
                );
            }
        };
        // Without a method, access rules cannot pass (fail closed).
        let method = original
            .method
            .clone()
            .unwrap_or_else(|| Method::from_bytes(b"UNKNOWN").unwrap_or(Method::GET));
        if service
            .public_routes
            .is_public(&method, canonical.decoded(), &request_headers)
        {
            self.count(Outcome::Public);
            return Ok(ok(carried, stripped, None));
        }
        // A session cookie stands in for the token, as on every door.
        let session = match gate.sessions.as_deref() {
            None => None,
            Some(sessions) => {
                match attach(
                    v,
                    sessions,
                    &original,
                    &method,
                    &mut request_headers,
                    &self.metrics,
                ) {
                    Ok(attached) => attached.map(|a| (a, sessions)),
                    Err(refusal) => return Ok(refused(*refusal, &carried).await),
                }
            }
        };
        let decided = correlation
            .scope(v.authenticate_for(
                service,
                &method,
                canonical.decoded(),
                &request_headers,
                original.certificate.as_ref(),
            ))
            .await;
        match decided.map_err(Rejection::from) {
            Ok(ctx) => {
                let mut answer = carried;
                headers::inject(&mut answer, &ctx, v.settings().include_service_catalog);
                if session.is_some() {
                    // The upstream gets the client's other cookies, never
                    // the session's (the sidecar removes it too).
                    match request_headers.get(http::header::COOKIE) {
                        Some(rest) => {
                            answer.insert(http::header::COOKIE, rest.clone());
                        }
                        None => stripped.push(http::header::COOKIE.as_str().to_owned()),
                    }
                }
                if let Some(a) = ctx.user.as_ref().and_then(|id| id.audit_id()) {
                    tracing::Span::current().record("audit_id", a);
                }
                self.count(if ctx.is_confirmed() {
                    Outcome::Forwarded
                } else {
                    Outcome::ForwardedUnconfirmed
                });
                let mut facts = metadata(&ctx);
                if let Some(name) = &selected {
                    facts.fields.insert("service".to_owned(), string(name));
                }
                Ok(ok(answer, stripped, Some(facts)))
            }
            Err(rejection @ Rejection::KeystoneUnavailable(_)) => {
                self.count(rejection.outcome());
                tracing::warn!(client = ?original.client, "envoy-grpc: Keystone unavailable; answering UNAVAILABLE");
                Err(Status::unavailable(
                    "Keystone is temporarily unavailable; the request is not authenticated",
                ))
            }
            Err(rejection) => {
                self.count(rejection.outcome());
                let unauthorized = matches!(rejection, Rejection::Unauthorized);
                let mut response = rejection.into_response(&v.settings().challenges);
                // A session whose token is refused is over: its cookies are
                // cleared in the answer the client gets.
                if let (Some((attached, sessions)), true) = (&session, unauthorized) {
                    sessions.end_rejected(attached, original.tls, &mut response);
                }
                Ok(refused(response, &carried).await)
            }
        }
    }
}

/// The request's session, opened as the sidecar opens its own: the original
/// method, `host` and scheme rebuilt so the CSRF and Origin rules read what
/// the client sent. On success the cookie's token is in `headers` as
/// `X-Auth-Token` and the session cookie is gone from `Cookie`; `Err` is
/// the refusal (401 or 403), counted.
fn attach(
    v: &Validator,
    sessions: &Sessions,
    original: &Original,
    method: &Method,
    headers: &mut HeaderMap,
    metrics: &Metrics,
) -> Result<Option<Attached>, Box<http::Response<http_body_util::Full<bytes::Bytes>>>> {
    let scheme = if original.tls { "https" } else { "http" };
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(original.host.as_str())
        .path_and_query("/")
        .build()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    let mut request = http::Request::new(());
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = std::mem::take(headers);
    if let Ok(host) = HeaderValue::from_str(&original.host) {
        request.headers_mut().insert(http::header::HOST, host);
    }
    let attached = sessions.attach(v, &mut request, metrics);
    *headers = std::mem::take(request.headers_mut());
    headers.remove(http::header::HOST);
    if let Err(refusal) = &attached {
        metrics.request(Outcome::SessionRejected);
        tracing::Span::current().record("outcome", Outcome::SessionRejected.as_str());
        tracing::info!(
            target: "stonegate::access",
            method = %method,
            status = refusal.status().as_u16(),
            outcome = Outcome::SessionRejected.as_str(),
            client = ?original.client,
        );
    }
    attached
}

/// An OK answer: `set` overwrites (or adds) each identity header, and every
/// stripped name that is not set is removed. Envoy removes after it sets,
/// so listing a set name would remove the identity.
fn ok(set: HeaderMap, stripped: Vec<String>, dynamic_metadata: Option<Struct>) -> CheckResponse {
    let headers_to_remove = stripped
        .into_iter()
        .filter(|n| !set.contains_key(n.as_str()))
        .collect();
    let headers = set
        .iter()
        .map(|(n, v)| option(n.as_str(), v, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    CheckResponse {
        status: Some(rpc::Status {
            code: tonic::Code::Ok as i32,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..Default::default()
        })),
        dynamic_metadata,
    }
}

/// A denial: the status, headers and JSON body the sidecar would answer
/// (a [`Rejection`]'s or a session's refusal), with the request id
/// (`carried`) for the client. The gRPC status follows the HTTP one: 401
/// UNAUTHENTICATED, 400 INVALID_ARGUMENT, any other PERMISSION_DENIED.
async fn refused(
    response: http::Response<http_body_util::Full<bytes::Bytes>>,
    carried: &HeaderMap,
) -> CheckResponse {
    let status = response.status();
    let code = match status {
        http::StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        http::StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument,
        _ => tonic::Code::PermissionDenied,
    };
    let (mut parts, body) = response.into_parts();
    if let Some(id) = carried.get(crate::request_id::HEADER) {
        parts.headers.insert(crate::request_id::HEADER, id.clone());
    }
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(never) => match never {},
    };
    // A name's first value overwrites, the next ones are appended (both
    // session cookies are cleared with two `Set-Cookie`).
    let headers = parts
        .headers
        .keys()
        .flat_map(|name| {
            parts
                .headers
                .get_all(name)
                .iter()
                .enumerate()
                .map(move |(i, v)| {
                    let action = if i == 0 {
                        HeaderAppendAction::OverwriteIfExistsOrAdd
                    } else {
                        HeaderAppendAction::AppendIfExistsOrAdd
                    };
                    option(name.as_str(), v, action)
                })
        })
        .collect();
    CheckResponse {
        status: Some(rpc::Status {
            code: code as i32,
            message: status.canonical_reason().unwrap_or_default().to_owned(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(status.as_u16()),
            }),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })),
        dynamic_metadata: None,
    }
}

fn option(name: &str, value: &HeaderValue, action: HeaderAppendAction) -> HeaderValueOption {
    #[allow(deprecated)] // `append` stays unset: older Envoys read unset as "set".
    HeaderValueOption {
        header: Some(EnvoyHeader {
            key: name.to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: action as i32,
        // `X-Roles` is present and empty for an unscoped token.
        keep_empty_value: true,
    }
}

/// The identity's facts for Envoy's access log and RBAC
/// (`metadata["envoy.filters.http.ext_authz"]`): ids, names, scope, roles;
/// never a token.
fn metadata(ctx: &AuthContext) -> Struct {
    let mut fields = HashMap::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            fields.insert(k.to_owned(), string(v));
        }
    };
    put(
        "identity_status",
        Some(if ctx.user.is_some() {
            "Confirmed"
        } else {
            "Invalid"
        }),
    );
    if let Some(id) = &ctx.user {
        identity_facts(&mut put, id);
        fields.insert(
            "roles".to_owned(),
            Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: id.roles.iter().map(|r| string(r)).collect(),
                })),
            },
        );
    }
    match &ctx.service {
        None => {}
        Some(Some(_)) => {
            fields.insert("service_identity_status".to_owned(), string("Confirmed"));
        }
        Some(None) => {
            fields.insert("service_identity_status".to_owned(), string("Invalid"));
        }
    }
    Struct { fields }
}

fn identity_facts(put: &mut impl FnMut(&str, Option<&str>), id: &Identity) {
    put("user_id", id.user.id.as_deref());
    put("user_name", id.user.name.as_deref());
    put("user_domain_id", id.user_domain.id.as_deref());
    put("user_domain_name", id.user_domain.name.as_deref());
    match &id.scope {
        Scope::Unscoped => {}
        Scope::Project(p) => {
            put("project_id", p.project.id.as_deref());
            put("project_name", p.project.name.as_deref());
            put("project_domain_id", p.domain.id.as_deref());
            put("project_domain_name", p.domain.name.as_deref());
        }
        Scope::Domain(d) => {
            put("domain_id", d.id.as_deref());
            put("domain_name", d.name.as_deref());
        }
        Scope::System => put("system_scope", Some("all")),
    }
    put("audit_id", id.audit_id());
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

#[cfg(test)]
mod tests;
