//! Configuration: the TOML file as data, checked once, then compiled.
//!
//! [`File`] is the file exactly as written (serde, unknown keys rejected).
//! [`File::build`] collects every problem with the key that has it, and
//! turns the strings into the types the request path uses
//! ([`Settings`]), so nothing is parsed per request. Option names of the
//! `[keystone_authtoken]` table are keystonemiddleware's.

pub mod ini;
pub mod oslo;
mod sources;

use std::{fmt, net::SocketAddr, path::Path, time::Duration};

pub use crate::settings::Problem;
pub(crate) use crate::settings::{addr, problem, secret, url};

use http::Uri;
use secrecy::SecretString;
use serde::Deserialize;

pub use sources::{Loaded, Sources};

/// Environment variable that may hold the service user's password.
pub const PASSWORD_ENV: &str = "STONEGATE_PASSWORD";
/// Environment variable that may hold the application credential secret.
pub const APP_CRED_SECRET_ENV: &str = "STONEGATE_APPLICATION_CREDENTIAL_SECRET";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// The file parsed but some values are unusable.
    #[error("{}", format_problems(.0))]
    Invalid(Vec<Problem>),
}

fn format_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    format!("invalid configuration:\n{}", lines.join("\n"))
}

/// The configuration file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Address the proxy listens on.
    pub listen: Option<String>,
    /// The protected service's base URL.
    pub upstream: Option<String>,
    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin_listen: Option<String>,
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// Forwarding settings.
    #[serde(default)]
    pub proxy: ProxyFile,
    /// keystonemiddleware-compatible options.
    pub keystone_authtoken: AuthTokenFile,
    /// Token cache settings.
    #[serde(default)]
    pub cache: CacheFile,
    /// Serve the proxy listener over TLS (HTTP/2 and HTTP/1.1 by ALPN).
    pub tls: Option<TlsFile>,
    /// A separate listener for the forward-auth endpoints.
    pub auth_listen: Option<String>,
    /// Forward-auth endpoints for ingress proxies.
    #[serde(default)]
    pub forward_auth: Vec<ForwardAuthFile>,
    /// Routes that need no token.
    #[serde(default)]
    pub routes: RoutesFile,
    /// Local validation of Fernet tokens with Keystone's key repository.
    pub fernet: Option<FernetFile>,
    /// Revocation-event polling.
    pub revocation: Option<RevocationFile>,
    /// Browser sessions (login, cookies, CSRF).
    pub session: Option<crate::session::SessionFile>,
}

/// `[fernet]`: local validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FernetFile {
    /// Keystone's `[fernet_tokens] key_repository`.
    pub key_repository: String,
    /// Keystone's `[auth] methods`, in order (it defines the methods bitmask).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Seconds between checks of the key repository for rotations.
    #[serde(default = "default_key_reload_interval")]
    pub key_reload_interval: u64,
    /// Seconds of clock skew allowed on expiry.
    #[serde(default)]
    pub clock_skew: u64,
    /// Resolve names and roles from Keystone once per (user, scope, ...).
    #[serde(default = "default_true")]
    pub enrich: bool,
    /// Seconds resolved names and roles are reused.
    #[serde(default = "default_token_cache_time")]
    pub enrichment_cache_time: u64,
}

fn default_key_reload_interval() -> u64 {
    2
}

/// `[revocation]`: revocation-event polling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationFile {
    /// Poll `GET /v3/OS-REVOKE/events` (default: on).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds between polls.
    #[serde(default = "default_poll_interval")]
    pub revocation_poll_interval: u64,
    /// Seconds without a successful poll after which local validation stops
    /// (tokens are then treated as with Keystone unreachable).
    #[serde(default = "default_staleness_limit")]
    pub staleness_limit: u64,
    /// Keystone's `[token] expiration`, for pruning old events.
    #[serde(default = "default_token_expiration")]
    pub token_expiration: u64,
    /// Keystone's `[token] allow_expired_window`.
    #[serde(default = "default_allow_expired_window")]
    pub allow_expired_window: u64,
}

fn default_poll_interval() -> u64 {
    10
}
fn default_staleness_limit() -> u64 {
    60
}
fn default_token_expiration() -> u64 {
    3600
}
fn default_allow_expired_window() -> u64 {
    172_800
}

/// Compiled `[fernet]`.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Key repository directory.
    pub key_repository: std::path::PathBuf,
    /// Method order of the bitmask.
    pub methods: crate::token::payload::Methods,
    /// Repository check interval.
    pub key_reload_interval: Duration,
    /// Expiry leeway, seconds.
    pub clock_skew: i64,
    /// Enrich from Keystone.
    pub enrich: bool,
    /// Enrichment lifetime.
    pub enrichment_cache_time: Duration,
}

/// Compiled `[revocation]`.
#[derive(Debug, Clone, Copy)]
pub struct RevocationSettings {
    /// Polling and pruning.
    pub poll: crate::revocation::poller::PollConfig,
    /// Staleness limit, seconds.
    pub staleness_limit: i64,
}

/// `[[forward_auth]]`: one endpoint answering an ingress proxy's auth subrequests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthFile {
    /// `nginx`, `traefik` or `envoy`: whose headers carry the original method and path.
    pub flavor: String,
    /// Path of the endpoint (for `envoy`, a prefix followed by the original path).
    pub path: String,
    /// Status answered when Keystone is unavailable.
    #[serde(default = "default_unavailable_status")]
    pub unavailable_status: u16,
}

fn default_unavailable_status() -> u16 {
    503
}

/// `[routes]`: what passes without a token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    /// Let CORS preflight requests (`OPTIONS` + `Origin` + `Access-Control-Request-Method`) through.
    #[serde(default)]
    pub allow_cors_preflight: bool,
    /// `{ method = "GET", path = "/" }` entries.
    #[serde(default)]
    pub public: Vec<PublicRouteFile>,
}

/// One `[[routes.public]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicRouteFile {
    /// HTTP method.
    pub method: String,
    /// Path pattern (`*`/`{x}` one segment, `**` anything).
    pub path: String,
    /// Let requests on this route upgrade (WebSocket...) without a token.
    #[serde(default)]
    pub upgrade: bool,
}

/// `[tls]`: the proxy listener's certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM certificate chain.
    pub cert_file: String,
    /// PEM private key.
    pub key_file: String,
}

fn default_log_format() -> String {
    "text".into()
}

/// `[proxy]`: forwarding to the upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyFile {
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
    /// listen backlog. Also bounded by the descriptor limit.
    pub max_connections: usize,
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

impl Default for ProxyFile {
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
            max_connections: 10_000,
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

/// `[cache]`: the token cache.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheFile {
    /// Upper bound of the cache in (estimated) bytes.
    pub capacity_bytes: u64,
    /// Seconds an invalid token is remembered.
    pub negative_ttl: u64,
    /// A Redis server as the shared second-level cache (instead of
    /// `keystone_authtoken.memcached_servers`).
    pub redis_url: Option<String>,
}

