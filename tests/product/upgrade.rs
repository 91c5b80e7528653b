//! Upgrades are an allowlist, not a tunnel for anything: only the protocols in
//! `[proxy] upgrade_protocols` (default `websocket`) are forwarded, `h2c` and
//! `HTTP2-Settings` never; the upstream's 101 must name the protocol asked
//! for; a public route upgrades only when it opts in; a tunnel ends after
//! `tunnel_max_lifetime`. The attacker's upstream here behaves like Hypercorn:
//! it switches protocols on any `Upgrade` and then reads the tunnel as more
//! HTTP/1 requests, recording each one. A smuggled request with forged
//! identity headers must never reach it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{keystone::expected_user_headers, Keystone, Stonegate, Upstream};

/// An upstream that answers `101` to every request carrying `Upgrade` (with
/// `reply` as the protocol, or the one asked for) and keeps parsing the same
/// connection as HTTP/1 afterwards; every request head it reads is recorded.
struct Switcher {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Switcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Switcher {
    async fn start(reply: Option<&'static str>) -> Self {
        let listener = crate::harness::bind_fresh_tokio();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((s, _)) = listener.accept().await {
                conns.spawn(serve_switching(s, seen.clone(), reply));
            }
        });
        Switcher { addr, heads, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// The first request head that arrived; panics if none did.
    fn first(&self) -> String {
        self.heads()
            .first()
            .cloned()
            .expect("the upstream received no request")
    }
}

fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

async fn serve_switching(
    mut s: TcpStream,
    heads: Arc<Mutex<Vec<String>>>,
    reply: Option<&'static str>,
) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        heads.lock().unwrap().push(head.clone());
        let answer = match header_of(&head, "upgrade") {
            Some(asked) => format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {}\r\n\r\n",
                reply.map_or(asked, str::to_owned)
            ),
            None => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_owned(),
        };
        if s.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A request that would reach the upstream unparsed if a tunnel were open:
/// forged identity, no token, a path no public route covers.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: upstream\r\nX-Roles: admin\r\n\
                        X-User-Id: victim\r\nX-Identity-Status: Confirmed\r\n\
                        Connection: close\r\n\r\n";

