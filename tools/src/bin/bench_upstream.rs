//! The load benchmark's upstream (`scripts/bench.sh`): as fast as a hyper 1
//! server gets. Every request is answered `200 ok` (text/plain, 2 bytes),
//! HTTP/1.1 with keep-alive; a request body, if any, is drained.
//!
//! ```text
//! cargo run --release -p stonegate-tools --bin bench_upstream -- 127.0.0.1:18000
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn ok(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Drain a body so the connection stays reusable (GETs have none).
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

#[tokio::main]
async fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18000".to_owned())
        .parse()
        .expect("usage: bench_upstream ADDR (e.g. 127.0.0.1:18000)");
    let listener = TcpListener::bind(addr).await.expect("bind");
    eprintln!(
        "bench_upstream listening on http://{}",
        listener.local_addr().expect("addr")
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(ok))
                .await;
        });
    }
}
