//! The admin listener: `/healthz`, `/readyz` (the validator's readiness) and
//! `/metrics` (Prometheus text), over HTTP/1.1 only, with its own small
//! connection cap so that probes get through.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::Registry;
use tokio::{net::TcpListener, sync::Semaphore};

use super::connection;
use crate::{
    gate::Handle,
    metrics::{self, Metrics},
};

/// What the admin endpoints read: the registry to render, the cache gauges
/// to refresh first, and the gate whose validator's readiness they report.
pub(super) struct AdminState {
    pub(super) registry: Registry,
    pub(super) metrics: Metrics,
    pub(super) gate: Handle,
}

/// Serves the admin endpoints: at most [`connection::ADMIN_MAX_CONNECTIONS`]
/// at once, each closed when it sends no request head for
/// [`connection::ADMIN_HEADER_READ_TIMEOUT`], so that probes get through.
pub(super) async fn serve(listener: TcpListener, state: Arc<AdminState>) {
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
        "/readyz" => match state.gate.get().validator.not_ready_reason() {
            None => text(StatusCode::OK, "ready\n".into(), "text/plain"),
            Some(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
                "text/plain",
            ),
        },
        "/metrics" => {
            let gate = state.gate.get();
            let cache = gate.validator.cache();
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
