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
pub mod origin;
pub mod seal;
pub mod settings;
pub mod throttle;

use std::{net::IpAddr, sync::Arc};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::{
    connection::ConnectionInfo,
    keystone::user_tokens::{Issued, LoginOutcome},
    metrics::{Metrics, SessionEvent},
    rejection::SessionRejection,
    token::Token,
    validator::Validator,
};
use seal::{OpenError, SessionData};
pub use settings::{Section, Settings};
use throttle::Throttle;

/// Largest login body read (a username, a password and a scope).
const MAX_LOGIN_BODY: usize = 16 * 1024;
/// Time the login body has to arrive (then 408): at 16 KiB, a client
/// slower than 1.6 KB/s cannot hold a login (and its Keystone slot) open.
const LOGIN_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
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

/// The parts of a login body stonegate reads (JSON or form).
#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    username: Option<String>,
    /// Wiped from memory when the form is dropped.
    password: Option<Zeroizing<String>>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    /// Horizon's name for the user's domain.
    domain: Option<String>,
    project_id: Option<String>,
    project_name: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
}

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

    /// For a request without `X-Auth-Token` (or `X-Storage-Token`): opens its session cookie, checks
    /// CSRF on writes, and sets `X-Auth-Token` (the session cookie itself is
    /// removed from what is forwarded). `Ok(None)`: no session cookie, the
    /// request goes on unchanged. `Err`: the response to send instead.
    pub fn attach<B>(
        &self,
        req: &mut Request<B>,
        metrics: &Metrics,
    ) -> Result<Option<Attached>, Box<Answer>> {
        if req.headers().contains_key("x-auth-token")
            || req.headers().contains_key("x-storage-token")
        {
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
        // token), so one riding on the cookie must come from this site.
        if req.headers().contains_key(http::header::UPGRADE) {
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

    /// `Set-Cookie` values that delete both cookies.
    pub fn clearing_cookies(&self, tls: bool) -> [HeaderValue; 2] {
        [
            self.cookie(&self.settings.cookie_name, "", Some(0), true, tls),
            self.cookie(&self.settings.csrf_cookie_name, "", Some(0), false, tls),
        ]
    }

    /// Answers the login endpoint.
    pub async fn login<B>(
        &self,
        validator: &Validator,
        metrics: &Metrics,
        req: Request<B>,
    ) -> Answer
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if req.method() != Method::POST {
            return SessionRejection::MethodNotAllowed.into_response();
        }
        if let Err(origin) =
            origin::check_login(req.headers(), req.uri(), &self.settings.trusted_origins)
        {
            metrics.session(SessionEvent::LoginCrossOrigin);
            tracing::warn!(origin = %origin, "cross-origin login refused");
            return SessionRejection::CrossOriginLogin { origin }.into_response();
        }
        let tls = request_is_tls(&req);
        let address = self.client_address(&req);
        let form = match read_form(req).await {
            Ok(f) => f,
            Err(resp) => {
                metrics.session(SessionEvent::LoginBadRequest);
                return resp;
            }
        };
        let (Some(username), Some(password)) = (
            form.username.as_deref(),
            form.password.as_ref().map(|p| p.as_str()),
        ) else {
            metrics.session(SessionEvent::LoginBadRequest);
            return SessionRejection::MissingCredentials.into_response();
        };
        if username.is_empty() || password.is_empty() {
            metrics.session(SessionEvent::LoginBadRequest);
            return SessionRejection::MissingCredentials.into_response();
        }
        let user_domain = match (&form.user_domain_id, &form.user_domain_name, &form.domain) {
            (Some(id), _, _) => json!({ "id": id }),
            (None, Some(name), _) | (None, None, Some(name)) => json!({ "name": name }),
            (None, None, None) => json!({ "name": self.settings.default_user_domain }),
        };
        let throttle_key = throttle_key(username);
        let spelling = json!([username, user_domain]).to_string();
        let who = crate::token::Fingerprint::of(throttle_key.as_bytes());
        let attempt = match self
            .throttle
            .attempt(&throttle_key, &spelling, address)
            .await
        {
            Ok(a) => a,
            Err(retry) => {
                metrics.session(SessionEvent::LoginThrottled);
                tracing::warn!(user = %who, client = ?address, "login throttled");
                return SessionRejection::Throttled { retry_after: retry }.into_response();
            }
        };
        let project_domain = match (&form.project_domain_id, &form.project_domain_name) {
            (Some(id), _) => json!({ "id": id }),
            (None, Some(name)) => json!({ "name": name }),
            (None, None) => user_domain.clone(),
        };
        let mut auth = json!({
            "identity": {"methods": ["password"], "password": {"user": {
                "name": username, "domain": user_domain, "password": password}}}
        });
        match (&form.project_id, &form.project_name) {
            (Some(id), _) => auth["scope"] = json!({"project": {"id": id}}),
            (None, Some(name)) => {
                auth["scope"] = json!({"project": {"name": name, "domain": project_domain}})
            }
            (None, None) => {}
        }
        let outcome = validator.keystone().issue_user_token(&auth).await;
        if let Some(pw) = auth.pointer_mut("/identity/password/user/password") {
            drop(Zeroizing::new(
                std::mem::take(pw).as_str().map(str::to_owned),
            ));
        }
        match outcome {
            Ok(LoginOutcome::Issued(issued)) => {
                self.throttle.succeeded(attempt).await;
                match self.start(&issued, tls) {
                    Ok(resp) => {
                        metrics.session(SessionEvent::Login);
                        tracing::info!(
                            user_id = issued.body["user"]["id"].as_str(),
                            token = %issued.token.fingerprint(),
                            "session login"
                        );
                        resp
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot seal a session");
                        SessionRejection::SessionNotCreated.into_response()
                    }
                }
            }
            Ok(LoginOutcome::Refused) => {
                metrics.session(SessionEvent::LoginFailed);
                tracing::info!(user = %who, client = ?address, "login refused by Keystone");
                SessionRejection::LoginRefused {
                    www_authenticate: validator.settings().www_authenticate.clone(),
                }
                .into_response()
            }
            Ok(LoginOutcome::BadRequest) => {
                metrics.session(SessionEvent::LoginBadRequest);
                SessionRejection::LoginNotUnderstood.into_response()
            }
            Err(e) => {
                metrics.session(SessionEvent::LoginKeystoneUnavailable);
                tracing::warn!(error = %e, "login: Keystone unavailable");
                SessionRejection::LoginKeystoneUnavailable.into_response()
            }
        }
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

    /// The login answer: cookies and the user.
    fn start(&self, issued: &Issued, tls: bool) -> Result<Answer, SessionError> {
        let mut csrf = [0u8; 32];
        random(&mut csrf)?;
        let csrf = hex::encode(csrf);
        let body = &issued.body;
        let data = SessionData {
            token: issued.token.expose().to_owned(),
            csrf: csrf.clone(),
            expires_at: issued.expires_at,
            user_id: body["user"]["id"].as_str().unwrap_or_default().to_owned(),
        };
        let sealed = seal::seal(&self.settings.keys, &self.settings.cookie_name, &data)?;
        let max_age = (issued.expires_at - crate::clock::now()).max(0);
        let roles: Vec<&Value> = body["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r.get("name")).collect())
            .unwrap_or_default();
        let answer = json!({
            "user": body.get("user"),
            "project": body.get("project"),
            "domain": body.get("domain"),
            "roles": roles,
            "expires_at": body.get("expires_at"),
            "csrf_token": csrf,
        });
        let mut resp = json_response(StatusCode::OK, &answer);
        let h = resp.headers_mut();
        h.append(
            header::SET_COOKIE,
            self.cookie(
                &self.settings.cookie_name,
                &sealed,
                Some(max_age),
                true,
                tls,
            ),
        );
        h.append(
            header::SET_COOKIE,
            self.cookie(
                &self.settings.csrf_cookie_name,
                &csrf,
                Some(max_age),
                false,
                tls,
            ),
        );
        Ok(resp)
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

/// The login throttle's bucket for `username`: the name alone, trimmed and
/// lower-cased, whatever domain the login names. A user's domain can be
/// spelt by name or id, in any case (`user_domain_name`, `user_domain_id`,
/// `domain`), and only Keystone knows which spellings are the same domain;
/// a bucket per spelling would multiply a guesser's attempts. So every
/// spelling of one user shares a bucket — and so do users of the same name
/// in different domains, which can only make throttling stricter. (A success
/// refunds only the attempts of its exact spelling: [`throttle`].)
///
/// The name is folded as Keystone's usual MySQL collations compare names
/// (`utf8_general_ci`: case, trailing spaces and Latin accents ignored, so
/// `José`, `jose` and `JOSE ` are one user there).
fn throttle_key(username: &str) -> String {
    username
        .trim()
        .to_lowercase()
        .chars()
        // Combining accents (a decomposed "é").
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .map(|c| {
            ACCENTED
                .iter()
                .find(|(accented, _)| accented.contains(c))
                .map_or(c, |(_, base)| *base)
        })
        .collect()
}

/// Lower-case Latin letters with accents, by base letter.
const ACCENTED: &[(&str, char)] = &[
    ("àáâãäåāăą", 'a'),
    ("çćĉċč", 'c'),
    ("ďđ", 'd'),
    ("èéêëēĕėęě", 'e'),
    ("ĝğġģ", 'g'),
    ("ĥħ", 'h'),
    ("ìíîïĩīĭįı", 'i'),
    ("ĵ", 'j'),
    ("ķ", 'k'),
    ("ĺļľŀł", 'l'),
    ("ñńņňŉ", 'n'),
    ("òóôõöøōŏő", 'o'),
    ("ŕŗř", 'r'),
    ("śŝşšß", 's'),
    ("ţťŧ", 't'),
    ("ùúûüũūŭůűų", 'u'),
    ("ŵ", 'w'),
    ("ýÿŷ", 'y'),
    ("źżž", 'z'),
];

/// Whether the request arrived over TLS: stonegate's own TLS listener, or an
/// `https` request URI (HTTP/2 `:scheme`, absolute-form requests).
pub fn request_is_tls<B>(req: &Request<B>) -> bool {
    req.extensions()
        .get::<ConnectionInfo>()
        .is_some_and(|c| c.tls)
        || req.uri().scheme() == Some(&http::uri::Scheme::HTTPS)
}

/// Every value of cookie `name` in the `Cookie` header(s).
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// Removes cookie `name` from the `Cookie` header(s), keeping the others.
fn remove_cookie(headers: &mut HeaderMap, name: &str) {
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

async fn read_form<B>(req: Request<B>) -> Result<LoginForm, Answer>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json = match content_type.as_str() {
        "application/json" => true,
        "application/x-www-form-urlencoded" => false,
        _ => return Err(SessionRejection::UnsupportedMediaType.into_response()),
    };
    let collected = tokio::time::timeout(
        LOGIN_BODY_TIMEOUT,
        Limited::new(req.into_body(), MAX_LOGIN_BODY).collect(),
    )
    .await;
    let Ok(collected) = collected else {
        return Err(SessionRejection::LoginBodyTimeout.into_response());
    };
    let body = match collected {
        Ok(b) => Zeroizing::new(b.to_bytes().to_vec()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(SessionRejection::LoginBodyTooLarge.into_response())
        }
        Err(_) => return Err(SessionRejection::LoginBodyUnreadable.into_response()),
    };
    let form = if json {
        serde_json::from_slice::<LoginForm>(&body).ok()
    } else {
        serde_urlencoded::from_bytes::<LoginForm>(&body).ok()
    };
    form.ok_or_else(|| SessionRejection::LoginBodyInvalid.into_response())
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn throttle_keys_fold_what_keystones_database_would_not_tell_apart() {
        let key = throttle_key("José");
        for same in ["jose", "JOSE ", " JoSé", "jose\u{301}", "JOSÉ"] {
            assert_eq!(throttle_key(same), key, "{same:?}");
        }
        assert_eq!(throttle_key("Łukasz Straße"), "lukasz strase");
        assert_ne!(throttle_key("josh"), key);
        assert_eq!(throttle_key("用户"), "用户");
    }

    #[test]
    fn cookie_header_parsing_and_removal() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; sessionid=abc; csrftoken=x"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("sessionid=\"def\""),
        );
        let v: Vec<&str> = cookie_values(&h, "sessionid").collect();
        assert_eq!(v, ["abc", "def"]);
        remove_cookie(&mut h, "sessionid");
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; csrftoken=x");
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("sessionid=abc"));
        remove_cookie(&mut only, "sessionid");
        assert!(only.get(header::COOKIE).is_none());
    }
}
