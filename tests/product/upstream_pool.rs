//! The upstream connection pool (`src/proxy/pool.rs`) against a scripted
//! real upstream on a loopback socket: a request is never sent twice, nor
//! with a truncated body, once the upstream may have seen any of it; a
//! request never waits for another client's request body; `100-continue`
//! and an upgrade on a pooled connection behave; an upload trickling on
//! after its early answer is cut at `header_read_timeout`.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};

use crate::harness::{closed_within, Keystone, Stonegate};

/// A request head as the scripted upstream read it.
#[derive(Debug, Clone)]
struct Head {
    /// Which accepted connection (0, 1, ...) it came on.
    conn: usize,
    /// `METHOD /path`.
    line: String,
}

/// A keep-alive HTTP/1.1 upstream whose answer depends on the path:
/// - `/warm`: `200 ok`;
/// - `/partial`: reads the head and 100 bytes of the body, then closes
///   without answering;
/// - `/head-close`: reads the head only, then closes without answering;
/// - `/early`: answers `200 ok` at once, then reads (and drops) the body to
///   its terminating chunk;
/// - `/continue`: sends `100 Continue`, reads the `Content-Length` body and
///   answers `200` with the number of bytes it read;
/// - a request with `Upgrade`: `101`, then echoes bytes.
///
/// It records every head it reads, with its connection.
struct Scripted {
    url: String,
    heads: Arc<Mutex<Vec<Head>>>,
    accepted: Arc<AtomicUsize>,
    /// Notified when a `/partial` or `/head-close` connection was closed.
    closed: Arc<Notify>,
}

impl Scripted {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(Notify::new());
        let (h, a, c) = (heads.clone(), accepted.clone(), closed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let conn = a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s, conn, h.clone(), c.clone()));
            }
        });
        Self {
            url,
            heads,
            accepted,
            closed,
        }
    }

    fn heads(&self) -> Vec<Head> {
        self.heads.lock().unwrap().clone()
    }

    /// How many heads for `line` (`METHOD /path`) arrived.
    fn count(&self, line: &str) -> usize {
        self.heads().iter().filter(|h| h.line == line).count()
    }
}

