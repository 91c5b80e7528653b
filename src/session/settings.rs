//! `[session]`: the table as written ([`Section`]) and compiled
//! ([`Settings`]). Option names follow Django's, which browser
//! clients of OpenStack-style APIs already speak (`sessionid`, `csrftoken`,
//! `X-CSRFToken`).

use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::{client_address::Cidr, keys::SessionKeys, throttle::Limits};
use crate::settings::{problem, Problem};

/// Environment variable that may hold the session keys (instead of `keys_file`).
pub const SESSION_KEYS_ENV: &str = "STONEGATE_SESSION_KEYS";

/// `[session]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Section {
    /// Turn browser sessions on.
    pub enabled: bool,
    /// Path of the login endpoint (POST).
    pub login_path: String,
    /// Path of the logout endpoint (POST, CSRF required).
    pub logout_path: String,
    /// Name of the session cookie.
    pub cookie_name: String,
    /// Name of the CSRF cookie (readable by scripts).
    pub csrf_cookie_name: String,
    /// Header that must repeat the CSRF token on writes.
    pub csrf_header_name: String,
    /// `Path` attribute of both cookies.
    pub cookie_path: String,
    /// `Domain` attribute of both cookies (unset: host-only cookies).
    pub cookie_domain: Option<String>,
    /// `auto` (Secure when the request came over TLS), `always` or `never`.
    pub cookie_secure: String,
    /// `Lax`, `Strict` or `None` (`None` needs Secure cookies).
    pub same_site: String,
    /// File of session keys (one base64 32-byte key per line, the first seals).
    pub keys_file: Option<String>,
    /// Domain name of users who log in without naming one.
    pub default_user_domain: String,
    /// Seconds of the login throttling window.
    pub login_throttle_window: u64,
    /// Login attempts per username per window.
    pub login_attempts_per_user: u32,
    /// Failed logins per client address per window.
    pub login_failures_per_address: u32,
    /// Header holding the client address when a trusted proxy sets it
    /// (`X-Forwarded-For`: its nearest entry that is not a trusted proxy;
    /// `X-Real-IP`). Unset: the peer address.
    pub client_address_header: Option<String>,
    /// Addresses or CIDR blocks of the proxies whose `client_address_header`
    /// is believed (required with it); from any other peer it is ignored.
    pub trusted_proxies: Vec<String>,
    /// Origins (`https://host[:port]`) whose pages may post the login form
    /// besides the site itself (Django's `CSRF_TRUSTED_ORIGINS`).
    pub trusted_origins: Vec<String>,
}

impl Default for Section {
    fn default() -> Self {
        Self {
            enabled: false,
            login_path: "/authentication/login/".into(),
            logout_path: "/authentication/logout/".into(),
            cookie_name: "sessionid".into(),
            csrf_cookie_name: "csrftoken".into(),
            csrf_header_name: "X-CSRFToken".into(),
            cookie_path: "/".into(),
            cookie_domain: None,
            cookie_secure: "auto".into(),
            same_site: "Lax".into(),
            keys_file: None,
            default_user_domain: "Default".into(),
            login_throttle_window: 300,
            login_attempts_per_user: 5,
            login_failures_per_address: 20,
            client_address_header: None,
            trusted_proxies: Vec::new(),
            trusted_origins: Vec::new(),
        }
    }
}

/// When cookies get the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secure {
    /// When the request came over TLS (stonegate's own listener, or an
    /// `https` request URI).
    Auto,
    /// Always (stonegate behind a TLS-terminating proxy).
    Always,
    /// Never (plain-HTTP development only).
    Never,
}

/// Compiled `[session]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Login endpoint path.
    pub login_path: String,
    /// Logout endpoint path.
    pub logout_path: String,
    /// Session cookie name.
    pub cookie_name: String,
    /// CSRF cookie name.
    pub csrf_cookie_name: String,
    /// CSRF header.
    pub csrf_header: HeaderName,
    /// Cookie `Path`.
    pub cookie_path: String,
    /// Cookie `Domain`.
    pub cookie_domain: Option<String>,
    /// Cookie `Secure` policy.
    pub secure: Secure,
    /// Cookie `SameSite` value (`Lax`, `Strict`, `None`).
    pub same_site: &'static str,
    /// The key ring.
    pub keys: SessionKeys,
    /// Default user domain name.
    pub default_user_domain: String,
    /// Login throttling.
    pub throttle: Limits,
    /// Client address header, believed from `trusted_proxies` only.
    pub client_address_header: Option<HeaderName>,
    /// Peers whose `client_address_header` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Other sites allowed to post the login form.
    pub trusted_origins: Vec<super::origin::SiteOrigin>,
}

