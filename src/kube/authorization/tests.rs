//! SubjectAccessReview bodies as the apiserver sends them
//! (tests/fixtures/kube/README.md), decided with k8s-keystone-auth's own
//! example policies.

use super::{review, Error, SubjectAccessReview};
use crate::kube::policy::{Policy, Reason, Request};

fn read(name: &str) -> String {
    let path = format!("{}/tests/fixtures/kube/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

fn policy(name: &str) -> Policy {
    Policy::parse(&read(name)).unwrap()
}

fn answer(body: &str, policy: &Policy) -> serde_json::Value {
    let review = SubjectAccessReview::from_slice(body.as_bytes()).unwrap();
    let (_, answer) = review.answer(Some(policy)).unwrap();
    serde_json::to_value(answer).unwrap()
}

#[test]
fn v1_review_allowed_by_the_example_configmap() {
    let body = read("sar-v1-pods-get.json");
    let got = answer(&body, &policy("keystone-policy-configmap.yaml"));
    assert_eq!(
        got,
        serde_json::json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "status": {"allowed": true, "reason": "allowed by rule 1 of the Keystone policy"}
        })
    );
}

/// Not allowed is no opinion: `allowed: false`, no `denied`, so the
/// apiserver goes on to RBAC.
#[test]
fn not_granted_is_no_opinion_never_denied() {
    let body = read("sar-v1-pods-exec.json");
    let got = answer(&body, &policy("keystone-policy-configmap.yaml"));
    assert_eq!(
        got,
        serde_json::json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "status": {"allowed": false, "reason": "No policy matched."}
        })
    );
    // A service account (no Keystone extra) is never granted.
    let body = read("sar-v1-serviceaccount-version.json");
    let open = Policy::parse(r#"[{"nonresource": {"verbs": ["*"], "path": "*"}}]"#).unwrap();
    let got = answer(&body, &open);
    assert_eq!(
        got["status"],
        serde_json::json!({"allowed": false, "reason": "No auth info found."})
    );
}

/// The Kubernetes reference's v1beta1 examples: `group` (not `groups`)
/// carries the groups there, and the answer echoes `v1beta1`.
#[test]
fn v1beta1_reference_bodies() {
    let review =
        SubjectAccessReview::from_slice(read("sar-v1beta1-resource.json").as_bytes()).unwrap();
    assert_eq!(review.groups(), ["group1", "group2"]);
    let attributes = review.attributes().unwrap();
    assert_eq!(attributes.user.name, "jane");
    assert!(matches!(
        attributes.request,
        Request::Resource {
            verb: "get",
            namespace: "kittensandponies",
            group: "unicorn.example.org",
            resource: "pods",
            subresource: ""
        }
    ));
    let by_group = Policy::parse(
        r#"[{"resource": {"verbs": ["get"], "resources": ["pods"], "version": "unicorn.example.org", "namespace": "kittensandponies"},
             "match": [{"type": "group", "values": ["group2"]}]},
            {"nonresource": {"verbs": ["get"], "path": "/debug"}, "match": [{"type": "user", "values": ["jane"]}]}]"#,
    )
    .unwrap();
    // No extra at all: k8s-keystone-auth refuses before any rule.
    let got = answer(&read("sar-v1beta1-resource.json"), &by_group);
    assert_eq!(got["apiVersion"], "authorization.k8s.io/v1beta1");
    assert_eq!(got["status"]["allowed"], false);
    // With an extra (any), the group and user rules decide.
    for name in ["sar-v1beta1-resource.json", "sar-v1beta1-nonresource.json"] {
        let mut body: serde_json::Value = serde_json::from_str(&read(name)).unwrap();
        body["spec"]["extra"] = serde_json::json!({});
        let got = answer(&body.to_string(), &by_group);
        assert_eq!(got["status"]["allowed"], true, "{name}");
        body["spec"]["user"] = "joe".into();
        body["spec"]["group"] = serde_json::json!(["group3"]);
        let got = answer(&body.to_string(), &by_group);
        assert_eq!(got["status"]["allowed"], false, "{name}");
    }
}

