//! The header boundary, tried as an attacker would, with real Keystone
//! tokens, over HTTP/1.1 (byte for byte on raw sockets), h2c (prior
//! knowledge) and TLS h2: the identity headers the upstream sees are exactly
//! the ones stonegate injects for the token (the set a plain request with the
//! same token gets, and what Keystone's own validation says), no forged value
//! ever arrives, and no extra request arrives.
//!
//! Cases: `Connection` naming every identity header (and `Host`,
//! `X-Forwarded-*`), `Proxy-Connection`, `Keep-Alive`, `TE`, duplicate and
//! aliased token headers, underscore aliases, forwarding headers, TE/CL
//! smuggling, `delay_auth_decision` without a token, and forward-auth answers.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{
    keystone::{assert_headers, expected_user_headers},
    upstream::Seen,
    Keystone, Stonegate, Upstream, IDENTITY_HEADERS,
};

/// Headers stonegate sets on every forwarded request, besides identity.
const SET_BY_STONEGATE: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Hop-by-hop headers that never reach the upstream of a plain request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A header name as a WSGI server files it: lower case, `_` read as `-`.
fn wsgi(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Letters, digits and `-` only: a name no WSGI/CGI server confuses with another.
fn plain_name(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What the upstream saw of the identity: every identity header (in any
/// spelling) and every header whose name is not [`plain_name`], with all its values.
fn identity_view(seen: &Seen) -> BTreeMap<String, Vec<String>> {
    let mut view: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &seen.headers {
        let n = name.as_str();
        if IDENTITY_HEADERS.contains(&wsgi(n).as_str()) || !plain_name(n) {
            view.entry(n.to_owned())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
    }
    view
}

/// The headers stonegate sets besides identity, with all their values.
fn set_view(seen: &Seen) -> BTreeMap<&'static str, Vec<String>> {
    SET_BY_STONEGATE
        .iter()
        .map(|n| {
            let values = seen
                .headers
                .get_all(*n)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            (*n, values)
        })
        .collect()
}

fn assert_nothing_forged(seen: &Seen) {
    for (name, value) in &seen.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !v.contains("forged") && !name.as_str().contains("forged"),
            "a forged header reached the upstream: {name}: {v}"
        );
        assert!(
            plain_name(name.as_str()),
            "an alias (`_`, `.`, ...) reached the upstream: {name}: {v}"
        );
    }
    assert!(
        !seen.uri.path().contains("smuggled"),
        "a smuggled request reached the upstream: {}",
        seen.uri
    );
}

fn assert_no_hop_by_hop(seen: &Seen) {
    for h in HOP_BY_HOP {
        assert!(
            seen.header(h).is_none(),
            "hop-by-hop {h} reached the upstream: {:?}",
            seen.header(h)
        );
    }
}

/// The upstream's view of a request must be exactly the baseline's: same
/// identity, same headers set by stonegate, nothing forged, no hop-by-hop.
fn assert_same_as(seen: &Seen, base: &Seen, case: &str) {
    assert_eq!(
        identity_view(seen),
        identity_view(base),
        "{case}: the identity headers differ from a plain request's"
    );
    assert_eq!(
        set_view(seen),
        set_view(base),
        "{case}: Host / X-Forwarded-* differ from a plain request's"
    );
    assert_nothing_forged(seen);
    assert_no_hop_by_hop(seen);
}

/// A request head: `GET <path>` with `Host` and the extra lines.
fn head(method: &str, path: &str, extra: &[String]) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: api.example\r\n");
    for line in extra {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Writes `bytes` on a fresh connection and reads until the server closes it
/// (or `wait` passes): everything it answered.
async fn exchange(sg: &Stonegate, bytes: &[u8], wait: Duration) -> String {
    let mut s = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The status codes of every response in `answer`, in order.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| answer.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// One raw HTTP/1.1 GET (with `Connection: close` unless the extra lines
/// carry their own `Connection`); its status.
async fn raw_get(sg: &Stonegate, path: &str, extra: &[String]) -> u16 {
    let mut lines = extra.to_vec();
    if !extra
        .iter()
        .any(|l| l.to_ascii_lowercase().starts_with("connection:"))
    {
        lines.push("Connection: close".into());
    }
    let answer = exchange(
        sg,
        head("GET", path, &lines).as_bytes(),
        Duration::from_secs(20),
    )
    .await;
    statuses(&answer).first().copied().unwrap_or(0)
}

/// Every identity header name, as a client would name them in `Connection`.
fn all_identity_names() -> String {
    IDENTITY_HEADERS.join(", ")
}

async fn plain(ks: &Keystone, up: &Upstream) -> Stonegate {
    Stonegate::builder().keystone(ks).upstream(up).start().await
}

#[tokio::test]
async fn connection_tokens_never_remove_what_stonegate_sets() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = plain(&ks, &up).await;
    let token = ks.demo_token().await;
    let auth = format!("X-Auth-Token: {token}");

    assert_eq!(
        raw_get(&sg, "/conn", std::slice::from_ref(&auth)).await,
        200
    );
    let base = up.last();
    assert_headers(
        &base.headers,
        &expected_user_headers(&ks.validate(&token).await),
    );
    assert_eq!(base.header("host").as_deref(), Some("api.example"));

    let ids = all_identity_names();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "Connection naming every identity header, Host and X-Forwarded-*",
            vec![format!(
                "Connection: close, {ids}, Host, X-Forwarded-For, X-Forwarded-Host, \
                 X-Forwarded-Proto, Forwarded"
            )],
        ),
        (
            "the issue's example",
            vec!["Connection: close, X-Is-Admin-Project, X-User-Id".into()],
        ),
        (
            "several Connection lines, odd case and spacing",
            vec![
                "Connection: x-user-id".into(),
                "connection:  X-IS-ADMIN-PROJECT ,, x-ROLES ,".into(),
                "CONNECTION: X-Project-Id,X-Identity-Status,close".into(),
            ],
        ),
        (
            "underscore spellings in Connection",
            vec!["Connection: close, X_User_Id, X_Is_Admin_Project, x_roles".into()],
        ),
        (
            "Proxy-Connection naming identity",
            vec![
                format!("Proxy-Connection: keep-alive, {ids}"),
                "Connection: close".into(),
            ],
        ),
        (
            "Keep-Alive named and sent",
            vec![
                "Keep-Alive: timeout=5, max=100".into(),
                "Connection: close, Keep-Alive, X-User-Id, X-Roles".into(),
            ],
        ),
        (
            "TE: trailers named in Connection",
            vec![
                "TE: trailers".into(),
                "Connection: close, TE, X-Roles, X-Project-Id".into(),
            ],
        ),
        (
            "TE with a transfer coding",
            vec![
                "TE: gzip, trailers;q=0.5".into(),
                "Connection: TE, close, x-is-admin-project".into(),
            ],
        ),
        (
            "Trailer naming identity",
            vec![
                "Trailer: X-User-Id, X-Roles".into(),
                "Connection: close, Trailer, X-User-Id".into(),
            ],
        ),
    ];
    for (case, lines) in cases {
        let hits = up.hits();
        let mut req = vec![auth.clone()];
        req.extend(lines);
        assert_eq!(raw_get(&sg, "/conn", &req).await, 200, "{case}");
        assert_eq!(up.hits(), hits + 1, "{case}: exactly one request upstream");
        assert_same_as(&up.last(), &base, case);
    }
}

