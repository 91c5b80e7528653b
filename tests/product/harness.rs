//! The product-test harness: build the pieces a test needs, each on a
//! `127.0.0.1:0`-derived port, and let `Drop` tear them down.
//!
//! - [`Keystone`]: the real Keystone started by `scripts/test.sh`
//!   (`tests/keystone/keystone-up.sh`), found through `STONEGATE_TEST_KEYSTONE_FIXTURES`;
//! - [`FakeKeystone`]: an in-process Keystone for faults and call counting;
//! - [`v2_keystone::V2Keystone`]: an in-process Identity v2.0 Keystone serving the golden
//!   `V2Token` documents of `tests/fixtures/v2/served.json` (no Keystone serves v2.0);
//! - [`Upstream`]: an in-process echo service recording what it received;
//! - [`Stonegate`]: the real `stonegate` binary, configured and started by a builder.

pub mod cert_verifier;
pub mod fake_keystone;
pub mod keystone;
pub mod kmw;
pub mod kv;
pub mod nginx;
pub mod private_keystone;
pub mod stonegate;
pub mod upstream;
pub mod v2_keystone;

use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::Duration;

pub use fake_keystone::{FakeKeystone, Fault};
pub use keystone::{Keystone, Scope};
pub use private_keystone::run_with_deadline;
pub use stonegate::Stonegate;
pub use upstream::Upstream;

/// A listener on a `127.0.0.1:0` port this process has never handed out
/// before. Tests run in parallel and the kernel may hand a just-released port
/// out again, so every port the harness uses goes through here.
pub fn bind_fresh() -> TcpListener {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    for _ in 0..1000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return l;
        }
    }
    panic!("no fresh loopback port after 1000 tries");
}

/// The same, as a tokio listener (kept open by in-process servers).
pub fn bind_fresh_tokio() -> tokio::net::TcpListener {
    let l = bind_fresh();
    l.set_nonblocking(true).expect("set_nonblocking");
    tokio::net::TcpListener::from_std(l).expect("tokio listener")
}

/// Serves `app` on `listener` until the returned task is aborted; aborting
/// it also closes every open connection (so a stopped fake Keystone refuses
/// connections and drops the ones a client kept alive).
pub fn serve_stoppable(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> tokio::task::JoinHandle<()> {
    use tower::ServiceExt;
    tokio::spawn(async move {
        // Connections live in the set: aborting this task drops them all.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let app = app.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        app.clone().oneshot(req.map(axum::body::Body::new))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            });
            while conns.try_join_next().is_some() {}
        }
    })
}

/// A loopback address that was free a moment ago, for a child process to
/// bind (see [`bind_fresh`]).
pub fn free_addr() -> SocketAddr {
    bind_fresh().local_addr().expect("local_addr")
}

/// The first of `paths` that exists: a system program a test needs. A
/// missing one fails the test (never skips it), saying what needs it and
/// how to install it.
pub fn installed(paths: &[&str], needed_by: &str, package: &str) -> String {
    for p in paths {
        if std::path::Path::new(p).exists() {
            return (*p).to_owned();
        }
    }
    panic!(
        "{} is not installed: {needed_by} (Debian: apt-get install -y {package}); \
         scripts/prereqs.sh installs it as root",
        paths.first().copied().unwrap_or(package)
    );
}

/// A file of this repository, by its path from the repository root.
pub fn repo_path(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The Python of the Keystone harness venv (`$HARNESS_VENV`, else
/// `target/keystone/venv`), which has keystone, keystoneauth1,
/// keystonemiddleware and requests; panics with how to get it.
pub fn venv_python() -> std::path::PathBuf {
    let venv = std::env::var_os("HARNESS_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_path("target/keystone/venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} missing: run the tests with scripts/test.sh (or tests/keystone/keystone-up.sh once, \
         or set HARNESS_VENV)",
        python.display()
    );
    python
}

/// The venv's Python with the reference libraries of
/// `tests/keystone/oracle-requirements.txt` (python-memcached ...) on
/// `PYTHONPATH`: `scripts/test.sh` installs them into `target/py-oracles`.
pub fn oracle_python() -> tokio::process::Command {
    let dir = repo_path("target/py-oracles");
    assert!(
        dir.join("memcache.py").exists(),
        "{} lacks python-memcached: run the tests with scripts/test.sh (it installs \
         tests/keystone/oracle-requirements.txt there)",
        dir.display()
    );
    let mut c = tokio::process::Command::new(venv_python());
    c.env("PYTHONPATH", dir).kill_on_drop(true);
    c
}

/// An HTTP client for loopback tests: no proxies from the environment, bounded in time.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

/// The wall clock in seconds since the Unix epoch (to compare with
/// timestamp metrics).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// What a test may print about a token: a SHA-256 prefix, never the token.
pub fn fingerprint(token: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(token.as_bytes())[..6])
}

/// Every identity header stonegate sets (and strips from requests), user and
/// service variants, as keystonemiddleware names them.
pub const IDENTITY_HEADERS: &[&str] = &[
    "x-identity-status",
    "x-user-id",
    "x-user-name",
    "x-user-domain-id",
    "x-user-domain-name",
    "x-project-id",
    "x-project-name",
    "x-project-domain-id",
    "x-project-domain-name",
    "x-domain-id",
    "x-domain-name",
    "x-roles",
    "x-is-admin-project",
    "x-service-catalog",
    "openstack-system-scope",
    "x-tenant-id",
    "x-tenant-name",
    "x-tenant",
    "x-role",
    "x-user",
    "x-service-identity-status",
    "x-service-user-id",
    "x-service-user-name",
    "x-service-user-domain-id",
    "x-service-user-domain-name",
    "x-service-project-id",
    "x-service-project-name",
    "x-service-project-domain-id",
    "x-service-project-domain-name",
    "x-service-domain-id",
    "x-service-domain-name",
    "x-service-roles",
];

/// Reads until the peer closes; how long that took, or `None` if it was
/// still open after `limit`.
pub async fn closed_within<R: tokio::io::AsyncRead + Unpin>(
    s: &mut R,
    limit: Duration,
) -> Option<Duration> {
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, tokio::io::AsyncReadExt::read(s, &mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}
