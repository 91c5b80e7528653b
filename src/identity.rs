//! What a validated token proves: who, in which scope, with which roles.
//!
//! Built from Keystone's validation response (`keystone::model`) and read by
//! `headers` (to inject) and by embedders (from request extensions).

use std::sync::Arc;

/// An id with its (optional) name, as Keystone renders users, domains, roles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Named {
    /// The id.
    pub id: Option<String>,
    /// The name.
    pub name: Option<String>,
}

/// The project of a project-scoped token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Project id and name.
    pub project: Named,
    /// The project's domain.
    pub domain: Named,
}

/// What a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// No scope: no roles.
    Unscoped,
    /// A project (also trusts, application credentials, OAuth).
    Project(Project),
    /// A domain.
    Domain(Named),
    /// The whole deployment (`OpenStack-System-Scope: all`).
    System,
}

/// One application-credential access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// Service type the rule applies to.
    pub service: String,
    /// Path pattern (`*`, `{x}` one segment, `**` anything).
    pub path: String,
    /// HTTP method, upper-case.
    pub method: String,
}

/// Application-credential facts of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationCredential {
    /// Credential id.
    pub id: String,
    /// Access rules, when the credential has any.
    pub access_rules: Option<Vec<AccessRule>>,
}

/// A validated token's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The user (for impersonating trusts, the trustor).
    pub user: Named,
    /// The user's domain.
    pub user_domain: Named,
    /// The token's scope.
    pub scope: Scope,
    /// Role names in Keystone's order.
    pub roles: Vec<String>,
    /// Role ids in Keystone's order.
    pub role_ids: Vec<String>,
    /// `is_admin_project` (true when Keystone does not say, as keystoneauth).
    pub is_admin_project: bool,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: i64,
    /// Issue time, seconds since the Unix epoch.
    pub issued_at: i64,
    /// Audit ids: the token's own, then its chain's.
    pub audit_ids: Vec<String>,
    /// Authentication methods.
    pub methods: Vec<String>,
    /// Application credential, for app-credential tokens.
    pub application_credential: Option<ApplicationCredential>,
    /// Trust id, for trust-scoped tokens.
    pub trust_id: Option<String>,
    /// Trustor and trustee user ids, for trust-scoped tokens.
    pub trust_users: Option<(String, String)>,
    /// The catalog's service types (filled when access rules need them).
    pub catalog_types: Vec<String>,
    /// `X-Service-Catalog` value (v2-shaped JSON), when the catalog was fetched.
    pub service_catalog: Option<Arc<str>>,
    /// Header blocks rendered from this identity, filled once by `headers`
    /// so a cache hit costs no formatting.
    pub rendered: Rendered,
}

/// A header block: names and values ready to copy into a request.
pub type HeaderBlock = Box<[(http::HeaderName, http::HeaderValue)]>;

/// Lazily rendered header blocks of an [`Identity`] (see `headers`).
#[derive(Default, Clone)]
pub struct Rendered {
    pub(crate) user: std::sync::OnceLock<HeaderBlock>,
    pub(crate) service: std::sync::OnceLock<HeaderBlock>,
    pub(crate) catalog: std::sync::OnceLock<Option<http::HeaderValue>>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rendered")
    }
}

/// Rendered blocks are derived data: they never make identities differ.
impl PartialEq for Rendered {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Identity {
    /// True when the token's expiry has passed at `now` (Unix seconds).
    /// At exactly `expires_at` the token is expired, as in Keystone.
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// Time until the token expires, from `now` (Unix seconds); zero once expired.
    pub fn lifetime_left(&self, now: i64) -> std::time::Duration {
        let left = self.expires_at.saturating_sub(now);
        std::time::Duration::from_secs(u64::try_from(left).unwrap_or(0))
    }

    /// True for an application-credential token restricted by access rules
    /// (which are checked against the service catalog).
    pub fn has_access_rules(&self) -> bool {
        self.application_credential
            .as_ref()
            .is_some_and(|a| a.access_rules.is_some())
    }

    /// True when the token holds at least one of `roles` (by name).
    pub fn has_any_role(&self, roles: &[String]) -> bool {
        self.roles.iter().any(|r| roles.iter().any(|w| w == r))
    }

    /// The audit id that identifies this token in logs.
    pub fn audit_id(&self) -> Option<&str> {
        self.audit_ids.first().map(String::as_str)
    }
}