impl fmt::Debug for CacheFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheFile")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("negative_ttl", &self.negative_ttl)
            // May hold a password.
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Default for CacheFile {
    fn default() -> Self {
        Self {
            capacity_bytes: 64 * 1024 * 1024,
            negative_ttl: 10,
            redis_url: None,
        }
    }
}

/// `[keystone_authtoken]`: keystonemiddleware's option names and defaults.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthTokenFile {
    /// URI announced in `WWW-Authenticate: Keystone uri="..."`.
    pub www_authenticate_uri: Option<String>,
    /// Deprecated alias of `www_authenticate_uri`.
    pub auth_uri: Option<String>,
    /// Keystone URL stonegate authenticates against.
    pub auth_url: Option<String>,
    /// `password` or `v3applicationcredential`.
    #[serde(default = "default_auth_type")]
    pub auth_type: String,
    /// Identity API version: `"v3"` (default) or `"v2.0"` for legacy clouds.
    pub auth_version: Option<String>,
    /// Service user name.
    pub username: Option<String>,
    /// Service user id.
    pub user_id: Option<String>,
    /// Service user password (prefer `password_file` or the environment).
    pub password: Option<String>,
    /// File holding the service user password.
    pub password_file: Option<String>,
    /// Domain id of the service user.
    pub user_domain_id: Option<String>,
    /// Domain name of the service user.
    pub user_domain_name: Option<String>,
    /// Project to scope the service token to (name).
    pub project_name: Option<String>,
    /// Project to scope the service token to (id).
    pub project_id: Option<String>,
    /// Domain id of `project_name`.
    pub project_domain_id: Option<String>,
    /// Domain name of `project_name`.
    pub project_domain_name: Option<String>,
    /// Application credential id (`v3applicationcredential`).
    pub application_credential_id: Option<String>,
    /// Application credential secret (prefer the file or the environment).
    pub application_credential_secret: Option<String>,
    /// File holding the application credential secret.
    pub application_credential_secret_file: Option<String>,
    /// Endpoint interface of the identity service to validate with.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// Region of the identity endpoint.
    pub region_name: Option<String>,
    /// This service's catalog type (for access rules).
    pub service_type: Option<String>,
    /// Forward invalid requests with `X-Identity-Status: Invalid`.
    #[serde(default)]
    pub delay_auth_decision: bool,
    /// Seconds a validated token is cached; `-1` (keystonemiddleware's
    /// spelling) caches nothing.
    #[serde(default = "default_token_cache_time_signed")]
    pub token_cache_time: i64,
    /// Set `X-Service-Catalog`.
    #[serde(default = "default_true")]
    pub include_service_catalog: bool,
    /// Roles that make a service token count.
    #[serde(default = "default_service_roles")]
    pub service_token_roles: Vec<String>,
    /// Whether a service token must hold one of `service_token_roles`.
    #[serde(default = "default_true")]
    pub service_token_roles_required: bool,
    /// Seconds to connect to Keystone.
    #[serde(default = "default_connect_timeout")]
    pub http_connect_timeout: u64,
    /// Seconds for a whole Keystone request.
    #[serde(default = "default_request_timeout")]
    pub http_request_timeout: u64,
    /// Retries after a connection failure.
    #[serde(default = "default_retries")]
    pub http_request_max_retries: u32,
    /// CA bundle for Keystone's certificate.
    pub cafile: Option<String>,
    /// Client certificate for mutual TLS to Keystone.
    pub certfile: Option<String>,
    /// Client key for mutual TLS to Keystone.
    pub keyfile: Option<String>,
    /// Skip TLS verification towards Keystone (warned about).
    #[serde(default)]
    pub insecure: bool,
    /// stonegate-specific: most Keystone requests in flight at once.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_requests: usize,
    /// stonegate-specific: consecutive Keystone failures that open the circuit breaker (0 = never).
    #[serde(default = "default_breaker_threshold")]
    pub circuit_breaker_threshold: u32,
    /// stonegate-specific: seconds Keystone is not called once the breaker opened.
    #[serde(default = "default_breaker_cooldown")]
    pub circuit_breaker_cooldown: u64,
    /// memcached servers (`host:port`) shared with other replicas and
    /// keystonemiddleware services.
    pub memcached_servers: Option<Vec<String>>,
    /// `MAC` or `ENCRYPT` (required with a shared cache).
    pub memcache_security_strategy: Option<String>,
    /// Secret the shared entries' keys derive from (prefer the file or the environment).
    pub memcache_secret_key: Option<String>,
    /// File holding `memcache_secret_key`.
    pub memcache_secret_key_file: Option<String>,
    /// Seconds one shared-cache connect or operation may take.
    pub memcache_pool_socket_timeout: Option<f64>,
    /// Seconds a failed shared-cache server is skipped.
    pub memcache_pool_dead_retry: Option<u64>,
    /// Idle connections kept per memcached server.
    pub memcache_pool_maxsize: Option<usize>,
}

fn default_max_concurrent() -> usize {
    64
}
fn default_breaker_threshold() -> u32 {
    5
}
fn default_breaker_cooldown() -> u64 {
    2
}

impl fmt::Debug for AuthTokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthTokenFile")
            .field("auth_url", &self.auth_url)
            .field("auth_type", &self.auth_type)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field(
                "application_credential_secret",
                &self
                    .application_credential_secret
                    .as_ref()
                    .map(|_| "[redacted]"),
            )
            .field("memcached_servers", &self.memcached_servers)
            .field(
                "memcache_secret_key",
                &self.memcache_secret_key.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

fn default_auth_type() -> String {
    "password".into()
}
fn default_interface() -> String {
    "internal".into()
}
fn default_token_cache_time_signed() -> i64 {
    300
}

/// `token_cache_time`: seconds, or keystonemiddleware's `-1` for no caching
/// (every request is validated, nothing is written to a shared cache).
fn token_cache_time(p: &mut Vec<Problem>, secs: i64) -> Duration {
    match u64::try_from(secs) {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) if secs == -1 => Duration::ZERO,
        Err(_) => {
            problem(
                p,
                "keystone_authtoken.token_cache_time",
                "must be a number of seconds, or -1 to cache nothing",
            );
            Duration::ZERO
        }
    }
}

fn default_token_cache_time() -> u64 {
    300
}
fn default_true() -> bool {
    true
}
fn default_service_roles() -> Vec<String> {
    vec!["service".into()]
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_request_timeout() -> u64 {
    10
}
fn default_retries() -> u32 {
    3
}

/// Which Identity API stonegate speaks (`auth_version`, keystonemiddleware's option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthVersion {
    /// Identity v3 (`POST /v3/auth/tokens`, `GET /v3/auth/tokens`): the default.
    #[default]
    V3,
    /// Legacy Identity v2.0 (`POST /v2.0/tokens`, `GET /v2.0/tokens/{token}`).
    V2,
}

impl AuthVersion {
    /// Reads an `auth_version` value: `"v2.0"`, `"v2"`, `"2.0"`, `"2"`, or
    /// `"v3"`, `"v3.0"`, `"3"`, `"3.0"`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().trim_start_matches(['v', 'V']) {
            "2" | "2.0" => Some(Self::V2),
            "3" | "3.0" => Some(Self::V3),
            _ => None,
        }
    }

    /// Path segment of the API's base URL (`v3` or `v2.0`).
    pub fn segment(self) -> &'static str {
        match self {
            Self::V3 => "v3",
            Self::V2 => "v2.0",
        }
    }
}