/// Reads up to and including the next `\r\n\r\n` (byte by byte: nothing
/// after the head is consumed); `None` when the peer closed first.
async fn read_head(s: &mut (impl AsyncRead + Unpin)) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn serve(mut s: TcpStream, conn: usize, heads: Arc<Mutex<Vec<Head>>>, closed: Arc<Notify>) {
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    while let Some(head) = read_head(&mut s).await {
        let first = head.lines().next().unwrap_or_default();
        let line = first.rsplit_once(' ').map_or(first, |(l, _)| l).to_owned();
        heads.lock().unwrap().push(Head {
            conn,
            line: line.clone(),
        });
        if header(&head, "upgrade").is_some() {
            let up = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
            let _ = s.write_all(up).await;
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or_default();
        match path {
            "/partial" => {
                let mut part = [0u8; 100];
                let _ = s.read_exact(&mut part).await;
                drop(s);
                closed.notify_one();
                return;
            }
            "/head-close" => {
                drop(s);
                closed.notify_one();
                return;
            }
            "/early" => {
                if s.write_all(OK).await.is_err() {
                    return;
                }
                // Drain the chunked body up to its last chunk.
                let mut body = Vec::new();
                let mut buf = [0u8; 4096];
                while !body.ends_with(b"0\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => body.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
            }
            "/continue" => {
                let len: usize = header(&head, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                    return;
                }
                let mut body = vec![0u8; len];
                if s.read_exact(&mut body).await.is_err() {
                    return;
                }
                let n = len.to_string();
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{n}", n.len());
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
            _ => {
                if s.write_all(OK).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A client connection to stonegate sending raw HTTP/1.1.
struct Client {
    s: TcpStream,
    token: String,
}

impl Client {
    async fn open(sg: &Stonegate, token: &str) -> Self {
        Self {
            s: TcpStream::connect(sg.listen).await.unwrap(),
            token: token.to_owned(),
        }
    }

    /// Writes a request head with `extra` header lines (each ending in CRLF).
    async fn head(&mut self, line: &str, extra: &str) {
        let head = format!(
            "{line} HTTP/1.1\r\nhost: app\r\nx-auth-token: {}\r\n{extra}\r\n",
            self.token
        );
        self.s.write_all(head.as_bytes()).await.unwrap();
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// The next response: its status and body (`Content-Length` framed).
    async fn response(&mut self) -> (u16, String) {
        let head = tokio::time::timeout(Duration::from_secs(20), read_head(&mut self.s))
            .await
            .expect("a response head within 20 s")
            .expect("a response head before the connection closed");
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
        let len: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.s.read_exact(&mut body).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        self.head(&format!("GET {path}"), "").await;
        self.response().await
    }
}

async fn start(ks: &Keystone, up: &Scripted) -> Stonegate {
    Stonegate::builder()
        .keystone(ks)
        .upstream_url(up.url.clone())
        .start()
        .await
}

/// A pooled connection whose upstream read part of a streamed POST body and
/// then closed: the client gets a 502 and the upstream saw the POST once.
/// Retrying it would send it twice, with the part the upstream read missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_the_upstream_cut_short_is_a_502_and_never_sent_twice() {
    let ks = Keystone::from_env();
    let up = Scripted::start().await;
    let sg = start(&ks, &up).await;
    let token = ks.demo_token().await;
    let mut c = Client::open(&sg, &token).await;
    assert_eq!(c.get("/warm").await, (200, "ok".into()));
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "one pooled connection"
    );

    c.head("POST /partial", "transfer-encoding: chunked\r\n")
        .await;
    let chunk = format!("{:x}\r\n{}\r\n", 150, "a".repeat(150));
    c.send(chunk.as_bytes()).await;
    tokio::time::timeout(Duration::from_secs(20), up.closed.notified())
        .await
        .expect("the upstream read part of the body and closed");
    // The rest of the body is not sent: a retry would have to send the
    // head again (counted below) and then a body missing its first part.
    let (status, _) = c.response().await;
    assert_eq!(status, 502, "a request cut by the upstream is a 502");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        up.count("POST /partial"),
        1,
        "the POST reached the upstream more than once: {:?}",
        up.heads()
    );
}

/// A pooled connection the upstream closed after reading a POST's head (it
/// may have acted on it): a 502, never a second POST on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_head_the_upstream_read_is_never_retried() {
    let ks = Keystone::from_env();
    let up = Scripted::start().await;
    let sg = start(&ks, &up).await;
    let token = ks.demo_token().await;
    let mut c = Client::open(&sg, &token).await;
    assert_eq!(c.get("/warm").await, (200, "ok".into()));
    c.head("POST /head-close", "content-length: 5\r\n").await;
    c.send(b"hello").await;
    let (status, _) = c.response().await;
    assert_eq!(status, 502);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        up.count("POST /head-close"),
        1,
        "the POST reached the upstream more than once: {:?}",
        up.heads()
    );
    // The pool is not poisoned: the next request opens a new connection.
    let mut c = Client::open(&sg, &token).await;
    assert_eq!(c.get("/warm").await, (200, "ok".into()));
}

/// The upstream answered a POST before its body ended (the body is still
/// streaming from a slow client): other requests do not wait for that body,
/// and the slow body still reaches the upstream whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_waits_for_another_clients_request_body() {
    let ks = Keystone::from_env();
    let up = Scripted::start().await;
    let sg = start(&ks, &up).await;
    let token = ks.demo_token().await;
    // Fill each worker thread's idle list, so the slow upload's connection is
    // the newest one wherever the next request runs.
    let mut slow = Client::open(&sg, &token).await;
    assert_eq!(slow.get("/warm").await, (200, "ok".into()));
    slow.head("POST /early", "transfer-encoding: chunked\r\n")
        .await;
    slow.send(b"5\r\nhello\r\n").await;
    assert_eq!(slow.response().await, (200, "ok".into()));
    // The upload is still open. Other clients, on new connections:
    for i in 0..6 {
        let mut c = Client::open(&sg, &token).await;
        let answered = tokio::time::timeout(Duration::from_secs(3), c.get("/warm")).await;
        assert_eq!(
            answered.ok(),
            Some((200, "ok".into())),
            "request {i} waited for another client's request body"
        );
    }
    slow.send(b"5\r\nworld\r\n0\r\n\r\n").await;
    assert_eq!(slow.get("/warm").await, (200, "ok".into()));
}

/// The same early answer, but the client's upload then trickles on (a
/// chunk every 200 ms): once `header_read_timeout` (1 s here) passes with no
/// request in flight, stonegate drops the connection, as it drops a head
/// that never ends. A client cannot hold a connection open for as long as
/// it likes by never finishing a body nobody waits for any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_trickling_on_after_its_early_answer_is_cut_at_header_read_timeout() {
    let ks = Keystone::from_env();
    let up = Scripted::start().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url.clone())
        .proxy_option("header_read_timeout", 1)
        .start()
        .await;
    let token = ks.demo_token().await;
    let mut slow = Client::open(&sg, &token).await;
    slow.head("POST /early", "transfer-encoding: chunked\r\n")
        .await;
    slow.send(b"5\r\nhello\r\n").await;
    assert_eq!(slow.response().await, (200, "ok".into()));
    let answered = std::time::Instant::now();
    let (mut rd, mut wr) = slow.s.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(b"1\r\nx\r\n").await.is_err() {
                return;
            }
        }
    });
    let ended = closed_within(&mut rd, Duration::from_secs(8)).await;
    trickle.abort();
    assert!(
        ended.is_some(),
        "a trickling upload kept its connection 8 s after its answer (header_read_timeout = 1)"
    );
    let took = answered.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "the connection ended {took:?} after the answer (header_read_timeout = 1)"
    );
}

