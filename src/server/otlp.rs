//! The OTLP/HTTP (protobuf) span export of `stonegate serve` with
//! `[tracing] otlp_endpoint`: a tracing-opentelemetry layer for the spans of
//! [`crate::trace::TARGET`], sampled parent-based with `sample_ratio`, and
//! a bounded queue drained by a thread of its own.
//!
//! Ending a span only offers it to the queue (`try_send`: never a wait on a
//! request's task); a full queue drops it. The export thread runs its own
//! single-threaded runtime and posts batches (up to 512 spans, at least once
//! a second) with opentelemetry-otlp's exporter through our hyper +
//! hyper-rustls client (the system's roots; `OTEL_EXPORTER_OTLP_HEADERS`
//! adds headers, e.g. a collector's credentials, from the environment).
//! `stonegate_trace_spans_total{result="exported"|"dropped"}` counts them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use opentelemetry::{trace::TracerProvider as _, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    error::{OTelSdkError, OTelSdkResult},
    trace::{Sampler, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor},
    Resource,
};
use prometheus::IntCounterVec;
use tokio::sync::{mpsc, oneshot};
use tracing_subscriber::{filter::Targets, Layer};

use crate::trace::{Settings, TARGET};

/// Spans posted in one export at most.
const MAX_BATCH: usize = 512;
/// How long spans wait for a batch to fill.
const EXPORT_INTERVAL: Duration = Duration::from_secs(1);
/// One export's limit (connect, post, answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The exporter refused its settings.
    #[error("[tracing] otlp_endpoint: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The client TLS configuration.
    #[error("[tracing] TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The export thread or its runtime.
    #[error("[tracing] export thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Keeps the export running; dropping it exports what is queued (for at
/// most 5 s) and stops the thread.
#[derive(Debug)]
pub struct Guard(SdkTracerProvider);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// The layer exporting stonegate's spans as `settings` say, counting into
/// `spans`, and the guard that keeps the export running.
pub fn layer<S>(settings: &Settings, spans: IntCounterVec) -> Result<(impl Layer<S>, Guard), Error>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let resource = Resource::builder_empty()
        .with_attributes([KeyValue::new("service.name", settings.service_name.clone())])
        .build();
    let processor = Queue::start(settings, resource.clone(), spans)?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("stonegate");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        // stonegate's spans only: no log event becomes a span event.
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::INFO));
    Ok((layer, Guard(provider)))
}

/// The span processor: a bounded queue to the export thread.
#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<SpanData>,
    spans: IntCounterVec,
    stop: std::sync::Mutex<Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>>,
}

impl Queue {
    fn start(settings: &Settings, resource: Resource, spans: IntCounterVec) -> Result<Self, Error> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(settings.endpoint.to_string())
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(Poster::new()?)
            .build()?;
        exporter.set_resource(&resource);
        let (tx, rx) = mpsc::channel(settings.queue_size);
        let (stop_tx, stop_rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let counted = spans.clone();
        let thread = std::thread::Builder::new()
            .name("stonegate-otlp".into())
            .spawn(move || runtime.block_on(export(exporter, rx, stop_rx, counted)))?;
        Ok(Self {
            tx,
            spans,
            stop: std::sync::Mutex::new(Some((stop_tx, thread))),
        })
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.tx.try_send(span).is_err() {
            self.spans.with_label_values(&["dropped"]).inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let taken = self.stop.lock().ok().and_then(|mut s| s.take());
        let Some((stop, thread)) = taken else {
            return Err(OTelSdkError::AlreadyShutdown);
        };
        let _ = stop.send(());
        // The thread exports what is queued, bounded by its own timeout.
        let deadline = std::time::Instant::now() + timeout.min(Duration::from_secs(5));
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// The export thread: batches from `rx`, posted until `stop` (then what is
/// left, once).
async fn export(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    mut stop: oneshot::Receiver<()>,
    spans: IntCounterVec,
) {
    let mut failing = false;
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let stopping = tokio::select! {
            _ = &mut stop => true,
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    return;
                }
                // Let a batch fill a little, unless it is full already.
                if batch.len() < MAX_BATCH {
                    let more = tokio::time::timeout(EXPORT_INTERVAL, async {
                        while batch.len() < MAX_BATCH {
                            let room = MAX_BATCH - batch.len();
                            if rx.recv_many(&mut batch, room).await == 0 {
                                break;
                            }
                        }
                    });
                    let _ = more.await;
                }
                false
            }
        };
        if stopping {
            while let Ok(s) = rx.try_recv() {
                batch.push(s);
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            match exporter.export(batch).await {
                Ok(()) => {
                    if failing {
                        tracing::info!("tracing: the OTLP collector takes spans again");
                    }
                    failing = false;
                    spans.with_label_values(&["exported"]).inc_by(n);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "tracing: the OTLP export failed; spans dropped");
                    }
                    failing = true;
                    spans.with_label_values(&["dropped"]).inc_by(n);
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// opentelemetry-http's client, on the hyper + rustls stack stonegate
/// already has (no reqwest).
#[derive(Clone)]
struct Poster(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>);

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("server::otlp::Poster")
    }
}

impl Poster {
    fn new() -> Result<Self, Error> {
        let tls = crate::tls::ClientTls::default().build()?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Self(Client::builder(TokioExecutor::new()).build(https)))
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Poster {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let exchange = async {
            let resp = self.0.request(request.map(Full::new)).await?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, 1 << 20).collect().await?.to_bytes();
            let resp = http::Response::from_parts(parts, body);
            if !resp.status().is_success() {
                return Err(format!("the collector answered {}", resp.status()).into());
            }
            Ok::<_, opentelemetry_http::HttpError>(resp)
        };
        tokio::time::timeout(EXPORT_TIMEOUT, exchange)
            .await
            .map_err(|_| "the collector did not answer in time")?
    }
}