/// How stonegate authenticates itself to Keystone.
#[derive(Debug, Clone)]
pub enum ServiceCredentials {
    /// `auth_type = password`.
    Password {
        /// `{"id": ...}` or `{"name": ..., "domain": {...}}` of the user.
        user: serde_json::Value,
        /// The password.
        password: SecretString,
        /// The `scope` object, if any.
        scope: Option<serde_json::Value>,
    },
    /// `auth_type = password` with `auth_version = "v2.0"`: keystoneauth's
    /// v2 `passwordCredentials`.
    PasswordV2 {
        /// `("username", name)` or `("userId", id)`.
        user: (&'static str, String),
        /// The password.
        password: SecretString,
        /// `("tenantId", id)` or `("tenantName", name)`, if scoped.
        tenant: Option<(&'static str, String)>,
    },
    /// `auth_type = v3applicationcredential`.
    ApplicationCredential {
        /// Credential id.
        id: String,
        /// Credential secret.
        secret: SecretString,
    },
}

/// Compiled Keystone settings.
#[derive(Debug, Clone)]
pub struct KeystoneSettings {
    /// Where to authenticate (`.../v3`, or `.../v2.0` with [`AuthVersion::V2`]).
    pub auth_url: Uri,
    /// The Identity API version spoken.
    pub auth_version: AuthVersion,
    /// Service credentials.
    pub credentials: ServiceCredentials,
    /// Identity endpoint interface.
    pub interface: String,
    /// Identity endpoint region.
    pub region_name: Option<String>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Retries after connection failures.
    pub max_retries: u32,
    /// CA bundle path.
    pub cafile: Option<String>,
    /// Client certificate path.
    pub certfile: Option<String>,
    /// Client key path.
    pub keyfile: Option<String>,
    /// Skip TLS verification.
    pub insecure: bool,
    /// Most Keystone requests in flight.
    pub max_concurrent_requests: usize,
    /// Failures that open the circuit breaker (0 = never).
    pub circuit_breaker_threshold: u32,
    /// How long the breaker stays open.
    pub circuit_breaker_cooldown: Duration,
}

/// Compiled authentication policy (what the validator and layer need).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Value of `WWW-Authenticate` on 401 (already formatted).
    pub www_authenticate: http::HeaderValue,
    /// Forward invalid requests marked `Invalid`.
    pub delay_auth_decision: bool,
    /// Cache lifetime of a validation.
    pub token_cache_time: Duration,
    /// Lifetime of a negative (invalid token) entry.
    pub negative_ttl: Duration,
    /// Cache capacity in bytes.
    pub cache_capacity_bytes: u64,
    /// Set `X-Service-Catalog`.
    pub include_service_catalog: bool,
    /// Service token role list.
    pub service_token_roles: Vec<String>,
    /// Service token must hold one of the roles.
    pub service_token_roles_required: bool,
    /// This service's catalog type, for access rules.
    pub service_type: Option<String>,
    /// Routes that need no token.
    pub public_routes: crate::routes::PublicRoutes,
    /// Local Fernet validation, when configured.
    pub local: Option<LocalSettings>,
    /// Revocation polling, when enabled.
    pub revocation: Option<RevocationSettings>,
    /// Browser sessions, when enabled.
    pub session: Option<crate::session::SessionSettings>,
    /// The shared second-level cache (memcached or Redis), when configured.
    pub shared_cache: Option<crate::shared_cache::SharedCacheSettings>,
}

/// Compiled proxy settings.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Upstream base URL; `None` when the listener only serves forward-auth.
    pub upstream: Option<Uri>,
    /// Separate listener for forward-auth endpoints.
    pub auth_listen: Option<SocketAddr>,
    /// Forward-auth endpoints.
    pub forward_auth: Vec<crate::forward_auth::Endpoint>,
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
    /// Most client connections per listener (before the descriptor limit).
    pub max_connections: usize,
    /// Emit JSON log lines.
    pub log_json: bool,
    /// Listener certificate and key (PEM paths), when serving TLS.
    pub tls: Option<TlsFile>,
    /// TLS towards an https upstream.
    pub upstream_tls: crate::tls::ClientTls,
    /// Allowed upgrades and the bounds of their tunnels.
    pub upgrades: crate::proxy::upgrade::Settings,
}

/// Everything the process needs, compiled.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keystone client settings.
    pub keystone: KeystoneSettings,
    /// Authentication policy.
    pub auth: AuthSettings,
    /// Listener and upstream settings.
    pub proxy: ProxySettings,
    /// Options that are set but have no effect (e.g. domains with Identity
    /// v2.0), each with its key: logged at start, printed by `check-config`.
    pub warnings: Vec<Problem>,
}

impl File {
    /// Reads and parses a TOML file (no semantic checks yet).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = read(path)?;
        Self::parse(&text).map_err(|e| match e {
            Error::Parse { message, .. } => Error::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Parse {
            path: "<config>".into(),
            message: e.to_string(),
        })
    }

