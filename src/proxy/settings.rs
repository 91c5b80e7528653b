//! `[proxy]` (forwarding to the upstream) and `[tls]` (the listener's
//! certificate), as written ([`Section`], [`TlsSection`]) and checked with
//! the file's top-level listener keys ([`Listeners`]) into [`Settings`].

use std::{net::SocketAddr, time::Duration};

use http::Uri;
use serde::Deserialize;

use crate::settings::{addr, at_least_one_second, existing_file, problem, url, Problem};

/// `[tls]`: the proxy listener's certificate, and the client certificates
/// it asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain.
    pub cert_file: String,
    /// PEM private key.
    pub key_file: String,
    /// PEM CA bundle client certificates are verified against; unset: no
    /// client certificate is asked for.
    pub client_ca_file: Option<String>,
    /// With `client_ca_file`: whether a client must present a certificate
    /// (`required`, the default) or may connect without one (`optional`).
    pub client_auth: Option<ClientAuth>,
}

/// `[tls] client_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A handshake without a client certificate is refused.
    Required,
    /// A client may connect without a certificate (a certificate it
    /// presents is still verified).
    Optional,
}

impl TlsSection {
    /// The client certificates the listener verifies, with `client_ca_file`.
    pub fn client_certificates(&self) -> Option<crate::tls::ClientCertificates> {
        self.client_ca_file
            .as_ref()
            .map(|ca| crate::tls::ClientCertificates {
                ca_file: ca.clone(),
                required: self.client_auth != Some(ClientAuth::Optional),
            })
    }
}

/// `[proxy]`: forwarding to the upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Section {
    /// Seconds to connect to the upstream (then 502).
    pub connect_timeout: u64,
    /// Seconds to wait for the upstream's response headers (then 504).
    pub response_timeout: u64,
    /// Seconds SIGTERM waits for in-flight requests.
    pub shutdown_grace_period: u64,
    /// Seconds a client has to send its request headers.
    pub header_read_timeout: u64,
    /// Most request headers accepted (more: 431).
    pub max_headers: usize,
    /// Most bytes of request line + headers accepted (more: 431).
    pub max_header_bytes: usize,
    /// Seconds a new connection has to send its first bytes (TLS handshake,
    /// then enough of the request to tell HTTP/1.1 from HTTP/2).
    pub first_byte_timeout: u64,
    /// Seconds a connection may stay open with no request in flight
    /// (HTTP/1.1 keep-alive and HTTP/2), then it is closed (HTTP/2: GOAWAY).
    pub idle_timeout: u64,
    /// Seconds between HTTP/2 keep-alive pings (0: no pings).
    pub http2_keep_alive_interval: u64,
    /// Seconds an HTTP/2 ping may go unanswered before the connection is closed.
    pub http2_keep_alive_timeout: u64,
    /// Most concurrent streams of one HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// Most client connections per listener; more wait in the kernel's
    /// listen backlog. Unset: [`DEFAULT_MAX_CONNECTIONS`], or fewer when the
    /// descriptor limit allows fewer (without a warning: only a value set
    /// here that the limit cannot honour is warned about).
    pub max_connections: Option<usize>,
    /// Threads serving client connections (`stonegate serve`), each with
    /// its own runtime and its own upstream connections: a connection, its
    /// requests and the upstream connections they use stay on one thread.
    /// Unset: one per available core.
    pub worker_threads: Option<usize>,
    /// CA bundle for an https upstream (system roots when unset).
    pub cafile: Option<String>,
    /// Client certificate for mutual TLS to the upstream.
    pub certfile: Option<String>,
    /// Client key for mutual TLS to the upstream.
    pub keyfile: Option<String>,
    /// Skip verification of the upstream's certificate (warned about).
    pub insecure: bool,
    /// Protocols a request may upgrade to (`name` or `name/version`).
    pub upgrade_protocols: Vec<String>,
    /// Seconds an upgraded tunnel may live (its token was checked once).
    pub tunnel_max_lifetime: u64,
    /// Seconds a tunnel may pass no byte before it is closed; 0: no idle limit.
    pub tunnel_idle_timeout: u64,
}

