//! The sidecar process: the proxy listener ([`AuthTokenLayer`] around
//! [`Proxy`]), the admin listener, the service-token keeper, and graceful
//! shutdown. HTTP/1.1 and HTTP/2 (h2c) are served on the same port.
//! Connection lifetimes and caps are in `server/connection.rs`.

mod connection;

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use prometheus::Registry;
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt;
use tower_layer::Layer;

use crate::{
    config::Settings,
    connection::ConnectionInfo,
    forward_auth::ForwardAuth,
    layer::{AuthToken, AuthTokenLayer},
    metrics::{self, Metrics},
    proxy::{Proxy, UpstreamConfig},
    stack,
    validator::Handle,
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
    /// The validator or its background tasks could not be built.
    #[error(transparent)]
    Stack(#[from] crate::stack::Error),
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

/// The sockets stonegate serves on, already bound: by [`Listeners::bind`]
/// from the settings' addresses (the `stonegate` command), or by an
/// embedder or a test (`127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// The proxy listener (`listen`).
    pub proxy: TcpListener,
    /// The admin listener (`admin_listen`): health, readiness, metrics.
    pub admin: TcpListener,
    /// The forward-auth listener (`auth_listen`); without it the
    /// forward-auth endpoints are served on the proxy listener.
    pub auth: Option<TcpListener>,
}

impl Listeners {
    /// Binds `listen`, `admin_listen` and `auth_listen`, in that order; the
    /// error names the address that could not be bound.
    pub async fn bind(settings: &crate::proxy::Settings) -> Result<Self, ServerError> {
        let proxy = bind(settings.listen).await?;
        let admin = bind(settings.admin_listen).await?;
        let auth = match settings.auth_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Self { proxy, admin, auth })
    }
}

