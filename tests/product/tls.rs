//! The listener over TLS (`[tls]`): rustls with ALPN, so HTTP/2 clients get
//! HTTP/2 and HTTP/1.1 clients HTTP/1.1, with the same authentication.

use crate::harness::{keystone::expected_user_headers, Keystone, Stonegate, Upstream};

/// A self-signed certificate for 127.0.0.1 (openssl CLI), as (cert, key) paths.
pub(crate) fn self_signed(dir: &std::path::Path) -> (String, String) {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl CLI is needed to make a test certificate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test]
async fn tls_listener_negotiates_h2_and_http1_and_authenticates_both() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!(
            "[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ))
        .start()
        .await;
    let token = ks.demo_token().await;
    let url = format!("https://{}/v2.1/servers", sg.listen);
    for (client, version) in [
        (
            reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
            reqwest::Version::HTTP_2,
        ),
        (
            reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .http1_only()
                .build()
                .unwrap(),
            reqwest::Version::HTTP_11,
        ),
    ] {
        let resp = client
            .get(&url)
            .header("X-Auth-Token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), version);
        let seen = up.last();
        crate::harness::keystone::assert_headers(
            &seen.headers,
            &expected_user_headers(&ks.validate(&token).await),
        );
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
        let denied = client.get(&url).send().await.unwrap();
        assert_eq!(denied.status(), 401);
    }
}
