//! Tokens on behalf of users (browser sessions): issue one with a password
//! (`POST /v3/auth/tokens`) and revoke it (`DELETE /v3/auth/tokens`). Both go
//! to the identity endpoint stonegate validates with.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;

use super::{Client, Error, USER_AGENT};
use crate::clock::now;
use crate::token::Token;

/// A token Keystone issued for a password login.
pub struct Issued {
    /// The token (`X-Subject-Token`).
    pub token: Token,
    /// Its expiry, Unix seconds.
    pub expires_at: i64,
    /// The `token` object of Keystone's answer (user, project, ...), catalog removed.
    pub body: Value,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &self.token.fingerprint().to_string())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What Keystone said to a login.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Authenticated.
    Issued(Issued),
    /// Wrong credentials, unknown user, disabled user, or no access to the
    /// requested scope (Keystone does not say which, nor do we).
    Refused,
    /// Keystone found the request malformed (400).
    BadRequest,
}

impl Client {
    /// `POST /v3/auth/tokens?nocatalog` with `auth` (a Keystone `auth` object).
    pub async fn issue_user_token(&self, auth: &Value) -> Result<LoginOutcome, Error> {
        let svc = self.inner.auth.current(self, now()).await?;
        let url = format!("{}/auth/tokens?nocatalog", svc.endpoint);
        let body = Bytes::from(serde_json::json!({ "auth": auth }).to_string());
        let reply = self
            .send("login", || {
                Request::builder()
                    .method(Method::POST)
                    .uri(url.as_str())
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::ACCEPT, "application/json")
                    .header(header::USER_AGENT, USER_AGENT)
                    .body(Full::new(body.clone()))
            })
            .await?;
        match reply.status {
            StatusCode::CREATED | StatusCode::OK => {
                let token = reply
                    .headers
                    .get("x-subject-token")
                    .and_then(Token::from_header)
                    .ok_or_else(|| Error::Malformed("no X-Subject-Token in the answer".into()))?;
                let mut doc: Value = serde_json::from_slice(&reply.body)
                    .map_err(|e| Error::Malformed(format!("login answer: {e}")))?;
                let mut body = doc
                    .get_mut("token")
                    .map(Value::take)
                    .filter(Value::is_object)
                    .ok_or_else(|| Error::Malformed("login answer has no token".into()))?;
                if let Some(o) = body.as_object_mut() {
                    o.remove("catalog");
                }
                let expires_at = body
                    .get("expires_at")
                    .and_then(Value::as_str)
                    .and_then(crate::clock::parse_rfc3339)
                    .ok_or_else(|| Error::Malformed("login answer has no expires_at".into()))?;
                Ok(LoginOutcome::Issued(Issued {
                    token,
                    expires_at,
                    body,
                }))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                Ok(LoginOutcome::Refused)
            }
            StatusCode::BAD_REQUEST => Ok(LoginOutcome::BadRequest),
            other => Err(Error::Status(other)),
        }
    }

    /// Revokes `token` as its own holder (`X-Auth-Token` = `X-Subject-Token`,
    /// which Keystone's default policy allows). `Ok(true)`: revoked now;
    /// `Ok(false)`: Keystone no longer knew it (already invalid).
    pub async fn revoke_user_token(&self, token: &Token) -> Result<bool, Error> {
        let svc = self.inner.auth.current(self, now()).await?;
        let url = format!("{}/auth/tokens", svc.endpoint);
        let mut value = HeaderValue::from_str(token.expose())
            .map_err(|_| Error::Malformed("token is not a valid header value".into()))?;
        value.set_sensitive(true);
        let reply = self
            .send("logout", || {
                let mut req = Request::builder()
                    .method(Method::DELETE)
                    .uri(url.as_str())
                    .header(header::ACCEPT, "application/json")
                    .header(header::USER_AGENT, USER_AGENT)
                    .body(Full::new(Bytes::new()))?;
                req.headers_mut().insert("X-Auth-Token", value.clone());
                req.headers_mut().insert("X-Subject-Token", value.clone());
                Ok(req)
            })
            .await?;
        match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED => Ok(false),
            other => Err(Error::Status(other)),
        }
    }
}
