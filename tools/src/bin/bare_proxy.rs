//! The load benchmark's baseline proxy (`scripts/bench.sh`, case b): a
//! pass-through hyper reverse proxy with no authentication, built exactly like
//! stonegate's own forwarding path so that stonegate ÷ this = the cost of auth:
//!
//! - server: hyper-util `auto::Builder` (HTTP/1.1 + h2c), `TCP_NODELAY`, a
//!   header-read timeout on `TokioTimer`, connections served with upgrades;
//! - client: hyper-util's legacy pooled `Client` over hyper-rustls'
//!   `HttpsConnector` (https or http) around an `HttpConnector` with
//!   `TCP_NODELAY`, 90 s idle timeout, 256 idle connections per host;
//! - per request: target URI = upstream + path and query, hop-by-hop headers
//!   dropped both ways, `Host` kept, `X-Forwarded-For/-Proto/-Host` set, a
//!   response timeout (what any well-behaved reverse proxy does).
//!
//! ```text
//! cargo run --release -p stonegate-tools --bin bare_proxy -- 127.0.0.1:18081 http://127.0.0.1:18000
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::net::TcpListener;

type Body = Either<Incoming, Full<Bytes>>;

struct Upstream {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(*n);
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
    *r.status_mut() = code;
    r
}

async fn forward(up: Arc<Upstream>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = Uri::builder()
        .scheme(up.scheme.clone())
        .authority(up.authority.clone())
        .path_and_query(pq)
        .build()
    else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    if let Some(host) = h.get(header::HOST).cloned() {
        h.insert("x-forwarded-host", host);
    }
    let ip = peer.ip().to_string();
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let out = Request::from_parts(parts, body);
    match tokio::time::timeout(Duration::from_secs(60), up.client.request(out)).await {
        Err(_) => status(StatusCode::GATEWAY_TIMEOUT),
        Ok(Err(_)) => status(StatusCode::BAD_GATEWAY),
        Ok(Ok(mut resp)) => {
            strip_hop_by_hop(resp.headers_mut());
            resp.map(Either::Left)
        }
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_proxy LISTEN_ADDR UPSTREAM_URL";
    let listen: SocketAddr = args.next().expect(usage).parse().expect(usage);
    let upstream: Uri = args.next().expect(usage).parse().expect(usage);

    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let tls = stonegate::tls::ClientTls::default()
        .build()
        .expect("client TLS configuration");
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https);
    let parts = upstream.into_parts();
    let up = Arc::new(Upstream {
        client,
        scheme: parts.scheme.unwrap_or(http::uri::Scheme::HTTP),
        authority: parts.authority.expect(usage),
    });

    let listener = TcpListener::bind(listen).await.expect("bind");
    eprintln!(
        "bare_proxy listening on http://{} -> {}://{}",
        listener.local_addr().expect("addr"),
        up.scheme,
        up.authority
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let up = up.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let up = up.clone();
                async move { Ok::<_, std::convert::Infallible>(forward(up, peer, req).await) }
            });
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
