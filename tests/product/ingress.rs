//! Forward-auth for ingress proxies: a real nginx configured as ingress-nginx
//! configures `auth-url`, and Traefik- and Envoy-style requests against the
//! endpoint, against the real Keystone (the fake one only to make it fail).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{
    keystone::{assert_headers, expected_user_headers},
    nginx::Nginx,
    FakeKeystone, Fault, Keystone, Stonegate, Upstream,
};

const NGINX_ENDPOINT: &str = "[[forward_auth]]\nflavor = \"nginx\"\npath = \"/_stonegate/auth\"\n";
const PUBLIC_HEALTHZ: &str = "[routes]\npublic = [{ method = \"GET\", path = \"/healthz\" }]\n";

async fn auth_service(ks: &Keystone, extra: &str) -> Stonegate {
    Stonegate::builder()
        .keystone(ks)
        .without_upstream()
        .option("service_type", "compute")
        .extra_toml(extra)
        .start()
        .await
}

async fn nginx_in_front(sg: &Stonegate, up: &Upstream) -> Nginx {
    Nginx::start(
        sg.listen,
        "/_stonegate/auth",
        up.url().trim_start_matches("http://"),
    )
    .await
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = crate::harness::client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn nginx_auth_request_copies_the_identity_of_a_valid_token_upstream() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = auth_service(&ks, NGINX_ENDPOINT).await;
    let nginx = nginx_in_front(&sg, &up).await;
    let token = ks.demo_token().await;
    let resp = get(&nginx.url("/v2.1/servers"), &[("X-Auth-Token", &token)]).await;
    assert_eq!(resp.status(), 200, "{}", nginx.log());
    let seen = up.last();
    assert_headers(
        &seen.headers,
        &expected_user_headers(&ks.validate(&token).await),
    );
    assert_eq!(seen.uri.path(), "/v2.1/servers");
}

#[tokio::test]
async fn nginx_answers_401_with_www_authenticate_and_never_calls_the_upstream() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = auth_service(&ks, NGINX_ENDPOINT).await;
    let nginx = nginx_in_front(&sg, &up).await;
    for headers in [vec![], vec![("X-Auth-Token", "not-a-token")]] {
        let resp = get(&nginx.url("/v2.1/servers"), &headers).await;
        assert_eq!(resp.status(), 401);
        let www = resp
            .headers()
            .get("www-authenticate")
            .expect("WWW-Authenticate");
        assert!(
            www.to_str().unwrap().starts_with("Keystone uri=\""),
            "{www:?}"
        );
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_upstream_through_nginx() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = auth_service(&ks, &format!("{NGINX_ENDPOINT}{PUBLIC_HEALTHZ}")).await;
    let nginx = nginx_in_front(&sg, &up).await;
    let token = ks.demo_token().await;
    // Forged values no real header has: none may appear anywhere upstream.
    let forged = [
        ("X-User-Id", "forged-user"),
        ("x-roles", "forged-admin"),
        ("X-Service-Roles", "forged-service"),
        ("x-PROJECT-id", "forged-project"),
        ("X_User_Id", "forged-underscore"),
        ("X-Tenant", "forged-tenant"),
        ("X-Service-User-Id", "forged-service-user"),
    ];
    // Forged values that look real: these names must not reach the upstream at all.
    let forged_by_name = [
        ("X-Service-Identity-Status", "Confirmed"),
        ("OpenStack-System-Scope", "all"),
    ];
    // With a valid token, and on a public route without one.
    for (path, with_token) in [("/v2.1/servers", true), ("/healthz", false)] {
        let mut headers: Vec<(&str, &str)> =
            forged.iter().chain(&forged_by_name).copied().collect();
        headers.push(("X-Is-Admin-Project", "True"));
        if with_token {
            headers.push(("X-Auth-Token", &token));
        }
        let resp = get(&nginx.url(path), &headers).await;
        assert_eq!(resp.status(), 200, "{path}: {}", nginx.log());
        let seen = up.last();
        for (name, value) in forged {
            for (k, v) in seen.headers.iter() {
                assert!(
                    v.to_str().unwrap_or_default() != value,
                    "{path}: forged {name} reached the upstream as {k}"
                );
            }
        }
        for (name, _) in forged_by_name {
            assert!(
                seen.header(name).is_none(),
                "{path}: forged {name} reached the upstream"
            );
        }
        if with_token {
            assert_headers(
                &seen.headers,
                &expected_user_headers(&ks.validate(&token).await),
            );
        } else {
            for name in [
                "x-user-id",
                "x-roles",
                "x-identity-status",
                "x-is-admin-project",
            ] {
                assert!(
                    seen.header(name).is_none(),
                    "{path}: {name} without a token"
                );
            }
        }
    }
}

#[tokio::test]
async fn public_routes_pass_but_dot_segments_are_refused() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = auth_service(&ks, &format!("{NGINX_ENDPOINT}{PUBLIC_HEALTHZ}")).await;
    let nginx = nginx_in_front(&sg, &up).await;
    assert_eq!(get(&nginx.url("/healthz"), &[]).await.status(), 200);
    // A raw request line: HTTP clients would normalise the path themselves.
    let mut s = tokio::net::TcpStream::connect(nginx.addr).await.unwrap();
    s.write_all(b"GET /healthz/../secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    // An ambiguous original path is refused; 403 is what nginx passes on.
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert_eq!(up.hits(), 1, "only /healthz reached the upstream");
}

