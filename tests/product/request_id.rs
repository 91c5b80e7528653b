//! Request ids (`X-OpenStack-Request-ID`, oslo.middleware's `req-<uuid4>`)
//! and W3C trace context through every door — the sidecar, the tower layer
//! and forward-auth behind a real nginx — against the real Keystone, whose
//! own log must show the same id on the validation call (the harness logs
//! Keystone's policy line for `identity:validate_token`, which carries the
//! caller's id as its global request id).

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Empty, Full};
use stonegate::{config, metrics::Metrics, request_id::RequestId, stack, AuthTokenLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{service_fn, ServiceExt};
use tower_layer::Layer;

use crate::harness::{nginx::Nginx, Keystone, Stonegate, Upstream};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
/// A well-formed id a client might send.
const CLIENT_ID: &str = "req-0f8fad5b-d9cb-469f-a165-70867728950e";

/// `req-` + a lower-case version 4 UUID, as oslo.middleware generates.
fn is_generated_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 40
        && s.starts_with("req-")
        && b[4..].iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[18] == b'4'
        && b"89ab".contains(&b[23])
}

/// The harness Keystone's log (next to its fixtures file).
fn keystone_log() -> PathBuf {
    let fixtures = std::env::var_os("STONEGATE_TEST_KEYSTONE_FIXTURES")
        .expect("STONEGATE_TEST_KEYSTONE_FIXTURES (run scripts/test.sh)");
    PathBuf::from(fixtures).with_file_name("keystone.log")
}

