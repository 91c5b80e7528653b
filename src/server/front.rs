//! What a client listener serves, built once at start: the forward-auth
//! endpoints (HTTP, and Envoy's gRPC services), then the proxy
//! ([`AuthTokenLayer`] around [`Proxy`]), else 404.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tower::ServiceExt;
use tower_layer::Layer;

use super::ServerError;
use crate::{
    config::Settings,
    forward_auth::{envoy_grpc::Grpc, Flavor, ForwardAuth},
    gate::Handle,
    kube::Webhook,
    layer::{AuthTokenLayer, AuthTokenService},
    metrics::Metrics,
    proxy::{Proxy, UpstreamConfig},
};

/// The fronts of the client listeners: the proxy listener's, and the
/// forward-auth listener's when there is one (`separate_auth`); without it
/// the proxy listener serves the forward-auth endpoints as well.
pub(super) fn build(
    config: &Settings,
    handle: &Handle,
    metrics: &Metrics,
    separate_auth: bool,
) -> Result<(Front, Option<Front>), ServerError> {
    let settings = &config.proxy;
    let proxy = match &settings.upstream {
        Some(url) => Some(
            AuthTokenLayer::with_handle(handle.clone(), metrics.clone()).layer(Proxy::new(
                UpstreamConfig {
                    url: url.clone(),
                    connect_timeout: settings.connect_timeout,
                    response_timeout: settings.response_timeout,
                    tls: settings.upstream_tls.clone(),
                    upgrades: settings.upgrades.clone(),
                },
                metrics.clone(),
            )?),
        ),
        None => None,
    };
    let forward_auth = (!config.forward_auth.is_empty()).then(|| {
        ForwardAuth::with_handle(handle.clone(), config.forward_auth.clone(), metrics.clone())
    });
    let grpc = config
        .forward_auth
        .iter()
        .any(|e| e.flavor == Flavor::EnvoyGrpc)
        .then(|| Grpc::new(handle.clone(), metrics.clone()));
    let main_front = Front {
        forward_auth: if separate_auth {
            None
        } else {
            forward_auth.clone()
        },
        grpc: if separate_auth { None } else { grpc.clone() },
        kube: None,
        proxy,
        max_headers: settings.max_headers,
    };
    let auth_front = separate_auth.then(|| Front {
        forward_auth,
        grpc,
        kube: None,
        proxy: None,
        max_headers: settings.max_headers,
    });
    Ok((main_front, auth_front))
}

type ProxyService = AuthTokenService<Proxy>;
type ProxyResponseBody =
    <<ProxyService as tower_service::Service<Request<Incoming>>>::Response as ResponseBody>::Body;

/// Lets the alias above name the proxy's response body type.
pub(super) trait ResponseBody {
    /// The body type.
    type Body;
}
impl<B> ResponseBody for Response<B> {
    type Body = B;
}

/// What a listener serves: forward-auth endpoints, then the proxy, else 404.
#[derive(Clone)]
pub(super) struct Front {
    forward_auth: Option<ForwardAuth>,
    /// Envoy's `ext_authz` gRPC and health services (`envoy-grpc`).
    grpc: Option<Grpc>,
    /// The kube-apiserver webhook (its own listener serves only it).
    kube: Option<Webhook>,
    proxy: Option<ProxyService>,
    /// Most request headers; HTTP/1.1 heads are checked by hyper, HTTP/2
    /// ones here (h2 bounds only their bytes).
    max_headers: usize,
}

/// A forward-auth answer: an HTTP one, or a gRPC one (with trailers).
type AuthBody = Either<Full<Bytes>, tonic::body::Body>;
type FrontBody = Either<AuthBody, ProxyResponseBody>;

impl Front {
    /// The front of the `[kubernetes]` listener: the webhook alone.
    pub(super) fn kubernetes(webhook: Webhook, max_headers: usize) -> Self {
        Self {
            forward_auth: None,
            grpc: None,
            kube: Some(webhook),
            proxy: None,
            max_headers,
        }
    }

    pub(super) async fn handle(
        self,
        req: Request<Incoming>,
    ) -> Result<Response<FrontBody>, Infallible> {
        if req.headers().len() > self.max_headers {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"request header fields too large\n",
            )));
            *r.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            return Ok(r.map(|b| Either::Left(Either::Left(b))));
        }
        if let Some(kube) = self.kube {
            let r = kube.handle(req).await;
            return Ok(r.map(|b| Either::Left(Either::Left(b))));
        }
        if let Some(grpc) = self.grpc {
            if grpc.handles(&req) {
                return grpc
                    .oneshot(req)
                    .await
                    .map(|r| r.map(|b| Either::Left(Either::Right(b))));
            }
        }
        if let Some(fa) = self.forward_auth {
            if fa.handles(req.uri().path()) {
                return fa
                    .oneshot(req)
                    .await
                    .map(|r| r.map(|b| Either::Left(Either::Left(b))));
            }
        }
        match self.proxy {
            Some(p) => p.oneshot(req).await.map(|r| r.map(Either::Right)),
            None => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                *r.status_mut() = StatusCode::NOT_FOUND;
                Ok(r.map(|b| Either::Left(Either::Left(b))))
            }
        }
    }
}
