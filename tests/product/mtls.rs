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

/// Elliptic-curve keys (P-256), unencrypted.
const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// A self-signed CA `name`.pem / `name`.key.
fn ca(dir: &Path, name: &str, subject: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut ca = vec!["req", "-x509"];
    ca.extend(EC);
    ca.extend([
        "-keyout", &key, "-out", &pem, "-days", "2", "-subj", subject,
    ]);
    openssl(dir, &ca);
}

/// `name`.pem / `name`.key signed by the CA `ca` (a server certificate for
/// 127.0.0.1 with `server`).
fn leaf(dir: &Path, ca: &str, name: &str, subject: &str, server: bool) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    let mut req = vec!["req"];
    req.extend(EC);
    req.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
    openssl(dir, &req);
    let mut sign = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &pem,
        "-days",
        "2",
    ];
    // X.509 v3 (webpki refuses v1 certificates): a server certificate for
    // 127.0.0.1, or a client one.
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        if server {
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        } else {
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
        },
    )
    .unwrap();
    sign.extend(["-extfile", &ext]);
    openssl(dir, &sign);
}

/// A CA, a server certificate for 127.0.0.1 and two client certificates
/// of the same subject (`CN=demo, DC=Default`: the mapping's user) with
/// different keys.
fn certificates(dir: &Path) {
    ca(dir, "ca", "/CN=stonegate test CA");
    leaf(dir, "ca", "server", "/CN=127.0.0.1", true);
    for name in ["client", "other"] {
        leaf(dir, "ca", name, "/CN=demo/O=stonegate/DC=Default", false);
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

/// A private Keystone issuing certificate-bound tokens (Fernet, or JWS
/// with `jws`) through nginx terminating mTLS in front of it, for the
/// certificates [`certificates`] made in `dir`.
struct BoundKeystone {
    private: PrivateKeystone,
    nginx: Nginx,
}

impl BoundKeystone {
    async fn start(shared: &Keystone, dir: &Path, jws: bool) -> Self {
        let uwsgi = crate::harness::free_addr();
        let conf = "[oauth2]\noauth2_authn_methods = tls_client_auth\n";
        let private = if jws {
            PrivateKeystone::start_jws_with(shared, conf, Some(uwsgi)).await
        } else {
            PrivateKeystone::start_with(shared, 3, conf, Some(uwsgi)).await
        };
        prepare(&private.keystone).await;
        let nginx = Nginx::mtls_keystone(
            uwsgi,
            &dir.join("server.pem"),
            &dir.join("server.key"),
            &dir.join("ca.pem"),
        )
        .await;
        Self { private, nginx }
    }

    /// A token of demo bound to the certificate `cert`.
    fn token(&self, dir: &Path, cert: &str) -> String {
        let ks = &self.private.keystone;
        bound_token(dir, &self.nginx, &ks.user_id("demo"), cert)
    }
}

/// One private Keystone for both ways the certificate reaches stonegate:
/// an ingress's header (and gRPC `source.certificate`), then stonegate's
/// own mTLS listener.
#[tokio::test]
async fn a_certificate_bound_token_is_accepted_only_with_its_certificate() {
    let shared = Keystone::from_env();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let bound = BoundKeystone::start(&shared, d, false).await;
    through_an_ingress(&bound, d).await;
    on_stonegates_mtls_listener(&bound, d).await;
}

/// The certificate from a trusted ingress's header, and from Envoy's
/// `source.certificate`.
async fn through_an_ingress(bound: &BoundKeystone, d: &Path) {
    let ks = &bound.private.keystone;
    let token = bound.token(d, "client");
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

// ------------------------------------------- stonegate's own mTLS listener

/// `[tls]` serving `server.pem`, verifying client certificates against
/// `ca_file` (`client_auth` as given, or the default).
fn listener_tls(dir: &Path, ca_file: &str, client_auth: Option<&str>) -> String {
    let file = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    let auth = client_auth.map_or(String::new(), |a| format!("client_auth = {a:?}\n"));
    format!(
        "[tls]\ncert_file = {}\nkey_file = {}\nclient_ca_file = {}\n{auth}",
        file("server.pem"),
        file("server.key"),
        file(ca_file)
    )
}

/// An HTTPS client trusting `ca.pem`, presenting the certificate `cert`
/// (`cert`.pem + `cert`.key) when given. A new client makes a new
/// connection, so a new handshake.
fn https(dir: &Path, cert: Option<&str>) -> reqwest::Client {
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    if let Some(name) = cert {
        let mut pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// `GET url` with `headers` over `client`; `Err` when the handshake (or
/// the connection) was refused.
async fn get(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<reqwest::Response, reqwest::Error> {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await
}

/// A bound token presented to stonegate's own TLS listener (`[tls]
/// client_ca_file`): the certificate of the connection is the one the
/// token must be bound to — online, and with `[fernet]` local validation
/// enriched from an ordinary token of the same user and project.
async fn on_stonegates_mtls_listener(bound: &BoundKeystone, d: &Path) {
    let ks = &bound.private.keystone;
    let token = bound.token(d, "client");
    let expected = expected_user_headers(&ks.validate(&token).await);
    let bearer = format!("Bearer {token}");
    let ordinary = ks.demo_token().await;
    let forged = escaped(&std::fs::read_to_string(d.join("client.pem")).unwrap());
    let other_header = escaped(&std::fs::read_to_string(d.join("other.pem")).unwrap());

    let up = Upstream::echo().await;
    // The certificate header is believed from 192.0.2.1 only: the test's
    // client (127.0.0.1) is not a trusted proxy.
    let oauth2 = "[oauth2]\nbearer = true\nclient_certificate_header = \"ssl-client-cert\"\n\
                  trusted_proxies = [\"192.0.2.1\"]\n\
                  [[forward_auth]]\nflavor = \"traefik\"\npath = \"/_stonegate/traefik\"\n";
    let online = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .extra_toml(&format!(
            "{}{oauth2}",
            listener_tls(d, "ca.pem", Some("optional"))
        ))
        .start()
        .await;
    let repo = bound.private.key_repository.display().to_string();
    let local = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .extra_toml(&format!(
            "{}{oauth2}{}",
            listener_tls(d, "ca.pem", Some("optional")),
            crate::local::local_toml(&repo, "")
        ))
        .start()
        .await;
    let (client, other, anonymous) = (
        https(d, Some("client")),
        https(d, Some("other")),
        https(d, None),
    );
    for (name, sg) in [("online", &online), ("[fernet]", &local)] {
        let url = format!("https://{}/v2.1/servers", sg.listen);
        // The enrichment entry a bound token borrows names and roles from:
        // learnt from an ordinary token (no binding) of demo on its project.
        let r = get(&anonymous, &url, &[("X-Auth-Token", &ordinary)]).await;
        assert_eq!(
            r.unwrap().status(),
            200,
            "{name}: an ordinary token, no certificate (optional)"
        );
        let hits = up.hits();
        // The attacker's requests: another certificate of the same CA and
        // subject; no certificate; a forged certificate header naming the
        // right certificate, from a client that is no trusted proxy; the
        // forward-auth endpoint on the listener, asked by a connection
        // holding the right certificate (an ingress's own certificate is
        // not its client's).
        let traefik = format!("https://{}/_stonegate/traefik", sg.listen);
        for (what, c, u, headers) in [
            (
                "another certificate",
                &other,
                &url,
                vec![("Authorization", bearer.as_str())],
            ),
            (
                "no certificate",
                &anonymous,
                &url,
                vec![("Authorization", bearer.as_str())],
            ),
            (
                "a forged header",
                &other,
                &url,
                vec![
                    ("X-Auth-Token", token.as_str()),
                    ("ssl-client-cert", forged.as_str()),
                ],
            ),
            (
                "a forged header, no certificate",
                &anonymous,
                &url,
                vec![
                    ("X-Auth-Token", token.as_str()),
                    ("ssl-client-cert", forged.as_str()),
                ],
            ),
            (
                "forward-auth",
                &client,
                &traefik,
                vec![
                    ("Authorization", bearer.as_str()),
                    ("X-Forwarded-Method", "GET"),
                    ("X-Forwarded-Uri", "/v2.1/servers"),
                ],
            ),
        ] {
            let r = get(c, u, &headers).await.unwrap();
            assert_eq!(r.status(), 401, "{name}: {what}");
        }
        assert_eq!(
            up.hits(),
            hits,
            "{name}: a bound token without its certificate was forwarded"
        );
        // Its own certificate: the identity, from either header; a
        // client's certificate header is removed, not forwarded.
        for headers in [
            vec![("Authorization", bearer.as_str())],
            vec![
                ("X-Auth-Token", token.as_str()),
                ("ssl-client-cert", other_header.as_str()),
            ],
        ] {
            let r = get(&client, &url, &headers).await.unwrap();
            assert_eq!(r.status(), 200, "{name}: with its certificate");
            let seen = up.last();
            assert_headers(&seen.headers, &expected);
            assert_eq!(seen.header("ssl-client-cert"), None, "{name}");
        }
        // Forward-auth still answers ordinary tokens on the listener.
        let r = get(
            &client,
            &traefik,
            &[
                ("X-Auth-Token", ordinary.as_str()),
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/v2.1/servers"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "{name}: forward-auth, an ordinary token");
        assert!(!sg.log().contains(&token), "{name}: the token was logged");
    }
    // The bound token was decided locally: the one online validation of
    // the local stonegate is the ordinary token's.
    assert_eq!(
        crate::local::metric(
            &local,
            "stonegate_local_decisions_total",
            &["outcome=\"online\""]
        )
        .await,
        1.0
    );
    assert!(
        crate::local::metric(
            &local,
            "stonegate_local_decisions_total",
            &["outcome=\"valid\""]
        )
        .await
            >= 1.0
    );

    // `client_auth` unset: a certificate is required; a handshake without
    // one is refused before any request is read.
    let required = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .extra_toml(&listener_tls(d, "ca.pem", None))
        .start()
        .await;
    let url = format!("https://{}/v2.1/servers", required.listen);
    let hits = up.hits();
    let refused = get(&anonymous, &url, &[("X-Auth-Token", &ordinary)]).await;
    assert!(
        refused.is_err(),
        "served without a client certificate: {refused:?}"
    );
    assert_eq!(up.hits(), hits);
    let r = get(&client, &url, &[("X-Auth-Token", &token)])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_headers(&up.last().headers, &expected);
    let r = get(&other, &url, &[("X-Auth-Token", &token)])
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The same with `[jws]` local validation (public keys only) of a real
/// Keystone issuing JWS tokens bound to the certificate
/// (`openstack_thumbprint`).
#[tokio::test]
async fn stonegates_mtls_listener_checks_bound_jws_tokens_locally() {
    let shared = Keystone::from_env();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let bound = BoundKeystone::start(&shared, d, true).await;
    let ks = &bound.private.keystone;
    let token = bound.token(d, "client");
    assert_eq!(token.matches('.').count(), 2, "not a JWS token");
    let expected = expected_user_headers(&ks.validate(&token).await);
    let ordinary = ks.demo_token().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .extra_toml(&format!(
            "{}[jws]\npublic_key_repository = {:?}\n",
            listener_tls(d, "ca.pem", Some("optional")),
            bound.private.public_key_repository.display().to_string()
        ))
        .start()
        .await;
    let url = format!("https://{}/v2.1/servers", sg.listen);
    let (client, other, anonymous) = (
        https(d, Some("client")),
        https(d, Some("other")),
        https(d, None),
    );
    let r = get(&anonymous, &url, &[("X-Auth-Token", &ordinary)]).await;
    assert_eq!(
        r.unwrap().status(),
        200,
        "an ordinary JWS token, no certificate"
    );
    let hits = up.hits();
    for (what, c) in [
        ("another certificate", &other),
        ("no certificate", &anonymous),
    ] {
        let r = get(c, &url, &[("X-Auth-Token", &token)]).await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
    }
    assert_eq!(
        up.hits(),
        hits,
        "a bound token without its certificate was forwarded"
    );
    let r = get(&client, &url, &[("X-Auth-Token", &token)])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_headers(&up.last().headers, &expected);
    assert_eq!(
        crate::local::metric(
            &sg,
            "stonegate_local_decisions_total",
            &["outcome=\"online\""]
        )
        .await,
        1.0,
        "the bound token was decided locally"
    );
}

/// The client CA bundle is reloaded like the listener's certificate: a
/// renewed file within the watcher's 5 s, at once on SIGHUP; a bad file
/// keeps the last good bundle (logged).
#[tokio::test]
async fn the_client_ca_bundle_is_reloaded_and_a_bad_one_keeps_the_last_good() {
    let ks = Keystone::from_env();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    ca(d, "ca2", "/CN=stonegate second test CA");
    leaf(d, "ca2", "stranger", "/CN=stranger", false);
    let bundle = d.join("bundle.pem");
    let replace = |from: &str| {
        let tmp = d.join("bundle.pem.new");
        std::fs::write(
            &tmp,
            std::fs::read(d.join(from)).unwrap_or_else(|_| from.into()),
        )
        .unwrap();
        std::fs::rename(&tmp, &bundle).unwrap();
    };
    replace("ca.pem");
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&listener_tls(d, "bundle.pem", None))
        .start()
        .await;
    let token = ks.demo_token().await;
    let url = format!("https://{}/", sg.listen);
    // A new client per attempt: a new handshake.
    let status = |cert: &'static str| {
        let url = url.clone();
        let token = token.clone();
        async move {
            get(&https(d, Some(cert)), &url, &[("X-Auth-Token", &token)])
                .await
                .map(|r| r.status().as_u16())
                .ok()
        }
    };
    assert_eq!(status("client").await, Some(200));
    assert_eq!(
        status("stranger").await,
        None,
        "a certificate of another CA"
    );

    // Renewed: the second CA replaces the first.
    replace("ca2.pem");
    let renewed = std::fs::metadata(&bundle).unwrap().modified().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while status("stranger").await != Some(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "not reloaded: {}",
            sg.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status("client").await, None, "the retired CA still trusted");
    assert!(sg
        .log_with("client CA bundle reloaded")
        .await
        .contains("client CA bundle reloaded"));

    // A bad file: logged, the last good bundle kept.
    replace("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    let log = sg.log_with("client CA bundle reload failed").await;
    assert!(log.contains("client CA bundle reload failed"), "{log}");
    assert_eq!(status("stranger").await, Some(200));

    // SIGHUP reads the file whatever its time: given the time of the last
    // good bundle, the watcher sees no change, only SIGHUP reloads it.
    replace("ca.pem");
    std::fs::File::options()
        .write(true)
        .open(&bundle)
        .unwrap()
        .set_modified(renewed)
        .unwrap();
    assert_eq!(status("client").await, None, "reloaded without SIGHUP");
    sg.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while status("client").await != Some(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload: {}",
            sg.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status("stranger").await, None);
}
