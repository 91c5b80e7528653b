//! Routes that need no token (version documents, health checks, CORS
//! preflight), matched after normalising the path so that no spelling of a
//! protected path can pass for a public one.
//!
//! Normalisation: the query is dropped, percent-escapes decoded, and dot
//! segments removed (RFC 3986 §5.2.4). A path that contains an encoded `/`
//! or `\`, a backslash, a NUL, or an empty segment (`//`) is never public:
//! the upstream might read it differently from us, so it goes through auth.

use http::{HeaderMap, Method};

use std::borrow::Cow;

use crate::access_rules::Pattern;

/// One public route: a method and a path pattern (`*`/`{x}` one segment, `**` anything).
#[derive(Debug, Clone, PartialEq)]
pub struct PublicRoute {
    /// HTTP method, upper-case (`GET` does not imply `HEAD`).
    pub method: Method,
    /// Path pattern, compiled once, matched against the normalised path.
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

    /// Whether a request for `method` + `path_and_query` with `headers` needs no token.
    pub fn is_public(&self, method: &Method, path_and_query: &str, headers: &HeaderMap) -> bool {
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
        let Some(path) = normalize(path_and_query) else {
            return false;
        };
        self.routes
            .iter()
            .any(|r| r.method == method && r.pattern.matches(&path))
    }
}

impl PublicRoutes {
    /// Whether a public route with `upgrade = true` matches the request.
    pub fn allows_upgrade(&self, method: &Method, path_and_query: &str) -> bool {
        if !self.routes.iter().any(|r| r.upgrade) {
            return false;
        }
        let Some(path) = normalize(path_and_query) else {
            return false;
        };
        self.routes
            .iter()
            .any(|r| r.upgrade && r.method == method && r.pattern.matches(&path))
    }
}

/// The normalised form of a request path, or `None` when it is ambiguous
/// (see the module docs) and must therefore not be treated as public.
pub fn normalize(path_and_query: &str) -> Option<Cow<'_, str>> {
    let raw = path_and_query.split(['?', '#']).next().unwrap_or_default();
    if !raw.starts_with('/') {
        return None;
    }
    // Fast path: nothing to decode or resolve.
    if !raw.contains(['%', '.', '\\']) && !raw.contains("//") {
        return Some(Cow::Borrowed(raw));
    }
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") || raw.contains('\\')
    {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    if decoded.contains('\\') || decoded.contains('\0') || decoded.contains("//") {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() || (trailing_slash && !path.ends_with('/')) {
        path.push('/');
    }
    Some(Cow::Owned(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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

    #[test]
    fn dot_segments_and_escapes_never_skip_auth() {
        let r = routes();
        let h = HeaderMap::new();
        assert!(r.is_public(&Method::GET, "/healthz", &h));
        assert!(r.is_public(&Method::GET, "/healthz?x=1", &h));
        assert!(r.is_public(&Method::GET, "/", &h));
        assert!(!r.is_public(&Method::POST, "/healthz", &h));
        assert!(!r.is_public(&Method::HEAD, "/healthz", &h));
        for sneaky in [
            "/healthz/../servers",
            "/healthz/%2e%2e/servers",
            "/healthz%2f..%2fservers",
            "//healthz",
            "/healthz/..%5cservers",
            "/healthz\\..\\servers",
            "/healthz/",
            "/healthz%00",
        ] {
            assert!(!r.is_public(&Method::GET, sneaky, &h), "{sneaky}");
        }
        // Resolving dot segments can only land on a path that is itself public.
        assert!(r.is_public(&Method::GET, "/servers/../healthz", &h));
        assert!(r.is_public(&Method::GET, "/%68ealthz", &h));
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

    #[test]
    fn normalize_resolves_dots() {
        assert_eq!(normalize("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/../..").unwrap(), "/");
        assert_eq!(normalize("relative"), None);
    }
}
