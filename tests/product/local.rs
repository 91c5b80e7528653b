//! Local Fernet validation (`[fernet]`) against the real Keystone: tokens it
//! issued decode locally to what it says on validation; known users' new
//! tokens cost no Keystone call; garbage never reaches Keystone; revocations
//! Keystone records are refused within one poll; a removed role within
//! `enrichment_cache_time`; a real `keystone-manage fernet_rotate` causes no
//! false rejection.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stonegate::token::{
    fernet,
    keys::KeySet,
    payload::{self, Methods, Scope as PayloadScope},
};

use crate::harness::{
    keystone::{expected_user_headers, Scope},
    Keystone, Stonegate, Upstream,
};

fn key_repository(ks: &Keystone) -> String {
    ks.fixtures()["fernet_key_repository"]
        .as_str()
        .expect("fixtures.json: fernet_key_repository")
        .to_owned()
}

fn local_toml(ks: &Keystone, extra_fernet: &str) -> String {
    format!(
        "[fernet]\nkey_repository = {:?}\nkey_reload_interval = 1\n{extra_fernet}\n\
         [revocation]\nrevocation_poll_interval = 1\n",
        key_repository(ks)
    )
}

async fn local_stonegate(ks: &Keystone, up: &Upstream, extra_fernet: &str) -> Stonegate {
    Stonegate::builder()
        .keystone(ks)
        .upstream(up)
        .extra_toml(&local_toml(ks, extra_fernet))
        .start()
        .await
}