/// `groups` is read from the field of the body's version only.
#[test]
fn groups_field_follows_the_version() {
    let body = |version: &str, field: &str| {
        format!(
            r#"{{"apiVersion": "authorization.k8s.io/{version}", "kind": "SubjectAccessReview",
                "spec": {{"nonResourceAttributes": {{"path": "/x", "verb": "get"}}, "user": "u",
                          "{field}": ["admins"], "extra": {{}}}}}}"#
        )
    };
    let p = Policy::parse(
        r#"[{"nonresource": {"verbs": ["get"], "path": "/x"}, "match": [{"type": "group", "values": ["admins"]}]}]"#,
    )
    .unwrap();
    assert_eq!(answer(&body("v1", "groups"), &p)["status"]["allowed"], true);
    assert_eq!(
        answer(&body("v1beta1", "group"), &p)["status"]["allowed"],
        true
    );
    assert_eq!(answer(&body("v1", "group"), &p)["status"]["allowed"], false);
    assert_eq!(
        answer(&body("v1beta1", "groups"), &p)["status"]["allowed"],
        false
    );
}

/// The body of k8s-keystone-auth's docs (`curl ... /webhook`), which has a
/// stray `"groups": ""` in `resourceAttributes`: still read, as the
/// apiserver ignores unknown fields.
#[test]
fn docs_curl_body_with_a_stray_field() {
    let body = r#"{
    "apiVersion": "authorization.k8s.io/v1",
    "kind": "SubjectAccessReview",
    "spec": {
      "resourceAttributes": {
        "namespace": "default",
        "verb": "get",
        "groups": "",
        "resource": "pods",
        "name": "pod1"
      },
      "user": "demo",
      "groups": ["423d41d3a02f4b77b4a9bbfbc3a1b3c6"],
      "extra": {
          "alpha.kubernetes.io/identity/project/id": ["423d41d3a02f4b77b4a9bbfbc3a1b3c6"],
          "alpha.kubernetes.io/identity/project/name": ["demo"],
          "alpha.kubernetes.io/identity/roles": ["load-balancer_member","member"]
      }
    }
  }"#;
    let p = policy("keystone-policy-configmap.yaml");
    assert_eq!(answer(body, &p)["status"]["allowed"], true);
    let review =
        SubjectAccessReview::from_slice(body.replace("\"get\"", "\"create\"").as_bytes()).unwrap();
    let (decision, _) = review.answer(Some(&p)).unwrap();
    assert!(!decision.allowed);
    assert_eq!(decision.reason, Reason::NoPolicyMatched);
}

#[test]
fn other_kinds_versions_and_shapes_are_refused() {
    let refused = |body: &str| SubjectAccessReview::from_slice(body.as_bytes()).unwrap_err();
    let tr = r#"{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "x"}}"#;
    assert!(matches!(refused(tr), Error::Version { .. }));
    let v2 = r#"{"apiVersion": "authorization.k8s.io/v2", "kind": "SubjectAccessReview",
                 "spec": {"nonResourceAttributes": {"path": "/", "verb": "get"}}}"#;
    assert!(matches!(refused(v2), Error::Version { .. }));
    let none = r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"user": "u"}}"#;
    assert_eq!(refused(none), Error::NoAttributes);
    assert!(matches!(refused("not json"), Error::Invalid(_)));
    let bad_extra = r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                        "spec": {"nonResourceAttributes": {"path": "/", "verb": "get"}, "extra": {"k": "v"}}}"#;
    assert!(matches!(refused(bad_extra), Error::Invalid(_)));
}

/// The webhook's entry point: 200 with the answer, 400 naming what is
/// wrong, and no opinion without a policy file.
#[test]
fn review_entry_point() {
    let body = read("sar-v1-pods-get.json");
    let p = policy("keystone-policy-configmap.yaml");
    let (status, doc) = review(Some(&p), body.as_bytes());
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(doc["status"]["allowed"], true);
    let (status, doc) = review(None, body.as_bytes());
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(
        doc["status"],
        serde_json::json!({"allowed": false, "reason": "no Keystone policy is configured ([kubernetes] policy_file)"})
    );
    let (status, doc) = review(
        Some(&p),
        br#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {}}"#,
    );
    assert_eq!(status, http::StatusCode::BAD_REQUEST);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("resourceAttributes"),
        "{doc}"
    );
}
