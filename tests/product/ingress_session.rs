//! Browser sessions behind an ingress: a real nginx `auth_request` in front
//! of stonegate's forward-auth endpoint, the login and logout paths routed
//! to stonegate, against the real Keystone. The session cookie must
//! authenticate exactly as it does in the sidecar: same cookie opening, same
//! CSRF rule on the original method, same Origin rule on a WebSocket
//! handshake, and a refused session is never forwarded.

use serde_json::json;
use stonegate::session::{
    keys::SessionKeys,
    seal::{self, SessionData},
};

use crate::harness::keystone::{assert_headers, expected_user_headers};
use crate::harness::nginx::Nginx;
use crate::harness::{client, Keystone, Stonegate, Upstream};
use crate::session::{new_key, ring, Ring};

const LOGIN: &str = "/authentication/login/";
const LOGOUT: &str = "/authentication/logout/";

/// stonegate as the auth service only (no upstream of its own): an nginx
/// endpoint and `[session]` with the key ring `r`.
async fn auth_service(ks: &Keystone, r: &Ring) -> Stonegate {
    Stonegate::builder()
        .keystone(ks)
        .without_upstream()
        .extra_toml(&format!(
            "[[forward_auth]]\nflavor = \"nginx\"\npath = \"/_stonegate/auth\"\n\
             [session]\nenabled = true\nkeys_file = {:?}\n",
            r.path.display().to_string()
        ))
        .start()
        .await
}

/// The value of cookie `name` a response sets, if it sets it.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (n, rest) = v.split_once('=')?;
            (n == name).then(|| rest.split(';').next().unwrap_or_default().to_owned())
        })
}

/// Whether a response clears the session cookie (`Max-Age=0`).
fn clears_session(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.starts_with("sessionid=;") && v.contains("Max-Age=0"))
}

/// A request through nginx with `headers`.
async fn send(method: reqwest::Method, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn a_session_cookie_through_nginx_auth_request_authenticates_like_the_sidecar() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let key = new_key();
    let r = ring(&[&key]);
    let keys = SessionKeys::parse(&key).unwrap();
    let sg = auth_service(&ks, &r).await;
    let nginx = Nginx::start(
        sg.listen,
        "/_stonegate/auth",
        up.url().trim_start_matches("http://"),
    )
    .await;

    // Login through the ingress, with a real Keystone user: the listener of
    // the forward-auth endpoint serves the login path.
    let resp = client()
        .post(nginx.url(LOGIN))
        .json(&json!({"username": "demo", "password": ks.password("demo"), "project_name": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", nginx.log());
    let session = set_cookie(&resp, "sessionid").expect("session cookie");
    let csrf = set_cookie(&resp, "csrftoken").expect("CSRF cookie");
    let token = seal::open(&keys, "sessionid", &session).unwrap().token;
    let cookie = format!("sessionid={session}; csrftoken={csrf}");
    assert_eq!(up.hits(), 0, "the login never reaches the upstream");

    // The cookie alone: the upstream gets the user's identity (and never the token).
    let resp = send(
        reqwest::Method::GET,
        &nginx.url("/v2.1/servers"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", nginx.log());
    let seen = up.last();
    assert_headers(
        &seen.headers,
        &expected_user_headers(&ks.validate(&token).await),
    );
    assert!(!seen.headers.contains_key("x-auth-token"));

    // A write needs the CSRF token in its header, judged on the original method.
    let hits = up.hits();
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![("cookie", cookie.as_str()), ("x-csrftoken", "wrong")],
    ] {
        let resp = send(reqwest::Method::POST, &nginx.url("/v2.1/servers"), &headers).await;
        assert_eq!(resp.status(), 403, "{headers:?}");
    }
    assert_eq!(
        up.hits(),
        hits,
        "a refused write never reaches the upstream"
    );
    let resp = send(
        reqwest::Method::POST,
        &nginx.url("/v2.1/servers"),
        &[("cookie", &cookie), ("x-csrftoken", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().method, "POST");
    assert_eq!(
        up.last().headers["x-user-id"].to_str().unwrap(),
        ks.user_id("demo")
    );

    // A WebSocket handshake riding on the cookie must come from this site
    // (nginx passes no Upgrade to the subrequest; the key gives it away).
    let hits = up.hits();
    let handshake = |origin: String| {
        let cookie = cookie.clone();
        let url = nginx.url("/ws");
        async move {
            send(
                reqwest::Method::GET,
                &url,
                &[
                    ("cookie", cookie.as_str()),
                    ("origin", origin.as_str()),
                    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ("sec-websocket-version", "13"),
                ],
            )
            .await
            .status()
        }
    };
    assert_eq!(handshake("https://evil.example".into()).await, 403);
    assert_eq!(up.hits(), hits);
    assert_eq!(
        handshake(format!("http://{}", nginx.addr)).await,
        200,
        "same site, judged on the original Host: {}",
        nginx.log()
    );

    // A forged cookie: 401, the session cleared, nothing forwarded.
    let hits = up.hits();
    let mut forged = session.clone().into_bytes();
    let i = forged.len() / 2;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let resp = send(
        reqwest::Method::GET,
        &nginx.url("/v2.1/servers"),
        &[("cookie", &format!("sessionid={forged}"))],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(clears_session(&resp), "{:?}", resp.headers());

    // A session whose token expired: refused before Keystone is asked.
    let expired = seal::seal(
        &keys,
        "sessionid",
        &SessionData {
            token: ks.demo_token().await,
            csrf: "c".repeat(64),
            expires_at: 1_000_000,
            user_id: ks.user_id("demo"),
        },
    )
    .unwrap();
    let resp = send(
        reqwest::Method::GET,
        &nginx.url("/v2.1/servers"),
        &[("cookie", &format!("sessionid={expired}"))],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(clears_session(&resp));

    // A session whose token Keystone revoked behind stonegate's back.
    let revoked = ks.demo_token().await;
    ks.revoke(&revoked).await;
    let sealed = seal::seal(
        &keys,
        "sessionid",
        &SessionData {
            token: revoked,
            csrf: "c".repeat(64),
            expires_at: i64::MAX / 2,
            user_id: ks.user_id("demo"),
        },
    )
    .unwrap();
    let resp = send(
        reqwest::Method::GET,
        &nginx.url("/v2.1/servers"),
        &[("cookie", &format!("sessionid={sealed}"))],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers().contains_key("www-authenticate"),
        "{:?}",
        resp.headers()
    );
    assert!(clears_session(&resp));
    assert_eq!(up.hits(), hits);

    // Logout through the ingress revokes the token: the same cookie is then refused.
    let resp = send(
        reqwest::Method::POST,
        &nginx.url(LOGOUT),
        &[("cookie", &cookie), ("x-csrftoken", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", nginx.log());
    assert_eq!(ks.validate_raw(&token, false).await.0, 404);
    let resp = send(
        reqwest::Method::GET,
        &nginx.url("/v2.1/servers"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(clears_session(&resp));
    assert_eq!(up.hits(), hits);
}
