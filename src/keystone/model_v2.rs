//! Identity v2.0's token document (`{"access": {...}}`, the answer to
//! `GET /v2.0/tokens/{token}`) and its conversion to the same [`Identity`]
//! the v3 path builds, read as keystoneauth's `AccessInfoV2` reads it: the
//! tenant is the project, role names come from `user.roles` and role ids from
//! `metadata.roles`, there are no domains, `is_admin_project` is always true,
//! and the catalog is forwarded as is (it is already v2-shaped).

use std::sync::Arc;

use serde::{
    de::{MapAccess, SeqAccess, Visitor},
    Deserialize, Deserializer,
};

use super::model::{py_str, ModelError};
use crate::identity::{intern, AuditIds, Catalog, Extras, Identity, Named, Names, Project, Scope};

#[derive(Deserialize)]
struct Envelope {
    access: AccessDoc,
}

#[derive(Deserialize)]
struct AccessDoc {
    token: TokenDoc,
    user: UserDoc,
    #[serde(default)]
    metadata: Option<MetadataDoc>,
    #[serde(rename = "serviceCatalog", default)]
    service_catalog: Option<Vec<ServiceDoc>>,
    #[serde(default)]
    trust: Option<TrustDoc>,
}

#[derive(Deserialize)]
struct TokenDoc {
    expires: String,
    #[serde(default)]
    issued_at: Option<String>,
    #[serde(default)]
    audit_ids: Vec<String>,
    #[serde(default)]
    tenant: Option<TenantDoc>,
    /// Pre-Diablo Keystone: a bare tenant id (also used as its name).
    #[serde(rename = "tenantId", default)]
    tenant_id: Option<String>,
}

#[derive(Deserialize)]
struct TenantDoc {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct UserDoc {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    roles: Vec<RoleDoc>,
    /// Pre-Grizzly Keystone put the tenant on the user.
    #[serde(rename = "tenantId", default)]
    tenant_id: Option<String>,
    #[serde(rename = "tenantName", default)]
    tenant_name: Option<String>,
}

#[derive(Deserialize)]
struct RoleDoc {
    name: String,
}

#[derive(Deserialize)]
struct MetadataDoc {
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize)]
struct TrustDoc {
    id: String,
}

/// One catalog entry: its type (for access rules) and, for rendering, the
/// whole entry with its keys in Keystone's order.
struct ServiceDoc {
    kind: Option<String>,
    raw: Json,
}

impl<'de> Deserialize<'de> for ServiceDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Json::deserialize(d)?;
        let kind = match &raw {
            Json::Object(entries) => entries.iter().find_map(|(k, v)| match v {
                Json::String(s) if k == "type" => Some(s.clone()),
                _ => None,
            }),
            _ => None,
        };
        Ok(ServiceDoc { kind, raw })
    }
}

/// Parses a v2.0 validation response body into the [`Identity`] of a token
/// stonegate accepts: `read_access`, and a tenant, which keystonemiddleware
/// requires of every v2.0 token, user's or service's (its
/// `AuthProtocol._validate_token`: "Unable to determine service tenancy").
pub fn parse_access(body: &[u8]) -> Result<Identity, ModelError> {
    let identity = read_access(body)?;
    match identity.scope {
        Scope::Unscoped => Err(ModelError::NoTenancy),
        _ => Ok(identity),
    }
}

