//! Browser sessions against the real Keystone: login with a password, the
//! session cookie standing in for `X-Auth-Token`, CSRF on writes, logout
//! revoking the token, and every way a cookie can be wrong failing closed
//! with the cookies cleared.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use stonegate::session::{
    keys::SessionKeys,
    seal::{self, SessionData},
};

use stonegate::shared_cache::crypt::Strategy;

use crate::harness::keystone::{assert_headers, expected_user_headers};
use crate::harness::kv::{Memcached, Redis};
use crate::harness::{client, FakeKeystone, Keystone, Stonegate, Upstream};
use crate::local::metric;
use crate::shared_cache::{replica_builder, Backend};

const LOGIN: &str = "/authentication/login/";
const LOGOUT: &str = "/authentication/logout/";

/// A key ring file in a temporary directory.
pub(crate) struct Ring {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    keys: Vec<String>,
}

pub(crate) fn ring(keys: &[&str]) -> Ring {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session-keys");
    std::fs::write(&path, format!("# test ring\n{}\n", keys.join("\n"))).unwrap();
    Ring {
        _dir: dir,
        path,
        keys: keys.iter().map(|k| k.to_string()).collect(),
    }
}

pub(crate) fn new_key() -> String {
    SessionKeys::generate().unwrap()
}

async fn start(ks: &Keystone, up: &Upstream, ring: &Ring, extra: &str) -> Stonegate {
    Stonegate::builder()
        .keystone(ks)
        .upstream(up)
        .extra_toml(&format!(
            "[session]\nenabled = true\nkeys_file = {:?}\n{extra}",
            ring.path.display().to_string()
        ))
        .start()
        .await
}

/// One parsed `Set-Cookie`: value and attributes (lower-case names).
#[derive(Debug)]
struct SetCookie {
    value: String,
    attrs: BTreeMap<String, String>,
}

fn set_cookies(resp: &reqwest::Response) -> BTreeMap<String, SetCookie> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap();
            let mut parts = v.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let attrs = parts
                .map(|a| match a.split_once('=') {
                    Some((k, v)) => (k.to_ascii_lowercase(), v.to_owned()),
                    None => (a.to_ascii_lowercase(), String::new()),
                })
                .collect();
            (
                name.to_owned(),
                SetCookie {
                    value: value.to_owned(),
                    attrs,
                },
            )
        })
        .collect()
}

fn assert_cleared(resp: &reqwest::Response) {
    let c = set_cookies(resp);
    for name in ["sessionid", "csrftoken"] {
        let cookie = c
            .get(name)
            .unwrap_or_else(|| panic!("{name} not cleared: {c:?}"));
        assert_eq!(cookie.value, "", "{name}");
        assert_eq!(cookie.attrs.get("max-age").map(String::as_str), Some("0"));
    }
}

pub(crate) async fn login(sg: &Stonegate, body: Value) -> reqwest::Response {
    client()
        .post(sg.url(LOGIN))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn demo_login(ks: &Keystone) -> Value {
    json!({"username": "demo", "password": ks.password("demo"), "project_name": "demo"})
}

/// A logged-in session: the cookie header to send and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
    session_value: String,
}

async fn logged_in(sg: &Stonegate, ks: &Keystone) -> Session {
    let resp = login(sg, demo_login(ks)).await;
    assert_eq!(resp.status(), 200);
    let c = set_cookies(&resp);
    let session_value = c["sessionid"].value.clone();
    let csrf = c["csrftoken"].value.clone();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["csrf_token"], json!(csrf));
    Session {
        cookie: format!("sessionid={session_value}; csrftoken={csrf}; theme=dark"),
        csrf,
        session_value,
    }
}

