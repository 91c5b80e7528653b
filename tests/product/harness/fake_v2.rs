//! A fake Identity v2.0 server (`tests/product/fake_v2_keystone.py`), run
//! with the harness venv's Python: no current Keystone serves v2.0, so its
//! documents come from keystoneauth's own `V2Token` fixture.
//!
//! ```ignore
//! let v2 = FakeV2::start();
//! let user = v2.mint(("u1", "demo"), Some(("t1", "demo")), &[("member", "r1")]).await;
//! let sg = Stonegate::builder().keystone(&v2).upstream(&up)
//!     .option("auth_version", "v2.0").start().await;
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use super::stonegate::KeystoneTarget;

/// A running fake v2.0 Keystone; killed on drop.
pub struct FakeV2 {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

/// A user token the fake minted.
pub struct Minted {
    /// The token id.
    pub id: String,
    /// The identity headers keystonemiddleware set for it (lower-case names).
    pub headers: BTreeMap<String, String>,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// HTTP method.
    pub method: String,
    /// Path and query as sent.
    pub path: String,
}

impl FakeV2 {
    /// The service user's password.
    pub const PASSWORD: &'static str = "v2-service-secret";

    /// Starts the server and waits for its port.
    pub fn start() -> Self {
        let python = super::venv_python();
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr = dir.path().join("fake_v2.log");
        let mut child = Command::new(&python)
            .arg(super::repo_path("tests/product/fake_v2_keystone.py"))
            .arg(Self::PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("log file"))
            .spawn()
            .expect("spawn the fake v2.0 Keystone");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the fake's port");
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "fake v2.0 Keystone did not start ({line:?}):\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        FakeV2 {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            stderr,
            _dir: dir,
        }
    }

    /// Mints a user token valid for an hour. `user`: `(id, name)`;
    /// `tenant`: `(id, name)` for a project-scoped token; `roles`: `(name, id)`.
    pub async fn mint(
        &self,
        user: (&str, &str),
        tenant: Option<(&str, &str)>,
        roles: &[(&str, &str)],
    ) -> Minted {
        self.mint_expiring(user, tenant, roles, 3600).await
    }

    /// A token whose validation answer lacks `token.expires` (malformed).
    pub async fn mint_without_expiry(&self, user: (&str, &str)) -> String {
        let v = self
            .control(
                "/_test/tokens",
                &json!({"user_id": user.0, "user_name": user.1, "without_expiry": true}),
            )
            .await;
        v["id"].as_str().expect("id").to_owned()
    }

    /// [`FakeV2::mint`] with an expiry `expires_in` seconds from now
    /// (negative: already expired, yet still answered 200 by the fake).
    pub async fn mint_expiring(
        &self,
        user: (&str, &str),
        tenant: Option<(&str, &str)>,
        roles: &[(&str, &str)],
        expires_in: i64,
    ) -> Minted {
        let mut req = json!({
            "user_id": user.0, "user_name": user.1, "expires_in": expires_in,
            "roles": roles.iter().map(|(n, i)| json!([n, i])).collect::<Vec<_>>(),
        });
        if let Some((id, name)) = tenant {
            req["tenant_id"] = id.into();
            req["tenant_name"] = name.into();
        }
        let v: Value = self.control("/_test/tokens", &req).await;
        Minted {
            id: v["id"].as_str().expect("id").to_owned(),
            headers: v["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .map(|(k, v)| (k.to_lowercase(), v.as_str().unwrap().to_owned()))
                .collect(),
        }
    }

    /// Forgets every admin token it issued: the next validation with one is 401.
    pub async fn expire_admin_tokens(&self) {
        let resp = super::client()
            .post(format!("{}/_test/expire-admin", self.base))
            .send()
            .await
            .expect("fake v2.0 control");
        assert_eq!(resp.status(), 204);
    }

    /// Every request received so far.
    pub async fn log(&self) -> Vec<Logged> {
        let v: Value = super::client()
            .get(format!("{}/_test/log", self.base))
            .send()
            .await
            .expect("fake v2.0 log")
            .json()
            .await
            .expect("log JSON");
        v.as_array()
            .expect("log array")
            .iter()
            .map(|e| Logged {
                method: e["method"].as_str().unwrap().to_owned(),
                path: e["path"].as_str().unwrap().to_owned(),
            })
            .filter(|l| !l.path.starts_with("/_test/"))
            .collect()
    }

    /// Kills the server: Keystone is down.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn control(&self, path: &str, body: &Value) -> Value {
        let resp = super::client()
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("fake v2.0 control");
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.expect("control JSON")
    }
}

impl Drop for FakeV2 {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- fake v2.0 Keystone stderr ----\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
    }
}

impl KeystoneTarget for FakeV2 {
    fn auth_url(&self) -> String {
        format!("{}/v2.0", self.base)
    }
    fn service_account(&self) -> (String, String, String) {
        ("svc".into(), Self::PASSWORD.into(), "service".into())
    }
}
