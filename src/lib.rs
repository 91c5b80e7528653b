//! stonegate: Keystone token validation for any HTTP service — a
//! `tower::Layer` to embed ([`AuthTokenLayer`]), a streaming sidecar proxy
//! (`stonegate serve`: the layer around [`proxy::Proxy`]), and forward-auth
//! endpoints for ingress proxies ([`forward_auth`]), all thin adapters over one
//! [`validator::Validator`].
//!
//! Every request goes through the same steps, in this order:
//!
//! ```text
//! strip forged identity headers (headers) → canonical path, or 400 (path)
//!   → public route? (routes)
//!   → extract X-Auth-Token / X-Storage-Token / X-Service-Token (validator)
//!   → cache (moka, keyed by SHA-256; cache)
//!   → on a miss: local Fernet decode + enrichment (local, token)
//!     | shared memcached/Redis cache (shared_cache) → GET /v3/auth/tokens (keystone)
//!     (legacy clouds, `auth_version = "v2.0"`: GET /v2.0/tokens/{token})
//!   → expiry, revocation events (revocation), service-token roles, access rules (access_rules)
//!   → inject keystonemiddleware's headers and forward | 401 / 503 (rejection)
//! ```
//!
//! Embedding in axum:
//!
//! ```no_run
//! # async fn demo(settings: stonegate::config::Settings) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use stonegate::{keystone, layer::AuthTokenLayer, metrics::Metrics, validator::Validator};
//!
//! let metrics = Metrics::unregistered();
//! let keystone = keystone::Client::new(settings.keystone.clone(), metrics.clone())?;
//! let validator = Arc::new(Validator::new(keystone, settings.auth.clone(), metrics.clone()));
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "hello" }))
//!     .layer(AuthTokenLayer::new(validator, metrics));
//! # let _ = app; Ok(()) }
//! ```

pub mod access_rules;
pub mod cache;
pub mod config;
pub mod forward_auth;
pub mod headers;
pub mod identity;
pub mod keystone;
pub mod layer;
pub mod local;
pub mod metrics;
pub mod path;
pub mod proxy;
pub mod rejection;
pub mod revocation;
pub mod routes;
#[cfg(feature = "server")]
pub mod server;
pub mod session;
pub mod shared_cache;
pub mod tls;
pub mod token;
pub mod validator;

pub use layer::{AuthContext, AuthToken, AuthTokenLayer};
