//! Configuration: the TOML file as data, checked once, then compiled.
//!
//! [`File`] is the file exactly as written (serde, unknown keys rejected).
//! [`File::build`] collects every problem with the key that has it, and
//! turns the strings into the types the request path uses
//! ([`Settings`]), so nothing is parsed per request. Option names of the
//! `[keystone_authtoken]` table are keystonemiddleware's.
//!
//! Each domain module owns its section; this module only assembles them.
//! One naming convention holds for every section: `<module>::Section` is
//! the table as written (serde, `deny_unknown_fields`; a nested table is
//! `<module>::<Name>Section`, e.g. [`routes::PublicSection`],
//! [`proxy::TlsSection`]), `<module>::Settings` is what its checks compile
//! it into, and `Section::build` records every problem with its key in a
//! `Vec<`[`Problem`]`>` (the vocabulary of `settings`). Where the
//! module's own type already is the compiled form, `build` returns it
//! ([`routes::PublicRoutes`], [`forward_auth::Endpoint`]).
//!
//! | table | as written | checked |
//! |---|---|---|
//! | `[keystone_authtoken]` | [`keystone::Section`] | [`keystone::Settings`], [`keystone::Policy`] (and [`shared_cache::Options`]) |
//! | `[fernet]` | `local::Section` | `local::Settings` |
//! | `[jws]` | `local::jws_settings::Section` | `local::Settings` (with `[fernet]`'s) |
//! | `[revocation]` | [`revocation::Section`] | [`revocation::Settings`] |
//! | `[cache]` | [`cache::Section`] | [`cache::Settings`] |
//! | `[routes]` | [`routes::Section`] | [`routes::PublicRoutes`] |
//! | `[[forward_auth]]` | [`forward_auth::Section`] | [`forward_auth::Endpoint`] |
//! | `[proxy]`, `[tls]`, listener keys | [`proxy::Section`], [`proxy::TlsSection`] | [`proxy::Settings`] |
//! | `[session]` | [`session::Section`] | [`session::Settings`] |
//! | `[authorization]` | [`policy::Section`] | [`policy::Policy`] |
//! | `[request_id]` | [`request_id::Section`] | [`request_id::Settings`] |
//! | `[audit]` | [`audit::Section`] | [`audit::Settings`] |
//! | `[oauth2]` | [`oauth2::Section`] | [`oauth2::Settings`] |
//! | `[tracing]` | [`trace::Section`] | [`trace::Settings`] |
//! | `[kubernetes]` | [`kube::Section`] | [`kube::Settings`] |
//! | (memcache options, `cache.redis_url`) | [`shared_cache::Options`] | [`shared_cache::Settings`] |
//!
//! [`Settings`] holds the checked sections: [`keystone::Settings`], the
//! request policy assembled from the others ([`validator::Settings`]) and
//! [`proxy::Settings`].

pub mod oslo;
mod parse;
mod sources;

use std::path::Path;

pub(crate) use crate::settings::problem;
pub use crate::settings::{ini, Problem};
use crate::{
    audit, cache, forward_auth,
    keystone::{self, AuthVersion},
    kube, local, oauth2, policy, proxy, request_id, revocation, routes, session, shared_cache,
    trace, validator,
};

use serde::Deserialize;

pub use sources::{Loaded, Sources};

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
    pub proxy: proxy::Section,
    /// keystonemiddleware-compatible options.
    pub keystone_authtoken: keystone::Section,
    /// Token cache settings.
    #[serde(default)]
    pub cache: cache::Section,
    /// Serve the proxy listener over TLS (HTTP/2 and HTTP/1.1 by ALPN).
    pub tls: Option<proxy::TlsSection>,
    /// A separate listener for the forward-auth endpoints.
    pub auth_listen: Option<String>,
    /// Forward-auth endpoints for ingress proxies.
    #[serde(default)]
    pub forward_auth: Vec<forward_auth::Section>,
    /// Routes that need no token.
    #[serde(default)]
    pub routes: routes::Section,
    /// Local validation of Fernet tokens with Keystone's key repository.
    pub fernet: Option<local::Section>,
    /// Local validation of JWS tokens with Keystone's public keys.
    pub jws: Option<local::jws_settings::Section>,
    /// Revocation-event polling.
    pub revocation: Option<revocation::Section>,
    /// Browser sessions (login, cookies, CSRF).
    pub session: Option<session::Section>,
    /// Per-route authorization with oslo.policy rules.
    pub authorization: Option<policy::Section>,
    /// Request ids: whose `X-OpenStack-Request-ID` is kept.
    #[serde(default)]
    pub request_id: request_id::Section,
    /// CADF audit events.
    #[serde(default)]
    pub audit: audit::Section,
    /// OAuth 2.0 token sources (`Authorization: Bearer`).
    #[serde(default)]
    pub oauth2: oauth2::Section,
    /// OpenTelemetry traces (OTLP/HTTP export).
    #[serde(default)]
    pub tracing: trace::Section,
    /// The kube-apiserver webhooks (TokenReview, SubjectAccessReview).
    pub kubernetes: Option<kube::Section>,
}

fn default_log_format() -> String {
    "text".into()
}