/// A new user (no roles) only this test logs in as: failed logins make
/// Keystone write `failed_auth_count`, and the harness's sqlite database
/// must not see those writes race other tests' logins of shared users.
pub(crate) async fn throwaway_user(ks: &Keystone) -> (String, String) {
    let admin = ks
        .token("admin", crate::harness::Scope::Project("admin"))
        .await;
    let name = format!(
        "session-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let password = "session-test-password-1".to_owned();
    let resp = client()
        .post(format!("{}/users", ks.auth_url))
        .header("x-auth-token", admin)
        .json(&json!({"user": {"name": name, "password": password, "domain_id": "default"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        201,
        "create user: {}",
        resp.text().await.unwrap()
    );
    (name, password)
}

async fn body(resp: reqwest::Response) -> Value {
    assert_eq!(
        resp.headers()["content-type"],
        "application/json",
        "every answer is JSON"
    );
    resp.json().await.unwrap()
}

#[tokio::test]
async fn login_read_write_and_logout_against_keystone() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(&ks, &up, &r, "").await;

    // Login: 200, the user, and two cookies with the right attributes.
    let resp = login(&sg, demo_login(&ks)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&resp);
    let session = &cookies["sessionid"];
    assert!(session.attrs.contains_key("httponly"), "{session:?}");
    assert_eq!(session.attrs["samesite"], "Lax");
    assert_eq!(session.attrs["path"], "/");
    assert!(
        !session.attrs.contains_key("secure"),
        "plain HTTP: no Secure"
    );
    let max_age: i64 = session.attrs["max-age"].parse().unwrap();
    assert!(
        (3000..=3600).contains(&max_age),
        "lives as long as the token: {max_age}"
    );
    let csrf = &cookies["csrftoken"];
    assert!(
        !csrf.attrs.contains_key("httponly"),
        "scripts read the CSRF cookie"
    );
    assert_eq!(csrf.value.len(), 64);
    let user: Value = resp.json().await.unwrap();
    assert_eq!(user["user"]["id"], json!(ks.user_id("demo")));
    assert_eq!(user["user"]["name"], json!("demo"));
    assert_eq!(user["project"]["id"], json!(ks.project_id("demo")));
    let roles = user["roles"].as_array().unwrap();
    assert!(roles.contains(&json!("member")), "{roles:?}");
    // The cookie never holds the token in clear.
    assert!(!session.value.starts_with("gAAAA"));
    let s = Session {
        cookie: format!(
            "sessionid={}; csrftoken={}; theme=dark",
            session.value, csrf.value
        ),
        csrf: csrf.value.clone(),
        session_value: session.value.clone(),
    };

    // A read needs only the cookie; the upstream sees exactly the identity
    // keystonemiddleware would set for the token behind it, and the token.
    let resp = sg.get("/servers", &[("cookie", &s.cookie)]).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    let token = seen.header("x-auth-token").expect("X-Auth-Token forwarded");
    assert_headers(
        &seen.headers,
        &expected_user_headers(&ks.validate(&token).await),
    );
    assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
    let forwarded_cookie = seen.header("cookie").unwrap();
    assert!(
        !forwarded_cookie.contains("sessionid"),
        "{forwarded_cookie}"
    );
    assert!(forwarded_cookie.contains("theme=dark"));

    // Writes: without the CSRF header, or with a wrong one, 403 and nothing forwarded.
    let hits = up.hits();
    for (method, csrf) in [
        (reqwest::Method::POST, None),
        (reqwest::Method::PUT, Some("0".repeat(64))),
        (reqwest::Method::DELETE, Some(s.csrf[..63].to_owned())),
        (reqwest::Method::PATCH, None),
    ] {
        let mut req = client()
            .request(method.clone(), sg.url("/servers"))
            .header("cookie", &s.cookie)
            .header("x-user-id", "forged");
        if let Some(c) = &csrf {
            req = req.header("x-csrftoken", c);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403, "{method} with CSRF {csrf:?}");
        let b = body(resp).await;
        assert!(b["error"]["message"].as_str().unwrap().contains("CSRF"));
    }
    assert_eq!(
        up.hits(),
        hits,
        "no write without CSRF reached the upstream"
    );

    // With the CSRF token, the write goes through with the identity.
    let resp = client()
        .post(sg.url("/servers"))
        .header("cookie", &s.cookie)
        .header("x-csrftoken", &s.csrf)
        .header("x-user-id", "forged")
        .body("{\"server\": {}}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
    assert_eq!(
        seen.header("x-identity-status").as_deref(),
        Some("Confirmed")
    );

    // Logout needs CSRF too.
    let resp = client()
        .post(sg.url(LOGOUT))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = client()
        .post(sg.url(LOGOUT))
        .header("cookie", &s.cookie)
        .header("x-csrftoken", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_cleared(&resp);
    assert_eq!(body(resp).await, json!({"logout": true}));
    // Keystone revoked the token ...
    let (status, _) = ks.validate_raw(&token, false).await;
    assert_eq!(status, 404, "the session's token is revoked in Keystone");
    // ... and the old cookie no longer works: 401 JSON, cookies cleared, not forwarded.
    let hits = up.hits();
    let resp = sg.get("/servers", &[("cookie", &s.cookie)]).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_cleared(&resp);
    let b = body(resp).await;
    assert_eq!(b["error"]["code"], 401);
    assert_eq!(up.hits(), hits);
    let _ = s.session_value;
}

#[tokio::test]
async fn wrong_credentials_get_401_and_no_cookie() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(&ks, &up, &r, "").await;
    let (user, _) = throwaway_user(&ks).await;
    for attempt in [
        json!({"username": user, "password": "not-the-password"}),
        json!({"username": "no-such-user-anywhere", "password": "x"}),
        json!({"username": "demo", "password": ks.password("demo"), "project_name": "no-such-project"}),
        json!({"username": "demo", "password": ks.password("demo"), "user_domain_name": "no-such-domain"}),
    ] {
        let resp = login(&sg, attempt.clone()).await;
        assert_eq!(resp.status(), 401, "{}", attempt["username"]);
        assert!(resp.headers().get("set-cookie").is_none());
        let b = body(resp).await;
        assert_eq!(b["error"]["code"], 401);
        // Never echoes what was sent.
        assert!(!b.to_string().contains("not-the-password"));
    }
    // Malformed requests: 400 / 415 / 405, never a cookie.
    let resp = login(&sg, json!({"username": "demo"})).await;
    assert_eq!(resp.status(), 400);
    let resp = client()
        .post(sg.url(LOGIN))
        .header("content-type", "text/plain")
        .body("demo:pass")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = sg.get(LOGIN, &[]).await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    assert_eq!(up.hits(), 0, "login never reaches the upstream");
    // Passwords never reach the log.
    assert!(!sg.log().contains(&ks.password("demo")));
    assert!(!sg.log().contains("not-the-password"));
}

#[tokio::test]
async fn form_login_domain_and_cookie_attributes() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(
        &ks,
        &up,
        &r,
        "cookie_secure = \"always\"\nsame_site = \"Strict\"\ncookie_path = \"/api\"\ncookie_domain = \"example.test\"\ncookie_name = \"sg\"\ncsrf_cookie_name = \"sgcsrf\"",
    )
    .await;
    // Form-encoded, as an HTML form posts it, scoped to a project of another domain.
    let resp = client()
        .post(sg.url(LOGIN))
        .form(&[
            ("username", "demo"),
            ("password", ks.password("demo").as_str()),
            ("domain", "Default"),
            ("project_name", "demo-alt"),
            ("project_domain_name", "demo-domain"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let c = set_cookies(&resp);
    for name in ["sg", "sgcsrf"] {
        let a = &c[name].attrs;
        assert!(a.contains_key("secure"), "{name}: {a:?}");
        assert_eq!(a["samesite"], "Strict");
        assert_eq!(a["path"], "/api");
        assert_eq!(a["domain"], "example.test");
    }
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["project"]["name"], "demo-alt");
    let cookie = format!("sg={}", c["sg"].value);
    let resp = sg.get("/api/x", &[("cookie", &cookie)]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last().header("x-project-name").as_deref(),
        Some("demo-alt")
    );
    assert_eq!(
        up.last().header("x-project-domain-name").as_deref(),
        Some("demo-domain")
    );
}

#[tokio::test]
async fn tampered_foreign_and_rotated_out_cookies_fail_closed() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let (k1, k2) = (new_key(), new_key());
    let r1 = ring(&[&k1]);
    let a = start(&ks, &up, &r1, "").await;
    let s = logged_in(&a, &ks).await;

    // Another replica mid-rotation (new key first, old key kept) opens it:
    // no server-side state, sessions survive restarts and cross replicas.
    let r21 = ring(&[&k2, &k1]);
    let b = start(&ks, &up, &r21, "").await;
    let resp = b.get("/x", &[("cookie", &s.cookie)]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().header("x-user-id"), Some(ks.user_id("demo")));

    let hits = up.hits();
    // The old key rotated out: 401, cleared.
    let r2 = ring(&[&k2]);
    let c = start(&ks, &up, &r2, "").await;
    let resp = c.get("/x", &[("cookie", &s.cookie)]).await;
    assert_eq!(resp.status(), 401);
    assert_cleared(&resp);

    // Tampered: every way of changing the value is rejected.
    let v = &s.session_value;
    let mut flipped = v.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        flipped.as_str(),
        &v[..v.len() - 1],
        &v[1..],
        "gAAAAABnot-a-session",
        "",
    ] {
        let resp = a
            .get("/x", &[("cookie", &format!("sessionid={bad}"))])
            .await;
        assert_eq!(resp.status(), 401, "tampered value {bad:?}");
        assert_cleared(&resp);
        assert_eq!(body(resp).await["error"]["code"], 401);
    }
    // A cookie sealed for another cookie name with the same key does not open.
    let foreign = seal::seal(
        &SessionKeys::parse(&r1.keys.join("\n")).unwrap(),
        "othercookie",
        &SessionData {
            token: ks.demo_token().await,
            csrf: "c".into(),
            expires_at: i64::MAX / 2,
            user_id: "x".into(),
        },
    )
    .unwrap();
    let resp = a
        .get("/x", &[("cookie", &format!("sessionid={foreign}"))])
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(up.hits(), hits, "no bad cookie reached the upstream");
    // The valid session still works alongside (a bad duplicate does not hide it).
    let resp = a
        .get(
            "/x",
            &[("cookie", &format!("sessionid={flipped}; {}", s.cookie))],
        )
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn revoked_or_expired_session_token_is_401_and_clears_cookies() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let key = new_key();
    let r = ring(&[&key]);
    let sg = start(&ks, &up, &r, "").await;
    let keys = SessionKeys::parse(&key).unwrap();

    // A session whose token is revoked in Keystone behind stonegate's back
    // (the user changed their password, an admin revoked it ...).
    let token = ks
        .token("revokee", crate::harness::Scope::Project("demo"))
        .await;
    let sealed = seal::seal(
        &keys,
        "sessionid",
        &SessionData {
            token: token.clone(),
            csrf: "c".repeat(64),
            expires_at: i64::MAX / 2,
            user_id: ks.user_id("revokee"),
        },
    )
    .unwrap();
    let cookie = format!("sessionid={sealed}");
    // Before revocation the sealed token works (the test's cookie is genuine).
    assert_eq!(sg.get("/x", &[("cookie", &cookie)]).await.status(), 200);
    ks.revoke(&token).await;
    // The cached verdict lives token_cache_time; a fresh instance asks Keystone.
    let fresh = start(&ks, &up, &r, "").await;
    let hits = up.hits();
    let resp = fresh.get("/x", &[("cookie", &cookie)]).await;
    assert_eq!(resp.status(), 401);
    assert_cleared(&resp);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(up.hits(), hits);

    // Expired: rejected before Keystone is asked, cookies cleared.
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
    let resp = sg
        .get("/x", &[("cookie", &format!("sessionid={expired}"))])
        .await;
    assert_eq!(resp.status(), 401);
    assert_cleared(&resp);
    assert_eq!(up.hits(), hits);
}

#[tokio::test]
async fn explicit_token_wins_over_the_cookie() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(&ks, &up, &r, "").await;
    let s = logged_in(&sg, &ks).await;
    let svc = ks.svc_token().await;
    // A POST with X-Auth-Token needs no CSRF header (a cross-site page cannot
    // set it), and the token's identity is used, not the session's.
    let resp = client()
        .post(sg.url("/x"))
        .header("cookie", &s.cookie)
        .header("x-auth-token", &svc)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().header("x-user-id"), Some(ks.user_id("svc")));
    // An invalid explicit token is not rescued by a valid cookie.
    let resp = sg
        .get(
            "/x",
            &[("cookie", &s.cookie), ("x-auth-token", "gAAAAAbogus")],
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "the session itself is fine"
    );
    // X-Storage-Token (keystonemiddleware's other user-token header) counts as explicit too.
    let resp = sg
        .get("/x", &[("cookie", &s.cookie), ("x-storage-token", &svc)])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().header("x-user-id"), Some(ks.user_id("svc")));
}

