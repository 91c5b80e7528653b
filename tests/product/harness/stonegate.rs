//! The real `stonegate` binary, configured by a builder:
//!
//! ```ignore
//! let sg = Stonegate::builder().keystone(&ks).upstream(&up)
//!     .option("delay_auth_decision", true).start().await;
//! ```
//!
//! `start` writes a TOML config (the keys of `config/stonegate.toml`) into a
//! temporary directory, spawns `stonegate serve --config FILE` with the
//! service password in `STONEGATE_PASSWORD`, and waits until `/readyz` says
//! 200. The process is killed when the handle is dropped; if the test is
//! failing, its log is printed then.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{FakeKeystone, Keystone, Upstream};

/// Where stonegate authenticates itself and validates tokens.
pub trait KeystoneTarget {
    /// `http://127.0.0.1:<port>/v3`.
    fn auth_url(&self) -> String;
    /// Username, password and project of the service account.
    fn service_account(&self) -> (String, String, String);
}

impl KeystoneTarget for Keystone {
    fn auth_url(&self) -> String {
        self.auth_url.clone()
    }
    fn service_account(&self) -> (String, String, String) {
        ("svc".into(), self.password("svc"), "service".into())
    }
}

impl KeystoneTarget for FakeKeystone {
    fn auth_url(&self) -> String {
        FakeKeystone::auth_url(self)
    }
    fn service_account(&self) -> (String, String, String) {
        (
            "svc".into(),
            FakeKeystone::PASSWORD.into(),
            "service".into(),
        )
    }
}

/// How stonegate gets its own credentials.
enum Secret {
    /// Password in `STONEGATE_PASSWORD` (the default).
    PasswordEnv,
    /// Password in a file named by `password_file`.
    PasswordFile,
    /// `auth_type = "v3applicationcredential"`, secret in
    /// `STONEGATE_APPLICATION_CREDENTIAL_SECRET`.
    AppCredential { id: String, secret: String },
}

/// Builds a stonegate configuration and starts the binary.
pub struct Builder {
    auth_url: Option<String>,
    account: Option<(String, String, String)>,
    secret: Secret,
    upstream: Option<String>,
    top: toml::Table,
    proxy: toml::Table,
    authtoken: toml::Table,
    cache: toml::Table,
    extra_toml: String,
    no_upstream: bool,
    wait_ready: bool,
    log_filter: Option<String>,
    oslo: Option<Vec<(String, String)>>,
    nofile: Option<u64>,
    /// `nofile` limits only the soft limit (the hard one stays).
    nofile_soft_only: bool,
}

