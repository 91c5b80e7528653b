//! The one place where denials become responses: 400, 401 and 403 (client's fault), 503
//! (Keystone's), 502/504 (the upstream's). Every body is JSON in Keystone's
//! error shape; every 401 of a token decision carries
//! `WWW-Authenticate: Keystone uri="..."` (and, with `[oauth2] bearer`,
//! `Bearer realm="...", error="invalid_token"`).
//!
//! Two tables: [`Rejection`] (a request's authentication or forwarding) and
//! [`SessionRejection`] (the browser-session endpoints and session cookies:
//! 400/401/403/405/413/415/429/500/503, never cached). Where a session
//! answer ends a session, [`crate::session`] appends the cookie-clearing
//! `Set-Cookie` values.

use std::{borrow::Cow, time::Duration};

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

use crate::{
    keystone,
    metrics::Outcome,
    path,
    validator::{Challenges, Denied},
};

/// Marks a response that stonegate produced because the upstream failed, so
/// the front door that called the forwarding service counts the request under
/// that outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamFailure(pub Outcome);

impl UpstreamFailure {
    /// The marker of a response built from `r`.
    pub(crate) fn from_rejection(r: &Rejection) -> Self {
        UpstreamFailure(r.outcome())
    }
}

/// Whether an HTTP/1 request may still have body bytes on the connection
/// when stonegate answers it itself (a 4xx/5xx before the body is read).
/// hyper then closes the connection after the answer; saying
/// `Connection: close` keeps a client from sending its next request on a
/// connection that is about to close (Python `requests` fails such a
/// request with "Remote end closed connection").
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLeft(bool);

impl BodyLeft {
    pub(crate) fn of<B: http_body::Body>(req: &Request<B>) -> Self {
        BodyLeft(req.version() <= http::Version::HTTP_11 && !req.body().is_end_stream())
    }

    /// `resp`, with `Connection: close` when it is a refusal and body bytes
    /// may be left (a login that read its body and succeeded keeps the connection).
    pub(crate) fn answer<B>(self, mut resp: Response<B>) -> Response<B> {
        if self.0 && !resp.status().is_success() {
            resp.headers_mut()
                .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Why a request was not (or could not be) served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Rejection {
    /// The request path could be resolved differently by another server
    /// (dot segments, encoded separators...: see [`crate::path`]).
    #[error("ambiguous request path: {0}")]
    AmbiguousPath(path::Ambiguous),
    /// `X-Auth-Token` and `Authorization: Bearer` name different tokens.
    #[error("conflicting user tokens")]
    ConflictingTokens,
    /// Missing, invalid, expired or revoked token, or a failed role/access-rule check.
    #[error("authentication required")]
    Unauthorized,
    /// Keystone could not answer for a token that was not cached.
    #[error("Keystone unavailable: {0}")]
    KeystoneUnavailable(#[source] std::sync::Arc<keystone::Error>),
    /// An `[authorization]` rule refused the request (403).
    #[error("forbidden by rule {rule}")]
    Forbidden {
        /// The rule's name (from the configuration), or `default`.
        rule: String,
    },
    /// The route selects a service profile that is not configured (the
    /// `envoy-grpc` door's `context_extensions`): fails closed (403).
    #[error("unknown service profile")]
    UnknownService,
    /// The upstream could not be reached or failed mid-way.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// The upstream did not answer in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
}

impl From<Denied> for Rejection {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthorized => Rejection::Unauthorized,
            Denied::KeystoneUnavailable(e) => Rejection::KeystoneUnavailable(e),
            Denied::Forbidden { rule } => Rejection::Forbidden { rule },
            Denied::ConflictingTokens => Rejection::ConflictingTokens,
        }
    }
}

impl Rejection {
    /// The status a client gets.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Rejection::AmbiguousPath(_) | Rejection::ConflictingTokens => StatusCode::BAD_REQUEST,
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::KeystoneUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Forbidden { .. } | Rejection::UnknownService => StatusCode::FORBIDDEN,
            Rejection::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            Rejection::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Label for `stonegate_requests_total{outcome}`.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Rejection::AmbiguousPath(_) => Outcome::AmbiguousPath,
            Rejection::ConflictingTokens => Outcome::ConflictingTokens,
            Rejection::Unauthorized => Outcome::Unauthorized,
            Rejection::KeystoneUnavailable(_) => Outcome::KeystoneUnavailable,
            Rejection::Forbidden { .. } | Rejection::UnknownService => Outcome::Forbidden,
            Rejection::UpstreamUnavailable(_) => Outcome::UpstreamUnavailable,
            Rejection::UpstreamTimeout => Outcome::UpstreamTimeout,
        }
    }