/// Reads a v2.0 validation response body as keystoneauth's `AccessInfoV2`
/// does. The user id and the expiry are required; a token without a tenant
/// reads as unscoped.
fn read_access(body: &[u8]) -> Result<Identity, ModelError> {
    let Envelope { access: a } = serde_json::from_slice(body)?;
    let expires_at = parse_time(&a.token.expires).ok_or(ModelError::Field("token.expires"))?;
    let issued_at = match &a.token.issued_at {
        Some(s) => parse_time(s).ok_or(ModelError::Field("token.issued_at"))?,
        None => 0,
    };
    if a.user.id.as_deref().unwrap_or_default().is_empty() {
        return Err(ModelError::Field("user.id"));
    }
    // keystoneauth's AccessInfoV2.project_id / project_name, in its order.
    let (tenant_id, tenant_name) = match a.token.tenant {
        Some(t) => (t.id, t.name),
        None => (
            a.user.tenant_id.or_else(|| a.token.tenant_id.clone()),
            a.user.tenant_name.or(a.token.tenant_id),
        ),
    };
    let scope = if tenant_id.as_deref().is_some_and(|t| !t.is_empty()) {
        Scope::Project(Arc::new(Project {
            project: Named::pooled(tenant_id.as_deref(), tenant_name.as_deref()),
            domain: Named::default(),
        }))
    } else {
        Scope::Unscoped
    };
    let catalog = match &a.service_catalog {
        Some(c) => {
            let mut out = String::with_capacity(256 * c.len().max(1));
            out.push('[');
            for (i, svc) in c.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                svc.raw.write_py(&mut out);
            }
            out.push(']');
            let types: Vec<String> = c.iter().filter_map(|s| s.kind.clone()).collect();
            Some(Catalog::pooled(&types, out))
        }
        None => None,
    };
    let roles: Vec<String> = a.user.roles.into_iter().map(|r| r.name).collect();
    Ok(Identity {
        user: Named {
            id: a.user.id.map(Arc::from),
            name: a.user.name.or(a.user.username).map(Arc::from),
        },
        user_domain: Named::default(),
        scope,
        roles: intern::list(&roles),
        role_ids: intern::list(&a.metadata.map(|m| m.roles).unwrap_or_default()),
        is_admin_project: true,
        expires_at,
        issued_at,
        audit_ids: AuditIds::new(&a.token.audit_ids),
        methods: Names::default(),
        // v2.0 names no trustor (keystoneauth's trustor_user_id is None).
        extras: Extras {
            trust_id: a.trust.map(|t| Arc::from(t.id)),
            ..Extras::default()
        }
        .boxed(),
        catalog,
        rendered: Default::default(),
    })
}

/// Seconds since the epoch of a v2.0 timestamp: RFC 3339, or without an
/// offset (`2026-01-15T22:14:05.000000`, as keystoneauth's fixture and old
/// Keystones write it), which keystoneauth reads as UTC.
pub fn parse_time(s: &str) -> Option<i64> {
    crate::clock::parse_rfc3339(s).or_else(|| crate::clock::parse_rfc3339(&format!("{s}Z")))
}