/// Everything the process needs, compiled.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keystone client settings.
    pub keystone: keystone::Settings,
    /// Authentication policy.
    pub auth: validator::Settings,
    /// Browser sessions, when `[session]` is enabled.
    pub session: Option<session::Settings>,
    /// Listener and upstream settings.
    pub proxy: proxy::Settings,
    /// Forward-auth endpoints (`[[forward_auth]]`).
    pub forward_auth: Vec<forward_auth::Endpoint>,
    /// The CADF audit trail, when `[audit]` is enabled.
    pub audit: Option<audit::Settings>,
    /// Span export, when `[tracing] otlp_endpoint` is set (read at start;
    /// a reload keeps the running exporter).
    pub tracing: Option<trace::Settings>,
    /// The kube-apiserver webhooks, when `[kubernetes]` is written.
    pub kubernetes: Option<kube::Settings>,
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

    /// Parses TOML text. A file that is TOML but does not fit gets every
    /// section's first error, not only the file's first.
    pub fn parse(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| {
            let keys = toml::from_str::<toml::Table>(text)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_else(|_| Vec::new());
            Error::Parse {
                path: "<config>".into(),
                message: parse::every_error(&e, keys, || toml::Deserializer::new(text)),
            }
        })
    }

    /// Checks every section and compiles the settings, collecting every
    /// problem; secrets are read from files or the environment (`env` is the
    /// lookup, so tests need no globals).
    pub fn build(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Error> {
        let mut p = Vec::new();
        let mut warnings = Vec::new();
        let ks = &self.keystone_authtoken;
        let forward_auth = forward_auth::Section::build_all(&self.forward_auth, &mut p);
        let services = forward_auth::Section::services_all(&self.forward_auth, &mut p);
        let proxy = (self.proxy).build(&mut p, self.listeners(), self.tls.as_ref());
        let public_routes = self.routes.build(&mut p);
        let local = self.fernet.as_ref().map(|f| f.build(&mut p));
        let local = match &self.jws {
            Some(j) => Some(j.build(local, &mut p)),
            None => local,
        };
        let revocation = revocation::Section::resolve(self.revocation.as_ref(), local.is_some())
            .map(|r| r.build(&mut p));
        if ks.auth_version(&mut Vec::new()) == AuthVersion::V2 {
            self.v2_checks(&mut p);
        }
        let keystone = ks.build(&mut p, &mut warnings, env);
        let session =
            (self.session.as_ref().filter(|s| s.enabled)).and_then(|s| s.build(&mut p, env));
        let shared_cache = self.shared_cache().build(&mut p, env);
        let cache = self.cache.build(&mut p);
        let authorization = self.authorization.as_ref().and_then(|a| a.build(&mut p));
        let request_id = self.request_id.build(&mut p);
        let audit = self.audit.build(&mut p, env);
        let oauth2 = self.oauth2.build(&mut p);
        let tracing = self.tracing.build(&mut p);
        let kubernetes = self.kubernetes.as_ref().and_then(|k| k.build(&mut p));
        match (proxy, keystone) {
            (Some(proxy), Some((keystone, policy))) if p.is_empty() => {
                let realm = policy.www_authenticate_uri.clone();
                Ok(Settings {
                    warnings,
                    keystone,
                    auth: validator::Settings::new(
                        policy,
                        cache,
                        public_routes,
                        local,
                        revocation,
                        shared_cache,
                        request_id,
                    )
                    .with_oauth2(&oauth2, &realm)
                    .with_authorization(authorization)
                    .with_services(services),
                    session,
                    proxy,
                    forward_auth,
                    audit,
                    tracing,
                    kubernetes,
                })
            }
            _ => Err(Error::Invalid(p)),
        }
    }

    /// The top-level keys `[proxy]` is checked with.
    fn listeners(&self) -> proxy::Listeners<'_> {
        proxy::Listeners {
            listen: self.listen.as_deref(),
            upstream: self.upstream.as_deref(),
            admin_listen: self.admin_listen.as_deref(),
            auth_listen: self.auth_listen.as_deref(),
            log_format: &self.log_format,
            forward_auth_configured: !self.forward_auth.is_empty(),
            kubernetes_configured: self.kubernetes.is_some(),
        }
    }

    /// The shared cache's options, spread over `[keystone_authtoken]` and `[cache]`.
    fn shared_cache(&self) -> shared_cache::Options<'_> {
        let ks = &self.keystone_authtoken;
        shared_cache::Options {
            memcached_servers: ks.memcached_servers.as_deref(),
            redis_url: self.cache.redis_url.as_deref(),
            security_strategy: ks.memcache_security_strategy.as_deref(),
            secret_key: ks.memcache_secret_key.as_ref(),
            secret_key_file: ks.memcache_secret_key_file.as_ref(),
            socket_timeout: ks.memcache_pool_socket_timeout,
            dead_retry: ks.memcache_pool_dead_retry,
            pool_maxsize: ks.memcache_pool_maxsize,
            local_validation: self.fernet.is_some() || self.jws.is_some(),
        }
    }
}

impl File {
    /// What Identity v2.0 cannot do: local Fernet validation, revocation
    /// events and password logins all need v3 (the section's own checks are
    /// [`keystone::Section::build`]'s).
    fn v2_checks(&self, p: &mut Vec<Problem>) {
        const WHY: &str = "needs Identity v3: remove it, or remove auth_version = \"v2.0\"";
        if self.fernet.is_some() {
            problem(p, "fernet", &format!("local Fernet validation {WHY}"));
        }
        if self.jws.is_some() {
            problem(p, "jws", &format!("local JWS validation {WHY}"));
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
mod tests;
