//! One canonical path: public routes, access rules and forward-auth decide on
//! one RFC 3986 path, the upstream receives exactly that path, and a path the
//! upstream could resolve differently (dot segments in any spelling, encoded
//! `/` or `\`, NUL, `..;`, `//`) gets 400 and reaches neither the upstream
//! nor Keystone.
//!
//! Clients such as reqwest resolve dot segments before sending, so the
//! attacks go over raw TCP (HTTP/1.1) and a hyper HTTP/2 client (whose `:path`
//! is sent as written), against the real Keystone and an application
//! credential restricted to `GET /v2.1/servers/**`.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{nginx::Nginx, Keystone, Scope, Stonegate, Upstream};

/// Every spelling of "leave `/v2.1/servers/` for `/v2.1/os-hypervisors`"
/// (or of something a front server reads differently) that must get 400.
const AMBIGUOUS: &[&str] = &[
    "/v2.1/servers/../os-hypervisors",
    "/v2.1/servers/%2e%2e/os-hypervisors",
    "/v2.1/servers/%2E%2E/os-hypervisors",
    "/v2.1/servers/%2E%2e/os-hypervisors",
    "/v2.1/servers/.%2e/os-hypervisors",
    "/v2.1/servers/%2e./os-hypervisors",
    "/v2.1/servers/..;/os-hypervisors",
    "/v2.1/servers/..;x=1/os-hypervisors",
    "/v2.1/servers/%2e%2e;/os-hypervisors",
    "/v2.1/servers/.;x/os-hypervisors",
    "/v2.1/servers/./os-hypervisors",
    "/v2.1/servers/x/..",
    "/v2.1/servers/x/.",
    "/v2.1/servers/..%2fos-hypervisors",
    "/v2.1/servers/..%2Fos-hypervisors",
    "/v2.1/servers/..%5cos-hypervisors",
    "/v2.1/servers/..%5Cos-hypervisors",
    "/v2.1/servers/..\\os-hypervisors",
    "/v2.1/servers/x%00/../../os-hypervisors",
    "/v2.1/servers/x%00",
    "/v2.1/servers//x",
    "/v2.1/servers/%252e%252e/os-hypervisors",
    "/v2.1/servers/%ff",
    "/v2.1/servers/%zz",
    "/v2.1/servers/%2",
];

