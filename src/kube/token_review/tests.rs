use super::*;
use crate::identity::{Named, Project};

/// The request body of the Kubernetes API reference's webhook token
/// authentication example (v1), token replaced.
const V1_REQUEST: &str = r#"{
  "apiVersion": "authentication.k8s.io/v1",
  "kind": "TokenReview",
  "spec": {
    "token": "gAAAAABexampletoken",
    "audiences": ["https://myserver.example.com", "https://myserver.internal.example.com"]
  }
}"#;

const V1BETA1_REQUEST: &str = r#"{
  "apiVersion": "authentication.k8s.io/v1beta1",
  "kind": "TokenReview",
  "spec": {"token": "gAAAAABexampletoken"}
}"#;

fn named(id: &str, name: &str) -> Named {
    Named {
        id: Some(id.into()),
        name: Some(name.into()),
    }
}

fn identity(scope: Scope) -> Identity {
    Identity {
        user: named("u1", "alice"),
        user_domain: named("default", "Default"),
        scope,
        roles: vec!["member".into(), "reader".into()].into(),
        role_ids: Default::default(),
        is_admin_project: false,
        expires_at: 0,
        issued_at: 0,
        audit_ids: Default::default(),
        methods: Default::default(),
        catalog: None,
        extras: None,
        rendered: Default::default(),
    }
}

#[test]
fn both_versions_parse_and_the_answer_echoes_the_version() {
    let r = Review::parse(V1_REQUEST.as_bytes()).unwrap();
    assert_eq!(r.version, Version::V1);
    assert_eq!(r.token.as_ref().unwrap().expose(), "gAAAAABexampletoken");
    assert_eq!(r.audiences.len(), 2);
    let b = Review::parse(V1BETA1_REQUEST.as_bytes()).unwrap();
    assert_eq!(b.version, Version::V1beta1);
    assert_eq!(
        answer(&b, None),
        json!({"apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview",
               "status": {"authenticated": false}})
    );
}

#[test]
fn other_kinds_and_versions_are_refused() {
    assert_eq!(
        Review::parse(br#"{"apiVersion":"authentication.k8s.io/v2","kind":"TokenReview"}"#)
            .unwrap_err(),
        BadReview::Version("authentication.k8s.io/v2".into())
    );
    assert!(matches!(
        Review::parse(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SubjectAccessReview"}"#),
        Err(BadReview::Kind(_))
    ));
    assert!(matches!(Review::parse(b"{"), Err(BadReview::Malformed(_))));
}

#[test]
fn a_project_token_maps_as_k8s_keystone_auth_does() {
    let id = identity(Scope::Project(std::sync::Arc::new(Project {
        project: named("p1", "demo"),
        domain: named("default", "Default"),
    })));
    let u = UserInfo::of(&id, &["developers".into()], true).unwrap();
    assert_eq!((u.username.as_str(), u.uid.as_str()), ("alice", "u1"));
    assert_eq!(u.groups, ["developers", "p1"]);
    let r = Review::parse(V1_REQUEST.as_bytes()).unwrap();
    let a = answer(&r, Some(&u));
    assert_eq!(a["status"]["authenticated"], true);
    assert_eq!(
        a["status"]["user"]["extra"],
        json!({
            "alpha.kubernetes.io/identity/project/id": ["p1"],
            "alpha.kubernetes.io/identity/project/name": ["demo"],
            "alpha.kubernetes.io/identity/roles": ["member", "reader"],
            "alpha.kubernetes.io/identity/user/domain/id": ["default"],
            "alpha.kubernetes.io/identity/user/domain/name": ["Default"],
        })
    );
    assert_eq!(a["status"]["audiences"], json!(r.audiences));
}

#[test]
fn a_domain_scoped_or_unscoped_token_is_not_a_kubernetes_user() {
    assert!(UserInfo::of(&identity(Scope::Domain(named("d", "D"))), &[], true).is_none());
    assert!(UserInfo::of(&identity(Scope::Unscoped), &[], true).is_none());
}

#[test]
fn unless_project_scope_is_relaxed_then_no_project_group_or_keys() {
    let u = UserInfo::of(
        &identity(Scope::Domain(named("d", "D"))),
        &["developers".into()],
        false,
    )
    .unwrap();
    assert_eq!(u.groups, ["developers"]);
    assert_eq!(
        u.extra.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "alpha.kubernetes.io/identity/roles",
            "alpha.kubernetes.io/identity/user/domain/id",
            "alpha.kubernetes.io/identity/user/domain/name",
        ]
    );
}
