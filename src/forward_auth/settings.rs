//! `[[forward_auth]]`: the endpoints answering an ingress proxy's auth
//! subrequests, as written ([`Section`], one per endpoint) and checked (the
//! [`Endpoint`]s themselves).

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Deserialize;

use super::{Endpoint, Flavor};
use crate::{
    routes,
    settings::{problem, Problem},
    validator::{ServiceProfile, ServiceProfiles},
};

/// The `context_extensions` key that names a route's service profile,
/// unless `selector` says otherwise.
pub const DEFAULT_SELECTOR: &str = "stonegate_service";

/// `[[forward_auth]]`: one endpoint answering an ingress proxy's auth subrequests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `nginx`, `traefik`, `envoy` or `envoy-grpc`: whose conventions carry
    /// the original method and path.
    pub flavor: String,
    /// Path of the endpoint (for `envoy`, a prefix followed by the original
    /// path); required, except for `envoy-grpc`, whose path is the gRPC
    /// service's.
    #[serde(default)]
    pub path: Option<String>,
    /// Status answered when Keystone is unavailable (503); not for
    /// `envoy-grpc`, which fails the RPC with UNAVAILABLE.
    #[serde(default)]
    pub unavailable_status: Option<u16>,
    /// `envoy-grpc` only: the `context_extensions` key (Envoy's per-route
    /// `ExtAuthzPerRoute.check_settings`) whose value names the route's
    /// service profile in `services` (default `stonegate_service`).
    #[serde(default)]
    pub selector: Option<String>,
    /// `envoy-grpc` only: the service profiles a route may select, by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSection>,
}

/// `[forward_auth.services.<name>]` (`envoy-grpc`): one service behind the
/// gateway, decided with its own catalog type and public routes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// The service's catalog type, which application-credential access rules name.
    pub service_type: String,
    /// Its routes that need no token (`[routes] public` is the default
    /// profile's, not this one's).
    #[serde(default)]
    pub public: Vec<routes::PublicSection>,
    /// Let CORS preflight requests through on this service.
    #[serde(default)]
    pub allow_cors_preflight: bool,
}

/// The status answered when Keystone is unavailable, unless configured.
const DEFAULT_UNAVAILABLE_STATUS: u16 = 503;

impl Section {
    /// Checks the endpoints (`[[forward_auth]]` entries), recording problems
    /// in `p` (entries with one are left out).
    pub fn build_all(sections: &[Self], p: &mut Vec<Problem>) -> Vec<Endpoint> {
        let mut forward_auth = Vec::new();
        for (i, fa) in sections.iter().enumerate() {
            let key = format!("forward_auth[{i}]");
            if let Some(endpoint) = fa.build(p, &key) {
                forward_auth.push(endpoint);
            }
        }
        forward_auth
    }

    /// The service profiles of the `envoy-grpc` entries, and their selector
    /// key; problems in `p` (profiles on another flavor, a name given twice,
    /// an empty selector or service type, bad public routes).
    pub fn services_all(sections: &[Self], p: &mut Vec<Problem>) -> ServiceProfiles {
        let mut services = ServiceProfiles {
            selector: DEFAULT_SELECTOR.to_owned(),
            by_name: BTreeMap::new(),
        };
        for (i, fa) in sections.iter().enumerate() {
            let key = format!("forward_auth[{i}]");
            if fa.flavor != "envoy-grpc" {
                if fa.selector.is_some() {
                    problem(
                        p,
                        &format!("{key}.selector"),
                        "only the envoy-grpc flavor reads context_extensions; remove the key",
                    );
                }
                if !fa.services.is_empty() {
                    problem(p, &format!("{key}.services"), "service profiles are selected by envoy-grpc's context_extensions only; remove the table");
                }
                continue;
            }
            match fa.selector.as_deref() {
                Some("") => problem(
                    p,
                    &format!("{key}.selector"),
                    "must name a context_extensions key, e.g. \"stonegate_service\"",
                ),
                Some(s) => s.clone_into(&mut services.selector),
                None => {}
            }
            for (name, svc) in &fa.services {
                let at = format!("{key}.services.{name}");
                if svc.service_type.trim().is_empty() {
                    problem(
                        p,
                        &format!("{at}.service_type"),
                        "must be the service's catalog type, e.g. \"image\"",
                    );
                }
                let public_routes = routes::Section {
                    allow_cors_preflight: svc.allow_cors_preflight,
                    public: svc.public.clone(),
                }
                .build_at(p, &at);
                let profile = ServiceProfile {
                    service_type: Some(svc.service_type.clone()),
                    public_routes,
                };
                if services.by_name.insert(name.clone(), profile).is_some() {
                    problem(
                        p,
                        &at,
                        "this service profile is defined twice (in two envoy-grpc entries); keep one",
                    );
                }
            }
        }
        services
    }

    /// Checks one endpoint, its problems named under `key`.
    pub fn build(&self, p: &mut Vec<Problem>, key: &str) -> Option<Endpoint> {
        let fa = self;
        let flavor = match fa.flavor.as_str() {
            "nginx" => Some(Flavor::Nginx),
            "traefik" => Some(Flavor::Traefik),
            "envoy" => Some(Flavor::Envoy),
            "envoy-grpc" => Some(Flavor::EnvoyGrpc),
            other => {
                problem(
                    p,
                    &format!("{key}.flavor"),
                    &format!(
                        "{other:?} is not one of \"nginx\", \"traefik\", \"envoy\", \"envoy-grpc\""
                    ),
                );
                None
            }
        };
        if flavor == Some(Flavor::EnvoyGrpc) {
            if fa.path.is_some() {
                problem(
                    p,
                    &format!("{key}.path"),
                    "envoy-grpc serves the fixed gRPC service envoy.service.auth.v3.Authorization; remove the key",
                );
            }
            if fa.unavailable_status.is_some() {
                problem(
                    p,
                    &format!("{key}.unavailable_status"),
                    "envoy-grpc fails the RPC with UNAVAILABLE when Keystone is down and Envoy answers its status_on_error; remove the key",
                );
            }
            return Some(Endpoint {
                flavor: Flavor::EnvoyGrpc,
                path: super::envoy_grpc::AUTHORIZATION_PREFIX
                    .trim_end_matches('/')
                    .to_owned(),
                unavailable_status: StatusCode::SERVICE_UNAVAILABLE,
            });
        }
        let path = fa.path.as_deref().unwrap_or_default();
        if fa.path.is_none() {
            problem(
                p,
                &format!("{key}.path"),
                "required: the endpoint's path, e.g. \"/_stonegate/auth\"",
            );
        } else if !path.starts_with('/') || path.contains(['?', '#']) {
            problem(
                p,
                &format!("{key}.path"),
                "must be an absolute path without query",
            );
        }
        let status =
            match StatusCode::from_u16(fa.unavailable_status.unwrap_or(DEFAULT_UNAVAILABLE_STATUS))
            {
                Ok(s) if s.is_client_error() || s.is_server_error() => Some(s),
                _ => {
                    problem(
                        p,
                        &format!("{key}.unavailable_status"),
                        "must be a 4xx or 5xx status",
                    );
                    None
                }
            };
        Some(Endpoint {
            flavor: flavor?,
            path: path.trim_end_matches('/').to_owned(),
            unavailable_status: status?,
        })
    }
}
