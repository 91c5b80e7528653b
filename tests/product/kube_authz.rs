//! The kube-apiserver authorization webhook (`[kubernetes] policy_file`)
//! through the real TLS listener: k8s-keystone-auth's own example policies
//! (tests/fixtures/kube/, unchanged), SubjectAccessReviews built as the
//! apiserver builds them from what the TokenReview answered for real
//! Keystone tokens; allowed, not granted (no opinion: never `denied`), a
//! non-Keystone user; SIGHUP reloads, keeping the last good policy; and
//! `check-config` explaining the policy.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Keystone, Scope};
use crate::kube::{token_review, webhook, Webhook};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/kube/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The user info the webhook's TokenReview answers for `token`.
async fn user_of(wh: &Webhook, token: &str) -> Value {
    let (status, tr) = wh
        .review(&token_review("authentication.k8s.io/v1", token))
        .await;
    assert_eq!(status, 200, "{tr}");
    assert_eq!(tr["status"]["authenticated"], true, "{tr}");
    tr["status"]["user"].clone()
}

/// A SubjectAccessReview as kube-apiserver's webhook authorizer sends it
/// for `user` (client-go adds `system:authenticated`); `v1beta1` names the
/// groups `group`.
fn sar(api_version: &str, user: &Value, attributes: (&str, Value)) -> Value {
    let mut groups = user["groups"].as_array().cloned().unwrap_or_default();
    groups.push(json!("system:authenticated"));
    let groups_key = if api_version.ends_with("v1beta1") {
        "group"
    } else {
        "groups"
    };
    let mut spec = json!({
        "user": user["username"],
        "uid": user["uid"],
        "extra": user["extra"],
    });
    spec[groups_key] = Value::Array(groups);
    spec[attributes.0] = attributes.1;
    json!({
        "kind": "SubjectAccessReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": {"allowed": false}
    })
}

fn pods(verb: &str, namespace: &str) -> (&'static str, Value) {
    (
        "resourceAttributes",
        json!({"namespace": namespace, "verb": verb, "version": "v1", "resource": "pods", "name": "pod1"}),
    )
}

/// `status` of the answer, checking the echo and that it is never a deny.
async fn decide(wh: &Webhook, review: &Value) -> Value {
    let (status, answer) = wh.review(review).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["apiVersion"], review["apiVersion"], "{answer}");
    assert_eq!(answer["kind"], "SubjectAccessReview");
    assert!(
        answer["status"].get("denied").is_none(),
        "k8s-keystone-auth's policies only grant: {answer}"
    );
    answer["status"].clone()
}

fn policy_option(path: &str) -> String {
    format!("policy_file = {path:?}\n")
}

/// k8s-keystone-auth's `examples/webhook/keystone-policy-configmap.yaml`,
/// the ConfigMap manifest as shipped (members of project `demo` may get,
/// list and watch pods): the harness's demo user (member of demo) is
/// allowed, not to create; the same user's token on another project and a
/// service account are not granted.
#[tokio::test]
async fn the_example_configmap_policy_decides_real_keystone_users() {
    let ks = Keystone::from_env();
    let wh = webhook(
        &ks,
        &policy_option(&fixture("keystone-policy-configmap.yaml")),
    )
    .await;
    let demo = user_of(&wh, &ks.demo_token().await).await;

    for version in ["authorization.k8s.io/v1", "authorization.k8s.io/v1beta1"] {
        let got = decide(&wh, &sar(version, &demo, pods("get", "default"))).await;
        assert_eq!(got["allowed"], true, "{version}: {got}");
        assert_eq!(got["reason"], "allowed by rule 1 of the Keystone policy");
        let got = decide(&wh, &sar(version, &demo, pods("watch", "kube-system"))).await;
        assert_eq!(got["allowed"], true, "{version}: {got}");
        // The documented "pod creation should fail": no opinion.
        let got = decide(&wh, &sar(version, &demo, pods("create", "default"))).await;
        assert_eq!(got["allowed"], false, "{version}: {got}");
        assert_eq!(got["reason"], "No policy matched.");
    }
    let nonresource = (
        "nonResourceAttributes",
        json!({"path": "/healthz", "verb": "get"}),
    );
    let got = decide(&wh, &sar("authorization.k8s.io/v1", &demo, nonresource)).await;
    assert_eq!(got["allowed"], false, "{got}");

    // The svc user's token is scoped to project "service": not in the rule.
    let svc = user_of(&wh, &ks.token("svc", Scope::Project("service")).await).await;
    let got = decide(
        &wh,
        &sar("authorization.k8s.io/v1", &svc, pods("get", "default")),
    )
    .await;
    assert_eq!(got["allowed"], false, "{got}");

    // A service account: no Keystone extra at all.
    let sa: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("sar-v1-serviceaccount-version.json")).unwrap(),
    )
    .unwrap();
    let got = decide(&wh, &sa).await;
    assert_eq!(
        got,
        json!({"allowed": false, "reason": "No auth info found."})
    );

    // Another kind of review, or neither attribute: 400.
    let mut neither = sar("authorization.k8s.io/v1", &demo, pods("get", "default"));
    neither["spec"]
        .as_object_mut()
        .unwrap()
        .remove("resourceAttributes");
    let (status, answer) = wh.review(&neither).await;
    assert_eq!(status, 400, "{answer}");
    let mut v2 = sar("authorization.k8s.io/v1", &demo, pods("get", "default"));
    v2["apiVersion"] = json!("authorization.k8s.io/v2");
    assert_eq!(wh.review(&v2).await.0, 400);
}

