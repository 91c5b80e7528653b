//! Browser sessions: a login endpoint that trades a username and password
//! for a Keystone token kept in a sealed cookie, a CSRF token for writes, and
//! a logout endpoint that revokes the token.
//!
//! - `POST {login_path}` (JSON or form body) → Keystone password
//!   authentication → 200 with the user in JSON, a `HttpOnly` session cookie
//!   ([`seal`]: the token and the session's CSRF secret, AEAD-sealed, so no
//!   server-side store: any replica with the keys opens it) and a script-readable
//!   CSRF cookie. Throttled per username (whatever domain it names) and
//!   client address ([`throttle`]).
//! - A request with the session cookie and no `X-Auth-Token` is given the
//!   token as `X-Auth-Token` and then decided exactly like a token request.
//!   Writes (any method but GET, HEAD, OPTIONS, TRACE) must repeat the CSRF
//!   secret in the CSRF header, or get 403. A session whose token is expired,
//!   revoked or unreadable gets 401 and both cookies cleared.
//! - `POST {logout_path}` (session + CSRF) revokes the token in Keystone,
//!   forgets it in the cache and clears both cookies.
//!
//! An explicit `X-Auth-Token` always wins over a cookie (a cross-site page
//! cannot set that header without a CORS preflight, so it needs no CSRF check).

pub mod client_address;
pub mod keys;
mod login;
#[doc(hidden)]
pub use login::login_auth;
pub mod origin;
pub mod seal;
pub mod settings;
pub mod throttle;

use std::{net::IpAddr, sync::Arc};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use crate::{
    connection::ConnectionInfo,
    metrics::{Metrics, SessionEvent},
    rejection::SessionRejection,
    token::Token,
    validator::Validator,
};
use seal::{OpenError, SessionData};
pub use settings::{Section, Settings};
use throttle::Throttle;

/// Most distinct usernames and addresses the throttle tracks at once.
const THROTTLE_CAPACITY: u64 = 100_000;

/// Why sealing a session failed (the OS random generator or the cipher).
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum SessionError {
    /// No randomness from the operating system.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The cipher refused (cannot happen with our sizes).
    #[error("sealing the session failed")]
    Seal,
}

/// Fills `buf` from the operating system's generator.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), SessionError> {
    getrandom::getrandom(buf).map_err(|_| SessionError::Random)
}

/// The session endpoints a path may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The login path.
    Login,
    /// The logout path.
    Logout,
}

/// A request that carried a usable session (its token is now `X-Auth-Token`).
#[derive(Debug)]
pub struct Attached {
    /// The session's user id (for logs).
    pub user_id: String,
}

/// Browser sessions of one configuration.
#[derive(Debug)]
pub struct Sessions {
    settings: Settings,
    throttle: Throttle,
}

type Answer = Response<Full<Bytes>>;

impl Sessions {
    /// Sessions as configured; login throttling counts in `shared` when
    /// given (fleet-wide), else in this process.
    pub fn new(settings: Settings, shared: Option<Arc<crate::shared_cache::SharedCache>>) -> Self {
        let throttle = Throttle::new(settings.throttle, THROTTLE_CAPACITY).with_shared(shared);
        Self { settings, throttle }
    }

    /// The configuration.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Which session endpoint `path` is, if any.
    pub fn endpoint(&self, path: &str) -> Option<Endpoint> {
        if path == self.settings.login_path {
            Some(Endpoint::Login)
        } else if path == self.settings.logout_path {
            Some(Endpoint::Logout)
        } else {
            None
        }
    }

