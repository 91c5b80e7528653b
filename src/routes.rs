//! Routes that need no token (version documents, health checks, CORS
//! preflight), matched against the request's canonical path
//! ([`crate::path::Canonical::decoded`]): a path that could be read as
//! another one (dot segments, encoded separators, `//`...) is refused with
//! 400 before this check, so no spelling of a protected path can pass for a
//! public one, and the path forwarded is the one matched here.

pub mod settings;

use http::{HeaderMap, Method};

use crate::access_rules::Pattern;

pub use settings::{PublicSection, Section};

/// One public route: a method and a path pattern (`*`/`{x}` one segment, `**` anything).
#[derive(Debug, Clone, PartialEq)]
pub struct PublicRoute {
    /// HTTP method, upper-case (`GET` does not imply `HEAD`).
    pub method: Method,
    /// Path pattern, compiled once, matched against the canonical (decoded) path.
    pub pattern: Pattern,
    /// Whether a request on this route may upgrade (WebSocket...) without a
    /// token (`upgrade = true`); off, the request is forwarded without it.
    pub upgrade: bool,
}

impl PublicRoute {
    /// A route for `method` and the path pattern `pattern` (no upgrades).
    pub fn new(method: Method, pattern: &str) -> Self {
        Self {
            method,
            pattern: Pattern::new(pattern),
            upgrade: false,
        }
    }

    /// The same route, letting requests on it upgrade when `upgrade`.
    pub fn with_upgrade(mut self, upgrade: bool) -> Self {
        self.upgrade = upgrade;
        self
    }
}

/// Marks a public request (in its extensions) whose route lets it upgrade.
#[derive(Debug, Clone, Copy)]
pub struct PublicUpgrade;

/// The set of routes that skip authentication.
#[derive(Debug, Clone, Default)]
pub struct PublicRoutes {
    routes: Vec<PublicRoute>,
    cors_preflight: bool,
}

impl PublicRoutes {
    /// Routes from configuration; `cors_preflight` lets CORS preflight requests through.
    pub fn new(routes: Vec<PublicRoute>, cors_preflight: bool) -> Self {
        Self {
            routes,
            cors_preflight,
        }
    }

    /// True when nothing is public.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && !self.cors_preflight
    }

    /// Whether a request for `method` + `path` with `headers` needs no token;
    /// `path` is the canonical decoded path ([`crate::path::Canonical::decoded`]).
    pub fn is_public(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        if self.is_empty() {
            return false;
        }
        if self.cors_preflight
            && method == Method::OPTIONS
            && headers.contains_key(http::header::ORIGIN)
            && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return true;
        }
        self.routes
            .iter()
            .any(|r| r.method == method && r.pattern.matches(path))
    }
}

impl PublicRoutes {
    /// Whether a public route with `upgrade = true` matches the request;
    /// `path` is the canonical decoded path ([`crate::path::Canonical::decoded`]).
    pub fn allows_upgrade(&self, method: &Method, path: &str) -> bool {
        if !self.routes.iter().any(|r| r.upgrade) {
            return false;
        }
        self.routes
            .iter()
            .any(|r| r.upgrade && r.method == method && r.pattern.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> PublicRoutes {
        PublicRoutes::new(
            vec![
                PublicRoute::new(Method::GET, "/"),
                PublicRoute::new(Method::GET, "/healthz"),
                PublicRoute::new(Method::GET, "/v2.1/"),
            ],
            true,
        )
    }

    /// Public as the layer decides it: on the canonical path, `None` when refused.
    fn public(r: &PublicRoutes, method: &Method, path: &str) -> Option<bool> {
        let c = crate::path::Canonical::parse(path).ok()?;
        Some(r.is_public(method, c.decoded(), &HeaderMap::new()))
    }

    #[test]
    fn dot_segments_and_escapes_never_skip_auth() {
        let r = routes();
        assert_eq!(public(&r, &Method::GET, "/healthz"), Some(true));
        assert_eq!(public(&r, &Method::GET, "/"), Some(true));
        assert_eq!(public(&r, &Method::GET, "/%68ealthz"), Some(true));
        assert_eq!(public(&r, &Method::POST, "/healthz"), Some(false));
        assert_eq!(public(&r, &Method::HEAD, "/healthz"), Some(false));
        assert_eq!(public(&r, &Method::GET, "/healthz/"), Some(false));
        assert_eq!(public(&r, &Method::GET, "/healthz;x"), Some(false));
        // Refused before any route is looked at (400), public or not once
        // resolved: the old behaviour resolved `/servers/../healthz` to public.
        for sneaky in [
            "/healthz/../servers",
            "/servers/../healthz",
            "/healthz/%2e%2e/servers",
            "/healthz%2f..%2fservers",
            "//healthz",
            "/healthz/..%5cservers",
            "/healthz\\..\\servers",
            "/healthz%00",
            "/v2.1/..;/servers",
        ] {
            assert_eq!(public(&r, &Method::GET, sneaky), None, "{sneaky}");
        }
    }

    #[test]
    fn cors_preflight_needs_origin_and_request_method() {
        let r = routes();
        let mut h = HeaderMap::new();
        assert!(!r.is_public(&Method::OPTIONS, "/servers", &h));
        h.insert(http::header::ORIGIN, "https://ui".parse().unwrap());
        assert!(!r.is_public(&Method::OPTIONS, "/servers", &h));
        h.insert(
            http::header::ACCESS_CONTROL_REQUEST_METHOD,
            "POST".parse().unwrap(),
        );
        assert!(r.is_public(&Method::OPTIONS, "/servers", &h));
        let strict = PublicRoutes::new(vec![], false);
        assert!(!strict.is_public(&Method::OPTIONS, "/servers", &h));
    }
}
