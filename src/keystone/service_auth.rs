//! stonegate's own Keystone token, obtained as keystoneauth does
//! (`password` or `v3applicationcredential` with Identity v3; `password`
//! with v2.0: `POST /v2.0/tokens`), renewed 120 s before expiry and
//! once more when Keystone answers 401. Renewal is single-flight: concurrent
//! requests wait for one authentication.

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{AuthVersion, ServiceCredentials, Settings};
use super::{Client, Error};
use crate::clock::parse_rfc3339;

/// Renew the service token when it expires within this many seconds
/// (keystoneauth's `MIN_TOKEN_LIFE_SECONDS`).
const MIN_TOKEN_LIFE: i64 = 120;

/// A service token and where to validate with it.
pub(crate) struct ServiceToken {
    header: HeaderValue,
    expires_at: i64,
    /// Identity endpoint base, ending in `/v3` (or `/v2.0`; no trailing slash).
    pub endpoint: String,
}

impl ServiceToken {
    /// The token as a sensitive header value.
    pub(crate) fn header_value(&self) -> HeaderValue {
        self.header.clone()
    }
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceToken")
            .field("expires_at", &self.expires_at)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

pub(crate) struct ServiceAuth {
    settings: Settings,
    current: RwLock<Option<Arc<ServiceToken>>>,
    renewing: tokio::sync::Mutex<()>,
}

impl ServiceAuth {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            settings,
            current: RwLock::new(None),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self, now: i64) -> Option<Arc<ServiceToken>> {
        let guard = self.current.read().ok()?;
        guard
            .as_ref()
            .filter(|t| t.expires_at - now > MIN_TOKEN_LIFE)
            .cloned()
    }

    pub(crate) fn is_ready(&self, now: i64) -> bool {
        self.current
            .read()
            .map(|g| g.as_ref().is_some_and(|t| t.expires_at > now))
            .unwrap_or(false)
    }

    /// The current service token, authenticating first if there is none or it
    /// is about to expire.
    pub(crate) async fn current(
        &self,
        client: &Client,
        now: i64,
    ) -> Result<Arc<ServiceToken>, Error> {
        if let Some(t) = self.fresh(now) {
            return Ok(t);
        }
        let _one_at_a_time = self.renewing.lock().await;
        if let Some(t) = self.fresh(now) {
            return Ok(t);
        }
        let token = Arc::new(self.authenticate(client).await?);
        tracing::info!(
            endpoint = %token.endpoint,
            expires_at = token.expires_at,
            "obtained stonegate's service token"
        );
        if let Ok(mut g) = self.current.write() {
            *g = Some(token.clone());
        }
        Ok(token)
    }

    /// Forgets `stale` (Keystone said 401), unless it was already replaced.
    pub(crate) fn invalidate(&self, stale: &Arc<ServiceToken>) {
        if let Ok(mut g) = self.current.write() {
            if g.as_ref().is_some_and(|t| Arc::ptr_eq(t, stale)) {
                *g = None;
            }
        }
    }

    async fn authenticate(&self, client: &Client) -> Result<ServiceToken, Error> {
        match self.settings.auth_version {
            AuthVersion::V3 => self.authenticate_v3(client).await,
            AuthVersion::V2 => self.authenticate_v2(client).await,
        }
    }

