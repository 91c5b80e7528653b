//! `[routes]`: what passes without a token, as written ([`Section`]) and
//! checked (the [`PublicRoutes`] themselves).

use http::Method;
use serde::Deserialize;

use super::{PublicRoute, PublicRoutes};
use crate::settings::{problem, Problem};

/// `[routes]`: what passes without a token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Let CORS preflight requests (`OPTIONS` + `Origin` + `Access-Control-Request-Method`) through.
    #[serde(default)]
    pub allow_cors_preflight: bool,
    /// `{ method = "GET", path = "/" }` entries.
    #[serde(default)]
    pub public: Vec<PublicSection>,
}

/// One `[[routes.public]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicSection {
    /// HTTP method.
    pub method: String,
    /// Path pattern (`*`/`{x}` one segment, `**` anything).
    pub path: String,
    /// Let requests on this route upgrade (WebSocket...) without a token.
    #[serde(default)]
    pub upgrade: bool,
}

impl Section {
    /// Checks every entry, recording problems in `p` (entries with one are
    /// left out).
    pub fn build(&self, p: &mut Vec<Problem>) -> PublicRoutes {
        self.build_at(p, "routes")
    }

    /// [`Section::build`] for routes written under `at` (problems are
    /// named `<at>.public[i]...`).
    pub fn build_at(&self, p: &mut Vec<Problem>, at: &str) -> PublicRoutes {
        let mut public = Vec::new();
        for (i, r) in self.public.iter().enumerate() {
            let key = format!("{at}.public[{i}]");
            match Method::from_bytes(r.method.to_ascii_uppercase().as_bytes()) {
                Ok(method) if r.path.starts_with('/') => {
                    public.push(PublicRoute::new(method, &r.path).with_upgrade(r.upgrade))
                }
                Ok(_) => problem(p, &format!("{key}.path"), "must start with /"),
                Err(_) => problem(p, &format!("{key}.method"), "is not an HTTP method"),
            }
        }
        PublicRoutes::new(public, self.allow_cors_preflight)
    }
}
