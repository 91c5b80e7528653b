//! The audit map: keystonemiddleware's `api_audit_map.conf` (its
//! `audit_map_file`), read the same way, and what keystonemiddleware's
//! `OpenStackAuditApi` computes from it: the CADF action of a request, the
//! target's type URI from the path, and the target service from the token's
//! catalog.
//!
//! ```ini
//! [DEFAULT]
//! target_endpoint_type = compute
//! [path_keywords]
//! servers = server
//! [custom_actions]
//! detail = read/list
//! [service_endpoints]
//! compute = service/compute
//! ```
//!
//! As Python's `configparser` reads it: keys lower-cased, and `[DEFAULT]`'s
//! keys belong to every section.

use std::collections::HashMap;

use http::Method;
use serde_json::{json, Value};

use crate::settings::ini;

/// CADF's "unknown".
pub const UNKNOWN: &str = "unknown";

/// A parsed audit map (empty: every action from the method alone, every
/// target unknown unless `[keystone_authtoken] service_type` names it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Map {
    path_kw: HashMap<String, String>,
    custom_actions: HashMap<String, String>,
    service_endpoints: HashMap<String, String>,
    default_target_endpoint_type: Option<String>,
}

/// The service a request addresses, from the catalog (keystonemiddleware's
/// `Service` tuple).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Service {
    type_: String,
    name: String,
    id: String,
    /// admin, private (internal), public URLs; `None` for the unknown service.
    endpoints: Option<[String; 3]>,
}