#[tokio::test]
async fn connection_tokens_never_remove_invalid_under_delay_auth_decision() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("delay_auth_decision", true)
        .start()
        .await;
    let conn = format!(
        "Connection: close, {}, Host, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto",
        all_identity_names()
    );
    assert_eq!(raw_get(&sg, "/delay", &[]).await, 200);
    let base = up.last();
    assert_eq!(base.header("x-identity-status").as_deref(), Some("Invalid"));
    for token in [None, Some("X-Auth-Token: not-a-valid-token")] {
        let mut lines = vec![conn.clone(), "X-Identity-Status: Confirmed-forged".into()];
        lines.extend(token.map(str::to_owned));
        let hits = up.hits();
        assert_eq!(raw_get(&sg, "/delay", &lines).await, 200);
        assert_eq!(up.hits(), hits + 1);
        let seen = up.last();
        assert_eq!(
            seen.headers.get_all("x-identity-status").iter().count(),
            1,
            "X-Identity-Status: Invalid must arrive, once (token {token:?})"
        );
        assert_same_as(&seen, &base, "delay_auth_decision");
    }
}

#[tokio::test]
async fn connection_naming_the_token_header_is_never_a_half_decision() {
    // A token header the client declares hop-by-hop is removed before
    // anything reads it: never validated, never forwarded.
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = plain(&ks, &up).await;
    let token = ks.demo_token().await;
    let lines = vec![
        format!("X-Auth-Token: {token}"),
        "Connection: close, X-Auth-Token".into(),
    ];
    let status = raw_get(&sg, "/conn-token", &lines).await;
    if status == 200 {
        assert_eq!(up.last().header("x-auth-token"), Some(token));
    } else {
        assert_eq!(status, 401);
        assert_eq!(up.hits(), 0);
    }
}

