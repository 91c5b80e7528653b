//! The forwarding service of the sidecar: streams a request to the upstream
//! and its response back, without buffering either body. Hop-by-hop headers
//! are dropped (RFC 9110 §7.6.1), `X-Forwarded-*` set, `Upgrade` requests
//! tunnelled after authentication when their protocol is allowed
//! ([`upgrade`]). Dropping the response future (client gone) cancels the
//! upstream request.

mod pool;
pub mod settings;
pub mod upgrade;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{header, uri::PathAndQuery, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::{
    connection::ConnectionInfo,
    metrics::{Metrics, UpgradeResult},
    rejection::{Rejection, UpstreamFailure},
    routes::PublicUpgrade,
    tls::ClientTls,
    validator::{AuthContext, Challenges},
};

pub use pool::UpstreamBody;
pub use settings::{Listeners, Section, Settings, TlsSection, DEFAULT_MAX_CONNECTIONS};

/// Upstream settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL (scheme, authority, optional path prefix).
    pub url: Uri,
    /// Connect timeout (then 502).
    pub connect_timeout: Duration,
    /// Time to the response headers (then 504).
    pub response_timeout: Duration,
    /// TLS towards an https upstream.
    pub tls: ClientTls,
    /// Which upgrades are forwarded, and how long their tunnels live.
    pub upgrades: upgrade::Settings,
}

/// Why the proxy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Forwards requests to one upstream.
#[derive(Clone)]
pub struct Proxy {
    upstream: Arc<Upstream>,
}

/// The upstream one [`Proxy`] forwards to (connection pool, base URI,
/// timeouts, upgrade settings) and the metrics, shared by its clones.
struct Upstream {
    pool: Arc<pool::Pool>,
    authority: http::uri::Authority,
    /// `Host` when the client sent none (an HTTP/1.0 request).
    default_host: HeaderValue,
    prefix: String,
    response_timeout: Duration,
    upgrades: Arc<upgrade::Settings>,
    metrics: Metrics,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("authority", &self.upstream.authority)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy to `config.url` with pooled keep-alive connections.
    pub fn new(config: UpstreamConfig, metrics: Metrics) -> Result<Self, ProxyError> {
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config.tls.build()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let parts = config.url.into_parts();
        let scheme = parts.scheme.unwrap_or(http::uri::Scheme::HTTP);
        let Some(authority) = parts.authority else {
            unreachable!("config guarantees an authority");
        };
        let prefix = parts
            .path_and_query
            .map(|p| p.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let target = Uri::builder()
            .scheme(scheme)
            .authority(authority.clone())
            .path_and_query("/")
            .build();
        let Ok(target) = target else {
            unreachable!("a scheme and an authority that were a URI make one");
        };
        let Ok(default_host) = HeaderValue::from_str(authority.as_str()) else {
            unreachable!("an authority is a valid header value");
        };
        Ok(Self {
            upstream: Arc::new(Upstream {
                pool: pool::Pool::new(https, target),
                authority,
                default_host,
                prefix,
                response_timeout: config.response_timeout,
                upgrades: Arc::new(config.upgrades),
                metrics,
            }),
        })
    }
}

/// The protocol to upgrade to and the longest life of its tunnel, when the
/// request may upgrade: an allowed protocol ([`upgrade::Settings::select`]),
/// asked for by a confirmed identity (the tunnel ends when its token
/// expires, at the latest) or on a public route that opts in. A request that
/// reached the proxy without the auth layer's [`AuthContext`] never upgrades.
fn upgrade_of(
    settings: &upgrade::Settings,
    req: &Request<Incoming>,
) -> Option<(HeaderValue, Duration)> {
    let protocol = settings.select(req.version(), req.headers())?;
    let ext = req.extensions();
    let lifetime = match ext.get::<AuthContext>() {
        Some(ctx) if ctx.public => ext.get::<PublicUpgrade>().map(|_| settings.max_lifetime)?,
        Some(ctx) if ctx.is_confirmed() => {
            let now = crate::clock::now();
            let mut left = settings.max_lifetime;
            for id in ctx.user.iter().chain(ctx.service.iter().flatten()) {
                left = left.min(id.lifetime_left(now));
            }
            left
        }
        Some(_) | None => return None,
    };
    Some((protocol, lifetime))
}

type ProxyBody = Either<pool::UpstreamBody, Full<Bytes>>;

impl Service<Request<Incoming>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let upstream = self.upstream.clone();
        Box::pin(async move { Ok(upstream.forward(req).await) })
    }
}

