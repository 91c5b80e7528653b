//! Connection lifetimes and caps of the listeners: how many connections a
//! listener holds ([`connection_cap`], bounded by the descriptor limit), how
//! accept errors back off instead of spinning ([`accept`]), how long a new
//! connection may stay silent ([`FirstBytes`]), and when a connection with no
//! request in flight is closed ([`Activity`], [`drive`]).

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    time::{Instant, Sleep},
};

/// Descriptors kept out of the client connections' budget: the admin
/// listener's connections, Keystone and shared-cache connections, the log,
/// key and certificate files, the listeners and the runtime's own.
pub(super) const RESERVED_DESCRIPTORS: u64 = 128;

/// Connections the admin listener holds at once (probes and scrapes); the
/// next ones wait in the backlog.
pub(super) const ADMIN_MAX_CONNECTIONS: usize = 16;

/// Time an admin connection has to send its request head; also how long an
/// idle admin keep-alive connection stays open.
pub(super) const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest pause between accept attempts while they fail.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The soft `RLIMIT_NOFILE` of this process, read from `/proc/self/limits`;
/// `None` when unlimited or unknown (not Linux).
pub(super) fn descriptor_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The descriptors left for clients and upstreams under `limit`, halved:
/// at most this many client connections (all listeners together), and at
/// most this many requests in flight, each of which may hold one upstream
/// connection (idle pooled upstream connections are never more than the
/// most requests that were in flight at once). So clients and upstreams
/// together never take the [`RESERVED_DESCRIPTORS`].
pub(super) fn descriptor_budget(limit: Option<u64>) -> Option<usize> {
    let half = limit?.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    Some(
        usize::try_from(half)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_PERMITS),
    )
}

/// Client connections one listener may hold: `configured`, but never more
/// than its share of the [`descriptor_budget`] among `listeners`.
pub(super) fn connection_cap(configured: usize, listeners: usize, limit: Option<u64>) -> usize {
    let cap = match descriptor_budget(limit) {
        None => configured,
        Some(budget) => configured.min(budget / listeners.max(1)),
    };
    cap.clamp(1, MAX_PERMITS)
}

/// A semaphore holds at most `usize::MAX >> 3` permits, and draining
/// acquires all of a listener's as one `u32`.
const MAX_PERMITS: usize = 1 << 28;

/// The next connection on `listener`. Errors of one connection (reset or
/// aborted before it was accepted) are skipped at once; any other error
/// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) backs off, from 10 ms doubling
/// to 1 s, so that a listener at the descriptor limit waits instead of
/// spinning; the pending connection stays in the kernel's backlog.
pub(super) async fn accept(listener: &TcpListener, name: &'static str) -> (TcpStream, SocketAddr) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                tracing::warn!(
                    listener = name,
                    error = %e,
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot accept connections (descriptor limit reached?); backing off"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// HTTP/2's connection preface: a connection is undecided (HTTP/1.1 or
/// HTTP/2) while what it sent is a prefix of it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pin_project_lite::pin_project! {
    /// A connection that must send its first bytes before a deadline: until
    /// it has sent enough to tell HTTP/1.1 from HTTP/2 (where [`drive`]'s
    /// `header_read_timeout` takes over for HTTP/1.1), a read that is still
    /// pending at the deadline fails with `TimedOut` and the connection
    /// closes. A socket that sends nothing, or a few bytes of the HTTP/2
    /// preface, is closed.
    pub(super) struct FirstBytes<I> {
        #[pin]
        io: I,
        deadline: Option<Pin<Box<Sleep>>>,
        matched: usize,
        activity: Arc<Activity>,
    }
}

impl<I> FirstBytes<I> {
    /// `io`, which must send its first bytes within `timeout`; what it
    /// turns out to speak is told to `activity` ([`Activity::is_http1`]).
    pub(super) fn new(io: I, timeout: Duration, activity: Arc<Activity>) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            matched: 0,
            activity,
        }
    }
}

