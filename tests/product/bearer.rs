//! `[oauth2] bearer`: `Authorization: Bearer <token>` as keystonemiddleware's
//! `oauth2_token` filter reads it, with tokens from the real Keystone's
//! OAuth 2.0 client-credentials grant (`POST /v3/OS-OAUTH2/token`, an
//! application credential as HTTP basic client_id:client_secret), through
//! every door: the sidecar, forward-auth over HTTP (Traefik, nginx) and
//! gRPC (Envoy ext_authz), and the tower layer in-process.

use std::collections::HashMap;

use tonic::Code;
use tower::ServiceExt;
use tower_layer::Layer;

use crate::envoy_grpc::{
    check_servers, client, denied_response, grpc_service, ok_response, set_headers,
};
use crate::harness::{
    keystone::{assert_headers, expected_user_headers},
    Keystone, Stonegate, Upstream,
};

const BEARER_ON: &str = "[oauth2]\nbearer = true\n";
const FORWARD_AUTH: &str =
    "[[forward_auth]]\nflavor = \"traefik\"\npath = \"/_stonegate/traefik\"\n\
     [[forward_auth]]\nflavor = \"nginx\"\npath = \"/_stonegate/nginx\"\n";

/// An access token from Keystone's OAuth 2.0 token endpoint, for the
/// fixture application credential `which` (client credentials grant).
pub(crate) async fn oauth2_access_token(ks: &Keystone, which: &str) -> String {
    let ac = &ks.fixtures()["application_credentials"][which];
    let resp = crate::harness::client()
        .post(format!("{}/OS-OAUTH2/token", ks.auth_url))
        .basic_auth(
            ac["id"].as_str().unwrap(),
            Some(ac["secret"].as_str().unwrap()),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST /v3/OS-OAUTH2/token");
    assert_eq!(resp.status(), 200, "OAuth2 token endpoint");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// The `WWW-Authenticate` values of an answer, in order.
fn challenges(h: &reqwest::header::HeaderMap) -> Vec<String> {
    h.get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn both_challenges(ks: &Keystone) -> Vec<String> {
    vec![
        format!("Keystone uri=\"{}\"", ks.auth_url),
        format!("Bearer realm=\"{}\", error=\"invalid_token\"", ks.auth_url),
    ]
}

async fn error_json(resp: reqwest::Response, status: u16, what: &str) -> serde_json::Value {
    assert_eq!(resp.status(), status, "{what}");
    assert_eq!(resp.headers()["content-type"], "application/json", "{what}");
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["error"]["code"], status, "{what}: {json}");
    json
}

/// The tower layer built from `sg`'s configuration file, around a service
/// answering with the user id it was given.
async fn layer_status(
    sg: &Stonegate,
    ks: &Keystone,
    headers: &[(&str, &str)],
) -> (u16, Vec<String>, String) {
    let settings = stonegate::config::File::load(&sg.config)
        .unwrap()
        .build(&|k| (k == "STONEGATE_PASSWORD").then(|| ks.password("svc")))
        .unwrap();
    let metrics = stonegate::metrics::Metrics::unregistered();
    let stack = stonegate::stack::build(&settings, &metrics).unwrap();
    let layer = stonegate::AuthTokenLayer::new(stack.gate.clone(), metrics);
    let inner = tower::service_fn(
        |req: http::Request<http_body_util::Empty<bytes::Bytes>>| async move {
            let user = req
                .extensions()
                .get::<stonegate::AuthContext>()
                .and_then(|c| c.user.as_ref())
                .and_then(|u| u.user.id.as_deref().map(str::to_owned))
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from(user),
            )))
        },
    );
    let mut req = http::Request::builder().uri("/v2.1/servers");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = layer
        .layer(inner)
        .oneshot(req.body(http_body_util::Empty::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, www, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn an_oauth2_access_token_is_taken_as_bearer_with_the_identity_of_x_auth_token_at_every_door()
{
    let ks = Keystone::from_env();
    let token = oauth2_access_token(&ks, "unrestricted").await;
    let validated = ks.validate(&token).await;
    let expected = expected_user_headers(&validated);
    let bearer = format!("Bearer {token}");
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!("{BEARER_ON}{FORWARD_AUTH}"))
        .start()
        .await;

    // The sidecar: the identity headers X-Auth-Token would get, forged
    // ones replaced; Authorization forwarded as keystonemiddleware leaves it.
    let forged = [
        ("Authorization", bearer.as_str()),
        ("X-User-Id", "forged-admin"),
        ("X-Roles", "admin"),
        ("X-Identity-Status", "Confirmed"),
    ];
    let resp = sg.get("/v2.1/servers", &forged).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_headers(&seen.headers, &expected);
    assert_eq!(
        seen.header("x-user-id"),
        validated["user"]["id"].as_str().map(str::to_owned)
    );
    assert_ne!(seen.header("x-roles").as_deref(), Some("admin"));
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some(bearer.as_str())
    );
    // The same token in both headers is one token.
    let resp = sg
        .get(
            "/v2.1/servers",
            &[("Authorization", &bearer), ("X-Auth-Token", &token)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_headers(&up.last().headers, &expected);
    // The scheme's case does not matter (RFC 7235).
    let lower = format!("bearer {token}");
    let resp = sg.get("/v2.1/servers", &[("Authorization", &lower)]).await;
    assert_eq!(resp.status(), 200);

    // Forward-auth over HTTP: 200 with the same identity headers.
    let resp = sg
        .forward_auth(
            "traefik",
            "/v2.1/servers",
            &[("Authorization", &bearer), ("X-User-Id", "forged-admin")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_headers(resp.headers(), &expected);
    let resp = sg
        .forward_auth("nginx", "/v2.1/servers", &[("Authorization", &bearer)])
        .await;
    assert_eq!(resp.status(), 200);
    assert_headers(resp.headers(), &expected);

    // The tower layer: the user reaches the service.
    let (status, _, user) = layer_status(&sg, &ks, &[("Authorization", &bearer)]).await;
    assert_eq!(
        (status, user.as_str()),
        (200, validated["user"]["id"].as_str().unwrap())
    );

    // gRPC ext_authz: OK with the same identity headers.
    let (grpc, url) = grpc_service(&ks, BEARER_ON).await;
    let mut g = client(&url).await;
    let r = check_servers(
        &mut g,
        &[("authorization", &bearer), ("x-user-id", "forged")],
    )
    .await;
    let ok = ok_response(&r);
    assert_headers(&set_headers(ok), &expected);

    for log in [sg.log(), grpc.log()] {
        assert!(!log.contains(&token), "the token was logged");
    }
}

#[tokio::test]
async fn bearer_is_off_by_default_a_bearer_only_request_is_401_and_never_forwarded() {
    let ks = Keystone::from_env();
    let token = oauth2_access_token(&ks, "unrestricted").await;
    let bearer = format!("Bearer {token}");
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(FORWARD_AUTH)
        .start()
        .await;
    let resp = sg.get("/v2.1/servers", &[("Authorization", &bearer)]).await;
    assert_eq!(
        challenges(resp.headers()),
        [format!("Keystone uri=\"{}\"", ks.auth_url)],
        "no Bearer challenge when Bearer is not accepted"
    );
    error_json(resp, 401, "sidecar, bearer off").await;
    assert_eq!(up.hits(), 0);
    // X-Auth-Token beside an unrelated Bearer is read alone: no conflict.
    let resp = sg
        .get(
            "/v2.1/servers",
            &[("Authorization", "Bearer other"), ("X-Auth-Token", &token)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = sg
        .forward_auth("traefik", "/v2.1/servers", &[("Authorization", &bearer)])
        .await;
    assert_eq!(resp.status(), 401);
    let (status, www, _) = layer_status(&sg, &ks, &[("Authorization", &bearer)]).await;
    assert_eq!((status, www.len()), (401, 1));
    let (_grpc, url) = grpc_service(&ks, "").await;
    let mut g = client(&url).await;
    let r = check_servers(&mut g, &[("authorization", &bearer)]).await;
    denied_response(&r, Code::Unauthenticated, 401);
}

#[tokio::test]
async fn x_auth_token_and_a_different_bearer_are_400_at_every_door_and_never_forwarded() {
    let ks = Keystone::from_env();
    let token = oauth2_access_token(&ks, "unrestricted").await;
    let other = ks.demo_token().await;
    let bearer = format!("Bearer {other}");
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!("{BEARER_ON}{FORWARD_AUTH}"))
        .start()
        .await;
    for (what, h) in [
        ("x-auth-token", "X-Auth-Token"),
        ("x-storage-token", "X-Storage-Token"),
    ] {
        let resp = sg
            .get("/v2.1/servers", &[(h, &token), ("Authorization", &bearer)])
            .await;
        let json = error_json(resp, 400, what).await;
        let body = json.to_string();
        assert!(!body.contains(&token) && !body.contains(&other), "{body}");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer"));
    }
    // Two valid tokens or a malformed Bearer: still two different values.
    let resp = sg
        .get(
            "/v2.1/servers",
            &[("X-Auth-Token", &token), ("Authorization", "Bearer a b")],
        )
        .await;
    error_json(resp, 400, "malformed bearer beside x-auth-token").await;
    assert_eq!(up.hits(), 0, "a conflicting request was forwarded");
    let both = [
        ("X-Auth-Token", token.as_str()),
        ("Authorization", bearer.as_str()),
    ];
    let resp = sg.forward_auth("traefik", "/v2.1/servers", &both).await;
    error_json(resp, 400, "traefik").await;
    // nginx's auth_request passes only 401 and 403 on.
    let resp = sg.forward_auth("nginx", "/v2.1/servers", &both).await;
    assert_eq!(resp.status(), 403, "nginx");
    let (status, _, _) = layer_status(
        &sg,
        &ks,
        &[("X-Auth-Token", &token), ("Authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 400, "layer");
    let (_grpc, url) = grpc_service(&ks, BEARER_ON).await;
    let mut g = client(&url).await;
    let r = check_servers(
        &mut g,
        &[("x-auth-token", &token), ("authorization", &bearer)],
    )
    .await;
    denied_response(&r, Code::InvalidArgument, 400);
    // Three through the proxy (the layer), two through forward-auth.
    for (door, n) in [("layer", 3.0), ("forward_auth", 2.0)] {
        let line =
            format!("stonegate_requests_total{{door=\"{door}\",outcome=\"conflicting_tokens\"}}");
        assert_eq!(sg.metric(&line).await, n, "{line}");
    }
}

#[tokio::test]
async fn a_garbage_repeated_or_merged_bearer_is_401_with_both_challenges_at_every_door() {
    let ks = Keystone::from_env();
    let token = oauth2_access_token(&ks, "unrestricted").await;
    let bearer = format!("Bearer {token}");
    let merged = format!("{bearer}, {bearer}");
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!("{BEARER_ON}{FORWARD_AUTH}"))
        .start()
        .await;
    let want = both_challenges(&ks);
    let c = crate::harness::client();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no token", vec![]),
        (
            "garbage",
            vec![("Authorization", "Bearer gAAAAAnot-a-token")],
        ),
        ("empty", vec![("Authorization", "Bearer")]),
        (
            "repeated",
            vec![("Authorization", &bearer), ("Authorization", &bearer)],
        ),
        ("comma-merged", vec![("Authorization", &merged)]),
    ];
    for (what, headers) in &cases {
        let mut req = c.get(sg.url("/v2.1/servers"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(challenges(resp.headers()), want, "sidecar {what}");
        error_json(resp, 401, what).await;

        let resp = sg.forward_auth("traefik", "/v2.1/servers", headers).await;
        assert_eq!(resp.status(), 401, "traefik {what}");
        assert_eq!(challenges(resp.headers()), want, "traefik {what}");

        let (status, www, _) = layer_status(&sg, &ks, headers).await;
        assert_eq!((status, &www), (401, &want), "layer {what}");
    }
    assert_eq!(up.hits(), 0, "a refused request was forwarded");

    // gRPC: Envoy merges a repeated Authorization with a comma.
    let (_grpc, url) = grpc_service(&ks, BEARER_ON).await;
    let mut g = client(&url).await;
    for (what, headers) in &cases {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| {
                (
                    if *n == "Authorization" {
                        "authorization"
                    } else {
                        *n
                    },
                    *v,
                )
            })
            .collect();
        let r = check_servers(&mut g, &h).await;
        let d = denied_response(&r, Code::Unauthenticated, 401);
        let www: Vec<&str> = d
            .headers
            .iter()
            .filter_map(|o| o.header.as_ref())
            .filter(|h| h.key == "www-authenticate")
            .map(|h| h.value.as_str())
            .collect();
        assert_eq!(www, want, "grpc {what}");
        let actions: HashMap<&str, i32> = d
            .headers
            .iter()
            .filter_map(|o| Some((o.header.as_ref()?.value.as_str(), o.append_action)))
            .collect();
        // The second challenge is appended, not overwriting the first.
        assert_ne!(
            actions[want[0].as_str()],
            actions[want[1].as_str()],
            "grpc {what}"
        );
    }
}

#[tokio::test]
async fn other_schemes_are_no_token_service_tokens_apply_and_an_upstream_401_gets_both_challenges()
{
    let ks = Keystone::from_env();
    let bearer = format!("Bearer {}", oauth2_access_token(&ks, "unrestricted").await);
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(BEARER_ON)
        .start()
        .await;
    // `Basic` is no token: beside X-Auth-Token no conflict, forwarded as sent.
    let basic = "Basic ZGVtbzpkZW1vLXBhc3N3b3Jk";
    let demo = ks.demo_token().await;
    let resp = sg
        .get(
            "/v2.1/servers",
            &[("X-Auth-Token", &demo), ("Authorization", basic)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.header("authorization").as_deref(), Some(basic));
    assert_eq!(
        seen.header("x-user-id").as_deref(),
        Some(ks.user_id("demo").as_str())
    );
    // Alone it is a request without a token: 401, never forwarded.
    let hits = up.hits();
    let resp = sg.get("/v2.1/servers", &[("Authorization", basic)]).await;
    assert_eq!(challenges(resp.headers()), both_challenges(&ks));
    error_json(resp, 401, "basic alone").await;
    assert_eq!(up.hits(), hits);
    // A Bearer user token with a service token: X-Service-* as with X-Auth-Token.
    let svc = ks.svc_token().await;
    let resp = sg
        .get(
            "/v2.1/servers",
            &[("Authorization", &bearer), ("X-Service-Token", &svc)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(
        seen.header("x-service-identity-status").as_deref(),
        Some("Confirmed")
    );
    assert_eq!(
        seen.header("x-service-user-id").as_deref(),
        Some(ks.user_id("svc").as_str())
    );

    // The upstream's own 401 carries both challenges too.
    let refusing = Upstream::answering(401).await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&refusing)
        .extra_toml(BEARER_ON)
        .start()
        .await;
    let resp = sg.get("/v2.1/servers", &[("Authorization", &bearer)]).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(challenges(resp.headers()), both_challenges(&ks));
    assert_eq!(refusing.hits(), 1);
}
