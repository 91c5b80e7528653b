use super::*;
use envoy_types::pb::envoy::{
    config::core::v3::{HeaderMap as RawHeaders, HeaderValue as RawHeader},
    service::auth::v3::{
        attribute_context::{HttpRequest, Request},
        AttributeContext,
    },
};

fn check(headers: &[(&str, &str)], raw: Option<&[(&str, &str)]>) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                time: None,
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/v2.1/servers?x=1".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    header_map: raw.map(|r| RawHeaders {
                        headers: r
                            .iter()
                            .map(|(k, v)| RawHeader {
                                key: (*k).to_owned(),
                                raw_value: v.as_bytes().to_vec(),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

#[test]
fn a_comma_merged_token_header_becomes_the_two_values_envoy_joined() {
    let o = Original::from_check(&check(&[("x-auth-token", "aaa,bbb")], None)).unwrap();
    let values: Vec<_> = o.headers.get_all("x-auth-token").iter().collect();
    assert_eq!(values, ["aaa", "bbb"]);
    // Other headers keep their commas (a list is one value there).
    let o = Original::from_check(&check(&[("accept", "a, b")], None)).unwrap();
    assert_eq!(o.headers["accept"], "a, b");
}

#[test]
fn pseudo_headers_are_not_request_headers_and_bad_names_are_kept_for_removal() {
    let o = Original::from_check(&check(
        &[(":path", "/x"), (":authority", "h"), ("x user id", "v")],
        None,
    ))
    .unwrap();
    assert!(o.headers.is_empty());
    assert_eq!(o.invalid_names, ["x user id"]);
    assert_eq!(o.method, Some(Method::GET));
    assert_eq!(o.target, "/v2.1/servers?x=1");
}

#[test]
fn raw_headers_arrive_apart_and_repeat() {
    let o = Original::from_check(&check(
        &[],
        Some(&[("x-auth-token", "aaa"), ("x-auth-token", "aaa")]),
    ))
    .unwrap();
    assert_eq!(o.headers.get_all("x-auth-token").iter().count(), 2);
}

#[test]
fn without_http_attributes_there_is_nothing_to_decide() {
    assert!(Original::from_check(&CheckRequest { attributes: None }).is_none());
}

#[test]
fn an_ok_answer_never_removes_a_header_it_sets() {
    let mut set = HeaderMap::new();
    set.insert("x-user-id", HeaderValue::from_static("u1"));
    set.insert("x-roles", HeaderValue::from_static(""));
    let r = ok(
        set,
        vec!["x-user-id".into(), "x_user_id".into(), "x-domain-id".into()],
        None,
    );
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not OK")
    };
    assert_eq!(ok.headers_to_remove, ["x_user_id", "x-domain-id"]);
    assert_eq!(ok.headers.len(), 2);
    assert!(ok.headers.iter().all(|h| h.keep_empty_value
        && h.append_action == HeaderAppendAction::OverwriteIfExistsOrAdd as i32));
    assert_eq!(r.status.map(|s| s.code), Some(0));
}

#[test]
fn the_grpc_services_answer_only_grpc_requests_on_their_paths() {
    let req = |ct: &str, path: &str| {
        http::Request::builder()
            .uri(path)
            .header("content-type", ct)
            .body(())
            .unwrap()
    };
    let is = |ct: &str, path: &str| is_grpc_call(&req(ct, path));
    assert!(is(
        "application/grpc",
        "/envoy.service.auth.v3.Authorization/Check"
    ));
    assert!(is("application/grpc+proto", "/grpc.health.v1.Health/Check"));
    assert!(!is(
        "application/json",
        "/envoy.service.auth.v3.Authorization/Check"
    ));
    assert!(!is("application/grpc", "/v2.1/servers"));
}