/// Login CSRF: a page on another site posting the login form (as a browser
/// does, with `Origin`) is refused before any credential check — even with
/// right credentials, without a cookie, without spending the throttle —
/// while the site itself, a trusted origin and non-browser clients log in.
#[tokio::test]
async fn cross_site_login_is_refused_before_any_credential_check() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(
        &ks,
        &up,
        &r,
        "login_attempts_per_user = 2\ntrusted_origins = [\"https://portal.example.com\"]",
    )
    .await;
    let from = |origin: &'static str| {
        let ks = &ks;
        let sg = &sg;
        async move {
            client()
                .post(sg.url(LOGIN))
                .header("origin", origin)
                .json(&demo_login(ks))
                .send()
                .await
                .unwrap()
        }
    };
    for evil in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        for _ in 0..3 {
            let resp = from(evil).await;
            assert_eq!(resp.status(), 403, "Origin {evil}");
            assert!(resp.headers().get("set-cookie").is_none());
            let b = body(resp).await;
            assert!(
                b["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Cross-origin login refused"),
                "{b}"
            );
        }
    }
    // Nine refusals, yet the per-user limit of 2 is untouched: the same
    // site, a trusted origin and a client without Origin all log in.
    let own = format!("http://{}", sg.listen);
    let resp = client()
        .post(sg.url(LOGIN))
        .header("origin", own.as_str())
        .json(&demo_login(&ks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(set_cookies(&resp).contains_key("sessionid"));
    assert_eq!(from("https://portal.example.com").await.status(), 200);
    assert_eq!(login(&sg, demo_login(&ks)).await.status(), 200);
    let refused = metric(
        &sg,
        "stonegate_session_events_total",
        &["event=\"login_cross_origin\""],
    )
    .await;
    assert_eq!(refused, 9.0);
}

/// With a shared cache, login throttling is fleet-wide: attempts spread over
/// replicas add up, a refused user is refused everywhere (even with the right
/// password), a login resets the count for every replica, and the store
/// dying only makes throttling per replica again — logins still work.
#[tokio::test]
async fn login_throttling_is_fleet_wide_with_a_shared_cache() {
    let ks = Keystone::from_env();
    let mut memcached = Memcached::start().await;
    let mut redis = Redis::start().await;
    let servers = [memcached.server()];
    let url = redis.url();
    for redis_backend in [false, true] {
        let up = Upstream::echo().await;
        let r = ring(&[&new_key()]);
        let start = || {
            let backend = if redis_backend {
                Backend::Redis(&url)
            } else {
                Backend::Memcached(&servers)
            };
            replica_builder(&ks, &up, backend, Strategy::Encrypt)
                .extra_toml(&format!(
                    "[session]\nenabled = true\nkeys_file = {:?}\nlogin_attempts_per_user = 3\n",
                    r.path.display().to_string()
                ))
                .start()
        };
        let (a, b) = (start().await, start().await);
        let (user, password) = throwaway_user(&ks).await;
        let wrong = json!({"username": user, "password": "wrong-password"});
        let right = json!({"username": user, "password": password});
        // A successful login on B resets what A counted.
        assert_eq!(login(&a, wrong.clone()).await.status(), 401);
        assert_eq!(login(&a, wrong.clone()).await.status(), 401);
        assert_eq!(login(&b, right.clone()).await.status(), 200);
        // 3 failures spread over A and B reach the limit of 3 for both.
        assert_eq!(login(&a, wrong.clone()).await.status(), 401);
        assert_eq!(login(&b, wrong.clone()).await.status(), 401);
        assert_eq!(login(&a, wrong.clone()).await.status(), 401);
        for sg in [&b, &a] {
            let resp = login(sg, right.clone()).await;
            assert_eq!(resp.status(), 429, "the 4th attempt, on any replica");
            assert!(resp.headers().contains_key("retry-after"));
        }
        // The store gone: each replica counts alone again, and logs in.
        if redis_backend {
            redis.0.kill();
        } else {
            memcached.0.kill();
        }
        let (other, other_password) = throwaway_user(&ks).await;
        let resp = login(&b, json!({"username": other, "password": other_password})).await;
        assert_eq!(resp.status(), 200);
        for _ in 0..3 {
            let resp = login(&b, json!({"username": other, "password": "wrong"})).await;
            assert_eq!(resp.status(), 401);
        }
        let resp = login(&b, json!({"username": other, "password": "wrong"})).await;
        assert_eq!(resp.status(), 429, "per-replica throttling still holds");
    }
}

#[tokio::test]
async fn login_is_throttled_per_user_and_per_address() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(
        &ks,
        &up,
        &r,
        "login_attempts_per_user = 3\nlogin_failures_per_address = 6\nlogin_throttle_window = 120",
    )
    .await;
    let (t1, t1_password) = throwaway_user(&ks).await;
    let (t2, t2_password) = throwaway_user(&ks).await;
    let wrong = |user: &str| json!({"username": user, "password": "wrong-password"});
    for _ in 0..3 {
        assert_eq!(login(&sg, wrong(&t1)).await.status(), 401);
    }
    // The 4th attempt is refused without asking Keystone, even with the right password.
    let resp = login(&sg, json!({"username": t1, "password": t1_password})).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    assert!(resp.headers().get("set-cookie").is_none());
    assert_eq!(body(resp).await["error"]["code"], 429);
    // Usernames differing in case share the count.
    assert_eq!(login(&sg, wrong(&t1.to_uppercase())).await.status(), 429);

    // A successful login resets its user's count.
    for _ in 0..2 {
        assert_eq!(login(&sg, wrong(&t2)).await.status(), 401);
    }
    let t2_login = json!({"username": t2, "password": t2_password});
    assert_eq!(login(&sg, t2_login.clone()).await.status(), 200);
    assert_eq!(login(&sg, wrong(&t2)).await.status(), 401);
    // The address has 3 + 2 + 1 = 6 failures: every username is now throttled from it.
    let resp = login(&sg, t2_login).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(login(&sg, wrong("someone-else")).await.status(), 429);
    let metrics = client()
        .get(sg.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("stonegate_session_events_total{event=\"login_throttled\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn keystone_down_at_login_is_503_and_sets_no_cookie() {
    let fake = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = Stonegate::builder()
        .keystone(&fake)
        .upstream(&up)
        .extra_toml(&format!(
            "[session]\nenabled = true\nkeys_file = {:?}",
            r.path.display().to_string()
        ))
        .start()
        .await;
    fake.set_auth_fault(Some(500));
    let resp = login(&sg, json!({"username": "demo", "password": "p"})).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(resp.headers().get("set-cookie").is_none());
    assert_eq!(body(resp).await["error"]["code"], 503);
}

#[tokio::test]
async fn python_requests_session_client_flow() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(&ks, &up, &r, "").await;
    let script = crate::harness::repo_path("tests/product/session_client.py");
    let out = tokio::process::Command::new(crate::harness::venv_python())
        .arg(&script)
        .arg(sg.url(""))
        .env("DEMO_PASSWORD", ks.password("demo"))
        .env("DEMO_USER_ID", ks.user_id("demo"))
        .env("NO_PROXY", "*")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("session flow ok"), "{stdout}");
    // The upstream saw the client's write with the identity.
    let posts = up.hits();
    assert!(posts >= 2, "{posts}");
}

