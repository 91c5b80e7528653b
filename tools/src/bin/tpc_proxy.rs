//! The load benchmark's upper-bound reference for a hyper forwarding path
//! (`scripts/bench.sh`, case p), what `../shared/docs/perf-notes.md`
//! describes as the thread-per-core prototype: how fast hyper alone forwards
//! on this machine, with every shortcut a product cannot take.
//!
//! - one `current_thread` runtime per core, each with its own `SO_REUSEPORT`
//!   listener: a connection, its requests and its upstream connections stay
//!   on one thread, with no lock and no cross-thread wake-up;
//! - `hyper::server::conn::http1` (no HTTP/2 detection, no header-read
//!   timeout, no upgrades);
//! - a per-thread stack of upstream connections on
//!   `hyper::client::conn::http1` (no idle timeout, no retry);
//! - both bodies collected whole before they are sent on (no streaming: an
//!   upper bound for small bodies, not a design), no header is added or
//!   removed but `Connection`, no timeout.
//!
//! ```text
//! cargo run --release -p stonegate-tools --bin tpc_proxy -- 127.0.0.1:18082 127.0.0.1:18000
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{cell::RefCell, net::SocketAddr};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, client::conn::http1::SendRequest, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

thread_local! {
    /// This thread's idle upstream connections.
    static IDLE: RefCell<Vec<SendRequest<Full<Bytes>>>> = const { RefCell::new(Vec::new()) };
}

async fn connect(upstream: SocketAddr) -> Option<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(upstream).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Some(sender)
}

async fn forward(req: Request<Incoming>, upstream: SocketAddr) -> Response<Full<Bytes>> {
    let bad_gateway = || {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        r
    };
    let (mut parts, body) = req.into_parts();
    let Ok(body) = body.collect().await else {
        return bad_gateway();
    };
    let origin = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse::<Uri>();
    let Ok(origin) = origin else {
        return bad_gateway();
    };
    parts.uri = origin;
    parts.headers.remove(header::CONNECTION);
    let req = Request::from_parts(parts, Full::new(body.to_bytes()));
    let mut sender = loop {
        match IDLE.with(|i| i.borrow_mut().pop()) {
            Some(mut s) => {
                if s.ready().await.is_ok() {
                    break s;
                }
            }
            None => match connect(upstream).await {
                Some(s) => break s,
                None => return bad_gateway(),
            },
        }
    };
    let Ok(resp) = sender.send_request(req).await else {
        return bad_gateway();
    };
    let (parts, body) = resp.into_parts();
    let Ok(body) = body.collect().await else {
        return bad_gateway();
    };
    IDLE.with(|i| i.borrow_mut().push(sender));
    Response::from_parts(parts, Full::new(body.to_bytes()))
}

fn serve(listen: SocketAddr, upstream: SocketAddr) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let socket = if listen.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.set_reuseport(true).expect("SO_REUSEPORT");
        socket.bind(listen).expect("bind");
        let listener = socket.listen(1024).expect("listen");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::task::spawn_local(async move {
                let service = service_fn(move |req| async move {
                    Ok::<_, std::convert::Infallible>(forward(req, upstream).await)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: tpc_proxy LISTEN UPSTREAM (e.g. 127.0.0.1:18082 127.0.0.1:18000)";
    let listen: SocketAddr = args.next().expect(usage).parse().expect(usage);
    let upstream: SocketAddr = args.next().expect(usage).parse().expect(usage);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    eprintln!("tpc_proxy listening on http://{listen}, {threads} threads, upstream {upstream}");
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || serve(listen, upstream)))
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
}