    /// Answers a session endpoint: the login (`POST`, JSON or form body) or
    /// the logout. Every door that serves them (the layer, forward-auth's
    /// listener) answers through here.
    pub async fn serve<B>(
        &self,
        validator: &Validator,
        metrics: &Metrics,
        endpoint: Endpoint,
        req: Request<B>,
    ) -> Answer
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match endpoint {
            Endpoint::Login => self.login(validator, metrics, req).await,
            Endpoint::Logout => {
                let tls = request_is_tls(&req);
                let (parts, _body) = req.into_parts();
                self.logout(validator, metrics, &parts.method, &parts.headers, tls)
                    .await
            }
        }
    }

    /// For a request without a user token (`X-Auth-Token`, `X-Storage-Token`,
    /// or a Bearer one `validator` reads: [`Validator::has_user_token`]):
    /// opens its session cookie, checks
    /// CSRF on writes, and sets `X-Auth-Token` (the session cookie itself is
    /// removed from what is forwarded). `Ok(None)`: no session cookie, the
    /// request goes on unchanged. `Err`: the response to send instead.
    pub fn attach<B>(
        &self,
        validator: &Validator,
        req: &mut Request<B>,
        metrics: &Metrics,
    ) -> Result<Option<Attached>, Box<Answer>> {
        if validator.has_user_token(req.headers()) {
            return Ok(None);
        }
        let tls = request_is_tls(req);
        let data = match self.open_cookie(req.headers()) {
            None => return Ok(None),
            Some(Err(e)) => {
                metrics.session(SessionEvent::CookieRejected);
                tracing::info!(reason = e.label(), "session cookie rejected");
                return Err(Box::new(self.unauthorized(tls)));
            }
            Some(Ok(d)) => d,
        };
        if data.expires_at <= crate::clock::now() {
            metrics.session(SessionEvent::SessionExpired);
            tracing::info!(user_id = %data.user_id, "session token expired");
            return Err(Box::new(self.unauthorized(tls)));
        }
        if !self.csrf_ok(req.method(), req.headers(), &data) {
            metrics.session(SessionEvent::CsrfRejected);
            tracing::info!(user_id = %data.user_id, method = %req.method(), "write without a matching CSRF token");
            return Err(Box::new(self.forbidden_csrf()));
        }
        // Cross-site WebSocket hijacking: an upgrade is a GET (no CSRF
        // token), so one riding on the cookie must come from this site. A
        // WebSocket handshake is also known by its key: an ingress's auth
        // subrequest carries no `Upgrade` (nginx does not pass hop-by-hop
        // headers), but the end-to-end `Sec-WebSocket-Key` is there.
        if req.headers().contains_key(http::header::UPGRADE)
            || req.headers().contains_key(http::header::SEC_WEBSOCKET_KEY)
        {
            if let Err(origin) =
                origin::check_login(req.headers(), req.uri(), &self.settings.trusted_origins)
            {
                metrics.session(SessionEvent::UpgradeCrossOrigin);
                tracing::warn!(origin = %origin, user_id = %data.user_id, "cross-origin upgrade with a session cookie refused");
                return Err(Box::new(
                    SessionRejection::CrossOriginUpgrade { origin }.into_response(),
                ));
            }
        }
        let mut token = HeaderValue::from_str(&data.token).map_err(|_| {
            metrics.session(SessionEvent::CookieRejected);
            Box::new(self.unauthorized(tls))
        })?;
        token.set_sensitive(true);
        remove_cookie(req.headers_mut(), &self.settings.cookie_name);
        req.headers_mut().insert("x-auth-token", token);
        Ok(Some(Attached {
            user_id: data.user_id.clone(),
        }))
    }

    /// Ends a session whose token Keystone no longer accepts: logs it (by
    /// user id, never the token) and adds the cookies that clear it to `resp`.
    pub fn end_rejected<B>(&self, attached: &Attached, tls: bool, resp: &mut http::Response<B>) {
        tracing::info!(user_id = %attached.user_id, "session token rejected; clearing the session");
        for c in self.clearing_cookies(tls) {
            resp.headers_mut().append(http::header::SET_COOKIE, c);
        }
    }

    /// `Set-Cookie` values that delete both cookies.
    pub fn clearing_cookies(&self, tls: bool) -> [HeaderValue; 2] {
        [
            self.cookie(&self.settings.cookie_name, "", Some(0), true, tls),
            self.cookie(&self.settings.csrf_cookie_name, "", Some(0), false, tls),
        ]
    }

    /// Answers the logout endpoint.
    pub async fn logout(
        &self,
        validator: &Validator,
        metrics: &Metrics,
        method: &Method,
        headers: &HeaderMap,
        tls: bool,
    ) -> Answer {
        if method != Method::POST {
            return SessionRejection::MethodNotAllowed.into_response();
        }
        let data = match self.open_cookie(headers) {
            Some(Ok(d)) => d,
            None | Some(Err(_)) => {
                metrics.session(SessionEvent::CookieRejected);
                return self.unauthorized(tls);
            }
        };
        if !self.csrf_ok(method, headers, &data) {
            metrics.session(SessionEvent::CsrfRejected);
            return self.forbidden_csrf();
        }
        let Some(token) = HeaderValue::from_str(&data.token)
            .ok()
            .as_ref()
            .and_then(Token::from_header)
        else {
            return self.unauthorized(tls);
        };
        if data.expires_at > crate::clock::now() {
            if let Err(e) = validator.keystone().revoke_user_token(&token).await {
                metrics.session(SessionEvent::LogoutKeystoneUnavailable);
                tracing::warn!(error = %e, user_id = %data.user_id, "logout: cannot revoke the token");
                return SessionRejection::LogoutKeystoneUnavailable.into_response();
            }
        }
        validator.forget(&token).await;
        metrics.session(SessionEvent::Logout);
        tracing::info!(user_id = %data.user_id, token = %token.fingerprint(), "session logout");
        let mut resp = json_response(StatusCode::OK, &json!({"logout": true}));
        for c in self.clearing_cookies(tls) {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        resp
    }

    /// The 401 of an unusable session, clearing both cookies.
    fn unauthorized(&self, tls: bool) -> Answer {
        let mut resp = SessionRejection::SessionInvalid.into_response();
        for c in self.clearing_cookies(tls) {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        resp
    }

    fn forbidden_csrf(&self) -> Answer {
        SessionRejection::Csrf {
            header: self.settings.csrf_header.clone(),
        }
        .into_response()
    }

    /// The session cookie's data: `None` without the cookie; the first value
    /// that opens, else why the (last) value did not.
    fn open_cookie(&self, headers: &HeaderMap) -> Option<Result<SessionData, OpenError>> {
        let mut result = None;
        for value in cookie_values(headers, &self.settings.cookie_name) {
            match seal::open(&self.settings.keys, &self.settings.cookie_name, value) {
                Ok(d) => return Some(Ok(d)),
                Err(e) => result = Some(Err(e)),
            }
        }
        result
    }

    fn csrf_ok(&self, method: &Method, headers: &HeaderMap, data: &SessionData) -> bool {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return true;
        }
        let mut values = headers.get_all(&self.settings.csrf_header).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => {
                use subtle::ConstantTimeEq;
                v.as_bytes().ct_eq(data.csrf.as_bytes()).into()
            }
            _ => false,
        }
    }

    fn cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Option<i64>,
        http_only: bool,
        tls: bool,
    ) -> HeaderValue {
        let s = &self.settings;
        let mut c = format!("{name}={value}; Path={}", s.cookie_path);
        if let Some(d) = &s.cookie_domain {
            c.push_str("; Domain=");
            c.push_str(d);
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
            if age == 0 {
                c.push_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
            }
        }
        if http_only {
            c.push_str("; HttpOnly");
        }
        let secure = match s.secure {
            settings::Secure::Always => true,
            settings::Secure::Never => false,
            settings::Secure::Auto => tls,
        };
        if secure {
            c.push_str("; Secure");
        }
        c.push_str("; SameSite=");
        c.push_str(s.same_site);
        // Names, values and attributes are checked tokens and base64/hex.
        HeaderValue::from_str(&c)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// The address the throttle counts against ([`client_address`]).
    fn client_address<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        let peer = req
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.peer.ip());
        match &self.settings.client_address_header {
            Some(h) => client_address::resolve(
                peer,
                req.headers().get_all(h),
                &self.settings.trusted_proxies,
            ),
            None => peer,
        }
    }
}

/// Whether the request arrived over TLS: stonegate's own TLS listener, or an
/// `https` request URI (HTTP/2 `:scheme`, absolute-form requests).
pub fn request_is_tls<B>(req: &Request<B>) -> bool {
    req.extensions()
        .get::<ConnectionInfo>()
        .is_some_and(|c| c.tls)
        || req.uri().scheme() == Some(&http::uri::Scheme::HTTPS)
}

/// Every value of cookie `name` in the `Cookie` header(s), one pair of
/// surrounding double quotes removed (RFC 6265 §4.2.1 `cookie-value`).
/// `pub` for the `session_headers` fuzz target only; not API.
#[doc(hidden)]
pub fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (n, v) = pair.trim().split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (n.trim() == name).then_some(v)
        })
}

/// Removes cookie `name` from the `Cookie` header(s), keeping the others.
/// `pub` for the `session_headers` fuzz target only; not API.
#[doc(hidden)]
pub fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| pair.split_once('=').map_or(pair.trim(), |(n, _)| n.trim()) != name)
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Answer {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests;
