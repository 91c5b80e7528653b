//! stonegate: Keystone token validation for any HTTP service — a
//! `tower::Layer` to embed ([`AuthTokenLayer`]), a streaming sidecar proxy
//! (`stonegate serve`: the layer around [`proxy::Proxy`]), and forward-auth
//! endpoints for ingress proxies ([`forward_auth`]), all thin adapters over one
//! [`validator::Validator`].
//!
//! The crate is layered, in this order (as the modules below are listed; a
//! module uses only the layers above it, `src/tests.rs` checks it): leaves
//! (settings vocabulary, clock, connection facts, identity, metrics, path,
//! tls, token) → domain, each owning its section (access rules, cache,
//! keystone, local, oauth2, revocation, routes, shared cache) → the core
//! ([`validator`]) → the edge ([`headers`], `rejection`, [`session`],
//! [`gate`]: validator + sessions) → front doors ([`layer`], [`proxy`],
//! [`forward_auth`], [`kube`]; never each other) → assembly ([`config`], [`stack`]) →
//! `server` → `main.rs`.
//!
//! Every request goes through the same steps, in this order:
//!
//! ```text
//! apply Connection, strip forged identity and `_` aliases (headers) → canonical path, or 400 (path)
//!   → public route? (routes)
//!   → extract X-Auth-Token / X-Storage-Token / X-Service-Token
//!     (and `Authorization: Bearer` with `[oauth2] bearer`; validator)
//!   → cache (moka, keyed by SHA-256; cache)
//!   → on a miss: local Fernet decode or JWS verify + enrichment (local, token)
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
//!     .layer(AuthTokenLayer::new(stack.gate.clone(), metrics));
//! // `stack.background` keeps the validator current while it lives.
//! # let _ = app; Ok(()) }
//! ```

// The layers, in dependency order: a module imports only from the layers
// above it.
//
// Public API: the layer (`AuthTokenLayer`, `AuthContext`), `stack` and
// `gate`, `config`, `metrics`, `identity`, `validator`, the doors
// (`forward_auth`, `proxy`), `server`, and the modules whose settings types
// `config::Settings` exposes (`keystone`, `session`, `policy`, `request_id`,
// `audit`, `oauth2`, `trace`).
// `#[doc(hidden)] pub`: internals the product tests, benches, fuzz targets
// and the binary drive directly; not API, they may change. The rest is
// `pub(crate)`.
//
// Leaves (import nothing of the crate): the settings vocabulary, the clock,
// connection facts, identity, metrics, client TLS, the path rule and tokens.
pub(crate) mod clock;
pub(crate) mod connection;
pub mod identity;
pub mod metrics;
#[doc(hidden)]
pub mod path;
pub(crate) mod settings;
#[doc(hidden)]
pub mod tls;
#[doc(hidden)]
pub mod token;

// Domain: each module owns its configuration section (`Section` ->
// `Settings`).
#[doc(hidden)]
pub mod access_rules;
#[doc(hidden)]
pub mod cache;
pub mod keystone;
pub(crate) mod local;
pub mod oauth2;
pub mod policy;
pub mod request_id;
#[doc(hidden)]
pub mod revocation;
#[doc(hidden)]
pub mod routes;
#[doc(hidden)]
pub mod shared_cache;
pub mod trace;

// The core: token(s) -> Identity | Denied.
pub mod validator;

// The edge: the header boundary, the one table of answers, browser sessions
// (cookie, CSRF, login and logout: every door honours them) and the gate
// (validator + sessions + the audit trail, swapped together on reload) the
// doors decide with, and the CADF audit trail of decided requests.
pub mod audit;
pub mod gate;
#[doc(hidden)]
pub mod headers;
pub(crate) mod rejection;
pub mod session;

// Front doors, thin adapters over the gate; they never import each other.
pub mod forward_auth;
pub mod kube;
pub mod layer;
pub mod proxy;

// Assembly: the sections into one configuration, then the stack every door
// is built from (library code, for embedders too).
pub mod config;
pub mod stack;

// The process: listeners and the admin endpoints (`main.rs` is above it).
#[cfg(feature = "server")]
pub mod server;

pub use layer::{AuthContext, AuthTokenLayer, AuthTokenService};

#[cfg(test)]
mod tests;