/// A token of a fresh application credential of demo's allowing only
/// `rules` (`[(service, method, path)]`).
async fn restricted_token(ks: &Keystone, rules: &[(&str, &str, &str)]) -> String {
    let owner = ks.token("demo", Scope::Project("demo")).await;
    let uid = ks.user_id("demo");
    let name = format!(
        "paths-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let rules: Vec<Value> = rules
        .iter()
        .map(|(s, m, p)| json!({"service": s, "method": m, "path": p}))
        .collect();
    let resp = crate::harness::client()
        .post(format!(
            "{}/users/{uid}/application_credentials",
            ks.auth_url
        ))
        .header("x-auth-token", &owner)
        .json(&json!({"application_credential": {
            "name": name, "roles": [{"name": "reader"}], "access_rules": rules,
        }}))
        .send()
        .await
        .expect("POST application_credentials");
    assert_eq!(resp.status(), 201);
    let ac: Value = resp.json().await.unwrap();
    let ac = &ac["application_credential"];
    ks.issue(json!({"identity": {"methods": ["application_credential"],
        "application_credential": {"id": ac["id"], "secret": ac["secret"]}}}))
        .await
}

/// The servers-only token of these tests.
async fn servers_token(ks: &Keystone) -> String {
    restricted_token(ks, &[("compute", "GET", "/v2.1/servers/**")]).await
}

/// One HTTP/1.1 request written byte for byte; the status and body.
async fn raw(
    addr: std::net::SocketAddr,
    request_line: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{request_line}\r\nHost: stonegate.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("answer within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

async fn get(addr: std::net::SocketAddr, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    raw(addr, &format!("GET {target} HTTP/1.1"), headers).await
}

/// `validate` calls stonegate made to Keystone so far (all statuses).
async fn keystone_validations(sg: &Stonegate) -> f64 {
    let text = crate::harness::client()
        .get(sg.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("stonegate_keystone_requests_total")
                && l.contains("operation=\"validate\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn assert_bad_request(status: u16, body: &str, what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    let doc: Value = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {body:?}"));
    assert_eq!(doc["error"]["code"], 400, "{what}: {body}");
}

async fn sidecar(ks: &Keystone, up: &Upstream, extra: &str) -> Stonegate {
    Stonegate::builder()
        .keystone(ks)
        .upstream(up)
        .option("service_type", "compute")
        .extra_toml(extra)
        .start()
        .await
}

#[tokio::test]
async fn ambiguous_paths_get_400_and_reach_neither_upstream_nor_keystone() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = sidecar(&ks, &up, "").await;
    let restricted = servers_token(&ks).await;
    let unrestricted = ks.demo_token().await;
    let before = keystone_validations(&sg).await;
    for path in AMBIGUOUS {
        for token in [&restricted, &unrestricted] {
            let (status, body) = get(sg.listen, path, &[("X-Auth-Token", token)]).await;
            assert_bad_request(status, &body, path);
        }
        let (status, body) = get(sg.listen, path, &[]).await;
        assert_bad_request(status, &body, path);
    }
    // Absolute-form targets go through the same rule.
    let (status, body) = get(
        sg.listen,
        "http://stonegate.test/v2.1/servers/../os-hypervisors",
        &[("X-Auth-Token", &restricted)],
    )
    .await;
    assert_bad_request(status, &body, "absolute-form");
    assert_eq!(up.hits(), 0, "an ambiguous path reached the upstream");
    assert_eq!(
        keystone_validations(&sg).await,
        before,
        "an ambiguous path made stonegate ask Keystone"
    );
}

#[tokio::test]
async fn the_upstream_receives_exactly_the_path_that_was_decided_on() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = sidecar(&ks, &up, "").await;
    let token = servers_token(&ks).await;
    for (sent, seen_path, seen_query) in [
        ("/v2.1/servers/abc", "/v2.1/servers/abc", None),
        ("/v2.1/serv%65rs/abc", "/v2.1/servers/abc", None),
        ("/v2.1/servers/a%2eb", "/v2.1/servers/a.b", None),
        ("/v2.1/servers/a%20b", "/v2.1/servers/a%20b", None),
        ("/v2.1/servers/a%3fb", "/v2.1/servers/a%3Fb", None),
        ("/v2.1/servers/..x", "/v2.1/servers/..x", None),
        (
            "/v2.1/servers/abc?next=/../x&y=%2e%2e",
            "/v2.1/servers/abc",
            Some("next=/../x&y=%2e%2e"),
        ),
    ] {
        let before = up.hits();
        let (status, body) = get(sg.listen, sent, &[("X-Auth-Token", &token)]).await;
        assert_eq!(status, 200, "{sent}: {body}");
        assert_eq!(up.hits(), before + 1, "{sent}");
        let seen = up.last();
        assert_eq!(seen.uri.path(), seen_path, "{sent}");
        assert_eq!(seen.uri.query(), seen_query, "{sent}");
    }
    // The rule is decided on the same path: outside it is 401.
    let (status, _) = get(
        sg.listen,
        "/v2.1/os-hypervisors",
        &[("X-Auth-Token", &token)],
    )
    .await;
    assert_eq!(status, 401);
}

/// Sends the corpus over one HTTP/2 connection on `io`, `:scheme` and
/// `:authority` from `base`, `:path` exactly as written.
async fn h2_corpus<T>(io: T, base: &str, token: &str, up: &Upstream)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let mut send = |path: &str| {
        let req = http::Request::get(format!("{base}{path}"))
            .header("x-auth-token", token)
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let fut = sender.send_request(req);
        async move {
            let resp = tokio::time::timeout(Duration::from_secs(20), fut)
                .await
                .expect("h2 response within 20 s")
                .unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            resp.status().as_u16()
        }
    };
    let mut sent = 0;
    for path in AMBIGUOUS {
        // The h2 client refuses to send some spellings (a raw `\`); the
        // ones it sends must be refused.
        if http::Uri::try_from(format!("{base}{path}")).is_err() {
            continue;
        }
        assert_eq!(send(path).await, 400, "{path}");
        sent += 1;
    }
    assert!(sent > 20, "only {sent} spellings sent");
    assert_eq!(up.hits(), 0, "an ambiguous :path reached the upstream");
    assert_eq!(send("/v2.1/serv%65rs/x").await, 200);
    assert_eq!(up.last().uri.path(), "/v2.1/servers/x");
}