#[tokio::test]
async fn key_rotation_by_sighup_keeps_sessions_until_the_old_key_is_removed() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let (k1, k2) = (new_key(), new_key());
    let r = ring(&[&k1]);
    let sg = start(&ks, &up, &r, "").await;
    let old = logged_in(&sg, &ks).await;
    let only_k2 = SessionKeys::parse(&k2).unwrap();

    // Step 1: a new sealing key in front, the old one kept; reload.
    std::fs::write(&r.path, format!("{k2}\n{k1}\n")).unwrap();
    sg.signal("HUP");
    let mut new = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let s = logged_in(&sg, &ks).await;
        if seal::open(&only_k2, "sessionid", &s.session_value).is_ok() {
            new = Some(s);
            break;
        }
    }
    let new = new.expect("after SIGHUP, new sessions are sealed with the new key");
    assert_eq!(sg.get("/x", &[("cookie", &old.cookie)]).await.status(), 200);
    assert_eq!(sg.get("/x", &[("cookie", &new.cookie)]).await.status(), 200);

    // Step 2: the old key removed; reload. Old sessions end, new ones live on.
    std::fs::write(&r.path, format!("{k2}\n")).unwrap();
    sg.signal("HUP");
    let mut status = 0;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = sg
            .get("/x", &[("cookie", &old.cookie)])
            .await
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
    }
    assert_eq!(status, 401, "a session sealed with a removed key is over");
    assert_eq!(sg.get("/x", &[("cookie", &new.cookie)]).await.status(), 200);
}