impl Upstream {
    async fn forward(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        // Most requests ask for no upgrade: one lookup decides that.
        let asks = req.headers().contains_key(header::UPGRADE);
        let (upgrade, lifetime) = if asks {
            upgrade_of(&self.upgrades, &req).unzip()
        } else {
            (None, None)
        };
        if upgrade.is_none() && asks {
            self.metrics.upgrade(UpgradeResult::NotAllowed);
        }
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let info = req.extensions().get::<ConnectionInfo>().copied();

        // Target URI, origin-form (the connection is the upstream's): the
        // upstream's path prefix + the request's path and query.
        let pq = req.uri().path_and_query().cloned();
        let pq = match (self.prefix.as_str(), pq) {
            ("", Some(pq)) => Ok(pq),
            (prefix, pq) => PathAndQuery::try_from(format!(
                "{prefix}{}",
                pq.as_ref().map_or("/", PathAndQuery::as_str)
            )),
        };
        let uri = pq.map(|pq| {
            let mut p = http::uri::Parts::default();
            p.path_and_query = Some(pq);
            Uri::from_parts(p)
        });
        let Ok(Ok(uri)) = uri else {
            return failure(Rejection::UpstreamUnavailable(
                "unrepresentable request URI".into(),
            ));
        };

        // Keep the client's Host (HTTP/2 carries it in the URI).
        let host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let sent_host = host.is_some();
        let peer = info.map(|i| (i.peer.ip(), i.tls));
        // Changed in place: the request is not taken apart and rebuilt
        // (each of those moves all of it).
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        crate::headers::forward_request(h, &crate::headers::Forwarding { host, peer });
        if !sent_host {
            // An HTTP/1.0 request without one: the upstream's own.
            h.insert(header::HOST, self.default_host.clone());
        }
        if let Some(u) = &upgrade {
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, u.clone());
        }

        let started = Instant::now();
        let result = tokio::time::timeout(self.response_timeout, self.pool.send(req)).await;
        self.metrics
            .upstream_seconds
            .observe(started.elapsed().as_secs_f64());
        let mut resp = match result {
            Err(_) => return failure(Rejection::UpstreamTimeout),
            Ok(Err(e)) => {
                let connect = matches!(e, pool::PoolError::Connect(_));
                tracing::warn!(error = %e, connect, "upstream request failed");
                return failure(Rejection::UpstreamUnavailable(e.to_string()));
            }
            Ok(Ok(resp)) => resp,
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The connection is the tunnel now, or closes: never pooled.
            resp.body_mut().detach();
            // Only a switch to exactly the protocol forwarded opens a tunnel;
            // dropping `resp` unread closes the upstream connection.
            let (Some(client_upgrade), Some(asked), Some(lifetime)) =
                (client_upgrade, upgrade, lifetime)
            else {
                tracing::warn!("upstream answered 101 to a request that asked for no upgrade");
                self.metrics.upgrade(UpgradeResult::WrongProtocol);
                return failure(Rejection::UpstreamUnavailable(
                    "101 without an upgrade asked for".into(),
                ));
            };
            if !upgrade::switches_to(resp.headers(), &asked) {
                tracing::warn!(
                    asked = ?asked,
                    answered = ?resp.headers().get(header::UPGRADE),
                    "upstream switched to a protocol that was not asked for"
                );
                self.metrics.upgrade(UpgradeResult::WrongProtocol);
                return failure(Rejection::UpstreamUnavailable(
                    "101 to another protocol".into(),
                ));
            }
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            self.metrics.upgrade(UpgradeResult::Tunnelled);
            tokio::spawn(upgrade::tunnel(
                client_upgrade,
                upstream_upgrade,
                lifetime,
                self.upgrades.clone(),
                self.metrics.clone(),
            ));
            let h = resp.headers_mut();
            crate::headers::forward_response(h);
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, asked);
            return resp.map(Either::Left);
        }
        crate::headers::forward_response(resp.headers_mut());
        resp.map(Either::Left)
    }
}

fn failure(rejection: Rejection) -> Response<ProxyBody> {
    let marker = UpstreamFailure::from_rejection(&rejection);
    // WWW-Authenticate only applies to 401, which the proxy never produces.
    let mut resp = rejection
        .into_response(&Challenges::new(HeaderValue::from_static(""), None))
        .map(Either::Right);
    resp.extensions_mut().insert(marker);
    resp
}
