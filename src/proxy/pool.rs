//! The upstream's keep-alive HTTP/1.1 connections, on hyper's low-level
//! `client::conn::http1` API, in place of hyper-util's legacy `Client`
//! (its checkout, per-host map and connect race cost a forwarded request
//! about 10,000 instructions and 7 allocations: README, Performance). Idle
//! connections are kept in one
//! list per worker thread, most recently used first: a request takes from
//! its thread's list (another's only when that is empty), so the lock it
//! takes is normally uncontended. A connection goes back to the list it
//! came from when its response body has been read to the end (a body
//! dropped early closes it), never after a `101`. An idle connection older
//! than [`IDLE_TIMEOUT`] is closed when a request of its thread finds it;
//! one the upstream closed is skipped. A request that a pooled connection
//! could not send (closed before its first byte was written) is retried
//! once on a new one, so an upstream's idle close is never a 502.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

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

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type Sender = SendRequest<Incoming>;

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
        mut req: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, PoolError> {
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
                        pool,
                        shard,
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: an idle connection the upstream had
                    // closed. Once more, on a new connection.
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
                // Ready at once unless the connection is still finishing
                // the previous response's last bytes.
                if sender.ready().await.is_ok() {
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

/// A response body from a pooled connection: streams the upstream's body
/// and returns the connection to the pool once the body has ended.
pub struct UpstreamBody {
    body: Incoming,
    sender: Option<Sender>,
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
            if let Some(sender) = self.sender.take() {
                self.pool.put_back(sender, self.shard);
            }
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
            Poll::Ready(None) => {
                if let Some(sender) = this.sender.take() {
                    this.pool.put_back(sender, this.shard);
                }
            }
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
