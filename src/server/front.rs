//! What a client listener serves, built once at start: the forward-auth
//! endpoints (HTTP, and Envoy's gRPC services), then the proxy
//! ([`AuthTokenLayer`] around [`Proxy`]), else 404.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

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
type Answer = Result<Response<FrontBody>, Infallible>;

/// The future of one request through a [`Front`]. Small on purpose (two
/// words and a tag): hyper moves a connection's request future as it
/// stores and polls it, and a future holding every door's state inline was
/// several KB, moved on every request (issue 16). The proxy's future is the
/// one its layer already boxed; the other doors are boxed here.
pub(super) enum Handled {
    /// The proxy (the sidecar's hot path): no allocation of its own.
    Proxy(<ProxyService as Service<Request<Incoming>>>::Future),
    /// Forward-auth, gRPC, the webhook: boxed.
    Boxed(Pin<Box<dyn Future<Output = Answer> + Send>>),
    /// An answer of the front itself (431, 404), made when polled.
    Fixed(StatusCode, &'static [u8]),
}

impl Future for Handled {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        match self.get_mut() {
            Handled::Proxy(f) => f.as_mut().poll(cx).map_ok(|r| r.map(Either::Right)),
            Handled::Boxed(f) => f.as_mut().poll(cx),
            Handled::Fixed(status, body) => {
                let body = Full::new(Bytes::from_static(body));
                let mut r = Response::new(Either::Left(Either::Left(body)));
                *r.status_mut() = *status;
                Poll::Ready(Ok(r))
            }
        }
    }
}

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

    /// Routes one request: too many headers (431), the webhook, the gRPC
    /// services, the forward-auth endpoints, the proxy, else 404.
    pub(super) fn handle(&self, req: Request<Incoming>) -> Handled {
        if req.headers().len() > self.max_headers {
            return Handled::Fixed(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                b"request header fields too large\n",
            );
        }
        if let Some(kube) = &self.kube {
            let kube = kube.clone();
            return Handled::Boxed(Box::pin(async move {
                Ok(kube
                    .handle(req)
                    .await
                    .map(|b| Either::Left(Either::Left(b))))
            }));
        }
        if let Some(grpc) = &self.grpc {
            if grpc.handles(&req) {
                let grpc = grpc.clone();
                return Handled::Boxed(Box::pin(async move {
                    grpc.oneshot(req)
                        .await
                        .map(|r| r.map(|b| Either::Left(Either::Right(b))))
                }));
            }
        }
        if let Some(fa) = &self.forward_auth {
            if fa.handles(req.uri().path()) {
                let fa = fa.clone();
                return Handled::Boxed(Box::pin(async move {
                    fa.oneshot(req)
                        .await
                        .map(|r| r.map(|b| Either::Left(Either::Left(b))))
                }));
            }
        }
        match &self.proxy {
            Some(p) => {
                let mut p = p.clone();
                // The proxy is always ready (it has no backpressure of its
                // own); should that change, wait for it as `oneshot` does.
                match p.poll_ready(&mut Context::from_waker(Waker::noop())) {
                    Poll::Ready(Ok(())) => Handled::Proxy(p.call(req)),
                    Poll::Ready(Err(never)) => match never {},
                    Poll::Pending => Handled::Boxed(Box::pin(async move {
                        p.oneshot(req).await.map(|r| r.map(Either::Right))
                    })),
                }
            }
            None => Handled::Fixed(StatusCode::NOT_FOUND, b"not found\n"),
        }
    }
}