impl Map {
    /// Parses the text of an audit map file; the error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let sections = ini::parse(text).map_err(|e| e.to_string())?;
        let entries = |name: &str| -> HashMap<String, String> {
            let mut out = HashMap::new();
            // configparser: DEFAULT's keys are in every section, the section's win.
            for section in ["DEFAULT", name] {
                if let Some(s) = sections.iter().find(|s| s.name == section) {
                    for e in &s.entries {
                        out.insert(e.key.to_lowercase(), e.value.clone());
                    }
                }
            }
            out
        };
        let default_target_endpoint_type = sections
            .iter()
            .find(|s| s.name == "DEFAULT")
            .and_then(|s| {
                s.entries
                    .iter()
                    .rev()
                    .find(|e| e.key.eq_ignore_ascii_case("target_endpoint_type"))
            })
            .map(|e| e.value.clone());
        let has = |name: &str| sections.iter().any(|s| s.name == name);
        let section = |name: &str| {
            if has(name) {
                entries(name)
            } else {
                HashMap::new()
            }
        };
        Ok(Self {
            path_kw: section("path_keywords"),
            custom_actions: section("custom_actions"),
            service_endpoints: section("service_endpoints"),
            default_target_endpoint_type,
        })
    }

    /// The CADF action of `method` on `path`, as keystonemiddleware's
    /// `get_action`; a POST to `.../action` is `update` (the body, which
    /// keystonemiddleware reads for the action's name, streams on unread).
    pub fn action(&self, method: &Method, path: &str) -> String {
        let path = path.strip_suffix('/').unwrap_or(path);
        let ending = clean(&path[path.rfind('/').map_or(0, |i| i + 1)..]);
        let with_method = format!("{ending}/{}", method.as_str().to_ascii_lowercase());
        if let Some(a) = self.custom_actions.get(&with_method) {
            return a.clone();
        }
        if let Some(a) = self.custom_actions.get(ending) {
            return a.clone();
        }
        let known = self.path_kw.contains_key(ending);
        match *method {
            Method::POST if ending == "action" => "update",
            Method::POST if known => "create",
            Method::POST => "update",
            Method::GET if known => "read/list",
            Method::GET | Method::HEAD => "read",
            Method::PUT | Method::PATCH => "update",
            Method::DELETE => "delete",
            _ => UNKNOWN,
        }
        .to_owned()
    }

    /// `service_type` followed by the path's keywords and what follows them
    /// (keystonemiddleware's `_build_typeURI`).
    fn type_uri(&self, path: &str, service_type: &str) -> String {
        let mut uri = service_type.to_owned();
        let mut prev: Option<&str> = None;
        for key in path.split('/') {
            let key = clean(key);
            if self.path_kw.contains_key(key) {
                uri.push('/');
                uri.push_str(key);
            } else if let Some(kw) = prev.and_then(|p| self.path_kw.get(p)) {
                uri.push('/');
                uri.push_str(kw);
            }
            prev = Some(key);
        }
        uri
    }

    /// The CADF target of a request for `path` with `Host` `host` (and
    /// whether it came over TLS), found in the v2-shaped `catalog`
    /// (`X-Service-Catalog`) as keystonemiddleware finds it: the service one
    /// of whose admin or public URLs has the request's host and port, else
    /// the last of `target_endpoint_type` (or, when the map names none,
    /// `service_type`), else unknown.
    pub fn target(
        &self,
        path: &str,
        host: Option<&str>,
        https: bool,
        catalog: Option<&str>,
        service_type: Option<&str>,
    ) -> Value {
        let service = self.service(host, https, catalog, service_type);
        let type_uri = if service.type_ == UNKNOWN {
            UNKNOWN.to_owned()
        } else {
            self.type_uri(path, &service.type_)
        };
        let mut target = json!({"typeURI": type_uri, "id": service.id, "name": service.name});
        if let Some([admin, private, public]) = service.endpoints {
            target["addresses"] = json!([
                {"name": "admin", "url": admin},
                {"name": "private", "url": private},
                {"name": "public", "url": public},
            ]);
        }
        target
    }

    fn service(
        &self,
        host: Option<&str>,
        https: bool,
        catalog: Option<&str>,
        service_type: Option<&str>,
    ) -> Service {
        let unknown = Service {
            type_: UNKNOWN.into(),
            name: UNKNOWN.into(),
            id: UNKNOWN.into(),
            endpoints: None,
        };
        let Some(catalog) = catalog.and_then(|c| serde_json::from_str::<Vec<Value>>(c).ok()) else {
            return unknown;
        };
        // webob's host_url: the Host header, its port only if not the scheme's default.
        let netloc = host.map(|h| {
            let default = if https { ":443" } else { ":80" };
            h.strip_suffix(default).unwrap_or(h).to_ascii_lowercase()
        });
        let has_port = netloc.as_deref().is_some_and(|n| port_of(n).is_some());
        let default_type = self
            .default_target_endpoint_type
            .as_deref()
            .or(service_type);
        let mut default = None;
        for endp in &catalog {
            let Some(first) = endp["endpoints"].get(0) else {
                continue;
            };
            let url_netloc = |key: &str| first[key].as_str().and_then(netloc_of);
            if has_port && (url_netloc("adminURL") == netloc || url_netloc("publicURL") == netloc) {
                return self.service_info(endp);
            }
            if default_type.is_some() && endp["type"].as_str() == default_type {
                default = Some(endp);
            }
        }
        default.map_or(unknown, |e| self.service_info(e))
    }

    fn service_info(&self, endp: &Value) -> Service {
        let s = |v: &Value| v.as_str().unwrap_or(UNKNOWN).to_owned();
        let first = &endp["endpoints"][0];
        let name = s(&endp["name"]);
        Service {
            type_: endp["type"]
                .as_str()
                .and_then(|t| self.service_endpoints.get(t))
                .cloned()
                .unwrap_or_else(|| UNKNOWN.into()),
            id: first["id"]
                .as_str()
                .map_or_else(|| name.clone(), str::to_owned),
            name,
            endpoints: Some([
                s(&first["adminURL"]),
                s(&first["internalURL"]),
                s(&first["publicURL"]),
            ]),
        }
    }
}

/// A path segment without a `.json` suffix.
fn clean(segment: &str) -> &str {
    segment.strip_suffix(".json").unwrap_or(segment)
}

/// `host:port` of a URL (Python's `urlparse(url).netloc`, lower-cased).
fn netloc_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(rest[..end].to_ascii_lowercase())
}