    /// `POST {auth_url}/v2.0/tokens`: the token is `access.token.id`, the
    /// identity endpoint comes from `access.serviceCatalog`.
    async fn authenticate_v2(&self, client: &Client) -> Result<ServiceToken, Error> {
        let base = version_base(&self.settings.auth_url.to_string(), AuthVersion::V2);
        let reply = self
            .post_credentials(client, &format!("{base}/tokens"))
            .await?;
        let doc: AccessV2Doc = serde_json::from_slice(&reply.body)
            .map_err(|e| Error::Malformed(format!("v2.0 auth response: {e}")))?;
        let mut header = HeaderValue::from_str(&doc.access.token.id)
            .map_err(|_| Error::Malformed("v2.0 auth response: unusable token id".into()))?;
        header.set_sensitive(true);
        let expires_at = super::model_v2::parse_time(&doc.access.token.expires)
            .ok_or_else(|| Error::Malformed("v2.0 auth response: bad token.expires".into()))?;
        let key = format!("{}URL", self.settings.interface);
        let endpoint = doc
            .access
            .service_catalog
            .iter()
            .filter(|s| s.kind == "identity")
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| {
                self.settings
                    .region_name
                    .as_ref()
                    .is_none_or(|r| e.get("region").and_then(|v| v.as_str()) == Some(r))
            })
            .find_map(|e| e.get(&key).and_then(|v| v.as_str()))
            .map(|url| version_base(url, AuthVersion::V2))
            .unwrap_or(base);
        Ok(ServiceToken {
            header,
            expires_at,
            endpoint,
        })
    }

    async fn authenticate_v3(&self, client: &Client) -> Result<ServiceToken, Error> {
        let base = version_base(&self.settings.auth_url.to_string(), AuthVersion::V3);
        let reply = self
            .post_credentials(client, &format!("{base}/auth/tokens"))
            .await?;
        let mut header = reply
            .headers
            .get("X-Subject-Token")
            .cloned()
            .ok_or_else(|| Error::Malformed("no X-Subject-Token in auth response".into()))?;
        header.set_sensitive(true);
        let doc: AuthDoc = serde_json::from_slice(&reply.body)
            .map_err(|e| Error::Malformed(format!("auth response: {e}")))?;
        let expires_at = parse_rfc3339(&doc.token.expires_at)
            .ok_or_else(|| Error::Malformed("auth response: bad expires_at".into()))?;
        let endpoint = doc
            .token
            .catalog
            .iter()
            .filter(|s| s.kind == "identity")
            .flat_map(|s| s.endpoints.iter())
            .find(|e| {
                e.interface == self.settings.interface
                    && self.settings.region_name.as_ref().is_none_or(|r| {
                        e.region.as_ref() == Some(r) || e.region_id.as_ref() == Some(r)
                    })
            })
            .map(|e| version_base(&e.url, AuthVersion::V3))
            .unwrap_or(base);
        Ok(ServiceToken {
            header,
            expires_at,
            endpoint,
        })
    }

    /// `POST url` with the credentials; a 200/201 answer, else the error
    /// (401, 403, 400: Keystone refused stonegate's credentials).
    async fn post_credentials(&self, client: &Client, url: &str) -> Result<super::Reply, Error> {
        let body = Bytes::from(self.request_body().to_string());
        let reply = client
            .send("authenticate", || {
                Request::builder()
                    .method(Method::POST)
                    .uri(url)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::ACCEPT, "application/json")
                    .header(header::USER_AGENT, super::USER_AGENT)
                    .body(Full::new(body.clone()))
            })
            .await?;
        match reply.status {
            StatusCode::CREATED | StatusCode::OK => Ok(reply),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST => {
                Err(Error::ServiceAuth(reply.status))
            }
            other => Err(Error::Status(other)),
        }
    }

    fn request_body(&self) -> serde_json::Value {
        match &self.settings.credentials {
            ServiceCredentials::Password {
                user,
                password,
                scope,
            } => {
                let mut user = user.clone();
                user["password"] = serde_json::Value::String(password.expose_secret().to_owned());
                let mut auth = serde_json::json!({
                    "identity": {"methods": ["password"], "password": {"user": user}}
                });
                if let Some(scope) = scope {
                    auth["scope"] = scope.clone();
                }
                serde_json::json!({ "auth": auth })
            }
            ServiceCredentials::PasswordV2 {
                user: (user_key, user),
                password,
                tenant,
            } => {
                let mut auth = serde_json::json!({"passwordCredentials": {
                    *user_key: user, "password": password.expose_secret()
                }});
                if let Some((tenant_key, tenant)) = tenant {
                    auth[*tenant_key] = serde_json::Value::String(tenant.clone());
                }
                serde_json::json!({ "auth": auth })
            }
            ServiceCredentials::ApplicationCredential { id, secret } => serde_json::json!({
                "auth": {"identity": {
                    "methods": ["application_credential"],
                    "application_credential": {"id": id, "secret": secret.expose_secret()}
                }}
            }),
        }
    }
}

/// The `/v3` (or `/v2.0`) base of an identity URL: kept if it already ends
/// in that version, else the version appended.
fn version_base(url: &str, version: AuthVersion) -> String {
    let trimmed = url.trim_end_matches('/');
    let segment = version.segment();
    if trimmed
        .strip_suffix(segment)
        .is_some_and(|rest| rest.ends_with('/'))
    {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/{segment}")
    }
}

/// The parts of a v2.0 `POST /tokens` answer stonegate uses.
#[derive(Deserialize)]
struct AccessV2Doc {
    access: AccessV2,
}

#[derive(Deserialize)]
struct AccessV2 {
    token: TokenV2,
    #[serde(rename = "serviceCatalog", default)]
    service_catalog: Vec<CatalogServiceV2>,
}

#[derive(Deserialize)]
struct TokenV2 {
    id: String,
    expires: String,
}

#[derive(Deserialize)]
struct CatalogServiceV2 {
    #[serde(rename = "type")]
    kind: String,
    /// `{"region": ..., "publicURL": ..., "internalURL": ..., "adminURL": ...}`.
    #[serde(default)]
    endpoints: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct AuthDoc {
    token: AuthToken,
}

#[derive(Deserialize)]
struct AuthToken {
    expires_at: String,
    #[serde(default)]
    catalog: Vec<CatalogService>,
}

#[derive(Deserialize)]
struct CatalogService {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Deserialize)]
struct CatalogEndpoint {
    interface: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    region_id: Option<String>,
    url: String,
}

#[cfg(test)]
mod tests {
    use super::version_base;
    use super::AuthVersion::{V2, V3};

    #[test]
    fn identity_urls_get_a_v3_base() {
        assert_eq!(version_base("http://k:5000/v3/", V3), "http://k:5000/v3");
        assert_eq!(version_base("http://k:5000", V3), "http://k:5000/v3");
        assert_eq!(
            version_base("https://k/identity", V3),
            "https://k/identity/v3"
        );
    }

    #[test]
    fn v2_password_body_is_keystoneauths() {
        let text = r#"
auth_url = "http://127.0.0.1:5000/v2.0"
auth_version = "v2.0"
user_id = "u1"
password = "pw"
project_id = "p1"
"#;
        let section: super::super::Section = toml::from_str(text).unwrap();
        let (settings, _) = section
            .build(&mut Vec::new(), &mut Vec::new(), &|_| None)
            .unwrap();
        let body = super::ServiceAuth::new(settings).request_body();
        assert_eq!(
            body,
            serde_json::json!({"auth": {
                "passwordCredentials": {"userId": "u1", "password": "pw"},
                "tenantId": "p1"
            }})
        );
    }

    #[test]
    fn identity_urls_get_a_v2_base() {
        assert_eq!(
            version_base("http://k:5000/v2.0/", V2),
            "http://k:5000/v2.0"
        );
        assert_eq!(version_base("http://k:5000", V2), "http://k:5000/v2.0");
        assert_eq!(version_base("http://k/xv2.0", V2), "http://k/xv2.0/v2.0");
    }
}