impl Default for Section {
    fn default() -> Self {
        Self {
            connect_timeout: 5,
            response_timeout: 60,
            shutdown_grace_period: 30,
            header_read_timeout: 30,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            first_byte_timeout: 10,
            idle_timeout: 60,
            http2_keep_alive_interval: 20,
            http2_keep_alive_timeout: 20,
            http2_max_concurrent_streams: 100,
            max_connections: None,
            worker_threads: None,
            cafile: None,
            certfile: None,
            keyfile: None,
            insecure: false,
            upgrade_protocols: vec!["websocket".into()],
            tunnel_max_lifetime: 3600,
            tunnel_idle_timeout: 300,
        }
    }
}

/// Client connections per listener when `max_connections` is not set (and
/// the descriptor limit allows that many).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Compiled proxy settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Upstream base URL; `None` when the listener only serves forward-auth.
    pub upstream: Option<Uri>,
    /// Separate listener for forward-auth endpoints.
    pub auth_listen: Option<SocketAddr>,
    /// Admin listen address.
    pub admin_listen: SocketAddr,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Upstream response-header timeout.
    pub response_timeout: Duration,
    /// Graceful shutdown bound.
    pub shutdown_grace_period: Duration,
    /// Client header read timeout.
    pub header_read_timeout: Duration,
    /// Most request headers (HTTP/1.1; 431 beyond).
    pub max_headers: usize,
    /// Most bytes of request head (431 beyond).
    pub max_header_bytes: usize,
    /// Time a new connection has to send its first bytes.
    pub first_byte_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings; `None`: no pings.
    pub http2_keep_alive_interval: Option<Duration>,
    /// Time an HTTP/2 ping may go unanswered.
    pub http2_keep_alive_timeout: Duration,
    /// Most concurrent streams per HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// Most client connections per listener (before the descriptor limit);
    /// `None`: not configured, [`DEFAULT_MAX_CONNECTIONS`] at most.
    pub max_connections: Option<usize>,
    /// Threads serving client connections (`stonegate serve`); `None`: one
    /// per available core ([`Settings::worker_threads`]).
    pub worker_threads: Option<usize>,
    /// Emit JSON log lines.
    pub log_json: bool,
    /// Listener certificate and key (PEM paths), when serving TLS.
    pub tls: Option<TlsSection>,
    /// TLS towards an https upstream.
    pub upstream_tls: crate::tls::ClientTls,
    /// Allowed upgrades and the bounds of their tunnels.
    pub upgrades: super::upgrade::Settings,
}

impl Settings {
    /// The threads `stonegate serve` serves client connections on:
    /// `worker_threads`, or one per available core.
    pub fn worker_threads(&self) -> usize {
        self.worker_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }
}

/// The file's top-level keys that name the listeners and the upstream.
#[derive(Debug, Clone, Copy)]
pub struct Listeners<'a> {
    /// `listen`.
    pub listen: Option<&'a str>,
    /// `upstream`.
    pub upstream: Option<&'a str>,
    /// `admin_listen`.
    pub admin_listen: Option<&'a str>,
    /// `auth_listen`.
    pub auth_listen: Option<&'a str>,
    /// `log_format`.
    pub log_format: &'a str,
    /// Whether any `[[forward_auth]]` endpoint is written (then `upstream`
    /// may be left out).
    pub forward_auth_configured: bool,
    /// Whether `[kubernetes]` is written (then `upstream` may be left out).
    pub kubernetes_configured: bool,
}