#[tokio::test]
async fn h2c_paths_go_through_the_same_rule() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = sidecar(&ks, &up, "").await;
    let token = servers_token(&ks).await;
    let stream = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    h2_corpus(stream, &sg.url(""), &token, &up).await;
}

#[tokio::test]
async fn tls_h2_paths_go_through_the_same_rule() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::tls::self_signed(dir.path());
    let sg = sidecar(
        &ks,
        &up,
        &format!("[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"),
    )
    .await;
    let token = servers_token(&ks).await;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(crate::harness::cert_verifier::TestVerifier::any(
            provider,
        ))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    h2_corpus(tls, &format!("https://{}", sg.listen), &token, &up).await;
}

#[tokio::test]
async fn options_asterisk_is_refused_not_forwarded() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = sidecar(&ks, &up, "").await;
    let token = ks.demo_token().await;
    let (status, body) = raw(sg.listen, "OPTIONS * HTTP/1.1", &[("X-Auth-Token", &token)]).await;
    assert_bad_request(status, &body, "OPTIONS *");
    assert_eq!(up.hits(), 0);
}

const PUBLIC_PUB: &str = "[routes]\npublic = [{ method = \"GET\", path = \"/pub/**\" }]\n";

#[tokio::test]
async fn public_routes_are_decided_on_the_path_that_is_forwarded() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = sidecar(&ks, &up, PUBLIC_PUB).await;
    for path in [
        "/pub/..;/x",
        "/pub/..;x/x",
        "/pub/.;/x",
        "/pub/%2e%2e/x",
        "/pub/%2e%2e;/x",
        "/pub/../x",
        "/x/../pub/y",
        "/pub%2f..%2fx",
        "/pub/..%5cx",
        "//pub/x",
    ] {
        let (status, body) = get(sg.listen, path, &[]).await;
        assert_bad_request(status, &body, path);
    }
    assert_eq!(
        up.hits(),
        0,
        "an ambiguous public path reached the upstream"
    );
    for (sent, seen) in [("/pub/x", "/pub/x"), ("/p%75b/x", "/pub/x")] {
        let (status, body) = get(sg.listen, sent, &[]).await;
        assert_eq!(status, 200, "{sent}: {body}");
        assert_eq!(up.last().uri.path(), seen, "{sent}");
    }
    let (status, _) = get(sg.listen, "/x", &[]).await;
    assert_eq!(status, 401);
}

const FORWARD_AUTH: &str = "[[forward_auth]]\nflavor = \"nginx\"\npath = \"/_stonegate/auth\"\n\
     [[forward_auth]]\nflavor = \"traefik\"\npath = \"/_stonegate/traefik\"\n\
     [[forward_auth]]\nflavor = \"envoy\"\npath = \"/_stonegate/envoy\"\n\
     [routes]\npublic = [{ method = \"GET\", path = \"/pub/**\" }]\n";

async fn auth_service(ks: &Keystone) -> Stonegate {
    Stonegate::builder()
        .keystone(ks)
        .without_upstream()
        .option("service_type", "compute")
        .extra_toml(FORWARD_AUTH)
        .start()
        .await
}

