//! An in-process upstream on `127.0.0.1:0` that records every request it
//! receives (method, URI, headers, body size) and answers with a JSON echo.
//!
//! - `?echo=body` streams the request body back instead of counting it;
//! - a request with `Upgrade` gets `101` and its bytes echoed back;
//! - [`Upstream::slow`] waits before answering, [`Upstream::answering`]
//!   answers a fixed status, [`Upstream::down`] is an address nobody listens on.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::task::JoinSet;

type Body = BoxBody<Bytes, hyper::Error>;

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Request method.
    pub method: Method,
    /// Request URI (path and query).
    pub uri: Uri,
    /// Every header, as received.
    pub headers: HeaderMap,
}

impl Seen {
    /// The single value of a header, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

#[derive(Clone, Copy, Debug)]
enum Behaviour {
    Echo,
    Delay(Duration),
    Status(StatusCode),
}

struct State {
    seen: Mutex<Vec<Seen>>,
    behaviour: Behaviour,
    /// Handlers dropped before they answered (the client went away).
    cancelled: std::sync::atomic::AtomicUsize,
}

/// Counts a handler as cancelled if it is dropped before `done`.
struct CancelGuard {
    state: Arc<State>,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.state
                .cancelled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// The running upstream; stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    _server: JoinSetGuard,
}

struct JoinSetGuard(tokio::task::JoinHandle<()>);

impl Drop for JoinSetGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Upstream {
    /// An echo upstream answering every request at once.
    pub async fn echo() -> Self {
        Self::start(Behaviour::Echo).await
    }

    /// An upstream that waits `delay` before sending response headers.
    pub async fn slow(delay: Duration) -> Self {
        Self::start(Behaviour::Delay(delay)).await
    }

    /// An upstream answering every request with `status` (and a short body).
    pub async fn answering(status: u16) -> Self {
        Self::start(Behaviour::Status(StatusCode::from_u16(status).unwrap())).await
    }

    /// The URL of an upstream that is down: a loopback port nobody listens on.
    pub fn down() -> String {
        format!("http://{}", super::free_addr())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }

    /// How many requests were abandoned before the upstream answered them
    /// (their connection closed while the handler was still waiting).
    pub fn cancelled(&self) -> usize {
        self.state
            .cancelled
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The last request that arrived; panics if none did.
    pub fn last(&self) -> Seen {
        self.state
            .seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream received no request")
    }

    async fn start(behaviour: Behaviour) -> Self {
        let listener = super::bind_fresh_tokio();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            seen: Mutex::new(Vec::new()),
            behaviour,
            cancelled: std::sync::atomic::AtomicUsize::new(0),
        });
        let st = state.clone();
        let server = tokio::spawn(async move {
            // Connections live in the set, so that dropping the upstream
            // closes them too.
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Upstream {
            addr,
            state,
            _server: JoinSetGuard(server),
        }
    }
}

async fn handle(
    state: Arc<State>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    state.seen.lock().unwrap().push(Seen {
        method: req.method().clone(),
        uri: req.uri().clone(),
        headers: req.headers().clone(),
    });
    match state.behaviour {
        Behaviour::Echo => {}
        Behaviour::Delay(d) => {
            let mut guard = CancelGuard {
                state: state.clone(),
                done: false,
            };
            tokio::time::sleep(d).await;
            guard.done = true;
        }
        Behaviour::Status(status) => {
            return Ok(Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(full(format!("upstream says {status}\n")))
                .unwrap());
        }
    }

    if let Some(proto) = req.headers().get(header::UPGRADE).cloned() {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, proto)
            .body(full(String::new()))
            .unwrap());
    }

    let query = req.uri().query().unwrap_or("").to_owned();
    if query.split('&').any(|p| p == "echo=body") {
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(req.into_body().boxed())
            .unwrap());
    }

    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let v = serde_json::Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::Array(a)) => a.push(v),
            _ => {
                headers.insert(name.as_str().to_owned(), serde_json::Value::Array(vec![v]));
            }
        }
    }
    let mut body = req.into_body();
    let mut body_bytes = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            body_bytes += d.len() as u64;
        }
    }
    let doc = serde_json::json!({
        "method": method, "path": path, "query": query,
        "headers": headers, "body_bytes": body_bytes,
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(doc.to_string()))
        .unwrap())
}

fn full(s: String) -> Body {
    Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed()
}