/// How a corpus request travels.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Door {
    Http1,
    H2c,
    TlsH2,
}

struct Doors {
    plain: Stonegate,
    tls: Stonegate,
    _dir: tempfile::TempDir,
}

impl Doors {
    async fn start(ks: &Keystone, up: &Upstream) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = crate::tls::self_signed(dir.path());
        let tls = Stonegate::builder()
            .keystone(ks)
            .upstream(up)
            .extra_toml(&format!(
                "[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
            ))
            .start()
            .await;
        Doors {
            plain: plain(ks, up).await,
            tls,
            _dir: dir,
        }
    }

    async fn get(&self, door: Door, path: &str, headers: &[(&str, &str)]) -> u16 {
        let b = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30));
        let (client, url, version) = match door {
            Door::Http1 => (
                b.http1_only(),
                self.plain.url(path),
                reqwest::Version::HTTP_11,
            ),
            Door::H2c => (
                b.http2_prior_knowledge(),
                self.plain.url(path),
                reqwest::Version::HTTP_2,
            ),
            Door::TlsH2 => (
                b.danger_accept_invalid_certs(true),
                format!("https://{}{path}", self.tls.listen),
                reqwest::Version::HTTP_2,
            ),
        };
        let mut req = client.build().unwrap().get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request through stonegate");
        assert_eq!(resp.version(), version, "{door:?}");
        resp.status().as_u16()
    }
}

const DOORS: [Door; 3] = [Door::Http1, Door::H2c, Door::TlsH2];