/// A running stonegate process.
pub struct Stonegate {
    child: Child,
    /// The proxy listener.
    pub listen: SocketAddr,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin: SocketAddr,
    /// The forward-auth listener, with [`Builder::auth_listen`].
    pub auth: Option<SocketAddr>,
    /// The Kubernetes webhook listener (`[kubernetes] listen`), when configured.
    pub kubernetes: Option<SocketAddr>,
    log: PathBuf,
    /// The config file it was started with.
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stonegate {
    /// A builder with test-friendly defaults (short timeouts, catalog on).
    pub fn builder() -> Builder {
        let mut proxy = toml::Table::new();
        proxy.insert("connect_timeout".into(), 2.into());
        proxy.insert("response_timeout".into(), 10.into());
        proxy.insert("shutdown_grace_period".into(), 5.into());
        let mut authtoken = toml::Table::new();
        authtoken.insert("auth_type".into(), "password".into());
        authtoken.insert("user_domain_name".into(), "Default".into());
        authtoken.insert("project_domain_name".into(), "Default".into());
        authtoken.insert("interface".into(), "internal".into());
        authtoken.insert("service_type".into(), "compute".into());
        authtoken.insert("include_service_catalog".into(), true.into());
        authtoken.insert("http_connect_timeout".into(), 2.into());
        authtoken.insert("http_request_timeout".into(), 5.into());
        let mut top = toml::Table::new();
        top.insert("log_format".into(), "text".into());
        Builder {
            auth_url: None,
            account: None,
            secret: Secret::PasswordEnv,
            upstream: None,
            top,
            proxy,
            authtoken,
            cache: toml::Table::new(),
            extra_toml: String::new(),
            no_upstream: false,
            wait_ready: true,
            log_filter: None,
            oslo: None,
            nofile: None,
            nofile_soft_only: false,
        }
    }

    /// `http://<listen><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// `http://<admin_listen><path>`.
    /// The value of the first `/metrics` line starting with `line_start`
    /// (a name with its labels), 0 when there is none.
    pub async fn metric(&self, line_start: &str) -> f64 {
        let text = crate::harness::client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// A GET through the proxy with the given headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = super::client().get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request through stonegate")
    }

    /// A forward-auth check of `GET <path>` at the endpoint
    /// `/_stonegate/<flavor>`, with the original request as that ingress
    /// names it (`traefik`: `X-Forwarded-Method`/`X-Forwarded-Uri`; `nginx`:
    /// `X-Original-Method`/`X-Original-URL` on `https://compute.example.com`),
    /// plus `headers` (a name given twice is sent twice).
    pub async fn forward_auth(
        &self,
        flavor: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let url = format!("https://compute.example.com{path}");
        let original: [(&str, &str); 2] = match flavor {
            "traefik" => [("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", path)],
            "nginx" => [("X-Original-Method", "GET"), ("X-Original-URL", &url)],
            other => panic!("no forward-auth flavor {other:?} in the harness"),
        };
        let mut req = super::client().get(self.url(&format!("/_stonegate/{flavor}")));
        for (k, v) in original.iter().chain(headers) {
            req = req.header(*k, *v);
        }
        req.send().await.expect("forward-auth request to stonegate")
    }

    /// What stonegate logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once it holds `needle`, waiting up to 10 s: log lines are
    /// written by a background thread, so a line can land after the
    /// response that caused it. Returns the log as it is then, found or not.
    pub async fn log_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    /// Sends `signal` (e.g. `HUP`) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit; its exit status if it did.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// CPU time (user + system) the process has used so far (Linux `/proc`).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc/<pid>/stat");
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        let hz = String::from_utf8(
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .expect("getconf CLK_TCK")
                .stdout,
        )
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap_or(100);
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// The process's soft and hard `RLIMIT_NOFILE` (Linux `/proc/<pid>/limits`).
    pub fn descriptor_limits(&self) -> (String, String) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id()))
            .expect("read /proc/<pid>/limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files");
        let mut values = line["Max open files".len()..].split_whitespace();
        (
            values.next().unwrap().to_owned(),
            values.next().unwrap().to_owned(),
        )
    }

    /// Descriptors the process holds open (Linux `/proc/<pid>/fd`).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Peak resident memory of the process in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for Stonegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- stonegate log (last {} lines) ----", tail.len());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            eprintln!(
                "---- config ----\n{}",
                std::fs::read_to_string(&self.config).unwrap_or_default()
            );
        }
    }
}

impl Builder {
    /// Authenticate against and validate with this Keystone (real or fake).
    pub fn keystone(mut self, ks: &impl KeystoneTarget) -> Self {
        self.auth_url = Some(ks.auth_url());
        self.account = Some(ks.service_account());
        self
    }

    /// Give the service password in a file (`password_file`) instead of the
    /// environment.
    pub fn password_in_file(mut self) -> Self {
        self.secret = Secret::PasswordFile;
        self
    }

    /// Authenticate with an application credential instead of a password.
    pub fn application_credential(mut self, id: &str, secret: &str) -> Self {
        self.secret = Secret::AppCredential {
            id: id.into(),
            secret: secret.into(),
        };
        self
    }

    /// Forward to this upstream.
    pub fn upstream(mut self, up: &Upstream) -> Self {
        self.upstream = Some(up.url());
        self
    }

    /// Forward to this URL (e.g. [`Upstream::down`]).
    pub fn upstream_url(mut self, url: impl Into<String>) -> Self {
        self.upstream = Some(url.into());
        self
    }

    /// Set a `[keystone_authtoken]` option.
    pub fn option(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.authtoken.insert(key.into(), value.into());
        self
    }

    /// Remove a `[keystone_authtoken]` option the builder sets by default
    /// (e.g. `service_type`).
    pub fn unset_option(mut self, key: &str) -> Self {
        self.authtoken.remove(key);
        self
    }

    /// A top-level key (e.g. `auth_listen`).
    pub fn top_option(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.top.insert(key.into(), value.into());
        self
    }

    pub fn proxy_option(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.proxy.insert(key.into(), value.into());
        self
    }