/// The line of Keystone's log recording the validation of a token under
/// request id `id` (as its global request id), waiting up to 10 s.
async fn keystone_validation_line(id: &str) -> Option<String> {
    let needle = format!("[{id} req-");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read(keystone_log()).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        if let Some(line) = log
            .lines()
            .find(|l| l.contains(&needle) && l.contains("identity:validate_token"))
        {
            return Some(line.to_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn id_of(resp: &reqwest::Response) -> String {
    let values: Vec<_> = resp
        .headers()
        .get_all("x-openstack-request-id")
        .iter()
        .collect();
    assert_eq!(values.len(), 1, "one id on the answer: {values:?}");
    values[0].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_sidecar_gives_each_request_an_id_shared_by_upstream_keystone_and_access_line() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    let headers = [
        ("X-Auth-Token", token.as_str()),
        // Not trusted (no [request_id] trusted_peers): replaced.
        ("X-OpenStack-Request-ID", CLIENT_ID),
        ("traceparent", TRACEPARENT),
        ("tracestate", TRACESTATE),
    ];
    let resp = sg.get("/v2.1/servers", &headers).await;
    assert_eq!(resp.status(), 200);
    let id = id_of(&resp);
    assert!(is_generated_id(&id), "{id}");
    assert_ne!(id, CLIENT_ID, "a client's id is not trusted by default");

    let seen = up.last();
    let upstream_ids: Vec<_> = seen
        .headers
        .get_all("x-openstack-request-id")
        .iter()
        .collect();
    assert_eq!(
        upstream_ids,
        [id.as_str()],
        "the upstream gets exactly the id"
    );
    assert_eq!(seen.header("traceparent").as_deref(), Some(TRACEPARENT));
    assert_eq!(seen.header("tracestate").as_deref(), Some(TRACESTATE));

    let log = sg.log_with(&format!("request_id={id}")).await;
    let line = log
        .lines()
        .find(|l| l.contains("stonegate::access") && l.contains(&id))
        .unwrap_or_else(|| panic!("no access line with {id}:\n{log}"));
    assert!(line.contains("status=200"), "{line}");
    assert!(!log.contains(CLIENT_ID), "the untrusted id is never logged");

    let line = keystone_validation_line(&id).await.unwrap_or_else(|| {
        panic!(
            "Keystone's log ({}) has no validate_token line under {id} (a Keystone \
             started before tests/keystone/keystone-up.sh set default_log_levels: \
             restart it with keystone-down.sh)",
            keystone_log().display()
        )
    });
    assert!(line.contains("RBAC: Authorizing"), "{line}");

    // The next request, a cache hit, has its own id; a refusal carries one too.
    let again = sg.get("/v2.1/servers", &[("X-Auth-Token", &token)]).await;
    let second = id_of(&again);
    assert!(is_generated_id(&second) && second != id);
    assert_eq!(up.last().header("x-openstack-request-id"), Some(second));
    let refused = sg.get("/v2.1/servers", &[]).await;
    assert_eq!(refused.status(), 401);
    assert!(is_generated_id(&id_of(&refused)));
}

#[tokio::test]
async fn a_trusted_peers_well_formed_id_is_kept_end_to_end() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml("[request_id]\ntrusted_peers = [\"127.0.0.0/8\"]\n")
        .start()
        .await;
    let token = ks.demo_token().await;
    let id = format!("req-{}", &uuid_like());
    let resp = sg
        .get(
            "/v2.1/servers",
            &[("X-Auth-Token", &token), ("X-OpenStack-Request-ID", &id)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(id_of(&resp), id);
    assert_eq!(up.last().header("x-openstack-request-id"), Some(id.clone()));
    assert!(
        keystone_validation_line(&id).await.is_some(),
        "Keystone logged no validation under {id}"
    );
    // Even from a trusted peer, a malformed id is replaced.
    let resp = sg
        .get(
            "/v2.1/servers",
            &[
                ("X-Auth-Token", &token),
                ("X-OpenStack-Request-ID", "req-1"),
            ],
        )
        .await;
    assert!(is_generated_id(&id_of(&resp)));
}

/// A fresh lower-case UUID-shaped string (the test's own, not stonegate's).
fn uuid_like() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let h = format!("{:032x}", n ^ 0x5a5a_1234_abcd_0000_9999_7777_0000_1111);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Sends `head` (a raw request head, without the final empty line) over TCP
/// and returns the raw answer.
async fn raw(addr: std::net::SocketAddr, head: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head).await.unwrap();
    s.write_all(b"Connection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn malformed_oversized_or_injected_ids_never_reach_the_upstream_or_the_log() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    // The worst case: the client's own peer is trusted.
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml("[request_id]\ntrusted_peers = [\"127.0.0.0/8\"]\n")
        .start()
        .await;
    let token = ks.demo_token().await;
    let demo = ks.user_id("demo");
    let oversized = format!("req-{}", "a".repeat(7000));
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        (
            "comma list",
            format!("{CLIENT_ID}, req-evil-comma").into_bytes(),
        ),
        ("oversized", oversized.clone().into_bytes()),
        ("upper case", CLIENT_ID.to_ascii_uppercase().into_bytes()),
        (
            "encoded CRLF",
            format!("{CLIENT_ID}%0d%0aX-Roles:%20admin-enc").into_bytes(),
        ),
        ("tab", format!("{CLIENT_ID}\tevil-tab").into_bytes()),
        ("not UTF-8", b"req-\xff\xfe-evil-bytes".to_vec()),
        ("log line", b"req-x\" status=200 user=evil-log".to_vec()),
    ];
    for (what, value) in &attacks {
        let mut req = crate::harness::client()
            .get(sg.url("/v2.1/servers"))
            .header("X-Auth-Token", &token);
        req = req.header(
            "X-OpenStack-Request-ID",
            http::HeaderValue::from_bytes(value).unwrap(),
        );
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{what}");
        let id = id_of(&resp);
        assert!(is_generated_id(&id), "{what}: {id}");
        let seen = up.last();
        let ids: Vec<_> = seen
            .headers
            .get_all("x-openstack-request-id")
            .iter()
            .collect();
        assert_eq!(ids, [id.as_str()], "{what}");
        assert_eq!(
            seen.header("x-roles")
                .as_deref()
                .map(|r| r.contains("admin")),
            Some(false)
        );
    }
    // Two lines, both well-formed: which one would the upstream read? Neither.
    let other = CLIENT_ID.replace("0f8f", "1f8f");
    let resp = crate::harness::client()
        .get(sg.url("/v2.1/servers"))
        .header("X-Auth-Token", &token)
        .header("X-OpenStack-Request-ID", CLIENT_ID)
        .header("X-OpenStack-Request-ID", &other)
        .send()
        .await
        .unwrap();
    let id = id_of(&resp);
    assert!(id != CLIENT_ID && id != other && is_generated_id(&id));

    // A raw CRLF in the value ends the header line: what follows is a header
    // of its own, and forged identity is stripped as always.
    let head = format!(
        "GET /v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n\
         X-OpenStack-Request-ID: {CLIENT_ID}\r\nX-User-Id: evil-crlf\r\nX-Roles: admin\r\n"
    );
    let answer = raw(sg.listen, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = up.last();
    assert_eq!(seen.header("x-user-id"), Some(demo.clone()));
    assert_eq!(
        seen.header("x-openstack-request-id").as_deref(),
        Some(CLIENT_ID)
    );
    // A bare CR inside the value is not HTTP: refused before anything else.
    let hits = up.hits();
    let head = format!(
        "GET /v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n\
         X-OpenStack-Request-ID: {CLIENT_ID}\rX-User-Id: evil-cr\r\n"
    );
    let answer = raw(sg.listen, head.as_bytes()).await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(up.hits(), hits, "nothing reached the upstream");

    // Nothing the attacker wrote is in stonegate's log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = sg.log();
    for marker in [
        "evil",
        "admin-enc",
        "aaaaaaaaaaaaaaaa",
        "%0d%0a",
        &CLIENT_ID.to_ascii_uppercase(),
    ] {
        assert!(!log.contains(marker), "{marker} in the log:\n{log}");
    }
}

#[tokio::test]
async fn the_tower_layer_sets_the_id_on_the_inner_request_its_extensions_the_answer_and_keystone() {
    let ks = Keystone::from_env();
    // Every peer trusted, yet an embedded layer knows no peer: the client's id is replaced.
    let text = format!(
        "listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\nupstream = \"http://127.0.0.1:3\"\n\
         [keystone_authtoken]\nauth_url = {auth:?}\nusername = \"svc\"\nuser_domain_name = \"Default\"\n\
         project_name = \"service\"\nproject_domain_name = \"Default\"\nservice_type = \"compute\"\n\
         [request_id]\ntrusted_peers = [\"0.0.0.0/0\", \"::/0\"]\n",
        auth = ks.auth_url,
    );
    let password = ks.password("svc");
    let settings = config::File::parse(&text)
        .unwrap()
        .build(&|k| (k == "STONEGATE_PASSWORD").then(|| password.clone()))
        .unwrap();
    let metrics = Metrics::unregistered();
    let stack = stack::build(&settings, &metrics).unwrap();
    let layer = AuthTokenLayer::new(stack.gate.clone(), metrics);
    let inner = service_fn(|req: Request<Empty<Bytes>>| async move {
        let mut resp = Response::new(Full::new(Bytes::new()));
        let header = req.headers().get("x-openstack-request-id").cloned();
        let ext = req.extensions().get::<RequestId>().map(|i| i.to_string());
        resp.headers_mut().insert(
            "x-test-seen-header",
            header.unwrap_or(http::HeaderValue::from_static("none")),
        );
        resp.headers_mut().insert(
            "x-test-seen-extension",
            ext.unwrap_or_default().parse().unwrap(),
        );
        resp.headers_mut().insert(
            "x-test-seen-traceparent",
            req.headers()
                .get("traceparent")
                .cloned()
                .unwrap_or(http::HeaderValue::from_static("none")),
        );
        Ok::<_, Infallible>(resp)
    });
    let token = ks.demo_token().await;
    let mut req = Request::get("/v2.1/servers").body(Empty::new()).unwrap();
    req.headers_mut()
        .insert("x-auth-token", token.parse().unwrap());
    req.headers_mut()
        .insert("x-openstack-request-id", CLIENT_ID.parse().unwrap());
    req.headers_mut()
        .insert("traceparent", TRACEPARENT.parse().unwrap());
    let resp = layer.layer(inner).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    let id = h["x-openstack-request-id"].to_str().unwrap().to_owned();
    assert!(is_generated_id(&id), "{id}");
    assert_ne!(id, CLIENT_ID);
    assert_eq!(h["x-test-seen-header"], id.as_str());
    assert_eq!(h["x-test-seen-extension"], id.as_str());
    assert_eq!(h["x-test-seen-traceparent"], TRACEPARENT);
    assert!(
        keystone_validation_line(&id).await.is_some(),
        "Keystone logged no validation under {id}"
    );
}

#[tokio::test]
async fn forward_auth_answers_carry_the_id_nginx_passes_it_upstream_and_keystone_logs_it() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .without_upstream()
        .extra_toml("[[forward_auth]]\nflavor = \"nginx\"\npath = \"/_stonegate/auth\"\n")
        .extra_toml("[[forward_auth]]\nflavor = \"traefik\"\npath = \"/_traefik\"\n")
        .start()
        .await;
    let nginx = Nginx::start(
        sg.listen,
        "/_stonegate/auth",
        up.url().trim_start_matches("http://"),
    )
    .await;
    let token = ks.demo_token().await;
    let resp = crate::harness::client()
        .get(nginx.url("/v2.1/servers"))
        .header("X-Auth-Token", &token)
        .header("X-OpenStack-Request-ID", CLIENT_ID)
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", nginx.log());
    let seen = up.last();
    let id = seen
        .header("x-openstack-request-id")
        .expect("nginx copied stonegate's id upstream");
    assert!(is_generated_id(&id), "{id}");
    assert_ne!(
        id, CLIENT_ID,
        "the client's id went no further than nginx's auth request"
    );
    assert!(
        keystone_validation_line(&id).await.is_some(),
        "Keystone logged no validation under {id}"
    );

    // Traefik-style: the answer itself carries the id, on a 200 and on a 401.
    for (token, status) in [(Some(token.as_str()), 200), (None, 401)] {
        let mut req = crate::harness::client()
            .get(sg.url("/_traefik"))
            .header("X-Forwarded-Method", "GET")
            .header("X-Forwarded-Uri", "/v2.1/servers");
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status);
        assert!(is_generated_id(&id_of(&resp)));
    }
}