#[tokio::test]
async fn token_header_aliases_and_duplicates_never_pass_unvalidated() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let doors = Doors::start(&ks, &up).await;
    let token = ks.demo_token().await;
    let other = ks.svc_token().await;
    for door in DOORS {
        assert_eq!(
            doors.get(door, "/alias", &[("X-Auth-Token", &token)]).await,
            200
        );
        let base = up.last();
        assert_headers(
            &base.headers,
            &expected_user_headers(&ks.validate(&token).await),
        );

        // Underscore aliases next to the real token: the upstream sees the
        // validated token only, under its one name.
        let hits = up.hits();
        let status = doors
            .get(
                door,
                "/alias",
                &[
                    ("X-Auth-Token", &token),
                    ("X_Auth_Token", "forged-alias-token"),
                    ("x_storage_token", "forged-alias-storage"),
                    ("X_SERVICE_TOKEN", "forged-alias-service"),
                    ("x.auth.token", "forged-alias-dots"),
                    ("x-auth-token~", "forged-alias-tilde"),
                    ("x_auth_TOKEN", &other),
                ],
            )
            .await;
        assert_eq!(status, 200, "{door:?}");
        assert_eq!(up.hits(), hits + 1);
        let seen = up.last();
        assert_eq!(identity_view(&seen), identity_view(&base), "{door:?}");
        assert_nothing_forged(&seen);
        assert_eq!(seen.header("x-auth-token"), Some(token.clone()));
        assert!(
            !seen
                .headers
                .values()
                .any(|v| v.as_bytes() == other.as_bytes()),
            "{door:?}: an aliased token reached the upstream"
        );

        // An alias alone is no token: 401, nothing forwarded.
        for alias in ["X_Auth_Token", "x_storage_token", "X_Storage_Token"] {
            let hits = up.hits();
            assert_eq!(
                doors.get(door, "/alias", &[(alias, &token)]).await,
                401,
                "{door:?} {alias}"
            );
            assert_eq!(up.hits(), hits, "{door:?} {alias}");
        }

        // X-Auth-Token and X-Storage-Token disagreeing: the upstream might
        // read either, so neither counts.
        let hits = up.hits();
        assert_eq!(
            doors
                .get(
                    door,
                    "/alias",
                    &[("X-Auth-Token", &token), ("X-Storage-Token", &other)],
                )
                .await,
            401,
            "{door:?}: two different user tokens"
        );
        assert_eq!(up.hits(), hits);
        // Agreeing, they are one token.
        assert_eq!(
            doors
                .get(
                    door,
                    "/alias",
                    &[("X-Auth-Token", &token), ("X-Storage-Token", &token)],
                )
                .await,
            200,
            "{door:?}: the same token twice"
        );
        assert_eq!(identity_view(&up.last()), identity_view(&base));
    }
}

#[tokio::test]
async fn forged_identity_and_forwarding_headers_never_arrive_on_any_door() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let doors = Doors::start(&ks, &up).await;
    let token = ks.demo_token().await;
    let forged: &[(&str, &str)] = &[
        ("X-User-Id", "forged-user"),
        ("X_User_Id", "forged-underscore-user"),
        ("x-is-admin-project", "forged-True"),
        ("X_Is_Admin_Project", "forged-True"),
        ("X-Roles", "forged-admin"),
        ("X-Service-Roles", "forged-service"),
        ("OpenStack-System-Scope", "forged-all"),
        (
            "Forwarded",
            "for=198.51.100.1;host=forged.example;proto=https",
        ),
        ("X-Real-IP", "198.51.100.2-forged"),
        ("X-Forwarded-Port", "1-forged"),
        ("X-Forwarded-Prefix", "/forged-prefix"),
        ("X-Forwarded-Host", "forged.example"),
        ("X-Forwarded-Proto", "forged-https"),
        ("X-Forwarded-Server", "forged.example"),
        ("X-Forwarded-Ssl", "forged-on"),
        ("X_Forwarded_For", "198.51.100.3-forged"),
        ("X_Forwarded_Host", "forged.example"),
        ("X_Forwarded_Proto", "forged-https"),
        ("X_Real_IP", "198.51.100.4-forged"),
        ("X-Forwarded-For", "203.0.113.9"),
    ];
    for door in DOORS {
        assert_eq!(
            doors.get(door, "/fwd", &[("X-Auth-Token", &token)]).await,
            200
        );
        let base = up.last();
        let proto = if door == Door::TlsH2 { "https" } else { "http" };
        assert_eq!(base.header("x-forwarded-proto").as_deref(), Some(proto));

        let mut headers = forged.to_vec();
        headers.push(("X-Auth-Token", &token));
        if door != Door::Http1 {
            headers.push(("TE", "trailers")); // the one TE legal on h2
        }
        let hits = up.hits();
        assert_eq!(doors.get(door, "/fwd", &headers).await, 200, "{door:?}");
        assert_eq!(up.hits(), hits + 1);
        let seen = up.last();
        assert_eq!(identity_view(&seen), identity_view(&base), "{door:?}");
        assert_nothing_forged(&seen);
        assert_no_hop_by_hop(&seen);
        for gone in [
            "forwarded",
            "x-real-ip",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-server",
            "x-forwarded-ssl",
        ] {
            assert!(seen.header(gone).is_none(), "{door:?}: {gone} arrived");
        }
        assert_eq!(
            seen.header("x-forwarded-host"),
            base.header("x-forwarded-host")
        );
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some(proto));
        let xff: Vec<String> = seen
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            xff,
            vec!["203.0.113.9, 127.0.0.1".to_owned()],
            "{door:?}: X-Forwarded-For is the client's chain plus the peer"
        );
    }
}

