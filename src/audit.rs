//! CADF audit events, as keystonemiddleware's `audit` filter emits them: an
//! `audit.http.request` and an `audit.http.response` notification per
//! request (initiator = the token's user and project with the client's
//! address and agent; target = the service from the token's catalog and the
//! path; action from the method and the audit map; outcome and the status as
//! reason), for every request, only writes, or only the requests stonegate
//! refused (`[audit] events`).
//!
//! A request never waits for the audit trail: it hands a [`Record`] to a
//! bounded queue ([`Auditor::request`], [`Auditor::response`]); a writer
//! thread builds the JSON and writes one notification per line to standard
//! output or a file. A full queue or a failing sink drops the event and
//! counts it (`stonegate_audit_events_total{result="dropped"}`).

pub mod event;
pub mod map;
pub mod messaging;
pub mod settings;

use std::{io::Write, sync::Arc};

use tokio::sync::mpsc;

use http::{header, HeaderMap, Method, Uri};

pub use event::Record;
pub use settings::{Events, Section, Settings, Sink};

use crate::{
    connection::ConnectionInfo, metrics::Metrics, request_id::RequestId, validator::AuthContext,
};

/// Why the audit trail could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The events file could not be opened for appending.
    #[error("[audit] file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the audit writer: {0}")]
    Thread(std::io::Error),
}

/// What the writer is handed.
enum Message {
    Request(Arc<Record>),
    Response(Arc<Record>, u16, time::OffsetDateTime),
}

/// The audit trail of one configuration: decides which requests are
/// audited and queues their events for the writer.
pub struct Auditor {
    events: Events,
    ignore_methods: Vec<String>,
    ignore_paths: Vec<String>,
    queue: mpsc::Sender<Message>,
    metrics: Metrics,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("audit::Auditor")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// Opens the sink and starts the writer thread; it ends when the
    /// auditor is dropped, after writing what is queued. `service_type` is
    /// `[keystone_authtoken] service_type`, the target's catalog type when
    /// the map names no `target_endpoint_type`.
    pub fn start(
        settings: Settings,
        service_type: Option<String>,
        metrics: Metrics,
    ) -> Result<Self, Error> {
        let out: Box<dyn Write + Send> = match &settings.sink {
            Sink::Messaging(target) => {
                return Self::start_messaging(target.clone(), settings, service_type, metrics)
            }
            Sink::Stdout => Box::new(std::io::stdout()),
            Sink::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| Error::File {
                        path: path.display().to_string(),
                        source,
                    })?,
            ),
        };
        let (queue, rx) = mpsc::channel(settings.queue_size);
        let writer = Writer {
            out,
            render: Render {
                map: settings.map.clone(),
                publisher_id: settings.publisher_id.clone(),
                service_type,
                metrics: metrics.clone(),
            },
            failing: false,
        };
        std::thread::Builder::new()
            .name("stonegate-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(Error::Thread)?;
        Ok(Self::with_queue(settings, queue, metrics))
    }

    /// The oslo.messaging sink: a thread with its own runtime publishes.
    fn start_messaging(
        target: messaging::Target,
        settings: Settings,
        service_type: Option<String>,
        metrics: Metrics,
    ) -> Result<Self, Error> {
        let (queue, rx) = mpsc::channel(settings.queue_size);
        let render = Render {
            map: settings.map.clone(),
            publisher_id: settings.publisher_id.clone(),
            service_type,
            metrics: metrics.clone(),
        };
        let m = metrics.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Thread)?;
        std::thread::Builder::new()
            .name("stonegate-audit".into())
            .spawn(move || {
                runtime.block_on(messaging::run(
                    target,
                    rx,
                    |msg| render.line(msg),
                    |ok| {
                        let label = if ok { "emitted" } else { "dropped" };
                        m.audit_events.with_label_values(&[label]).inc();
                    },
                ))
            })
            .map_err(Error::Thread)?;
        Ok(Self::with_queue(settings, queue, metrics))
    }

    fn with_queue(settings: Settings, queue: mpsc::Sender<Message>, metrics: Metrics) -> Self {
        Self {
            events: settings.events,
            ignore_methods: settings.ignore_methods,
            ignore_paths: settings.ignore_paths,
            queue,
            metrics,
        }
    }

    /// Whether a request for `method` and `path` that stonegate `refused`
    /// (or not) is audited.
    pub fn audits(&self, method: &Method, path: &str, refused: bool) -> bool {
        if self.ignore_methods.iter().any(|m| m == method.as_str())
            || self.ignore_paths.iter().any(|p| p == path)
        {
            return false;
        }
        match self.events {
            Events::All => true,
            Events::Writes => !matches!(
                *method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            ),
            Events::Rejections => refused,
        }
    }

    /// Queues the `audit.http.request` event of `record`.
    pub fn request(&self, record: &Arc<Record>) {
        self.send(Message::Request(record.clone()));
    }

    /// Queues the `audit.http.response` event of `record`, answered `status`.
    pub fn response(&self, record: &Arc<Record>, status: u16) {
        self.send(Message::Response(
            record.clone(),
            status,
            time::OffsetDateTime::now_utc(),
        ));
    }

    fn send(&self, m: Message) {
        match self.queue.try_send(m) {
            Ok(()) => self.metrics.audit_queued.inc(),
            Err(_) => self
                .metrics
                .audit_events
                .with_label_values(&["dropped"])
                .inc(),
        }
    }
}