#[tokio::test]
async fn forward_auth_decides_on_the_same_canonical_path() {
    let ks = Keystone::from_env();
    let sg = auth_service(&ks).await;
    let token = servers_token(&ks).await;
    let before = keystone_validations(&sg).await;
    let ask = |flavor: &'static str, uri: String, token: Option<String>| {
        let addr = sg.listen;
        async move {
            let mut h: Vec<(&str, String)> = Vec::new();
            if let Some(t) = token {
                h.push(("X-Auth-Token", t));
            }
            let target = match flavor {
                "nginx" => {
                    h.push(("X-Original-Method", "GET".into()));
                    h.push(("X-Original-URI", uri));
                    "/_stonegate/auth".to_owned()
                }
                "traefik" => {
                    h.push(("X-Forwarded-Method", "GET".into()));
                    h.push(("X-Forwarded-Uri", uri));
                    "/_stonegate/traefik".to_owned()
                }
                _ => format!("/_stonegate/envoy{uri}"),
            };
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            get(addr, &target, &h).await
        }
    };
    // nginx passes only 2xx/401/403 on (anything else becomes its own 500):
    // an ambiguous path is a 403 there, a 400 for Traefik and Envoy.
    for (flavor, refused) in [("nginx", 403), ("traefik", 400), ("envoy", 400)] {
        for path in AMBIGUOUS {
            if flavor != "envoy" && path.contains('\\') {
                continue; // not a valid header value for the raw client
            }
            let (status, body) = ask(flavor, (*path).into(), Some(token.clone())).await;
            assert_eq!(status, refused, "{flavor} {path}: {body}");
        }
        for path in ["/pub/..;/x", "/pub/%2e%2e/x", "/pub/../x", "/x/../pub/y"] {
            let (status, body) = ask(flavor, path.into(), None).await;
            assert_eq!(status, refused, "{flavor} public {path}: {body}");
        }
        let (status, _) = ask(flavor, "/v2.1/servers/abc".into(), Some(token.clone())).await;
        assert_eq!(status, 200, "{flavor}");
        let (status, _) = ask(
            flavor,
            "/v2.1/serv%65rs/abc?x=..".into(),
            Some(token.clone()),
        )
        .await;
        assert_eq!(status, 200, "{flavor}");
        let (status, _) = ask(flavor, "/v2.1/os-hypervisors".into(), Some(token.clone())).await;
        assert_eq!(status, 401, "{flavor}");
        let (status, _) = ask(flavor, "/pub/x".into(), None).await;
        assert_eq!(status, 200, "{flavor}");
    }
    // The absolute form nginx puts in $request_uri for an absolute-form request.
    let (status, _) = ask(
        "nginx",
        "http://h/v2.1/servers/../os-hypervisors".into(),
        Some(token.clone()),
    )
    .await;
    assert_eq!(status, 403);
    // Only the allowed requests were validated (one Keystone call, then cached).
    assert!(keystone_validations(&sg).await <= before + 1.0);
}

#[tokio::test]
async fn nginx_in_front_refuses_dot_segments_before_the_upstream() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = auth_service(&ks).await;
    let nginx = Nginx::start(
        sg.listen,
        "/_stonegate/auth",
        up.url().trim_start_matches("http://"),
    )
    .await;
    let token = servers_token(&ks).await;
    for path in [
        "/v2.1/servers/../os-hypervisors",
        "/v2.1/servers/%2e%2e/os-hypervisors",
        "/v2.1/servers/..;/os-hypervisors",
        "/v2.1/servers/..%2fos-hypervisors",
    ] {
        let (status, body) = get(nginx.addr, path, &[("X-Auth-Token", &token)]).await;
        assert_eq!(status, 403, "{path}: {body}\n{}", nginx.log());
    }
    assert_eq!(up.hits(), 0, "nginx forwarded an ambiguous path");
    let (status, _) = get(nginx.addr, "/v2.1/servers/abc", &[("X-Auth-Token", &token)]).await;
    assert_eq!(status, 200, "{}", nginx.log());
    assert_eq!(up.last().uri.path(), "/v2.1/servers/abc");
}