/// The docs' `utility_exec` policy (version 1, five rules): discovery paths
/// and `pods/exec` in one namespace, for a role the demo user lacks; and
/// the Go tests' version 2 policy rewritten for project `demo` and the
/// demo user's `member` role (`!kube-system`, lists).
#[tokio::test]
async fn version_1_and_version_2_policies_on_real_tokens() {
    let ks = Keystone::from_env();
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("policy.json");
    std::fs::write(
        &v2,
        json!([{
            "users": {"roles": ["member"], "projects": ["demo"]},
            "resource_permissions": {
                "!kube-system/!['secrets', 'clusterroles']": ["*"],
                "*/['namespaces', 'clusterroles']": ["get", "list"]
            },
            "nonresource_permissions": {"/healthz": ["get"]}
        }, {
            "users": {"roles": ["member", "admin"], "projects": ["demo"]},
            "resource_permissions": {"*/*": ["*"]}
        }])
        .to_string(),
    )
    .unwrap();
    let wh = webhook(&ks, &policy_option(&v2.display().to_string())).await;
    let demo = user_of(&wh, &ks.demo_token().await).await;
    let v1 = "authorization.k8s.io/v1";
    let res = |verb: &str, ns: &str, resource: &str| {
        (
            "resourceAttributes",
            json!({"namespace": ns, "verb": verb, "resource": resource}),
        )
    };
    let cases = [
        (res("delete", "default", "deployments"), true),
        (res("get", "default", "secrets"), false),
        (res("get", "kube-system", "pods"), false),
        (res("list", "", "namespaces"), true),
        (res("create", "", "namespaces"), false),
        // The second rule needs `admin` too, which demo lacks.
        (res("get", "kube-system", "secrets"), false),
        (
            (
                "nonResourceAttributes",
                json!({"path": "/healthz", "verb": "get"}),
            ),
            true,
        ),
        (
            (
                "nonResourceAttributes",
                json!({"path": "/healthz/ready", "verb": "get"}),
            ),
            false,
        ),
    ];
    for (attributes, allowed) in cases {
        let what = attributes.1.to_string();
        let got = decide(&wh, &sar(v1, &demo, attributes)).await;
        assert_eq!(got["allowed"], allowed, "{what}: {got}");
    }

    let docs = webhook(
        &ks,
        &policy_option(&fixture("docs-utility-exec-configmap.yaml")),
    )
    .await;
    let exec = (
        "resourceAttributes",
        json!({"namespace": "utility", "verb": "create", "resource": "pods", "subresource": "exec"}),
    );
    let got = decide(&docs, &sar(v1, &demo, exec.clone())).await;
    assert_eq!(
        got["allowed"], false,
        "demo has no utility_exec role: {got}"
    );
    // The same review with the role in extra (as a role mapping could not
    // add it: extra comes from Keystone): allowed, so the rule is live.
    let mut ops = demo.clone();
    ops["extra"]["alpha.kubernetes.io/identity/roles"] = json!(["utility_exec"]);
    let got = decide(&docs, &sar(v1, &ops, exec)).await;
    assert_eq!(got["allowed"], true, "{got}");
    let api = (
        "nonResourceAttributes",
        json!({"path": "/apis/apps/v1", "verb": "get"}),
    );
    assert_eq!(decide(&docs, &sar(v1, &ops, api)).await["allowed"], true);
}