/// A JSON value that keeps its objects' key order, so it can be written back
/// as Python's `json.dumps` writes the dict `json.loads` made of it.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// `json.dumps(value)` with Python's default separators and `ensure_ascii`.
    fn write_py(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::String(s) => py_str(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_py(out);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_str(out, k);
                    out.push_str(": ");
                    v.write_py(out);
                }
                out.push('}');
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(v)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("non-finite number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                // A repeated key keeps its first position and its last value,
                // as a Python dict built by json.loads does.
                let mut entries: Vec<(String, Json)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Json>()? {
                    match entries.iter_mut().find(|(key, _)| *key == k) {
                        Some(e) => e.1 = v,
                        None => entries.push((k, v)),
                    }
                }
                Ok(Json::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Documents made by keystoneauth's own `keystoneauth1.fixture.V2Token`,
    /// with what keystonemiddleware derived from them (see
    /// `tests/fixtures/v2/generate.py`).
    const FIXTURES: &str = include_str!("../../tests/fixtures/v2/access.json");

    fn cases() -> Vec<(String, serde_json::Value)> {
        let all: serde_json::Value = serde_json::from_str(FIXTURES).unwrap();
        all.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn case(name: &str) -> (Identity, serde_json::Value) {
        let (_, c) = cases().into_iter().find(|(n, _)| n == name).unwrap();
        let body = c["body"].as_str().unwrap().to_owned();
        (read_access(body.as_bytes()).unwrap(), c["expected"].clone())
    }

    #[test]
    fn every_fixture_maps_like_keystoneauth() {
        for (name, c) in cases() {
            let id = read_access(c["body"].as_str().unwrap().as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let want = &c["expected"];
            let s = |v: &serde_json::Value| v.as_str().map(Arc::<str>::from);
            assert_eq!(id.user.id, s(&want["user_id"]), "{name}");
            assert_eq!(id.user.name, s(&want["username"]), "{name}");
            let (pid, pname) = match &id.scope {
                Scope::Project(p) => (p.project.id.clone(), p.project.name.clone()),
                Scope::Unscoped => (None, None),
                other => panic!("{name}: v2 token scoped to {other:?}"),
            };
            assert_eq!(pid, s(&want["project_id"]), "{name}");
            assert_eq!(pname, s(&want["project_name"]), "{name}");
            let strings = |v: &serde_json::Value| -> Names {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| Arc::from(x.as_str().unwrap()))
                    .collect()
            };
            assert_eq!(id.roles, strings(&want["role_names"]), "{name}");
            assert_eq!(id.role_ids, strings(&want["role_ids"]), "{name}");
            assert_eq!(id.expires_at, want["expires"].as_i64().unwrap(), "{name}");
            assert_eq!(id.audit_id(), want["audit_id"].as_str(), "{name}");
            assert_eq!(id.trust_id(), s(&want["trust_id"]).as_deref(), "{name}");
            assert!(id.is_admin_project, "{name}");
            assert_eq!(id.user_domain, Named::default(), "{name}");
            assert_eq!(
                id.service_catalog(),
                want["x_service_catalog"].as_str(),
                "{name}: X-Service-Catalog differs from keystonemiddleware's json.dumps"
            );
        }
    }

    #[test]
    fn project_token_is_a_project_scope_without_domains() {
        let (id, _) = case("project");
        let Scope::Project(p) = &id.scope else {
            panic!("{:?}", id.scope)
        };
        assert_eq!(p.domain, Named::default());
        assert_eq!(
            id.catalog_types(),
            [Arc::from("identity"), Arc::from("compute")]
        );
        assert_eq!(id.audit_ids.len(), 2);
    }

    #[test]
    fn a_tenantless_token_reads_as_unscoped_and_is_refused_as_keystonemiddleware_does() {
        let (id, _) = case("unscoped");
        assert_eq!(id.scope, Scope::Unscoped);
        assert!(id.roles.is_empty());
        let (_, c) = cases().into_iter().find(|(n, _)| n == "unscoped").unwrap();
        assert!(matches!(
            parse_access(c["body"].as_str().unwrap().as_bytes()),
            Err(ModelError::NoTenancy)
        ));
        let (_, c) = cases().into_iter().find(|(n, _)| n == "project").unwrap();
        assert!(parse_access(c["body"].as_str().unwrap().as_bytes()).is_ok());
    }

    #[test]
    fn missing_expiry_or_user_id_is_malformed() {
        let (_, c) = cases().into_iter().find(|(n, _)| n == "project").unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(c["body"].as_str().unwrap()).unwrap();
        let mut no_expiry = doc.clone();
        no_expiry["access"]["token"]
            .as_object_mut()
            .unwrap()
            .remove("expires");
        assert!(parse_access(no_expiry.to_string().as_bytes()).is_err());
        doc["access"]["token"]["expires"] = "soon".into();
        assert!(parse_access(doc.to_string().as_bytes()).is_err());
        doc["access"]["token"]["expires"] = "2026-01-15T22:14:05Z".into();
        doc["access"]["user"].as_object_mut().unwrap().remove("id");
        assert!(matches!(
            parse_access(doc.to_string().as_bytes()),
            Err(ModelError::Field("user.id"))
        ));
    }

    #[test]
    fn timestamps_with_and_without_offset() {
        assert_eq!(parse_time("2026-01-15T22:14:05Z"), Some(1768515245));
        assert_eq!(parse_time("2026-01-15T22:14:05.000000"), Some(1768515245));
        assert_eq!(parse_time("2026-01-15T23:14:05+01:00"), Some(1768515245));
        assert_eq!(parse_time("yesterday"), None);
    }
}
