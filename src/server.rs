//! The sidecar process: the proxy listener ([`AuthTokenLayer`] around
//! [`Proxy`]), the admin listener, the service-token keeper, and graceful
//! shutdown. HTTP/1.1 and HTTP/2 (h2c) are served on the same port.
//!
//! [`run`] reads as its steps: what the listeners serve (`server/front.rs`),
//! the accept loops and the drain (`server/accept.rs`), the admin endpoints
//! (`server/admin.rs`), reloading on SIGHUP (`server/reload.rs`).
//! Connection lifetimes and caps are in `server/connection.rs`.
//!
//! [`AuthTokenLayer`]: crate::layer::AuthTokenLayer
//! [`Proxy`]: crate::proxy::Proxy

mod accept;
mod admin;
mod connection;
mod front;
pub mod otlp;
mod reload;
mod workers;

pub use workers::{timer_heartbeat, Workers};

use std::{future::Future, net::SocketAddr, sync::Arc};

use prometheus::Registry;
use tokio::net::TcpListener;

use crate::{
    config::Settings, gate::Handle, kube::Webhook, metrics::Metrics, stack, tls::ListenerTls,
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
/// in-flight requests for at most `shutdown_grace_period`. Client
/// connections are served on the calling runtime.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    reload: impl Fn() -> Result<Settings, crate::config::Error>,
) -> Result<(), ServerError> {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry)?;
    run_registered(
        settings,
        listeners,
        Workers::default(),
        shutdown,
        reload,
        registry,
        metrics,
    )
    .await
}

/// [`run`] with metrics the caller registered in `registry` (served on
/// `/metrics`): the binary's span exporter counts into them before the
/// server starts; client connections are served on `workers`.
pub async fn run_registered(
    settings: Settings,
    listeners: Listeners,
    workers: Workers,
    shutdown: impl Future<Output = ()>,
    reload: impl Fn() -> Result<Settings, crate::config::Error>,
    registry: Registry,
    metrics: Metrics,
) -> Result<(), ServerError> {
    warn_insecure(&settings);
    let stack = stack::build(&settings, &metrics)?;
    let handle = Handle::new(stack.gate);
    let (front, auth_front) = front::build(&settings, &handle, &metrics, listeners.auth.is_some())?;
    // `[tls]`: the certificate, and the client CA with `client_ca_file`.
    let listener_tls = match &settings.proxy.tls {
        Some(t) => Some(ListenerTls::load(
            &t.cert_file,
            &t.key_file,
            t.client_certificates().as_ref(),
        )?),
        None => None,
    };
    // The kube-apiserver webhook: its own TLS listener (`[kubernetes]`).
    let kube = match &settings.kubernetes {
        None => None,
        Some(k) => {
            let tls = ListenerTls::load(&k.cert_file, &k.key_file, None)?;
            let webhook = Webhook::new(handle.clone(), k.clone(), metrics.clone());
            Some((bind(k.listen).await?, tls, webhook))
        }
    };
    let certs: Vec<Arc<ListenerTls>> = listener_tls
        .iter()
        .chain(kube.as_ref().map(|k| &k.1))
        .cloned()
        .collect();
    let watchers: Vec<_> = certs
        .iter()
        .map(|cert| tokio::spawn(reload::watch_certificate(cert.clone())))
        .collect();
    // The addresses bound, not configured: with port 0 (tests, an
    // embedder) only these say where stonegate listens.
    let bound = |l: &TcpListener| {
        l.local_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string())
    };
    tracing::info!(
        listen = %bound(&listeners.proxy),
        admin = %bound(&listeners.admin),
        auth_listen = ?listeners.auth.as_ref().map(bound),
        kubernetes = ?kube.as_ref().map(|k| bound(&k.0)),
        upstream = ?settings.proxy.upstream.as_ref().map(ToString::to_string),
        forward_auth_endpoints = settings.forward_auth.len(),
        worker_threads = workers.len(),
        "stonegate started"
    );

    let admin_task = tokio::spawn(admin::serve(
        listeners.admin,
        Arc::new(admin::AdminState {
            registry,
            metrics: metrics.clone(),
            gate: handle.clone(),
        }),
    ));
    let webhook = kube.as_ref().map(|k| k.2.clone());
    // Connections served on this runtime: its timers get the workers'
    // heartbeat too ([`timer_heartbeat`]).
    let heartbeat = workers.is_empty().then(|| tokio::spawn(timer_heartbeat()));
    let accepting = accept::start(
        &settings.proxy,
        (listeners.proxy, listener_tls, front),
        listeners.auth.zip(auth_front),
        kube.map(|(l, tls, webhook)| {
            (
                l,
                tls,
                front::Front::kubernetes(webhook, settings.proxy.max_headers),
            )
        }),
        &workers,
    );
    let generation = reload::until_shutdown(
        shutdown,
        &settings,
        reload,
        reload::Running {
            handle: &handle,
            metrics: &metrics,
            certs: &certs,
            webhook: webhook.as_ref(),
        },
        stack.background,
    )
    .await;
    accepting.drain(settings.proxy.shutdown_grace_period).await;
    admin_task.abort();
    for task in heartbeat.into_iter().chain(watchers) {
        task.abort();
    }
    drop(generation);
    Ok(())
}

/// Logs the settings that switch a check off, and the settings' warnings.
fn warn_insecure(settings: &Settings) {
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
