//! The pipeline every front door shares, knowing nothing of tower or sockets:
//! extract tokens → cache → validate with Keystone → role, expiry and
//! access-rule checks → an [`AuthContext`] to forward, or [`Denied`] (which
//! `rejection` turns into a response).
//! Header stripping happens before, in the callers (`headers::strip_identity`).

mod extract;
pub mod settings;

use std::{sync::Arc, time::Instant};

use http::{HeaderMap, Method};
use tracing::Instrument;

use crate::{
    access_rules,
    cache::{Cache, Key, Outcome},
    identity::Identity,
    keystone::AuthVersion,
    keystone::{self, ValidateOptions, Validation},
    local::{self, Local},
    metrics::Metrics,
    oauth2::{ConnectionCertificate, Thumbprint},
    policy::{Decision, IdentityCredentials},
    revocation::{poller::Revocations, TokenValues},
    shared_cache::SharedCache,
    token::{Fingerprint, Token},
};

use extract::single;
pub use settings::{Challenges, ServiceProfile, ServiceProfiles, Settings};

/// The service a request is decided for: the catalog type its
/// application-credential access rules must name, and its public routes —
/// the configuration's own (`[keystone_authtoken] service_type`,
/// `[routes]`), or a named [`ServiceProfile`]'s.
#[derive(Debug, Clone, Copy)]
pub struct Service<'a> {
    /// The service's catalog type.
    pub service_type: Option<&'a str>,
    /// Its routes that need no token.
    pub public_routes: &'a crate::routes::PublicRoutes,
}

/// Why the validator refused a request. `rejection::Rejection`
/// maps it to a response (`From<Denied>`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Denied {
    /// Missing, invalid, expired or revoked token, or a failed role/access-rule check.
    #[error("authentication required")]
    Unauthorized,
    /// Keystone could not answer for a token that was not cached.
    #[error("Keystone unavailable: {0}")]
    KeystoneUnavailable(#[source] Arc<keystone::Error>),
    /// An `[authorization]` rule refused the (authenticated) request.
    #[error("forbidden by rule {rule}")]
    Forbidden {
        /// The rule's name (from the configuration), or `default`.
        rule: String,
    },
    /// `X-Auth-Token` (or `X-Storage-Token`) and `Authorization: Bearer`
    /// name different tokens: the upstream could read either (400).
    #[error("X-Auth-Token and Authorization: Bearer carry different tokens")]
    ConflictingTokens,
}

/// The result of authentication, placed in request extensions for embedders.
#[derive(Debug, Clone)]
pub struct AuthContext {
    /// The user's identity; `None` only under `delay_auth_decision` when the
    /// user token is missing or invalid (`X-Identity-Status: Invalid`).
    pub user: Option<Arc<Identity>>,
    /// The service token's verdict: `None` when no `X-Service-Token` was sent,
    /// `Some(None)` when it was invalid, `Some(Some(id))` when valid.
    pub service: Option<Option<Arc<Identity>>>,
    /// Fingerprint of the user token (for logs), if one was sent.
    pub user_fingerprint: Option<Fingerprint>,
    /// The route is public: no token was checked.
    pub public: bool,
}

impl AuthContext {
    /// True when the request may reach the service without `delay_auth_decision`.
    pub fn is_confirmed(&self) -> bool {
        self.user.is_some() && !matches!(self.service, Some(None))
    }
}

/// Validates the tokens of requests.
#[derive(Debug)]
pub struct Validator {
    keystone: keystone::Client,
    cache: Cache,
    settings: Settings,
    metrics: Metrics,
    local: Option<Arc<Local>>,
    revocations: Option<Arc<Revocations>>,
    shared: Option<Arc<SharedCache>>,
}