impl<I: AsyncRead> AsyncRead for FirstBytes<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.deadline.is_none() {
            return this.io.poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match this.io.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                let want = &H2_PREFACE[*this.matched..];
                let n = new.len().min(want.len());
                if new.is_empty() || new[..n] != want[..n] || n == want.len() {
                    // End of stream, HTTP/1.1, or the whole preface: decided.
                    *this.deadline = None;
                    if !new.is_empty() && new[..n] != want[..n] {
                        this.activity.http1.store(true, Ordering::Release);
                    }
                } else {
                    *this.matched += n;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request within first_byte_timeout",
                ))),
                _ => Poll::Pending,
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<I: AsyncWrite> AsyncWrite for FirstBytes<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Whether one connection has requests in flight, and since when it has
/// none. A request counts from the moment its head has arrived until its
/// response body has been sent or dropped (see [`Tracked`]).
pub(super) struct Activity {
    busy: AtomicUsize,
    /// Milliseconds after `start` when the last request ended.
    idle_since: AtomicU64,
    start: Instant,
    /// Whether the connection speaks HTTP/1.1 (told by [`FirstBytes`]).
    http1: AtomicBool,
}

impl Activity {
    /// A new connection's activity: idle since now.
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            start: Instant::now(),
            http1: AtomicBool::new(false),
        })
    }

    /// Whether the connection was found to speak HTTP/1.1 (not HTTP/2, not
    /// yet undecided).
    pub(super) fn is_http1(&self) -> bool {
        self.http1.load(Ordering::Acquire)
    }

    /// Completes once an HTTP/1.1 connection has waited `timeout` for a
    /// request head with none in flight: from its start, or from the end of
    /// its last response, to a head that has arrived whole. That bounds a
    /// head that trickles in (slowloris) and an idle keep-alive connection
    /// alike, as hyper's own `header_read_timeout` did, without the timer
    /// hyper allocated, armed and dropped for every request (issue 16). An
    /// HTTP/2 connection never completes it (its idle bound is
    /// [`idle_for`](Self::idle_for)'s).
    pub(super) async fn head_overdue(&self, timeout: Duration) {
        loop {
            self.idle_for(timeout).await;
            if self.is_http1() {
                return;
            }
            // HTTP/2 or undecided: look again a whole `timeout` later (once
            // idle, `idle_for` completes at once: without this sleep an
            // HTTP/2 connection's task would spin).
            tokio::time::sleep(timeout).await;
        }
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Completes once the connection has had no request in flight for
    /// `timeout`. Wakes at most once per `timeout` while requests run.
    pub(super) async fn idle_for(&self, timeout: Duration) {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        loop {
            let wait = if self.busy.load(Ordering::Acquire) == 0 {
                let idle = self
                    .now_ms()
                    .saturating_sub(self.idle_since.load(Ordering::Acquire));
                if idle >= timeout_ms {
                    return;
                }
                Duration::from_millis(timeout_ms - idle)
            } else {
                timeout
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in flight on a connection (see [`Activity::begin`]).
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        // The time first, then the count: whoever sees zero sees the time.
        self.0.idle_since.store(self.0.now_ms(), Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight (and
    /// its share of the [`descriptor_budget`]) until it has been sent or
    /// dropped.
    pub(super) struct Tracked<B> {
        #[pin]
        body: B,
        busy: Busy,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    }
}

impl<B> Tracked<B> {
    /// `body`, holding `busy` and `permit` while it lives.
    pub(super) fn new(
        body: B,
        busy: Busy,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Self {
        Self { body, busy, permit }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body,
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves `conn` to its end. It is closed gracefully (HTTP/1.1: after the
/// response in flight; HTTP/2: GOAWAY, then the open streams finish) once it
/// has had no request in flight for `idle_timeout`, or when `stop` turns true.
/// An HTTP/1.1 connection is dropped (closed at once, not gracefully) when
/// its next request head has not arrived whole within `header_read_timeout`
/// of the last response's end ([`Activity::head_overdue`]). With no request
/// in flight, what that cuts is a head that never finished, or the rest of
/// an upload whose response was already sent (an upstream that answered
/// early) still trickling in after that long.
pub(super) async fn drive<C>(
    conn: C,
    activity: &Activity,
    timeouts: (Duration, Duration),
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    let (idle_timeout, header_read_timeout) = timeouts;
    tokio::pin!(conn);
    let mut closing = *stop.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    let overdue = activity.head_overdue(header_read_timeout);
    tokio::pin!(overdue);
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            // Dropping the connection closes its socket.
            () = &mut overdue => return Ok(()),
            () = activity.idle_for(idle_timeout), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_cap_leaves_descriptors_for_everything_else() {
        assert_eq!(connection_cap(10_000, 1, None), 10_000);
        assert_eq!(connection_cap(10_000, 1, Some(1024)), 448);
        assert_eq!(connection_cap(10_000, 2, Some(1024)), 224);
        assert_eq!(connection_cap(100, 1, Some(1 << 20)), 100);
        // A tiny limit still serves one connection at a time.
        assert_eq!(connection_cap(10_000, 1, Some(64)), 1);
        assert_eq!(descriptor_budget(Some(1024)), Some(448));
        assert_eq!(descriptor_budget(None), None);
    }

    #[test]
    fn the_descriptor_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(descriptor_limit().is_some_and(|n| n > 0));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silence_past_the_deadline_fails_and_a_first_byte_disarms_it() {
        let (client, server) = tokio::io::duplex(64);
        let mut io = FirstBytes::new(server, Duration::from_secs(1), Activity::new());
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut io = FirstBytes::new(server, Duration::from_secs(1), Activity::new());
        client.write_all(b"G").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        // HTTP/1.1 decided: later silence is drive's header_read_timeout's.
        let waited = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf)).await;
        assert!(
            waited.is_err(),
            "the deadline still applied after the first byte"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_h2_preface_stays_on_the_deadline() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = FirstBytes::new(server, Duration::from_secs(1), Activity::new());
        client.write_all(b"PRI * ").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(io.read(&mut buf).await.unwrap(), 6);
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_is_overdue_only_on_http1_and_only_with_no_request_in_flight() {
        let timeout = Duration::from_secs(2);
        // Undecided or HTTP/2: never overdue.
        let activity = Activity::new();
        let waited = tokio::time::timeout(Duration::from_secs(10), activity.head_overdue(timeout));
        assert!(waited.await.is_err(), "overdue without HTTP/1.1");
        // HTTP/1.1 (a first byte that is not the preface's).
        let (mut client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = FirstBytes::new(server, Duration::from_secs(60), activity.clone());
        // Longer than the preface, as most heads are.
        let head = b"GET /a/longer/path HTTP/1.1\r\nHost: h\r\n";
        client.write_all(head).await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(io.read(&mut buf).await.unwrap(), head.len());
        assert!(activity.is_http1());
        // A request in flight is never overdue ...
        let busy = activity.begin();
        let waited = tokio::time::timeout(Duration::from_secs(10), activity.head_overdue(timeout));
        assert!(
            waited.await.is_err(),
            "overdue while a request was in flight"
        );
        // ... and the next head is, `timeout` after the response ended.
        drop(busy);
        let ended = Instant::now();
        activity.head_overdue(timeout).await;
        assert!(ended.elapsed() >= timeout);
        // The HTTP/2 preface makes a connection HTTP/2.
        let (mut client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = FirstBytes::new(server, Duration::from_secs(60), activity.clone());
        client.write_all(H2_PREFACE).await.unwrap();
        let mut got = 0;
        while got < H2_PREFACE.len() {
            got += io.read(&mut buf).await.unwrap();
        }
        assert!(!activity.is_http1());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_request() {
        let activity = Activity::new();
        let busy = activity.begin();
        let idle = tokio::time::timeout(
            Duration::from_secs(3),
            activity.idle_for(Duration::from_secs(1)),
        );
        assert!(idle.await.is_err(), "idle while a request was in flight");
        drop(busy);
        let started = Instant::now();
        activity.idle_for(Duration::from_secs(1)).await;
        assert!(started.elapsed() >= Duration::from_secs(1));
    }
}
