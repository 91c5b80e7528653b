//! The kube-apiserver authentication webhook (`[kubernetes]`): TokenReviews
//! as the apiserver POSTs them, with real Keystone tokens, answered on a
//! TLS-only listener. The user under test is made for each test through
//! Keystone's API (a user with the member role on `demo`, in two real
//! Keystone groups), so its groups are Keystone's, not the harness's.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::harness::{stonegate::KeystoneTarget, FakeKeystone, Fault, Keystone, Scope, Stonegate};

/// A Keystone user made for one test: member of project demo (and so
/// reader, an implied role) and of two groups.
struct KubeUser {
    name: String,
    id: String,
    password: String,
    groups: Vec<String>,
}

async fn admin_call(
    ks: &Keystone,
    admin: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let http = crate::harness::client();
    let url = format!("{}{path}", ks.auth_url);
    let req = match method {
        "POST" => http.post(url),
        "PUT" => http.put(url),
        other => panic!("{other}"),
    };
    let req = req.header("x-auth-token", admin);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().await.expect("Keystone admin call");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Makes the test's user and its groups through Keystone's API.
async fn kube_user(ks: &Keystone, tag: &str) -> KubeUser {
    let admin = ks.token("admin", Scope::Project("admin")).await;
    let unique = format!(
        "{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let name = format!("kube-{unique}");
    let password = format!("pw-{unique}");
    let user = admin_call(
        ks,
        &admin,
        "POST",
        "/users",
        Some(json!({"user": {"name": name, "password": password, "domain_id": "default", "enabled": true}})),
    )
    .await;
    let id = user["user"]["id"].as_str().unwrap().to_owned();
    let member = ks.fixtures()["roles"]["member"]
        .as_str()
        .unwrap()
        .to_owned();
    let demo = ks.project_id("demo");
    admin_call(
        ks,
        &admin,
        "PUT",
        &format!("/projects/{demo}/users/{id}/roles/{member}"),
        None,
    )
    .await;
    let mut groups = Vec::new();
    for g in ["developers", "on-call"] {
        let group_name = format!("{g}-{unique}");
        let group = admin_call(
            ks,
            &admin,
            "POST",
            "/groups",
            Some(json!({"group": {"name": group_name, "domain_id": "default"}})),
        )
        .await;
        let gid = group["group"]["id"].as_str().unwrap().to_owned();
        admin_call(
            ks,
            &admin,
            "PUT",
            &format!("/groups/{gid}/users/{id}"),
            None,
        )
        .await;
        groups.push(group_name);
    }
    KubeUser {
        name,
        id,
        password,
        groups,
    }
}

impl KubeUser {
    async fn token(&self, ks: &Keystone, scope: Value) -> String {
        ks.issue(json!({
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.name, "domain": {"id": "default"}, "password": self.password}}},
            "scope": scope,
        }))
        .await
    }

    async fn demo_token(&self, ks: &Keystone) -> String {
        self.token(
            ks,
            json!({"project": {"name": "demo", "domain": {"id": "default"}}}),
        )
        .await
    }
}

/// A stonegate serving only the webhook, on a TLS listener with a
/// self-signed certificate; the certificate (PEM) to trust.
pub(crate) struct Webhook {
    pub(crate) sg: Stonegate,
    addr: SocketAddr,
    ca: reqwest::Certificate,
    _dir: tempfile::TempDir,
}

/// A CA and a serving certificate for 127.0.0.1 it signed (openssl CLI), as
/// the apiserver's webhook kubeconfig trusts one (`certificate-authority`):
/// (CA cert, serving cert, serving key) paths.
fn ca_and_serving_cert(dir: &std::path::Path) -> (String, String, String) {
    let p = |n: &str| dir.join(n).display().to_string();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl CLI is needed to make test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (ca, ca_key, csr, cert, key, ext) = (
        p("ca.crt"),
        p("ca.key"),
        p("tls.csr"),
        p("tls.crt"),
        p("tls.key"),
        p("ext.cnf"),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=stonegate-test-ca",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (ca, cert, key)
}

pub(crate) async fn webhook(
    ks: &impl crate::harness::stonegate::KeystoneTarget,
    extra: &str,
) -> Webhook {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_serving_cert(dir.path());
    let sg = Stonegate::builder()
        .keystone(ks)
        .without_upstream()
        .extra_toml(&format!(
            "[kubernetes]\nlisten = \"127.0.0.1:0\"\ncert_file = {cert:?}\nkey_file = {key:?}\n{extra}"
        ))
        .start()
        .await;
    let addr = sg.kubernetes.expect("the webhook listener bound");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    Webhook {
        sg,
        addr,
        ca,
        _dir: dir,
    }
}

impl Webhook {
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(self.ca.clone())
            .build()
            .unwrap()
    }

    /// POSTs `body` to `https://<listener>/webhook`: status and answer.
    pub(crate) async fn review(&self, body: &Value) -> (u16, Value) {
        let resp = self
            .client()
            .post(format!("https://{}/webhook", self.addr))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /webhook over TLS");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    }
}

/// A TokenReview exactly as kube-apiserver's webhook token authenticator
/// serialises it (client-go: metadata with a null creationTimestamp, an
/// empty status; `audiences` as in the API reference's example).
pub(crate) fn token_review(api_version: &str, token: &str) -> Value {
    json!({
        "kind": "TokenReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": null},
        "spec": {
            "token": token,
            "audiences": ["https://myserver.example.com", "https://myserver.internal.example.com"]
        },
        "status": {"user": {}}
    })
}

