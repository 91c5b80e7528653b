//! `[[forward_auth]]`: the endpoints answering an ingress proxy's auth
//! subrequests, as written ([`Section`], one per endpoint) and checked (the
//! [`Endpoint`]s themselves).

use http::StatusCode;
use serde::Deserialize;

use super::{Endpoint, Flavor};
use crate::settings::{problem, Problem};

/// `[[forward_auth]]`: one endpoint answering an ingress proxy's auth subrequests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `nginx`, `traefik` or `envoy`: whose headers carry the original method and path.
    pub flavor: String,
    /// Path of the endpoint (for `envoy`, a prefix followed by the original path).
    pub path: String,
    /// Status answered when Keystone is unavailable.
    #[serde(default = "default_unavailable_status")]
    pub unavailable_status: u16,
}

fn default_unavailable_status() -> u16 {
    503
}

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

    /// Checks one endpoint, its problems named under `key`.
    pub fn build(&self, p: &mut Vec<Problem>, key: &str) -> Option<Endpoint> {
        let fa = self;
        let flavor = match fa.flavor.as_str() {
            "nginx" => Some(Flavor::Nginx),
            "traefik" => Some(Flavor::Traefik),
            "envoy" => Some(Flavor::Envoy),
            other => {
                problem(
                    p,
                    &format!("{key}.flavor"),
                    &format!("{other:?} is not one of \"nginx\", \"traefik\", \"envoy\""),
                );
                None
            }
        };
        if !fa.path.starts_with('/') || fa.path.contains(['?', '#']) {
            problem(
                p,
                &format!("{key}.path"),
                "must be an absolute path without query",
            );
        }
        let status = match StatusCode::from_u16(fa.unavailable_status) {
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
            path: fa.path.trim_end_matches('/').to_owned(),
            unavailable_status: status?,
        })
    }
}
