//! A real nginx (Debian package, `auth_request` module) configured the way
//! ingress-nginx configures `auth-url` + `auth-response-headers`: every
//! request is first sent (headers only) to stonegate's forward-auth endpoint;
//! on 200 every identity header is set from stonegate's answer — and, when
//! the answer lacks it, set empty, i.e. not sent. As in README's snippet for
//! browser sessions, the subrequest names the original URL
//! (`X-Original-URL`), a refusal passes stonegate's `Set-Cookie` on (a
//! cleared session), and `/authentication/` (the `[session]` login and
//! logout paths) is proxied to stonegate's forward-auth listener.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The identity headers stonegate may answer with (ingress-nginx's
/// `auth-response-headers` in deploy/kubernetes/forward-auth.yaml).
pub const AUTH_RESPONSE_HEADERS: &[&str] = &[
    "X-Identity-Status",
    "X-User-Id",
    "X-User-Name",
    "X-User-Domain-Id",
    "X-User-Domain-Name",
    "X-Project-Id",
    "X-Project-Name",
    "X-Project-Domain-Id",
    "X-Project-Domain-Name",
    "X-Domain-Id",
    "X-Domain-Name",
    "X-Roles",
    "X-Is-Admin-Project",
    "X-Service-Catalog",
    "OpenStack-System-Scope",
    "X-Role",
    "X-User",
    "X-Tenant-Id",
    "X-Tenant-Name",
    "X-Tenant",
    "X-Service-Identity-Status",
    "X-Service-User-Id",
    "X-Service-User-Name",
    "X-Service-User-Domain-Id",
    "X-Service-User-Domain-Name",
    "X-Service-Project-Id",
    "X-Service-Project-Name",
    "X-Service-Project-Domain-Id",
    "X-Service-Project-Domain-Name",
    "X-Service-Domain-Id",
    "X-Service-Domain-Name",
    "X-Service-Roles",
    // Not identity: the request id stonegate gave the request, for the upstream's logs.
    "X-OpenStack-Request-ID",
];

/// A running nginx; killed on drop.
pub struct Nginx {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx on a free loopback port, auth subrequests to
    /// `http://{stonegate}{auth_path}`, proxying to `upstream` (`host:port`).
    pub async fn start(stonegate: SocketAddr, auth_path: &str, upstream: &str) -> Self {
        let bin = super::installed(
            &["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"],
            "the ingress tests need a real nginx with auth_request",
            "nginx",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = super::free_addr();
        let d = dir.path().display();
        let mut copies = String::new();
        for (i, h) in AUTH_RESPONSE_HEADERS.iter().enumerate() {
            let var = h.to_ascii_lowercase().replace('-', "_");
            copies.push_str(&format!(
                "      auth_request_set $sg_{i} $upstream_http_{var};\n      proxy_set_header {h} $sg_{i};\n"
            ));
        }
        // Workers of a root master run as `nobody` unless told otherwise.
        let user = if is_root() { "user root;\n" } else { "" };
        let conf = format!(
            "{user}worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
events {{ worker_connections 256; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
  server {{\n    listen {addr};\n\
    location / {{\n      auth_request /_stonegate_auth;\n{copies}\
      auth_request_set $sg_set_cookie $upstream_http_set_cookie;\n      add_header Set-Cookie $sg_set_cookie always;\n\
      proxy_pass http://{upstream};\n    }}\n\
    location = /_stonegate_auth {{\n      internal;\n      proxy_pass http://{stonegate}{auth_path};\n\
      proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n\
      proxy_set_header X-Original-URI $request_uri;\n      proxy_set_header X-Original-Method $request_method;\n\
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;\n    }}\n\
    location /authentication/ {{\n      proxy_pass http://{stonegate};\n      proxy_set_header Host $http_host;\n\
      proxy_set_header X-Real-IP $remote_addr;\n    }}\n  }}\n}}\n"
        );
        Self::spawn(&bin, dir, addr, conf).await
    }

    /// nginx terminating TLS with client certificates verified against
    /// `client_ca` (optional: a request without one reaches Keystone without
    /// one), passing the certificate to a Keystone on the uwsgi socket
    /// `uwsgi` as the WSGI variable `SSL_CLIENT_CERT` (what Keystone's
    /// OAuth 2.0 mTLS token endpoint reads, as Apache's `+ExportCertData`
    /// gives it). `https://addr/v3` is Keystone.
    pub async fn mtls_keystone(
        uwsgi: SocketAddr,
        cert: &std::path::Path,
        key: &std::path::Path,
        client_ca: &std::path::Path,
    ) -> Self {
        let bin = super::installed(
            &["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"],
            "the certificate-bound token tests need a real nginx terminating mTLS",
            "nginx",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = super::free_addr();
        let d = dir.path().display();
        let user = if is_root() { "user root;\n" } else { "" };
        let (cert, key, ca) = (cert.display(), key.display(), client_ca.display());
        let conf = format!(
            "{user}worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
events {{ worker_connections 256; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
  server {{\n    listen {addr} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
    ssl_client_certificate {ca};\n    ssl_verify_client optional;\n\
    location / {{\n      include /etc/nginx/uwsgi_params;\n\
      uwsgi_param SSL_CLIENT_CERT $ssl_client_raw_cert;\n      uwsgi_pass {uwsgi};\n    }}\n  }}\n}}\n"
        );
        Self::spawn(&bin, dir, addr, conf).await
    }

    async fn spawn(bin: &str, dir: tempfile::TempDir, addr: SocketAddr, conf: String) -> Self {
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let mut n = Nginx { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("nginx exited ({status}): {}", n.log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                n.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// nginx's error log.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (a SIGKILLed master leaves
        // them running, orphaned); SIGKILL only if it has not exited in 2 s.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the tests run as root (some servers need to be told which user to be).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
