//! The one place where failures become responses: 400 and 401 (client's fault), 503
//! (Keystone's), 502/504 (the upstream's). Every body is JSON in Keystone's
//! error shape; every 401 carries `WWW-Authenticate: Keystone uri="..."`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::{keystone, metrics::Outcome, path};

/// Marks a response that stonegate produced because the upstream failed, so
/// the front door that called the forwarding service counts the request under
/// that outcome.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamFailure(pub Outcome);

impl UpstreamFailure {
    /// The marker of a response built from `r`.
    pub fn from_rejection(r: &Rejection) -> Self {
        UpstreamFailure(r.outcome())
    }
}

/// Why a request was not (or could not be) served.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// The request path could be resolved differently by another server
    /// (dot segments, encoded separators...: see [`crate::path`]).
    #[error("ambiguous request path: {0}")]
    AmbiguousPath(path::Ambiguous),
    /// Missing, invalid, expired or revoked token, or a failed role/access-rule check.
    #[error("authentication required")]
    Unauthorized,
    /// Keystone could not answer for a token that was not cached.
    #[error("Keystone unavailable: {0}")]
    KeystoneUnavailable(#[source] std::sync::Arc<keystone::Error>),
    /// The upstream could not be reached or failed mid-way.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// The upstream did not answer in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
}

impl Rejection {
    /// The status a client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::AmbiguousPath(_) => StatusCode::BAD_REQUEST,
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::KeystoneUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            Rejection::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Label for `stonegate_requests_total{outcome}`.
    pub fn outcome(&self) -> Outcome {
        match self {
            Rejection::AmbiguousPath(_) => Outcome::AmbiguousPath,
            Rejection::Unauthorized => Outcome::Unauthorized,
            Rejection::KeystoneUnavailable(_) => Outcome::KeystoneUnavailable,
            Rejection::UpstreamUnavailable(_) => Outcome::UpstreamUnavailable,
            Rejection::UpstreamTimeout => Outcome::UpstreamTimeout,
        }
    }

    fn message(&self) -> (&'static str, &'static str) {
        match self {
            Rejection::AmbiguousPath(_) => (
                "Bad Request",
                "The request path is ambiguous: dot segments, encoded slashes or backslashes, \
                 empty segments and control characters are refused.",
            ),
            Rejection::Unauthorized => (
                "Unauthorized",
                "The request you have made requires authentication.",
            ),
            Rejection::KeystoneUnavailable(_) => (
                "Service Unavailable",
                "The Keystone service is temporarily unavailable.",
            ),
            Rejection::UpstreamUnavailable(_) => {
                ("Bad Gateway", "The upstream service is unavailable.")
            }
            Rejection::UpstreamTimeout => (
                "Gateway Timeout",
                "The upstream service did not answer in time.",
            ),
        }
    }

    /// The response: status, JSON body, and `WWW-Authenticate` on 401 /
    /// `Retry-After` on 503. The body never echoes request data.
    pub fn into_response(self, www_authenticate: &HeaderValue) -> Response<Full<Bytes>> {
        let status = self.status();
        let (title, message) = self.message();
        let body = serde_json::json!({
            "error": {"code": status.as_u16(), "title": title, "message": message}
        })
        .to_string();
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            Rejection::Unauthorized => {
                h.insert(header::WWW_AUTHENTICATE, www_authenticate.clone());
            }
            Rejection::KeystoneUnavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Rejection::AmbiguousPath(_)
            | Rejection::UpstreamUnavailable(_)
            | Rejection::UpstreamTimeout => {}
        }
        resp
    }
}