/// The port of `host:port` (`[v6]:port` too), if any.
fn port_of(netloc: &str) -> Option<&str> {
    let (host, port) = netloc.rsplit_once(':')?;
    (!host.ends_with(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .then_some(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "[DEFAULT]\ntarget_endpoint_type = compute\n\n[path_keywords]\n\
        servers = server\nos-hosts = host\nflavors = flavor\nextensions = alias\n\n\
        [custom_actions]\ndetail = read/list\nservers/get = read/list/servers\n\n\
        [service_endpoints]\ncompute = service/compute\nidentity = service/security\n";

    #[test]
    fn actions_follow_keystonemiddleware() {
        let m = Map::parse(MAP).unwrap();
        let a = |method: Method, p: &str| m.action(&method, p);
        assert_eq!(a(Method::GET, "/v2.1/servers"), "read/list/servers");
        assert_eq!(a(Method::GET, "/v2.1/flavors"), "read/list");
        assert_eq!(a(Method::GET, "/v2.1/flavors/1"), "read");
        assert_eq!(a(Method::GET, "/v2.1/servers/detail"), "read/list");
        assert_eq!(a(Method::POST, "/v2.1/flavors"), "create");
        assert_eq!(a(Method::POST, "/v2.1/flavors/"), "create");
        assert_eq!(a(Method::POST, "/v2.1/flavors.json"), "create");
        assert_eq!(a(Method::POST, "/v2.1/servers/1/action"), "update");
        assert_eq!(a(Method::POST, "/v2.1/servers/1/metadata"), "update");
        assert_eq!(a(Method::PUT, "/v2.1/servers/1"), "update");
        assert_eq!(a(Method::PATCH, "/v2.1/servers/1"), "update");
        assert_eq!(a(Method::DELETE, "/v2.1/servers/1"), "delete");
        assert_eq!(a(Method::HEAD, "/v2.1/servers/1"), "read");
        assert_eq!(a(Method::OPTIONS, "/v2.1/servers/1"), "unknown");
        let empty = Map::default();
        assert_eq!(empty.action(&Method::GET, "/v2.1/servers"), "read");
        assert_eq!(empty.action(&Method::POST, "/v2.1/servers"), "update");
    }

    #[test]
    fn the_type_uri_names_keywords_and_what_follows_them() {
        let m = Map::parse(MAP).unwrap();
        assert_eq!(
            m.type_uri("/v2.1/servers/abc/os-hosts", "service/compute"),
            "service/compute/servers/server/os-hosts"
        );
        assert_eq!(
            m.type_uri("/v2.1/flavors.json", "service/compute"),
            "service/compute/flavors"
        );
        assert_eq!(m.type_uri("/", "service/compute"), "service/compute");
    }

    #[test]
    fn the_target_comes_from_the_catalog() {
        let m = Map::parse(MAP).unwrap();
        let catalog = r#"[{"endpoints":[{"adminURL":"http://nova:8774/v2.1","region":"R","internalURL":"http://nova-int:8774/v2.1","publicURL":"http://api.example:8774/v2.1"}],"type":"compute","name":"nova"},
            {"endpoints":[{"adminURL":"http://ks:5000/v3","region":"R","internalURL":"http://ks:5000/v3","publicURL":"http://ks:5000/v3"}],"type":"identity","name":"keystone"}]"#;
        // By host and port.
        let t = m.target("/v3/users", Some("ks:5000"), false, Some(catalog), None);
        assert_eq!(t["typeURI"], "service/security");
        assert_eq!(t["name"], "keystone");
        // By the default type.
        let t = m.target("/v2.1/servers/1", Some("other"), false, Some(catalog), None);
        assert_eq!(t["typeURI"], "service/compute/servers/server");
        assert_eq!(
            (t["id"].as_str(), t["name"].as_str()),
            (Some("nova"), Some("nova"))
        );
        assert_eq!(
            t["addresses"][1],
            json!({"name": "private", "url": "http://nova-int:8774/v2.1"})
        );
        // No catalog, or no map and no service type: unknown.
        let t = m.target("/v2.1/servers", None, false, None, None);
        assert_eq!(
            t,
            json!({"typeURI": "unknown", "id": "unknown", "name": "unknown"})
        );
        let t = Map::default().target("/x", None, false, Some(catalog), None);
        assert_eq!(t["typeURI"], "unknown");
        // No map but a service type: the service is found, its CADF type unknown.
        let t = Map::default().target("/x", None, false, Some(catalog), Some("compute"));
        assert_eq!(
            (t["typeURI"].as_str(), t["name"].as_str()),
            (Some("unknown"), Some("nova"))
        );
    }

    #[test]
    fn a_bad_file_names_the_line() {
        let e = Map::parse("[path_keywords]\nno separator here\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }
}
