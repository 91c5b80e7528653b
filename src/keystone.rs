//! The Keystone client: validates tokens with `GET /v3/auth/tokens`, as
//! keystonemiddleware does, using stonegate's own service token
//! ([`service_auth`]); with `auth_version = "v2.0"`, with
//! `GET /v2.0/tokens/{token}` ([`model_v2`]), as keystonemiddleware's old
//! `_V2RequestStrategy` did. Results are typed: a token Keystone does not know is
//! [`Validation::Invalid`]; Keystone failing is an [`Error`] (never "invalid").

pub mod credentials;
pub mod model;
pub mod model_v2;
pub mod service_auth;
pub mod settings;
pub mod user_groups;
pub mod user_tokens;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client as HyperClient},
    rt::TokioExecutor,
};

use crate::{clock::now, identity::Identity, metrics::Metrics, tls::ClientTls, token::Token};

pub use model::ModelError;
use service_auth::ServiceAuth;
pub use settings::{AuthVersion, Policy, Section, ServiceCredentials, Settings};

/// HTTP client used towards Keystone.
pub(crate) type HttpClient = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Largest Keystone response body read (catalogs can be large).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// What Keystone said about a token.
#[derive(Debug)]
pub enum Validation {
    /// The token is valid; here is who it is.
    Valid {
        /// Who the token is.
        identity: Box<Identity>,
        /// Keystone's response body (`{"token": {...}}`), for the shared cache.
        body: Bytes,
    },
    /// Keystone does not accept the token (404).
    Invalid,
}

/// Keystone could not give an answer. Every variant means "unavailable" to a
/// client (503), never "invalid token".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer in time.
    #[error("Keystone timed out")]
    Timeout,
    /// The connection failed.
    #[error("cannot reach Keystone: {0}")]
    Connect(String),
    /// Keystone answered with an unexpected status.
    #[error("Keystone answered {0}")]
    Status(StatusCode),
    /// Keystone refused stonegate's own credentials or token.
    #[error("Keystone rejected stonegate's service credentials ({0})")]
    ServiceAuth(StatusCode),
    /// The answer could not be understood.
    #[error("unusable Keystone response: {0}")]
    Malformed(String),
    /// Keystone failed repeatedly; it is not called until the breaker's cooldown ends.
    #[error("Keystone circuit breaker open after repeated failures")]
    CircuitOpen,
    /// Revocation events have not been refreshed within the staleness limit,
    /// so a token cannot be decided locally.
    #[error("revocation events are stale")]
    RevocationStale,
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl Error {
    /// Label for the `status` of `stonegate_keystone_requests_total`.
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Timeout => "timeout",
            Error::Connect(_) => "connect_error",
            Error::Status(s) | Error::ServiceAuth(s) => status_label(*s),
            Error::Malformed(_) => "malformed",
            Error::RevocationStale => "revocation_stale",
            Error::CircuitOpen => "circuit_open",
            Error::Tls(_) => "tls_error",
        }
    }
}

fn status_label(s: StatusCode) -> &'static str {
    match s.as_u16() {
        200 => "200",
        201 => "201",
        401 => "401",
        403 => "403",
        404 => "404",
        500..=599 => "5xx",
        400..=499 => "4xx",
        _ => "other",
    }
}

/// How to validate one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValidateOptions {
    /// Accept a token expired within Keystone's `allow_expired_window`.
    pub allow_expired: bool,
    /// Ask for the service catalog (else `?nocatalog`).
    pub catalog: bool,
}

/// A cloneable handle to Keystone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    settings: Settings,
    auth: ServiceAuth,
    metrics: Metrics,
    /// Bounds concurrent Keystone requests, so a miss storm cannot flood Keystone.
    limiter: tokio::sync::Semaphore,
    breaker: std::sync::Mutex<Breaker>,
}

