//! `[keystone_authtoken]`: keystonemiddleware's option names and defaults,
//! as written ([`Section`]) and checked: the client's [`Settings`] (where
//! and how stonegate talks to Keystone, with its [`ServiceCredentials`] from
//! [`super::credentials`]) and
//! the [`Policy`] the validator applies to requests.

use std::{fmt, time::Duration};

use http::Uri;
use serde::Deserialize;

pub use super::credentials::{ServiceCredentials, APP_CRED_SECRET_ENV, PASSWORD_ENV};
use crate::settings::{at_least_one_second, existing_file, problem, url, Env, Problem};

/// `[keystone_authtoken]`: keystonemiddleware's option names and defaults.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
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

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
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

/// Compiled Keystone client settings.
#[derive(Debug, Clone)]
pub struct Settings {
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

/// What `[keystone_authtoken]` says about answering requests.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Value of `WWW-Authenticate` on 401 (already formatted).
    pub www_authenticate: http::HeaderValue,
    /// The URI it names (the realm of the Bearer challenge, `[oauth2]`).
    pub www_authenticate_uri: String,
    /// Forward invalid requests marked `Invalid`.
    pub delay_auth_decision: bool,
    /// Cache lifetime of a validation.
    pub token_cache_time: Duration,
    /// Set `X-Service-Catalog`.
    pub include_service_catalog: bool,
    /// Service token role list.
    pub service_token_roles: Vec<String>,
    /// Service token must hold one of the roles.
    pub service_token_roles_required: bool,
    /// This service's catalog type, for access rules.
    pub service_type: Option<String>,
}

impl Section {
    /// Checks the section, recording problems in `p` and options that are
    /// set but have no effect in `warnings`; `None` when unusable (with
    /// problems recorded).
    pub fn build(
        &self,
        p: &mut Vec<Problem>,
        warnings: &mut Vec<Problem>,
        env: Env<'_>,
    ) -> Option<(Settings, Policy)> {
        let ks = self;
        let auth_url = url(p, "keystone_authtoken.auth_url", ks.auth_url.as_deref());
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
                        p,
                        "keystone_authtoken.www_authenticate_uri",
                        "must be a printable URI without quotes",
                    );
                    None
                }
            };
        let auth_version = self.auth_version(p);
        let credentials = match auth_version {
            AuthVersion::V3 => self.credentials(p, env),
            AuthVersion::V2 => {
                self.v2_checks(p);
                self.credentials_v2(p, warnings, env)
            }
        };
        if !matches!(ks.interface.as_str(), "public" | "internal" | "admin") {
            problem(
                p,
                "keystone_authtoken.interface",
                "must be \"public\", \"internal\" or \"admin\"",
            );
        }
        at_least_one_second(
            p,
            "keystone_authtoken.http_connect_timeout",
            ks.http_connect_timeout,
        );
        at_least_one_second(
            p,
            "keystone_authtoken.http_request_timeout",
            ks.http_request_timeout,
        );
        if ks.max_concurrent_requests == 0 {
            problem(
                p,
                "keystone_authtoken.max_concurrent_requests",
                "must be at least 1",
            );
        }
        let token_cache_time = token_cache_time(p, ks.token_cache_time);
        if ks.service_token_roles_required && ks.service_token_roles.is_empty() {
            problem(
                p,
                "keystone_authtoken.service_token_roles",
                "is empty while service_token_roles_required = true: no service token could ever be valid",
            );
        }
        if ks.certfile.is_some() != ks.keyfile.is_some() {
            problem(
                p,
                "keystone_authtoken.certfile",
                "certfile and keyfile must be set together",
            );
        }
        existing_file(p, "keystone_authtoken.cafile", &ks.cafile);
        existing_file(p, "keystone_authtoken.certfile", &ks.certfile);
        existing_file(p, "keystone_authtoken.keyfile", &ks.keyfile);
        let settings = Settings {
            auth_url: auth_url?,
            auth_version,
            credentials: credentials?,
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
        };
        let policy = Policy {
            www_authenticate: www_authenticate?,
            www_authenticate_uri: www_uri.to_owned(),
            delay_auth_decision: ks.delay_auth_decision,
            token_cache_time,
            include_service_catalog: ks.include_service_catalog,
            service_token_roles: ks.service_token_roles.clone(),
            service_token_roles_required: ks.service_token_roles_required,
            service_type: ks.service_type.clone(),
        };
        Some((settings, policy))
    }

    /// The Identity API version `auth_version` names (v3 when unset or
    /// unsupported, with a problem recorded).
    pub fn auth_version(&self, p: &mut Vec<Problem>) -> AuthVersion {
        match self.auth_version.as_deref() {
            None => AuthVersion::V3,
            Some(v) => AuthVersion::parse(v).unwrap_or_else(|| {
                problem(
                    p,
                    "keystone_authtoken.auth_version",
                    &format!("{v:?} is not supported: use \"v3\" (the default) or \"v2.0\""),
                );
                AuthVersion::V3
            }),
        }
    }

    /// What Identity v2.0 asks of this section's own options.
    fn v2_checks(&self, p: &mut Vec<Problem>) {
        if let Some(url) = &self.auth_url {
            if url.trim_end_matches('/').ends_with("/v3") {
                problem(
                    p,
                    "keystone_authtoken.auth_url",
                    "ends in /v3 but auth_version = \"v2.0\": give the Identity v2.0 URL (or the bare Keystone URL)",
                );
            }
        }
    }
}
