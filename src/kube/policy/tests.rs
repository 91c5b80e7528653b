//! k8s-keystone-auth's own policies (tests/fixtures/kube/, copied from
//! cloud-provider-openstack, see its README) and its Go unit tests
//! (`pkg/identity/keystone/authorizer_test.go`, `TestAuthorizer` and
//! `TestAuthorizerVersion2`) translated case by case: they are the oracle.

use std::collections::BTreeMap;

use super::{Attributes, Error, Policy, Reason, Request, User, PROJECT_ID, PROJECT_NAME, ROLES};

fn fixture(name: &str) -> Policy {
    let path = format!("{}/tests/fixtures/kube/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    Policy::parse(&text).unwrap()
}

/// A user as the Go tests build one (`user.DefaultInfo`).
struct Who {
    name: &'static str,
    groups: Vec<String>,
    extra: Option<BTreeMap<String, Vec<String>>>,
}

fn who(name: &'static str, groups: &[&str], extra: &[(&str, &[&str])]) -> Who {
    let extra = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
        .collect();
    Who {
        name,
        groups: groups.iter().map(|s| (*s).to_owned()).collect(),
        extra: Some(extra),
    }
}

impl Who {
    fn user(&self) -> User<'_> {
        User {
            name: self.name,
            uid: "",
            groups: &self.groups,
            extra: self.extra.as_ref(),
        }
    }
}

fn resource<'a>(verb: &'a str, namespace: &'a str, resource: &'a str) -> Request<'a> {
    Request::Resource {
        verb,
        namespace,
        group: "",
        resource,
        subresource: "",
    }
}

fn allowed(policy: &Policy, user: &Who, request: Request<'_>) -> bool {
    policy
        .decide(&Attributes {
            user: user.user(),
            request,
        })
        .allowed
}

