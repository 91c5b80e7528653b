//! keystonemiddleware's option catalogue: every option it (or keystoneauth's
//! loader) reads, its type, deprecated aliases and what stonegate does with
//! it, and oslo.config's typing of the raw values.

/// How an oslo.config value is typed (`cfg.StrOpt`, `BoolOpt`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Bool,
    Int,
    List,
}

/// What stonegate does with an option.
#[derive(Debug, Clone, Copy)]
pub(super) enum Use {
    /// Becomes `[keystone_authtoken].<key>`.
    Pass(&'static str),
    /// Not used; the reason is given as a warning when the option is set.
    Ignore(&'static str),
    /// Accepted (and ignored) only with one of these values (compared
    /// case-insensitively); any other value is an error with the reason.
    Only(&'static [&'static str], &'static str),
}

/// One option keystonemiddleware (or keystoneauth's loader) reads.
pub(super) struct Opt {
    pub(super) name: &'static str,
    /// Deprecated names still read, oldest spelling last.
    pub(super) aliases: &'static [&'static str],
    pub(super) kind: Kind,
    pub(super) usage: Use,
}

const FALSE: &[&str] = &["false", "0", "no", "off", "f", "n"];

macro_rules! opt {
    ($name:literal, $kind:ident, $usage:expr) => {
        opt!($name, [], $kind, $usage)
    };
    ($name:literal, [$($alias:literal),*], $kind:ident, $usage:expr) => {
        Opt { name: $name, aliases: &[$($alias),*], kind: Kind::$kind, usage: $usage }
    };
}

/// keystonemiddleware's `auth_token/_opts.py`, keystoneauth's password and
/// application-credential plugin options, and the pre-keystoneauth options
/// (`admin_user`, `identity_uri`, ...) older deployments still carry.
pub(super) const OPTIONS: &[Opt] = &[
    // keystonemiddleware
    opt!("www_authenticate_uri", ["auth_uri"], Str, Use::Pass("www_authenticate_uri")),
    opt!("auth_version", Str, Use::Pass("auth_version")),
    opt!("interface", Str, Use::Pass("interface")),
    opt!("delay_auth_decision", Bool, Use::Pass("delay_auth_decision")),
    opt!("http_connect_timeout", Int, Use::Pass("http_connect_timeout")),
    opt!("http_request_max_retries", Int, Use::Pass("http_request_max_retries")),
    opt!("cache", Str, Use::Ignore("it names a Swift WSGI environment cache; stonegate runs outside Swift and keeps its own cache")),
    opt!("certfile", Str, Use::Pass("certfile")),
    opt!("keyfile", Str, Use::Pass("keyfile")),
    opt!("cafile", Str, Use::Pass("cafile")),
    opt!("insecure", Bool, Use::Pass("insecure")),
    opt!("region_name", Str, Use::Pass("region_name")),
    opt!("memcached_servers", ["memcache_servers"], List, Use::Pass("memcached_servers")),
    opt!("token_cache_time", Int, Use::Pass("token_cache_time")),
    opt!("memcache_security_strategy", Str, Use::Pass("memcache_security_strategy")),
    opt!("memcache_secret_key", Str, Use::Pass("memcache_secret_key")),
    opt!("memcache_tls_enabled", Bool, Use::Only(FALSE, "memcached over TLS is not supported; stonegate will not fall back to plain TCP")),
    opt!("memcache_tls_cafile", Str, Use::Ignore("memcached over TLS is not supported")),
    opt!("memcache_tls_certfile", Str, Use::Ignore("memcached over TLS is not supported")),
    opt!("memcache_tls_keyfile", Str, Use::Ignore("memcached over TLS is not supported")),
    opt!("memcache_tls_allowed_ciphers", Str, Use::Ignore("memcached over TLS is not supported")),
    opt!("memcache_pool_dead_retry", Int, Use::Pass("memcache_pool_dead_retry")),
    opt!("memcache_pool_maxsize", Int, Use::Pass("memcache_pool_maxsize")),
    opt!("memcache_pool_socket_timeout", Int, Use::Pass("memcache_pool_socket_timeout")),
    opt!("memcache_pool_unused_timeout", Int, Use::Ignore("connections to memcached are kept while in use; idle ones are closed by the pool")),
    opt!("memcache_pool_conn_get_timeout", Int, Use::Ignore("stonegate never waits for a cache connection: a busy pool opens another one or skips the cache")),
    opt!("memcache_use_advanced_pool", Bool, Use::Ignore("stonegate's cache client is always pooled")),
    opt!("include_service_catalog", Bool, Use::Pass("include_service_catalog")),
    opt!("enforce_token_bind", Str, Use::Only(&["disabled", "permissive"], "token binding (kerberos/x509) is not implemented; a required binding cannot be enforced")),
    opt!("service_token_roles", List, Use::Pass("service_token_roles")),
    opt!("service_token_roles_required", Bool, Use::Pass("service_token_roles_required")),
    opt!("service_type", Str, Use::Pass("service_type")),
    opt!("memcache_sasl_enabled", Bool, Use::Only(FALSE, "SASL authentication to memcached is not supported")),
    opt!("memcache_username", Str, Use::Ignore("SASL authentication to memcached is not supported")),
    opt!("memcache_password", Str, Use::Ignore("SASL authentication to memcached is not supported")),
    // keystoneauth: loader options and the password / application-credential plugins
    opt!("auth_type", ["auth_plugin"], Str, Use::Pass("auth_type")),
    opt!("auth_url", ["identity_uri"], Str, Use::Pass("auth_url")),
    opt!("username", ["user_name", "user-name", "admin_user"], Str, Use::Pass("username")),
    opt!("user_id", ["user-id"], Str, Use::Pass("user_id")),
    opt!("password", ["admin_password"], Str, Use::Pass("password")),
    opt!("user_domain_id", ["user-domain-id"], Str, Use::Pass("user_domain_id")),
    opt!("user_domain_name", ["user-domain-name"], Str, Use::Pass("user_domain_name")),
    opt!("project_id", ["tenant_id", "tenant-id"], Str, Use::Pass("project_id")),
    opt!("project_name", ["tenant_name", "tenant-name", "admin_tenant_name"], Str, Use::Pass("project_name")),
    opt!("project_domain_id", ["project-domain-id"], Str, Use::Pass("project_domain_id")),
    opt!("project_domain_name", ["project-domain-name"], Str, Use::Pass("project_domain_name")),
    opt!("application_credential_id", Str, Use::Pass("application_credential_id")),
    opt!("application_credential_secret", Str, Use::Pass("application_credential_secret")),
    opt!("application_credential_name", Str, Use::Only(&[], "look-up by name is not supported; set application_credential_id")),
    opt!("trust_id", Str, Use::Only(&[], "a trust-scoped service token is not supported")),
    opt!("domain_id", Str, Use::Only(&[], "a domain-scoped service token is not supported; scope it to a project")),
    opt!("domain_name", Str, Use::Only(&[], "a domain-scoped service token is not supported; scope it to a project")),
    opt!("system_scope", Str, Use::Only(&[], "a system-scoped service token is not supported; scope it to a project")),
    opt!("admin_token", Str, Use::Only(&[], "a static admin token is insecure and not supported; configure a service user")),
    opt!("timeout", Int, Use::Ignore("stonegate bounds Keystone requests with http_connect_timeout and its own http_request_timeout")),
    opt!("collect_timing", Bool, Use::Ignore("stonegate measures Keystone calls in its metrics")),
    opt!("split_loggers", Bool, Use::Ignore("stonegate logs through its own subscriber")),
    opt!("auth_admin_prefix", Str, Use::Ignore("only used to build auth_url from auth_host; set auth_url")),
];

/// The options consumed specially: they shape other options rather than
/// being copied (`auth_section`, `default_domain_*`, `auth_host`/`port`/`protocol`).
pub(super) const STRUCTURAL: &[&str] = &[
    "auth_section",
    "default_domain_id",
    "default_domain_name",
    "default-domain-id",
    "default-domain-name",
    "auth_host",
    "auth_port",
    "auth_protocol",
];

/// Paste.deploy keys of a filter section that are not middleware options.
pub(super) const PASTE_KEYS: &[&str] = &[
    "paste.filter_factory",
    "paste.filter_app_factory",
    "use",
    "here",
    "__file__",
    "configkey",
    "oslo_config_project",
    "oslo_config_file",
    "oslo_config_config",
];

/// oslo.config's types: `Ok(None)` for an empty value of a non-string option
/// (oslo treats it as unset).
pub(super) fn typed(kind: Kind, raw: &str) -> Result<Option<toml::Value>, &'static str> {
    let v = raw.trim();
    Ok(Some(match kind {
        Kind::Str => toml::Value::String(raw.to_owned()),
        Kind::Bool if v.is_empty() => return Ok(None),
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => toml::Value::Boolean(true),
            "0" | "f" | "false" | "off" | "n" | "no" => toml::Value::Boolean(false),
            _ => return Err("is not a boolean (true/false, yes/no, on/off, 1/0)"),
        },
        Kind::Int if v.is_empty() => return Ok(None),
        Kind::Int => toml::Value::Integer(v.parse().map_err(|_| "is not an integer")?),
        Kind::List => {
            let inner = v
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .unwrap_or(v);
            toml::Value::Array(
                inner
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            )
        }
    }))
}