/// Sum of a metric's samples whose line contains every `labels` fragment.
async fn metric(sg: &Stonegate, name: &str, labels: &[&str]) -> f64 {
    let text = crate::harness::client()
        .get(sg.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn validate_calls(sg: &Stonegate) -> f64 {
    metric(
        sg,
        "stonegate_keystone_requests_total",
        &["operation=\"validate\""],
    )
    .await
}

fn unix(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

#[tokio::test]
async fn every_token_kind_decodes_locally_as_keystone_validates_it() {
    let ks = Keystone::from_env();
    let keys = KeySet::load(key_repository(&ks).as_ref()).expect("harness key repository");
    let tokens = [
        ("project", ks.demo_token().await),
        ("unscoped", ks.token("demo", Scope::Unscoped).await),
        (
            "domain",
            ks.token("demo", Scope::Domain("demo-domain")).await,
        ),
        ("system", ks.token("admin", Scope::System).await),
        ("appcred", ks.app_cred_token("unrestricted").await),
        ("trust", ks.trust_token().await),
    ];
    for (kind, token) in tokens {
        let t = ks.validate(&token).await;
        let d = fernet::decrypt(&token, &keys, 8192)
            .unwrap_or_else(|e| panic!("{kind}: does not decrypt: {e}"));
        let p = payload::decode(&d.plaintext, &Methods::default())
            .unwrap_or_else(|e| panic!("{kind}: payload: {e}"));
        let methods: Vec<String> = serde_json::from_value(t["methods"].clone()).unwrap();
        let audit: Vec<String> = serde_json::from_value(t["audit_ids"].clone()).unwrap();
        assert_eq!(p.methods, methods, "{kind}: methods");
        assert_eq!(p.audit_ids, audit, "{kind}: audit_ids");
        assert_eq!(
            p.expires_at,
            unix(t["expires_at"].as_str().unwrap()),
            "{kind}"
        );
        assert_eq!(
            d.timestamp as i64,
            unix(t["issued_at"].as_str().unwrap()),
            "{kind}: issued_at is the Fernet timestamp"
        );
        // For a non-impersonating trust Keystone reports the trustee, who is
        // the payload's user too.
        assert_eq!(
            Some(p.user_id.as_str()),
            t["user"]["id"].as_str(),
            "{kind}: user"
        );
        match (&p.scope, kind) {
            (PayloadScope::Project(id), "project" | "appcred" | "trust") => {
                assert_eq!(Some(id.as_str()), t["project"]["id"].as_str(), "{kind}")
            }
            (PayloadScope::Domain(id), "domain") => {
                assert_eq!(Some(id.as_str()), t["domain"]["id"].as_str())
            }
            (PayloadScope::System(all), "system") => {
                assert_eq!(all, "all");
                assert_eq!(t["system"]["all"], json!(true));
            }
            (PayloadScope::Unscoped, "unscoped") => assert!(t.get("project").is_none()),
            (scope, kind) => panic!("{kind}: unexpected scope {scope:?}"),
        }
        assert_eq!(
            p.trust_id.as_deref(),
            t["OS-TRUST:trust"]["id"].as_str(),
            "{kind}: trust"
        );
        assert_eq!(
            p.app_cred_id.as_deref(),
            t["application_credential"]["id"].as_str(),
            "{kind}: application credential"
        );
    }
}

#[tokio::test]
async fn a_known_users_new_token_costs_no_keystone_call() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = local_stonegate(&ks, &up, "").await;
    let first = ks.demo_token().await;
    let resp = sg.get("/", &[("X-Auth-Token", &first)]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        validate_calls(&sg).await,
        1.0,
        "first token of demo/demo: online once"
    );

    let second = ks.demo_token().await;
    assert_ne!(first, second);
    let resp = sg.get("/", &[("X-Auth-Token", &second)]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        validate_calls(&sg).await,
        1.0,
        "second token decided locally"
    );
    // Same headers as keystonemiddleware would set from Keystone's answer.
    let expected = expected_user_headers(&ks.validate(&second).await);
    crate::harness::keystone::assert_headers(&up.last().headers, &expected);
    assert!(
        metric(
            &sg,
            "stonegate_local_decisions_total",
            &["outcome=\"valid\""]
        )
        .await
            >= 1.0
    );
}

#[tokio::test]
async fn garbage_tampered_and_foreign_tokens_never_reach_keystone() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = local_stonegate(&ks, &up, "").await;
    let real = ks.demo_token().await;
    let mut fakes: Vec<String> = (0..60)
        .map(|i| format!("gAAAAABfake{i:04}{}", "A".repeat(150)))
        .collect();
    let bytes = real.as_bytes();
    for i in (0..bytes.len()).step_by(5) {
        // Flip one character to another of the alphabet.
        let mut b = bytes.to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        fakes.push(String::from_utf8(b).unwrap());
    }
    fakes.push(real[..real.len() - 7].to_owned());
    fakes.push(format!("{real}=="));
    fakes.push("x".repeat(100_000));
    for fake in &fakes {
        let status = sg.get("/", &[("X-Auth-Token", fake)]).await.status();
        // The padded original is the same token; a 100 KB header is refused
        // with 431 before any token handling; never a 5xx.
        let ok = status == 401
            || (*fake == format!("{real}==") && status == 200)
            || (fake.len() > 65_536 && status == 431);
        assert!(ok, "got {status} for a {}-byte token", fake.len());
    }
    assert_eq!(
        validate_calls(&sg).await,
        0.0,
        "a fake token reached Keystone"
    );
    assert_eq!(up.hits(), 0, "a fake token reached the upstream");
    let health = crate::harness::client()
        .get(sg.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn enrich_false_forwards_only_what_the_token_proves_and_never_validates_online() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = local_stonegate(&ks, &up, "enrich = false").await;
    let token = ks.demo_token().await;
    let resp = sg.get("/", &[("X-Auth-Token", &token)]).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
    assert_eq!(seen.header("x-project-id"), Some(ks.project_id("demo")));
    assert_eq!(
        seen.header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
    assert_eq!(
        seen.header("x-roles").as_deref(),
        Some(""),
        "roles are not in the token"
    );
    assert_eq!(
        seen.header("x-user-name"),
        None,
        "names are not in the token"
    );
    assert_eq!(validate_calls(&sg).await, 0.0);
}

/// An admin client for throwaway users.
struct Admin {
    ks: Keystone,
    token: String,
}

impl Admin {
    async fn new() -> Self {
        let ks = Keystone::from_env();
        let token = ks.token("admin", Scope::Project("admin")).await;
        Self { ks, token }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = crate::harness::client()
            .request(method.clone(), format!("{}{path}", self.ks.auth_url))
            .header("x-auth-token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        assert!(status.is_success(), "{method} {path}: {status}");
        resp.json().await.unwrap_or(Value::Null)
    }

    /// A new user with `roles` on project demo; returns (id, name, password).
    async fn user(&self, roles: &[&str]) -> (String, String, String) {
        let name = format!(
            "throwaway-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let password = "throwaway-pass-1".to_string();
        let u = self
            .call(
                reqwest::Method::POST,
                "/users",
                Some(json!({"user": {"name": name, "password": password, "domain_id": "default"}})),
            )
            .await;
        let id = u["user"]["id"].as_str().unwrap().to_owned();
        for role in roles {
            self.grant(&id, role, true).await;
        }
        (id, name, password)
    }

    async fn grant(&self, user: &str, role: &str, add: bool) {
        let role_id = self.ks.fixtures()["roles"][role]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!(
            "/projects/{}/users/{user}/roles/{role_id}",
            self.ks.project_id("demo")
        );
        let method = if add {
            reqwest::Method::PUT
        } else {
            reqwest::Method::DELETE
        };
        self.call(method, &path, None).await;
    }

    async fn token_for(&self, name: &str, password: &str) -> String {
        self.ks
            .issue(json!({
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": name, "domain": {"id": "default"}, "password": password}}},
                "scope": {"project": {"id": self.ks.project_id("demo")}}
            }))
            .await
    }
}

/// Polls until the token gets `status`, for at most `limit`.
async fn eventually(sg: &Stonegate, token: &str, status: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = sg.get("/", &[("X-Auth-Token", token)]).await.status();
        if got == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still {got} after {limit:?}, wanted {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn revocations_keystone_records_are_refused_within_one_poll_even_when_cached() {
    let admin = Admin::new().await;
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = local_stonegate(&ks, &up, "").await;
    // One poll interval (1 s) plus a poll's own time and a request's.
    let bound = Duration::from_millis(2500);
    let (uid, name, password) = admin.user(&["member"]).await;

    // 1. A revoked token, served (and cached) before.
    let t1 = admin.token_for(&name, &password).await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &t1)]).await.status(), 200);
    ks.revoke(&t1).await;
    eventually(&sg, &t1, 401, bound).await;

    // 2. A password change revokes every earlier token of the user.
    let t2 = admin.token_for(&name, &password).await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &t2)]).await.status(), 200);
    // Tokens issued in the event's second are revoked too: step past it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new_password = "throwaway-pass-2".to_string();
    admin
        .call(
            reqwest::Method::PATCH,
            &format!("/users/{uid}"),
            Some(json!({"user": {"password": new_password}})),
        )
        .await;
    eventually(&sg, &t2, 401, bound).await;

    // 3. Disabling the user.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t3 = admin.token_for(&name, &new_password).await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &t3)]).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    admin
        .call(
            reqwest::Method::PATCH,
            &format!("/users/{uid}"),
            Some(json!({"user": {"enabled": false}})),
        )
        .await;
    eventually(&sg, &t3, 401, bound).await;
    assert!(metric(&sg, "stonegate_revocation_events", &[]).await >= 1.0);
}