    /// Set a `[cache]` option.
    pub fn cache_option(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.cache.insert(key.into(), value.into());
        self
    }

    /// The `RUST_LOG` filter (default: `$STONEGATE_TEST_LOG`, else `info`).
    /// Appends raw TOML (whole tables such as `[fernet]`, `[[forward_auth]]`,
    /// `[routes]`) to the generated configuration.
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push('\n');
        self.extra_toml.push_str(toml);
        self.extra_toml.push('\n');
        self
    }

    /// Runs without an upstream (forward-auth only); `.upstream(..)` is then not needed.
    pub fn without_upstream(mut self) -> Self {
        self.no_upstream = true;
        self
    }

    pub fn log_filter(mut self, filter: &str) -> Self {
        self.log_filter = Some(filter.into());
        self
    }

    /// Configure through an existing service's files only: `files` (name,
    /// text) are written next to each other and passed as `--oslo-config`,
    /// in order, with `--listen`, `--upstream` and `--admin-listen` on the
    /// command line and no TOML file (`.keystone(..)` is still needed, for
    /// the harness's bookkeeping, but its account is not written anywhere).
    pub fn oslo_only(mut self, files: &[(&str, String)]) -> Self {
        self.oslo = Some(
            files
                .iter()
                .map(|(n, t)| ((*n).to_owned(), t.clone()))
                .collect(),
        );
        self
    }

    /// Start the binary under `ulimit -n limit` (soft and hard `RLIMIT_NOFILE`).
    pub fn nofile(mut self, limit: u64) -> Self {
        self.nofile = Some(limit);
        self
    }

    /// Start the binary under `ulimit -S -n limit`: the soft `RLIMIT_NOFILE`
    /// only, the hard one as inherited.
    pub fn nofile_soft(mut self, limit: u64) -> Self {
        self.nofile = Some(limit);
        self.nofile_soft_only = true;
        self
    }

    /// A forward-auth listener (`auth_listen`) on `127.0.0.1:0`, found
    /// like the others ([`Stonegate::auth`]).
    pub fn auth_listen(self) -> Self {
        self.top_option("auth_listen", "127.0.0.1:0")
    }

    /// Do not wait for `/readyz`; wait for `/healthz` only (to test not-ready states).
    pub fn dont_wait_ready(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Write the config, spawn the binary, wait for `/readyz` (or `/healthz`).
    pub async fn start(self) -> Stonegate {
        let auth_url = self
            .auth_url
            .expect("Stonegate::builder().keystone(..) is required");
        let (user, password, project) = self.account.expect("service account");
        let upstream = if self.no_upstream {
            None
        } else {
            Some(
                self.upstream
                    .expect("Stonegate::builder().upstream(..) is required"),
            )
        };
        // Every listener on `127.0.0.1:0`: the kernel picks the ports (none
        // is bound, released and bound again), and the harness reads them
        // from the "stonegate started" line, which names the bound addresses.
        let zero: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (listen, admin) = (zero, zero);

        let mut doc = self.top;
        doc.insert("listen".into(), listen.to_string().into());
        if let Some(upstream) = upstream {
            doc.insert("upstream".into(), upstream.into());
        }
        doc.insert("admin_listen".into(), admin.to_string().into());
        doc.insert("proxy".into(), self.proxy.into());
        let dir = tempfile::tempdir().expect("tempdir");
        let mut at = toml::Table::new();
        at.insert("www_authenticate_uri".into(), auth_url.clone().into());
        at.insert("auth_url".into(), auth_url.into());
        let mut authtoken = self.authtoken;
        let mut env: Vec<(&str, String)> = Vec::new();
        match self.secret {
            Secret::PasswordEnv => {
                at.insert("username".into(), user.into());
                at.insert("project_name".into(), project.into());
                env.push(("STONEGATE_PASSWORD", password));
            }
            Secret::PasswordFile => {
                at.insert("username".into(), user.into());
                at.insert("project_name".into(), project.into());
                let file = dir.path().join("password");
                std::fs::write(&file, format!("{password}\n")).expect("write password file");
                at.insert("password_file".into(), file.display().to_string().into());
            }
            Secret::AppCredential { id, secret } => {
                for k in ["user_domain_name", "project_domain_name"] {
                    authtoken.remove(k);
                }
                authtoken.insert("auth_type".into(), "v3applicationcredential".into());
                at.insert("application_credential_id".into(), id.into());
                env.push(("STONEGATE_APPLICATION_CREDENTIAL_SECRET", secret));
            }
        }
        at.extend(authtoken);
        doc.insert("keystone_authtoken".into(), at.into());
        if !self.cache.is_empty() {
            doc.insert("cache".into(), self.cache.into());
        }

        let mut args: Vec<std::ffi::OsString> = vec!["serve".into()];
        let config = if let Some(files) = &self.oslo {
            let mut first = None;
            for (name, text) in files {
                let path = dir.path().join(name);
                std::fs::write(&path, text).expect("write oslo file");
                args.push("--oslo-config".into());
                args.push(path.clone().into());
                first.get_or_insert(path);
            }
            args.push("--listen".into());
            args.push(listen.to_string().into());
            args.push("--admin-listen".into());
            args.push(admin.to_string().into());
            if let Some(toml::Value::String(up)) = doc.get("upstream") {
                args.push("--upstream".into());
                args.push(up.into());
            }
            env.clear();
            first.expect("at least one oslo file")
        } else {
            let config = dir.path().join("stonegate.toml");
            let text = toml::to_string(&doc).expect("toml") + &self.extra_toml;
            std::fs::write(&config, text).expect("write config");
            args.push("--config".into());
            args.push(config.clone().into());
            config
        };
        let log = dir.path().join("stonegate.log");
        let logf = std::fs::File::create(&log).expect("log file");
        // `ulimit` in a shell that then execs the binary: the crate forbids
        // the unsafe code a `pre_exec(setrlimit)` would need.
        let mut command = match self.nofile {
            None => Command::new(env!("CARGO_BIN_EXE_stonegate")),
            Some(n) => {
                let mut c = Command::new("sh");
                let which = if self.nofile_soft_only { "-S " } else { "" };
                c.arg("-c")
                    .arg(format!("ulimit {which}-n {n} && exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_stonegate"));
                c
            }
        };
        let child = command
            .args(&args)
            .env_remove("STONEGATE_PASSWORD")
            .env_remove("STONEGATE_APPLICATION_CREDENTIAL_SECRET")
            .envs(env)
            .env(
                "RUST_LOG",
                self.log_filter.unwrap_or_else(|| {
                    std::env::var("STONEGATE_TEST_LOG").unwrap_or_else(|_| "info".into())
                }),
            )
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("log fd"))
            .stderr(logf)
            .spawn()
            .expect("spawn the stonegate binary");
        let mut sg = Stonegate {
            child,
            listen,
            admin,
            auth: None,
            kubernetes: None,
            log,
            config,
            _dir: dir,
        };
        sg.learn_bound_addresses().await;
        let path = if self.wait_ready {
            "/readyz"
        } else {
            "/healthz"
        };
        sg.wait_for(path, Duration::from_secs(30)).await;
        sg
    }
}

