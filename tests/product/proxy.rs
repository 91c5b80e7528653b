//! Proxying is real: bodies stream both ways, upstream failures map to
//! 502/504, `Upgrade` works after authentication, SIGTERM drains in-flight
//! requests, and the admin listener reports health, readiness and metrics.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::faults::assert_error_body;
use crate::harness::{client, Keystone, Stonegate, Upstream};

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 1024; // 64 MiB

fn chunk(i: usize) -> Bytes {
    Bytes::from(vec![(i % 251) as u8; CHUNK])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_body_reaches_upstream_and_comes_back() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    let body = futures_util::stream::iter((0..CHUNKS).map(|i| Ok::<_, std::io::Error>(chunk(i))));
    let resp = crate::harness::client()
        .post(sg.url("/upload?echo=body"))
        .header("X-Auth-Token", &token)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Check every byte that comes back, as it comes.
    let mut stream = resp.bytes_stream();
    let mut offset = 0usize;
    while let Some(part) = stream.next().await {
        let part = part.unwrap();
        for (j, b) in part.iter().enumerate() {
            let want = (((offset + j) / CHUNK) % 251) as u8;
            assert_eq!(*b, want, "byte {} differs", offset + j);
        }
        offset += part.len();
    }
    assert_eq!(offset, CHUNK * CHUNKS, "the whole 64 MiB came back");
    assert_eq!(
        up.last().header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
    // Linux /proc is where the tests run; no answer is a failure, not a skip.
    let kib = sg
        .peak_rss_kib()
        .expect("/proc/<pid>/status has no VmHWM: cannot check that the body streamed");
    eprintln!("stonegate peak RSS after a 64 MiB round trip: {kib} KiB");
    assert!(
        kib < 48 * 1024,
        "stonegate's peak RSS {kib} KiB suggests it buffered the 64 MiB body"
    );
}

#[tokio::test]
async fn upstream_down_answers_502() {
    let ks = Keystone::from_env();
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(Upstream::down())
        .start()
        .await;
    let resp = sg
        .get("/", &[("X-Auth-Token", &ks.demo_token().await)])
        .await;
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().get("retry-after").is_none());
    assert_error_body(resp, 502, "Bad Gateway").await;
    // Authentication still comes first.
    assert_eq!(sg.get("/", &[]).await.status(), 401);
}

#[tokio::test]
async fn upstream_too_slow_answers_504() {
    let ks = Keystone::from_env();
    let up = Upstream::slow(Duration::from_secs(8)).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .proxy_option("response_timeout", 1)
        .start()
        .await;
    let token = ks.demo_token().await;
    let t = Instant::now();
    let resp = sg.get("/", &[("X-Auth-Token", &token)]).await;
    assert_eq!(resp.status(), 504);
    assert!(resp.headers().get("retry-after").is_none());
    assert_error_body(resp, 504, "Gateway Timeout").await;
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(up.hits(), 1);
}

/// Sends an HTTP/1.1 Upgrade request; returns the response head and the stream.
async fn upgrade(sg: &Stonegate, token: Option<&str>) -> (String, tokio::net::TcpStream) {
    let mut s = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    let mut req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        sg.listen
    );
    if let Some(t) = token {
        req.push_str(&format!("X-Auth-Token: {t}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(20), async {
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
    })
    .await
    .expect("response head within 20 s");
    (String::from_utf8_lossy(&head).into_owned(), s)
}

