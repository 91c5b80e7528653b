//! SIGHUP: the configuration, the keys and the listener certificate are
//! re-read without dropping connections; a bad configuration is refused and
//! the running one kept.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{FakeKeystone, Stonegate, Upstream};

/// One request on an open connection; the response head (up to the body).
async fn request(s: &mut tokio::net::TcpStream) -> String {
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read until the JSON body (ending in "}}") of the 401 has arrived.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(b"}}") {
            return String::from_utf8_lossy(&buf).into_owned();
        }
    }
}

#[tokio::test]
async fn sighup_reloads_the_configuration_without_dropping_connections() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .start()
        .await;
    let mut conn = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    let before = request(&mut conn).await;
    assert!(
        before.contains(&format!("Keystone uri=\"{}\"", fk.auth_url())),
        "{before}"
    );

    // A valid change: applied on SIGHUP, on the connection that was open.
    let text = std::fs::read_to_string(&sg.config).unwrap();
    let changed = text.replace(
        &format!("www_authenticate_uri = \"{}\"", fk.auth_url()),
        "www_authenticate_uri = \"https://keystone.example.com/v3\"",
    );
    assert_ne!(
        text, changed,
        "the harness config names www_authenticate_uri"
    );
    std::fs::write(&sg.config, &changed).unwrap();
    sg.signal("HUP");
    let mut reloaded = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        reloaded = request(&mut conn).await;
        if reloaded.contains("keystone.example.com") {
            break;
        }
    }
    assert!(
        reloaded.contains("Keystone uri=\"https://keystone.example.com/v3\""),
        "{reloaded}"
    );

    // A bad change: refused with the key named, the running config kept.
    std::fs::write(&sg.config, format!("{changed}\nbogus_key = 1\n")).unwrap();
    sg.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = request(&mut conn).await;
    assert!(kept.contains("keystone.example.com"), "{kept}");
    let log = sg.log();
    assert!(log.contains("configuration reload failed"), "{log}");
    assert!(log.contains("bogus_key"), "{log}");
    // Still serving valid tokens.
    let ok = sg
        .get("/", &[("X-Auth-Token", &FakeKeystone::valid_token(3))])
        .await;
    assert_eq!(ok.status(), 200);
}

fn make_cert(dir: &std::path::Path, cn: &str) -> (String, String) {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl CLI");
    assert!(out.status.success());
    (cert.display().to_string(), key.display().to_string())
}

/// The CN of the certificate a new TLS connection is served.
fn served_cn(addr: std::net::SocketAddr) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} </dev/null 2>/dev/null | openssl x509 -noout -subject"
        ))
        .output()
        .expect("openssl s_client");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn sighup_reloads_the_listener_certificate() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "first.example");
    let sg = Stonegate::builder()
        .keystone(&fk)
        .upstream(&up)
        .extra_toml(&format!(
            "[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ))
        .start()
        .await;
    let addr = sg.listen;
    let first = tokio::task::spawn_blocking(move || served_cn(addr))
        .await
        .unwrap();
    assert!(first.contains("first.example"), "{first}");
    make_cert(dir.path(), "second.example");
    sg.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = tokio::task::spawn_blocking(move || served_cn(addr))
        .await
        .unwrap();
    assert!(second.contains("second.example"), "{second}");
}
