//! Certificate-bound tokens (RFC 8705, keystonemiddleware's
//! `oauth2_mtls_token`): a real Keystone (a private copy, `[oauth2]
//! oauth2_authn_methods = tls_client_auth`) behind a real nginx terminating
//! mTLS and passing `SSL_CLIENT_CERT` over uwsgi, as Keystone's docs put it
//! behind Apache, issues a token bound to a client certificate
//! (`POST /v3/OS-OAUTH2/token`, the user mapped from the certificate's
//! subject by the `oauth2_mapping` mapping). stonegate accepts it only with
//! that certificate.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use tonic::Code;

use crate::envoy_grpc::{check, client, denied_response, envoy_check, grpc_service, ok_response};
use crate::harness::{
    keystone::{assert_headers, expected_user_headers},
    nginx::Nginx,
    private_keystone::PrivateKeystone,
    Keystone, Stonegate, Upstream,
};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and two client certificates
/// of the same subject (`CN=demo, DC=Default`: the mapping's user) with
/// different keys.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=stonegate test CA",
    ]);
    openssl(dir, &ca);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for (name, subject, ext) in [
        ("server", "/CN=127.0.0.1", true),
        ("client", "/CN=demo/O=stonegate/DC=Default", false),
        ("other", "/CN=demo/O=stonegate/DC=Default", false),
    ] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
        openssl(dir, &req);
        let mut sign = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
        ];
        if ext {
            sign.extend(["-extfile", "san.ext"]);
        }
        openssl(dir, &sign);
    }
}