    /// Checks every value and compiles the settings, reading secrets from
    /// files or the environment (`env` is the lookup, so tests need no globals).
    pub fn build(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Error> {
        let mut p = Vec::new();
        let ks = &self.keystone_authtoken;
        let listen = addr(&mut p, "listen", self.listen.as_deref());
        let admin_listen = addr(&mut p, "admin_listen", self.admin_listen.as_deref());
        let upstream = match &self.upstream {
            None if !self.forward_auth.is_empty() => None,
            other => url(&mut p, "upstream", other.as_deref()),
        };
        let auth_listen = self
            .auth_listen
            .as_deref()
            .and_then(|a| addr(&mut p, "auth_listen", Some(a)));
        if self.auth_listen.is_some() && self.forward_auth.is_empty() {
            problem(
                &mut p,
                "auth_listen",
                "is set but no [[forward_auth]] endpoint is configured",
            );
        }
        let mut forward_auth = Vec::new();
        for (i, fa) in self.forward_auth.iter().enumerate() {
            let key = format!("forward_auth[{i}]");
            let flavor = match fa.flavor.as_str() {
                "nginx" => Some(crate::forward_auth::Flavor::Nginx),
                "traefik" => Some(crate::forward_auth::Flavor::Traefik),
                "envoy" => Some(crate::forward_auth::Flavor::Envoy),
                other => {
                    problem(
                        &mut p,
                        &format!("{key}.flavor"),
                        &format!("{other:?} is not one of \"nginx\", \"traefik\", \"envoy\""),
                    );
                    None
                }
            };
            if !fa.path.starts_with('/') || fa.path.contains(['?', '#']) {
                problem(
                    &mut p,
                    &format!("{key}.path"),
                    "must be an absolute path without query",
                );
            }
            let status = match http::StatusCode::from_u16(fa.unavailable_status) {
                Ok(s) if s.is_client_error() || s.is_server_error() => Some(s),
                _ => {
                    problem(
                        &mut p,
                        &format!("{key}.unavailable_status"),
                        "must be a 4xx or 5xx status",
                    );
                    None
                }
            };
            if let (Some(flavor), Some(unavailable_status)) = (flavor, status) {
                forward_auth.push(crate::forward_auth::Endpoint {
                    flavor,
                    path: fa.path.trim_end_matches('/').to_owned(),
                    unavailable_status,
                });
            }
        }
        let mut public = Vec::new();
        for (i, r) in self.routes.public.iter().enumerate() {
            let key = format!("routes.public[{i}]");
            match http::Method::from_bytes(r.method.to_ascii_uppercase().as_bytes()) {
                Ok(method) if r.path.starts_with('/') => public
                    .push(crate::routes::PublicRoute::new(method, &r.path).with_upgrade(r.upgrade)),
                Ok(_) => problem(&mut p, &format!("{key}.path"), "must start with /"),
                Err(_) => problem(&mut p, &format!("{key}.method"), "is not an HTTP method"),
            }
        }
        let public_routes =
            crate::routes::PublicRoutes::new(public, self.routes.allow_cors_preflight);
        let local = self.fernet.as_ref().map(|f| {
            if f.key_reload_interval == 0 {
                problem(
                    &mut p,
                    "fernet.key_reload_interval",
                    "must be at least 1 second",
                );
            }
            if f.methods
                .as_ref()
                .is_some_and(|m| m.is_empty() || m.len() > 63)
            {
                problem(
                    &mut p,
                    "fernet.methods",
                    "must list 1 to 63 methods, in Keystone's [auth] methods order",
                );
            }
            if let Err(e) = crate::token::keys::KeySet::load(Path::new(&f.key_repository)) {
                problem(&mut p, "fernet.key_repository", &e.to_string());
            }
            LocalSettings {
                key_repository: f.key_repository.clone().into(),
                methods: f
                    .methods
                    .clone()
                    .map(crate::token::payload::Methods::new)
                    .unwrap_or_default(),
                key_reload_interval: Duration::from_secs(f.key_reload_interval.max(1)),
                clock_skew: i64::try_from(f.clock_skew).unwrap_or(i64::MAX),
                enrich: f.enrich,
                enrichment_cache_time: Duration::from_secs(f.enrichment_cache_time),
            }
        });
        // Polling is on by default with local validation, off otherwise.
        let revocation = match (&self.revocation, &self.fernet) {
            (Some(r), _) if !r.enabled => None,
            (Some(r), _) => Some(r.clone()),
            (None, Some(_)) => toml::from_str::<RevocationFile>("").ok(),
            (None, None) => None,
        }
        .map(|r| {
            if r.revocation_poll_interval == 0 {
                problem(
                    &mut p,
                    "revocation.revocation_poll_interval",
                    "must be at least 1 second",
                );
            }
            let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            RevocationSettings {
                poll: crate::revocation::poller::PollConfig {
                    interval: Duration::from_secs(r.revocation_poll_interval.max(1)),
                    max_token_lifetime: secs(r.token_expiration),
                    allow_expired_window: secs(r.allow_expired_window),
                },
                staleness_limit: secs(r.staleness_limit),
            }
        });
        let log_json = match self.log_format.as_str() {
            "text" => false,
            "json" => true,
            _ => {
                problem(&mut p, "log_format", "must be \"text\" or \"json\"");
                false
            }
        };
        let auth_url = url(
            &mut p,
            "keystone_authtoken.auth_url",
            ks.auth_url.as_deref(),
        );
        let www_uri = ks
            .www_authenticate_uri
            .as_deref()
            .or(ks.auth_uri.as_deref())
            .or(ks.auth_url.as_deref())
            .unwrap_or_default();
        let www_authenticate =
            match http::HeaderValue::from_str(&format!("Keystone uri=\"{www_uri}\"")) {
                Ok(v) if !www_uri.contains('"') => Some(v),
                _ => {
                    problem(
                        &mut p,
                        "keystone_authtoken.www_authenticate_uri",
                        "must be a printable URI without quotes",
                    );
                    None
                }
            };
        let auth_version = match ks.auth_version.as_deref() {
            None => AuthVersion::V3,
            Some(v) => AuthVersion::parse(v).unwrap_or_else(|| {
                problem(
                    &mut p,
                    "keystone_authtoken.auth_version",
                    &format!("{v:?} is not supported: use \"v3\" (the default) or \"v2.0\""),
                );
                AuthVersion::V3
            }),
        };
        let mut warnings = Vec::new();
        let credentials = match auth_version {
            AuthVersion::V3 => self.credentials(&mut p, env),
            AuthVersion::V2 => {
                self.v2_checks(&mut p);
                self.credentials_v2(&mut p, &mut warnings, env)
            }
        };
        let session = self
            .session
            .as_ref()
            .filter(|s| s.enabled)
            .and_then(|s| s.build(&mut p, env));
        let shared_cache = crate::shared_cache::settings::SharedCacheFile {
            memcached_servers: ks.memcached_servers.as_deref(),
            redis_url: self.cache.redis_url.as_deref(),
            security_strategy: ks.memcache_security_strategy.as_deref(),
            secret_key: ks.memcache_secret_key.as_ref(),
            secret_key_file: ks.memcache_secret_key_file.as_ref(),
            socket_timeout: ks.memcache_pool_socket_timeout,
            dead_retry: ks.memcache_pool_dead_retry,
            pool_maxsize: ks.memcache_pool_maxsize,
            local_validation: self.fernet.is_some(),
        }
        .build(&mut p, env);
        if !matches!(ks.interface.as_str(), "public" | "internal" | "admin") {
            problem(
                &mut p,
                "keystone_authtoken.interface",
                "must be \"public\", \"internal\" or \"admin\"",
            );
        }
        for (key, v) in [
            (
                "keystone_authtoken.http_connect_timeout",
                ks.http_connect_timeout,
            ),
            (
                "keystone_authtoken.http_request_timeout",
                ks.http_request_timeout,
            ),
            ("proxy.connect_timeout", self.proxy.connect_timeout),
            ("proxy.response_timeout", self.proxy.response_timeout),
            ("proxy.header_read_timeout", self.proxy.header_read_timeout),
            ("proxy.tunnel_max_lifetime", self.proxy.tunnel_max_lifetime),
            ("proxy.first_byte_timeout", self.proxy.first_byte_timeout),
            ("proxy.idle_timeout", self.proxy.idle_timeout),
            (
                "proxy.http2_keep_alive_timeout",
                self.proxy.http2_keep_alive_timeout,
            ),
        ] {
            if v == 0 {
                problem(&mut p, key, "must be at least 1 second");
            }
        }
        if ks.max_concurrent_requests == 0 {
            problem(
                &mut p,
                "keystone_authtoken.max_concurrent_requests",
                "must be at least 1",
            );
        }
        let token_cache_time = token_cache_time(&mut p, ks.token_cache_time);
        if self.cache.capacity_bytes < 1024 {
            problem(&mut p, "cache.capacity_bytes", "must be at least 1024");
        }
        if ks.service_token_roles_required && ks.service_token_roles.is_empty() {
            problem(
                &mut p,
                "keystone_authtoken.service_token_roles",
                "is empty while service_token_roles_required = true: no service token could ever be valid",
            );
        }
        if self.proxy.http2_max_concurrent_streams == 0 {
            problem(
                &mut p,
                "proxy.http2_max_concurrent_streams",
                "must be at least 1 (100 is a common choice)",
            );
        }
        if self.proxy.max_connections == 0 {
            problem(
                &mut p,
                "proxy.max_connections",
                "must be at least 1 (the default, 10000, suits most deployments)",
            );
        }
        if self.proxy.max_headers < 16 {
            problem(&mut p, "proxy.max_headers", "must be at least 16");
        }
        if self.proxy.max_header_bytes < 8192 {
            problem(
                &mut p,
                "proxy.max_header_bytes",
                "must be at least 8192 (hyper's minimum buffer)",
            );
        }
        let upgrades = crate::proxy::upgrade::Settings::new(
            &self.proxy.upgrade_protocols,
            Duration::from_secs(self.proxy.tunnel_max_lifetime),
            (self.proxy.tunnel_idle_timeout > 0)
                .then(|| Duration::from_secs(self.proxy.tunnel_idle_timeout)),
        )
        .map_err(|e| problem(&mut p, "proxy.upgrade_protocols", &e))
        .ok();
        if self.proxy.certfile.is_some() != self.proxy.keyfile.is_some() {
            problem(
                &mut p,
                "proxy.certfile",
                "certfile and keyfile must be set together",
            );
        }
        if ks.certfile.is_some() != ks.keyfile.is_some() {
            problem(
                &mut p,
                "keystone_authtoken.certfile",
                "certfile and keyfile must be set together",
            );
        }
        let (tls_cert, tls_key) = match &self.tls {
            Some(t) => (Some(t.cert_file.clone()), Some(t.key_file.clone())),
            None => (None, None),
        };
        for (key, f) in [
            ("tls.cert_file", &tls_cert),
            ("tls.key_file", &tls_key),
            ("proxy.cafile", &self.proxy.cafile),
            ("proxy.certfile", &self.proxy.certfile),
            ("proxy.keyfile", &self.proxy.keyfile),
            ("keystone_authtoken.cafile", &ks.cafile),
            ("keystone_authtoken.certfile", &ks.certfile),
            ("keystone_authtoken.keyfile", &ks.keyfile),
        ] {
            if let Some(f) = f {
                if !Path::new(f).is_file() {
                    problem(&mut p, key, &format!("file {f:?} does not exist"));
                }
            }
        }

        match (
            listen,
            admin_listen,
            upstream,
            auth_url,
            www_authenticate,
            credentials,
        ) {
            (
                Some(listen),
                Some(admin_listen),
                upstream,
                Some(auth_url),
                Some(www_authenticate),
                Some(credentials),
            ) if p.is_empty() => Ok(Settings {
                warnings,
                keystone: KeystoneSettings {
                    auth_url,
                    auth_version,
                    credentials,
                    interface: ks.interface.clone(),
                    region_name: ks.region_name.clone(),
                    connect_timeout: Duration::from_secs(ks.http_connect_timeout),
                    request_timeout: Duration::from_secs(ks.http_request_timeout),
                    max_retries: ks.http_request_max_retries,
                    cafile: ks.cafile.clone(),
                    certfile: ks.certfile.clone(),
                    keyfile: ks.keyfile.clone(),
                    insecure: ks.insecure,
                    max_concurrent_requests: ks.max_concurrent_requests,
                    circuit_breaker_threshold: ks.circuit_breaker_threshold,
                    circuit_breaker_cooldown: Duration::from_secs(ks.circuit_breaker_cooldown),
                },
                auth: AuthSettings {
                    www_authenticate,
                    delay_auth_decision: ks.delay_auth_decision,
                    token_cache_time,
                    negative_ttl: Duration::from_secs(self.cache.negative_ttl),
                    cache_capacity_bytes: self.cache.capacity_bytes,
                    include_service_catalog: ks.include_service_catalog,
                    service_token_roles: ks.service_token_roles.clone(),
                    service_token_roles_required: ks.service_token_roles_required,
                    service_type: ks.service_type.clone(),
                    public_routes,
                    local,
                    revocation,
                    session,
                    shared_cache,
                },
                proxy: ProxySettings {
                    listen,
                    upstream,
                    auth_listen,
                    forward_auth,
                    admin_listen,
                    connect_timeout: Duration::from_secs(self.proxy.connect_timeout),
                    response_timeout: Duration::from_secs(self.proxy.response_timeout),
                    shutdown_grace_period: Duration::from_secs(self.proxy.shutdown_grace_period),
                    header_read_timeout: Duration::from_secs(self.proxy.header_read_timeout),
                    max_headers: self.proxy.max_headers,
                    max_header_bytes: self.proxy.max_header_bytes,
                    first_byte_timeout: Duration::from_secs(self.proxy.first_byte_timeout),
                    idle_timeout: Duration::from_secs(self.proxy.idle_timeout),
                    http2_keep_alive_interval: (self.proxy.http2_keep_alive_interval > 0)
                        .then(|| Duration::from_secs(self.proxy.http2_keep_alive_interval)),
                    http2_keep_alive_timeout: Duration::from_secs(
                        self.proxy.http2_keep_alive_timeout,
                    ),
                    http2_max_concurrent_streams: self.proxy.http2_max_concurrent_streams,
                    max_connections: self.proxy.max_connections,
                    log_json,
                    tls: self.tls.clone(),
                    upstream_tls: crate::tls::ClientTls {
                        cafile: self.proxy.cafile.clone(),
                        certfile: self.proxy.certfile.clone(),
                        keyfile: self.proxy.keyfile.clone(),
                        insecure: self.proxy.insecure,
                    },
                    // `None` recorded a problem, so `p` is not empty here.
                    upgrades: upgrades.unwrap_or_default(),
                },
            }),
            _ => Err(Error::Invalid(p)),
        }
    }

    fn credentials(
        &self,
        p: &mut Vec<Problem>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<ServiceCredentials> {
        let ks = &self.keystone_authtoken;
        match ks.auth_type.as_str() {
            "password" => {
                let domain = |id: &Option<String>, name: &Option<String>| match (id, name) {
                    (Some(id), _) => Some(serde_json::json!({ "id": id })),
                    (None, Some(name)) => Some(serde_json::json!({ "name": name })),
                    (None, None) => None,
                };
                let user = match (&ks.user_id, &ks.username) {
                    (Some(id), _) => Some(serde_json::json!({ "id": id })),
                    (None, Some(name)) => match domain(&ks.user_domain_id, &ks.user_domain_name) {
                        Some(d) => Some(serde_json::json!({ "name": name, "domain": d })),
                        None => {
                            problem(
                                p,
                                "keystone_authtoken.user_domain_name",
                                "username needs user_domain_id or user_domain_name",
                            );
                            None
                        }
                    },
                    (None, None) => {
                        problem(
                            p,
                            "keystone_authtoken.username",
                            "is required with auth_type = \"password\" (or set user_id)",
                        );
                        None
                    }
                };
                let scope = match (&ks.project_id, &ks.project_name) {
                    (Some(id), _) => Some(serde_json::json!({ "project": { "id": id } })),
                    (None, Some(name)) => {
                        match domain(&ks.project_domain_id, &ks.project_domain_name) {
                            Some(d) => Some(
                                serde_json::json!({ "project": { "name": name, "domain": d } }),
                            ),
                            None => {
                                problem(
                                    p,
                                    "keystone_authtoken.project_domain_name",
                                    "project_name needs project_domain_id or project_domain_name",
                                );
                                None
                            }
                        }
                    }
                    (None, None) => None,
                };
                let password = secret(
                    p,
                    "keystone_authtoken.password",
                    &ks.password,
                    &ks.password_file,
                    PASSWORD_ENV,
                    env,
                );
                Some(ServiceCredentials::Password {
                    user: user?,
                    password: password?,
                    scope,
                })
            }
            "v3applicationcredential" => {
                let id = ks.application_credential_id.clone();
                if id.is_none() {
                    problem(
                        p,
                        "keystone_authtoken.application_credential_id",
                        "is required with auth_type = \"v3applicationcredential\"",
                    );
                }
                let secret = secret(
                    p,
                    "keystone_authtoken.application_credential_secret",
                    &ks.application_credential_secret,
                    &ks.application_credential_secret_file,
                    APP_CRED_SECRET_ENV,
                    env,
                );
                Some(ServiceCredentials::ApplicationCredential {
                    id: id?,
                    secret: secret?,
                })
            }
            other => {
                problem(
                    p,
                    "keystone_authtoken.auth_type",
                    &format!(
                        "{other:?} is not supported: use \"password\" or \"v3applicationcredential\""
                    ),
                );
                None
            }
        }
    }
}

impl File {
    /// What Identity v2.0 cannot do: local Fernet validation, revocation
    /// events and password logins all need v3.
    fn v2_checks(&self, p: &mut Vec<Problem>) {
        const WHY: &str = "needs Identity v3: remove it, or remove auth_version = \"v2.0\"";
        if self.fernet.is_some() {
            problem(p, "fernet", &format!("local Fernet validation {WHY}"));
        }
        if self.revocation.as_ref().is_some_and(|r| r.enabled) {
            problem(p, "revocation", &format!("revocation-event polling {WHY}"));
        }
        if self.session.as_ref().is_some_and(|s| s.enabled) {
            problem(
                p,
                "session",
                &format!("browser sessions (v3 password login) {WHY}"),
            );
        }
        if let Some(url) = &self.keystone_authtoken.auth_url {
            if url.trim_end_matches('/').ends_with("/v3") {
                problem(
                    p,
                    "keystone_authtoken.auth_url",
                    "ends in /v3 but auth_version = \"v2.0\": give the Identity v2.0 URL (or the bare Keystone URL)",
                );
            }
        }
    }

    /// keystoneauth's v2 `password` plugin: `username` (else `user_id`),
    /// `project_id` (else `project_name`) as the tenant; domains do not exist
    /// in v2.0 and are ignored with a warning.
    fn credentials_v2(
        &self,
        p: &mut Vec<Problem>,
        warnings: &mut Vec<Problem>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<ServiceCredentials> {
        let ks = &self.keystone_authtoken;
        if ks.auth_type != "password" {
            problem(
                p,
                "keystone_authtoken.auth_type",
                &format!(
                    "{:?} is not available with auth_version = \"v2.0\": use \"password\" (application credentials need Identity v3)",
                    ks.auth_type
                ),
            );
            return None;
        }
        for (key, value) in [
            ("user_domain_id", &ks.user_domain_id),
            ("user_domain_name", &ks.user_domain_name),
            ("project_domain_id", &ks.project_domain_id),
            ("project_domain_name", &ks.project_domain_name),
        ] {
            if value.is_some() {
                problem(
                    warnings,
                    &format!("keystone_authtoken.{key}"),
                    "ignored: Identity v2.0 (auth_version) has no domains",
                );
            }
        }
        let user = match (&ks.username, &ks.user_id) {
            (Some(name), _) => Some(("username", name.clone())),
            (None, Some(id)) => Some(("userId", id.clone())),
            (None, None) => {
                problem(
                    p,
                    "keystone_authtoken.username",
                    "is required with auth_type = \"password\" (or set user_id)",
                );
                None
            }
        };
        let tenant = match (&ks.project_id, &ks.project_name) {
            (Some(id), _) => Some(("tenantId", id.clone())),
            (None, Some(name)) => Some(("tenantName", name.clone())),
            (None, None) => None,
        };
        let password = secret(
            p,
            "keystone_authtoken.password",
            &ks.password,
            &ks.password_file,
            PASSWORD_ENV,
            env,
        );
        Some(ServiceCredentials::PasswordV2 {
            user: user?,
            password: password?,
            tenant,
        })
    }
}

/// A configuration file's text.
pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const MINIMAL: &str = r#"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:8000"
admin_listen = "127.0.0.1:9090"
[keystone_authtoken]
auth_url = "http://127.0.0.1:5000/v3"
username = "svc"
password = "pw"
user_domain_name = "Default"
project_name = "service"
project_domain_name = "Default"
"#;

    #[test]
    fn annotated_example_parses_and_builds() {
        let text = include_str!("../config/stonegate.toml");
        let file = File::parse(text).expect("example parses");
        // The example names a password file that does not exist here; the
        // environment supplies it instead.
        let mut file = file;
        file.keystone_authtoken.password_file = None;
        let env = |k: &str| (k == PASSWORD_ENV).then(|| "from-env".to_string());
        let s = file.build(&env).expect("example builds");
        assert_eq!(s.proxy.listen.port(), 8080);
        assert_eq!(s.auth.token_cache_time, Duration::from_secs(300));
        assert!(s.auth.service_token_roles_required);
    }

    #[test]
    fn minimal_config_gets_keystonemiddleware_defaults() {
        let s = File::parse(MINIMAL).unwrap().build(&no_env).unwrap();
        assert_eq!(s.keystone.interface, "internal");
        assert!(s.auth.include_service_catalog);
        assert!(!s.auth.delay_auth_decision);
        assert_eq!(s.auth.service_token_roles, vec!["service".to_string()]);
        assert_eq!(
            s.auth.www_authenticate,
            "Keystone uri=\"http://127.0.0.1:5000/v3\""
        );
    }

    #[test]
    fn token_cache_time_minus_one_caches_nothing_and_other_negatives_are_named() {
        let with = |v: &str| {
            File::parse(&MINIMAL.replace(
                "[keystone_authtoken]",
                &format!("[keystone_authtoken]\ntoken_cache_time = {v}"),
            ))
            .unwrap()
            .build(&no_env)
        };
        assert_eq!(with("-1").unwrap().auth.token_cache_time, Duration::ZERO);
        assert_eq!(
            with("0").unwrap().auth.token_cache_time,
            Duration::ZERO,
            "0 is a lifetime of nothing too"
        );
        assert_eq!(
            problem_keys(with("-2")),
            vec!["keystone_authtoken.token_cache_time".to_string()]
        );
    }

    #[test]
    fn upgrades_default_to_websocket_and_never_to_h2c() {
        let s = File::parse(MINIMAL).unwrap().build(&no_env).unwrap();
        assert_eq!(s.proxy.upgrades, crate::proxy::upgrade::Settings::default());
        assert_eq!(s.proxy.upgrades.max_lifetime, Duration::from_secs(3600));
        assert_eq!(
            s.proxy.upgrades.idle_timeout,
            Some(Duration::from_secs(300))
        );
        let with = |proxy: &str| {
            let text = MINIMAL.replace(
                "[keystone_authtoken]\n",
                &format!("[proxy]\n{proxy}\n[keystone_authtoken]\n"),
            );
            File::parse(&text).unwrap().build(&no_env)
        };
        for listed in [
            r#"["websocket", "h2c"]"#,
            r#"["HTTP/2.0"]"#,
            r#"["web socket"]"#,
        ] {
            let r = with(&format!("upgrade_protocols = {listed}"));
            assert_eq!(problem_keys(r), vec!["proxy.upgrade_protocols"], "{listed}");
        }
        let r = with("tunnel_max_lifetime = 0");
        assert_eq!(problem_keys(r), vec!["proxy.tunnel_max_lifetime"]);
        let s = with("upgrade_protocols = []\ntunnel_idle_timeout = 0").unwrap();
        assert_eq!(s.proxy.upgrades.idle_timeout, None);
        let public = format!(
            "{MINIMAL}\n[[routes.public]]\nmethod = \"GET\"\npath = \"/live/**\"\nupgrade = true\n"
        );
        let s = File::parse(&public).unwrap().build(&no_env).unwrap();
        assert!(s
            .auth
            .public_routes
            .allows_upgrade(&http::Method::GET, "/live/x"));
        assert!(!s
            .auth
            .public_routes
            .allows_upgrade(&http::Method::GET, "/other"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = File::parse(&format!("{MINIMAL}\nbogus_option = 1\n")).unwrap_err();
        assert!(err.to_string().contains("bogus_option"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = r#"
listen = "nonsense"
upstream = "ftp://x"
admin_listen = "127.0.0.1:9090"
log_format = "xml"
[keystone_authtoken]
auth_url = "http://127.0.0.1:5000/v3"
username = "svc"
interface = "private"
"#;
        let Err(Error::Invalid(problems)) = File::parse(text).unwrap().build(&no_env) else {
            panic!("expected problems");
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "listen",
            "upstream",
            "log_format",
            "keystone_authtoken.interface",
            "keystone_authtoken.user_domain_name",
            "keystone_authtoken.password",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
    }

    fn v2(extra: &str) -> Result<Settings, Error> {
        let text = MINIMAL.replace("/v3\"", "/v2.0\"").replace(
            "[keystone_authtoken]\n",
            &format!("[keystone_authtoken]\nauth_version = \"v2.0\"\n{extra}"),
        );
        File::parse(&text).unwrap().build(&no_env)
    }

    fn problem_keys(r: Result<Settings, Error>) -> Vec<String> {
        match r {
            Err(Error::Invalid(p)) => p.into_iter().map(|p| p.key).collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn auth_version_spellings() {
        for (v, want) in [
            ("2", AuthVersion::V2),
            ("2.0", AuthVersion::V2),
            ("v2.0", AuthVersion::V2),
            ("v3", AuthVersion::V3),
            ("3", AuthVersion::V3),
            ("v3.0", AuthVersion::V3),
        ] {
            assert_eq!(AuthVersion::parse(v), Some(want), "{v}");
        }
        for v in ["v1", "2.1", "", "v4", "latest"] {
            assert_eq!(AuthVersion::parse(v), None, "{v}");
        }
        let s = File::parse(MINIMAL).unwrap().build(&no_env).unwrap();
        assert_eq!(s.keystone.auth_version, AuthVersion::V3);
        let text = MINIMAL.replace(
            "[keystone_authtoken]\n",
            "[keystone_authtoken]\nauth_version = \"v2.5\"\n",
        );
        let keys = problem_keys(File::parse(&text).unwrap().build(&no_env));
        assert_eq!(keys, vec!["keystone_authtoken.auth_version"]);
    }

    #[test]
    fn v2_password_credentials_ignore_domains_with_a_warning() {
        use secrecy::ExposeSecret;
        let s = v2("").unwrap();
        assert_eq!(s.keystone.auth_version, AuthVersion::V2);
        let ServiceCredentials::PasswordV2 {
            user,
            password,
            tenant,
        } = &s.keystone.credentials
        else {
            panic!("{:?}", s.keystone.credentials)
        };
        assert_eq!(user, &("username", "svc".to_string()));
        assert_eq!(password.expose_secret(), "pw");
        assert_eq!(tenant, &Some(("tenantName", "service".to_string())));
        let warned: Vec<&str> = s.warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(
            warned,
            vec![
                "keystone_authtoken.user_domain_name",
                "keystone_authtoken.project_domain_name"
            ]
        );
        let s = v2("project_id = \"p1\"\n").unwrap();
        let ServiceCredentials::PasswordV2 { tenant, .. } = &s.keystone.credentials else {
            panic!()
        };
        assert_eq!(tenant, &Some(("tenantId", "p1".to_string())));
    }

    #[test]
    fn v3_only_features_are_errors_with_v2() {
        let dir = tempfile::tempdir().unwrap();
        let fernet = format!(
            "\n[fernet]\nkey_repository = {:?}\n",
            dir.path().display().to_string()
        );
        let text = MINIMAL.replace("/v3\"", "/v2.0\"").replace(
            "[keystone_authtoken]\n",
            "[keystone_authtoken]\nauth_version = \"2\"\n",
        ) + &fernet
            + "\n[revocation]\nenabled = true\n";
        let keys = problem_keys(File::parse(&text).unwrap().build(&no_env));
        assert!(keys.contains(&"fernet".to_string()), "{keys:?}");
        assert!(keys.contains(&"revocation".to_string()), "{keys:?}");

        let keys = problem_keys(v2(
            "auth_type = \"v3applicationcredential\"\napplication_credential_id = \"x\"\n",
        ));
        assert_eq!(keys, vec!["keystone_authtoken.auth_type"]);

        let text = MINIMAL.replace(
            "[keystone_authtoken]\n",
            "[keystone_authtoken]\nauth_version = \"v2.0\"\n",
        );
        let keys = problem_keys(File::parse(&text).unwrap().build(&no_env));
        assert_eq!(keys, vec!["keystone_authtoken.auth_url"]);
    }

    #[test]
    fn password_comes_from_file_or_env_and_debug_redacts_it() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let text = MINIMAL.replace(
            "password = \"pw\"",
            &format!("password_file = {:?}", f.display().to_string()),
        );
        let file = File::parse(&text).unwrap();
        let s = file.build(&no_env).unwrap();
        let ServiceCredentials::Password { password, .. } = &s.keystone.credentials else {
            panic!()
        };
        assert_eq!(password.expose_secret(), "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(!format!("{file:?}").contains("s3cret"));

        let text = MINIMAL.replace("password = \"pw\"\n", "");
        let env = |k: &str| (k == PASSWORD_ENV).then(|| "envpw".to_string());
        let s = File::parse(&text).unwrap().build(&env).unwrap();
        let ServiceCredentials::Password { password, .. } = &s.keystone.credentials else {
            panic!()
        };
        assert_eq!(password.expose_secret(), "envpw");
    }

    fn shared(extra_authtoken: &str, extra_top: &str) -> Result<Settings, Vec<Problem>> {
        let text = format!("{extra_top}\n{MINIMAL}\n{extra_authtoken}\n");
        match File::parse(&text).unwrap().build(&no_env) {
            Ok(s) => Ok(s),
            Err(Error::Invalid(p)) => Err(p),
            Err(e) => panic!("{e}"),
        }
    }

    fn keys_of(p: &[Problem]) -> Vec<&str> {
        p.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn shared_cache_needs_mac_or_encrypt_and_a_secret() {
        use crate::shared_cache::{crypt::Strategy, Backend};
        use secrecy::ExposeSecret;
        let servers = "memcached_servers = [\"127.0.0.1:11211\", \"[::1]:11212\"]\n";
        // No strategy (kmw's default "None"): refused, naming the key.
        let p = shared(servers, "").unwrap_err();
        assert_eq!(
            keys_of(&p),
            ["keystone_authtoken.memcache_security_strategy"]
        );
        assert!(p[0].message.contains("forge"), "{}", p[0]);
        let p = shared(
            &format!("{servers}memcache_security_strategy = \"None\""),
            "",
        )
        .unwrap_err();
        assert_eq!(
            keys_of(&p),
            ["keystone_authtoken.memcache_security_strategy"]
        );
        // Lower case would derive other keys than keystonemiddleware's.
        let p = shared(
            &format!("{servers}memcache_security_strategy = \"mac\""),
            "",
        )
        .unwrap_err();
        assert!(p[0].message.contains("upper case"), "{}", p[0]);
        // A strategy but no secret.
        let p = shared(
            &format!("{servers}memcache_security_strategy = \"MAC\""),
            "",
        )
        .unwrap_err();
        assert_eq!(keys_of(&p), ["keystone_authtoken.memcache_secret_key"]);
        assert!(p[0].message.contains(settings_env()), "{}", p[0]);
        // Complete.
        let s = shared(
            &format!(
                "{servers}memcache_security_strategy = \"ENCRYPT\"\nmemcache_secret_key = \"k\""
            ),
            "",
        )
        .unwrap();
        let c = s.auth.shared_cache.unwrap();
        assert_eq!(c.strategy, Strategy::Encrypt);
        assert_eq!(c.secret.expose_secret(), "k");
        assert_eq!(c.socket_timeout, Duration::from_millis(500));
        assert_eq!(c.dead_retry, Duration::from_secs(300));
        assert!(matches!(&c.backend, Backend::Memcached(v) if v.len() == 2));
        assert!(!format!("{c:?}").contains("\"k\""));
        // Without servers nothing is shared, whatever the strategy says.
        let s = shared("memcache_security_strategy = \"MAC\"", "").unwrap();
        assert!(s.auth.shared_cache.is_none());
    }

    fn settings_env() -> &'static str {
        crate::shared_cache::settings::SECRET_KEY_ENV
    }

    #[test]
    fn shared_cache_secret_from_file_or_environment() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "from-file\n").unwrap();
        let text = format!(
            "{MINIMAL}\nmemcached_servers = [\"127.0.0.1:11211\"]\nmemcache_security_strategy = \"MAC\"\n\
             memcache_secret_key_file = {:?}\n",
            f.display().to_string()
        );
        let s = File::parse(&text).unwrap().build(&no_env).unwrap();
        assert_eq!(
            s.auth.shared_cache.unwrap().secret.expose_secret(),
            "from-file"
        );
        let text = format!(
            "{MINIMAL}\nmemcached_servers = [\"127.0.0.1:11211\"]\nmemcache_security_strategy = \"MAC\"\n"
        );
        let env = |k: &str| (k == settings_env()).then(|| "from-env".to_string());
        let s = File::parse(&text).unwrap().build(&env).unwrap();
        assert_eq!(
            s.auth.shared_cache.unwrap().secret.expose_secret(),
            "from-env"
        );
    }

    #[test]
    fn shared_cache_backends_and_values_are_checked() {
        let ok = "memcache_security_strategy = \"MAC\"\nmemcache_secret_key = \"k\"\n";
        // Both backends: one problem naming both keys.
        let p = shared(
            &format!("{ok}memcached_servers = [\"127.0.0.1:11211\"]"),
            "",
        )
        .map(|_| ())
        .and_then(|()| {
            shared(
                &format!("{ok}memcached_servers = [\"127.0.0.1:11211\"]\n[cache]\nredis_url = \"redis://127.0.0.1/0\""),
                "",
            )
        })
        .unwrap_err();
        assert_eq!(keys_of(&p), ["cache.redis_url"]);
        assert!(p[0]
            .message
            .contains("keystone_authtoken.memcached_servers"));
        // Redis alone.
        let s = shared(
            &format!("{ok}[cache]\nredis_url = \"redis://:pw@127.0.0.1:6379/0\""),
            "",
        )
        .unwrap();
        let c = s.auth.shared_cache.unwrap();
        assert_eq!(c.backend.label(), "redis");
        assert!(!format!("{c:?}").contains("pw"));
        let p = shared(&format!("{ok}[cache]\nredis_url = \"http://x\""), "").unwrap_err();
        assert_eq!(keys_of(&p), ["cache.redis_url"]);
        // Bad servers and values, each named.
        let p = shared(
            &format!(
                "{ok}memcached_servers = [\"127.0.0.1\", \"h:0\", \"ok:1\"]\n\
                 memcache_pool_socket_timeout = 0\nmemcache_pool_maxsize = 0"
            ),
            "",
        )
        .unwrap_err();
        assert_eq!(
            keys_of(&p),
            [
                "keystone_authtoken.memcache_pool_socket_timeout",
                "keystone_authtoken.memcache_pool_maxsize",
                "keystone_authtoken.memcached_servers[0]",
                "keystone_authtoken.memcached_servers[1]",
            ]
        );
        let p = shared(&format!("{ok}memcached_servers = []"), "").unwrap_err();
        assert_eq!(keys_of(&p), ["keystone_authtoken.memcached_servers"]);
        // The shared cache serves online validation: not with [fernet].
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0"), "").unwrap();
        let p = shared(
            &format!(
                "{ok}memcached_servers = [\"127.0.0.1:11211\"]\n[fernet]\nkey_repository = {:?}",
                dir.path().display().to_string()
            ),
            "",
        )
        .unwrap_err();
        assert!(
            keys_of(&p).contains(&"keystone_authtoken.memcached_servers"),
            "{p:?}"
        );
    }
}
