//! What a validated token proves: who, in which scope, with which roles.
//!
//! Built from Keystone's validation response (`keystone::model`) and read by
//! `headers` (to inject) and by embedders (from request extensions).

pub mod intern;

use std::sync::{Arc, OnceLock};

/// A list of strings, shared: role names and ids, methods, catalog types
/// (pooled by [`intern`], one copy for every token that has the same list).
pub type Names = Arc<[Arc<str>]>;

/// An id with its (optional) name, as Keystone renders users, domains, roles.
/// Domain and project names and ids are pooled ([`intern`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Named {
    /// The id.
    pub id: Option<Arc<str>>,
    /// The name.
    pub name: Option<Arc<str>>,
}

impl Named {
    /// An id and name, each the pooled copy ([`intern`]).
    pub fn pooled(id: Option<&str>, name: Option<&str>) -> Self {
        Self {
            id: intern::opt(id),
            name: intern::opt(name),
        }
    }
}

/// The project of a project-scoped token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    Project(Arc<Project>),
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

/// The federation facts of a federated token (Keystone's
/// `token.user."OS-FEDERATION"`, Fernet payloads v4–v6): the groups the
/// identity provider's mapping put the user in at login. An ephemeral user
/// has no group membership in Keystone's database: these are its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Federation {
    /// The mapped group ids, in Keystone's order (pooled).
    pub group_ids: Names,
    /// The identity provider's id.
    pub identity_provider: Arc<str>,
    /// The federation protocol's id (`saml2`, `openid`, `mapped`...).
    pub protocol: Arc<str>,
}

/// A token's audit ids (its own, then its chain's) in one allocation: each
/// id's length (LEB128) then its bytes. A list of `Arc<str>`s cost an
/// allocation for the list and one per id, 96 bytes for a token's one id
/// instead of 32 (issue 16). Any string fits, separators included.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditIds(Box<[u8]>);

impl AuditIds {
    /// The ids, in order.
    pub fn new<S: AsRef<str>>(ids: &[S]) -> Self {
        // Sized exactly: the box is this buffer, not a shrunk copy of it.
        let varint = |n: usize| (usize::BITS - n.max(1).leading_zeros()).div_ceil(7) as usize;
        let size = ids.iter().map(|s| s.as_ref().len()).map(|n| varint(n) + n);
        let mut b = Vec::with_capacity(size.sum());
        for id in ids {
            let id = id.as_ref().as_bytes();
            let mut n = id.len();
            loop {
                // The low seven bits, the top bit set while more follow.
                let low = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    b.push(low);
                    break;
                }
                b.push(low | 0x80);
            }
            b.extend_from_slice(id);
        }
        Self(b.into_boxed_slice())
    }

    /// The ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            let (mut n, mut shift) = (0usize, 0u32);
            loop {
                let (&byte, tail) = rest.split_first()?;
                rest = tail;
                n |= usize::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    break;
                }
                shift += 7;
            }
            let (id, tail) = rest.split_at_checked(n)?;
            rest = tail;
            // Written from `&str`s whole: always UTF-8.
            std::str::from_utf8(id).ok()
        })
    }

    /// The `i`-th id (0: the token's own; 1: the token it was made from).
    pub fn get(&self, i: usize) -> Option<&str> {
        self.iter().nth(i)
    }

    /// The token's own audit id.
    pub fn first(&self) -> Option<&str> {
        self.get(0)
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Heap bytes held, as glibc's allocator spends them.
    fn held_bytes(&self) -> usize {
        chunk(self.0.len())
    }
}

/// The facts of an [`Identity`] that few tokens have (see
/// [`Identity::extras`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extras {
    /// Application credential, for app-credential tokens.
    pub application_credential: Option<ApplicationCredential>,
    /// Trust id, for trust-scoped tokens.
    pub trust_id: Option<Arc<str>>,
    /// Trustor and trustee user ids, for trust-scoped tokens.
    pub trust_users: Option<(String, String)>,
    /// The certificate thumbprint a certificate-bound token (RFC 8705) is
    /// bound to (Keystone's `oauth2_credential."x5t#S256"`): the token is
    /// accepted only with that client certificate.
    pub cert_thumbprint: Option<Box<str>>,
    /// Federation facts, for federated tokens.
    pub federation: Option<Federation>,
}

impl Extras {
    /// Boxed, or `None` when it holds nothing.
    pub fn boxed(self) -> Option<Box<Self>> {
        (self != Self::default()).then(|| Box::new(self))
    }