impl Stonegate {
    /// `listen` and `admin` from the "stonegate started" log line.
    async fn learn_bound_addresses(&mut self) {
        let log = self.log_with("stonegate started").await;
        let line = log
            .lines()
            .find(|l| l.contains("stonegate started"))
            .unwrap_or_else(|| panic!("no start line in the log:\n{log}"));
        let field = |name: &str| -> SocketAddr {
            let value = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {line}"));
            value
                .parse()
                .unwrap_or_else(|e| panic!("{name}={value} is no address ({e}): {line}"))
        };
        self.listen = field("listen");
        self.admin = field("admin");
        // `auth_listen=Some("127.0.0.1:41234")`, or `None`; `kubernetes=` alike.
        let optional = |name: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=Some(\"")))
                .and_then(|v| v.strip_suffix("\")"))
                .map(|v| {
                    v.parse()
                        .unwrap_or_else(|e| panic!("{name}={v} ({e}): {line}"))
                })
        };
        self.auth = optional("auth_listen");
        self.kubernetes = optional("kubernetes");
    }

    async fn wait_for(&mut self, path: &str, limit: Duration) {
        let client = super::client();
        let deadline = Instant::now() + limit;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "stonegate exited ({status}) before {path} answered 200; log:\n{}",
                    self.log()
                );
            }
            match client
                .get(self.admin_url(path))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => return,
                Ok(r) => last = format!("status {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "stonegate's {path} did not answer 200 within {limit:?} (last: {last}); log:\n{}",
            self.log()
        );
    }
}