/// A request smuggled inside another's body: no token, forged identity.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: api.example\r\n\
    X-Roles: forged-smuggled\r\nX-User-Id: forged-smuggled\r\n\r\n";

#[tokio::test]
async fn te_cl_smuggling_is_refused_or_forwarded_as_one_request() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = plain(&ks, &up).await;
    let token = ks.demo_token().await;
    let auth = format!("X-Auth-Token: {token}");
    let chunk = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "CL.TE",
            vec![
                "Content-Length: 5".into(),
                "Transfer-Encoding: chunked".into(),
            ],
            format!("0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "TE.CL",
            vec![
                "Transfer-Encoding: chunked".into(),
                "Content-Length: 4".into(),
            ],
            chunk.clone(),
        ),
        (
            "two different Content-Lengths",
            vec![
                "Content-Length: 0".into(),
                format!("Content-Length: {}", SMUGGLED.len()),
            ],
            SMUGGLED.to_owned(),
        ),
        (
            "Content-Length list",
            vec![format!("Content-Length: 0, {}", SMUGGLED.len())],
            SMUGGLED.to_owned(),
        ),
        (
            "Transfer-Encoding: chunked, identity",
            vec![
                "Transfer-Encoding: chunked, identity".into(),
                "Content-Length: 4".into(),
            ],
            chunk.clone(),
        ),
        (
            "Transfer-Encoding: identity, chunked + CL",
            vec![
                "Transfer-Encoding: identity, chunked".into(),
                "Content-Length: 4".into(),
            ],
            chunk.clone(),
        ),
        (
            "two Transfer-Encoding lines + CL",
            vec![
                "Transfer-Encoding: gzip".into(),
                "Transfer-Encoding: chunked".into(),
                "Content-Length: 4".into(),
            ],
            chunk.clone(),
        ),
        (
            "xchunked",
            vec![
                "Transfer-Encoding: xchunked".into(),
                "Content-Length: 4".into(),
            ],
            chunk.clone(),
        ),
        (
            "space before the colon",
            vec![
                "Transfer-Encoding : chunked".into(),
                "Content-Length: 4".into(),
            ],
            chunk.clone(),
        ),
        (
            "obs-fold Transfer-Encoding",
            vec![
                "Transfer-Encoding:".into(),
                " chunked".into(),
                "Content-Length: 4".into(),
            ],
            chunk.clone(),
        ),
        (
            "Content-Length with a sign",
            vec![format!("Content-Length: +{}", SMUGGLED.len())],
            SMUGGLED.to_owned(),
        ),
        (
            "Connection naming Content-Length",
            vec![
                "Connection: Content-Length, Transfer-Encoding".into(),
                "Transfer-Encoding: chunked".into(),
                "Content-Length: 4".into(),
            ],
            chunk.clone(),
        ),
        (
            "Connection naming Transfer-Encoding",
            vec![
                "Connection: Transfer-Encoding".into(),
                format!("Content-Length: {}", chunk.len()),
            ],
            chunk.clone(),
        ),
    ];
    for (case, lines, body) in cases {
        let hits = up.hits();
        let mut all = vec![auth.clone()];
        all.extend(lines);
        let bytes = head("POST", "/outer", &all) + &body;
        let answer = exchange(&sg, bytes.as_bytes(), Duration::from_secs(3)).await;
        // Give a desynchronised upstream connection time to show a second request.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let codes = statuses(&answer);
        let arrived = up.hits() - hits;
        eprintln!("{case}: answered {codes:?}, {arrived} request(s) upstream");
        assert!(
            arrived <= 1,
            "{case}: {arrived} requests reached the upstream"
        );
        if arrived == 1 {
            let seen = up.last();
            assert_nothing_forged(&seen);
            assert_eq!(seen.uri.path(), "/outer", "{case}");
            assert_eq!(codes.first(), Some(&200), "{case}: {answer}");
        } else {
            assert!(
                codes.first().is_some_and(|c| *c == 400 || *c == 401) || codes.is_empty(),
                "{case}: refused, got {codes:?}"
            );
        }
        // Anything answered after the first response is the smuggled
        // request, which has no token.
        for c in codes.iter().skip(1) {
            assert_eq!(*c, 401, "{case}: a smuggled request was answered {c}");
        }
    }
}