impl Validator {
    /// A validator using `keystone`, with a cache sized by `settings`.
    pub fn new(keystone: keystone::Client, settings: Settings, metrics: Metrics) -> Self {
        let cache = Cache::new(
            settings.cache_capacity_bytes,
            settings.token_cache_time,
            settings.negative_ttl,
        );
        let shared = settings.shared_cache.as_ref().and_then(|s| {
            SharedCache::new(s, keystone.auth_version(), &metrics)
                .map_err(
                    |e| tracing::error!(error = %e, "shared cache unusable; running without it"),
                )
                .ok()
                .map(Arc::new)
        });
        Self {
            keystone,
            cache,
            settings,
            metrics,
            local: None,
            revocations: None,
            shared,
        }
    }

    /// Decides Fernet tokens locally first (see `local`). A cached
    /// result then lives at most `enrichment_cache_time`, so changes Keystone
    /// records no event for (a removed role) reach every token within that
    /// bound; re-deciding locally is cheap.
    pub fn with_local(mut self, local: Arc<Local>) -> Self {
        let ttl = self
            .settings
            .token_cache_time
            .min(local.settings().enrichment_cache_time);
        self.cache = Cache::new(
            self.settings.cache_capacity_bytes,
            ttl,
            self.settings.negative_ttl,
        );
        self.local = Some(local);
        self
    }

    /// Checks every token, cached or not, against revocation events.
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Local validation, when configured.
    pub fn local(&self) -> Option<&Arc<Local>> {
        self.local.as_ref()
    }