#[test]
fn go_test_authorizer_version_1() {
    let p = fixture("authorizer_test_policy.json");
    let user1 = who(
        "user1",
        &["group1"],
        &[(PROJECT_NAME, &["project1"]), (ROLES, &["role1"])],
    );
    let user2 = who(
        "user2",
        &["group2"],
        &[(PROJECT_NAME, &["project2"]), (ROLES, &["role2"])],
    );
    let r = |verb, res| resource(verb, "", res);
    let nr = |verb, path| Request::NonResource { verb, path };
    let cases: &[(&Who, Request<'_>, bool)] = &[
        // Resource user match.
        (&user1, r("get", "user_resource1"), true),
        (&user1, r("list", "user_resource2"), true),
        (&user1, r("patch", "user_resource1"), false),
        (&user2, r("get", "user_resource1"), false),
        // Resource group match.
        (&user1, r("get", "group_resource"), true),
        (&user1, r("patch", "group_resource"), false),
        (&user2, r("get", "group_resource"), false),
        // Resource group and role match (role3 missing).
        (&user1, r("get", "group_role_resource"), false),
        // Resource project match.
        (&user1, r("get", "project_resource"), true),
        (&user1, r("patch", "project_resource"), false),
        (&user2, r("get", "project_resource"), false),
        // Resource role match.
        (&user1, r("get", "role_resource"), true),
        (&user1, r("patch", "role_resource"), false),
        (&user2, r("get", "role_resource"), false),
        // Core API group: "version": "" is the core group only.
        (&user1, r("get", "core_resource"), true),
        (
            &user1,
            Request::Resource {
                verb: "get",
                namespace: "",
                group: "NonCoreAPIGroup",
                resource: "core_resource",
                subresource: "",
            },
            false,
        ),
        // Non-resource user, group, project, role match.
        (&user1, nr("get", "/user"), true),
        (&user1, nr("patch", "/user"), false),
        (&user2, nr("get", "/user"), false),
        (&user1, nr("get", "/group"), true),
        (&user1, nr("patch", "/group"), false),
        (&user2, nr("get", "/group"), false),
        (&user1, nr("get", "/project"), true),
        (&user1, nr("patch", "/project"), false),
        (&user2, nr("get", "/project"), false),
        (&user1, nr("get", "/role"), true),
        (&user1, nr("patch", "/role"), false),
        (&user2, nr("get", "/role"), false),
        // Unknown match type: never matches, even with "*" values.
        (&user1, r("get", "unknown_type_resource"), false),
        // Non-resource exact and trailing-* paths.
        (&user1, nr("get", "/api"), true),
        (&user1, nr("get", "/imaginary_api/path/none"), false),
        (&user1, nr("get", "/api/represents/wildcard"), true),
    ];
    for (i, (user, request, expected)) in cases.iter().enumerate() {
        assert_eq!(
            allowed(&p, user, *request),
            *expected,
            "case {i}: {request:?}"
        );
    }
    // Subresources: an exact "res/sub" entry, and "res/*".
    let sub = |resource, subresource| Request::Resource {
        verb: "get",
        namespace: "",
        group: "",
        resource,
        subresource,
    };
    assert!(allowed(&p, &user1, sub("user_resource1", "subresource1")));
    assert!(!allowed(&p, &user1, sub("user_resource1", "subresource2")));
    assert!(allowed(
        &p,
        &user1,
        sub("user_resource3", "wildcard_resource")
    ));
}

#[test]
fn go_test_authorizer_version_2() {
    let p = fixture("authorizer_test_policy_version2.json");
    let developer = who(
        "developer",
        &["group1"],
        &[(PROJECT_NAME, &["demo"]), (ROLES, &["developer"])],
    );
    let viewer = who(
        "viewer",
        &["group2"],
        &[
            (PROJECT_NAME, &["demo"]),
            (PROJECT_ID, &["ff9db8980cf24a74bc9dd796b6ce811f"]),
            (ROLES, &["viewer"]),
        ],
    );
    let anotherviewer = who(
        "anotherviewer",
        &["group"],
        &[
            (PROJECT_NAME, &["alt_demo"]),
            (PROJECT_ID, &["cd08a539b7c845ddb92c5d08752101d1"]),
            (ROLES, &["viewer"]),
        ],
    );
    let clusteradmin = who(
        "clusteradmin",
        &["group2"],
        &[(PROJECT_NAME, &["demo"]), (ROLES, &["clusteradmin"])],
    );
    let testuser1 = Who {
        name: "test1",
        groups: vec!["group".into()],
        extra: None,
    };
    let testuser2 = who(
        "test2",
        &["group"],
        &[(PROJECT_NAME, &["demo"]), (ROLES, &["testuser"])],
    );
    let nr = |verb, path| Request::NonResource { verb, path };
    let cases: &[(&Who, Request<'_>, bool)] = &[
        (&developer, resource("get", "default", "pods"), true),
        (&developer, resource("get", "default", "clusterroles"), true),
        (&developer, resource("get", "", "clusterroles"), true),
        (
            &developer,
            resource("create", "", "clusterrolebindings"),
            false,
        ),
        // Resource names in the policy are lowercased ('podSecurityPolicies').
        (&developer, resource("get", "", "podsecuritypolicies"), true),
        (&viewer, resource("get", "default", "deployments"), true),
        (&viewer, resource("get", "kube-system", "services"), false),
        (&viewer, resource("create", "default", "pods"), false),
        // The project matched by id instead of name.
        (
            &anotherviewer,
            resource("get", "default", "deployments"),
            true,
        ),
        (
            &anotherviewer,
            resource("get", "kube-system", "services"),
            false,
        ),
        (&anotherviewer, resource("create", "default", "pods"), false),
        (&clusteradmin, resource("create", "", "clusterroles"), true),
        (
            &clusteradmin,
            resource("get", "kube-system", "secrets"),
            true,
        ),
        (&developer, nr("get", "/healthz"), false),
        (&viewer, nr("get", "/healthz"), false),
        (&clusteradmin, nr("get", "/healthz"), true),
        // No extra: no auth info, refused.
        (&testuser1, resource("get", "", "namespaces"), false),
        (&testuser1, resource("get", "default", "pods"), false),
        (&testuser2, resource("get", "", "namespaces"), true),
        (&testuser2, resource("get", "", "pods"), false),
        (&testuser2, resource("get", "default", "pods"), true),
    ];
    for (i, (user, request, expected)) in cases.iter().enumerate() {
        assert_eq!(
            allowed(&p, user, *request),
            *expected,
            "case {i}: {request:?}"
        );
    }
    let d = p.decide(&Attributes {
        user: testuser1.user(),
        request: resource("get", "default", "pods"),
    });
    assert_eq!(d.reason, Reason::NoAuthInfo);
    let d = p.decide(&Attributes {
        user: developer.user(),
        request: resource("get", "default", "pods"),
    });
    assert_eq!(d.reason, Reason::Rule(1));
}

/// `examples/webhook/policy.json`: k8s roles in one project may read pods
/// in `default`.
#[test]
fn example_webhook_policy_json() {
    let p = fixture("examples-webhook-policy.json");
    let project = "c1f7910086964990847dc6c8b128f63c";
    let viewer = who(
        "alice",
        &[project],
        &[(PROJECT_ID, &[project]), (ROLES, &["member", "k8s-viewer"])],
    );
    let member = who(
        "bob",
        &[project],
        &[(PROJECT_ID, &[project]), (ROLES, &["member"])],
    );
    let elsewhere = who(
        "carol",
        &[],
        &[(PROJECT_ID, &["0000"]), (ROLES, &["k8s-admin"])],
    );
    for verb in ["get", "list", "watch"] {
        assert!(allowed(&p, &viewer, resource(verb, "default", "pods")));
    }
    assert!(!allowed(&p, &viewer, resource("delete", "default", "pods")));
    assert!(!allowed(
        &p,
        &viewer,
        resource("get", "kube-system", "pods")
    ));
    assert!(!allowed(&p, &viewer, resource("get", "default", "secrets")));
    assert!(!allowed(&p, &member, resource("get", "default", "pods")));
    assert!(!allowed(&p, &elsewhere, resource("get", "default", "pods")));
}

/// `examples/webhook/keystone-policy-configmap.yaml`, the ConfigMap
/// manifest as shipped (version 2: `member` of `demo` may read pods
/// anywhere).
#[test]
fn example_policy_configmap_yaml() {
    let p = fixture("keystone-policy-configmap.yaml");
    assert_eq!(p.len(), 1);
    let demo = who(
        "demo",
        &[],
        &[
            (PROJECT_NAME, &["demo"]),
            (ROLES, &["load-balancer_member", "member"]),
        ],
    );
    let reader = who("r", &[], &[(PROJECT_NAME, &["demo"]), (ROLES, &["reader"])]);
    let other = who(
        "o",
        &[],
        &[(PROJECT_NAME, &["alt_demo"]), (ROLES, &["member"])],
    );
    assert!(allowed(&p, &demo, resource("get", "default", "pods")));
    assert!(allowed(&p, &demo, resource("watch", "kube-system", "pods")));
    // The documented "pod creation should fail".
    assert!(!allowed(&p, &demo, resource("create", "default", "pods")));
    // A cluster-wide request: "*/pods" has a `*` namespace, so it applies.
    assert!(allowed(&p, &demo, resource("list", "", "pods")));
    assert!(!allowed(&p, &reader, resource("get", "default", "pods")));
    assert!(!allowed(&p, &other, resource("get", "default", "pods")));
}

/// The docs' `utility_exec` ConfigMap (discovery paths plus `pods/exec` in
/// one namespace).
#[test]
fn docs_utility_exec_configmap() {
    let p = fixture("docs-utility-exec-configmap.yaml");
    assert_eq!(p.len(), 5);
    let ops = who(
        "ops",
        &[],
        &[(PROJECT_NAME, &["demo"]), (ROLES, &["utility_exec"])],
    );
    let dev = who(
        "dev",
        &[],
        &[(PROJECT_NAME, &["demo"]), (ROLES, &["member"])],
    );
    let nr = |verb, path| Request::NonResource { verb, path };
    for path in ["/api", "/api/v1", "/apis", "/apis/apps/v1"] {
        assert!(allowed(&p, &ops, nr("get", path)), "{path}");
        assert!(!allowed(&p, &dev, nr("get", path)), "{path}");
    }
    assert!(!allowed(&p, &ops, nr("get", "/version")));
    assert!(!allowed(&p, &ops, nr("post", "/api")));
    let exec = |namespace| Request::Resource {
        verb: "create",
        namespace,
        group: "",
        resource: "pods",
        subresource: "exec",
    };
    assert!(allowed(&p, &ops, exec("utility")));
    assert!(!allowed(&p, &ops, exec("default")));
    assert!(!allowed(&p, &dev, exec("utility")));
    // `pods/exec` does not grant the pods themselves.
    assert!(!allowed(&p, &ops, resource("create", "utility", "pods")));
}

/// The docs' `resource_permissions` examples, one key each.
#[test]
fn docs_resource_permission_examples() {
    let policy = |key: &str, verbs: &str| {
        Policy::parse(&format!(
            r#"[{{"users": {{"roles": ["member"], "projects": ["demo"]}},
                 "resource_permissions": {{"{key}": {verbs}}}}}]"#
        ))
        .unwrap()
    };
    let demo = who(
        "demo",
        &[],
        &[(PROJECT_NAME, &["demo"]), (ROLES, &["member"])],
    );
    let any = policy("*/*", r#"["*"]"#);
    assert!(allowed(
        &any,
        &demo,
        resource("delete", "kube-system", "secrets")
    ));
    assert!(allowed(&any, &demo, resource("create", "", "clusterroles")));

    let pods = policy("default/pods", r#"["get", "list"]"#);
    assert!(allowed(&pods, &demo, resource("list", "default", "pods")));
    // Version 2 keys ignore the subresource, as k8s-keystone-auth does.
    let log = Request::Resource {
        verb: "get",
        namespace: "default",
        group: "",
        resource: "pods",
        subresource: "log",
    };
    assert!(allowed(&pods, &demo, log));
    assert!(!allowed(
        &pods,
        &demo,
        resource("delete", "default", "pods")
    ));
    assert!(!allowed(&pods, &demo, resource("get", "other", "pods")));
    // A namespaced key never grants a cluster-wide request.
    assert!(!allowed(&pods, &demo, resource("list", "", "pods")));

    let except = policy("default/!['secrets', 'clusterroles']", r#"["create"]"#);
    assert!(allowed(
        &except,
        &demo,
        resource("create", "default", "configmaps")
    ));
    assert!(!allowed(
        &except,
        &demo,
        resource("create", "default", "secrets")
    ));
    assert!(!allowed(
        &except,
        &demo,
        resource("create", "default", "clusterroles")
    ));

    let not_system = policy("!kube-system/*", r#"["*"]"#);
    assert!(allowed(
        &not_system,
        &demo,
        resource("get", "default", "secrets")
    ));
    assert!(!allowed(
        &not_system,
        &demo,
        resource("get", "kube-system", "secrets")
    ));

    let both = policy("!kube-system/!['secrets', 'clusterroles']", r#"["*"]"#);
    assert!(allowed(&both, &demo, resource("patch", "default", "pods")));
    assert!(!allowed(
        &both,
        &demo,
        resource("get", "default", "secrets")
    ));
    assert!(!allowed(
        &both,
        &demo,
        resource("get", "kube-system", "pods")
    ));
}

/// `getAllowed`'s corners, as its Go code reads: a list of namespaces,
/// `'*'` inside a list, a list that is not JSON (the key is ignored),
/// verbs lowercased on the policy side only.
#[test]
fn permission_key_corners() {
    let demo = who("demo", &[], &[(PROJECT_ID, &["p1"]), (ROLES, &["member"])]);
    let one = |key: &str, verbs: &str| {
        Policy::parse(&format!(
            r#"[{{"users": {{"roles": ["member"], "projects": ["p1"]}},
                 "resource_permissions": {{"{key}": {verbs}}}}}]"#
        ))
        .unwrap()
    };
    let listed = one("['dev', 'test']/['*']", r#"["GET"]"#);
    assert!(allowed(&listed, &demo, resource("get", "test", "pods")));
    assert!(!allowed(&listed, &demo, resource("get", "prod", "pods")));
    assert!(!allowed(&listed, &demo, resource("GET", "dev", "pods")));
    let broken = one("default/['pods',]", r#"["*"]"#);
    assert!(!allowed(&broken, &demo, resource("get", "default", "pods")));
    assert!(
        broken
            .warnings()
            .iter()
            .any(|l| l.contains("is not a list")),
        "{:?}",
        broken.warnings()
    );
    let not_any = one("!*/pods", r#"["*"]"#);
    assert!(!allowed(
        &not_any,
        &demo,
        resource("get", "default", "pods")
    ));
    // Keys are trimmed and lowercased; the request is compared as sent.
    let upper = one(" Default / Pods ", r#"["get"]"#);
    assert!(allowed(&upper, &demo, resource("get", "default", "pods")));
    assert!(!allowed(&upper, &demo, resource("get", "default", "Pods")));
    // An empty request value is in every set `getAllowed` builds (a
    // review naming no resource).
    assert!(allowed(&upper, &demo, resource("get", "default", "")));
    let three = one("a/b/c", r#"["*"]"#);
    assert!(!allowed(&three, &demo, resource("get", "a", "b")));
    assert!(three
        .warnings()
        .iter()
        .any(|l| l.contains("not `namespace/resource`")));
}

#[test]
fn users_check_is_roles_superset_and_project_intersection() {
    let p = Policy::parse(
        r#"[{"users": {"roles": ["a", "b"], "projects": ["x", "y"]},
             "nonresource_permissions": {"/metrics": ["get"]}}]"#,
    )
    .unwrap();
    let nr = Request::NonResource {
        verb: "get",
        path: "/metrics",
    };
    let both = who(
        "u",
        &[],
        &[(PROJECT_NAME, &["y"]), (ROLES, &["b", "c", "a"])],
    );
    let one_role = who("u", &[], &[(PROJECT_NAME, &["y"]), (ROLES, &["a"])]);
    let no_project = who("u", &[], &[(PROJECT_NAME, &["z"]), (ROLES, &["a", "b"])]);
    assert!(allowed(&p, &both, nr));
    assert!(!allowed(&p, &one_role, nr));
    assert!(!allowed(&p, &no_project, nr));
    // Non-resource permission keys are exact paths.
    let sub = Request::NonResource {
        verb: "get",
        path: "/metrics/x",
    };
    assert!(!allowed(&p, &both, sub));
}

/// A key no format has is refused, naming it: k8s-keystone-auth would
/// ignore it, and a misspelt `match` or `roles` would grant to everyone.
#[test]
fn misspelt_keys_are_refused_not_ignored() {
    let e = Policy::parse(
        r#"[{"resource": {"verbs": ["*"], "resources": ["*"], "version": "*", "namespace": "*"},
             "matches": [{"type": "role", "values": ["admin"]}]}]"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("matches"), "{e}");
    let e = Policy::parse(
        r#"[{"users": {"role": ["admin"], "projects": ["demo"]}, "resource_permissions": {"*/*": ["*"]}}]"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("role"), "{e}");
}

/// k8s-keystone-auth dereferences `version` and `namespace` of a
/// `resource` rule (it crashes without them): refused at load, naming the
/// key and the fix.
#[test]
fn resource_rule_without_version_or_namespace_is_refused() {
    let e = Policy::parse(r#"[{"resource": {"verbs": ["get"], "resources": ["pods"], "namespace": "*"}, "match": []}]"#)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Missing {
                rule: 1,
                key: "resource.version",
                ..
            }
        ),
        "{e}"
    );
    let e = Policy::parse(
        r#"[{"nonresource": {"verbs": ["get"], "path": "/x"}}, {"resource": {"verbs": ["get"], "resources": ["pods"], "version": "*"}}]"#,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("rule 2: `resource.namespace` is missing"),
        "{e}"
    );
    assert!(Policy::parse("[null]").is_err());
    assert!(Policy::parse("{}").is_err());
    assert!(Policy::parse("apiVersion: v1\nkind: Secret\ndata: {}\n").is_err());
}

#[test]
fn empty_policy_and_missing_extra_are_no_opinion() {
    let empty = Policy::parse("[]").unwrap();
    let u = who("u", &[], &[(ROLES, &["admin"])]);
    let d = empty.decide(&Attributes {
        user: u.user(),
        request: resource("get", "default", "pods"),
    });
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::NoPolicyMatched);
    // A version 1 rule for everyone still needs the Keystone extra.
    let open = Policy::parse(r#"[{"nonresource": {"verbs": ["*"], "path": "*"}}]"#).unwrap();
    let no_extra = Who {
        name: "system:anonymous",
        groups: vec![],
        extra: None,
    };
    let nr = Request::NonResource {
        verb: "get",
        path: "/healthz",
    };
    assert!(!allowed(&open, &no_extra, nr));
    assert!(allowed(&open, &u, nr));
}

/// A `type: user` entry matches the user name or the uid (the Keystone
/// user id), as `authorizer.go` reads it.
#[test]
fn user_match_on_name_or_uid() {
    let p = Policy::parse(r#"[{"nonresource": {"verbs": ["get"], "path": "/x"}, "match": [{"type": "user", "values": ["4b1c"]}]}]"#)
        .unwrap();
    let groups = Vec::new();
    let extra = BTreeMap::new();
    let by = |name, uid| {
        p.decide(&Attributes {
            user: User {
                name,
                uid,
                groups: &groups,
                extra: Some(&extra),
            },
            request: Request::NonResource {
                verb: "get",
                path: "/x",
            },
        })
        .allowed
    };
    assert!(by("alice", "4b1c"));
    assert!(by("4b1c", "other"));
    assert!(!by("alice", "other"));
}

#[test]
fn describe_has_a_line_per_rule_and_warnings_name_dead_parts() {
    let p = fixture("authorizer_test_policy.json");
    let rules = p.describe();
    let lines = p.warnings();
    assert_eq!(rules.len(), p.len());
    assert_eq!(
        rules[0],
        r#"rule 1: allows verbs ["get", "list"] on ["user_resource1", "user_resource2"] in API group "*", namespace "*" to user in ["user1"] and role in ["role1"]"#
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("rule 11: match type \"unknown_type\"")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("rule 14: `nonresource` has no `path` or an empty verb")),
        "{lines:?}"
    );
    let v2 = fixture("authorizer_test_policy_version2.json").describe();
    assert_eq!(
        v2[2],
        r#"rule 3: allows resources "*/*" ["*"]; paths "/healthz" ["get", "post"] to roles ⊇ ["clusteradmin"] in a project of ["demo"]"#
    );
}
