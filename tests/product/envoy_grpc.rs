//! Envoy `ext_authz` over gRPC (`flavor = "envoy-grpc"`): an independent
//! tonic client, built from the same Envoy protos, calls
//! `envoy.service.auth.v3.Authorization/Check` with requests shaped as
//! Envoy's ext_authz filter builds them (lower-case header keys, the
//! pseudo-headers in the map, repeated headers comma-joined, the raw
//! `:path` with its query, the downstream peer in `attributes.source`),
//! against the real Keystone (the fake one only to make it fail). No Envoy
//! binary can be installed here (not on crates.io, PyPI or Debian).

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::{
    config::core::v3::{address, Address, HeaderMap as RawHeaders, HeaderValue, SocketAddress},
    service::auth::v3::{
        attribute_context::{HttpRequest, Peer, Request},
        authorization_client::AuthorizationClient,
        check_response::HttpResponse,
        AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
    },
};
use tonic::{transport::Channel, Code};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::harness::{
    cert_verifier::TestVerifier,
    keystone::{assert_headers, expected_user_headers},
    stonegate::KeystoneTarget,
    FakeKeystone, Fault, Keystone, Scope, Stonegate, Upstream,
};

const ENDPOINT: &str = "[[forward_auth]]\nflavor = \"envoy-grpc\"\n";
const PUBLIC_VERSIONS: &str = "[routes]\npublic = [{ method = \"GET\", path = \"/\" }]\n";

/// stonegate answering forward-auth only, gRPC on `auth_listen`.
pub(crate) async fn grpc_service(ks: &impl KeystoneTarget, extra: &str) -> (Stonegate, String) {
    let sg = Stonegate::builder()
        .keystone(ks)
        .without_upstream()
        .auth_listen()
        .extra_toml(&format!("{ENDPOINT}{extra}"))
        .start()
        .await;
    let auth = sg.auth.expect("auth_listen bound");
    (sg, format!("http://{auth}"))
}

pub(crate) async fn client(url: &str) -> AuthorizationClient<Channel> {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .expect("h2c connection to auth_listen");
    AuthorizationClient::new(channel)
}

/// A CheckRequest as Envoy's HTTP ext_authz filter sends it for a
/// downstream HTTP/1.1 request: keys lower-case, pseudo-headers included,
/// `path` the raw request target.
pub(crate) fn envoy_check(method: &str, target: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: HashMap<String, String> = HashMap::new();
    for (k, v) in [
        (":authority", "compute.example.com"),
        (":method", method),
        (":path", target),
        (":scheme", "https"),
        ("user-agent", "python-novaclient"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "7c1f0d7e-4c2b-4a43-9d0b-1b6a0f2b8e11"),
    ]
    .into_iter()
    .chain(headers.iter().copied())
    {
        // Envoy merges repeated headers into one comma-separated value.
        let key = k.to_ascii_lowercase();
        map.entry(key)
            .and_modify(|e| {
                e.push(',');
                e.push_str(v);
            })
            .or_insert_with(|| v.to_owned());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer("203.0.113.7", 51234)),
            destination: Some(peer("10.0.0.5", 443)),
            request: Some(Request {
                time: None,
                http: Some(HttpRequest {
                    id: "12345".into(),
                    method: method.into(),
                    headers: map,
                    path: target.into(),
                    host: "compute.example.com".into(),
                    scheme: "https".into(),
                    size: -1,
                    protocol: "HTTP/1.1".into(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

fn peer(ip: &str, port: u32) -> Peer {
    Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.into(),
                port_specifier: Some(
                    envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(port),
                ),
                ..Default::default()
            })),
        }),
        ..Default::default()
    }
}

pub(crate) async fn check(
    c: &mut AuthorizationClient<Channel>,
    req: CheckRequest,
) -> CheckResponse {
    c.check(req).await.expect("Check RPC").into_inner()
}

/// [`check`] of a `GET /v2.1/servers` with these headers.
pub(crate) async fn check_servers(
    c: &mut AuthorizationClient<Channel>,
    headers: &[(&str, &str)],
) -> CheckResponse {
    check(c, envoy_check("GET", "/v2.1/servers", headers)).await
}

/// The `attributes.request.http` of a [`envoy_check`] request.
fn http_of(req: &mut CheckRequest) -> &mut HttpRequest {
    req.attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .expect("envoy_check builds attributes.request.http")
}

pub(crate) fn ok_response(r: &CheckResponse) -> &OkHttpResponse {
    assert_eq!(r.status.as_ref().map(|s| s.code), Some(0), "{r:?}");
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not an OkHttpResponse: {other:?}"),
    }
}