/// `Expect: 100-continue` through a pooled connection: the client gets its
/// `100 Continue` before it sends the body, the upstream the whole body, and
/// the upstream connection stays pooled after the interim response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_on_a_pooled_connection() {
    let ks = Keystone::from_env();
    let up = Scripted::start().await;
    let sg = start(&ks, &up).await;
    let token = ks.demo_token().await;
    let mut c = Client::open(&sg, &token).await;
    assert_eq!(c.get("/warm").await, (200, "ok".into()));
    c.head(
        "POST /continue",
        "content-length: 1000\r\nexpect: 100-continue\r\n",
    )
    .await;
    let interim = tokio::time::timeout(Duration::from_secs(10), read_head(&mut c.s))
        .await
        .expect("100 Continue before the body is sent")
        .unwrap();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    c.send(&[b'x'; 1000]).await;
    assert_eq!(c.response().await, (200, "1000".into()));
    assert_eq!(c.get("/warm").await, (200, "ok".into()));
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "the interim response cost the pooled connection: {:?}",
        up.heads()
    );
}

/// A websocket upgrade that lands on a pooled connection tunnels on it, and
/// that connection never carries another request afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_on_a_pooled_connection_never_returns_it_to_the_pool() {
    let ks = Keystone::from_env();
    let up = Scripted::start().await;
    let sg = start(&ks, &up).await;
    let token = ks.demo_token().await;
    let mut c = Client::open(&sg, &token).await;
    assert_eq!(c.get("/warm").await, (200, "ok".into()));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);

    let mut ws = Client::open(&sg, &token).await;
    ws.head(
        "GET /ws",
        "connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    )
    .await;
    let head = tokio::time::timeout(Duration::from_secs(20), read_head(&mut ws.s))
        .await
        .unwrap()
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws.send(b"ping").await;
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), ws.s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");

    for _ in 0..3 {
        assert_eq!(c.get("/warm").await, (200, "ok".into()));
    }
    let heads = up.heads();
    let tunnel = heads.iter().find(|h| h.line == "GET /ws").unwrap().conn;
    assert_eq!(
        tunnel, 0,
        "the upgrade took the pooled connection: {heads:?}"
    );
    let after: Vec<_> = heads
        .iter()
        .skip_while(|h| h.line != "GET /ws")
        .skip(1)
        .collect();
    assert_eq!(after.len(), 3, "{heads:?}");
    assert!(
        after.iter().all(|h| h.conn != tunnel),
        "a request went to the upgraded connection: {heads:?}"
    );
    // The tunnel still echoes.
    ws.send(b"pong").await;
    tokio::time::timeout(Duration::from_secs(5), ws.s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"pong");
}
