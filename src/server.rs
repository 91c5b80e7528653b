//! The sidecar process: the proxy listener ([`AuthTokenLayer`] around
//! [`Proxy`]), the admin listener, the service-token keeper, and graceful
//! shutdown. HTTP/1.1 and HTTP/2 (h2c) are served on the same port.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use prometheus::Registry;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_layer::Layer;

use crate::{
    config::Settings,
    keystone,
    layer::AuthTokenLayer,
    metrics::{self, Metrics},
    proxy::{ConnectionInfo, Proxy, UpstreamConfig},
    tls::ClientTls,
    validator::Validator,
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The Keystone client could not be built.
    #[error(transparent)]
    Keystone(#[from] keystone::Error),
    /// The upstream client could not be built.
    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyError),
    /// The listener's TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Runs stonegate until `shutdown` completes, then drains in-flight requests
/// for at most `shutdown_grace_period`.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry)?;
    if settings.keystone.insecure {
        tracing::warn!(
            "keystone_authtoken.insecure = true: Keystone's TLS certificate is NOT verified"
        );
    }
    let keystone = keystone::Client::new(settings.keystone.clone(), metrics.clone())?;
    let validator = Arc::new(Validator::new(
        keystone.clone(),
        settings.auth.clone(),
        metrics.clone(),
    ));
    let proxy = Proxy::new(
        UpstreamConfig {
            url: settings.proxy.upstream.clone(),
            connect_timeout: settings.proxy.connect_timeout,
            response_timeout: settings.proxy.response_timeout,
            tls: ClientTls::default(),
        },
        metrics.clone(),
    )?;
    let service = AuthTokenLayer::new(validator.clone(), metrics.clone()).layer(proxy);

    let acceptor = match &settings.proxy.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            crate::tls::server_config(&t.cert_file, &t.key_file)?,
        ))),
        None => None,
    };
    let listener = bind(settings.proxy.listen).await?;
    let admin = bind(settings.proxy.admin_listen).await?;
    tracing::info!(
        listen = %settings.proxy.listen,
        admin = %settings.proxy.admin_listen,
        upstream = %settings.proxy.upstream,
        "stonegate started"
    );

    let keeper = tokio::spawn(keep_service_token(keystone.clone()));
    let admin_task = tokio::spawn(serve_admin(
        admin,
        Arc::new(AdminState {
            registry,
            metrics,
            validator,
        }),
    ));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.proxy.header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let tls = acceptor.is_some();
                let service = service.clone();
                let hyper_service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ConnectionInfo { peer, tls });
                    service.clone().oneshot(req)
                });
                match &acceptor {
                    None => {
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service)
                            .into_owned();
                        let conn = graceful.watch(conn);
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        let handshake_timeout = settings.proxy.header_read_timeout;
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service)
                                .into_owned();
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(settings.proxy.shutdown_grace_period, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
    keeper.abort();
    admin_task.abort();
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Keeps a fresh service token so that `/readyz` tells the truth and the first
/// request does not pay for authentication.
async fn keep_service_token(keystone: keystone::Client) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match keystone.ensure_service_token().await {
            Ok(()) => {
                backoff = Duration::from_millis(500);
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot obtain a service token");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

struct AdminState {
    registry: Registry,
    metrics: Metrics,
    validator: Arc<Validator>,
}

async fn serve_admin(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(admin_response(&state, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn admin_response(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, ctype: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
        r
    };
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" => {
            if state.validator.keystone().is_ready() {
                text(StatusCode::OK, "ready\n".into(), "text/plain")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: no valid service token from Keystone yet\n".into(),
                    "text/plain",
                )
            }
        }
        "/metrics" => {
            let cache = state.validator.cache();
            state
                .metrics
                .cache_entries
                .set(i64::try_from(cache.entry_count()).unwrap_or(i64::MAX));
            state
                .metrics
                .cache_bytes
                .set(i64::try_from(cache.weighted_size()).unwrap_or(i64::MAX));
            text(
                StatusCode::OK,
                metrics::render(&state.registry),
                "text/plain; version=0.0.4",
            )
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}