    /// Why the validator cannot decide requests yet, if it cannot: it has no
    /// service token of its own, or (with revocation polling) no revocation
    /// list yet — until then local decisions would fail closed.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.keystone.is_ready() {
            return Some("no valid service token from Keystone yet");
        }
        if self
            .revocations
            .as_ref()
            .is_some_and(|r| r.last_success() == 0)
        {
            return Some("no revocation events fetched from Keystone yet");
        }
        None
    }

    /// The shared second-level cache, when configured and usable (browser
    /// sessions count login attempts in it too).
    pub fn shared_cache(&self) -> Option<&Arc<SharedCache>> {
        self.shared.as_ref()
    }

    /// Drops every cached verdict on `token` (after it was revoked here),
    /// the shared cache's included.
    pub async fn forget(&self, token: &Token) {
        if let Some(shared) = &self.shared {
            shared.delete(token).await;
        }
        let fingerprint = token.fingerprint();
        for allow_expired in [false, true] {
            self.cache
                .invalidate(&Key {
                    fingerprint,
                    allow_expired,
                })
                .await;
        }
    }

    /// The revocation list, when polling is enabled.
    pub fn revocations(&self) -> Option<&Arc<Revocations>> {
        self.revocations.as_ref()
    }

    /// The authentication policy in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The Keystone client (for readiness).
    pub fn keystone(&self) -> &keystone::Client {
        &self.keystone
    }

    /// The token cache (for metrics).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Whether the request names a user token in a header the validator
    /// reads (`X-Auth-Token`, `X-Storage-Token`, and `Authorization: Bearer`
    /// with `[oauth2] bearer`): a session cookie then stands aside.
    pub fn has_user_token(&self, headers: &HeaderMap) -> bool {
        extract::has_user_token(headers, self.settings.bearer)
    }

    /// The client certificate a trusted ingress passed in `[oauth2]
    /// client_certificate_header`, as its Keystone thumbprint (`peer`: the
    /// connection's address; from any other peer the header is not
    /// believed). The header is removed from `headers` either way, so the
    /// upstream never reads a client's claim of a certificate.
    ///
    /// `connection`: the certificate the request's own TLS connection
    /// presented, given by the doors whose requests the connection's client
    /// makes (the sidecar, the tower layer; not forward-auth, whose caller
    /// is the ingress): it counts unless the peer is a trusted proxy
    /// ([`oauth2::client_certificate`](crate::oauth2::client_certificate)).
    pub fn take_client_certificate(
        &self,
        headers: &mut HeaderMap,
        peer: Option<std::net::IpAddr>,
        connection: Option<&ConnectionCertificate>,
    ) -> Option<Thumbprint> {
        crate::oauth2::client_certificate(
            self.settings.certificate_header.as_ref(),
            headers,
            peer,
            connection,
        )
    }

    /// The service `[keystone_authtoken] service_type` and `[routes]` describe.
    pub fn default_service(&self) -> Service<'_> {
        Service {
            service_type: self.settings.service_type.as_deref(),
            public_routes: &self.settings.public_routes,
        }
    }

    /// The service profile named `name`, if one is configured.
    pub fn service(&self, name: &str) -> Option<Service<'_>> {
        self.settings.services.by_name.get(name).map(|p| Service {
            service_type: p.service_type.as_deref(),
            public_routes: &p.public_routes,
        })
    }

    /// Whether the request needs no token (a configured public route or CORS
    /// preflight); `path` is the canonical decoded path
    /// ([`crate::path::Canonical::decoded`]).
    pub fn is_public(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        self.settings.public_routes.is_public(method, path, headers)
    }

    /// Whether a public request may upgrade (its route has `upgrade = true`);
    /// `path` is the canonical decoded path.
    pub fn allows_public_upgrade(&self, method: &Method, path: &str) -> bool {
        self.settings.public_routes.allows_upgrade(method, path)
    }

    /// Decides a request from its method, canonical decoded path
    /// ([`crate::path::Canonical::decoded`], what access rules and
    /// `[authorization]` rules match) and (already stripped) headers: who it
    /// is ([`Validator::identify`]), then whether that identity may make it
    /// ([`Validator::authorize`]). Every front door calls this, so every
    /// door decides alike.
    pub async fn authenticate(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        certificate: Option<&Thumbprint>,
    ) -> Result<AuthContext, Denied> {
        self.authenticate_for(self.default_service(), method, path, headers, certificate)
            .await
    }

    /// [`Validator::authenticate`] for `service`: its access rules are
    /// checked against that service's type.
    pub async fn authenticate_for(
        &self,
        service: Service<'_>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        certificate: Option<&Thumbprint>,
    ) -> Result<AuthContext, Denied> {
        let ctx = self
            .identify_for(service.service_type, method, path, headers, certificate)
            .await?;
        self.authorize(&ctx, method, path)?;
        Ok(ctx)
    }

    /// The `[authorization]` decision for an authenticated request, computed
    /// on the identity already held (no Keystone call): `Ok` without
    /// `[authorization]`, [`Denied::Forbidden`] naming the rule when a rule
    /// (or `default = "deny"`) refuses. Public routes never come here.
    pub fn authorize(&self, ctx: &AuthContext, method: &Method, path: &str) -> Result<(), Denied> {
        let Some(policy) = &self.settings.authorization else {
            return Ok(());
        };
        let creds = IdentityCredentials {
            user: ctx.user.as_deref(),
            service: ctx.service.as_ref().and_then(|s| s.as_deref()),
        };
        let decision = policy.decide(&creds, method, path);
        self.metrics
            .authorization(decision.rule(), decision.allowed());
        match decision {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { rule, error } => {
                tracing::info!(
                    audit_id = ctx.user.as_ref().and_then(|u| u.audit_id()),
                    rule,
                    error = error.as_ref().map(tracing::field::display),
                    "request refused by [authorization]"
                );
                Err(Denied::Forbidden { rule: rule.into() })
            }
        }
    }

    /// Who a request is, from its method, canonical decoded path and (already
    /// stripped) headers, following keystonemiddleware's `process_request`:
    /// the service token, the user token, the access rules. No
    /// `[authorization]` decision (that is [`Validator::authorize`]).
    /// `certificate` is the client certificate the door knows of (its
    /// Keystone thumbprint): a certificate-bound user token is valid only
    /// with the certificate it is bound to.
    pub async fn identify(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        certificate: Option<&Thumbprint>,
    ) -> Result<AuthContext, Denied> {
        let service_type = self.settings.service_type.as_deref();
        self.identify_for(service_type, method, path, headers, certificate)
            .await
    }

    /// [`Validator::identify`], access rules checked against `service_type`.
    async fn identify_for(
        &self,
        service_type: Option<&str>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        certificate: Option<&Thumbprint>,
    ) -> Result<AuthContext, Denied> {
        let now = crate::clock::now();
        // The user token: X-Auth-Token, else X-Storage-Token, else
        // (`[oauth2] bearer`) Authorization: Bearer.
        let user_token = extract::user_token(headers, self.settings.bearer)
            .map_err(|extract::Conflict| Denied::ConflictingTokens)?;
        // 1. The service token, if any.
        let mut allow_expired = false;
        // Only a service token holding one of `service_token_roles` lifts
        // the user token's access rules, whatever `service_token_roles_required`
        // says: that option only lets other service tokens be forwarded.
        let mut service_has_role = false;
        let service = match single(headers, &extract::X_SERVICE_TOKEN) {
            None => None,
            Some(v) => {
                let verdict = match v.and_then(Token::from_header) {
                    None => None,
                    Some(t) => self.check(&t, t.fingerprint(), false, now).await?,
                };
                // A bound service token, too, only with its certificate.
                let verdict = verdict.filter(|id| with_its_certificate(id, certificate));
                Some(verdict.and_then(|id| {
                    let has_role = id.has_any_role(&self.settings.service_token_roles);
                    service_has_role = has_role;
                    // Identity v2.0 has no allow_expired: a service token
                    // never extends an expired user token there.
                    allow_expired = has_role && self.keystone.auth_version() == AuthVersion::V3;
                    (has_role || !self.settings.service_token_roles_required).then_some(id)
                }))
            }
        };
        // 2. The user token (read first: a conflict is refused before any
        //    Keystone call). Its SHA-256 is computed once: the cache key, and
        //    the access line's fingerprint.
        let user_fingerprint = user_token.as_ref().map(Token::fingerprint);
        let user = match (&user_token, user_fingerprint) {
            (Some(t), Some(fingerprint)) => self.check(t, fingerprint, allow_expired, now).await?,
            _ => None,
        };
        // 3. A certificate-bound token (RFC 8705) only with its certificate
        //    (keystonemiddleware's oauth2_mtls_token); missing or another
        //    one: invalid (fails closed).
        let user = user.filter(|id| with_its_certificate(id, certificate));
        // 4. Access rules of application-credential tokens.
        let user = user.filter(|id| {
            let ok =
                access_rules::allowed(id, method.as_str(), path, service_type, service_has_role);
            if !ok {
                tracing::info!(
                    audit_id = id.audit_id(),
                    "request not allowed by the token's access rules"
                );
            }
            ok
        });
        let ctx = AuthContext {
            user,
            service,
            user_fingerprint,
            public: false,
        };
        if ctx.is_confirmed() || self.settings.delay_auth_decision {
            Ok(ctx)
        } else {
            Err(Denied::Unauthorized)
        }
    }

    /// One token: from the cache, else decided locally or by Keystone, then
    /// checked against expiry and revocation events. `Ok(None)` = invalid.
    async fn check(
        &self,
        token: &Token,
        fingerprint: Fingerprint,
        allow_expired: bool,
        now: i64,
    ) -> Result<Option<Arc<Identity>>, Denied> {
        let started = Instant::now();
        let key = Key {
            fingerprint,
            allow_expired,
        };
        // The lookup's span holds a miss's local decode, shared cache and
        // Keystone validation.
        let span = tracing::info_span!(
            target: crate::trace::TARGET,
            "stonegate.cache",
            cache.result = tracing::field::Empty,
        );
        // A miss's work (local decode, shared cache, Keystone) is a future of
        // several KB: it is built, boxed, only when the cache runs it, so a
        // hit never builds nor moves it (issue 16: moving it cost ~8,000
        // instructions per cached request).
        // Only the miss is instrumented (the span still opens before the
        // lookup and closes after it): wrapping the lookup would move it all
        // once more.
        let miss = async move { Box::pin(self.resolve(token, allow_expired, now)).await }
            .instrument(span.clone());
        let looked_up = self.cache.get_or_validate(key, miss).await;
        if let Ok((_, hit)) = &looked_up {
            let result = if *hit { "hit" } else { "miss" };
            span.record("cache.result", result);
            // The user token's (checked last) is the request's.
            tracing::Span::current().record("cache.result", result);
        }
        let (outcome, hit) = match looked_up {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(token = %key.fingerprint, error = %e, "Keystone unavailable");
                return Err(Denied::KeystoneUnavailable(e));
            }
        };
        self.metrics.lookup(hit, started.elapsed().as_secs_f64());
        let skew = self.local.as_ref().map_or(0, |l| l.settings().clock_skew);
        let id = match outcome {
            Outcome::Valid(id) | Outcome::Shared(id, _)
                if allow_expired || !id.is_expired(now - skew) =>
            {
                id
            }
            Outcome::Valid(_) | Outcome::Shared(..) | Outcome::Invalid | Outcome::Unopened => {
                return Ok(None)
            }
        };
        if let Some(r) = &self.revocations {
            if r.is_revoked(&TokenValues::from_identity(&id)) {
                tracing::info!(token = %key.fingerprint, audit_id = id.audit_id(), "token revoked");
                self.metrics
                    .local_decisions
                    .with_label_values(&["revoked"])
                    .inc();
                // Rare: boxed, so that its future does not weigh on every request's.
                Box::pin(self.cache.invalidate(&key)).await;
                return Ok(None);
            }
        }
        Ok(Some(id))
    }

    /// Keystone's `allow_expired_window`, as configured for revocation pruning.
    fn allow_expired_window(&self) -> i64 {
        self.settings
            .revocation
            .map_or(172_800, |r| r.poll.allow_expired_window)
    }

    /// A cache miss: decide locally when possible, else ask Keystone.
    async fn resolve(
        &self,
        token: &Token,
        allow_expired: bool,
        now: i64,
    ) -> Result<Outcome, keystone::Error> {
        let mut decoded = None;
        if let Some(local) = &self.local {
            let count = |label: &str| {
                self.metrics
                    .local_decisions
                    .with_label_values(&[label])
                    .inc();
            };
            let window = allow_expired.then(|| self.allow_expired_window());
            let decoding =
                tracing::info_span!(target: crate::trace::TARGET, "stonegate.local_decode");
            let d = match decoding.in_scope(|| local.decode(token, now, window)) {
                Ok(d) => d,
                Err(r) => {
                    count(r.label());
                    tracing::debug!(token = %token.fingerprint(), reason = %r, "rejected locally");
                    return Ok(if r.keys_may_lag() {
                        Outcome::Unopened
                    } else {
                        Outcome::Invalid
                    });
                }
            };
            let limit = self
                .settings
                .revocation
                .map_or(i64::MAX, |r| r.staleness_limit);
            let stale = self
                .revocations
                .as_ref()
                .is_some_and(|r| r.is_stale(now, limit));
            if !local.settings().enrich {
                if stale {
                    return Err(keystone::Error::RevocationStale);
                }
                if self
                    .revocations
                    .as_ref()
                    .is_some_and(|r| r.is_revoked(&d.token_values()))
                {
                    count("revoked");
                    return Ok(Outcome::Invalid);
                }
                return Ok(match local::identity(&d, None) {
                    Ok(id) => {
                        self.metrics.local_valid();
                        Outcome::Valid(Arc::new(id))
                    }
                    Err(r) => {
                        count(r.label());
                        Outcome::Invalid
                    }
                });
            }
            if !stale && !d.needs_online() {
                match local.enrichment(&d).await {
                    Some(template) => {
                        self.metrics.enrichment(true);
                        if let Ok(id) = local::identity(&d, Some(&template)) {
                            self.metrics.local_valid();
                            return Ok(Outcome::Valid(Arc::new(id)));
                        }
                    }
                    None => self.metrics.enrichment(false),
                }
            }
            count("online");
            decoded = Some(d);
        }
        // The shared cache holds ordinary online validations only.
        let shared = self
            .shared
            .as_ref()
            .filter(|_| self.local.is_none() && !allow_expired);
        if let Some(shared) = shared {
            let get = tracing::info_span!(
                target: crate::trace::TARGET,
                "stonegate.shared_cache",
                operation = "get",
            );
            if let Some(hit) = shared.get(token).instrument(get).await {
                // Access rules are checked against the catalog: an entry
                // written without one is not enough for such a token.
                let id = hit.identity;
                if !id.has_access_rules() || id.catalog.is_some() {
                    // Reused locally no longer than the shared entry lives.
                    let left = hit.ttl.unwrap_or(self.settings.token_cache_time);
                    return Ok(Outcome::Shared(Arc::new(id), left));
                }
            }
        }
        let (outcome, body) = self.validate_online(token, allow_expired).await?;
        if let (Some(shared), Outcome::Valid(id), Some(body)) = (shared, &outcome, &body) {
            let ttl = self.settings.token_cache_time.min(id.lifetime_left(now));
            let set = tracing::info_span!(
                target: crate::trace::TARGET,
                "stonegate.shared_cache",
                operation = "set",
            );
            shared.set(token, body, ttl).instrument(set).await;
        }
        if let (Some(local), Some(d), Outcome::Valid(id)) = (&self.local, &decoded, &outcome) {
            local.learn(d, id.clone()).await;
        }
        Ok(outcome)
    }

    /// Asks Keystone (`GET /v3/auth/tokens`); a valid answer comes with
    /// Keystone's body.
    async fn validate_online(
        &self,
        token: &Token,
        allow_expired: bool,
    ) -> Result<(Outcome, Option<bytes::Bytes>), keystone::Error> {
        let catalog = self.settings.include_service_catalog;
        let opts = ValidateOptions {
            allow_expired,
            catalog,
        };
        let span = tracing::info_span!(
            target: crate::trace::TARGET,
            "stonegate.keystone_validation",
            otel.kind = "client",
        );
        let mut v = self
            .keystone
            .validate(token, opts)
            .instrument(span.clone())
            .await?;
        // Access rules are checked against the catalog: fetch it if the
        // first answer had none.
        if let Validation::Valid { identity: id, .. } = &v {
            if id.has_access_rules() && !catalog {
                v = self
                    .keystone
                    .validate(
                        token,
                        ValidateOptions {
                            catalog: true,
                            ..opts
                        },
                    )
                    .instrument(span)
                    .await?;
            }
        }
        Ok(match v {
            Validation::Valid { identity, body } => {
                (Outcome::Valid(Arc::from(identity)), Some(body))
            }
            Validation::Invalid => (Outcome::Invalid, None),
        })
    }
}

/// Whether `id` may be used with the request's client certificate: always
/// when its token is not certificate-bound, else only with the certificate
/// whose thumbprint it names.
fn with_its_certificate(id: &Identity, certificate: Option<&Thumbprint>) -> bool {
    let Some(bound) = id.cert_thumbprint() else {
        return true;
    };
    let ok = certificate.is_some_and(|c| c.matches(bound));
    if !ok {
        tracing::info!(
            audit_id = id.audit_id(),
            certificate = certificate.is_some(),
            "certificate-bound token without its certificate"
        );
    }
    ok
}