/// Circuit breaker: after `threshold` consecutive failures (no answer, or
/// 5xx), Keystone is not called for `cooldown`; requests fail fast with 503.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<std::time::Instant>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("keystone::Client")
            .field("auth_url", &self.inner.settings.auth_url)
            .finish_non_exhaustive()
    }
}

/// Raw answer to one request.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Client {
    /// Builds a client (no network traffic yet).
    pub fn new(settings: Settings, metrics: Metrics) -> Result<Self, Error> {
        let tls = ClientTls {
            cafile: settings.cafile.clone(),
            certfile: settings.certfile.clone(),
            keyfile: settings.keyfile.clone(),
            insecure: settings.insecure,
        }
        .build()?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        let auth = ServiceAuth::new(settings.clone());
        let limiter = tokio::sync::Semaphore::new(settings.max_concurrent_requests.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                settings,
                auth,
                metrics,
                limiter,
                breaker: std::sync::Mutex::new(Breaker::default()),
            }),
        })
    }

    /// True while stonegate holds a service token that is not about to expire.
    pub fn is_ready(&self) -> bool {
        self.inner.auth.is_ready(now())
    }

    /// Obtains (or renews) stonegate's own token now.
    pub async fn ensure_service_token(&self) -> Result<(), Error> {
        self.inner.auth.current(self, now()).await.map(|_| ())
    }

    /// The Identity API version this client speaks.
    pub fn auth_version(&self) -> AuthVersion {
        self.inner.settings.auth_version
    }

    /// Validates `token` with Keystone. A 401 on stonegate's own token makes it
    /// re-authenticate and retry once; a second 401 is an [`Error`].
    pub async fn validate(
        &self,
        token: &Token,
        opts: ValidateOptions,
    ) -> Result<Validation, Error> {
        if self.inner.settings.auth_version == AuthVersion::V2 {
            return self.validate_v2(token).await;
        }
        let mut subject = HeaderValue::from_str(token.expose())
            .map_err(|_| Error::Malformed("token is not a valid header value".into()))?;
        subject.set_sensitive(true);
        let mut query = String::new();
        if !opts.catalog {
            query.push_str("?nocatalog");
        }
        if opts.allow_expired {
            query.push(if query.is_empty() { '?' } else { '&' });
            query.push_str("allow_expired=1");
        }
        let reply = self
            .get_with_service_token("validate", &format!("/auth/tokens{query}"), Some(&subject))
            .await?;
        match reply.status {
            StatusCode::OK => match model::parse_token(&reply.body) {
                Ok(id) => Ok(Validation::Valid {
                    identity: Box::new(id),
                    body: reply.body,
                }),
                Err(ModelError::CertificateBound) => {
                    tracing::info!(token = %token.fingerprint(), "{}", ModelError::CertificateBound);
                    Ok(Validation::Invalid)
                }
                Err(e) => Err(Error::Malformed(e.to_string())),
            },
            StatusCode::NOT_FOUND => Ok(Validation::Invalid),
            other => Err(Error::Status(other)),
        }
    }

    /// Identity v2.0: `GET {endpoint}/tokens/{token}` (no `allow_expired`, no
    /// `nocatalog` in v2.0). The token goes into the URL path, so a token
    /// that is not a plain path segment is invalid without asking Keystone.
    async fn validate_v2(&self, token: &Token) -> Result<Validation, Error> {
        if !is_path_safe(token.expose()) {
            tracing::info!(
                token = %token.fingerprint(),
                "token has characters not allowed in a v2.0 token id; invalid"
            );
            return Ok(Validation::Invalid);
        }
        let path = format!("/tokens/{}", token.expose());
        let reply = self.get_with_service_token("validate", &path, None).await?;
        match reply.status {
            StatusCode::OK => match model_v2::parse_access(&reply.body) {
                Ok(id) => Ok(Validation::Valid {
                    identity: Box::new(id),
                    body: reply.body,
                }),
                Err(ModelError::NoTenancy) => {
                    tracing::info!(token = %token.fingerprint(), "{}", ModelError::NoTenancy);
                    Ok(Validation::Invalid)
                }
                Err(e) => Err(Error::Malformed(e.to_string())),
            },
            StatusCode::NOT_FOUND => Ok(Validation::Invalid),
            other => Err(Error::Status(other)),
        }
    }

    /// Revocation events recorded after `since` (Unix seconds), or all of them.
    pub async fn revocation_events(
        &self,
        since: Option<i64>,
    ) -> Result<Vec<crate::revocation::Event>, Error> {
        let path = match since {
            None => "/OS-REVOKE/events".to_owned(),
            Some(s) => {
                let t = time::OffsetDateTime::from_unix_timestamp(s)
                    .map_err(|e| Error::Malformed(e.to_string()))?;
                let fmt = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
                );
                let since = t
                    .format(&fmt)
                    .map_err(|e| Error::Malformed(e.to_string()))?;
                format!("/OS-REVOKE/events?since={since}")
            }
        };
        let reply = self
            .get_with_service_token("revocation_events", &path, None)
            .await?;
        match reply.status {
            StatusCode::OK => crate::revocation::parse_events(&reply.body)
                .map_err(|e| Error::Malformed(e.to_string())),
            other => Err(Error::Status(other)),
        }
    }

    /// `GET {identity endpoint}{path}` with stonegate's token; on a 401 the
    /// token is renewed and the request retried once. A second 401, or a 403,
    /// is [`Error::ServiceAuth`]; other statuses are returned.
    async fn get_with_service_token(
        &self,
        operation: &'static str,
        path: &str,
        subject: Option<&HeaderValue>,
    ) -> Result<Reply, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let svc = self.inner.auth.current(self, now()).await?;
            let url = format!("{}{path}", svc.endpoint);
            let reply = self
                .send(operation, || {
                    let mut req = Request::builder()
                        .method(Method::GET)
                        .uri(url.as_str())
                        .header(header::ACCEPT, "application/json")
                        .header(header::USER_AGENT, USER_AGENT)
                        .body(Full::new(Bytes::new()))?;
                    if self.inner.settings.auth_version == AuthVersion::V3 {
                        req.headers_mut().insert(
                            "OpenStack-Identity-Access-Rules",
                            HeaderValue::from_static("1"),
                        );
                    }
                    req.headers_mut().insert("X-Auth-Token", svc.header_value());
                    if let Some(s) = subject {
                        req.headers_mut().insert("X-Subject-Token", s.clone());
                    }
                    Ok(req)
                })
                .await?;
            match reply.status {
                StatusCode::UNAUTHORIZED if attempt == 1 => {
                    tracing::warn!(
                        "Keystone rejected stonegate's service token; re-authenticating"
                    );
                    self.inner.auth.invalidate(&svc);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(Error::ServiceAuth(reply.status))
                }
                _ => return Ok(reply),
            }
        }
    }

    /// Sends one request built by `build` (rebuilt for each retry), retrying
    /// connection failures up to `http_request_max_retries` times, with the
    /// whole exchange bounded by `http_request_timeout`.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        build: impl Fn() -> Result<Request<Full<Bytes>>, http::Error>,
    ) -> Result<Reply, Error> {
        let inner = &self.inner;
        if let Ok(b) = inner.breaker.lock() {
            if b.open_until.is_some_and(|t| t > std::time::Instant::now()) {
                inner
                    .metrics
                    .keystone_requests
                    .with_label_values(&[operation, "circuit_open"])
                    .inc();
                return Err(Error::CircuitOpen);
            }
        }
        let deadline = tokio::time::Instant::now() + inner.settings.request_timeout;
        let _permit = match tokio::time::timeout_at(deadline, inner.limiter.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) | Err(_) => return Err(Error::Timeout),
        };
        let mut retries = 0;
        let result = loop {
            let mut req = build().map_err(|e| Error::Malformed(e.to_string()))?;
            // The request's id and trace context, so Keystone logs the same id.
            crate::request_id::set_current_on(req.headers_mut());
            let exchange = async {
                let resp = inner.http.request(req).await?;
                let (parts, body) = resp.into_parts();
                let body = Limited::new(body, MAX_BODY)
                    .collect()
                    .await
                    .map_err(|e| Error::Malformed(format!("reading body: {e}")))?
                    .to_bytes();
                Ok::<_, ExchangeError>(Reply {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            };
            match tokio::time::timeout(inner.settings.request_timeout, exchange).await {
                Err(_) => break Err(Error::Timeout),
                Ok(Ok(reply)) => break Ok(reply),
                Ok(Err(ExchangeError::Done(e))) => break Err(e),
                Ok(Err(ExchangeError::Http(e))) => {
                    let retryable = e.is_connect();
                    let err = Error::Connect(error_chain(&e));
                    if retryable && retries < inner.settings.max_retries {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(50 * u64::from(retries))).await;
                        continue;
                    }
                    break Err(err);
                }
            }
        };
        let failed = match &result {
            Ok(r) => r.status.is_server_error(),
            Err(_) => true,
        };
        if let Ok(mut b) = inner.breaker.lock() {
            if failed {
                b.failures += 1;
                let threshold = inner.settings.circuit_breaker_threshold;
                if threshold > 0 && b.failures >= threshold {
                    b.open_until =
                        Some(std::time::Instant::now() + inner.settings.circuit_breaker_cooldown);
                    tracing::warn!(
                        failures = b.failures,
                        cooldown_s = inner.settings.circuit_breaker_cooldown.as_secs(),
                        "Keystone keeps failing; not calling it during the cooldown"
                    );
                }
            } else {
                *b = Breaker::default();
            }
        }
        let label = match &result {
            Ok(r) => status_label(r.status),
            Err(e) => e.metric_label(),
        };
        inner
            .metrics
            .keystone_requests
            .with_label_values(&[operation, label])
            .inc();
        result
    }
}