/// nginx's `$ssl_client_escaped_cert`: the PEM, URL-encoded.
fn escaped(pem: &str) -> String {
    pem.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The private Keystone set up for `tls_client_auth`: demo gets a default
/// project, and `oauth2_mapping` maps the certificate's CN and DC to the
/// user's name and domain.
async fn prepare(ks: &Keystone) {
    let admin = ks
        .issue(json!({
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": ks.password("admin")}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}
        }))
        .await;
    let c = crate::harness::client();
    let resp = c
        .patch(format!("{}/users/{}", ks.auth_url, ks.user_id("demo")))
        .header("x-auth-token", &admin)
        .json(&json!({"user": {"default_project_id": ks.project_id("demo")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let resp = c
        .put(format!(
            "{}/OS-FEDERATION/mappings/oauth2_mapping",
            ks.auth_url
        ))
        .header("x-auth-token", &admin)
        .json(&json!({"mapping": {"rules": [{
            "local": [{"user": {"name": "{0}", "domain": {"name": "{1}"}}}],
            "remote": [{"type": "SSL_CLIENT_SUBJECT_DN_CN"}, {"type": "SSL_CLIENT_SUBJECT_DN_DC"}]
        }]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// A certificate-bound access token from Keystone's OAuth 2.0 endpoint
/// through nginx, authenticated by `cert` (tls_client_auth).
fn bound_token(dir: &Path, nginx: &Nginx, user_id: &str, cert: &str) -> String {
    let out = Command::new("curl")
        .current_dir(dir)
        .args([
            "-sS",
            "--cacert",
            "ca.pem",
            "--cert",
            &format!("{cert}.pem"),
        ])
        .args(["--key", &format!("{cert}.key"), "-d"])
        .arg(format!("grant_type=client_credentials&client_id={user_id}"))
        .arg(format!("https://{}/v3/OS-OAUTH2/token", nginx.addr))
        .output()
        .expect("curl");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}: {}", String::from_utf8_lossy(&out.stdout), nginx.log()));
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token: {body}"))
        .to_owned()
}

#[tokio::test]
async fn a_certificate_bound_token_is_accepted_only_with_its_certificate() {
    let shared = Keystone::from_env();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let uwsgi = crate::harness::free_addr();
    let private = PrivateKeystone::start_with(
        &shared,
        3,
        "[oauth2]\noauth2_authn_methods = tls_client_auth\n",
        Some(uwsgi),
    )
    .await;
    let ks = &private.keystone;
    prepare(ks).await;
    let nginx = Nginx::mtls_keystone(
        uwsgi,
        &d.join("server.pem"),
        &d.join("server.key"),
        &d.join("ca.pem"),
    )
    .await;
    let token = bound_token(d, &nginx, &ks.user_id("demo"), "client");
    let pem = std::fs::read_to_string(d.join("client.pem")).unwrap();
    let other_pem = std::fs::read_to_string(d.join("other.pem")).unwrap();

    // Keystone bound it to the thumbprint stonegate computes for the
    // certificate (Keystone's own way: SHA-256 of the PEM text).
    let validated = ks.validate(&token).await;
    let bound = validated["oauth2_credential"]["x5t#S256"].as_str().unwrap();
    let ours = stonegate::oauth2::Thumbprint::of_pem(&pem).unwrap();
    assert!(ours.matches(bound), "{ours:?} vs Keystone's {bound}");
    assert_eq!(validated["methods"], json!(["oauth2_credential"]));
    let expected = expected_user_headers(&validated);

    let oauth2 = "[oauth2]\nbearer = true\nclient_certificate_header = \"ssl-client-cert\"\n";
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .extra_toml(&format!(
            "{oauth2}trusted_proxies = [\"127.0.0.1\"]\n\
             [[forward_auth]]\nflavor = \"traefik\"\npath = \"/_stonegate/traefik\"\n"
        ))
        .start()
        .await;
    let bearer = format!("Bearer {token}");
    let cert = escaped(&pem);
    let other = escaped(&other_pem);

    // With its certificate (from the trusted proxy): the identity; the
    // certificate header itself is not forwarded.
    for source in ["Authorization", "X-Auth-Token"] {
        let value = if source == "Authorization" {
            bearer.as_str()
        } else {
            token.as_str()
        };
        let resp = sg
            .get(
                "/v2.1/servers",
                &[(source, value), ("ssl-client-cert", &cert)],
            )
            .await;
        assert_eq!(resp.status(), 200, "{source}");
        let seen = up.last();
        assert_headers(&seen.headers, &expected);
        assert_eq!(seen.header("ssl-client-cert"), None);
    }
    let hits = up.hits();
    // Another certificate of the same subject, or none: 401, not forwarded.
    for (what, headers) in [
        (
            "another certificate",
            vec![
                ("Authorization", bearer.as_str()),
                ("ssl-client-cert", other.as_str()),
            ],
        ),
        ("no certificate", vec![("Authorization", bearer.as_str())]),
        (
            "garbage certificate",
            vec![
                ("Authorization", bearer.as_str()),
                ("ssl-client-cert", "garbage"),
            ],
        ),
    ] {
        let resp = sg.get("/v2.1/servers", &headers).await;
        assert_eq!(resp.status(), 401, "{what}");
    }
    assert_eq!(
        up.hits(),
        hits,
        "a bound token without its certificate was forwarded"
    );
    // Forward-auth over HTTP: the ingress's header.
    let c = crate::harness::client();
    for (cert, status) in [(&cert, 200), (&other, 401)] {
        let resp = c
            .get(sg.url("/_stonegate/traefik"))
            .header("Authorization", &bearer)
            .header("ssl-client-cert", cert.as_str())
            .header("X-Forwarded-Method", "GET")
            .header("X-Forwarded-Uri", "/v2.1/servers")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
    }

    // The header from a peer that is not a trusted proxy is not believed
    // (and not forwarded).
    let untrusted = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .extra_toml(&format!("{oauth2}trusted_proxies = [\"192.0.2.1\"]\n"))
        .start()
        .await;
    let resp = untrusted
        .get(
            "/v2.1/servers",
            &[("Authorization", &bearer), ("ssl-client-cert", &cert)],
        )
        .await;
    assert_eq!(
        resp.status(),
        401,
        "a client's own certificate header believed"
    );

    // gRPC ext_authz: the certificate Envoy verified, `source.certificate`.
    let (_grpc, url) = grpc_service(ks, "[oauth2]\nbearer = true\n").await;
    let mut g = client(&url).await;
    for (pem, ok) in [(Some(&cert), true), (Some(&other), false), (None, false)] {
        let mut req = envoy_check("GET", "/v2.1/servers", &[("authorization", &bearer)]);
        if let Some(pem) = pem {
            let attributes = req.attributes.as_mut().unwrap();
            attributes.source.as_mut().unwrap().certificate = pem.clone();
        }
        let r = check(&mut g, req).await;
        if ok {
            let set = crate::envoy_grpc::set_headers(ok_response(&r));
            assert_headers(&set, &expected);
        } else {
            denied_response(&r, Code::Unauthenticated, 401);
        }
    }
    for log in [sg.log(), untrusted.log()] {
        assert!(!log.contains(&token), "the token was logged");
    }
}
