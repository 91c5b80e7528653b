//! The tower layer in-process, as an embedder uses it: `stack::build` from
//! checked settings, `AuthTokenLayer` around an echo service, requests sent
//! with `oneshot`, real Keystone tokens. What the inner service receives is
//! what an embedder's handler would see.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use stonegate::{config, metrics::Metrics, stack, AuthContext, AuthTokenLayer};
use tower::{service_fn, ServiceExt};
use tower_layer::Layer;

use crate::harness::{Keystone, IDENTITY_HEADERS};

/// Settings for the harness Keystone, with `extra` `[keystone_authtoken]` lines.
fn settings(ks: &Keystone, extra: &str) -> config::Settings {
    let text = format!(
        "listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\nupstream = \"http://127.0.0.1:3\"\n\
         [keystone_authtoken]\nauth_url = {auth:?}\nwww_authenticate_uri = {auth:?}\n\
         username = \"svc\"\nuser_domain_name = \"Default\"\nproject_name = \"service\"\n\
         project_domain_name = \"Default\"\nservice_type = \"compute\"\n{extra}\n",
        auth = ks.auth_url,
    );
    let password = ks.password("svc");
    config::File::parse(&text)
        .expect("test config parses")
        .build(&|k| (k == "STONEGATE_PASSWORD").then(|| password.clone()))
        .expect("test config builds")
}

/// The inner service: answers `status`, echoing the identity headers and
/// whether an `AuthContext` arrived in the extensions.
fn echo(
    status: StatusCode,
) -> impl tower_service::Service<
    Request<Empty<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<Empty<Bytes>>| async move {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = status;
        for (name, value) in req.headers() {
            if IDENTITY_HEADERS.contains(&name.as_str()) {
                resp.headers_mut().append(name.clone(), value.clone());
            }
        }
        if let Some(ctx) = req.extensions().get::<AuthContext>() {
            let user = ctx
                .user
                .as_ref()
                .and_then(|u| u.user.id.clone())
                .unwrap_or_default();
            resp.headers_mut()
                .insert("x-test-context-user", user.parse().unwrap());
        }
        Ok::<_, Infallible>(resp)
    })
}

fn request(headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut req = Request::get("/v2.1/servers").body(Empty::new()).unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    req
}

async fn body_json(
    resp: Response<impl http_body::Body<Error = impl std::fmt::Debug>>,
) -> (StatusCode, HeaderMap, serde_json::Value) {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn forged_headers_are_stripped_and_the_identity_reaches_the_inner_service() {
    let ks = Keystone::from_env();
    let metrics = Metrics::unregistered();
    let stack = stack::build(&settings(&ks, ""), &metrics).unwrap();
    let layer = AuthTokenLayer::new(stack.gate.clone(), metrics);
    let token = ks.demo_token().await;
    let resp = layer
        .layer(echo(StatusCode::OK))
        .oneshot(request(&[
            ("X-Auth-Token", &token),
            ("X-User-Id", "forged-user"),
            ("X_Roles", "forged-admin"),
            ("X-Is-Admin-Project", "forged-True"),
        ]))
        .await
        .unwrap();
    let (status, headers, _) = body_json(resp).await;
    assert_eq!(status, StatusCode::OK);
    let demo = ks.user_id("demo");
    assert_eq!(headers.get("x-user-id").unwrap(), demo.as_str());
    assert_eq!(headers.get_all("x-user-id").iter().count(), 1);
    assert_eq!(headers.get("x-identity-status").unwrap(), "Confirmed");
    assert_eq!(headers.get_all("x-is-admin-project").iter().count(), 1);
    for (name, value) in &headers {
        assert!(
            !value.to_str().unwrap().contains("forged"),
            "forged value reached the inner service: {name}: {value:?}"
        );
    }
    assert_eq!(headers.get("x-test-context-user").unwrap(), demo.as_str());
}

#[tokio::test]
async fn no_token_is_a_401_with_www_authenticate_and_a_json_body_the_inner_service_never_sees() {
    let ks = Keystone::from_env();
    let metrics = Metrics::unregistered();
    let stack = stack::build(&settings(&ks, ""), &metrics).unwrap();
    let layer = AuthTokenLayer::new(stack.gate.clone(), metrics);
    let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = called.clone();
    let inner = service_fn(move |_req: Request<Empty<Bytes>>| {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
    });
    let resp = layer
        .layer(inner)
        .oneshot(request(&[("X-User-Id", "forged-user")]))
        .await
        .unwrap();
    let (status, headers, json) = body_json(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers.get("www-authenticate").unwrap(),
        format!("Keystone uri=\"{}\"", ks.auth_url).as_str()
    );
    assert_eq!(json["error"]["code"], 401);
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn delay_auth_decision_passes_invalid_with_identity_status_invalid_and_nothing_forged() {
    let ks = Keystone::from_env();
    let metrics = Metrics::unregistered();
    let stack = stack::build(&settings(&ks, "delay_auth_decision = true"), &metrics).unwrap();
    let layer = AuthTokenLayer::new(stack.gate.clone(), metrics);
    let resp = layer
        .layer(echo(StatusCode::OK))
        .oneshot(request(&[
            ("X-Auth-Token", "not-a-token"),
            ("X-Identity-Status", "Confirmed"),
            ("X-User-Id", "forged-user"),
        ]))
        .await
        .unwrap();
    let (status, headers, _) = body_json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("x-identity-status").unwrap(), "Invalid");
    assert_eq!(headers.get_all("x-identity-status").iter().count(), 1);
    assert!(headers.get("x-user-id").is_none());
}

#[tokio::test]
async fn the_inner_services_401_gets_www_authenticate() {
    let ks = Keystone::from_env();
    let metrics = Metrics::unregistered();
    let stack = stack::build(&settings(&ks, ""), &metrics).unwrap();
    let layer = AuthTokenLayer::new(stack.gate.clone(), metrics);
    let token = ks.demo_token().await;
    let resp = layer
        .layer(echo(StatusCode::UNAUTHORIZED))
        .oneshot(request(&[("X-Auth-Token", &token)]))
        .await
        .unwrap();
    let (status, headers, _) = body_json(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers.get("www-authenticate").unwrap(),
        format!("Keystone uri=\"{}\"", ks.auth_url).as_str()
    );
}