/// Sends `GET path` (or `CONNECT target` when `path` is `"CONNECT target"`)
/// with the header lines `lines`, plus `X-Auth-Token` when a token is given,
/// then [`SMUGGLED`] on the same connection at once;
/// returns the status of the first response and everything read within 3 s.
async fn upgrade_then_smuggle(
    sg: &Stonegate,
    path: &str,
    lines: &[&str],
    token: Option<&str>,
) -> (u16, String) {
    let target = path.strip_prefix("CONNECT ").unwrap_or(path);
    let method = if target == path { "GET" } else { "CONNECT" };
    let mut s = TcpStream::connect(sg.listen).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", sg.listen);
    for l in lines {
        req.push_str(l);
        req.push_str("\r\n");
    }
    if let Some(t) = token {
        req.push_str(&format!("X-Auth-Token: {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(SMUGGLED);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = s.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// No head the upstream read carries the smuggled request or forged identity.
fn assert_nothing_smuggled(up: &Switcher) {
    for head in up.heads() {
        assert!(
            !head.contains("/smuggled") && !head.contains("victim"),
            "a smuggled request reached the upstream:\n{head}"
        );
        assert_ne!(
            header_of(&head, "x-roles").as_deref(),
            Some("admin"),
            "forged roles reached the upstream:\n{head}"
        );
    }
}

const H2C: &[&str] = &[
    "Connection: Upgrade, HTTP2-Settings",
    "Upgrade: h2c",
    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
];

const WEBSOCKET: &[&str] = &[
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

#[tokio::test]
async fn h2c_is_never_forwarded_and_nothing_is_smuggled_with_a_token() {
    let ks = Keystone::from_env();
    let up = Switcher::start(None).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url())
        .start()
        .await;
    let token = ks.demo_token().await;
    let (status, text) = upgrade_then_smuggle(&sg, "/v2.1/servers", H2C, Some(&token)).await;
    assert_nothing_smuggled(&up);
    assert_eq!(status, 200, "served as a plain request: {text}");
    // The smuggled request is parsed by stonegate: no token, 401.
    assert!(text.contains("HTTP/1.1 401"), "{text}");
    let heads = up.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    for h in ["upgrade", "http2-settings"] {
        assert_eq!(
            header_of(&heads[0], h),
            None,
            "{h} forwarded:\n{}",
            heads[0]
        );
    }
    assert_eq!(
        header_of(&heads[0], "x-identity-status").as_deref(),
        Some("Confirmed")
    );
    let m = metrics(&sg).await;
    assert!(
        m.contains("stonegate_proxy_upgrades_total{result=\"not_allowed\"} 1"),
        "{m}"
    );
}

/// The admin listener's `/metrics` text.
async fn metrics(sg: &Stonegate) -> String {
    crate::harness::client()
        .get(sg.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn h2c_never_opens_a_tunnel_without_a_token() {
    let ks = Keystone::from_env();
    let up = Switcher::start(None).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url())
        .extra_toml("[[routes.public]]\nmethod = \"GET\"\npath = \"/\"\n")
        .start()
        .await;
    // Protected path, no token: refused before the upstream.
    let (status, text) = upgrade_then_smuggle(&sg, "/v2.1/servers", H2C, None).await;
    assert_eq!(status, 401, "{text}");
    assert!(up.heads().is_empty(), "{:?}", up.heads());
    // Public path, no token: forwarded as a plain request, no switch.
    let (status, text) = upgrade_then_smuggle(&sg, "/", H2C, None).await;
    assert_nothing_smuggled(&up);
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains(" 101 "), "{text}");
    assert_eq!(up.heads().len(), 1);
    assert_eq!(header_of(&up.first(), "upgrade"), None);
    assert_eq!(header_of(&up.first(), "http2-settings"), None);
}

#[tokio::test]
async fn a_protocol_off_the_allowlist_is_forwarded_without_the_upgrade() {
    let ks = Keystone::from_env();
    let up = Switcher::start(None).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url())
        .start()
        .await;
    let token = ks.demo_token().await;
    for lines in [
        &["Connection: Upgrade", "Upgrade: tunnel-anything/1"][..],
        &["Connection: Upgrade", "Upgrade: h2c, websocket-not"],
        &["Connection: keep-alive, Upgrade", "Upgrade: HTTP/2.0"],
    ] {
        let before = up.heads().len();
        let (status, text) = upgrade_then_smuggle(&sg, "/v2.1/servers", lines, Some(&token)).await;
        assert_eq!(status, 200, "{lines:?}: {text}");
        assert_nothing_smuggled(&up);
        let heads = up.heads();
        assert_eq!(heads.len(), before + 1, "{heads:?}");
        let last = heads.last().unwrap();
        assert_eq!(header_of(last, "upgrade"), None, "{lines:?}:\n{last}");
        assert!(
            !header_of(last, "connection")
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("upgrade"),
            "{lines:?}:\n{last}"
        );
    }
}

#[tokio::test]
async fn a_public_route_upgrades_only_when_it_opts_in() {
    let ks = Keystone::from_env();
    let up = Switcher::start(None).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url())
        .extra_toml(
            "[[routes.public]]\nmethod = \"GET\"\npath = \"/pub/**\"\n\n\
             [[routes.public]]\nmethod = \"GET\"\npath = \"/live/**\"\nupgrade = true\n",
        )
        .start()
        .await;
    // Not opted in: plain request, no switch, the smuggled request parsed (401).
    let (status, text) = upgrade_then_smuggle(&sg, "/pub/ws", WEBSOCKET, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("HTTP/1.1 401"), "{text}");
    assert_nothing_smuggled(&up);
    assert_eq!(header_of(&up.first(), "upgrade"), None, "{}", up.first());

    // Opted in: the websocket upgrade goes through without a token.
    let mut s = TcpStream::connect(sg.listen).await.unwrap();
    let req = format!(
        "GET /live/ws HTTP/1.1\r\nHost: {}\r\n{}\r\n\r\n",
        sg.listen,
        WEBSOCKET.join("\r\n")
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let last = up.heads().last().cloned().unwrap();
    assert_eq!(header_of(&last, "upgrade").as_deref(), Some("websocket"));
    assert_eq!(header_of(&last, "x-identity-status"), None, "{last}");
}

async fn read_head(s: &mut TcpStream) -> String {
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
    String::from_utf8_lossy(&head).into_owned()
}

/// Opens a websocket upgrade through `sg`; the response head and the stream.
async fn websocket(sg: &Stonegate, token: Option<&str>) -> (String, TcpStream) {
    let mut s = TcpStream::connect(sg.listen).await.unwrap();
    let mut req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\n{}\r\n",
        sg.listen,
        WEBSOCKET.join("\r\n")
    );
    if let Some(t) = token {
        req.push_str(&format!("X-Auth-Token: {t}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    (head, s)
}

async fn echoes(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back))
        .await
        .expect("echo within 10 s")
        .unwrap();
    assert_eq!(back, msg);
}

#[tokio::test]
async fn websocket_with_a_real_token_carries_exactly_the_identity_and_echoes() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let (head, _) = websocket(&sg, None).await;
    assert!(head.starts_with("HTTP/1.1 401"), "no token: {head}");
    assert_eq!(up.hits(), 0);

    let token = ks.demo_token().await;
    let (head, mut s) = websocket(&sg, Some(&token)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");
    let seen = up.last();
    assert_eq!(seen.header("upgrade").as_deref(), Some("websocket"));
    crate::harness::keystone::assert_headers(
        &seen.headers,
        &expected_user_headers(&ks.validate(&token).await),
    );
    echoes(&mut s, b"frame one").await;
    // An HTTP request inside the tunnel is just bytes to a websocket peer:
    // the echo upstream returns it, it is never parsed as a request.
    echoes(&mut s, SMUGGLED.as_bytes()).await;
    assert_eq!(up.hits(), 1);
    let m = metrics(&sg).await;
    assert!(m.contains("stonegate_proxy_tunnels_open 1"), "{m}");
    assert!(
        m.contains("stonegate_proxy_upgrades_total{result=\"tunnelled\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn a_101_naming_another_protocol_is_a_502_and_opens_no_tunnel() {
    let ks = Keystone::from_env();
    let up = Switcher::start(Some("h2c")).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url())
        .start()
        .await;
    let token = ks.demo_token().await;
    let (status, text) = upgrade_then_smuggle(&sg, "/ws", WEBSOCKET, Some(&token)).await;
    assert_nothing_smuggled(&up);
    assert_eq!(status, 502, "{text}");
    assert!(!text.contains(" 101 "), "{text}");
    assert_eq!(up.heads().len(), 1, "{:?}", up.heads());
    let m = metrics(&sg).await;
    assert!(
        m.contains("stonegate_proxy_upgrades_total{result=\"wrong_protocol\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn a_tunnel_ends_after_its_lifetime() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .proxy_option("tunnel_max_lifetime", 2)
        .start()
        .await;
    let token = ks.demo_token().await;
    let (head, mut s) = websocket(&sg, Some(&token)).await;
    let opened = Instant::now();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    echoes(&mut s, b"still open").await;
    // Keep the tunnel busy: the lifetime, not idleness, ends it.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if s.write_all(b"tick").await.is_err() {
                return;
            }
            let mut back = [0u8; 4];
            match tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut back)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return,
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the tunnel was still open after 10 s");
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(1500) && lived < Duration::from_secs(6),
        "the tunnel lived {lived:?} with tunnel_max_lifetime = 2"
    );
    let metrics = metrics(&sg).await;
    assert!(
        metrics.contains("stonegate_proxy_tunnels_total{end=\"lifetime\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_idle_tunnel_ends_after_the_idle_timeout() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .proxy_option("tunnel_idle_timeout", 1)
        .start()
        .await;
    let token = ks.demo_token().await;
    let (head, mut s) = websocket(&sg, Some(&token)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    echoes(&mut s, b"hello").await;
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("the idle tunnel was still open after 10 s");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn an_http2_request_never_carries_an_upgrade_to_the_upstream() {
    let ks = Keystone::from_env();
    let up = Switcher::start(None).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url())
        .start()
        .await;
    let token = ks.demo_token().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = client
        .get(sg.url("/ws"))
        .header("X-Auth-Token", &token)
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_ne!(resp.status(), 101);
    }
    for head in up.heads() {
        assert_eq!(header_of(&head, "upgrade"), None, "{head}");
        assert_eq!(header_of(&head, "connection"), None, "{head}");
    }
}

#[tokio::test]
async fn an_unconfirmed_identity_never_upgrades_under_delay_auth_decision() {
    let ks = Keystone::from_env();
    let up = Switcher::start(None).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url())
        .option("delay_auth_decision", true)
        .start()
        .await;
    for token in [None, Some("not-a-valid-token")] {
        let before = up.heads().len();
        let (status, text) = upgrade_then_smuggle(&sg, "/ws", WEBSOCKET, token).await;
        assert_eq!(status, 200, "{token:?}: {text}");
        let heads = up.heads();
        // No switch: the second request is parsed by stonegate and forwarded
        // as Invalid (delay_auth_decision), its forged headers stripped.
        assert_eq!(heads.len(), before + 2, "{heads:?}");
        let (first, second) = (&heads[before], &heads[before + 1]);
        assert_eq!(header_of(first, "upgrade"), None, "{first}");
        for head in [first, second] {
            assert_eq!(
                header_of(head, "x-identity-status").as_deref(),
                Some("Invalid"),
                "{head}"
            );
            assert_eq!(header_of(head, "x-roles"), None, "{head}");
            assert_eq!(header_of(head, "x-user-id"), None, "{head}");
        }
    }
}

#[tokio::test]
async fn connect_never_opens_a_tunnel() {
    let ks = Keystone::from_env();
    let up = Switcher::start(None).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url())
        .start()
        .await;
    let token = ks.demo_token().await;
    let (status, text) =
        upgrade_then_smuggle(&sg, "CONNECT upstream.example:443", &[], Some(&token)).await;
    assert_nothing_smuggled(&up);
    assert_ne!(status, 101, "{text}");
}

#[tokio::test]
async fn over_tls_h2_an_upgrade_never_reaches_the_upstream() {
    let ks = Keystone::from_env();
    let up = Switcher::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::tls::self_signed(dir.path());
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream_url(up.url())
        .extra_toml(&format!(
            "[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ))
        .start()
        .await;
    let token = ks.demo_token().await;
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let resp = client
        .get(format!("https://{}/ws", sg.listen))
        .header("X-Auth-Token", &token)
        .header("Upgrade", "h2c")
        .header("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_ne!(resp.status(), 101);
    }
    for head in up.heads() {
        for h in ["upgrade", "connection", "http2-settings"] {
            assert_eq!(header_of(&head, h), None, "{head}");
        }
    }
}

#[tokio::test]
async fn a_tunnel_never_outlives_its_token() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let (token, expires_at) = ks.short_lived_token(Duration::from_secs(5)).await;
    let (head, mut s) = websocket(&sg, Some(&token)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    echoes(&mut s, b"before expiry").await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf))
        .await
        .expect("the tunnel was still open 15 s after its token's expiry was near");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let now = std::time::SystemTime::now();
    let early = expires_at - Duration::from_millis(1500);
    let late = expires_at + Duration::from_secs(3);
    assert!(
        now >= early && now <= late,
        "closed at {now:?}, the token expires at {expires_at:?}"
    );
}

#[tokio::test]
async fn a_session_cookie_upgrades_only_from_this_site() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("session-keys");
    let key = stonegate::session::keys::SessionKeys::generate().unwrap();
    std::fs::write(&keys, format!("{key}\n")).unwrap();
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!(
            "[session]\nenabled = true\nkeys_file = {:?}\n",
            keys.display().to_string()
        ))
        .start()
        .await;
    let resp = crate::harness::client()
        .post(sg.url("/authentication/login/"))
        .json(&serde_json::json!({
            "username": "demo", "password": ks.password("demo"), "project_name": "demo"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("sessionid="))
        .expect("a session cookie");
    // Cross-site WebSocket hijacking: a GET needs no CSRF token, but a page
    // on another site must not open a tunnel with the victim's cookie.
    let open = |origin: String| {
        let cookie = cookie.clone();
        let listen = sg.listen;
        async move {
            let mut s = TcpStream::connect(listen).await.unwrap();
            let req = format!(
                "GET /ws HTTP/1.1\r\nHost: {listen}\r\n{}\r\nCookie: {cookie}\r\n{origin}\r\n",
                WEBSOCKET.join("\r\n")
            );
            s.write_all(req.as_bytes()).await.unwrap();
            read_head(&mut s).await
        }
    };
    for evil in ["https://evil.example", "null"] {
        let head = open(format!("Origin: {evil}\r\n")).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{evil}: {head}");
    }
    assert_eq!(up.hits(), 0);
    let head = open(format!("Origin: http://{}\r\n", sg.listen)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        up.last().header("x-user-id"),
        Some(ks.user_id("demo")),
        "the session's identity"
    );
}
