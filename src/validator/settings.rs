//! What the validator applies to every request, assembled from the checked
//! sections (`[keystone_authtoken]`'s policy, `[cache]`, `[routes]`,
//! `[fernet]`, `[revocation]`, the shared cache, `[request_id]`, `[oauth2]`).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use http::{header::WWW_AUTHENTICATE, HeaderMap, HeaderValue};

use crate::{cache, keystone, local, oauth2, policy, request_id, revocation, routes, shared_cache};

/// The `WWW-Authenticate` challenges of a 401: Keystone's
/// (`Keystone uri="..."`, as keystonemiddleware), then RFC 6750's
/// (`Bearer realm="...", error="invalid_token"`) when `[oauth2] bearer`
/// accepts Bearer tokens.
#[derive(Debug, Clone)]
pub struct Challenges {
    keystone: HeaderValue,
    bearer: Option<HeaderValue>,
}

impl Challenges {
    /// Keystone's challenge, and the Bearer one when Bearer tokens are read.
    pub fn new(keystone: HeaderValue, bearer: Option<HeaderValue>) -> Self {
        Self { keystone, bearer }
    }

    /// Keystone's challenge (a refused password login names only that one).
    pub fn keystone(&self) -> &HeaderValue {
        &self.keystone
    }

    /// Sets the challenges on a 401's headers, replacing any there.
    pub fn set_on(&self, headers: &mut HeaderMap) {
        headers.insert(WWW_AUTHENTICATE, self.keystone.clone());
        if let Some(bearer) = &self.bearer {
            headers.append(WWW_AUTHENTICATE, bearer.clone());
        }
    }
}

/// A service behind a gateway that fronts several (Envoy's per-route
/// `ext_authz` `context_extensions` selects it): what differs from one
/// service to the next — its catalog type, which application-credential
/// access rules name, and the routes it serves without a token.
#[derive(Debug, Clone)]
pub struct ServiceProfile {
    /// The service's catalog type (`None`: tokens with access rules are refused).
    pub service_type: Option<String>,
    /// Its routes that need no token (instead of `[routes]`).
    pub public_routes: routes::PublicRoutes,
}

/// The named service profiles a request may select, and the key that
/// selects one (`context_extensions` of the `envoy-grpc` door).
#[derive(Debug, Clone, Default)]
pub struct ServiceProfiles {
    /// The `context_extensions` key whose value names the profile.
    pub selector: String,
    /// The profiles, by name.
    pub by_name: BTreeMap<String, ServiceProfile>,
}

/// The compiled authentication policy (what the validator and the front
/// doors need), assembled from the checked sections.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `WWW-Authenticate` challenges of a 401 (already formatted).
    pub challenges: Challenges,
    /// Whether `Authorization: Bearer` is a token source (`[oauth2]`).
    pub bearer: bool,
    /// Where trusted ingresses pass the client certificate (`[oauth2]`).
    pub certificate_header: Option<oauth2::CertificateHeader>,
    /// Forward invalid requests marked `Invalid`.
    pub delay_auth_decision: bool,
    /// Cache lifetime of a validation.
    pub token_cache_time: Duration,
    /// Lifetime of a negative (invalid token) entry.
    pub negative_ttl: Duration,
    /// Cache capacity in bytes.
    pub cache_capacity_bytes: u64,
    /// Set `X-Service-Catalog`.
    pub include_service_catalog: bool,
    /// Service token role list.
    pub service_token_roles: Vec<String>,
    /// Service token must hold one of the roles.
    pub service_token_roles_required: bool,
    /// This service's catalog type, for access rules.
    pub service_type: Option<String>,
    /// Routes that need no token.
    pub public_routes: routes::PublicRoutes,
    /// Named service profiles (another service type and public routes),
    /// for doors that serve several services.
    pub services: ServiceProfiles,
    /// Local Fernet validation, when configured.
    pub local: Option<local::Settings>,
    /// Revocation polling, when enabled.
    pub revocation: Option<revocation::Settings>,
    /// The shared second-level cache (memcached or Redis), when configured.
    pub shared_cache: Option<shared_cache::Settings>,
    /// Per-route authorization (`[authorization]`), when configured.
    pub authorization: Option<Arc<policy::Policy>>,
    /// Whose `X-OpenStack-Request-ID` the front doors keep.
    pub request_id: request_id::Settings,
}

impl Settings {
    /// The policy assembled from the checked sections.
    pub fn new(
        policy: keystone::Policy,
        cache: cache::Settings,
        public_routes: routes::PublicRoutes,
        local: Option<local::Settings>,
        revocation: Option<revocation::Settings>,
        shared_cache: Option<shared_cache::Settings>,
        request_id: request_id::Settings,
    ) -> Self {
        Self {
            challenges: Challenges::new(policy.www_authenticate, None),
            bearer: false,
            certificate_header: None,
            delay_auth_decision: policy.delay_auth_decision,
            token_cache_time: policy.token_cache_time,
            negative_ttl: cache.negative_ttl,
            cache_capacity_bytes: cache.capacity_bytes,
            include_service_catalog: policy.include_service_catalog,
            service_token_roles: policy.service_token_roles,
            service_token_roles_required: policy.service_token_roles_required,
            service_type: policy.service_type,
            public_routes,
            services: ServiceProfiles::default(),
            local,
            revocation,
            shared_cache,
            authorization: None,
            request_id,
        }
    }

    /// The same settings, with `[oauth2]`'s token sources: Bearer tokens
    /// read, and their challenge (`realm`: the URI Keystone's names) on 401.
    pub fn with_oauth2(mut self, oauth2: &oauth2::Settings, realm: &str) -> Self {
        self.bearer = oauth2.bearer;
        self.certificate_header = oauth2.client_certificate_header.clone();
        let bearer = oauth2
            .bearer
            .then(|| oauth2::bearer_challenge(realm))
            .flatten();
        self.challenges = Challenges::new(self.challenges.keystone.clone(), bearer);
        self
    }

    /// The same settings, with named service profiles.
    pub fn with_services(mut self, services: ServiceProfiles) -> Self {
        self.services = services;
        self
    }

    /// The same settings, with `[authorization]`'s policy.
    pub fn with_authorization(mut self, authorization: Option<policy::Policy>) -> Self {
        self.authorization = authorization.map(Arc::new);
        self
    }
}
