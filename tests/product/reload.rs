//! SIGHUP: the configuration, the keys and the listener certificate are
//! re-read without dropping connections; a bad configuration is refused and
//! the running one kept.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Keystone, Stonegate, Upstream};

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
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let mut conn = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    let before = request(&mut conn).await;
    assert!(
        before.contains(&format!("Keystone uri=\"{}\"", ks.auth_url)),
        "{before}"
    );

    // A valid change: applied on SIGHUP, on the connection that was open.
    let text = std::fs::read_to_string(&sg.config).unwrap();
    let changed = text.replace(
        &format!("www_authenticate_uri = \"{}\"", ks.auth_url),
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
    // The refusal is logged once the reload has been tried: waited for.
    let log = sg.log_with("configuration reload failed").await;
    let kept = request(&mut conn).await;
    assert!(kept.contains("keystone.example.com"), "{kept}");
    assert!(log.contains("configuration reload failed"), "{log}");
    assert!(log.contains("bogus_key"), "{log}");
    // Still serving valid tokens.
    let ok = sg
        .get("/", &[("X-Auth-Token", &ks.demo_token().await)])
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
            "timeout 10 openssl s_client -connect {addr} </dev/null 2>/dev/null | timeout 10 openssl x509 -noout -subject"
        ))
        .output()
        .expect("openssl s_client");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls the served certificate's CN until it holds `want`, at most `limit`.
async fn wait_for_cn(addr: std::net::SocketAddr, want: &str, limit: Duration) -> String {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let cn = tokio::task::spawn_blocking(move || served_cn(addr))
            .await
            .unwrap();
        if cn.contains(want) || std::time::Instant::now() >= deadline {
            return cn;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which TLS listener a certificate test reloads: the sidecar's (`[tls]`) or
/// the kube-apiserver webhook's (`[kubernetes]`).
#[derive(Clone, Copy)]
enum CertListener {
    Sidecar,
    Kubernetes,
}

/// SIGHUP re-reads the sidecar listener's certificate even when its files
/// look unchanged, and the file watcher picks up a renewal without a signal.
#[tokio::test]
async fn sighup_and_the_file_watcher_each_reload_the_listener_certificate() {
    sighup_and_the_file_watcher_each_reload(CertListener::Sidecar).await;
}

/// The same for the webhook's `[kubernetes] cert_file`/`key_file` (README:
/// "re-read when the files change and on SIGHUP").
#[tokio::test]
async fn sighup_and_the_file_watcher_each_reload_the_kubernetes_webhook_certificate() {
    sighup_and_the_file_watcher_each_reload(CertListener::Kubernetes).await;
}

/// SIGHUP re-reads the certificate even when its files look unchanged (the
/// new pair is written with the old modification times, so the 5 s watcher,
/// which compares them, cannot be what picked it up); then a renewal with
/// new times is picked up by the watcher alone, without a signal.
async fn sighup_and_the_file_watcher_each_reload(listener: CertListener) {
    let ks = Keystone::from_env();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "first.example");
    let up = Upstream::echo().await;
    let sg = match listener {
        CertListener::Sidecar => {
            Stonegate::builder()
                .keystone(&ks)
                .upstream(&up)
                .extra_toml(&format!(
                    "[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
                ))
                .start()
                .await
        }
        CertListener::Kubernetes => {
            Stonegate::builder()
                .keystone(&ks)
                .without_upstream()
                .extra_toml(&format!(
                    "[kubernetes]\nlisten = \"127.0.0.1:0\"\ncert_file = {cert:?}\nkey_file = {key:?}\n"
                ))
                .start()
                .await
        }
    };
    let addr = match listener {
        CertListener::Sidecar => sg.listen,
        CertListener::Kubernetes => sg.kubernetes.expect("the webhook listener bound"),
    };
    let first = wait_for_cn(addr, "first.example", Duration::from_secs(10)).await;
    assert!(first.contains("first.example"), "{first}");

    // The same modification times as the pair it replaces.
    let times = |p: &str| std::fs::metadata(p).unwrap().modified().unwrap();
    let (cert_time, key_time) = (times(&cert), times(&key));
    let other = tempfile::tempdir().unwrap();
    let (new_cert, new_key) = make_cert(other.path(), "second.example");
    for (from, to, t) in [(&new_cert, &cert, cert_time), (&new_key, &key, key_time)] {
        std::fs::copy(from, to).unwrap();
        std::fs::File::options()
            .write(true)
            .open(to)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert_eq!(times(to), t);
    }
    // Past one watcher period nothing changes without the signal ...
    let unchanged = wait_for_cn(addr, "second.example", Duration::from_secs(6)).await;
    assert!(
        unchanged.contains("first.example"),
        "reloaded without SIGHUP: {unchanged}"
    );
    // ... and SIGHUP reloads it.
    sg.signal("HUP");
    let second = wait_for_cn(addr, "second.example", Duration::from_secs(10)).await;
    assert!(second.contains("second.example"), "{second}");

    // A renewal written normally: the watcher picks it up within its 5 s.
    make_cert(dir.path(), "third.example");
    let third = wait_for_cn(addr, "third.example", Duration::from_secs(15)).await;
    assert!(third.contains("third.example"), "{third}");
    // One reload by SIGHUP, one by the watcher (log lines land shortly
    // after the fact: waited for).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sg.log().matches("listener certificate reloaded").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", sg.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sg.log().matches("listener certificate reloaded").count(), 2);
}