#[tokio::test]
async fn curl_cookie_jar_flow() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(&ks, &up, &r, "").await;
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("cookies.txt");
    let jar = jar.to_str().unwrap();
    let curl = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "--noproxy",
                "*",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(&args)
            .output()
            .await
            .expect("curl is installed (scripts/prereqs.sh)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let credentials = json!({"username": "demo", "password": ks.password("demo")}).to_string();
    let code = curl(vec![
        "-c".into(),
        jar.into(),
        "-H".into(),
        "content-type: application/json".into(),
        "-d".into(),
        credentials,
        sg.url(LOGIN),
    ])
    .await;
    assert_eq!(code, "200");
    // The jar holds the session cookie marked HttpOnly, and the CSRF cookie.
    let text = std::fs::read_to_string(jar).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("#HttpOnly_") && l.contains("\tsessionid\t")),
        "{text}"
    );
    let csrf = text
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("\tcsrftoken\t"))
        .and_then(|l| l.split('\t').nth(6))
        .unwrap_or_else(|| panic!("no csrftoken in the jar: {text}"))
        .to_owned();
    let code = curl(vec!["-b".into(), jar.into(), sg.url("/servers")]).await;
    assert_eq!(code, "200");
    assert_eq!(up.last().header("x-user-id"), Some(ks.user_id("demo")));
    let code = curl(vec![
        "-b".into(),
        jar.into(),
        "-X".into(),
        "POST".into(),
        sg.url("/servers"),
    ])
    .await;
    assert_eq!(code, "403");
    let code = curl(vec![
        "-b".into(),
        jar.into(),
        "-X".into(),
        "POST".into(),
        "-H".into(),
        format!("X-CSRFToken: {csrf}"),
        sg.url("/servers"),
    ])
    .await;
    assert_eq!(code, "200");
    let code = curl(vec![
        "-b".into(),
        jar.into(),
        "-c".into(),
        jar.into(),
        "-X".into(),
        "POST".into(),
        "-H".into(),
        format!("X-CSRFToken: {csrf}"),
        sg.url(LOGOUT),
    ])
    .await;
    assert_eq!(code, "200");
    // curl drops the CSRF cookie. (curl 7.88 keeps an HttpOnly cookie it read
    // from a jar file despite the Max-Age=0 that clears it; within one curl
    // process it is dropped too. Either way the stale cookie is refused.)
    let text = std::fs::read_to_string(jar).unwrap();
    assert!(!text.contains("\tcsrftoken\t"), "{text}");
    let code = curl(vec!["-b".into(), jar.into(), sg.url("/servers")]).await;
    assert_eq!(code, "401");
}

