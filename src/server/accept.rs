//! The client listeners' accept loops: how many connections each holds, the
//! HTTP/1.1 and HTTP/2 limits they are served with, and the drain at
//! shutdown. A connection's own lifetime is in `connection.rs`.

use std::{convert::Infallible, sync::Arc, time::Duration};

use http::Request;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
    task::JoinHandle,
};

use super::{connection, front::Front, Workers};
use crate::{
    connection::ConnectionInfo,
    oauth2::{ConnectionCertificate, Thumbprint},
    proxy,
    tls::ListenerTls,
};

/// The client listeners being served, until [`Accepting::drain`].
pub(super) struct Accepting {
    stop: watch::Sender<bool>,
    loops: Vec<JoinHandle<()>>,
    /// One per listener; every connection holds a slot until it ends.
    slots: Vec<Arc<Semaphore>>,
    cap: usize,
}

/// Starts the accept loops: the proxy listener serving `front`, the
/// forward-auth listener with its front, both with TLS when `acceptor` is
/// set (`[tls]`), and the kube-apiserver webhook's listener (TLS always);
/// every connection is served on one of `workers`.
pub(super) fn start(
    settings: &proxy::Settings,
    (listener, acceptor, front): (TcpListener, Option<Arc<ListenerTls>>, Front),
    auth: Option<(TcpListener, Front)>,
    kube: Option<(TcpListener, Arc<ListenerTls>, Front)>,
    workers: &Workers,
) -> Accepting {
    let mut listeners = vec![("listen", listener, acceptor.clone(), front)];
    if let Some((l, front)) = auth {
        listeners.push(("auth_listen", l, acceptor, front));
    }
    if let Some((l, acceptor, front)) = kube {
        listeners.push(("kubernetes.listen", l, Some(acceptor), front));
    }
    let (cap, limits) = limits(settings, listeners.len());
    let builder = http(settings);
    let (stop, stop_rx) = watch::channel(false);
    let mut slots = Vec::new();
    let mut loops = Vec::new();
    for (name, listener, acceptor, front) in listeners {
        let slot = Arc::new(Semaphore::new(cap));
        slots.push(slot.clone());
        loops.push(tokio::spawn(accept_loop(
            Listener {
                name,
                listener,
                acceptor,
                slots: slot,
            },
            front,
            builder.clone(),
            limits.clone(),
            workers.clone(),
            stop_rx.clone(),
        )));
    }
    Accepting {
        stop,
        loops,
        slots,
        cap,
    }
}

impl Accepting {
    /// Stops accepting, then waits at most `grace` for the open connections
    /// to end.
    pub(super) async fn drain(self, grace: Duration) {
        let _ = self.stop.send(true);
        for l in self.loops {
            let _ = l.await;
        }
        tracing::info!("shutting down: draining in-flight requests");
        // Every connection holds a slot until it ends: drained when all are back.
        let cap = self.cap;
        let slots = self.slots;
        let all_back = async {
            for s in &slots {
                let _ = s.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX)).await;
            }
        };
        let drained = tokio::time::timeout(grace, all_back).await.is_ok();
        if !drained {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
}

/// The connections each of `listeners` may hold and the limits they are
/// served with, bounded by the descriptor limit (logged when it binds).
fn limits(settings: &proxy::Settings, listeners: usize) -> (usize, Arc<Limits>) {
    let descriptors = connection::descriptor_limit();
    let wanted = (settings.max_connections).unwrap_or(proxy::DEFAULT_MAX_CONNECTIONS);
    let cap = connection::connection_cap(wanted, listeners, descriptors);
    // The default follows the limit; only a value set that it cannot honour
    // is warned about.
    if let Some(configured) = settings.max_connections.filter(|&c| cap < c) {
        tracing::warn!(
            key = "proxy.max_connections",
            configured,
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
        first_byte_timeout: settings.first_byte_timeout,
        idle_timeout: settings.idle_timeout,
        header_read_timeout: settings.header_read_timeout,
        requests: connection::descriptor_budget(descriptors).map(|n| Arc::new(Semaphore::new(n))),
    });
    (cap, limits)
}