fn sorted(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    s.sort();
    s
}

#[tokio::test]
async fn a_project_token_authenticates_with_the_users_keystone_groups_in_v1_and_v1beta1() {
    let ks = Keystone::from_env();
    let user = kube_user(&ks, "groups").await;
    let wh = webhook(&ks, "").await;
    let token = user.demo_token(&ks).await;
    let demo = ks.project_id("demo");
    for version in ["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"] {
        let (status, answer) = wh.review(&token_review(version, &token)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["apiVersion"], version);
        assert_eq!(answer["kind"], "TokenReview");
        let s = &answer["status"];
        assert_eq!(s["authenticated"], true, "{answer}");
        assert_eq!(s["user"]["username"], user.name.as_str());
        assert_eq!(s["user"]["uid"], user.id.as_str());
        // The user's real Keystone groups (by name), then the project id.
        let groups = s["user"]["groups"].as_array().unwrap();
        assert_eq!(groups.last().unwrap(), demo.as_str(), "{answer}");
        let mut want = user.groups.clone();
        want.push(demo.clone());
        want.sort();
        assert_eq!(sorted(&s["user"]["groups"]), want);
        let extra = &s["user"]["extra"];
        assert_eq!(
            extra["alpha.kubernetes.io/identity/project/id"],
            json!([demo])
        );
        assert_eq!(
            extra["alpha.kubernetes.io/identity/project/name"],
            json!(["demo"])
        );
        assert_eq!(
            extra["alpha.kubernetes.io/identity/user/domain/id"],
            json!(["default"])
        );
        assert_eq!(
            extra["alpha.kubernetes.io/identity/user/domain/name"],
            json!(["Default"])
        );
        // member, and reader (implied by member), as Keystone lists them.
        let roles = sorted(&extra["alpha.kubernetes.io/identity/roles"]);
        assert!(
            roles.contains(&"member".to_owned()) && roles.contains(&"reader".to_owned()),
            "{roles:?}"
        );
        assert_eq!(
            s["audiences"],
            json!([
                "https://myserver.example.com",
                "https://myserver.internal.example.com"
            ])
        );
    }
    assert!(
        !wh.sg.log().contains(&token),
        "the token appears in stonegate's log"
    );
}

