//! A tiny echo upstream to put behind stonegate: it shows what the protected
//! service receives.
//!
//! ```text
//! cargo run --example echo_upstream -- 127.0.0.1:8000
//! ```
//!
//! Every request is answered `200` with a JSON document describing it:
//! `{"method", "path", "query", "headers": {name: value}, "body_bytes"}`
//! (header names lower-case; repeated headers joined with `", "`). The request
//! body is read as a stream and only counted, never buffered.
//!
//! With the query `?echo=body` the request body is streamed back instead, as
//! `application/octet-stream`. A request carrying `Upgrade` (WebSocket or any
//! other protocol) is answered `101 Switching Protocols` and every byte
//! received on the upgraded connection is written back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, hyper::Error>;

#[tokio::main]
async fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned())
        .parse()
        .expect("usage: echo_upstream ADDR (e.g. 127.0.0.1:8000)");
    let listener = TcpListener::bind(addr).await.expect("bind");
    eprintln!(
        "echo_upstream listening on http://{}",
        listener.local_addr().expect("addr")
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let served = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service_fn(handle))
                .await;
            if let Err(e) = served {
                eprintln!("echo_upstream: connection error: {e}");
            }
        });
    }
}

async fn handle(mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();

    if let Some(proto) = req.headers().get(header::UPGRADE).cloned() {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, proto)
            .body(empty())
            .unwrap();
        return Ok(resp);
    }

    if query.split('&').any(|p| p == "echo=body") {
        let body = req.into_body().boxed();
        let resp = Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .unwrap();
        return Ok(resp);
    }

    let mut body = req.into_body();
    let mut body_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_bytes += data.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let doc = serde_json::json!({
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap();
    text.push('\n');
    let resp = Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(
            Full::new(Bytes::from(text))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    Ok(resp)
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}