/// The HTTP/1.1 and HTTP/2 server settings of the client listeners.
fn http(settings: &proxy::Settings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Limits answered with 431 (HTTP/1.1) or a stream reset (HTTP/2).
    // header_read_timeout is connection::drive's (Activity::head_overdue),
    // not hyper's: hyper's made, armed and dropped a boxed timer for every
    // request (issue 16). Its default of 30 s, which a timer would turn on,
    // is turned off.
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes);
    // hyper's own limit is 100, parsed into an array on the stack; any
    // value set, even 100, makes it set up a 100-entry buffer for every
    // request head (about 1,700 instructions a request, issue 16). The
    // limit and its 431 are the same either way.
    if settings.max_headers != HYPER_MAX_HEADERS {
        http1.max_headers(settings.max_headers);
    }
    // Rapid reset (CVE-2023-44487): a client resetting more than 20
    // streams before they are served, or provoking more than 1024 stream
    // errors, gets GOAWAY and the connection closes.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(settings.http2_max_concurrent_streams)
        .keep_alive_interval(settings.http2_keep_alive_interval)
        .keep_alive_timeout(settings.http2_keep_alive_timeout)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024);
    builder
}

/// The most request headers hyper's HTTP/1.1 server takes when not told.
const HYPER_MAX_HEADERS: usize = 100;

/// The connection limits every client connection is served with.
struct Limits {
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    header_read_timeout: Duration,
    /// Requests in flight on all listeners together (each may hold an
    /// upstream connection), when the descriptor limit is known: further
    /// requests (HTTP/2 streams) wait for one to finish.
    requests: Option<Arc<Semaphore>>,
}

/// A client listener: its socket, TLS, and one slot per connection it may hold.
struct Listener {
    name: &'static str,
    listener: TcpListener,
    acceptor: Option<Arc<ListenerTls>>,
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
    workers: Workers,
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
        let connection = Connection {
            peer,
            front: front.clone(),
            builder: builder.clone(),
            acceptor: l.acceptor.clone(),
            limits: limits.clone(),
            stop: stop.clone(),
        };
        workers.spawn(stream, move |stream| async move {
            let _slot = slot;
            connection.serve(stream).await;
        });
    }
}

/// One accepted client connection and what it is served with.
struct Connection {
    peer: std::net::SocketAddr,
    front: Front,
    builder: auto::Builder<TokioExecutor>,
    acceptor: Option<Arc<ListenerTls>>,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection until it ends (TLS first, with `[tls]`).
    async fn serve(self, stream: tokio::net::TcpStream) {
        let Self {
            peer,
            front,
            builder,
            acceptor,
            limits,
            stop,
        } = self;
        let tls = acceptor.is_some();
        let activity = connection::Activity::new();
        // `certificate`: the client certificate the handshake verified.
        let service = {
            let activity = activity.clone();
            let requests = limits.requests.clone();
            move |certificate: Option<ConnectionCertificate>| {
                hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ConnectionInfo { peer, tls });
                    if let Some(c) = &certificate {
                        req.extensions_mut().insert(c.clone());
                    }
                    let busy = activity.begin();
                    let handled = front.handle(req);
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
            }
        };
        let timeouts = (limits.idle_timeout, limits.header_read_timeout);
        let result = match acceptor {
            None => {
                let io = connection::FirstBytes::new(
                    stream,
                    limits.first_byte_timeout,
                    activity.clone(),
                );
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service(None));
                connection::drive(conn, &activity, timeouts, stop).await
            }
            Some(acceptor) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(acceptor.config());
                let stream =
                    match tokio::time::timeout(limits.first_byte_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                // Its thumbprint, once per connection.
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| ConnectionCertificate(Thumbprint::of_der(leaf)));
                let io = connection::FirstBytes::new(
                    stream,
                    limits.first_byte_timeout,
                    activity.clone(),
                );
                let conn =
                    builder.serve_connection_with_upgrades(TokioIo::new(io), service(certificate));
                connection::drive(conn, &activity, timeouts, stop).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}
