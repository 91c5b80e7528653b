//! Requests without a valid token are answered 401 by stonegate itself, in
//! Keystone's format, and never reach the upstream.

use std::time::{Duration, SystemTime};

use crate::harness::{Keystone, Stonegate, Upstream};
use serde_json::Value;

/// Asserts a keystonemiddleware-style 401 naming `auth_url` in WWW-Authenticate.
async fn assert_unauthorized(resp: reqwest::Response, auth_url: &str) {
    assert_eq!(resp.status(), 401);
    let www = resp
        .headers()
        .get("www-authenticate")
        .expect("WWW-Authenticate on a 401")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(www, format!("Keystone uri=\"{auth_url}\""));
    let ctype = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        ctype.starts_with("application/json"),
        "content-type {ctype}"
    );
    let body: Value = resp.json().await.expect("401 body is JSON");
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["title"], "Unauthorized");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn missing_token_is_rejected_with_keystone_www_authenticate_and_never_forwarded() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    assert_unauthorized(sg.get("/v2.1/servers", &[]).await, &ks.auth_url).await;
    let post = crate::harness::client()
        .post(sg.url("/v2.1/servers"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_unauthorized(post, &ks.auth_url).await;
    assert_eq!(up.hits(), 0, "the upstream was called without a token");
}

#[tokio::test]
async fn garbage_tokens_are_rejected() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let real = ks.demo_token().await;
    let mut tampered = real.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let truncated = real[..real.len() - 10].to_owned();
    for token in [
        "garbage",
        "gAAAAABnot-a-fernet-token",
        "",
        truncated.as_str(),
        tampered.as_str(),
    ] {
        let resp = sg.get("/", &[("X-Auth-Token", token)]).await;
        assert_unauthorized(resp, &ks.auth_url).await;
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn revoked_token_is_rejected_once_its_cache_entry_is_gone() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("token_cache_time", 1)
        .start()
        .await;
    let token = ks
        .token("revokee", crate::harness::Scope::Project("demo"))
        .await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);

    ks.revoke(&token).await;
    assert_eq!(
        ks.validate_raw(&token, false).await.0,
        404,
        "Keystone itself says revoked"
    );

    // A stonegate that never saw the token asks Keystone: 401.
    let fresh = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    assert_unauthorized(
        fresh.get("/", &[("X-Auth-Token", &token)]).await,
        &ks.auth_url,
    )
    .await;

    // The first one, once its cache entry (token_cache_time = 1 s) is gone: 401.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_unauthorized(sg.get("/", &[("X-Auth-Token", &token)]).await, &ks.auth_url).await;
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn expired_token_is_rejected_even_when_it_was_cached() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("token_cache_time", 300)
        .start()
        .await;
    let (token, expires_at) = ks.short_lived_token(Duration::from_secs(4)).await;
    let resp = sg.get("/", &[("X-Auth-Token", &token)]).await;
    assert_eq!(resp.status(), 200, "valid before its expiry");

    let wait = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + Duration::from_millis(1100);
    tokio::time::sleep(wait).await;
    assert_eq!(
        ks.validate_raw(&token, false).await.0,
        404,
        "Keystone says expired"
    );
    // The cache entry must not outlive the token.
    assert_unauthorized(sg.get("/", &[("X-Auth-Token", &token)]).await, &ks.auth_url).await;
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn upstream_401_gets_www_authenticate_added() {
    let ks = Keystone::from_env();
    let up = Upstream::answering(401).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let token = ks.demo_token().await;
    let resp = sg.get("/", &[("X-Auth-Token", &token)]).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(up.hits(), 1, "the upstream answered this 401");
    let www = resp
        .headers()
        .get("www-authenticate")
        .expect("WWW-Authenticate added");
    assert_eq!(
        www.to_str().unwrap(),
        format!("Keystone uri=\"{}\"", ks.auth_url)
    );
    assert_eq!(
        resp.text().await.unwrap(),
        "upstream says 401 Unauthorized\n",
        "body passed through"
    );
}