pub(crate) fn denied_response(r: &CheckResponse, code: Code, http: u16) -> &DeniedHttpResponse {
    assert_eq!(
        r.status.as_ref().map(|s| s.code),
        Some(code as i32),
        "{r:?}"
    );
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(d)) => {
            assert_eq!(d.status.as_ref().map(|s| s.code), Some(i32::from(http)));
            d
        }
        other => panic!("not a DeniedHttpResponse: {other:?}"),
    }
}

/// The OK answer's headers as an `http::HeaderMap`, asserting that each is
/// an overwrite (Envoy's `setCopy`), so no client value survives beside it.
pub(crate) fn set_headers(ok: &OkHttpResponse) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for o in &ok.headers {
        assert_eq!(
            o.append_action,
            envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd
                as i32,
            "{o:?}"
        );
        #[allow(deprecated)]
        let append = o.append;
        assert_eq!(append, None, "the deprecated `append` must stay unset");
        // Else Envoy drops a header set to "" (an unscoped token's X-Roles).
        assert!(o.keep_empty_value, "{o:?}");
        let hv = o.header.as_ref().unwrap();
        h.append(
            http::HeaderName::from_bytes(hv.key.as_bytes()).unwrap(),
            http::HeaderValue::from_str(&hv.value).unwrap(),
        );
    }
    h
}