/// Runs stonegate on `listeners` until `shutdown` completes, then drains
/// in-flight requests for at most `shutdown_grace_period`.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    reload: impl Fn() -> Result<Settings, crate::config::Error>,
) -> Result<(), ServerError> {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry)?;
    if settings.proxy.upstream_tls.insecure {
        tracing::warn!("proxy.insecure = true: the upstream's TLS certificate is NOT verified");
    }
    for w in &settings.warnings {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
    if settings.keystone.insecure {
        tracing::warn!(
            "keystone_authtoken.insecure = true: Keystone's TLS certificate is NOT verified"
        );
    }
    let stack = stack::build(&settings, &metrics)?;
    let handle = Handle::new(stack.validator);
    let mut generation = stack.background;
    let mut background = Vec::new();
    let proxy = match &settings.proxy.upstream {
        Some(url) => Some(
            AuthTokenLayer::with_handle(handle.clone(), metrics.clone()).layer(Proxy::new(
                UpstreamConfig {
                    url: url.clone(),
                    connect_timeout: settings.proxy.connect_timeout,
                    response_timeout: settings.proxy.response_timeout,
                    tls: settings.proxy.upstream_tls.clone(),
                    upgrades: settings.proxy.upgrades.clone(),
                },
                metrics.clone(),
            )?),
        ),
        None => None,
    };
    let forward_auth = (!settings.proxy.forward_auth.is_empty()).then(|| {
        ForwardAuth::with_handle(
            handle.clone(),
            settings.proxy.forward_auth.clone(),
            metrics.clone(),
        )
    });
    let listener_cert = match &settings.proxy.tls {
        Some(t) => Some(crate::tls::ReloadableCert::load(&t.cert_file, &t.key_file)?),
        None => None,
    };
    let acceptor = match &listener_cert {
        Some(cert) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            cert.server_config()?,
        ))),
        None => None,
    };
    if let Some(cert) = listener_cert.clone() {
        background.push(tokio::spawn(watch_certificate(cert)));
    }
    let Listeners {
        proxy: listener,
        admin,
        auth: auth_listener,
    } = listeners;
    tracing::info!(
        listen = %settings.proxy.listen,
        admin = %settings.proxy.admin_listen,
        auth_listen = ?settings.proxy.auth_listen,
        upstream = ?settings.proxy.upstream.as_ref().map(ToString::to_string),
        forward_auth_endpoints = settings.proxy.forward_auth.len(),
        "stonegate started"
    );

    let listeners = 1 + usize::from(auth_listener.is_some());
    let descriptors = connection::descriptor_limit();
    let cap = connection::connection_cap(settings.proxy.max_connections, listeners, descriptors);
    if cap < settings.proxy.max_connections {
        tracing::warn!(
            key = "proxy.max_connections",
            configured = settings.proxy.max_connections,
            serving = cap,
            descriptor_limit = descriptors,
            "the descriptor limit (RLIMIT_NOFILE) allows fewer client connections per listener than proxy.max_connections; raise `ulimit -n` (systemd LimitNOFILE=) to serve more"
        );
    }
    if let Some(budget) = connection::descriptor_budget(descriptors) {
        tracing::info!(
            descriptor_limit = descriptors,
            connections_per_listener = cap,
            requests_in_flight = budget,
            "connection and request limits"
        );
    }
    let limits = Arc::new(Limits {
        first_byte_timeout: settings.proxy.first_byte_timeout,
        idle_timeout: settings.proxy.idle_timeout,
        requests: connection::descriptor_budget(descriptors).map(|n| Arc::new(Semaphore::new(n))),
    });

    let admin_task = tokio::spawn(serve_admin(
        admin,
        Arc::new(AdminState {
            registry,
            metrics: metrics.clone(),
            validator: handle.clone(),
        }),
    ));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Limits answered with 431 (HTTP/1.1) or a stream reset (HTTP/2).
    // hyper's header_read_timeout also runs while an HTTP/1.1 connection
    // waits for its next request, so it bounds idle keep-alive as well.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.proxy.header_read_timeout)
        .max_headers(settings.proxy.max_headers)
        .max_buf_size(settings.proxy.max_header_bytes);
    // Rapid reset (CVE-2023-44487): a client resetting more than 20
    // streams before they are served, or provoking more than 1024 stream
    // errors, gets GOAWAY and the connection closes.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.proxy.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(settings.proxy.http2_max_concurrent_streams)
        .keep_alive_interval(settings.proxy.http2_keep_alive_interval)
        .keep_alive_timeout(settings.proxy.http2_keep_alive_timeout)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let main_front = Front {
        forward_auth: if auth_listener.is_some() {
            None
        } else {
            forward_auth.clone()
        },
        proxy,
        max_headers: settings.proxy.max_headers,
    };
    let mut slots = vec![Arc::new(Semaphore::new(cap))];
    let mut loops = vec![tokio::spawn(accept_loop(
        Listener {
            name: "listen",
            listener,
            acceptor,
            slots: slots[0].clone(),
        },
        main_front,
        builder.clone(),
        limits.clone(),
        stop_rx.clone(),
    ))];
    if let Some(l) = auth_listener {
        slots.push(Arc::new(Semaphore::new(cap)));
        loops.push(tokio::spawn(accept_loop(
            Listener {
                name: "auth_listen",
                listener: l,
                acceptor: None,
                slots: slots[1].clone(),
            },
            Front {
                forward_auth,
                proxy: None,
                max_headers: settings.proxy.max_headers,
            },
            builder,
            limits,
            stop_rx,
        )));
    }
    // SIGHUP: re-read the configuration, keys and certificate; requests in
    // flight and open connections are not touched.
    let mut hangup = hangup_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = hangup.recv() => {
                if let Some(cert) = &listener_cert {
                    match cert.reload(true) {
                        Ok(_) => tracing::info!("listener certificate reloaded"),
                        Err(e) => tracing::error!(error = %e, "listener certificate reload failed; keeping the current one"),
                    }
                }
                match reload().map_err(|e| e.to_string()).and_then(|new| {
                    for key in restart_only_changes(&settings, &new) {
                        tracing::warn!(key, "changed in the configuration file; takes effect at the next restart");
                    }
                    stack::build(&new, &metrics).map_err(|e| e.to_string())
                }) {
                    Ok(new_stack) => {
                        handle.replace(new_stack.validator);
                        // Dropping the old background stops its tasks.
                        generation = new_stack.background;
                        tracing::info!("configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "configuration reload failed; keeping the running configuration"),
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    tracing::info!("shutting down: draining in-flight requests");
    // Every connection holds a slot until it ends: drained when all are back.
    let all_back = async {
        for s in &slots {
            let _ = s.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX)).await;
        }
    };
    let drained = tokio::time::timeout(settings.proxy.shutdown_grace_period, all_back)
        .await
        .is_ok();
    if !drained {
        tracing::warn!("grace period over; closing remaining connections");
    }
    admin_task.abort();
    for task in background {
        task.abort();
    }
    drop(generation);
    Ok(())
}

/// Settings a reload cannot apply (listeners, upstream, proxy limits).
fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let (o, n) = (&old.proxy, &new.proxy);
    let mut changed = Vec::new();
    let mut check = |key: &'static str, differs: bool| {
        if differs {
            changed.push(key);
        }
    };
    check("listen", o.listen != n.listen);
    check("admin_listen", o.admin_listen != n.admin_listen);
    check("auth_listen", o.auth_listen != n.auth_listen);
    check("upstream", o.upstream != n.upstream);
    check("forward_auth", o.forward_auth != n.forward_auth);
    check("tls", format!("{:?}", o.tls) != format!("{:?}", n.tls));
    check("log_format", o.log_json != n.log_json);
    check(
        "proxy",
        (
            o.connect_timeout,
            o.response_timeout,
            o.header_read_timeout,
            o.max_headers,
            o.max_header_bytes,
            (o.first_byte_timeout, o.idle_timeout, o.max_connections),
            (
                o.http2_keep_alive_interval,
                o.http2_keep_alive_timeout,
                o.http2_max_concurrent_streams,
            ),
        ) != (
            n.connect_timeout,
            n.response_timeout,
            n.header_read_timeout,
            n.max_headers,
            n.max_header_bytes,
            (n.first_byte_timeout, n.idle_timeout, n.max_connections),
            (
                n.http2_keep_alive_interval,
                n.http2_keep_alive_timeout,
                n.http2_max_concurrent_streams,
            ),
        ) || format!("{:?}", o.upstream_tls) != format!("{:?}", n.upstream_tls)
            || o.upgrades != n.upgrades,
    );
    changed
}

