//! A private copy of the harness Keystone, for a test that changes what
//! every other test relies on (it rotates the Fernet keys): the same
//! Keystone code, configuration, users and fixtures, but its own database
//! copy, its own key repositories and its own port, so nothing it does
//! reaches the shared Keystone the other tests run against in parallel.
//!
//! Its identity endpoints are moved to its own URL (in its database copy),
//! so stonegate's catalog sends validation there too.
//!
//! [`PrivateKeystone::start_jws`] starts the copy with `[token] provider =
//! jws` instead: a key pair made by `keystone-manage create_jws_keypair`,
//! the public key in its own directory (all stonegate is given).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Keystone;

/// A running private Keystone; killed when dropped.
pub struct PrivateKeystone {
    child: Child,
    /// A [`Keystone`] handle on it (same fixtures, its own `auth_url`).
    pub keystone: Keystone,
    /// Its `keystone.conf`.
    pub conf: PathBuf,
    /// Its Fernet key repository.
    pub key_repository: PathBuf,
    /// Its JWS public key repository (`start_jws`): `public.pem`.
    pub public_key_repository: PathBuf,
    /// Its JWS private key repository (`start_jws`): `private.pem`.
    pub private_key_repository: PathBuf,
    dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Runs `cmd` to completion within `limit`; its output. Panics (killing it)
/// past the deadline.
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl PrivateKeystone {
    /// Copies the shared harness Keystone's state and starts the copy with
    /// `max_active_keys` Fernet keys; returns once it answers and its
    /// identity endpoints point at it.
    pub async fn start(shared: &Keystone, max_active_keys: u32) -> Self {
        Self::start_with(shared, max_active_keys, "", None).await
    }

    /// [`Self::start`], with `extra_conf` appended to its `keystone.conf`
    /// and, with `uwsgi_socket`, a uwsgi-protocol socket there too (for an
    /// nginx in front: `uwsgi_pass` sets WSGI variables such as
    /// `SSL_CLIENT_CERT`, which HTTP headers cannot).
    pub async fn start_with(
        shared: &Keystone,
        max_active_keys: u32,
        extra_conf: &str,
        uwsgi_socket: Option<std::net::SocketAddr>,
    ) -> Self {
        Self::launch(shared, max_active_keys, false, extra_conf, uwsgi_socket).await
    }

    /// Like [`start`](Self::start), issuing JWS tokens (`[token] provider =
    /// jws`, ES256) signed by a fresh key pair of `keystone-manage
    /// create_jws_keypair`.
    pub async fn start_jws(shared: &Keystone) -> Self {
        Self::launch(shared, 3, true, "", None).await
    }

    /// [`Self::start_jws`], with `extra_conf` and a uwsgi socket as in
    /// [`Self::start_with`].
    pub async fn start_jws_with(
        shared: &Keystone,
        extra_conf: &str,
        uwsgi_socket: Option<std::net::SocketAddr>,
    ) -> Self {
        Self::launch(shared, 3, true, extra_conf, uwsgi_socket).await
    }

    async fn launch(
        shared: &Keystone,
        max_active_keys: u32,
        jws: bool,
        extra_conf: &str,
        uwsgi_socket: Option<std::net::SocketAddr>,
    ) -> Self {
        let run = std::env::var_os("HARNESS_RUN")
            .map(PathBuf::from)
            .unwrap_or_else(|| super::repo_path("target/keystone/run"));
        let conf_text =
            std::fs::read_to_string(run.join("etc/keystone.conf")).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run the tests with scripts/test.sh)",
                    run.display()
                )
            });
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for keys in ["fernet-keys", "fernet-receipt-keys", "credential-keys"] {
            copy_dir(&run.join(keys), &d.join(keys));
        }
        // A consistent copy of the database while the shared one serves.
        let backup = run_with_deadline(
            Command::new(super::venv_python()).args([
                "-c",
                "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d); d.close()",
                &run.join("keystone.db").display().to_string(),
                &d.join("keystone.db").display().to_string(),
            ]),
            Duration::from_secs(60),
        );
        assert!(
            backup.status.success(),
            "{}",
            String::from_utf8_lossy(&backup.stderr)
        );
        let run_s = run.display().to_string();
        let conf_text = conf_text.replace(&run_s, &d.display().to_string());
        let conf_text = replace_in_section(
            &conf_text,
            "fernet_tokens",
            "max_active_keys",
            &max_active_keys.to_string(),
        );
        let public_key_repository = d.join("jws-keys/public");
        let private_key_repository = d.join("jws-keys/private");
        let conf_text = if jws {
            create_jws_keypair(
                &public_key_repository,
                &private_key_repository,
                "public.pem",
            );
            let text = replace_in_section(&conf_text, "token", "provider", "jws");
            assert!(
                text.contains("provider = jws"),
                "no [token] provider in keystone.conf"
            );
            format!(
                "{text}\n[jwt_tokens]\njws_public_key_repository = {}\njws_private_key_repository = {}\n",
                public_key_repository.display(),
                private_key_repository.display()
            )
        } else {
            conf_text
        };
        let conf_text = format!("{conf_text}\n{extra_conf}\n");
        std::fs::create_dir_all(d.join("etc")).unwrap();
        let conf = d.join("etc/keystone.conf");
        std::fs::write(&conf, conf_text).unwrap();

        let addr = super::free_addr();
        let venv = super::venv_python().parent().unwrap().to_owned();
        let log = std::fs::File::create(d.join("keystone.log")).unwrap();
        // One process, no uwsgi master: killing it stops everything.
        let mut uwsgi = Command::new(venv.join("uwsgi"));
        if let Some(socket) = uwsgi_socket {
            uwsgi.args(["--socket", &socket.to_string()]);
        }
        let child = uwsgi
            .args(["--http-socket", &addr.to_string()])
            .args(["--add-header", "Connection: close"])
            .args(["--module", "keystone_wsgi:application", "--pythonpath"])
            .arg(super::repo_path("tests/keystone"))
            .args([
                "--threads",
                "4",
                "--need-app",
                "--enable-threads",
                "--disable-logging",
            ])
            .args(["--buffer-size", "65535"])
            .env("OS_KEYSTONE_CONFIG_DIR", d.join("etc"))
            .env("OS_KEYSTONE_CONFIG_FILES", "keystone.conf")
            .env("PYTHONWARNINGS", "ignore")
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start uwsgi from the harness venv");
        let auth_url = format!("http://{addr}/v3");
        let mut this = PrivateKeystone {
            child,
            keystone: shared.with_auth_url(&auth_url),
            conf,
            key_repository: d.join("fernet-keys"),
            public_key_repository,
            private_key_repository,
            dir,
        };
        this.wait_up(Duration::from_secs(60)).await;
        this.own_identity_endpoints(&auth_url).await;
        this
    }

    async fn wait_up(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let client = super::client();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the private Keystone exited ({status}): {}", self.log());
            }
            if let Ok(r) = client
                .get(&self.keystone.auth_url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the private Keystone did not answer within {limit:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Points the identity endpoints of its database copy at its own URL.
    async fn own_identity_endpoints(&self, auth_url: &str) {
        let ks = &self.keystone;
        let admin = ks
            .issue(json!({
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"id": "default"}, "password": ks.password("admin")}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}
            }))
            .await;
        let endpoints: Value = ks.fixtures()["endpoints"].clone();
        for (_iface, ep) in endpoints.as_object().unwrap() {
            let resp = super::client()
                .patch(format!(
                    "{auth_url}/endpoints/{}",
                    ep["id"].as_str().unwrap()
                ))
                .header("x-auth-token", &admin)
                .json(&json!({"endpoint": {"url": auth_url}}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                200,
                "PATCH endpoint: {}",
                resp.text().await.unwrap()
            );
        }
    }

    /// `keystone-manage fernet_rotate` on its repository, within 60 s.
    pub async fn fernet_rotate(&self) {
        let manage = super::venv_python()
            .parent()
            .unwrap()
            .join("keystone-manage");
        let conf = self.conf.clone();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let out = tokio::task::spawn_blocking(move || {
            run_with_deadline(
                Command::new(manage)
                    .arg("--config-file")
                    .arg(&conf)
                    .args([
                        "fernet_rotate",
                        "--keystone-user",
                        &user,
                        "--keystone-group",
                        &user,
                    ])
                    .env("OS_KEYSTONE_CONFIG_DIR", conf.parent().unwrap()),
                Duration::from_secs(60),
            )
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "fernet_rotate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// JWS key rotation as an operator does it with `keystone-manage
    /// create_jws_keypair`: a new pair, its public key published first as
    /// `public_name` beside the old one, then its private key signs.
    pub async fn jws_rotate(&self, public_name: &str) {
        let (public, private, name) = (
            self.public_key_repository.clone(),
            self.private_key_repository.clone(),
            public_name.to_owned(),
        );
        tokio::task::spawn_blocking(move || create_jws_keypair(&public, &private, &name))
            .await
            .unwrap();
    }

    /// Kills it (connections are refused from then on): Keystone down.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("keystone.log")).unwrap_or_default()
    }
}

impl Drop for PrivateKeystone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `keystone-manage create_jws_keypair` in a scratch directory (it writes
/// into its working directory); the public key moved to `public/name`, then
/// the private key to `private/private.pem` (replacing the signing key).
fn create_jws_keypair(public: &Path, private: &Path, name: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let manage = super::venv_python()
        .parent()
        .unwrap()
        .join("keystone-manage");
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let out = run_with_deadline(
        Command::new(manage)
            .args(["create_jws_keypair", "--keystone-user", &user])
            .args(["--keystone-group", &user])
            .current_dir(scratch.path())
            .env("PYTHONWARNINGS", "ignore"),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "create_jws_keypair failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(public).unwrap();
    std::fs::create_dir_all(private).unwrap();
    std::fs::copy(scratch.path().join("public.pem"), public.join(name)).unwrap();
    std::fs::copy(
        scratch.path().join("private.pem"),
        private.join("private.pem.new"),
    )
    .unwrap();
    std::fs::rename(private.join("private.pem.new"), private.join("private.pem")).unwrap();
}

/// `key = value` of `[section]` set to `value`.
fn replace_in_section(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut out = String::new();
    let mut in_section = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_section = line == format!("[{section}]");
        }
        if in_section && line.split('=').next().map(str::trim) == Some(key) {
            out.push_str(&format!("{key} = {value}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