    fn message(&self) -> (&'static str, Cow<'static, str>) {
        match self {
            Rejection::AmbiguousPath(_) => (
                "Bad Request",
                "The request path is ambiguous: dot segments, encoded slashes or backslashes, \
                 empty segments and control characters are refused."
                    .into(),
            ),
            Rejection::ConflictingTokens => (
                "Bad Request",
                "X-Auth-Token and Authorization: Bearer carry different tokens; send one.".into(),
            ),
            Rejection::Unauthorized => (
                "Unauthorized",
                "The request you have made requires authentication.".into(),
            ),
            Rejection::KeystoneUnavailable(_) => (
                "Service Unavailable",
                "The Keystone service is temporarily unavailable.".into(),
            ),
            // oslo.policy's PolicyNotAuthorized message; the name is the
            // configuration's, never anything of the request or the token.
            Rejection::Forbidden { rule } => (
                "Forbidden",
                format!("Policy doesn't allow {rule} to be performed.").into(),
            ),
            Rejection::UnknownService => (
                "Forbidden",
                "The route names a service this gateway's authentication is not configured for."
                    .into(),
            ),
            Rejection::UpstreamUnavailable(_) => {
                ("Bad Gateway", "The upstream service is unavailable.".into())
            }
            Rejection::UpstreamTimeout => (
                "Gateway Timeout",
                "The upstream service did not answer in time.".into(),
            ),
        }
    }

    /// The response: status, JSON body, and the `WWW-Authenticate`
    /// challenges on 401 / `Retry-After` on 503. The body never echoes
    /// request data.
    pub(crate) fn into_response(self, challenges: &Challenges) -> Response<Full<Bytes>> {
        let (title, message) = self.message();
        let mut resp = error_response(self.status(), title, &message);
        let h = resp.headers_mut();
        match self {
            Rejection::Unauthorized => challenges.set_on(h),
            Rejection::KeystoneUnavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Rejection::AmbiguousPath(_)
            | Rejection::ConflictingTokens
            | Rejection::Forbidden { .. }
            | Rejection::UnknownService
            | Rejection::UpstreamUnavailable(_)
            | Rejection::UpstreamTimeout => {}
        }
        resp
    }
}

/// Why a session endpoint (login, logout) or a session cookie was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SessionRejection {
    /// The session cookie does not open, names an expired token or holds an
    /// unusable one (the caller clears both cookies).
    #[error("session not valid")]
    SessionInvalid,
    /// A cookie-authenticated write without the session's CSRF token in `header`.
    #[error("CSRF token missing or incorrect")]
    Csrf {
        /// The CSRF header the client must send.
        header: HeaderName,
    },
    /// A cookie-authenticated upgrade from another site.
    #[error("cross-origin upgrade")]
    CrossOriginUpgrade {
        /// The `Origin` the client sent (shown escaped).
        origin: String,
    },
    /// A login from another site.
    #[error("cross-origin login")]
    CrossOriginLogin {
        /// The `Origin` the client sent (shown escaped).
        origin: String,
    },
    /// A session endpoint called with another method than POST.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A login body of another type than JSON or a form.
    #[error("unsupported login body type")]
    UnsupportedMediaType,
    /// A login body over the size limit.
    #[error("login body too large")]
    LoginBodyTooLarge,
    /// A login body that did not arrive within the time limit.
    #[error("login body too slow")]
    LoginBodyTimeout(std::time::Duration),
    /// A login body that could not be read.
    #[error("login body unreadable")]
    LoginBodyUnreadable,
    /// A login body that is not a credentials object.
    #[error("login body not a credentials object")]
    LoginBodyInvalid,
    /// A login without a username or a password.
    #[error("username or password missing")]
    MissingCredentials,
    /// Too many login attempts for the user or the address.
    #[error("login throttled")]
    Throttled {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// Keystone refused the credentials.
    #[error("invalid credentials")]
    LoginRefused {
        /// The `WWW-Authenticate` challenge (the validator's).
        www_authenticate: HeaderValue,
    },
    /// Keystone could not understand the login request (400).
    #[error("login not understood by Keystone")]
    LoginNotUnderstood,
    /// Keystone could not answer a login.
    #[error("Keystone unavailable at login")]
    LoginKeystoneUnavailable,
    /// Keystone could not revoke the token at logout (the session goes on).
    #[error("Keystone unavailable at logout")]
    LogoutKeystoneUnavailable,
    /// The session could not be sealed (no randomness, cipher failure).
    #[error("session not created")]
    SessionNotCreated,
}