fn is_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_attribute_value(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x21..0x7f).contains(&b) && b != b';' && b != b',')
}

fn is_endpoint_path(s: &str) -> bool {
    s.starts_with('/') && !s.contains(['?', '#']) && is_attribute_value(s)
}

impl Section {
    /// Checks every value (problems named `session.<key>`) and loads the
    /// keys from `keys_file` or `STONEGATE_SESSION_KEYS`.
    pub fn build(
        &self,
        p: &mut Vec<Problem>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Settings> {
        let start = p.len();
        for (key, v) in [
            ("session.login_path", &self.login_path),
            ("session.logout_path", &self.logout_path),
        ] {
            if !is_endpoint_path(v) {
                problem(
                    p,
                    key,
                    "must be an absolute path without query, spaces or ';'",
                );
            }
        }
        if self.login_path == self.logout_path {
            problem(p, "session.logout_path", "must differ from login_path");
        }
        for (key, v) in [
            ("session.cookie_name", &self.cookie_name),
            ("session.csrf_cookie_name", &self.csrf_cookie_name),
        ] {
            if !is_cookie_name(v) {
                problem(
                    p,
                    key,
                    "must be a cookie name (letters, digits, - _ . and the like)",
                );
            }
        }
        if self.cookie_name == self.csrf_cookie_name {
            problem(
                p,
                "session.csrf_cookie_name",
                "must differ from cookie_name",
            );
        }
        let csrf_header = match HeaderName::from_bytes(self.csrf_header_name.as_bytes()) {
            Ok(h) if !crate::headers::is_identity_header(h.as_str()) => Some(h),
            _ => {
                problem(
                    p,
                    "session.csrf_header_name",
                    "must be a header name that is not an identity header",
                );
                None
            }
        };
        if !self.cookie_path.starts_with('/') || !is_attribute_value(&self.cookie_path) {
            problem(
                p,
                "session.cookie_path",
                "must start with / and hold no spaces, ';' or ','",
            );
        }
        if let Some(d) = &self.cookie_domain {
            if d.is_empty() || !is_attribute_value(d) || d.contains('/') {
                problem(p, "session.cookie_domain", "must be a host or domain name");
            }
        }
        let secure = match self.cookie_secure.as_str() {
            "auto" => Secure::Auto,
            "always" => Secure::Always,
            "never" => Secure::Never,
            _ => {
                problem(
                    p,
                    "session.cookie_secure",
                    "must be \"auto\", \"always\" or \"never\"",
                );
                Secure::Auto
            }
        };
        let same_site = match self.same_site.to_ascii_lowercase().as_str() {
            "lax" => "Lax",
            "strict" => "Strict",
            "none" => {
                if secure != Secure::Always {
                    problem(
                        p,
                        "session.same_site",
                        "\"None\" needs cookie_secure = \"always\" (browsers drop SameSite=None cookies that are not Secure)",
                    );
                }
                "None"
            }
            _ => {
                problem(
                    p,
                    "session.same_site",
                    "must be \"Lax\", \"Strict\" or \"None\"",
                );
                "Lax"
            }
        };
        let keys = self.keys(p, env);
        if self.default_user_domain.is_empty() {
            problem(p, "session.default_user_domain", "must not be empty");
        }
        if self.login_throttle_window == 0 {
            problem(
                p,
                "session.login_throttle_window",
                "must be at least 1 second",
            );
        }
        for (key, v) in [
            (
                "session.login_attempts_per_user",
                self.login_attempts_per_user,
            ),
            (
                "session.login_failures_per_address",
                self.login_failures_per_address,
            ),
        ] {
            if v == 0 {
                problem(p, key, "must be at least 1");
            }
        }
        let client_address_header = match &self.client_address_header {
            None => None,
            Some(h) => match HeaderName::from_bytes(h.as_bytes()) {
                Ok(h) => Some(h),
                Err(_) => {
                    problem(p, "session.client_address_header", "is not a header name");
                    None
                }
            },
        };
        let mut trusted_proxies = Vec::new();
        for (i, c) in self.trusted_proxies.iter().enumerate() {
            match Cidr::parse(c) {
                Ok(c) => trusted_proxies.push(c),
                Err(e) => problem(p, &format!("session.trusted_proxies[{i}]"), &e),
            }
        }
        match (&self.client_address_header, self.trusted_proxies.is_empty()) {
            (Some(_), true) => problem(
                p,
                "session.trusted_proxies",
                "is required with client_address_header: list the addresses or CIDR blocks of \
                 the proxies that set it (e.g. [\"10.0.0.0/8\"]); from any other peer the header \
                 is ignored. Or remove client_address_header to count the TCP peer",
            ),
            (None, false) => problem(
                p,
                "session.trusted_proxies",
                "has no effect without client_address_header: set client_address_header \
                 (e.g. \"X-Forwarded-For\") or remove trusted_proxies",
            ),
            _ => {}
        }
        let mut trusted_origins = Vec::new();
        for (i, o) in self.trusted_origins.iter().enumerate() {
            match super::origin::SiteOrigin::parse(o) {
                Some(origin) => trusted_origins.push(origin),
                None => problem(
                    p,
                    &format!("session.trusted_origins[{i}]"),
                    &format!("{o:?} is not an origin (\"https://host\" or \"https://host:port\")"),
                ),
            }
        }
        if p.len() > start {
            return None;
        }
        Some(Settings {
            login_path: self.login_path.clone(),
            logout_path: self.logout_path.clone(),
            cookie_name: self.cookie_name.clone(),
            csrf_cookie_name: self.csrf_cookie_name.clone(),
            csrf_header: csrf_header?,
            cookie_path: self.cookie_path.clone(),
            cookie_domain: self.cookie_domain.clone(),
            secure,
            same_site,
            keys: keys?,
            default_user_domain: self.default_user_domain.clone(),
            throttle: Limits {
                per_user: self.login_attempts_per_user,
                per_address: self.login_failures_per_address,
                window: Duration::from_secs(self.login_throttle_window),
            },
            client_address_header,
            trusted_proxies,
            trusted_origins,
        })
    }

    fn keys(
        &self,
        p: &mut Vec<Problem>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<SessionKeys> {
        let (key, text) = match (&self.keys_file, env(SESSION_KEYS_ENV)) {
            (Some(_), Some(_)) => {
                problem(
                    p,
                    "session.keys_file",
                    &format!("set either keys_file or {SESSION_KEYS_ENV}, not both"),
                );
                return None;
            }
            (Some(f), None) => match std::fs::read_to_string(f) {
                Ok(t) => ("session.keys_file".to_owned(), zeroize::Zeroizing::new(t)),
                Err(e) => {
                    problem(p, "session.keys_file", &format!("cannot read {f:?}: {e}"));
                    return None;
                }
            },
            (None, Some(t)) => (SESSION_KEYS_ENV.to_owned(), zeroize::Zeroizing::new(t)),
            (None, None) => {
                problem(
                    p,
                    "session.keys_file",
                    &format!(
                        "is required with enabled = true (or set {SESSION_KEYS_ENV}); `stonegate session-key` prints a new key"
                    ),
                );
                return None;
            }
        };
        match SessionKeys::parse(&text) {
            Ok(k) => Some(k),
            Err(e) => {
                problem(p, &key, &e.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(file: &Section) -> Result<Settings, Vec<Problem>> {
        let key = SessionKeys::generate().unwrap();
        let env = move |name: &str| (name == SESSION_KEYS_ENV).then(|| key.clone());
        let mut p = Vec::new();
        file.build(&mut p, &env).ok_or(p)
    }

    fn keys(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn client_address_header_needs_trusted_proxies_and_they_need_it() {
        let mut f = Section {
            client_address_header: Some("X-Forwarded-For".into()),
            ..Section::default()
        };
        let p = build(&f).unwrap_err();
        assert_eq!(keys(&p), ["session.trusted_proxies"]);
        assert!(p[0]
            .message
            .contains("is required with client_address_header"));
        f.trusted_proxies = vec!["10.0.0.0/8".into(), "10.1.2.3/8".into(), "nope".into()];
        let p = build(&f).unwrap_err();
        assert_eq!(
            keys(&p),
            ["session.trusted_proxies[1]", "session.trusted_proxies[2]"]
        );
        assert!(
            p[0].message.contains("write 10.0.0.0/8"),
            "{}",
            p[0].message
        );
        f.trusted_proxies = vec!["10.0.0.0/8".into(), "fd00::/8".into(), "192.0.2.7".into()];
        let s = build(&f).unwrap();
        assert_eq!(s.trusted_proxies.len(), 3);
        let p = build(&Section {
            trusted_proxies: vec!["10.0.0.0/8".into()],
            ..Section::default()
        })
        .unwrap_err();
        assert_eq!(keys(&p), ["session.trusted_proxies"]);
        assert!(p[0]
            .message
            .contains("no effect without client_address_header"));
    }
}