    /// Heap bytes it holds, the box included.
    fn held_bytes(&self) -> usize {
        let mut n = chunk(std::mem::size_of::<Self>());
        if let Some(a) = &self.application_credential {
            n += chunk(a.id.len());
            if let Some(rules) = &a.access_rules {
                n += chunk(std::mem::size_of::<AccessRule>() * rules.len());
                for r in rules {
                    n += chunk(r.service.len()) + chunk(r.path.len()) + chunk(r.method.len());
                }
            }
        }
        n += self.trust_id.as_ref().map_or(0, |s| chunk(16 + s.len()));
        if let Some(t) = &self.trust_users {
            n += chunk(t.0.len()) + chunk(t.1.len());
        }
        n += self.cert_thumbprint.as_ref().map_or(0, |s| chunk(s.len()));
        if let Some(f) = &self.federation {
            n += chunk(16 + f.identity_provider.len()) + chunk(16 + f.protocol.len());
        }
        n
    }
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
    /// Role names in Keystone's order (pooled).
    pub roles: Names,
    /// Role ids in Keystone's order (pooled).
    pub role_ids: Names,
    /// `is_admin_project` (true when Keystone does not say, as keystoneauth).
    pub is_admin_project: bool,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: i64,
    /// Issue time, seconds since the Unix epoch.
    pub issued_at: i64,
    /// Audit ids: the token's own, then its chain's (this token's alone).
    pub audit_ids: AuditIds,
    /// Authentication methods (pooled).
    pub methods: Names,
    /// What few tokens carry (application credential, trust, certificate
    /// binding, federation), boxed: `None` for most tokens, so the identity
    /// every cache entry holds is 48 bytes smaller (issue 16).
    pub extras: Option<Box<Extras>>,
    /// The catalog, when it was fetched (pooled: one copy per distinct catalog).
    pub catalog: Option<Arc<Catalog>>,
    /// Header blocks rendered from this identity, filled once by `headers`
    /// so a cache hit costs no formatting.
    pub rendered: Rendered,
}

/// A token's service catalog: its service types (for access rules) and the
/// `X-Service-Catalog` value (keystonemiddleware's v2-shaped JSON).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Catalog {
    /// The catalog's service types, in order.
    pub types: Names,
    /// The v2-shaped JSON, exactly as keystonemiddleware renders it.
    pub json: Arc<str>,
    /// `json` as a header value (None when it cannot be one).
    pub header: Option<http::HeaderValue>,
}

impl Catalog {
    /// The pooled catalog of these service types and v2-shaped JSON. The
    /// header value is the JSON's own buffer, not a copy of it.
    pub fn pooled(types: &[String], json: String) -> Arc<Catalog> {
        let json: Arc<str> = Arc::from(json);
        let header =
            http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(Json(json.clone()))).ok();
        intern::catalog(Catalog {
            types: intern::list(types),
            json,
            header,
        })
    }
}

/// A catalog's JSON as the owner of its header value's bytes.
struct Json(Arc<str>);

impl AsRef<[u8]> for Json {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Bytes glibc's malloc spends on a request of `n` bytes.
fn chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// A rendered header block's buffer (see [`Blocks`]).
pub type HeaderBlock = bytes::Bytes;

/// A rendered header block, laid out by `headers`: the shared part (a table
/// of name and span for every header, then the values tokens of one scope
/// share: domain, project, roles...) pooled by [`intern`], and the token's
/// own values (user id and name).
#[derive(Debug, Clone)]
pub struct Blocks {
    pub(crate) shared: Arc<SharedBlock>,
    pub(crate) own: HeaderBlock,
}

/// The shared part of a rendered header block: its buffer (pooled by its
/// bytes, [`intern`]) and, for every entry of its table in order, the value
/// as a `HeaderValue` checked once when the block was rendered (`None` for
/// an entry that is one of the token's own values). A request copies these
/// (one reference count each) instead of checking every byte again.
#[derive(Debug)]
pub struct SharedBlock {
    pub(crate) bytes: HeaderBlock,
    pub(crate) values: Box<[Option<http::HeaderValue>]>,
}

/// Blocks are the same when their bytes are: the values derive from them.
impl PartialEq for SharedBlock {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for SharedBlock {}

impl std::hash::Hash for SharedBlock {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

/// Lazily rendered header blocks of an [`Identity`] (see `headers`). The
/// service block, which few identities ever need, is boxed.
#[derive(Default, Clone)]
pub struct Rendered {
    pub(crate) user: OnceLock<Blocks>,
    pub(crate) service: OnceLock<Box<Blocks>>,
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
        self.application_credential()
            .is_some_and(|a| a.access_rules.is_some())
    }