impl Record {
    /// The record of a request as forwarded (`uri` is the canonical form)
    /// and decided (`ctx`: the identity; `None` when refused).
    pub(crate) fn of(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        conn: Option<&ConnectionInfo>,
        ctx: Option<&AuthContext>,
        request_id: &RequestId,
    ) -> Arc<Self> {
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let identity_status = match ctx {
            Some(c) if c.public => map::UNKNOWN,
            Some(c) if c.is_confirmed() => "Confirmed",
            Some(_) => "Invalid",
            None => map::UNKNOWN,
        };
        Arc::new(Record {
            id: crate::request_id::uuid4_string(),
            correlation_id: crate::request_id::uuid4_string(),
            time: time::OffsetDateTime::now_utc(),
            method: method.clone(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            host: text(header::HOST).or_else(|| uri.authority().map(|a| a.to_string())),
            https: conn.is_some_and(|c| c.tls),
            client: conn.map(|c| c.peer.ip().to_canonical()),
            agent: text(header::USER_AGENT),
            identity: ctx.and_then(|c| c.user.clone()),
            identity_status,
            token: ctx.and_then(|c| c.user_fingerprint),
            request_id: request_id.clone(),
        })
    }
}

/// What turns a queued message into its notification's JSON text.
struct Render {
    map: map::Map,
    publisher_id: String,
    service_type: Option<String>,
    metrics: Metrics,
}

impl Render {
    /// The notification of `m`, as one line of JSON (no newline).
    fn line(&self, m: Message) -> String {
        self.metrics.audit_queued.dec();
        let st = self.service_type.as_deref();
        let (event_type, payload, at) = match m {
            Message::Request(r) => ("audit.http.request", r.request_event(&self.map, st), r.time),
            Message::Response(r, status, at) => {
                let request = r.request_event(&self.map, st);
                (
                    "audit.http.response",
                    r.response_event(request, status, at),
                    at,
                )
            }
        };
        let message_id = crate::request_id::uuid4_string();
        event::notification(&self.publisher_id, event_type, payload, &message_id, at).to_string()
    }
}

/// The writer thread of the stdout and file sinks.
struct Writer {
    out: Box<dyn Write + Send>,
    render: Render,
    /// The sink failed last time (logged once per failing stretch).
    failing: bool,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        let mut batch = String::new();
        while let Some(m) = rx.blocking_recv() {
            let mut n = 1;
            batch.push_str(&self.render.line(m));
            batch.push('\n');
            // Whatever else is queued goes in the same write.
            while let Ok(m) = rx.try_recv() {
                batch.push_str(&self.render.line(m));
                batch.push('\n');
                n += 1;
                if batch.len() > 1 << 20 {
                    break;
                }
            }
            let result = self
                .out
                .write_all(batch.as_bytes())
                .and_then(|()| self.out.flush());
            batch.clear();
            let label = match result {
                Ok(()) => {
                    self.failing = false;
                    "emitted"
                }
                Err(e) => {
                    if !self.failing {
                        tracing::error!(error = %e, "cannot write audit events; dropping them until the sink works");
                    }
                    self.failing = true;
                    "dropped"
                }
            };
            self.render
                .metrics
                .audit_events
                .with_label_values(&[label])
                .inc_by(n);
        }
    }
}