impl SessionRejection {
    /// The status a client gets.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            SessionRejection::SessionInvalid | SessionRejection::LoginRefused { .. } => {
                StatusCode::UNAUTHORIZED
            }
            SessionRejection::Csrf { .. }
            | SessionRejection::CrossOriginUpgrade { .. }
            | SessionRejection::CrossOriginLogin { .. } => StatusCode::FORBIDDEN,
            SessionRejection::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            SessionRejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            SessionRejection::LoginBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            SessionRejection::LoginBodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            SessionRejection::LoginBodyUnreadable
            | SessionRejection::LoginBodyInvalid
            | SessionRejection::MissingCredentials
            | SessionRejection::LoginNotUnderstood => StatusCode::BAD_REQUEST,
            SessionRejection::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            SessionRejection::LoginKeystoneUnavailable
            | SessionRejection::LogoutKeystoneUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            SessionRejection::SessionNotCreated => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> (&'static str, Cow<'static, str>) {
        match self {
            SessionRejection::SessionInvalid => (
                "Unauthorized",
                "The session is not valid; log in again.".into(),
            ),
            SessionRejection::Csrf { header } => (
                "Forbidden",
                format!(
                    "CSRF token missing or incorrect: send the csrf token in the {header} header."
                )
                .into(),
            ),
            SessionRejection::CrossOriginUpgrade { origin } => (
                "Forbidden",
                format!(
                    "Cross-origin upgrade refused: Origin {origin:?} is neither this site nor one of session.trusted_origins."
                )
                .into(),
            ),
            SessionRejection::CrossOriginLogin { origin } => (
                "Forbidden",
                format!(
                    "Cross-origin login refused: Origin {origin:?} is neither this site nor one of session.trusted_origins."
                )
                .into(),
            ),
            SessionRejection::MethodNotAllowed => ("Method Not Allowed", "Use POST.".into()),
            SessionRejection::UnsupportedMediaType => (
                "Unsupported Media Type",
                "Send the credentials as application/json or application/x-www-form-urlencoded."
                    .into(),
            ),
            SessionRejection::LoginBodyTooLarge => (
                "Payload Too Large",
                "The login request body is too large.".into(),
            ),
            SessionRejection::LoginBodyTimeout(limit) => (
                "Request Timeout",
                format!(
                    "The login request body did not arrive within {} seconds.",
                    limit.as_secs()
                )
                .into(),
            ),
            SessionRejection::LoginBodyUnreadable => (
                "Bad Request",
                "The login request body could not be read.".into(),
            ),
            SessionRejection::LoginBodyInvalid => (
                "Bad Request",
                "The login request body is not a valid credentials object.".into(),
            ),
            SessionRejection::MissingCredentials => (
                "Bad Request",
                "Both \"username\" and \"password\" are required.".into(),
            ),
            SessionRejection::Throttled { .. } => (
                "Too Many Requests",
                "Too many login attempts; try again later.".into(),
            ),
            SessionRejection::LoginRefused { .. } => ("Unauthorized", "Invalid credentials.".into()),
            SessionRejection::LoginNotUnderstood => (
                "Bad Request",
                "Keystone could not understand the login request.".into(),
            ),
            SessionRejection::LoginKeystoneUnavailable => (
                "Service Unavailable",
                "The Keystone service is temporarily unavailable.".into(),
            ),
            SessionRejection::LogoutKeystoneUnavailable => (
                "Service Unavailable",
                "The Keystone service is temporarily unavailable; the session is still active."
                    .into(),
            ),
            SessionRejection::SessionNotCreated => (
                "Internal Server Error",
                "The session could not be created.".into(),
            ),
        }
    }

    /// The response: status, JSON body, `Cache-Control: no-store`, and
    /// `WWW-Authenticate` on a refused login, `Retry-After` on 429/503,
    /// `Allow: POST` on 405. The body never echoes request data but the
    /// refused `Origin` (escaped).
    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let (title, message) = self.message();
        let mut resp = error_response(self.status(), title, &message);
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            SessionRejection::LoginRefused { www_authenticate } => {
                h.insert(header::WWW_AUTHENTICATE, www_authenticate);
            }
            SessionRejection::Throttled { retry_after } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().to_string()) {
                    h.insert(header::RETRY_AFTER, v);
                }
            }
            SessionRejection::LoginKeystoneUnavailable
            | SessionRejection::LogoutKeystoneUnavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            SessionRejection::MethodNotAllowed => {
                h.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            SessionRejection::SessionInvalid
            | SessionRejection::Csrf { .. }
            | SessionRejection::CrossOriginUpgrade { .. }
            | SessionRejection::CrossOriginLogin { .. }
            | SessionRejection::UnsupportedMediaType
            | SessionRejection::LoginBodyTooLarge
            | SessionRejection::LoginBodyTimeout(_)
            | SessionRejection::LoginBodyUnreadable
            | SessionRejection::LoginBodyInvalid
            | SessionRejection::MissingCredentials
            | SessionRejection::LoginNotUnderstood
            | SessionRejection::SessionNotCreated => {}
        }
        resp
    }
}

/// A Keystone-shaped JSON error: `{"error": {"code", "title", "message"}}`.
fn error_response(status: StatusCode, title: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "error": {"code": status.as_u16(), "title": title, "message": message}
    })
    .to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests;
