//! Login CSRF defence: a browser posting the login form from another site
//! would log the victim into the attacker's account (the victim's later
//! actions then land in it). Browsers send `Origin` with every cross-site
//! POST, so a login whose `Origin` is neither this site nor a configured
//! trusted origin is refused before any credential is checked. Requests
//! without `Origin` (curl, Python `requests`, other non-browser clients)
//! cannot be forged by a third-party page and pass.
//!
//! "This site" is the request's own `Host` (or HTTP/2 `:authority`), compared
//! by host and port, not by scheme: behind a TLS-terminating ingress the
//! request reaches stonegate as plain HTTP for an `https://` page. Where the
//! ingress rewrites `Host`, list the public origin in
//! `[session] trusted_origins` (Django's `CSRF_TRUSTED_ORIGINS`).

use http::{header, HeaderMap, Uri};

/// A `scheme://host[:port]` web origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteOrigin {
    https: bool,
    host: String,
    port: u16,
}

impl SiteOrigin {
    /// Parses `http(s)://host[:port]` (no path beyond `/`, no query).
    pub fn parse(s: &str) -> Option<Self> {
        let uri: Uri = s.parse().ok()?;
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return None;
        }
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host();
        // A port that is not a number (`http://h:http`, found by the
        // `session_headers` fuzz target) is no origin a browser sends.
        if host.is_empty() || !port_is_numeric(authority) {
            return None;
        }
        Some(Self {
            https,
            host: host.to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// Whether `authority` (a `Host` header: `host[:port]`) names the same
    /// host and port, a missing port being this origin's scheme default.
    fn same_host(&self, authority: &str) -> bool {
        let Ok(a) = authority.parse::<http::uri::Authority>() else {
            return false;
        };
        if !port_is_numeric(&a) {
            return false;
        }
        let port = a.port_u16().unwrap_or(if self.https { 443 } else { 80 });
        a.host().eq_ignore_ascii_case(&self.host) && port == self.port
    }
}

/// Whether `a` is exactly `host` or `host:<u16>`: http's parser reads
/// `h:http` as port-less `h`, and `[::1]=x:9000` as `[::1]` port 9000
/// (both found by the `session_headers` fuzz target).
fn port_is_numeric(a: &http::uri::Authority) -> bool {
    match a.as_str().strip_prefix(a.host()) {
        Some("") => true,
        Some(rest) => rest.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok()
        }),
        None => false,
    }
}

/// `Ok` when a login request may proceed; `Err` with the offending
/// `Origin` value (for the error message) when it comes from another site.
pub fn check_login(headers: &HeaderMap, uri: &Uri, trusted: &[SiteOrigin]) -> Result<(), String> {
    let mut values = headers.get_all(header::ORIGIN).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
    if values.next().is_some() {
        return Err(shown);
    }
    let Some(origin) = value.to_str().ok().and_then(SiteOrigin::parse) else {
        // Includes `Origin: null` (sandboxed frames, privacy-sensitive redirects).
        return Err(shown);
    };
    if trusted.contains(&origin) {
        return Ok(());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(http::uri::Authority::as_str));
    match host {
        Some(h) if origin.same_host(h) => Ok(()),
        _ => Err(shown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(origin: Option<&str>, host: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        if let Some(v) = host {
            h.insert(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn same_site_and_trusted_origins_pass_others_are_refused() {
        let uri: Uri = "/authentication/login/".parse().unwrap();
        let trusted = [SiteOrigin::parse("https://portal.example.com").unwrap()];
        let ok =
            |o: Option<&str>, h: Option<&str>| check_login(&headers(o, h), &uri, &trusted).is_ok();
        // No Origin: not a browser's cross-site form.
        assert!(ok(None, Some("api.example.com")));
        // Same host, whatever the scheme (TLS ended at the ingress); ports count.
        assert!(ok(Some("https://api.example.com"), Some("api.example.com")));
        assert!(ok(
            Some("https://API.example.com"),
            Some("api.example.com:443")
        ));
        assert!(ok(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        assert!(!ok(Some("http://127.0.0.1:8081"), Some("127.0.0.1:8080")));
        assert!(!ok(
            Some("https://api.example.com"),
            Some("api.example.com:8443")
        ));
        // Another site, unless trusted.
        assert!(!ok(Some("https://evil.example"), Some("api.example.com")));
        assert!(ok(Some("https://portal.example.com"), Some("api.internal")));
        assert!(!ok(Some("http://portal.example.com"), Some("api.internal")));
        // Opaque or malformed origins, and no Host to compare with.
        assert!(!ok(Some("null"), Some("api.example.com")));
        assert!(!ok(Some("api.example.com"), Some("api.example.com")));
        assert!(!ok(Some("https://api.example.com"), None));
        let h2: Uri = "https://api.example.com/authentication/login/"
            .parse()
            .unwrap();
        assert!(check_login(&headers(Some("https://api.example.com"), None), &h2, &[]).is_ok());
    }

    #[test]
    fn trusted_origins_must_be_bare_origins() {
        for bad in [
            "portal.example.com",
            "ftp://x",
            "https://x/path",
            "https://x?q",
            "https://u@x",
            "http://[::1]:http",
            "http://[::1]===:9000",
        ] {
            assert!(SiteOrigin::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            SiteOrigin::parse("https://x.example/").unwrap(),
            SiteOrigin::parse("https://X.example:443").unwrap()
        );
    }
}