/// `GET {path}` on Keystone with `token`: the status and the JSON body.
async fn keystone_get(ks: &Keystone, token: &str, path: &str) -> (u16, Value) {
    let resp = crate::harness::client()
        .get(format!("{}{path}", ks.auth_url))
        .header("x-auth-token", token)
        .send()
        .await
        .expect("Keystone GET");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The names of a `GET /v3/users/{id}/groups` listing.
fn listed_names(listing: &Value) -> Vec<String> {
    let mut names: Vec<String> = listing["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no group listing: {listing}"))
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_federated_token_authenticates_with_its_mapped_groups_online_and_with_local_fernet() {
    let ks = Keystone::from_env();
    let remote = format!(
        "fed-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // A real federated login (the harness's identity provider, protocol
    // `mapped`), then two tokens rescoped to demo, where the mapped groups
    // have the member role.
    let unscoped = ks.federated_unscoped_token(&remote).await;
    let first = ks.rescoped_token(&unscoped, "demo").await;
    let second = ks.rescoped_token(&unscoped, "demo").await;
    let doc = ks.validate(&first).await;
    let uid = doc["user"]["id"].as_str().unwrap().to_owned();
    let fed = &ks.fixtures()["federation"];
    let group_ids: Vec<String> = fed["groups"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        doc["user"]["OS-FEDERATION"]["groups"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{doc}"
    );
    // The ephemeral user has no group membership Keystone would list, even
    // to itself: k8s-keystone-auth's listing gives it no group at all.
    let (status, listing) = keystone_get(&ks, &first, &format!("/users/{uid}/groups")).await;
    assert_eq!(status, 200, "{listing}");
    assert!(listed_names(&listing).is_empty(), "{listing}");
    let demo = ks.project_id("demo");
    let mut want = group_ids.clone();
    want.push(demo.clone());
    want.sort();
    let check = |answer: &Value, what: &str| {
        let s = &answer["status"];
        assert_eq!(s["authenticated"], true, "{what}: {answer}");
        assert_eq!(s["user"]["username"], remote.as_str(), "{what}");
        assert_eq!(s["user"]["uid"], uid.as_str(), "{what}");
        // The token's mapped groups (ids), then the project id.
        assert_eq!(sorted(&s["user"]["groups"]), want, "{what}: {answer}");
        assert_eq!(
            s["user"]["groups"].as_array().unwrap().last().unwrap(),
            demo.as_str(),
            "{what}"
        );
        assert_eq!(
            s["user"]["extra"]["alpha.kubernetes.io/identity/user/domain/id"],
            json!([fed["domain_id"]]),
            "{what}"
        );
        let roles = sorted(&s["user"]["extra"]["alpha.kubernetes.io/identity/roles"]);
        assert!(roles.contains(&"member".to_owned()), "{what}: {roles:?}");
    };
    // Online validation.
    let online = webhook(&ks, "").await;
    let (status, answer) = online
        .review(&token_review("authentication.k8s.io/v1", &first))
        .await;
    assert_eq!(status, 200);
    check(&answer, "online");
    // Local Fernet validation: the second token is opened with Keystone's
    // keys and its groups read from its payload (v5), its names from the
    // first token's online validation.
    let local = webhook(
        &ks,
        &crate::local::local_toml(&crate::local::key_repository(&ks), ""),
    )
    .await;
    for (token, what) in [
        (&first, "local, first (online)"),
        (&second, "local, second"),
    ] {
        let (status, answer) = local
            .review(&token_review("authentication.k8s.io/v1beta1", token))
            .await;
        assert_eq!(status, 200);
        check(&answer, what);
    }
    assert_eq!(
        crate::local::metric(
            &local.sg,
            "stonegate_local_decisions_total",
            &["outcome=\"valid\""]
        )
        .await,
        1.0,
        "the second token was decided locally"
    );
    for sg in [&online.sg, &local.sg] {
        let log = sg.log();
        assert!(!log.contains(&first) && !log.contains(&second) && !log.contains(&unscoped));
    }
}

/// The harness Keystone, with stonegate's account `svc-limited`: only the
/// `service` role, which validates tokens but may not list another user's
/// groups.
struct LimitedAccount<'a>(&'a Keystone);

impl KeystoneTarget for LimitedAccount<'_> {
    fn auth_url(&self) -> String {
        self.0.auth_url.clone()
    }
    fn service_account(&self) -> (String, String, String) {
        (
            "svc-limited".into(),
            self.0.password("svc-limited"),
            "service".into(),
        )
    }
}

#[tokio::test]
async fn the_groups_are_listed_with_the_users_token_not_stonegates() {
    let ks = Keystone::from_env();
    let user = kube_user(&ks, "own-token").await;
    let token = user.demo_token(&ks).await;
    let path = format!("/users/{}/groups", user.id);
    // The premise, from Keystone itself: stonegate's account may not list
    // the user's groups (identity:list_groups_for_user is admin, a reader
    // of the system or of the user's domain, or the user), the user may.
    let svc = ks.token("svc-limited", Scope::Project("service")).await;
    let (status, refused) = keystone_get(&ks, &svc, &path).await;
    assert_eq!(
        status, 403,
        "svc-limited could list the user's groups: {refused}"
    );
    let (status, listing) = keystone_get(&ks, &token, &path).await;
    assert_eq!(status, 200, "{listing}");
    let mut groups = user.groups.clone();
    groups.sort();
    assert_eq!(listed_names(&listing), groups);
    // A stonegate running as svc-limited still gets them: it asks with the
    // user's token (with its own it would be refused and answer
    // `authenticated: false`).
    let wh = webhook(&LimitedAccount(&ks), "").await;
    let (status, answer) = wh
        .review(&token_review("authentication.k8s.io/v1", &token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    let mut want = groups;
    want.push(ks.project_id("demo"));
    want.sort();
    assert_eq!(
        sorted(&answer["status"]["user"]["groups"]),
        want,
        "{answer}"
    );
}

#[tokio::test]
async fn domain_scoped_unscoped_revoked_and_garbage_tokens_are_cacheable_denials() {
    let ks = Keystone::from_env();
    let wh = webhook(&ks, "").await;
    let domain = ks.token("demo", Scope::Domain("demo-domain")).await;
    let unscoped = ks.token("demo", Scope::Unscoped).await;
    let revoked = ks.demo_token().await;
    ks.revoke(&revoked).await;
    for (what, token) in [
        ("domain-scoped", domain.as_str()),
        ("unscoped", unscoped.as_str()),
        ("revoked", revoked.as_str()),
        ("garbage", "gAAAAABnot-a-token-at-all"),
        ("empty", ""),
        ("not a header value", "a\nb"),
    ] {
        for version in ["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"] {
            let (status, answer) = wh.review(&token_review(version, token)).await;
            // 200, so that the apiserver caches the denial (a 401 it does not).
            assert_eq!(status, 200, "{what}: {answer}");
            assert_eq!(
                answer,
                json!({"apiVersion": version, "kind": "TokenReview",
                       "status": {"authenticated": false}}),
                "{what}"
            );
        }
    }
    // A valid project token on the same webhook does authenticate.
    let (_, answer) = wh
        .review(&token_review(
            "authentication.k8s.io/v1",
            &ks.demo_token().await,
        ))
        .await;
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
}

#[tokio::test]
async fn relaxing_project_scope_lets_a_domain_token_in_without_project_keys() {
    let ks = Keystone::from_env();
    let wh = webhook(&ks, "require_project_scope = false\n").await;
    let domain = ks.token("demo", Scope::Domain("demo-domain")).await;
    let (status, answer) = wh
        .review(&token_review("authentication.k8s.io/v1", &domain))
        .await;
    assert_eq!(status, 200);
    let s = &answer["status"];
    assert_eq!(s["authenticated"], true, "{answer}");
    assert_eq!(s["user"]["username"], "demo");
    assert!(s["user"]["extra"]
        .get("alpha.kubernetes.io/identity/project/id")
        .is_none());
}

#[tokio::test]
async fn role_mappings_add_groups_and_set_the_username_from_keystone_roles() {
    let ks = Keystone::from_env();
    let user = kube_user(&ks, "mappings").await;
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("sync-config.yaml");
    // k8s-keystone-auth's sync configuration file, unchanged.
    std::fs::write(
        &mappings,
        "role-mappings:\n\
         - keystone-role: member\n  groups: [\"keystone-members\", \"editors\"]\n\
         - keystone-role: admin\n  username: cluster-admin\n  groups: [\"system:masters\"]\n\
         - keystone-role: reader\n  username: kube-viewer\n",
    )
    .unwrap();
    let wh = webhook(
        &ks,
        &format!(
            "role_mappings_file = {:?}\n",
            mappings.display().to_string()
        ),
    )
    .await;
    let (status, answer) = wh
        .review(&token_review(
            "authentication.k8s.io/v1",
            &user.demo_token(&ks).await,
        ))
        .await;
    assert_eq!(status, 200);
    let u = &answer["status"]["user"];
    // reader is implied by member: its mapping sets the username; admin's
    // mapping does not apply.
    assert_eq!(u["username"], "kube-viewer", "{answer}");
    assert_eq!(u["uid"], user.id.as_str());
    let groups = sorted(&u["groups"]);
    for g in user
        .groups
        .iter()
        .map(String::as_str)
        .chain(["keystone-members", "editors"])
    {
        assert!(groups.contains(&g.to_owned()), "{g} missing: {groups:?}");
    }
    assert!(!groups.contains(&"system:masters".to_owned()), "{groups:?}");
}

#[tokio::test]
async fn keystone_unavailable_is_a_503_the_apiserver_does_not_cache() {
    let fk = FakeKeystone::start().await;
    let wh = webhook(&fk, "").await;
    fk.set_fault(Fault::Status(503));
    let token = FakeKeystone::valid_token(7);
    for version in ["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"] {
        let (status, answer) = wh.review(&token_review(version, &token)).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["apiVersion"], version);
        assert_eq!(answer["status"]["authenticated"], false);
    }
    let metrics = crate::harness::client()
        .get(wh.sg.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("stonegate_requests_total{door=\"kubernetes\",")
                && l.contains("outcome=\"keystone_unavailable\"")
                && l.ends_with(" 2")
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_webhook_listener_speaks_tls_only_and_post_webhook_only() {
    let ks = Keystone::from_env();
    let wh = webhook(&ks, "").await;
    let token = ks.demo_token().await;
    // Plain HTTP to the TLS listener gets no HTTP answer, let alone a review.
    let plain = crate::harness::client()
        .post(format!("http://{}/webhook", wh.addr))
        .body(token_review("authentication.k8s.io/v1", &token).to_string())
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    // Other paths and methods are refused.
    let client = wh.client();
    let other = client
        .post(format!("https://{}/other", wh.addr))
        .body(token_review("authentication.k8s.io/v1", &token).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let get = client
        .get(format!("https://{}/webhook", wh.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    // Another kind or API version is a 400, not a decision.
    for body in [
        json!({"apiVersion": "authentication.k8s.io/v2", "kind": "TokenReview", "spec": {"token": token}}),
        json!({"apiVersion": "v1", "kind": "Pod"}),
    ] {
        let (status, _) = wh.review(&body).await;
        assert_eq!(status, 400, "{body}");
    }
    // The proxy listener does not serve the webhook.
    let on_proxy = crate::harness::client()
        .post(wh.sg.url("/webhook"))
        .body(token_review("authentication.k8s.io/v1", &token).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(on_proxy.status(), 404);
}

#[test]
fn a_webhook_without_certificate_is_refused_naming_the_keys() {
    let text = "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
                [keystone_authtoken]\nauth_url = \"http://127.0.0.1:5000/v3\"\n\
                username = \"svc\"\npassword = \"x\"\nproject_name = \"service\"\n\
                [kubernetes]\nlisten = \"127.0.0.1:8443\"\n";
    let err = stonegate::config::File::parse(text)
        .unwrap()
        .build(&|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kubernetes.cert_file") && err.contains("TLS only"),
        "{err}"
    );
    assert!(err.contains("kubernetes.key_file"), "{err}");
    assert!(
        !err.contains("upstream"),
        "a webhook-only stonegate needs no upstream: {err}"
    );
}

#[tokio::test]
async fn a_subject_access_review_of_the_token_reviews_user_is_decided_by_the_policy_file() {
    let ks = Keystone::from_env();
    let demo = ks.project_id("demo");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    // k8s-keystone-auth's version 1 format: members of project demo may
    // read pods in "default".
    std::fs::write(
        &policy,
        json!([{
            "resource": {"verbs": ["get", "list", "watch"], "resources": ["pods"], "version": "*", "namespace": "default"},
            "match": [{"type": "role", "values": ["member"]}, {"type": "project", "values": [demo]}]
        }])
        .to_string(),
    )
    .unwrap();
    let wh = webhook(
        &ks,
        &format!("policy_file = {:?}\n", policy.display().to_string()),
    )
    .await;
    let (_, tr) = wh
        .review(&token_review(
            "authentication.k8s.io/v1",
            &ks.demo_token().await,
        ))
        .await;
    let user = &tr["status"]["user"];
    assert_eq!(tr["status"]["authenticated"], true, "{tr}");
    // The apiserver's SubjectAccessReview for the user it was told about
    // (client-go's shape; it adds system:authenticated).
    let mut groups = user["groups"].as_array().unwrap().clone();
    groups.push(json!("system:authenticated"));
    let sar = |verb: &str, namespace: &str| {
        json!({
            "kind": "SubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {
                "resourceAttributes": {"namespace": namespace, "verb": verb, "version": "v1", "resource": "pods", "name": "pod1"},
                "user": user["username"], "groups": groups, "extra": user["extra"], "uid": user["uid"]
            },
            "status": {"allowed": false}
        })
    };
    let (status, allowed) = wh.review(&sar("get", "default")).await;
    assert_eq!(status, 200, "{allowed}");
    assert_eq!(allowed["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(allowed["kind"], "SubjectAccessReview");
    assert_eq!(allowed["status"]["allowed"], true, "{allowed}");
    for (verb, ns) in [("delete", "default"), ("get", "kube-system")] {
        let (status, answer) = wh.review(&sar(verb, ns)).await;
        assert_eq!(status, 200);
        // No opinion: RBAC still decides; never an explicit deny.
        assert_eq!(answer["status"]["allowed"], false, "{verb} {ns}: {answer}");
        assert!(answer["status"].get("denied").is_none(), "{answer}");
    }
}