#[tokio::test]
async fn keystone_down_is_never_forwarded_nginx_shows_it_as_500() {
    let fk = FakeKeystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .without_upstream()
        .extra_toml(NGINX_ENDPOINT)
        .start()
        .await;
    let nginx = nginx_in_front(&sg, &up).await;
    fk.set_fault(Fault::Status(500));
    let resp = get(
        &nginx.url("/v2.1/servers"),
        &[("X-Auth-Token", &FakeKeystone::valid_token(1))],
    )
    .await;
    // stonegate answers 503; nginx auth_request turns anything but
    // 2xx/401/403 into 500. Never a 401, never forwarded.
    assert_eq!(resp.status(), 500);
    assert_eq!(up.hits(), 0);
}

const TRAEFIK_ENDPOINT: &str =
    "[[forward_auth]]\nflavor = \"traefik\"\npath = \"/_stonegate/traefik\"\n";

#[tokio::test]
async fn traefik_forward_auth_answers_identity_headers_and_reads_only_x_forwarded() {
    let ks = Keystone::from_env();
    let sg = auth_service(&ks, TRAEFIK_ENDPOINT).await;
    let token = ks.demo_token().await;
    let resp = get(
        &sg.url("/_stonegate/traefik"),
        &[
            ("X-Auth-Token", &token),
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/v2.1/servers"),
            ("X-Forwarded-Host", "compute.example.com"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    // The identity is in the RESPONSE, for authResponseHeaders.
    assert_headers(
        resp.headers(),
        &expected_user_headers(&ks.validate(&token).await),
    );

    let resp = get(
        &sg.url("/_stonegate/traefik"),
        &[("X-Auth-Token", "garbage")],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));

    // Access rules allow only GET /v2.1/servers: the original request comes
    // from X-Forwarded-*; an X-Original-URI on a Traefik endpoint is ignored.
    let restricted = ks.app_cred_token("access_rules").await;
    let ask = |method: &'static str, uri: &'static str| {
        let restricted = restricted.clone();
        let url = sg.url("/_stonegate/traefik");
        async move {
            get(
                &url,
                &[
                    ("X-Auth-Token", &restricted),
                    ("X-Forwarded-Method", method),
                    ("X-Forwarded-Uri", uri),
                    ("X-Original-URI", "/v2.1/servers"),
                    ("X-Original-Method", "GET"),
                ],
            )
            .await
            .status()
        }
    };
    assert_eq!(ask("GET", "/v2.1/servers").await, 200);
    assert_eq!(ask("DELETE", "/v2.1/servers").await, 401);
    assert_eq!(ask("GET", "/v2.1/flavors").await, 401);
}

#[tokio::test]
async fn envoy_ext_authz_reads_the_original_request_after_the_prefix() {
    let ks = Keystone::from_env();
    let sg = auth_service(
        &ks,
        "[[forward_auth]]\nflavor = \"envoy\"\npath = \"/_stonegate/envoy\"\n",
    )
    .await;
    let restricted = ks.app_cred_token("access_rules").await;
    let client = crate::harness::client();
    let status = |method: reqwest::Method, path: &'static str| {
        let req = client
            .request(method, sg.url(&format!("/_stonegate/envoy{path}")))
            .header("X-Auth-Token", &restricted);
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(status(reqwest::Method::GET, "/v2.1/servers").await, 200);
    assert_eq!(status(reqwest::Method::POST, "/v2.1/servers").await, 401);
    assert_eq!(status(reqwest::Method::GET, "/v2.1/flavors").await, 401);

    // The body is never read: announce one and never send it.
    let mut s = tokio::net::TcpStream::connect(sg.listen).await.unwrap();
    let req = format!(
        "POST /_stonegate/envoy/v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {}\r\n\
         Content-Length: 1000000\r\n\r\n",
        ks.demo_token().await
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
}

#[tokio::test]
async fn unavailable_status_is_configurable_per_endpoint() {
    let fk = FakeKeystone::start().await;
    let sg = Stonegate::builder()
        .keystone(&fk)
        .without_upstream()
        .extra_toml(
            "[[forward_auth]]\nflavor = \"envoy\"\npath = \"/_stonegate/envoy\"\nunavailable_status = 403\n\
             [[forward_auth]]\nflavor = \"traefik\"\npath = \"/_stonegate/traefik\"\n",
        )
        .start()
        .await;
    fk.set_fault(Fault::Status(500));
    let token = FakeKeystone::valid_token(7);
    let envoy = get(&sg.url("/_stonegate/envoy/x"), &[("X-Auth-Token", &token)]).await;
    assert_eq!(envoy.status(), 403);
    let traefik = get(&sg.url("/_stonegate/traefik"), &[("X-Auth-Token", &token)]).await;
    assert_eq!(traefik.status(), 503);
}

#[tokio::test]
async fn auth_listen_serves_forward_auth_apart_from_the_proxy() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .auth_listen()
        .extra_toml(NGINX_ENDPOINT)
        .start()
        .await;
    let auth_addr = sg.auth.expect("auth_listen bound");
    let token = ks.demo_token().await;
    let resp = get(
        &format!("http://{auth_addr}/_stonegate/auth"),
        &[
            ("X-Auth-Token", &token),
            ("X-Original-URI", "/x"),
            ("X-Original-Method", "GET"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-user-id"));
    assert_eq!(up.hits(), 0);
    // On the main listener the same path is just a proxied request.
    let resp = sg
        .get("/_stonegate/auth", &[("X-Auth-Token", &token)])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.hits(), 1);
    assert_eq!(up.last().uri.path(), "/_stonegate/auth");
}