#[tokio::test]
async fn websocket_upgrade_is_forwarded_after_authentication() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;

    let (head, _) = upgrade(&sg, None).await;
    assert!(head.starts_with("HTTP/1.1 401"), "no token: {head}");
    assert_eq!(up.hits(), 0);

    let token = ks.demo_token().await;
    let (head, mut s) = upgrade(&sg, Some(&token)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "with a token: {head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: websocket"));
    let seen = up.last();
    assert_eq!(
        seen.header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
    assert_eq!(seen.header("upgrade").as_deref(), Some("websocket"));

    for msg in [&b"ping over the upgraded connection"[..], b"and again"] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back))
            .await
            .expect("echo within 10 s")
            .unwrap();
        assert_eq!(back, msg);
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let ks = Keystone::from_env();
    let up = Upstream::slow(Duration::from_millis(1500)).await;
    let mut sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let url = sg.url("/slow");
    let token = ks.demo_token().await;
    let in_flight = tokio::spawn(async move {
        crate::harness::client()
            .get(url)
            .header("X-Auth-Token", token)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Let the request reach the upstream, then ask stonegate to stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.hits() == 0 {
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sg.terminate();
    let status = in_flight
        .await
        .unwrap()
        .expect("in-flight request completed");
    assert_eq!(status, 200, "the in-flight request was drained, not cut");
    let exit = sg
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exited after draining");
    assert!(exit.success(), "exit status {exit}");
    assert!(
        tokio::net::TcpStream::connect(sg.listen).await.is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    assert_eq!(sg.get("/", &[]).await.status(), 401);
    let client = crate::harness::client();
    assert_eq!(
        client
            .get(sg.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(sg.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = client.get(sg.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let ctype = metrics
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ctype.starts_with("text/plain"), "content-type {ctype}");
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("stonegate_"),
        "no stonegate_ metrics:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("# TYPE stonegate_")),
        "Prometheus text format"
    );
    assert!(
        !text.contains(&token[token.len() / 4..token.len() * 3 / 4]),
        "a token in /metrics"
    );
    // The admin endpoints are not on the proxy port.
    assert_eq!(sg.get("/metrics", &[]).await.status(), 401);
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_and_x_forwarded_headers_appended() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    let mut s = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    let req = format!(
        "GET /hop HTTP/1.1\r\nHost: api.example\r\nX-Auth-Token: {token}\r\n\
         Connection: close, X-Private-Hop\r\nX-Private-Hop: secret\r\nKeep-Alive: timeout=5\r\n\
         TE: trailers\r\nProxy-Connection: keep-alive\r\nX-Forwarded-For: 203.0.113.7\r\n\
         X-End-To-End: kept\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("response within 20 s")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    let seen = up.last();
    for hop in ["x-private-hop", "keep-alive", "te", "proxy-connection"] {
        assert!(seen.header(hop).is_none(), "hop-by-hop {hop} was forwarded");
    }
    assert_eq!(seen.header("x-end-to-end").as_deref(), Some("kept"));
    let xff: Vec<String> = seen
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let xff = xff.join(", ");
    assert!(
        xff.starts_with("203.0.113.7") && xff.ends_with("127.0.0.1"),
        "X-Forwarded-For appended: {xff}"
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("api.example")
    );
}

/// The upstream gets the client's `Host` (HTTP/2: `:authority`), not the
/// upstream's own address, and `X-Forwarded-Host` says the same.
#[tokio::test]
async fn the_clients_host_is_kept_upstream() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    let resp = sg
        .get(
            "/v2.1/servers",
            &[
                ("X-Auth-Token", &token),
                ("Host", "compute.example.org:8774"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(
        seen.header("host").as_deref(),
        Some("compute.example.org:8774")
    );
    assert_eq!(seen.headers.get_all("host").iter().count(), 1);
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("compute.example.org:8774")
    );
    // HTTP/2 (prior knowledge): the :authority is the Host upstream.
    // h2.example.net is resolved to the listener by the client.
    let url = format!("http://h2.example.net:{}/v2.1/servers", sg.listen.port());
    let resp = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .resolve("h2.example.net", sg.listen)
        .build()
        .unwrap()
        .get(&url)
        .header("x-auth-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        up.last().header("host").as_deref(),
        Some(format!("h2.example.net:{}", sg.listen.port()).as_str())
    );
}

#[tokio::test]
async fn http2_cleartext_clients_are_served() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let stream = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake (prior knowledge)");
    tokio::spawn(conn);
    for (token, want) in [(Some(ks.demo_token().await), 200), (None, 401)] {
        let mut req = http::Request::get(sg.url("/h2"))
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        if let Some(t) = token {
            req.headers_mut().insert("x-auth-token", t.parse().unwrap());
        }
        let resp = tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
            .await
            .expect("h2 response within 20 s")
            .unwrap();
        assert_eq!(resp.status(), want);
        assert_eq!(resp.version(), http::Version::HTTP_2);
    }
    assert_eq!(up.hits(), 1);
    assert_eq!(
        up.last().header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_request() {
    let ks = Keystone::from_env();
    let up = Upstream::slow(Duration::from_secs(10)).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    let mut s = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    let req = format!("GET /slow HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.hits() == 0 {
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(s); // the client goes away
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.cancelled() == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream request was still running 5 s after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends one HTTP/1.1 GET head, written by hand (Host, the token, `extra`
/// header lines, `Connection: close`), and returns the whole answer.
async fn raw_head(addr: std::net::SocketAddr, token: &str, extra: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n{extra}Connection: close\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431_and_never_reach_keystone_or_upstream() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .proxy_option("max_headers", 32)
        .proxy_option("max_header_bytes", 16384)
        .start()
        .await;
    let token = ks.demo_token().await;
    let many: String = (0..40).map(|i| format!("X-Filler-{i}: x\r\n")).collect();
    assert!(raw_head(sg.listen, &token, &many)
        .await
        .starts_with("HTTP/1.1 431"));
    let large = format!("X-Large: {}\r\n", "a".repeat(20_000));
    assert!(raw_head(sg.listen, &token, &large)
        .await
        .starts_with("HTTP/1.1 431"));
    assert!(raw_head(sg.listen, &token, "")
        .await
        .starts_with("HTTP/1.1 200"));
    assert_eq!(up.hits(), 1);
    assert_eq!(crate::local::validate_calls(&sg).await, 1.0);
}

/// The default `max_headers` (100) is hyper's own limit, which stonegate
/// then leaves unset (issue 16: setting it costs every request head a
/// buffer): a head of 101 headers is a 431 that reaches neither the
/// upstream nor Keystone, one of 60 is served. (A head of exactly 100 would
/// reach the upstream with stonegate's ~20 headers added, more than the
/// test upstream, hyper too, takes.)
#[tokio::test]
async fn the_default_limit_of_100_headers_holds_over_http1() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    // Host, X-Auth-Token and Connection, then fillers up to `headers`.
    let send = |headers: usize| {
        let filler: String = (3..headers)
            .map(|i| format!("X-Filler-{i}: x\r\n"))
            .collect();
        let (addr, token) = (sg.listen, token.clone());
        async move { raw_head(addr, &token, &filler).await }
    };
    let over = send(101).await;
    assert!(over.starts_with("HTTP/1.1 431"), "{over:.80}");
    assert_eq!(up.hits(), 0, "the head over the limit reached the upstream");
    let within = send(60).await;
    assert!(within.starts_with("HTTP/1.1 200"), "{within:.80}");
    assert_eq!(up.hits(), 1);
    assert_eq!(crate::local::validate_calls(&sg).await, 1.0);
}

#[tokio::test]
async fn the_start_line_names_the_bound_addresses_when_the_ports_are_zero() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    // The harness learns where stonegate listens from the start line only.
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    assert_ne!(sg.listen.port(), 0);
    assert_ne!(sg.admin.port(), 0);
    let token = ks.demo_token().await;
    let resp = sg.get("/x", &[("x-auth-token", &token)]).await;
    assert_eq!(resp.status(), 200);
    let ready = client().get(sg.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

/// A keep-alive HTTP/1.1 upstream that answers `200 ok` to every request and
/// closes a connection after `idle_close` without a request (an upstream's
/// keep-alive timeout); counts the connections it accepted.
async fn keep_alive_upstream(
    idle_close: Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{atomic::Ordering, Arc};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match tokio::time::timeout(idle_close, s.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        // Idle for idle_close, or the peer closed: close.
                        _ => return,
                    }
                    // GETs without bodies: one answer per complete head.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, accepted)
}

/// Upstream connections are kept alive and reused across requests, and an
/// upstream closing an idle one (its keep-alive timeout) never turns the
/// next request into a 502: the closed connection is not used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_an_idle_close_is_never_a_502() {
    use std::sync::atomic::Ordering;
    let ks = Keystone::from_env();
    let (url, accepted) = keep_alive_upstream(Duration::from_millis(300)).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(url)
        .start()
        .await;
    let token = ks.demo_token().await;
    let headers = [("X-Auth-Token", token.as_str())];
    for _ in 0..30 {
        assert_eq!(sg.get("/v2.1/servers", &headers).await.status(), 200);
    }
    // One idle list per worker thread: at most one connection per core
    // for requests that never overlap.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let reused = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=cores).contains(&reused),
        "30 sequential requests opened {reused} upstream connections"
    );
    // The upstream closes its idle connections; the next requests still
    // get 200, on new connections.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let resp = sg.get("/v2.1/servers", &headers).await;
        assert_eq!(resp.status(), 200, "after an idle close");
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    assert!(accepted.load(Ordering::SeqCst) > reused);
}