impl Section {
    /// Checks `[proxy]`, `[tls]` and the listener keys, recording problems
    /// in `p`; `None` when unusable (with problems recorded).
    pub fn build(
        &self,
        p: &mut Vec<Problem>,
        top: Listeners<'_>,
        tls: Option<&TlsSection>,
    ) -> Option<Settings> {
        let listen = addr(p, "listen", top.listen);
        let admin_listen = addr(p, "admin_listen", top.admin_listen);
        let upstream = match top.upstream {
            None if top.forward_auth_configured || top.kubernetes_configured => None,
            other => url(p, "upstream", other),
        };
        let auth_listen = top
            .auth_listen
            .and_then(|a| addr(p, "auth_listen", Some(a)));
        if top.auth_listen.is_some() && !top.forward_auth_configured {
            problem(
                p,
                "auth_listen",
                "is set but no [[forward_auth]] endpoint is configured",
            );
        }
        let log_json = match top.log_format {
            "text" => false,
            "json" => true,
            _ => {
                problem(p, "log_format", "must be \"text\" or \"json\"");
                false
            }
        };
        for (key, v) in [
            ("proxy.connect_timeout", self.connect_timeout),
            ("proxy.response_timeout", self.response_timeout),
            ("proxy.header_read_timeout", self.header_read_timeout),
            ("proxy.tunnel_max_lifetime", self.tunnel_max_lifetime),
            ("proxy.first_byte_timeout", self.first_byte_timeout),
            ("proxy.idle_timeout", self.idle_timeout),
            (
                "proxy.http2_keep_alive_timeout",
                self.http2_keep_alive_timeout,
            ),
        ] {
            at_least_one_second(p, key, v);
        }
        if self.http2_max_concurrent_streams == 0 {
            problem(
                p,
                "proxy.http2_max_concurrent_streams",
                "must be at least 1 (100 is a common choice)",
            );
        }
        if self.max_connections == Some(0) {
            problem(
                p,
                "proxy.max_connections",
                "must be at least 1 (the default, 10000, suits most deployments)",
            );
        }
        if self.worker_threads == Some(0) {
            problem(
                p,
                "proxy.worker_threads",
                "must be at least 1; leave it unset for one thread per available core",
            );
        }
        if self.max_headers < 16 {
            problem(p, "proxy.max_headers", "must be at least 16");
        }
        if self.max_header_bytes < 8192 {
            problem(
                p,
                "proxy.max_header_bytes",
                "must be at least 8192 (hyper's minimum buffer)",
            );
        }
        let upgrades = super::upgrade::Settings::new(
            &self.upgrade_protocols,
            Duration::from_secs(self.tunnel_max_lifetime),
            (self.tunnel_idle_timeout > 0).then(|| Duration::from_secs(self.tunnel_idle_timeout)),
        )
        .map_err(|e| problem(p, "proxy.upgrade_protocols", &e))
        .ok();
        if self.certfile.is_some() != self.keyfile.is_some() {
            problem(
                p,
                "proxy.certfile",
                "certfile and keyfile must be set together",
            );
        }
        if let Some(t) = tls {
            existing_file(p, "tls.cert_file", &Some(t.cert_file.clone()));
            existing_file(p, "tls.key_file", &Some(t.key_file.clone()));
            existing_file(p, "tls.client_ca_file", &t.client_ca_file);
            if t.client_auth.is_some() && t.client_ca_file.is_none() {
                problem(
                    p,
                    "tls.client_auth",
                    "is set but tls.client_ca_file is not: name the CA bundle (PEM) client certificates are verified against",
                );
            }
        }
        existing_file(p, "proxy.cafile", &self.cafile);
        existing_file(p, "proxy.certfile", &self.certfile);
        existing_file(p, "proxy.keyfile", &self.keyfile);
        Some(Settings {
            listen: listen?,
            upstream,
            auth_listen,
            admin_listen: admin_listen?,
            connect_timeout: Duration::from_secs(self.connect_timeout),
            response_timeout: Duration::from_secs(self.response_timeout),
            shutdown_grace_period: Duration::from_secs(self.shutdown_grace_period),
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            max_headers: self.max_headers,
            max_header_bytes: self.max_header_bytes,
            first_byte_timeout: Duration::from_secs(self.first_byte_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            http2_keep_alive_interval: (self.http2_keep_alive_interval > 0)
                .then(|| Duration::from_secs(self.http2_keep_alive_interval)),
            http2_keep_alive_timeout: Duration::from_secs(self.http2_keep_alive_timeout),
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
            max_connections: self.max_connections,
            worker_threads: self.worker_threads,
            log_json,
            tls: tls.cloned(),
            upstream_tls: crate::tls::ClientTls {
                cafile: self.cafile.clone(),
                certfile: self.certfile.clone(),
                keyfile: self.keyfile.clone(),
                insecure: self.insecure,
            },
            // `None` recorded a problem, so `p` is not empty here.
            upgrades: upgrades.unwrap_or_default(),
        })
    }
}
