//! Reloading on SIGHUP: the configuration, keys and listener certificate
//! are read again and a new gate (validator and sessions) replaces the
//! running one in one swap; requests
//! in flight and open connections are not touched. Settings a reload
//! cannot apply are named in the log ([`restart_only_changes`]).

use std::{future::Future, sync::Arc, time::Duration};

use crate::{
    config::Settings,
    gate::Handle,
    kube::Webhook,
    metrics::Metrics,
    stack::{self, Background},
    tls::{ListenerTls, Reloaded},
};

/// What a reload replaces.
pub(super) struct Running<'a> {
    /// The gate every door decides with.
    pub handle: &'a Handle,
    /// The metrics the new stack counts into.
    pub metrics: &'a Metrics,
    /// The listeners' certificates and client CAs (`[tls]`, `[kubernetes]`).
    pub certs: &'a [Arc<ListenerTls>],
    /// The kube-apiserver webhook, whose role mappings and policy reload.
    pub webhook: Option<&'a Webhook>,
}

/// Reloads on every SIGHUP until `shutdown` completes; returns the
/// background tasks of the validator then in use (dropping them stops them).
pub(super) async fn until_shutdown(
    shutdown: impl Future<Output = ()>,
    settings: &Settings,
    reload: impl Fn() -> Result<Settings, crate::config::Error>,
    running: Running<'_>,
    mut generation: Background,
) -> Background {
    let Running {
        handle,
        metrics,
        certs,
        webhook,
    } = running;
    let mut hangup = hangup_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = hangup.recv() => {
                for cert in certs {
                    log_reload(cert.reload(true));
                }
                match reload().map_err(|e| e.to_string()).and_then(|new| {
                    for key in restart_only_changes(settings, &new) {
                        tracing::warn!(key, "changed in the configuration file; takes effect at the next restart");
                    }
                    stack::build(&new, metrics).map(|s| (s, new.kubernetes)).map_err(|e| e.to_string())
                }) {
                    Ok((new_stack, kubernetes)) => {
                        if let (Some(w), Some(k)) = (webhook, kubernetes) {
                            w.replace(k);
                        }
                        // Validator and sessions together: one swap.
                        handle.replace(new_stack.gate);
                        // Dropping the old background stops its tasks.
                        generation = new_stack.background;
                        tracing::info!("configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "configuration reload failed; keeping the running configuration"),
                }
            }
        }
    }
    generation
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
    check("forward_auth", old.forward_auth != new.forward_auth);
    check("tls", format!("{:?}", o.tls) != format!("{:?}", n.tls));
    check("log_format", o.log_json != n.log_json);
    let kube_listener = |s: &Settings| {
        s.kubernetes
            .as_ref()
            .map(|k| (k.listen, k.cert_file.clone(), k.key_file.clone()))
    };
    check("kubernetes", kube_listener(old) != kube_listener(new));
    check(
        "proxy",
        (
            o.connect_timeout,
            o.response_timeout,
            o.header_read_timeout,
            o.max_headers,
            o.max_header_bytes,
            (
                o.first_byte_timeout,
                o.idle_timeout,
                o.max_connections,
                o.worker_threads,
            ),
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
            (
                n.first_byte_timeout,
                n.idle_timeout,
                n.max_connections,
                n.worker_threads,
            ),
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

/// Picks up a renewed listener certificate or client CA bundle (checked
/// every 5 s); a bad file is logged and the current one kept.
pub(super) async fn watch_certificate(cert: Arc<ListenerTls>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        log_reload(cert.reload(false));
    }
}

/// Logs what a reload of a listener's files did (nothing when unchanged).
fn log_reload(r: Reloaded) {
    for (what, result) in [
        ("listener certificate", Some(r.certificate)),
        ("client CA bundle", r.client_ca),
    ]
    .into_iter()
    .filter_map(|(what, r)| Some((what, r?)))
    {
        match result {
            Ok(true) => tracing::info!("{what} reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "{what} reload failed; keeping the current one"),
        }
    }
}