/// SIGHUP re-reads the policy: a new policy applies to the next review; one
/// that does not load is refused with the key and the reason in the log,
/// and the running policy keeps deciding.
#[tokio::test]
async fn sighup_reloads_the_policy_and_keeps_the_last_good_one() {
    let ks = Keystone::from_env();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.json");
    let grant = |verbs: &[&str]| {
        json!([{"users": {"roles": ["member"], "projects": ["demo"]},
                "resource_permissions": {"default/pods": verbs}}])
        .to_string()
    };
    std::fs::write(&path, grant(&["get"])).unwrap();
    let wh = webhook(&ks, &policy_option(&path.display().to_string())).await;
    let demo = user_of(&wh, &ks.demo_token().await).await;
    let v1 = "authorization.k8s.io/v1";
    let allowed = |verb: &'static str| {
        let review = sar(v1, &demo, pods(verb, "default"));
        let wh = &wh;
        async move { decide(wh, &review).await["allowed"] == true }
    };
    assert!(allowed("get").await);
    assert!(!allowed("delete").await);

    // A new policy: applied after SIGHUP.
    std::fs::write(&path, grant(&["delete"])).unwrap();
    wh.sg.signal("HUP");
    let mut applied = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if allowed("delete").await {
            applied = true;
            break;
        }
    }
    assert!(applied, "the new policy was not applied: {}", wh.sg.log());
    assert!(!allowed("get").await);

    // A policy that does not load (a misspelt key): refused, logged with
    // the key and why, the last good policy kept.
    std::fs::write(
        &path,
        r#"[{"users": {"role": ["member"], "projects": ["demo"]}, "resource_permissions": {"*/*": ["*"]}}]"#,
    )
    .unwrap();
    wh.sg.signal("HUP");
    let log = wh.sg.log_with("configuration reload failed").await;
    assert!(log.contains("kubernetes.policy_file"), "{log}");
    assert!(log.contains("unknown field `role`"), "{log}");
    assert!(allowed("delete").await, "the last good policy was not kept");
    assert!(!allowed("get").await, "the refused policy was applied");
}

/// `stonegate check-config` explains the policy: the rule count, a line
/// per rule, and a warning for each part that can never apply; a policy
/// that does not load is a configuration error naming the key.
#[tokio::test]
async fn check_config_explains_the_policy() {
    let ks = Keystone::from_env();
    let wh = webhook(&ks, &policy_option(&fixture("authorizer_test_policy.json"))).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stonegate"))
        .args(["check-config", &wh.sg.config.display().to_string()])
        .env("STONEGATE_PASSWORD", ks.password("svc"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("authorizer_test_policy.json: 20 rule(s)"),
        "{stdout}"
    );
    let rules: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  rule "))
        .collect();
    assert_eq!(rules.len(), 20, "{stdout}");
    assert!(
        rules[18].contains(r#"verbs ["get"] on path "/api" to user in ["user1"]"#),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: [kubernetes] policy_file rule 11: match type \"unknown_type\""),
        "{stdout}"
    );

    // A broken policy: exit 64, the key and the rule named.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("policy.json");
    std::fs::write(
        &bad,
        r#"[{"resource": {"verbs": ["get"], "resources": ["pods"], "namespace": "*"}}]"#,
    )
    .unwrap();
    let config = std::fs::read_to_string(&wh.sg.config).unwrap().replace(
        &fixture("authorizer_test_policy.json"),
        &bad.display().to_string(),
    );
    let path = dir.path().join("stonegate.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stonegate"))
        .args(["check-config", &path.display().to_string()])
        .env("STONEGATE_PASSWORD", ks.password("svc"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("kubernetes.policy_file")
            && stderr.contains("rule 1: `resource.version` is missing"),
        "{stderr}"
    );
}