fn identity_headers(h: &http::HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .filter(|(n, _)| stonegate::headers::is_identity_header(n.as_str()))
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_valid_token_is_ok_with_exactly_the_identity_the_sidecar_injects() {
    let ks = Keystone::from_env();
    let (sg, url) = grpc_service(&ks, "").await;
    let mut c = client(&url).await;
    let token = ks.demo_token().await;
    let r = check(
        &mut c,
        envoy_check(
            "GET",
            "/v2.1/servers?all_tenants=0",
            &[("X-Auth-Token", &token)],
        ),
    )
    .await;
    let ok = ok_response(&r);
    let set = set_headers(ok);
    let validated = ks.validate(&token).await;
    assert_headers(&set, &expected_user_headers(&validated));
    assert!(set.contains_key("x-service-catalog"));
    assert!(
        ok.headers_to_remove.is_empty(),
        "{:?}",
        ok.headers_to_remove
    );

    // The sidecar, for the same token, injects the same identity headers.
    let up = Upstream::echo().await;
    let sidecar = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let resp = sidecar
        .get("/v2.1/servers", &[("X-Auth-Token", &token)])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(identity_headers(&set), identity_headers(&up.last().headers));

    // The identity's facts are in the dynamic metadata, the token is not.
    let md = r.dynamic_metadata.as_ref().expect("dynamic_metadata");
    let s = |k: &str| match md.fields.get(k).and_then(|v| v.kind.as_ref()) {
        Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => s.clone(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(s("user_id"), validated["user"]["id"].as_str().unwrap());
    assert_eq!(
        s("project_id"),
        validated["project"]["id"].as_str().unwrap()
    );
    assert_eq!(s("identity_status"), "Confirmed");
    assert!(
        !format!("{md:?}").contains(&token),
        "the token is in the metadata"
    );
    assert!(!sg.log().contains(&token), "the token was logged");
}

#[tokio::test]
async fn forged_identity_headers_are_removed_in_every_spelling_and_never_over_the_identity() {
    let ks = Keystone::from_env();
    let (_sg, url) = grpc_service(&ks, PUBLIC_VERSIONS).await;
    let mut c = client(&url).await;
    let token = ks.demo_token().await;
    // As Envoy reports them: names lower-cased, spellings kept.
    let forged = [
        ("x-user-id", "forged-user"),
        ("x_user_id", "forged-underscore"),
        ("x-roles", "admin"),
        ("x_roles", "admin"),
        ("x-domain-id", "forged-domain"),
        ("x-service-roles", "service"),
        ("x-service-identity-status", "Confirmed"),
        ("openstack-system-scope", "all"),
        ("x-identity-status", "Confirmed"),
        ("x_auth_token", "alias-of-a-token"),
        ("x.auth.token", "alias-of-a-token"),
        ("x-tenant", "forged-tenant"),
    ];
    for (target, with_token) in [("/v2.1/servers", true), ("/", false)] {
        let mut headers: Vec<(&str, &str)> = forged.to_vec();
        if with_token {
            headers.push(("x-auth-token", &token));
        }
        let r = check(&mut c, envoy_check("GET", target, &headers)).await;
        let ok = ok_response(&r);
        let set = set_headers(ok);
        let removed: Vec<&str> = ok.headers_to_remove.iter().map(String::as_str).collect();
        for (name, _) in forged {
            // Each forged name is either overwritten by stonegate's value or removed.
            assert!(
                set.contains_key(name) != removed.contains(&name),
                "{target}: {name} is neither overwritten nor removed exactly once: \
                 set {set:?}, removed {removed:?}"
            );
        }
        // Envoy removes after it sets: a set name listed for removal would
        // drop the identity itself.
        for name in set.keys() {
            assert!(
                !removed.contains(&name.as_str()),
                "{target}: {name} set and removed"
            );
        }
        if with_token {
            assert_eq!(set["x-identity-status"], "Confirmed");
            assert_ne!(set["x-user-id"], "forged-user");
            assert!(removed.contains(&"x-domain-id"), "{removed:?}");
        } else {
            // A public route: no identity set (only the request id),
            // everything forged removed.
            assert_eq!(
                set.keys().map(|n| n.as_str()).collect::<Vec<_>>(),
                ["x-openstack-request-id"],
                "{set:?}"
            );
        }
        assert!(!removed.contains(&"x-auth-token"));
    }
}

#[tokio::test]
async fn invalid_missing_revoked_or_comma_merged_tokens_are_denied_401_with_www_authenticate() {
    let ks = Keystone::from_env();
    let (_sg, url) = grpc_service(&ks, "").await;
    let mut c = client(&url).await;
    let token = ks.demo_token().await;
    let revoked = ks.demo_token().await;
    ks.revoke(&revoked).await;
    let merged = format!("{token},{token}");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no token", vec![]),
        ("garbage", vec![("x-auth-token", "not-a-token")]),
        ("revoked", vec![("x-auth-token", &revoked)]),
        // A valid token sent twice: Envoy joins them with a comma.
        (
            "repeated (merged)",
            vec![("x-auth-token", &token), ("x-auth-token", &token)],
        ),
        ("comma-merged", vec![("x-auth-token", &merged)]),
        (
            "auth and storage disagree",
            vec![("x-auth-token", &token), ("x-storage-token", "other")],
        ),
    ];
    for (what, headers) in cases {
        let r = check_servers(&mut c, &headers).await;
        let d = denied_response(&r, Code::Unauthenticated, 401);
        let h: HashMap<&str, &str> = d
            .headers
            .iter()
            .map(|o| {
                let hv = o.header.as_ref().unwrap();
                (hv.key.as_str(), hv.value.as_str())
            })
            .collect();
        assert_eq!(
            h.get("www-authenticate").copied(),
            Some(format!("Keystone uri=\"{}\"", ks.auth_url()).as_str()),
            "{what}: {h:?}"
        );
        let body: serde_json::Value = serde_json::from_str(&d.body).expect("JSON body");
        assert_eq!(body["error"]["code"], 401, "{what}");
        assert!(h
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/json")));
        assert!(r.dynamic_metadata.is_none());
    }
    // The same token, sent once in the raw header list, is fine; twice is not.
    let mut raw = envoy_check("GET", "/v2.1/servers", &[]);
    let http = http_of(&mut raw);
    let pairs = std::mem::take(&mut http.headers);
    let mut list: Vec<HeaderValue> = pairs
        .into_iter()
        .map(|(key, v)| HeaderValue {
            key,
            raw_value: v.into_bytes(),
            ..Default::default()
        })
        .collect();
    list.push(HeaderValue {
        key: "x-auth-token".into(),
        raw_value: token.clone().into_bytes(),
        ..Default::default()
    });
    http.header_map = Some(RawHeaders {
        headers: list.clone(),
    });
    ok_response(&check(&mut c, raw.clone()).await);
    list.push(HeaderValue {
        key: "x-auth-token".into(),
        raw_value: token.clone().into_bytes(),
        ..Default::default()
    });
    http_of(&mut raw).header_map = Some(RawHeaders { headers: list });
    denied_response(&check(&mut c, raw).await, Code::Unauthenticated, 401);
}

#[tokio::test]
async fn delay_auth_decision_answers_ok_with_identity_status_invalid() {
    let ks = Keystone::from_env();
    let sg = Stonegate::builder()
        .keystone(&ks)
        .without_upstream()
        .option("delay_auth_decision", true)
        .auth_listen()
        .extra_toml(ENDPOINT)
        .start()
        .await;
    let auth = sg.auth.expect("auth_listen bound");
    let mut c = client(&format!("http://{auth}")).await;
    let r = check_servers(
        &mut c,
        &[("x-auth-token", "not-a-token"), ("x-user-id", "forged")],
    )
    .await;
    let ok = ok_response(&r);
    let set = set_headers(ok);
    assert_eq!(
        identity_headers(&set),
        BTreeMap::from([("x-identity-status".to_owned(), "Invalid".to_owned())])
    );
    assert_eq!(ok.headers_to_remove, vec!["x-user-id".to_owned()]);
}

#[tokio::test]
async fn keystone_down_fails_the_rpc_with_unavailable_never_a_denial() {
    let fk = FakeKeystone::start().await;
    let (_sg, url) = grpc_service(&fk, "").await;
    let mut c = client(&url).await;
    fk.set_fault(Fault::Status(503));
    let token = FakeKeystone::valid_token(3);
    let err = c
        .check(envoy_check(
            "GET",
            "/v2.1/servers",
            &[("x-auth-token", &token)],
        ))
        .await
        .expect_err("an OK or a denial while Keystone is down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // Once Keystone answers again, the same token is allowed.
    fk.set_fault(Fault::None);
    ok_response(&check_servers(&mut c, &[("x-auth-token", &token)]).await);
}

#[tokio::test]
async fn an_ambiguous_path_is_refused_before_keystone_is_asked() {
    let ks = Keystone::from_env();
    let (sg, url) = grpc_service(&ks, PUBLIC_VERSIONS).await;
    let mut c = client(&url).await;
    let token = ks.demo_token().await;
    let before = crate::local::validate_calls(&sg).await;
    for target in [
        "/v2.1/../admin",
        "/v2.1/%2e%2e/admin",
        "/v2.1//servers",
        "/a%2Fb",
        "*",
        "",
    ] {
        let r = check(
            &mut c,
            envoy_check("GET", target, &[("x-auth-token", &token)]),
        )
        .await;
        let d = denied_response(&r, Code::InvalidArgument, 400);
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body["error"]["code"], 400, "{target}");
    }
    assert_eq!(
        crate::local::validate_calls(&sg).await,
        before,
        "an ambiguous path reached Keystone"
    );
}

#[tokio::test]
async fn public_routes_and_access_rules_decide_on_the_canonical_path() {
    let ks = Keystone::from_env();
    let (_sg, url) = grpc_service(
        &ks,
        "[routes]\npublic = [{ method = \"GET\", path = \"/v2.1/versions\" }]\n",
    )
    .await;
    let mut c = client(&url).await;
    // Public, with its escapes decoded as the application sees them.
    for target in ["/v2.1/versions", "/v2.1/vers%69ons?x=1"] {
        let ok = ok_response(&check(&mut c, envoy_check("GET", target, &[])).await).clone();
        assert!(identity_headers(&set_headers(&ok)).is_empty(), "{target}");
    }
    denied_response(
        &check(&mut c, envoy_check("POST", "/v2.1/versions", &[])).await,
        Code::Unauthenticated,
        401,
    );
    // The fixture credential allows GET /v2.1/servers on compute only.
    let token = ks.app_cred_token("access_rules").await;
    let h = [("x-auth-token", token.as_str())];
    ok_response(&check_servers(&mut c, &h).await);
    ok_response(&check(&mut c, envoy_check("GET", "/v2.1/serv%65rs", &h)).await);
    denied_response(
        &check(&mut c, envoy_check("POST", "/v2.1/servers", &h)).await,
        Code::Unauthenticated,
        401,
    );
    denied_response(
        &check(&mut c, envoy_check("GET", "/v2.1/flavors", &h)).await,
        Code::Unauthenticated,
        401,
    );
}

#[tokio::test]
async fn grpc_health_reports_serving_and_requests_are_counted() {
    let ks = Keystone::from_env();
    let (sg, url) = grpc_service(&ks, "").await;
    let channel = Channel::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let err = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let mut c = client(&url).await;
    let token = ks.demo_token().await;
    ok_response(&check_servers(&mut c, &[("x-auth-token", &token)]).await);
    denied_response(
        &check_servers(&mut c, &[]).await,
        Code::Unauthenticated,
        401,
    );
    for outcome in ["forwarded", "unauthorized"] {
        let line = format!("stonegate_requests_total{{door=\"envoy_grpc\",outcome=\"{outcome}\"}}");
        assert_eq!(sg.metric(&line).await, 1.0, "{line}");
    }
    // An HTTP/1.1 request to the gRPC path is no gRPC call: not answered as one.
    let resp = crate::harness::client()
        .post(format!("{url}/envoy.service.auth.v3.Authorization/Check"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn check_config_names_the_keys_envoy_grpc_does_not_take() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stonegate.toml");
    let base = std::fs::read_to_string(crate::harness::repo_path("config/stonegate.toml")).unwrap();
    std::fs::write(
        &config,
        format!("{base}\n[[forward_auth]]\nflavor = \"envoy-grpc\"\npath = \"/x\"\nunavailable_status = 403\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stonegate"))
        .arg("check-config")
        .arg(&config)
        .env("STONEGATE_PASSWORD", "x")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(".path") && stderr.contains("remove the key"),
        "{stderr}"
    );
    assert!(stderr.contains(".unavailable_status"), "{stderr}");
}

#[tokio::test]
async fn with_tls_the_auth_listener_serves_check_over_tls_h2_only() {
    use std::sync::Arc;
    let ks = Keystone::from_env();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::tls::self_signed(dir.path());
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .auth_listen()
        .extra_toml(&format!(
            "{ENDPOINT}[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ))
        .start()
        .await;
    let auth = sg.auth.expect("auth_listen bound");
    // The listener's certificate is self-signed (a CA as end entity, which
    // webpki refuses): accept exactly that certificate.
    let pem = std::fs::read(&cert).unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(TestVerifier::pinned(der, provider))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(auth).await?;
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let stream = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("TLS h2 connection to auth_listen");
    let mut c = AuthorizationClient::new(channel);
    let token = ks.demo_token().await;
    let r = check_servers(&mut c, &[("x-auth-token", &token)]).await;
    assert_headers(
        &set_headers(ok_response(&r)),
        &expected_user_headers(&ks.validate(&token).await),
    );
    // Cleartext h2c to the TLS listener gets no answer.
    let plain = Channel::from_shared(format!("http://{auth}"))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(ch) = plain {
        let err = AuthorizationClient::new(ch)
            .check(envoy_check(
                "GET",
                "/v2.1/servers",
                &[("x-auth-token", &token)],
            ))
            .await
            .expect_err("a cleartext Check answered on the TLS listener");
        assert_ne!(err.code(), Code::Ok);
    }
}

#[tokio::test]
async fn an_authorization_rule_refusal_is_permission_denied_with_403() {
    let ks = Keystone::from_env();
    let (_sg, url) = grpc_service(
        &ks,
        "[authorization]\ndefault = \"deny\"\n\
         [[authorization.rules]]\nname = \"servers:list\"\nmethods = [\"GET\"]\n\
         path = \"/v2.1/servers\"\ncheck = \"role:member\"\n",
    )
    .await;
    let mut c = client(&url).await;
    let token = ks.demo_token().await;
    let h = [("x-auth-token", token.as_str())];
    // demo holds member on demo: the rule allows the listing ...
    ok_response(&check_servers(&mut c, &h).await);
    // ... and nothing else: default deny.
    let r = check(&mut c, envoy_check("DELETE", "/v2.1/servers", &h)).await;
    let d = denied_response(&r, Code::PermissionDenied, 403);
    let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
    assert_eq!(body["error"]["code"], 403);
    assert!(
        !d.headers
            .iter()
            .any(|o| o.header.as_ref().unwrap().key == "www-authenticate"),
        "a 403 is no request for credentials"
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_an_untrusted_one_is_replaced() {
    let ks = Keystone::from_env();
    let (_sg, url) = grpc_service(&ks, "").await;
    let mut c = client(&url).await;
    let token = ks.demo_token().await;
    let forged_id = "req-00000000-0000-4000-8000-000000000000";
    let r = check_servers(
        &mut c,
        &[
            ("x-auth-token", &token),
            ("x-openstack-request-id", forged_id),
            ("traceparent", "not-a-traceparent"),
        ],
    )
    .await;
    let ok = ok_response(&r);
    let set = set_headers(ok);
    let id = set["x-openstack-request-id"].to_str().unwrap();
    assert!(id.starts_with("req-") && id.len() == 40, "{id}");
    assert_ne!(id, forged_id, "an untrusted peer's request id was kept");
    // The malformed trace context is removed, not carried on.
    assert!(
        ok.headers_to_remove.contains(&"traceparent".to_owned()),
        "{:?}",
        ok.headers_to_remove
    );
    assert!(!ok
        .headers_to_remove
        .contains(&"x-openstack-request-id".to_owned()));
    let r = check_servers(&mut c, &[]).await;
    let d = denied_response(&r, Code::Unauthenticated, 401);
    assert!(d.headers.iter().any(|o| {
        let h = o.header.as_ref().unwrap();
        h.key == "x-openstack-request-id" && h.value.starts_with("req-")
    }));
}

/// The `Set-Cookie` values of a denial, each with whether it is appended
/// (every one after the first of its name must be, or Envoy keeps only one).
fn denied_set_cookies(d: &DeniedHttpResponse) -> Vec<(String, bool)> {
    use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
    d.headers
        .iter()
        .filter_map(|o| {
            let h = o.header.as_ref()?;
            (h.key == "set-cookie").then(|| {
                (
                    h.value.clone(),
                    o.append_action == HeaderAppendAction::AppendIfExistsOrAdd as i32,
                )
            })
        })
        .collect()
}

/// `[session]` on the gRPC door, as on the sidecar and the HTTP
/// forward-auth endpoints: the session cookie stands in for the token (its
/// CSRF rule on the original method), the upstream gets the identity and
/// the client's other cookies but neither the token nor the session
/// cookie, and a refused session is denied with both cookies cleared.
#[tokio::test]
async fn a_session_cookie_authenticates_a_check_like_the_sidecar() {
    use stonegate::session::{
        keys::SessionKeys,
        seal::{self, SessionData},
    };
    let ks = Keystone::from_env();
    let key = crate::session::new_key();
    let ring = crate::session::ring(&[&key]);
    let keys = SessionKeys::parse(&key).unwrap();
    let (sg, url) = grpc_service(
        &ks,
        &format!(
            "[session]\nenabled = true\nkeys_file = {:?}\n",
            ring.path.display().to_string()
        ),
    )
    .await;
    let mut c = client(&url).await;
    let seal_token = |token: &str, user: &str| {
        seal::seal(
            &keys,
            "sessionid",
            &SessionData {
                token: token.to_owned(),
                csrf: "c".repeat(64),
                expires_at: i64::MAX / 2,
                user_id: ks.user_id(user),
            },
        )
        .unwrap()
    };
    let token = ks.demo_token().await;
    let session = seal_token(&token, "demo");

    // The cookie alone: OK with the token's identity; the session cookie is
    // taken out of `Cookie`, the client's other cookies stay.
    let cookie = format!("theme=dark; sessionid={session}; lang=en");
    let r = check_servers(&mut c, &[("cookie", &cookie)]).await;
    let ok = ok_response(&r);
    let set = set_headers(ok);
    assert_headers(&set, &expected_user_headers(&ks.validate(&token).await));
    assert_eq!(set.get("cookie").unwrap(), "theme=dark; lang=en");
    assert!(
        !set.contains_key("x-auth-token"),
        "the token would reach the upstream"
    );
    assert!(
        !format!("{r:?}").contains(&token),
        "the token is in the answer"
    );
    // Only the session cookie: `Cookie` is removed altogether.
    let r = check_servers(&mut c, &[("cookie", &format!("sessionid={session}"))]).await;
    let ok = ok_response(&r);
    assert!(
        ok.headers_to_remove.contains(&"cookie".to_owned()),
        "{ok:?}"
    );
    assert!(!set_headers(ok).contains_key("cookie"));

    // A write needs the CSRF header, judged on the original method.
    let only = format!("sessionid={session}");
    for extra in [vec![], vec![("x-csrftoken", "wrong")]] {
        let mut headers = vec![("cookie", only.as_str())];
        headers.extend(extra);
        let r = check(&mut c, envoy_check("POST", "/v2.1/servers", &headers)).await;
        denied_response(&r, Code::PermissionDenied, 403);
    }
    let csrf = "c".repeat(64);
    let r = check(
        &mut c,
        envoy_check(
            "POST",
            "/v2.1/servers",
            &[("cookie", &only), ("x-csrftoken", &csrf)],
        ),
    )
    .await;
    ok_response(&r);

    // A WebSocket handshake riding on the cookie must come from the site
    // itself (`host` and `scheme` of the original request).
    let ws = |origin: &'static str| {
        envoy_check(
            "GET",
            "/socket",
            &[
                ("cookie", &only),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("origin", origin),
            ],
        )
    };
    denied_response(
        &check(&mut c, ws("https://evil.example")).await,
        Code::PermissionDenied,
        403,
    );
    ok_response(&check(&mut c, ws("https://compute.example.com")).await);

    // A cookie stonegate did not seal: 401, both cookies cleared.
    let r = check_servers(&mut c, &[("cookie", "sessionid=forged")]).await;
    let d = denied_response(&r, Code::Unauthenticated, 401);
    let cleared = denied_set_cookies(d);
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert!(
        cleared[0].0.starts_with("sessionid=;") && !cleared[0].1,
        "{cleared:?}"
    );
    assert!(
        cleared[1].0.starts_with("csrftoken=;") && cleared[1].1,
        "{cleared:?}"
    );

    // A session whose token Keystone revoked: 401 from the validator, and
    // the session is ended (cookies cleared) as the sidecar does.
    let revoked = ks
        .token("revokee", crate::harness::Scope::Project("demo"))
        .await;
    ks.revoke(&revoked).await;
    let gone = seal_token(&revoked, "revokee");
    let r = check_servers(&mut c, &[("cookie", &format!("sessionid={gone}"))]).await;
    let d = denied_response(&r, Code::Unauthenticated, 401);
    assert!(d.headers.iter().any(|o| o
        .header
        .as_ref()
        .is_some_and(|h| h.key == "www-authenticate")));
    assert_eq!(denied_set_cookies(d).len(), 2, "{d:?}");

    // A token header wins over the cookie (the cookie is not opened).
    let r = check_servers(
        &mut c,
        &[
            ("x-auth-token", "garbage"),
            ("cookie", &format!("sessionid={session}")),
        ],
    )
    .await;
    let d = denied_response(&r, Code::Unauthenticated, 401);
    assert!(denied_set_cookies(d).is_empty(), "{d:?}");
    assert!(!sg.log().contains(&token), "the token was logged");
}

/// `req` with Envoy's per-route `check_settings.context_extensions`.
fn with_context(mut req: CheckRequest, extensions: &[(&str, &str)]) -> CheckRequest {
    let attributes = req.attributes.as_mut().unwrap();
    for (k, v) in extensions {
        attributes
            .context_extensions
            .insert((*k).to_owned(), (*v).to_owned());
    }
    req
}

/// An application credential of demo's, made for one test, whose access
/// rules name two services: `GET /v2.1/servers` on compute and
/// `GET /v2/images` on image; a token from it.
async fn two_service_app_cred_token(ks: &Keystone) -> String {
    let demo = ks.demo_token().await;
    let uid = ks.user_id("demo");
    let name = format!(
        "two-services-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let resp = crate::harness::client()
        .post(format!(
            "{}/users/{uid}/application_credentials",
            ks.auth_url
        ))
        .header("x-auth-token", &demo)
        .json(&serde_json::json!({"application_credential": {
        "name": name, "roles": [{"name": "reader"}],
        "access_rules": [
            {"service": "compute", "path": "/v2.1/servers", "method": "GET"},
            {"service": "image", "path": "/v2/images", "method": "GET"}
        ]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let ac: serde_json::Value = resp.json().await.unwrap();
    let ac = &ac["application_credential"];
    ks.issue(serde_json::json!({
        "identity": {"methods": ["application_credential"],
                     "application_credential": {"id": ac["id"], "secret": ac["secret"]}}
    }))
    .await
}

#[tokio::test]
async fn context_extensions_select_the_routes_service_profile_and_an_unknown_one_fails_closed() {
    let ks = Keystone::from_env();
    // One gateway in front of compute (the default: service_type "compute",
    // [routes]) and image (a profile with its own public route).
    let (sg, url) = grpc_service(
        &ks,
        &format!(
            "[forward_auth.services.image]\nservice_type = \"image\"\n\
             public = [{{ method = \"GET\", path = \"/versions\" }}]\n\
             [forward_auth.services.compute]\nservice_type = \"compute\"\n\
             {PUBLIC_VERSIONS}"
        ),
    )
    .await;
    let mut c = client(&url).await;
    let token = two_service_app_cred_token(&ks).await;
    let h = [("x-auth-token", token.as_str())];
    let image = [("stonegate_service", "image")];
    let compute = [("stonegate_service", "compute")];
    let get = |target: &str, ext: &[(&str, &str)], headers: &[(&str, &str)]| {
        with_context(envoy_check("GET", target, headers), ext)
    };
    // image: its own rule passes, compute's does not apply.
    let r = check(&mut c, get("/v2/images", &image, &h)).await;
    ok_response(&r);
    // The selected profile is in the dynamic metadata, for Envoy's logs.
    let facts = r.dynamic_metadata.as_ref().unwrap();
    assert_eq!(
        format!(
            "{:?}",
            facts.fields.get("service").and_then(|v| v.kind.as_ref())
        ),
        "Some(StringValue(\"image\"))"
    );
    denied_response(
        &check(&mut c, get("/v2.1/servers", &image, &h)).await,
        Code::Unauthenticated,
        401,
    );
    // compute, selected or by default: the other way round.
    for ext in [&compute[..], &[], &[("virtual_host", "other-key-ignored")]] {
        ok_response(&check(&mut c, get("/v2.1/servers", ext, &h)).await);
        denied_response(
            &check(&mut c, get("/v2/images", ext, &h)).await,
            Code::Unauthenticated,
            401,
        );
    }
    // Public routes are the profile's: image's /versions, not [routes]' /.
    let public = check(&mut c, get("/versions", &image, &[])).await;
    assert!(identity_headers(&set_headers(ok_response(&public))).is_empty());
    denied_response(
        &check(&mut c, get("/", &image, &[])).await,
        Code::Unauthenticated,
        401,
    );
    ok_response(&check(&mut c, get("/", &[], &[])).await);
    denied_response(
        &check(&mut c, get("/versions", &[], &[])).await,
        Code::Unauthenticated,
        401,
    );
    // A profile nobody configured: refused whatever the token or route,
    // logged, counted as forbidden; Keystone is not asked.
    let fresh = ks.demo_token().await;
    let fresh = [("x-auth-token", fresh.as_str())];
    let validations = crate::local::validate_calls(&sg).await;
    for (target, headers) in [("/v2.1/servers", &fresh[..]), ("/", &[][..])] {
        let r = check(
            &mut c,
            get(target, &[("stonegate_service", "nova")], headers),
        )
        .await;
        let denied = denied_response(&r, Code::PermissionDenied, 403);
        assert!(denied.body.contains("not configured"), "{}", denied.body);
    }
    assert_eq!(crate::local::validate_calls(&sg).await, validations);
    assert!(
        sg.log().contains("not configured (forward_auth.services)"),
        "the refusal is logged"
    );
    assert!(!sg.log().contains(&token));
    assert!(
        sg.metric("stonegate_requests_total{door=\"envoy_grpc\",outcome=\"forbidden\"}")
            .await
            >= 2.0
    );
    // Profiles are re-read on SIGHUP: renamed, the old name is refused and
    // the new one decides as image.
    let text = std::fs::read_to_string(&sg.config).unwrap();
    let renamed = text.replace(
        "[forward_auth.services.image]",
        "[forward_auth.services.glance]",
    );
    assert_ne!(text, renamed);
    std::fs::write(&sg.config, renamed).unwrap();
    sg.signal("HUP");
    sg.log_with("configuration reloaded").await;
    denied_response(
        &check(&mut c, get("/v2/images", &image, &h)).await,
        Code::PermissionDenied,
        403,
    );
    ok_response(
        &check(
            &mut c,
            get("/v2/images", &[("stonegate_service", "glance")], &h),
        )
        .await,
    );
}

#[test]
fn service_profiles_are_checked_naming_their_keys() {
    let base = "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:1\"\n\
                [keystone_authtoken]\nauth_url = \"http://127.0.0.1:5000/v3\"\n\
                username = \"svc\"\npassword = \"x\"\nproject_name = \"service\"\n\
                user_domain_name = \"Default\"\nproject_domain_name = \"Default\"\n";
    let err = |extra: &str| {
        stonegate::config::File::parse(&format!("{base}{extra}"))
            .unwrap()
            .build(&|_| None)
            .unwrap_err()
            .to_string()
    };
    let e = err(
        "[[forward_auth]]\nflavor = \"nginx\"\npath = \"/auth\"\nselector = \"svc\"\n\
                 [forward_auth.services.image]\nservice_type = \"image\"\n",
    );
    assert!(
        e.contains("forward_auth[0].selector") && e.contains("forward_auth[0].services"),
        "{e}"
    );
    let e = err(
        "[[forward_auth]]\nflavor = \"envoy-grpc\"\nselector = \"\"\n\
                 [forward_auth.services.image]\nservice_type = \" \"\n\
                 public = [{ method = \"GET\", path = \"versions\" }]\n",
    );
    assert!(e.contains("forward_auth[0].selector"), "{e}");
    assert!(
        e.contains("forward_auth[0].services.image.service_type"),
        "{e}"
    );
    assert!(
        e.contains("forward_auth[0].services.image.public[0].path"),
        "{e}"
    );
    // A well-formed profile loads.
    let settings = stonegate::config::File::parse(&format!(
        "{base}[[forward_auth]]\nflavor = \"envoy-grpc\"\nselector = \"service\"\n\
         [forward_auth.services.image]\nservice_type = \"image\"\n"
    ))
    .unwrap()
    .build(&|_| None)
    .unwrap();
    let services = &settings.auth.services;
    assert_eq!(services.selector, "service");
    // check-config names each profile and what it selects.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stonegate.toml");
    std::fs::write(
        &config,
        format!(
            "{base}[[forward_auth]]\nflavor = \"envoy-grpc\"\n\
             [forward_auth.services.image]\nservice_type = \"image\"\n\
             public = [{{ method = \"GET\", path = \"/versions\" }}]\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stonegate"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("envoy-grpc service profile \"image\" (context_extensions stonegate_service: image): service_type image, its own public routes"),
        "{stdout}"
    );
    assert_eq!(
        services.by_name["image"].service_type.as_deref(),
        Some("image")
    );
}

#[tokio::test]
async fn an_unscoped_tokens_empty_x_roles_is_set_and_kept_empty() {
    let ks = Keystone::from_env();
    let (_sg, url) = grpc_service(&ks, "").await;
    let mut c = client(&url).await;
    let token = ks.token("demo", Scope::Unscoped).await;
    let r = check_servers(&mut c, &[("x-auth-token", &token)]).await;
    let ok = ok_response(&r);
    // set_headers checks every header is kept even when empty.
    let set = set_headers(ok);
    assert_eq!(set.get("x-roles").map(|v| v.as_bytes()), Some(&b""[..]));
    assert_eq!(set.get("x-project-id"), None);
    assert_eq!(
        set.get("x-identity-status").map(|v| v.as_bytes()),
        Some(&b"Confirmed"[..])
    );
}
