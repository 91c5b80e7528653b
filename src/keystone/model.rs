//! Keystone's v3 token document (`{"token": {...}}`) and its conversion to an
//! [`Identity`]. Parsing is lenient where Keystone varies (extra keys on roles,
//! missing names) and strict where a wrong answer would be a security bug
//! (user id and expiry are required).

use std::sync::Arc;

use serde::Deserialize;

use crate::identity::{
    intern, AccessRule, ApplicationCredential, AuditIds, Catalog, Extras, Federation, Identity,
    Named, Project, Scope,
};

/// Why a validation response could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not JSON of the expected shape.
    #[error("malformed token document: {0}")]
    Json(#[from] serde_json::Error),
    /// A required field is missing or unusable.
    #[error("token document: {0}")]
    Field(&'static str),
    /// A certificate-bound token (OAuth 2.0 mTLS, RFC 8705) whose
    /// `oauth2_credential` names no `x5t#S256` thumbprint: its binding
    /// cannot be checked, so the token is invalid here (fails closed).
    #[error("certificate-bound (OAuth 2.0 mTLS) token without a usable x5t#S256 thumbprint")]
    CertificateBound,
    /// An Identity v2.0 token without a tenant: keystonemiddleware refuses
    /// it ("Unable to determine service tenancy"), so it is invalid here.
    #[error("Identity v2.0 token without a tenant (keystonemiddleware: unable to determine service tenancy)")]
    NoTenancy,
}

#[derive(Deserialize)]
struct Envelope {
    token: TokenDoc,
}

#[derive(Deserialize, Default)]
struct NamedDoc {
    id: Option<String>,
    name: Option<String>,
}

impl From<NamedDoc> for Named {
    fn from(d: NamedDoc) -> Self {
        Named::pooled(d.id.as_deref(), d.name.as_deref())
    }
}

#[derive(Deserialize)]
struct UserDoc {
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    domain: Option<NamedDoc>,
    /// Present on federated tokens.
    #[serde(rename = "OS-FEDERATION", default)]
    federation: Option<FederationDoc>,
}

/// `user."OS-FEDERATION"`: `{"groups": [{"id"}], "identity_provider": {"id"}, "protocol": {"id"}}`.
#[derive(Deserialize)]
struct FederationDoc {
    #[serde(default)]
    groups: Vec<IdOnly>,
    identity_provider: IdOnly,
    protocol: IdOnly,
}

#[derive(Deserialize)]
struct ProjectDoc {
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    domain: Option<NamedDoc>,
}

#[derive(Deserialize)]
struct SystemDoc {
    #[serde(default)]
    all: bool,
}

#[derive(Deserialize)]
struct AppCredDoc {
    id: String,
    #[serde(default)]
    access_rules: Option<Vec<AccessRuleDoc>>,
}

#[derive(Deserialize)]
struct AccessRuleDoc {
    service: String,
    path: String,
    method: String,
}

#[derive(Deserialize)]
struct TrustDoc {
    id: String,
    #[serde(default)]
    trustor_user: Option<IdOnly>,
    #[serde(default)]
    trustee_user: Option<IdOnly>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct EndpointDoc {
    interface: String,
    #[serde(default)]
    region: Option<String>,
    url: String,
}

#[derive(Deserialize)]
struct ServiceDoc {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    endpoints: Vec<EndpointDoc>,
}

#[derive(Deserialize)]
struct TokenDoc {
    user: UserDoc,
    expires_at: String,
    #[serde(default)]
    issued_at: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    audit_ids: Vec<String>,
    #[serde(default)]
    project: Option<ProjectDoc>,
    #[serde(default)]
    domain: Option<NamedDoc>,
    #[serde(default)]
    system: Option<SystemDoc>,
    #[serde(default)]
    roles: Vec<NamedDoc>,
    #[serde(default)]
    is_admin_project: Option<bool>,
    #[serde(default)]
    catalog: Option<Vec<ServiceDoc>>,
    #[serde(default)]
    application_credential: Option<AppCredDoc>,
    #[serde(rename = "OS-TRUST:trust", default)]
    trust: Option<TrustDoc>,
    /// Present (with `x5t#S256`) on certificate-bound tokens.
    #[serde(default)]
    oauth2_credential: Option<serde_json::Value>,
}

/// Parses a validation response body into an [`Identity`].
pub fn parse_token(body: &[u8]) -> Result<Identity, ModelError> {
    let Envelope { token: t } = serde_json::from_slice(body)?;
    let cert_thumbprint = match &t.oauth2_credential {
        None => None,
        Some(credential) => match credential.get("x5t#S256").and_then(|v| v.as_str()) {
            Some(thumbprint) if !thumbprint.is_empty() => Some(Box::from(thumbprint)),
            _ => return Err(ModelError::CertificateBound),
        },
    };
    let expires_at =
        crate::clock::parse_rfc3339(&t.expires_at).ok_or(ModelError::Field("expires_at"))?;
    let issued_at = match &t.issued_at {
        Some(s) => crate::clock::parse_rfc3339(s).ok_or(ModelError::Field("issued_at"))?,
        None => 0,
    };
    if t.user.id.as_deref().unwrap_or_default().is_empty() {
        return Err(ModelError::Field("user.id"));
    }
    let scope = if let Some(p) = t.project {
        Scope::Project(Arc::new(Project {
            project: Named::pooled(p.id.as_deref(), p.name.as_deref()),
            domain: p.domain.unwrap_or_default().into(),
        }))
    } else if let Some(d) = t.domain {
        Scope::Domain(d.into())
    } else if t.system.as_ref().is_some_and(|s| s.all) {
        Scope::System
    } else {
        Scope::Unscoped
    };
    let catalog = t.catalog.as_ref().map(|c| {
        let types: Vec<String> = c.iter().map(|s| s.kind.clone()).collect();
        Catalog::pooled(&types, v2_catalog_json(c))
    });
    let federation = t.user.federation.map(|f| {
        let groups: Vec<&str> = f.groups.iter().map(|g| g.id.as_str()).collect();
        Federation {
            group_ids: intern::list(&groups),
            identity_provider: Arc::from(f.identity_provider.id),
            protocol: Arc::from(f.protocol.id),
        }
    });
    let role_ids: Vec<&str> = t.roles.iter().filter_map(|r| r.id.as_deref()).collect();
    let roles: Vec<&str> = t.roles.iter().filter_map(|r| r.name.as_deref()).collect();
    Ok(Identity {
        // The user's own id and name are not pooled (one user, few tokens).
        user: Named {
            id: t.user.id.as_deref().map(Arc::from),
            name: t.user.name.as_deref().map(Arc::from),
        },
        user_domain: t.user.domain.unwrap_or_default().into(),
        scope,
        role_ids: intern::list(&role_ids),
        roles: intern::list(&roles),
        is_admin_project: t.is_admin_project.unwrap_or(true),
        expires_at,
        issued_at,
        audit_ids: AuditIds::new(&t.audit_ids),
        methods: intern::list(&t.methods),
        extras: Extras {
            application_credential: t.application_credential.map(|a| ApplicationCredential {
                id: a.id,
                access_rules: a.access_rules.map(|rules| {
                    rules
                        .into_iter()
                        .map(|r| AccessRule {
                            service: r.service,
                            path: r.path,
                            method: r.method,
                        })
                        .collect()
                }),
            }),
            trust_users: t.trust.as_ref().and_then(|t| {
                Some((
                    t.trustor_user.as_ref()?.id.clone(),
                    t.trustee_user.as_ref()?.id.clone(),
                ))
            }),
            trust_id: t.trust.map(|t| Arc::from(t.id)),
            cert_thumbprint,
            federation,
        }
        .boxed(),
        catalog,
        rendered: Default::default(),
    })
}

/// Endpoints of one region: `(region, [("<interface>URL", url)])`.
type RegionGroup<'a> = (Option<&'a str>, Vec<(String, &'a str)>);

/// The v3 catalog in keystonemiddleware's v2 shape, serialised byte-for-byte as
/// Python's `json.dumps` does (`", "`/`": "` separators, non-ASCII escaped).
fn v2_catalog_json(catalog: &[ServiceDoc]) -> String {
    let mut out = String::with_capacity(256 * catalog.len().max(1));
    out.push('[');
    for (i, svc) in catalog.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("{\"type\": ");
        py_str(&mut out, &svc.kind);
        if let Some(name) = &svc.name {
            out.push_str(", \"name\": ");
            py_str(&mut out, name);
        }
        out.push_str(", \"endpoints\": [");
        // Group by region, keeping first-seen order (Python dict semantics).
        let mut groups: Vec<RegionGroup<'_>> = Vec::new();
        for ep in &svc.endpoints {
            let region = ep.region.as_deref();
            let key = format!("{}URL", ep.interface.to_lowercase());
            let idx = match groups.iter().position(|(r, _)| *r == region) {
                Some(i) => i,
                None => {
                    groups.push((region, Vec::new()));
                    groups.len() - 1
                }
            };
            let entries = &mut groups[idx].1;
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(e) => e.1 = &ep.url,
                None => entries.push((key, &ep.url)),
            }
        }
        for (g, (region, entries)) in groups.iter().enumerate() {
            if g > 0 {
                out.push_str(", ");
            }
            out.push('{');
            let mut first = true;
            if let Some(r) = region.filter(|r| !r.is_empty()) {
                out.push_str("\"region\": ");
                py_str(&mut out, r);
                first = false;
            }
            for (k, url) in entries {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                py_str(&mut out, k);
                out.push_str(": ");
                py_str(&mut out, url);
            }
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    out
}

/// A JSON string as Python's `json.dumps(ensure_ascii=True)` writes it.
pub(super) fn py_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &str = r#"{"token": {"methods": ["password"],
      "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": "demo", "password_expires_at": null},
      "audit_ids": ["9JsolhssRzKfyayTIiCRUg"],
      "expires_at": "2026-01-15T22:14:05.000000Z", "issued_at": "2026-01-15T21:14:05.000000Z",
      "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "demo"},
      "is_domain": false,
      "roles": [{"id": "r2", "name": "reader"}, {"id": "r1", "name": "member", "domain_id": null}],
      "catalog": [{"id": "x", "type": "identity", "name": "keystone", "endpoints": [
          {"id": "1", "interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://k/v3/"},
          {"id": "2", "interface": "internal", "region": "RegionOne", "region_id": "RegionOne", "url": "http://k-int/v3/"}]},
        {"id": "y", "type": "compute", "endpoints": [{"id": "3", "interface": "admin", "region": null, "url": "http://n\u00e9"}]}]}}"#;

    #[test]
    fn project_token_document_becomes_identity() {
        let id = parse_token(PROJECT.as_bytes()).unwrap();
        assert_eq!(id.user.id.as_deref(), Some("u1"));
        assert_eq!(*id.roles, [Arc::from("reader"), Arc::from("member")]);
        assert_eq!(*id.role_ids, [Arc::from("r2"), Arc::from("r1")]);
        assert!(id.is_admin_project);
        assert_eq!(id.expires_at, 1768515245);
        assert_eq!(id.issued_at, 1768511645);
        assert!(
            matches!(&id.scope, Scope::Project(p) if p.project.name.as_deref() == Some("demo"))
        );
        assert_eq!(
            id.catalog_types(),
            [Arc::from("identity"), Arc::from("compute")]
        );
    }

    #[test]
    fn catalog_is_rendered_like_keystonemiddleware() {
        let id = parse_token(PROJECT.as_bytes()).unwrap();
        assert_eq!(
            id.service_catalog().unwrap(),
            r#"[{"type": "identity", "name": "keystone", "endpoints": [{"region": "RegionOne", "publicURL": "http://k/v3/", "internalURL": "http://k-int/v3/"}]}, {"type": "compute", "endpoints": [{"adminURL": "http://n\u00e9"}]}]"#
        );
        // `X-Service-Catalog` is the JSON's own buffer, held once (issue 16).
        let c = id.catalog.as_ref().unwrap();
        let header = c.header.as_ref().unwrap();
        assert_eq!(header.as_bytes(), c.json.as_bytes());
        assert_eq!(header.as_bytes().as_ptr(), c.json.as_ptr());
    }

    #[test]
    fn certificate_bound_tokens_carry_their_thumbprint_or_are_refused() {
        // Keystone's render_token: oauth2_credential = {"x5t#S256": thumbprint}.
        let bound = PROJECT.replace(
            "\"is_domain\": false,",
            "\"is_domain\": false, \"oauth2_credential\": {\"x5t#S256\": \"Ymy0cdRyOk_ZyEPfjqTgk8_yMjbhH-tH8zxZ0Q5QvWM=\"},",
        );
        let id = parse_token(bound.as_bytes()).unwrap();
        assert_eq!(
            id.cert_thumbprint(),
            Some("Ymy0cdRyOk_ZyEPfjqTgk8_yMjbhH-tH8zxZ0Q5QvWM=")
        );
        assert!(parse_token(PROJECT.as_bytes())
            .unwrap()
            .cert_thumbprint()
            .is_none());
        // A binding that names no thumbprint cannot be checked: refused.
        for credential in [
            r#"{}"#,
            r#"{"x5t#S256": ""}"#,
            r#"{"x5t#S256": 1}"#,
            r#""anything""#,
        ] {
            let bound = PROJECT.replace(
                "\"is_domain\": false,",
                &format!("\"is_domain\": false, \"oauth2_credential\": {credential},"),
            );
            assert!(
                matches!(
                    parse_token(bound.as_bytes()),
                    Err(ModelError::CertificateBound)
                ),
                "{credential}"
            );
        }
        // null is what a document without one would say.
        let null = PROJECT.replace(
            "\"is_domain\": false,",
            "\"is_domain\": false, \"oauth2_credential\": null,",
        );
        assert!(parse_token(null.as_bytes()).is_ok());
    }

    #[test]
    fn an_ordinary_token_allocates_no_extras_and_a_trust_token_keeps_its_trust() {
        // Most cached identities carry none of the rare facts: no box.
        let plain = parse_token(PROJECT.as_bytes()).unwrap();
        assert!(plain.extras.is_none());
        assert_eq!(std::mem::size_of::<Identity>(), 272);
        let trust = PROJECT.replace(
            "\"is_domain\": false,",
            "\"is_domain\": false, \"OS-TRUST:trust\": {\"id\": \"t1\", \"impersonation\": true, \"trustor_user\": {\"id\": \"u1\"}, \"trustee_user\": {\"id\": \"u2\"}},",
        );
        let id = parse_token(trust.as_bytes()).unwrap();
        assert_eq!(id.trust_id(), Some("t1"));
        assert_eq!(id.trust_users(), Some(("u1", "u2")));
        assert!(id.federation().is_none() && id.cert_thumbprint().is_none());
    }

    #[test]
    fn a_federated_token_carries_its_groups_identity_provider_and_protocol() {
        // Keystone's render_token for a federated user: OS-FEDERATION on the
        // user, no password_expires_at.
        let federated = PROJECT.replace(
            "\"password_expires_at\": null",
            "\"OS-FEDERATION\": {\"groups\": [{\"id\": \"g1\"}, {\"id\": \"g2\"}], \"identity_provider\": {\"id\": \"idp\"}, \"protocol\": {\"id\": \"mapped\"}}",
        );
        let id = parse_token(federated.as_bytes()).unwrap();
        let f = id.federation().expect("federation facts");
        assert_eq!(*f.group_ids, [Arc::from("g1"), Arc::from("g2")]);
        assert_eq!(&*f.identity_provider, "idp");
        assert_eq!(&*f.protocol, "mapped");
        assert!(parse_token(PROJECT.as_bytes())
            .unwrap()
            .federation()
            .is_none());
    }

    #[test]
    fn missing_user_id_or_expiry_is_an_error() {
        let no_user = PROJECT.replace("\"id\": \"u1\", ", "");
        assert!(parse_token(no_user.as_bytes()).is_err());
        let bad_time = PROJECT.replace("2026-01-15T22:14:05.000000Z", "tomorrow");
        assert!(parse_token(bad_time.as_bytes()).is_err());
    }
}
