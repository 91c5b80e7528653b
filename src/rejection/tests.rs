//! Tests of the answer table: each rejection's status, JSON body, headers
//! and outcome, and the validator's denials mapped to them.

use std::sync::Arc;

use http_body_util::BodyExt;

use super::*;

const WWW: HeaderValue = HeaderValue::from_static("Keystone uri=\"http://ks/v3\"");
const BEARER: HeaderValue =
    HeaderValue::from_static("Bearer realm=\"http://ks/v3\", error=\"invalid_token\"");

fn keystone_only() -> Challenges {
    Challenges::new(WWW, None)
}

/// Status, `error.title`, and every header besides `Content-Type`.
type Row = (
    Response<Full<Bytes>>,
    u16,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

fn rows() -> Vec<Row> {
    let r = |x: Rejection| x.into_response(&keystone_only());
    let both = Challenges::new(WWW, Some(BEARER));
    let s = |x: SessionRejection| x.into_response();
    let www = "Keystone uri=\"http://ks/v3\"";
    let no_store = ("cache-control", "no-store");
    vec![
        (
            r(Rejection::AmbiguousPath(path::Ambiguous::DotSegment)),
            400,
            "Bad Request",
            vec![],
        ),
        (
            r(Rejection::Unauthorized),
            401,
            "Unauthorized",
            vec![("www-authenticate", www)],
        ),
        (
            Rejection::Unauthorized.into_response(&both),
            401,
            "Unauthorized",
            vec![
                ("www-authenticate", www),
                (
                    "www-authenticate",
                    "Bearer realm=\"http://ks/v3\", error=\"invalid_token\"",
                ),
            ],
        ),
        (
            Rejection::ConflictingTokens.into_response(&both),
            400,
            "Bad Request",
            vec![],
        ),
        (
            r(Rejection::KeystoneUnavailable(Arc::new(
                keystone::Error::Timeout,
            ))),
            503,
            "Service Unavailable",
            vec![("retry-after", "5")],
        ),
        (
            r(Rejection::Forbidden {
                rule: "read".into(),
            }),
            403,
            "Forbidden",
            vec![],
        ),
        (r(Rejection::UnknownService), 403, "Forbidden", vec![]),
        (
            r(Rejection::UpstreamUnavailable("refused".into())),
            502,
            "Bad Gateway",
            vec![],
        ),
        (
            r(Rejection::UpstreamTimeout),
            504,
            "Gateway Timeout",
            vec![],
        ),
        (
            s(SessionRejection::SessionInvalid),
            401,
            "Unauthorized",
            vec![no_store],
        ),
        (
            s(SessionRejection::Csrf {
                header: HeaderName::from_static("x-csrf-token"),
            }),
            403,
            "Forbidden",
            vec![no_store],
        ),
        (
            s(SessionRejection::CrossOriginUpgrade {
                origin: "https://evil".into(),
            }),
            403,
            "Forbidden",
            vec![no_store],
        ),
        (
            s(SessionRejection::CrossOriginLogin {
                origin: "https://evil".into(),
            }),
            403,
            "Forbidden",
            vec![no_store],
        ),
        (
            s(SessionRejection::MethodNotAllowed),
            405,
            "Method Not Allowed",
            vec![no_store, ("allow", "POST")],
        ),
        (
            s(SessionRejection::UnsupportedMediaType),
            415,
            "Unsupported Media Type",
            vec![no_store],
        ),
        (
            s(SessionRejection::LoginBodyTooLarge),
            413,
            "Payload Too Large",
            vec![no_store],
        ),
        (
            s(SessionRejection::LoginBodyTimeout(
                std::time::Duration::from_secs(10),
            )),
            408,
            "Request Timeout",
            vec![no_store],
        ),
        (
            s(SessionRejection::LoginBodyUnreadable),
            400,
            "Bad Request",
            vec![no_store],
        ),
        (
            s(SessionRejection::LoginBodyInvalid),
            400,
            "Bad Request",
            vec![no_store],
        ),
        (
            s(SessionRejection::MissingCredentials),
            400,
            "Bad Request",
            vec![no_store],
        ),
        (
            s(SessionRejection::Throttled {
                retry_after: Duration::from_secs(42),
            }),
            429,
            "Too Many Requests",
            vec![no_store, ("retry-after", "42")],
        ),
        (
            s(SessionRejection::LoginRefused {
                www_authenticate: WWW,
            }),
            401,
            "Unauthorized",
            vec![no_store, ("www-authenticate", www)],
        ),
        (
            s(SessionRejection::LoginNotUnderstood),
            400,
            "Bad Request",
            vec![no_store],
        ),
        (
            s(SessionRejection::LoginKeystoneUnavailable),
            503,
            "Service Unavailable",
            vec![no_store, ("retry-after", "5")],
        ),
        (
            s(SessionRejection::LogoutKeystoneUnavailable),
            503,
            "Service Unavailable",
            vec![no_store, ("retry-after", "5")],
        ),
        (
            s(SessionRejection::SessionNotCreated),
            500,
            "Internal Server Error",
            vec![no_store],
        ),
    ]
}

#[tokio::test]
async fn every_rejection_has_its_status_json_body_and_headers() {
    let rows = rows();
    // One row per variant of both tables (and 401 with both challenges).
    assert_eq!(rows.len(), 9 + 17);
    for (resp, status, title, headers) in rows {
        assert_eq!(resp.status().as_u16(), status, "{title}");
        let mut got: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> = headers
            .iter()
            .chain(&[("content-type", "application/json")])
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        want.sort();
        assert_eq!(got, want, "{status} {title}: headers");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let error = json["error"].as_object().unwrap();
        assert_eq!(json.as_object().unwrap().len(), 1, "{status}: only `error`");
        assert_eq!(error.len(), 3, "{status}: code, title, message");
        assert_eq!(error["code"], status);
        assert_eq!(error["title"], title);
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
}

#[test]
fn validator_denials_become_their_rejections() {
    let e = Arc::new(keystone::Error::Timeout);
    assert!(matches!(
        Rejection::from(Denied::Unauthorized),
        Rejection::Unauthorized
    ));
    assert!(matches!(
        Rejection::from(Denied::KeystoneUnavailable(e.clone())),
        Rejection::KeystoneUnavailable(k) if Arc::ptr_eq(&k, &e)
    ));
    assert!(matches!(
        Rejection::from(Denied::Forbidden { rule: "read".into() }),
        Rejection::Forbidden { rule } if rule == "read"
    ));
}

#[tokio::test]
async fn a_forbidden_answer_names_the_rule_as_oslo_policy_does() {
    let resp = Rejection::Forbidden {
        rule: "servers:read".into(),
    }
    .into_response(&keystone_only());
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("www-authenticate").is_none());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["error"]["message"],
        "Policy doesn't allow servers:read to be performed."
    );
}

#[test]
fn rejections_count_under_their_outcomes() {
    use Outcome::*;
    for (r, o) in [
        (
            Rejection::AmbiguousPath(path::Ambiguous::DotSegment),
            AmbiguousPath,
        ),
        (Rejection::Unauthorized, Unauthorized),
        (
            Rejection::KeystoneUnavailable(Arc::new(keystone::Error::Timeout)),
            KeystoneUnavailable,
        ),
        (
            Rejection::UpstreamUnavailable(String::new()),
            UpstreamUnavailable,
        ),
        (Rejection::UpstreamTimeout, UpstreamTimeout),
        (Rejection::Forbidden { rule: "r".into() }, Forbidden),
        (Rejection::UnknownService, Forbidden),
    ] {
        assert_eq!(r.outcome(), o, "{r}");
        assert_eq!(UpstreamFailure::from_rejection(&r).0, o);
    }
}
