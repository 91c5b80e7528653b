//! The upstream's keep-alive HTTP/1.1 connections, on hyper's low-level
//! `client::conn::http1` API, in place of hyper-util's legacy `Client`
//! (its checkout, per-host map and connect race cost a forwarded request
//! about 10,000 instructions and 7 allocations: README, Performance). Idle
//! connections are kept in one
//! list per worker thread, most recently used first: a request takes from
//! its thread's list (another's only when that is empty), so the lock it
//! takes is normally uncontended. A connection goes back to the list it
//! came from when its response body has been read to the end (a body
//! dropped early closes it) and the request's body has been handed to the
//! connection whole (an upstream that answered before the body ended
//! leaves the connection carrying a client's upload: it closes when that
//! is done, and no other request waits for it), never after a `101`. An
//! idle connection older than [`IDLE_TIMEOUT`] is closed when a request of
//! its thread finds it; one the upstream closed is skipped, and so is one
//! not ready for a new request within [`READY_WAIT`].
//!
//! A request that a pooled connection could not send is sent again on
//! another connection, and only then: hyper gives a request back
//! (`TrySendError::take_message`) only while it is still queued, before
//! its connection has taken it to write its head, so the upstream has
//! seen no byte of it and its body has not been polled. Once the head is
//! being written, any failure is the client's 502, never a second
//! attempt: a POST never reaches the upstream twice, nor with part of its
//! body missing (tests/product/upstream_pool.rs).

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_util::FutureExt;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::{
    body::{Bytes, Incoming},
    client::conn::http1::{self, SendRequest},
};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

/// How long a connection may sit idle in the pool.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The most idle connections one shard keeps (the newest are kept).
const MAX_IDLE_PER_SHARD: usize = 256;

/// How long a request waits for an idle connection to finish its previous
/// exchange (normally microseconds: the connection's task has not yet run
/// since the response ended); after that the connection is closed.
pub(super) const READY_WAIT: Duration = Duration::from_millis(250);

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type Sender = SendRequest<RequestBody>;

/// Why a request did not get a response from the upstream.
#[derive(Debug, thiserror::Error)]
pub(super) enum PoolError {
    /// No connection could be opened (refused, unreachable, timed out, TLS).
    #[error("connect: {0}")]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed while the request was sent or the response read.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Keep-alive connections to one upstream.
pub(super) struct Pool {
    connector: Connector,
    /// `scheme://authority/` of the upstream: what the connector dials.
    target: Uri,
    shards: Box<[Mutex<VecDeque<Idle>>]>,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard number, given on first use.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
}

impl Pool {
    /// A pool dialing `target` (scheme and authority) with `connector`.
    pub(super) fn new(connector: Connector, target: Uri) -> Arc<Self> {
        let n = std::thread::available_parallelism().map_or(1, usize::from);
        Arc::new(Self {
            connector,
            target,
            shards: (0..n).map(|_| Mutex::new(VecDeque::new())).collect(),
        })
    }

    /// This thread's shard.
    fn home(&self) -> usize {
        SHARD.with(|s| *s) % self.shards.len()
    }

    /// Sends `req` (origin-form URI, `Host` set) and returns the response,
    /// whose body hands the connection back to the pool when it is read to
    /// its end.
    pub(super) async fn send(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, PoolError> {
        // A request with a body: the connection is pooled again only once
        // that body has been handed to it whole.
        let sent = (!req.body().is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let mut req = req.map(|body| RequestBody {
            body,
            sent: sent.clone(),
        });
        loop {
            let home = self.home();
            let (mut sender, shard, reused) = match self.take_idle(home).await {
                Some((s, shard)) => (s, shard, true),
                None => (self.connect().await?, home, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let pool = self.clone();
                    return Ok(resp.map(|body| UpstreamBody {
                        body,
                        sender: Some(sender),
                        sent,
                        pool,
                        shard,
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Still queued, never written: an idle connection the
                    // upstream had closed. Again, on another connection.
                    Some(back) if reused => req = back,
                    _ => return Err(PoolError::Http(e.into_error())),
                },
            }
        }
    }

    /// The newest idle connection that is still open, ready for a request,
    /// from shard `home` or else the others; with the shard it came from.
    async fn take_idle(&self, home: usize) -> Option<(Sender, usize)> {
        let n = self.shards.len();
        for shard in (0..n).map(|i| (home + i) % n) {
            loop {
                let idle = {
                    let mut list = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
                    list.pop_back()
                };
                let Some(idle) = idle else { break };
                if idle.since.elapsed() >= IDLE_TIMEOUT || idle.sender.is_closed() {
                    continue;
                }
                let mut sender = idle.sender;
                // Ready at once unless the connection's task has not run
                // since the previous response ended.
                let ready = match sender.ready().now_or_never() {
                    Some(r) => r.is_ok(),
                    None => matches!(
                        tokio::time::timeout(READY_WAIT, sender.ready()).await,
                        Ok(Ok(()))
                    ),
                };
                if ready {
                    return Some((sender, shard));
                }
            }
        }
        None
    }

    async fn connect(&self) -> Result<Sender, PoolError> {
        let io = self
            .connector
            .clone()
            .call(self.target.clone())
            .await
            .map_err(PoolError::Connect)?;
        let (sender, conn) = http1::Builder::new().handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn put_back(&self, sender: Sender, shard: usize) {
        if sender.is_closed() {
            return;
        }
        let mut shard = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
        while shard
            .front()
            .is_some_and(|i| i.since.elapsed() >= IDLE_TIMEOUT)
            || shard.len() >= MAX_IDLE_PER_SHARD
        {
            shard.pop_front();
        }
        shard.push_back(Idle {
            sender,
            since: Instant::now(),
        });
    }
}

/// A request body on its way to the upstream: marks when the connection
/// has taken its last frame.
pub(super) struct RequestBody {
    body: Incoming,
    /// Set once the body has ended; `None` for a request without a body.
    sent: Option<Arc<AtomicBool>>,
}

impl RequestBody {
    fn ended(&self) {
        if let Some(sent) = &self.sent {
            sent.store(true, Ordering::Release);
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.ended(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.ended(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body from a pooled connection: streams the upstream's body
/// and returns the connection to the pool once the body has ended (and
/// the request's body too).
pub struct UpstreamBody {
    body: Incoming,
    sender: Option<Sender>,
    /// The request body's end mark (`None`: the request had no body).
    sent: Option<Arc<AtomicBool>>,
    pool: Arc<Pool>,
    /// The idle list the connection returns to.
    shard: usize,
}

impl UpstreamBody {
    /// The body without its connection (a `101`: the connection becomes
    /// the tunnel and never returns to the pool).
    pub(super) fn detach(&mut self) {
        self.sender = None;
    }

    fn release_if_done(&mut self) {
        if self.body.is_end_stream() {
            self.release();
        }
    }

    /// The response has ended: the connection goes back to the pool if the
    /// request's body has ended too, or else closes once it has (no other
    /// request ever waits for a client's upload).
    fn release(&mut self) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        if self
            .sent
            .as_ref()
            .is_none_or(|sent| sent.load(Ordering::Acquire))
        {
            self.pool.put_back(sender, self.shard);
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) => this.release_if_done(),
            // A failed body: the connection is not reused.
            Poll::Ready(Some(Err(_))) => this.sender = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Sent to its end without the last poll (a known length), or no
        // body at all (204, 304, HEAD): reusable. Anything else closes.
        self.release_if_done();
    }
}