enum ExchangeError {
    Http(hyper_util::client::legacy::Error),
    Done(Error),
}

impl From<hyper_util::client::legacy::Error> for ExchangeError {
    fn from(e: hyper_util::client::legacy::Error) -> Self {
        ExchangeError::Http(e)
    }
}

impl From<Error> for ExchangeError {
    fn from(e: Error) -> Self {
        ExchangeError::Done(e)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// True when `token` can be one URL path segment as it is: only RFC 3986
/// unreserved characters plus `=` and `+` (UUID, PKI, PKIZ and Fernet token
/// ids), and not made of dots only (`.`/`..` would be dot-segments). So no
/// `/`, `?`, `#`, `%` or `..` can change which URL Keystone is asked.
fn is_path_safe(token: &str) -> bool {
    !token.is_empty()
        && !token.bytes().all(|b| b == b'.')
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'=' | b'+')
        })
}

/// `User-Agent` of stonegate's Keystone requests.
const USER_AGENT: &str = concat!("stonegate/", env!("CARGO_PKG_VERSION"));

impl crate::revocation::poller::EventSource for Client {
    type Error = Error;
    async fn fetch(&self, since: Option<i64>) -> Result<Vec<crate::revocation::Event>, Error> {
        self.revocation_events(since).await
    }
}

#[cfg(test)]
mod tests {
    use super::is_path_safe;

    #[test]
    fn only_plain_path_segments_are_v2_token_ids() {
        for ok in [
            "0123456789abcdef0123456789abcdef",
            "gAAAAABk-x_y=",
            "PKIZ_eJx+abc",
            "a.b",
        ] {
            assert!(is_path_safe(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", "...", "../admin", "a/b", "a?x=1", "a#f", "a%2Fb", "a b", "a\\b", "a;b",
            "a@b",
        ] {
            assert!(!is_path_safe(bad), "{bad}");
        }
    }
}