    /// The application credential, for app-credential tokens.
    pub fn application_credential(&self) -> Option<&ApplicationCredential> {
        self.extras.as_ref()?.application_credential.as_ref()
    }

    /// The trust id, for trust-scoped tokens.
    pub fn trust_id(&self) -> Option<&str> {
        self.extras.as_ref()?.trust_id.as_deref()
    }

    /// Trustor and trustee user ids, for trust-scoped tokens.
    pub fn trust_users(&self) -> Option<(&str, &str)> {
        let (a, b) = self.extras.as_ref()?.trust_users.as_ref()?;
        Some((a, b))
    }

    /// The certificate thumbprint a certificate-bound token is bound to.
    pub fn cert_thumbprint(&self) -> Option<&str> {
        self.extras.as_ref()?.cert_thumbprint.as_deref()
    }

    /// Federation facts, for federated tokens.
    pub fn federation(&self) -> Option<&Federation> {
        self.extras.as_ref()?.federation.as_ref()
    }

    /// True when the token holds at least one of `roles` (by name).
    pub fn has_any_role(&self, roles: &[String]) -> bool {
        self.roles.iter().any(|r| roles.iter().any(|w| **w == **r))
    }

    /// The audit id that identifies this token in logs.
    pub fn audit_id(&self) -> Option<&str> {
        self.audit_ids.first()
    }

    /// The catalog's service types (empty without a catalog).
    pub fn catalog_types(&self) -> &[Arc<str>] {
        self.catalog.as_ref().map_or(&[], |c| &c.types)
    }

    /// Heap bytes this identity holds alone, its user header block (rendered
    /// on first use) included, as glibc's allocator spends them (16-byte
    /// steps, 8 bytes of header, 32 at least). Pooled values ([`intern`])
    /// count only as the pointer inside the struct, except the catalog (its
    /// JSON, which is also its header value),
    /// which counts in full: a cache of many projects holds many catalogs.
    /// The cache weighs entries with it, so `capacity_bytes` bounds memory.
    pub fn held_bytes(&self) -> usize {
        let own = |s: &Option<Arc<str>>| s.as_ref().map_or(0, |s| chunk(16 + s.len()));
        let mut n = chunk(16 + std::mem::size_of::<Self>());
        n += own(&self.user.id) + own(&self.user.name);
        n += self.audit_ids.held_bytes();
        n += self.extras.as_ref().map_or(0, |e| e.held_bytes());
        if let Some(c) = &self.catalog {
            // The header value is the JSON's buffer: counted once.
            n += chunk(16 + c.json.len());
        }
        // The user block's own values: one buffer, plus the shared handle
        // `bytes` adds when it is first sliced; its shared part is pooled.
        let own = self.own_block_len();
        n + if own == 0 { 0 } else { chunk(own) + chunk(24) }
    }

    /// Length of the own values of the user header block `headers` renders:
    /// a 1-byte count, 2 bytes of length per value, the user's id and name,
    /// each distinct value once (the rest of the block is shared by the
    /// tokens of one scope, [`intern`]).
    pub fn own_block_len(&self) -> usize {
        let values: &[&str] = match (self.user.id.as_deref(), self.user.name.as_deref()) {
            (Some(a), Some(b)) if a == b => &[a],
            (Some(a), Some(b)) => &[a, b],
            (Some(a), None) | (None, Some(a)) => &[a],
            (None, None) => return 0,
        };
        1 + values.iter().map(|v| 2 + v.len()).sum::<usize>()
    }

    /// The `X-Service-Catalog` JSON, when the catalog was fetched.
    pub fn service_catalog(&self) -> Option<&str> {
        self.catalog.as_ref().map(|c| &*c.json)
    }
}

#[cfg(test)]
mod tests {
    use super::AuditIds;

    #[test]
    fn audit_ids_read_back_as_written_whatever_they_hold() {
        let long = "x".repeat(300);
        let ids = ["9JsolhssRzKfyayTIiCRUg", "", "a\nb\0c é", &long];
        let a = AuditIds::new(&ids);
        assert_eq!(a.iter().collect::<Vec<_>>(), ids);
        assert_eq!(
            (a.len(), a.first(), a.get(3)),
            (4, Some(ids[0]), Some(&*long))
        );
        assert_eq!(a.get(4), None);
        // One id of Keystone's 22 characters: one allocation of 23 bytes.
        let one = AuditIds::new(&[ids[0]]);
        assert_eq!((one.0.len(), one.held_bytes()), (23, 32));
        let none = AuditIds::new::<&str>(&[]);
        assert!(none.is_empty() && none.first().is_none() && none.held_bytes() == 0);
    }
}