/// SIGHUP as a stream of `()`; never fires where there is no such signal.
struct Hangup(Option<tokio::signal::unix::Signal>);

fn hangup_signal() -> Hangup {
    Hangup(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok())
}

impl Hangup {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                if s.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// Picks up a renewed listener certificate (checked every 5 s); a bad pair
/// is logged and the current certificate kept.
async fn watch_certificate(cert: Arc<crate::tls::ReloadableCert>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        match cert.reload(false) {
            Ok(true) => tracing::info!("listener certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "listener certificate reload failed; keeping the current one")
            }
        }
    }
}

type ProxyService = AuthToken<Proxy>;
type ProxyResponseBody =
    <<ProxyService as tower_service::Service<Request<Incoming>>>::Response as ResponseBody>::Body;

/// Lets the alias above name the proxy's response body type.
trait ResponseBody {
    type Body;
}
impl<B> ResponseBody for Response<B> {
    type Body = B;
}

/// What a listener serves: forward-auth endpoints, then the proxy, else 404.
#[derive(Clone)]
struct Front {
    forward_auth: Option<ForwardAuth>,
    proxy: Option<ProxyService>,
    /// Most request headers; HTTP/1.1 heads are checked by hyper, HTTP/2
    /// ones here (h2 bounds only their bytes).
    max_headers: usize,
}

type FrontBody = Either<Full<Bytes>, ProxyResponseBody>;

