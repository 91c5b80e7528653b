//! The real Keystone of the test harness (`tests/keystone/`), driven through
//! its REST API: issue, validate (as stonegate's own `svc` user would) and
//! revoke tokens, and say which headers keystonemiddleware would derive from
//! Keystone's own validation response.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::OnceCell;

/// The variable `scripts/test.sh` exports: the fixtures file written by
/// `tests/keystone/fixtures.py`.
pub const FIXTURES_ENV: &str = "STONEGATE_TEST_KEYSTONE_FIXTURES";

/// A token's scope, as asked for in `POST /v3/auth/tokens`.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Explicitly unscoped (`"scope": "unscoped"`).
    Unscoped,
    /// A project of the Default domain, by name.
    Project(&'a str),
    /// A project by name in a domain given by name.
    ProjectIn(&'a str, &'a str),
    /// A domain by name.
    Domain(&'a str),
    /// The whole system.
    System,
}

/// The harness Keystone, from its fixtures file.
pub struct Keystone {
    /// `http://127.0.0.1:<port>/v3`.
    pub auth_url: String,
    fixtures: Value,
    http: reqwest::Client,
    svc_token: OnceCell<String>,
}

impl Keystone {
    /// Reads `$STONEGATE_TEST_KEYSTONE_FIXTURES`; panics with the way to get
    /// it when unset, so that a test needing Keystone never passes without one.
    pub fn from_env() -> Self {
        let path = std::env::var_os(FIXTURES_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "{FIXTURES_ENV} is not set: this test needs the real Keystone of the test \
                 harness. Run the tests with scripts/test.sh, or start it yourself: \
                 eval \"$(tests/keystone/keystone-up.sh)\" && cargo test"
                )
            });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{FIXTURES_ENV}={}: {e} (run tests/keystone/keystone-up.sh)",
                path.display()
            )
        });
        let fixtures: Value = serde_json::from_str(&text).expect("fixtures.json is JSON");
        let auth_url = fixtures["auth_url"]
            .as_str()
            .expect("fixtures.json: auth_url")
            .trim_end_matches('/')
            .to_owned();
        assert!(
            auth_url.starts_with("http://127.0.0.1:"),
            "the harness Keystone must be on loopback, got {auth_url}"
        );
        Keystone {
            auth_url,
            fixtures,
            http: super::client(),
            svc_token: OnceCell::new(),
        }
    }

    /// The same fixtures on another Keystone serving a copy of this one's
    /// database (see [`super::private_keystone`]).
    pub fn with_auth_url(&self, auth_url: &str) -> Self {
        Keystone {
            auth_url: auth_url.trim_end_matches('/').to_owned(),
            fixtures: self.fixtures.clone(),
            http: super::client(),
            svc_token: OnceCell::new(),
        }
    }

    /// The fixtures document (ids of users, projects, domains, roles ...).
    pub fn fixtures(&self) -> &Value {
        &self.fixtures
    }

    /// A fixture user's password.
    pub fn password(&self, user: &str) -> String {
        self.fixtures["users"][user]["password"]
            .as_str()
            .unwrap_or_else(|| panic!("fixtures.json has no user {user}"))
            .to_owned()
    }

    /// A fixture user's id.
    pub fn user_id(&self, user: &str) -> String {
        self.fixtures["users"][user]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("fixtures.json has no user {user}"))
            .to_owned()
    }

    /// A fixture project's id.
    pub fn project_id(&self, project: &str) -> String {
        self.fixtures["projects"][project]
            .as_str()
            .unwrap_or_else(|| panic!("fixtures.json has no project {project}"))
            .to_owned()
    }

    /// `POST /v3/auth/tokens` with this `auth` document; the new token.
    pub async fn issue(&self, auth: Value) -> String {
        let resp = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.auth_url))
            .json(&json!({ "auth": auth }))
            .send()
            .await
            .expect("POST /v3/auth/tokens");
        let status = resp.status();
        let token = resp
            .headers()
            .get("x-subject-token")
            .map(|v| v.to_str().expect("token is ASCII").to_owned());
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "Keystone refused to issue a token: {body}");
        token.expect("201 without X-Subject-Token")
    }

    /// A password token for a fixture user (domain Default).
    pub async fn token(&self, user: &str, scope: Scope<'_>) -> String {
        let identity = json!({
            "methods": ["password"],
            "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": self.password(user)
            }}
        });
        let scope = match scope {
            Scope::Unscoped => json!("unscoped"),
            Scope::Project(p) => json!({"project": {"name": p, "domain": {"id": "default"}}}),
            Scope::ProjectIn(p, d) => json!({"project": {"name": p, "domain": {"name": d}}}),
            Scope::Domain(d) => json!({"domain": {"name": d}}),
            Scope::System => json!({"system": {"all": true}}),
        };
        self.issue(json!({"identity": identity, "scope": scope}))
            .await
    }

    /// demo's project-scoped token (project demo): the everyday case.
    pub async fn demo_token(&self) -> String {
        self.token("demo", Scope::Project("demo")).await
    }

    /// A token from a fixture application credential: `"unrestricted"` or
    /// `"access_rules"` (GET /v2.1/servers on compute only).
    pub async fn app_cred_token(&self, which: &str) -> String {
        let ac = &self.fixtures["application_credentials"][which];
        self.issue(json!({
            "identity": {"methods": ["application_credential"],
                         "application_credential": {"id": ac["id"], "secret": ac["secret"]}}
        }))
        .await
    }

    /// A federated login through the harness's identity provider
    /// (`fixtures.json` `federation`: `stonegate-idp`, protocol `mapped`):
    /// the assertion names the ephemeral user `remote_user`, whom the mapping
    /// puts in the groups `federated-viewers` and `federated-editors`. An
    /// unscoped federated token, as
    /// `POST /v3/OS-FEDERATION/identity_providers/{idp}/protocols/{p}/auth`
    /// answers it.
    pub async fn federated_unscoped_token(&self, remote_user: &str) -> String {
        let f = &self.fixtures["federation"];
        let resp = self
            .http
            .post(format!(
                "{}/OS-FEDERATION/identity_providers/{}/protocols/{}/auth",
                self.auth_url,
                f["identity_provider"].as_str().unwrap(),
                f["protocol"].as_str().unwrap()
            ))
            .header(f["assertion_header"].as_str().unwrap(), remote_user)
            .send()
            .await
            .expect("POST .../protocols/mapped/auth");
        let status = resp.status();
        let token = resp
            .headers()
            .get("x-subject-token")
            .map(|v| v.to_str().expect("token is ASCII").to_owned());
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "Keystone refused the federated login: {body}");
        token.expect("201 without X-Subject-Token")
    }

    /// `unscoped` (a federated token) rescoped to fixture project `project`
    /// (the `token` method): a federated project-scoped token, its roles
    /// from the mapped groups.
    pub async fn rescoped_token(&self, unscoped: &str, project: &str) -> String {
        self.issue(json!({
            "identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"id": self.project_id(project)}},
        }))
        .await
    }

    /// A trust-scoped token: trustee acting on project demo through demo's trust.
    pub async fn trust_token(&self) -> String {
        let trust_id = self.fixtures["trust"]["id"].clone();
        let identity = json!({
            "methods": ["password"],
            "password": {"user": {
                "name": "trustee", "domain": {"id": "default"}, "password": self.password("trustee")
            }}
        });
        self.issue(json!({"identity": identity, "scope": {"OS-TRUST:trust": {"id": trust_id}}}))
            .await
    }

    /// A token that expires after about `lifetime`: Keystone caps an
    /// application-credential token at the credential's expiry, so this makes
    /// a credential of revokee expiring then and a token from it. Returns the
    /// token and its `expires_at`.
    pub async fn short_lived_token(&self, lifetime: Duration) -> (String, SystemTime) {
        let owner = self.token("revokee", Scope::Project("demo")).await;
        let uid = self.user_id("revokee");
        let expires = time::OffsetDateTime::now_utc() + lifetime;
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        let name = format!(
            "short-lived-{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let resp = self
            .http
            .post(format!(
                "{}/users/{uid}/application_credentials",
                self.auth_url
            ))
            .header("x-auth-token", &owner)
            .json(&json!({"application_credential": {
                "name": name, "roles": [{"name": "member"}],
                "expires_at": expires.format(&fmt).unwrap(),
            }}))
            .send()
            .await
            .expect("POST application_credentials");
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        let ac: Value = resp.json().await.unwrap();
        let ac = &ac["application_credential"];
        let token = self
            .issue(json!({"identity": {"methods": ["application_credential"],
                "application_credential": {"id": ac["id"], "secret": ac["secret"]}}}))
            .await;
        let body = self.validate(&token).await;
        let at = time::OffsetDateTime::parse(
            body["expires_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(at.unix_timestamp() as u64);
        (token, expires_at)
    }

    /// svc's project-scoped token (project service, roles service + admin):
    /// the identity stonegate itself uses; also a valid service token.
    pub async fn svc_token(&self) -> String {
        self.svc_token
            .get_or_init(|| self.token("svc", Scope::Project("service")))
            .await
            .clone()
    }

    /// `GET /v3/auth/tokens` as svc, the way keystonemiddleware validates
    /// (with `OpenStack-Identity-Access-Rules: 1`, catalog included): the
    /// `token` object. Panics unless Keystone says 200.
    pub async fn validate(&self, token: &str) -> Value {
        let (status, body) = self.validate_raw(token, false).await;
        assert_eq!(
            status,
            200,
            "Keystone says token {} is not valid",
            super::fingerprint(token)
        );
        body["token"].clone()
    }

    /// `GET /v3/auth/tokens` as svc: the status and body.
    pub async fn validate_raw(&self, token: &str, allow_expired: bool) -> (u16, Value) {
        let svc = self.svc_token().await;
        let q = if allow_expired {
            "?allow_expired=1"
        } else {
            ""
        };
        let resp = self
            .http
            .get(format!("{}/auth/tokens{q}", self.auth_url))
            .header("x-auth-token", svc)
            .header("x-subject-token", token)
            .header("openstack-identity-access-rules", "1")
            .send()
            .await
            .expect("GET /v3/auth/tokens");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `DELETE /v3/auth/tokens`: revoke a token.
    pub async fn revoke(&self, token: &str) {
        let svc = self.svc_token().await;
        let resp = self
            .http
            .delete(format!("{}/auth/tokens", self.auth_url))
            .header("x-auth-token", svc)
            .header("x-subject-token", token)
            .send()
            .await
            .expect("DELETE /v3/auth/tokens");
        assert_eq!(resp.status(), 204, "revocation failed");
    }
}

/// The token's role names, comma-joined in Keystone's order (`X-Roles`).
fn role_names(token: &Value) -> String {
    token["roles"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| r["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The headers keystonemiddleware sets for a valid user token, derived from
/// Keystone's validation response (`token` object): name (lower-case) → value,
/// `None` meaning "must be absent". `X-Service-Catalog` is not included
/// (see [`v2_catalog`]).
pub fn expected_user_headers(token: &Value) -> BTreeMap<&'static str, Option<String>> {
    let s = |v: &Value| v.as_str().map(str::to_owned);
    let project = token.get("project");
    let domain = token.get("domain");
    let roles = role_names(token);
    let system_all = token["system"]["all"].as_bool() == Some(true);
    let is_admin_project = token["is_admin_project"].as_bool().unwrap_or(true);
    let mut h = BTreeMap::new();
    h.insert("x-identity-status", Some("Confirmed".to_owned()));
    h.insert("x-user-id", s(&token["user"]["id"]));
    h.insert("x-user-name", s(&token["user"]["name"]));
    h.insert("x-user-domain-id", s(&token["user"]["domain"]["id"]));
    h.insert("x-user-domain-name", s(&token["user"]["domain"]["name"]));
    h.insert("x-project-id", project.and_then(|p| s(&p["id"])));
    h.insert("x-project-name", project.and_then(|p| s(&p["name"])));
    h.insert(
        "x-project-domain-id",
        project.and_then(|p| s(&p["domain"]["id"])),
    );
    h.insert(
        "x-project-domain-name",
        project.and_then(|p| s(&p["domain"]["name"])),
    );
    h.insert("x-domain-id", domain.and_then(|d| s(&d["id"])));
    h.insert("x-domain-name", domain.and_then(|d| s(&d["name"])));
    h.insert("x-roles", Some(roles.clone()));
    h.insert(
        "openstack-system-scope",
        system_all.then(|| "all".to_owned()),
    );
    h.insert(
        "x-is-admin-project",
        Some(if is_admin_project { "True" } else { "False" }.to_owned()),
    );
    // Deprecated names old services still read.
    h.insert("x-role", Some(roles));
    h.insert("x-user", s(&token["user"]["name"]));
    h.insert("x-tenant-id", project.and_then(|p| s(&p["id"])));
    h.insert("x-tenant-name", project.and_then(|p| s(&p["name"])));
    h.insert("x-tenant", project.and_then(|p| s(&p["name"])));
    h
}

/// The `X-Service-*` headers keystonemiddleware sets for a valid service token.
pub fn expected_service_headers(token: &Value) -> BTreeMap<&'static str, Option<String>> {
    let s = |v: &Value| v.as_str().map(str::to_owned);
    let project = token.get("project");
    let domain = token.get("domain");
    let roles = role_names(token);
    let mut h = BTreeMap::new();
    h.insert("x-service-identity-status", Some("Confirmed".to_owned()));
    h.insert("x-service-user-id", s(&token["user"]["id"]));
    h.insert("x-service-user-name", s(&token["user"]["name"]));
    h.insert(
        "x-service-user-domain-id",
        s(&token["user"]["domain"]["id"]),
    );
    h.insert(
        "x-service-user-domain-name",
        s(&token["user"]["domain"]["name"]),
    );
    h.insert("x-service-project-id", project.and_then(|p| s(&p["id"])));
    h.insert(
        "x-service-project-name",
        project.and_then(|p| s(&p["name"])),
    );
    h.insert(
        "x-service-project-domain-id",
        project.and_then(|p| s(&p["domain"]["id"])),
    );
    h.insert(
        "x-service-project-domain-name",
        project.and_then(|p| s(&p["domain"]["name"])),
    );
    h.insert("x-service-domain-id", domain.and_then(|d| s(&d["id"])));
    h.insert("x-service-domain-name", domain.and_then(|d| s(&d["name"])));
    h.insert("x-service-roles", Some(roles));
    h
}

/// keystonemiddleware's `X-Service-Catalog`: the v3 catalog in the v2 shape
/// (per service `type`, `name`, endpoints grouped by region with one
/// `<interface>URL` key per interface).
pub fn v2_catalog(token: &Value) -> Value {
    let mut out = Vec::new();
    for svc in token["catalog"].as_array().expect("token has a catalog") {
        let mut groups: Vec<(Option<String>, serde_json::Map<String, Value>)> = Vec::new();
        for ep in svc["endpoints"].as_array().unwrap() {
            let region = ep["region"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(str::to_owned);
            let idx = match groups.iter().position(|(r, _)| *r == region) {
                Some(i) => i,
                None => {
                    let mut m = serde_json::Map::new();
                    if let Some(r) = &region {
                        m.insert("region".into(), json!(r));
                    }
                    groups.push((region, m));
                    groups.len() - 1
                }
            };
            let iface = ep["interface"].as_str().unwrap().to_lowercase();
            groups[idx]
                .1
                .insert(format!("{iface}URL"), ep["url"].clone());
        }
        let mut entry = serde_json::Map::new();
        entry.insert("type".into(), svc["type"].clone());
        if let Some(name) = svc.get("name") {
            entry.insert("name".into(), name.clone());
        }
        entry.insert(
            "endpoints".into(),
            Value::Array(groups.into_iter().map(|(_, m)| Value::Object(m)).collect()),
        );
        out.push(Value::Object(entry));
    }
    Value::Array(out)
}

/// Asserts that `seen` (what the upstream received) carries exactly the
/// `expected` values, header by header, each once.
pub fn assert_headers(seen: &http::HeaderMap, expected: &BTreeMap<&'static str, Option<String>>) {
    let mut problems = Vec::new();
    for (name, want) in expected {
        let got: Vec<_> = seen
            .get_all(*name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        match want {
            Some(want) if got.len() == 1 && got[0] == *want => {}
            None if got.is_empty() => {}
            Some(want) => problems.push(format!("{name}: want {want:?}, got {got:?}")),
            None => problems.push(format!("{name}: want absent, got {got:?}")),
        }
    }
    assert!(
        problems.is_empty(),
        "upstream headers differ from Keystone's validation:\n  {}",
        problems.join("\n  ")
    );
}
