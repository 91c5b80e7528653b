//! stonegate: Keystone token validation for any HTTP service — a
//! `tower::Layer` to embed ([`AuthTokenLayer`]), a streaming sidecar proxy
//! (`stonegate serve`: the layer around [`proxy::Proxy`]), and forward-auth
//! endpoints for ingress proxies ([`forward_auth`]), all thin adapters over one
//! [`validator::Validator`].
//!
//! Every request goes through the same steps, in this order:
//!
//! ```text
//! apply Connection, strip forged identity and `_` aliases (headers) → canonical path, or 400 (path)
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
//! use stonegate::{layer::AuthTokenLayer, metrics::Metrics, stack};
//!
//! let metrics = Metrics::unregistered();
//! // The same assembly as the sidecar: local validation, revocation polling,
//! // the shared cache and the service-token keeper, as the settings ask.
//! let stack = stack::build(&settings, &metrics)?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "hello" }))
//!     .layer(AuthTokenLayer::new(stack.validator.clone(), metrics));
//! // `stack.background` keeps the validator current while it lives.
//! # let _ = app; Ok(()) }
//! ```

pub mod access_rules;
pub mod cache;
pub mod clock;
pub mod config;
pub mod connection;
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
pub mod settings;
pub mod shared_cache;
pub mod stack;
pub mod tls;
pub mod token;
pub mod validator;

pub use layer::{AuthContext, AuthToken, AuthTokenLayer};