impl Front {
    async fn handle(self, req: Request<Incoming>) -> Result<Response<FrontBody>, Infallible> {
        if req.headers().len() > self.max_headers {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"request header fields too large\n",
            )));
            *r.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            return Ok(r.map(Either::Left));
        }
        if let Some(fa) = self.forward_auth {
            if fa.handles(req.uri().path()) {
                return fa.oneshot(req).await.map(|r| r.map(Either::Left));
            }
        }
        match self.proxy {
            Some(p) => p.oneshot(req).await.map(|r| r.map(Either::Right)),
            None => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                *r.status_mut() = StatusCode::NOT_FOUND;
                Ok(r.map(Either::Left))
            }
        }
    }
}

/// The connection limits every client connection is served with.
struct Limits {
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    /// Requests in flight on all listeners together (each may hold an
    /// upstream connection), when the descriptor limit is known: further
    /// requests (HTTP/2 streams) wait for one to finish.
    requests: Option<Arc<Semaphore>>,
}

/// A client listener: its socket, TLS, and one slot per connection it may hold.
struct Listener {
    name: &'static str,
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    slots: Arc<Semaphore>,
}

/// Accepts connections until `stop` turns true. A connection holds a slot
/// until it ends; with none free, new connections wait in the kernel's
/// listen backlog (no descriptor is spent on them).
async fn accept_loop(
    l: Listener,
    front: Front,
    builder: auto::Builder<TokioExecutor>,
    limits: Arc<Limits>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let slot = tokio::select! {
            slot = l.slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = connection::accept(&l.listener, l.name) => accepted,
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let tls = l.acceptor.is_some();
        let front = front.clone();
        let activity = connection::Activity::new();
        let service = {
            let activity = activity.clone();
            let requests = limits.requests.clone();
            hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectionInfo { peer, tls });
                let busy = activity.begin();
                let handled = front.clone().handle(req);
                let budget = requests.clone();
                async move {
                    let permit = match budget {
                        Some(b) => b.acquire_owned().await.ok(),
                        None => None,
                    };
                    let resp = handled.await?;
                    Ok::<_, Infallible>(resp.map(|b| connection::Tracked::new(b, busy, permit)))
                }
            })
        };
        let builder = builder.clone();
        let acceptor = l.acceptor.clone();
        let limits = limits.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let result = match acceptor {
                None => {
                    let io = connection::FirstBytes::new(stream, limits.first_byte_timeout);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    connection::drive(conn, &activity, limits.idle_timeout, stop).await
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(
                        limits.first_byte_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let io = connection::FirstBytes::new(stream, limits.first_byte_timeout);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    connection::drive(conn, &activity, limits.idle_timeout, stop).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Connections a listener's kernel backlog holds while every slot is taken
/// (capped by `net.core.somaxconn`); the standard library's 128 would turn
/// a burst past `max_connections` into SYN retries.
const LISTEN_BACKLOG: u32 = 1024;

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    socket
        .and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(LISTEN_BACKLOG)
        })
        .map_err(|source| ServerError::Bind { addr, source })
}

struct AdminState {
    registry: Registry,
    metrics: Metrics,
    validator: Handle,
}

/// Serves the admin endpoints: at most [`connection::ADMIN_MAX_CONNECTIONS`]
/// at once, each closed when it sends no request head for
/// [`connection::ADMIN_HEADER_READ_TIMEOUT`], so that probes get through.
async fn serve_admin(listener: TcpListener, state: Arc<AdminState>) {
    let slots = Arc::new(Semaphore::new(connection::ADMIN_MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = connection::accept(&listener, "admin_listen").await;
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(admin_response(&state, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(connection::ADMIN_HEADER_READ_TIMEOUT)
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
        "/readyz" => match state.validator.get().not_ready_reason() {
            None => text(StatusCode::OK, "ready\n".into(), "text/plain"),
            Some(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
                "text/plain",
            ),
        },
        "/metrics" => {
            let validator = state.validator.get();
            let cache = validator.cache();
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