/// One raw HTTP/1.1 request; the status and the response headers
/// (lower-case names, in order).
async fn raw_answer(sg: &Stonegate, req: &str) -> (u16, Vec<(String, String)>) {
    let answer = exchange(sg, req.as_bytes(), Duration::from_secs(20)).await;
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

#[tokio::test]
async fn forward_auth_answers_are_whole_whatever_the_request_names_in_connection() {
    let ks = Keystone::from_env();
    let sg = Stonegate::builder()
        .keystone(&ks)
        .without_upstream()
        .extra_toml("[[forward_auth]]\nflavor = \"traefik\"\npath = \"/_stonegate/traefik\"\n")
        .start()
        .await;
    let token = ks.demo_token().await;
    let expected = expected_user_headers(&ks.validate(&token).await);
    let ask = |extra: Vec<String>| {
        let mut lines = vec![
            "X-Forwarded-Method: GET".to_owned(),
            "X-Forwarded-Uri: /v2.1/servers".to_owned(),
        ];
        lines.extend(extra);
        head("GET", "/_stonegate/traefik", &lines)
    };
    let conn = format!("Connection: close, {}", all_identity_names());
    let (status, answer) = raw_answer(
        &sg,
        &ask(vec![
            format!("X-Auth-Token: {token}"),
            conn.clone(),
            "X-User-Id: forged-user".into(),
            "X_Auth_Token: forged-alias".into(),
        ]),
    )
    .await;
    assert_eq!(status, 200);
    let mut map = http::HeaderMap::new();
    for (n, v) in &answer {
        map.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    assert_headers(&map, &expected);
    for (n, v) in &answer {
        assert!(!v.contains("forged"), "{n}: {v}");
        if n == "connection" {
            let v = v.to_ascii_lowercase();
            assert!(
                !IDENTITY_HEADERS.iter().any(|i| v.contains(i)),
                "the answer names an identity header in Connection: {v}"
            );
        }
    }

    // Under delay_auth_decision, Invalid is in the answer whatever Connection says.
    let delayed = Stonegate::builder()
        .keystone(&ks)
        .without_upstream()
        .option("delay_auth_decision", true)
        .extra_toml("[[forward_auth]]\nflavor = \"traefik\"\npath = \"/_stonegate/traefik\"\n")
        .start()
        .await;
    let (status, answer) = raw_answer(&delayed, &ask(vec![conn.clone()])).await;
    assert_eq!(status, 200);
    let invalid: Vec<_> = answer
        .iter()
        .filter(|(n, _)| n == "x-identity-status")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(invalid, vec!["Invalid"]);

    // An alias alone is no token.
    let (status, _) = raw_answer(
        &sg,
        &ask(vec![
            format!("X_Auth_Token: {token}"),
            "Connection: close".into(),
        ]),
    )
    .await;
    assert_eq!(status, 401);
}