#[tokio::test]
async fn a_removed_role_reaches_tokens_within_enrichment_cache_time() {
    let admin = Admin::new().await;
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = local_stonegate(&ks, &up, "enrichment_cache_time = 2").await;
    let (uid, name, password) = admin.user(&["member", "reader"]).await;
    let token = admin.token_for(&name, &password).await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    let roles = up.last().header("x-roles").unwrap();
    assert!(
        roles.contains("reader") && roles.contains("member"),
        "{roles}"
    );

    assert_eq!(validate_calls(&sg).await, 1.0);

    // Keystone records no revocation event for this, so stonegate cannot learn
    // it from events: the bound is enrichment_cache_time. (The harness
    // Keystone's own cache may keep answering the old roles for a while; what
    // stonegate guarantees is that it asks Keystone again within the bound and
    // forwards exactly Keystone's answer.)
    admin.grant(&uid, "reader", false).await;
    let fresh = admin.token_for(&name, &password).await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &fresh)]).await.status(), 200);
    assert_eq!(
        validate_calls(&sg).await,
        1.0,
        "within enrichment_cache_time a new token of the user is decided locally"
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &fresh)]).await.status(), 200);
    assert_eq!(
        validate_calls(&sg).await,
        2.0,
        "after enrichment_cache_time stonegate asks Keystone again"
    );
    let t = ks.validate(&fresh).await;
    let keystone_roles: Vec<&str> = t["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        up.last().header("x-roles").unwrap(),
        keystone_roles.join(","),
        "forwarded roles are Keystone's current answer"
    );
    // The token served before the change is re-decided too (its cache entry
    // lives at most enrichment_cache_time).
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    assert!(validate_calls(&sg).await >= 3.0);
}

#[tokio::test]
async fn keystone_manage_fernet_rotate_causes_no_false_rejection() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = local_stonegate(&ks, &up, "").await;
    let manage = std::env::var("KEYSTONE_MANAGE")
        .expect("KEYSTONE_MANAGE (exported by tests/keystone/keystone-up.sh) is required");
    let conf = std::env::var("KEYSTONE_CONF").expect("KEYSTONE_CONF is required");
    let before = ks.demo_token().await;
    let keys_before = metric(&sg, "stonegate_fernet_keys", &[]).await;

    // Requests flow while Keystone rotates its keys.
    let flow = {
        let url = sg.url("/");
        let token = before.clone();
        tokio::spawn(async move {
            let client = crate::harness::client();
            let (mut ok, mut rejected) = (0, 0);
            let end = Instant::now() + Duration::from_secs(4);
            while Instant::now() < end {
                let s = client
                    .get(&url)
                    .header("x-auth-token", &token)
                    .send()
                    .await
                    .unwrap()
                    .status();
                if s == 200 {
                    ok += 1
                } else {
                    rejected += 1
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, rejected)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let out = std::process::Command::new(&manage)
        .args(["--config-file", &conf, "fernet_rotate"])
        .args(["--keystone-user", &user, "--keystone-group", &user])
        .env(
            "OS_KEYSTONE_CONFIG_DIR",
            std::path::Path::new(&conf).parent().unwrap(),
        )
        .output()
        .expect("run keystone-manage fernet_rotate");
    assert!(
        out.status.success(),
        "fernet_rotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A token minted with the new primary, at once: no rejection either.
    let after = ks.demo_token().await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &after)]).await.status(), 200);
    let (ok, rejected) = flow.await.unwrap();
    assert_eq!(
        rejected, 0,
        "{rejected} false rejections during the rotation ({ok} ok)"
    );
    assert!(ok > 10);
    // The token from the previous primary is still accepted.
    assert_eq!(
        sg.get("/", &[("X-Auth-Token", &before)]).await.status(),
        200
    );
    let keys_after = metric(&sg, "stonegate_fernet_keys", &[]).await;
    assert!(keys_after >= keys_before, "{keys_before} -> {keys_after}");
    assert_eq!(
        metric(&sg, "stonegate_fernet_key_reload_failures_total", &[]).await,
        0.0
    );
}