/// Reads need no CSRF token: GET, and also HEAD, OPTIONS and TRACE (Django's
/// safe methods) ride on the cookie alone; every other method without the
/// header gets 403 and is not forwarded.
#[tokio::test]
async fn head_options_and_trace_are_exempt_from_csrf() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(&ks, &up, &r, "").await;
    let s = logged_in(&sg, &ks).await;
    for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
        let hits = up.hits();
        let resp = client()
            .request(method.parse().unwrap(), sg.url("/servers"))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method} without CSRF");
        assert_eq!(up.hits(), hits + 1);
        let seen = up.last();
        assert_eq!(seen.method.as_str(), method);
        assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
    }
    for method in ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"] {
        let hits = up.hits();
        let resp = client()
            .request(method.parse().unwrap(), sg.url("/servers"))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{method} without CSRF");
        assert_eq!(up.hits(), hits, "{method} was forwarded");
    }
}

/// `cookie_secure = "auto"` (the default): `Secure` on both cookies when the
/// login came over TLS, not over plain HTTP.
#[tokio::test]
async fn cookie_secure_auto_follows_the_connection() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::tls::self_signed(dir.path());
    let tls = start(
        &ks,
        &up,
        &r,
        &format!("cookie_secure = \"auto\"\n[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"),
    )
    .await;
    let resp = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("https://{}{LOGIN}", tls.listen))
        .json(&demo_login(&ks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let c = set_cookies(&resp);
    for name in ["sessionid", "csrftoken"] {
        assert!(
            c[name].attrs.contains_key("secure"),
            "{name} over TLS: {:?}",
            c[name]
        );
    }
    let plain = start(&ks, &up, &r, "cookie_secure = \"auto\"").await;
    let resp = login(&plain, demo_login(&ks)).await;
    assert_eq!(resp.status(), 200);
    let c = set_cookies(&resp);
    for name in ["sessionid", "csrftoken"] {
        assert!(
            !c[name].attrs.contains_key("secure"),
            "{name} over plain HTTP"
        );
    }
}

/// A login body is read up to 16 KiB: 16 KiB passes on to the credential
/// check, one byte more is refused (413) before Keystone is asked.
#[tokio::test]
async fn a_login_body_over_16_kib_is_refused_before_keystone() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = start(&ks, &up, &r, "").await;
    let body_of = |len: usize| {
        let mut b = serde_json::to_string(&demo_login(&ks)).unwrap();
        b.pop();
        b.push_str(",\"pad\":\"");
        let pad = len - b.len() - 2;
        b.push_str(&"x".repeat(pad));
        b.push_str("\"}");
        assert_eq!(b.len(), len);
        b
    };
    let post = |body: String| {
        client()
            .post(sg.url(LOGIN))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let auths = crate::local::metric(
        &sg,
        "stonegate_keystone_requests_total",
        &["operation=\"login\""],
    )
    .await;
    let resp = post(body_of(16 * 1024)).await.unwrap();
    assert_eq!(resp.status(), 200, "16 KiB exactly is read");
    let after_ok = crate::local::metric(
        &sg,
        "stonegate_keystone_requests_total",
        &["operation=\"login\""],
    )
    .await;
    assert!(after_ok > auths, "the 16 KiB login reached Keystone");
    let resp = post(body_of(16 * 1024 + 1)).await.unwrap();
    assert_eq!(resp.status(), 413, "one byte over");
    assert!(resp.headers().get("set-cookie").is_none());
    let b = body(resp).await;
    assert_eq!(b["error"]["code"], 413);
    assert_eq!(
        crate::local::metric(
            &sg,
            "stonegate_keystone_requests_total",
            &["operation=\"login\""]
        )
        .await,
        after_ok,
        "Keystone was asked"
    );
    assert_eq!(up.hits(), 0);
}

/// Logout when Keystone cannot revoke the token (it is down): 503, the
/// cookies are not cleared, and the session still works from the cache, so
/// the user can log out again once Keystone is back.
#[tokio::test]
async fn logout_is_503_and_keeps_the_session_when_keystone_cannot_revoke() {
    let shared = Keystone::from_env();
    let mut private = crate::harness::private_keystone::PrivateKeystone::start(&shared, 3).await;
    let ks = private.keystone.with_auth_url(&private.keystone.auth_url);
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("http_request_max_retries", 0)
        .extra_toml(&format!(
            "[session]\nenabled = true\nkeys_file = {:?}\n",
            r.path.display().to_string()
        ))
        .start()
        .await;
    let s = logged_in(&sg, &ks).await;
    assert_eq!(
        sg.get("/servers", &[("cookie", &s.cookie)]).await.status(),
        200
    );
    private.stop();
    let resp = client()
        .post(sg.url(LOGOUT))
        .header("cookie", &s.cookie)
        .header("x-csrftoken", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "cookies cleared although the token lives"
    );
    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    assert_eq!(body(resp).await["error"]["code"], 503);
    let resp = sg.get("/servers", &[("cookie", &s.cookie)]).await;
    assert_eq!(resp.status(), 200, "the session stays (cached)");
}
