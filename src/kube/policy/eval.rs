//! The decision, as k8s-keystone-auth's `Authorizer.Authorize` takes it
//! (cloud-provider-openstack `pkg/identity/keystone/authorizer.go`): a
//! request without `extra` is refused; a rule with `users` applies only
//! when the token's roles include all of its roles and its projects include
//! the token's project (name or id); the first rule that allows decides;
//! none: not allowed. Every rule only allows: the format has no deny.

use std::collections::BTreeMap;

use super::{
    list, Error, Match, NonResourceSpec, ResourceSpec, Rule, PROJECT_ID, PROJECT_NAME, ROLES,
};

/// Who asks, as the apiserver forwards what the TokenReview answered.
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    /// `user.username` (the Keystone user name).
    pub name: &'a str,
    /// `user.uid` (the Keystone user id).
    pub uid: &'a str,
    /// `user.groups`.
    pub groups: &'a [String],
    /// `user.extra` (`alpha.kubernetes.io/identity/...`); `None` when the
    /// review carried none.
    pub extra: Option<&'a BTreeMap<String, Vec<String>>>,
}

impl User<'_> {
    fn extra(&self, key: &str) -> &[String] {
        self.extra
            .and_then(|e| e.get(key))
            .map_or(&[][..], Vec::as_slice)
    }
}

/// What is asked.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// A resource request (`resourceAttributes`).
    Resource {
        /// `verb`.
        verb: &'a str,
        /// `namespace` (`""`: cluster-wide).
        namespace: &'a str,
        /// `group` (`""`: the core group).
        group: &'a str,
        /// `resource`.
        resource: &'a str,
        /// `subresource`.
        subresource: &'a str,
    },
    /// A non-resource request (`nonResourceAttributes`).
    NonResource {
        /// `verb`.
        verb: &'a str,
        /// `path`.
        path: &'a str,
    },
}

/// A request to decide.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    /// Who.
    pub user: User<'a>,
    /// What.
    pub request: Request<'a>,
}

/// Why a decision was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// This rule (counted from 1) allows it.
    Rule(usize),
    /// The review has no `extra`: not a Keystone user.
    NoAuthInfo,
    /// No rule allows it.
    NoPolicyMatched,
    /// No policy file is configured.
    NoPolicyFile,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rule(n) => write!(f, "allowed by rule {n} of the Keystone policy"),
            // k8s-keystone-auth's own words.
            Self::NoAuthInfo => f.write_str("No auth info found."),
            Self::NoPolicyMatched => f.write_str("No policy matched."),
            Self::NoPolicyFile => {
                f.write_str("no Keystone policy is configured ([kubernetes] policy_file)")
            }
        }
    }
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether a rule allows the request.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
}

impl super::Policy {
    /// Decides `attributes` as k8s-keystone-auth does. Not allowed is "no
    /// opinion": the apiserver asks its next authorizer (RBAC).
    pub fn decide(&self, attributes: &Attributes<'_>) -> Decision {
        let no = |reason| Decision {
            allowed: false,
            reason,
        };
        if self.rules.is_empty() {
            return no(Reason::NoPolicyMatched);
        }
        let user = &attributes.user;
        if user.extra.is_none() {
            return no(Reason::NoAuthInfo);
        }
        let roles = user.extra(ROLES);
        let (names, ids) = (user.extra(PROJECT_NAME), user.extra(PROJECT_ID));
        for rule in &self.rules {
            if let Some(users) = &rule.users {
                let has_roles = users.roles.iter().all(|r| roles.contains(r));
                let in_project = users
                    .projects
                    .iter()
                    .any(|p| names.contains(p) || ids.contains(p));
                if !has_roles || !in_project {
                    continue;
                }
            }
            if rule.allows(attributes) {
                return Decision {
                    allowed: true,
                    reason: Reason::Rule(rule.number),
                };
            }
        }
        no(Reason::NoPolicyMatched)
    }
}

/// A rule ready to decide with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Compiled {
    number: usize,
    users: Option<Users>,
    resource_permissions: Option<Vec<Permission>>,
    nonresource_permissions: Option<Vec<(String, Verbs)>>,
    resource: Option<ResourceSpec>,
    nonresource: Option<NonResourceSpec>,
    matches: Vec<Match>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Users {
    roles: Vec<String>,
    projects: Vec<String>,
}

/// A `resource_permissions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Permission {
    key: String,
    /// Namespace and resource; `None` when the key is not `a/b` (ignored).
    scope: Option<(Selector, Selector)>,
    verbs: Verbs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Verbs {
    any: bool,
    verbs: Vec<String>,
}

impl Verbs {
    fn new(verbs: &[String], lowercase: bool) -> Self {
        let verbs: Vec<String> = verbs
            .iter()
            .map(|v| {
                if lowercase {
                    v.to_lowercase()
                } else {
                    v.clone()
                }
            })
            .collect();
        Self {
            any: verbs.iter().any(|v| v == "*"),
            verbs,
        }
    }

    fn has(&self, verb: &str) -> bool {
        self.any || self.verbs.iter().any(|v| v == verb)
    }
}

/// One side of a `resource_permissions` key (`getAllowed`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    raw: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A name: only itself.
    Name,
    /// `!name`.
    Not(String),
    /// `['a', 'b']`.
    In(Vec<String>),
    /// `!['a', 'b']`.
    NotIn(Vec<String>),
    /// A list that does not parse: the key is ignored.
    Invalid,
}

impl Selector {
    /// `raw` is lowercased and trimmed already.
    fn new(raw: String) -> Self {
        let ends_list = raw.find(']') == Some(raw.len().wrapping_sub(1));
        let kind = if raw.starts_with('!') && raw.find('[') != Some(1) {
            Kind::Not(raw[1..].to_owned())
        } else if raw.starts_with('[') && ends_list {
            parse_list(&raw).map_or(Kind::Invalid, Kind::In)
        } else if raw.starts_with('!') && ends_list {
            parse_list(&raw[1..]).map_or(Kind::Invalid, Kind::NotIn)
        } else {
            Kind::Name
        };
        Self { raw, kind }
    }

    fn selects(&self, value: &str) -> bool {
        if self.raw == value || self.raw == "*" || value.is_empty() {
            return true;
        }
        match &self.kind {
            Kind::Name | Kind::Invalid => false,
            Kind::Not(name) => name != value && name != "*",
            Kind::In(items) => items.iter().any(|i| i == value || i == "*"),
            Kind::NotIn(items) => !items.iter().any(|i| i == value || i == "*"),
        }
    }
}

/// `['a', 'b']` read as k8s-keystone-auth does: quotes made double, then JSON.
fn parse_list(text: &str) -> Option<Vec<String>> {
    let items: Vec<Option<String>> = serde_json::from_str(&text.replace('\'', "\"")).ok()?;
    Some(items.into_iter().map(Option::unwrap_or_default).collect())
}

fn contains(list: &Option<Vec<String>>, value: &str) -> bool {
    list.as_deref()
        .unwrap_or_default()
        .iter()
        .any(|v| v == value)
}

impl Compiled {
    pub(super) fn new(number: usize, rule: Rule) -> Result<Self, Error> {
        if let Some(spec) = &rule.resource {
            let missing = |key, fix| Error::Missing {
                rule: number,
                key,
                fix,
            };
            if spec.version.is_none() {
                return Err(missing(
                    "resource.version",
                    "it names the API group: \"*\" for every group, \"\" for the core group",
                ));
            }
            if spec.namespace.is_none() {
                return Err(missing(
                    "resource.namespace",
                    "\"*\" for every namespace and cluster-wide resources",
                ));
            }
        }
        let resource_permissions = rule.resource_permissions.map(|map| {
            map.into_iter()
                .map(|(key, verbs)| {
                    let parts: Vec<&str> = key.split('/').collect();
                    let scope = (parts.len() == 2).then(|| {
                        let side = |s: &str| Selector::new(s.trim().to_lowercase());
                        (side(parts[0]), side(parts[1]))
                    });
                    Permission {
                        verbs: Verbs::new(&verbs, true),
                        key,
                        scope,
                    }
                })
                .collect()
        });
        let nonresource_permissions = rule.nonresource_permissions.map(|map| {
            map.into_iter()
                .map(|(path, verbs)| {
                    let verbs = Verbs::new(&verbs, false);
                    (path, verbs)
                })
                .collect()
        });
        Ok(Self {
            number,
            users: rule.users.map(|u| Users {
                roles: u.roles.unwrap_or_default(),
                projects: u.projects.unwrap_or_default(),
            }),
            resource_permissions,
            nonresource_permissions,
            resource: rule.resource,
            nonresource: rule.nonresource,
            matches: rule.matches.unwrap_or_default(),
        })
    }

    /// Whether the rule's permissions allow the request (its `users` already
    /// checked). Version 2 takes precedence over version 1.
    fn allows(&self, a: &Attributes<'_>) -> bool {
        match a.request {
            Request::Resource {
                verb,
                namespace,
                group,
                resource,
                subresource,
            } => {
                if let Some(permissions) = &self.resource_permissions {
                    permissions.iter().any(|p| {
                        let Some((ns, res)) = &p.scope else {
                            return false;
                        };
                        // A cluster-wide request: only a `*` namespace applies.
                        if ns.raw != "*" && namespace.is_empty() {
                            return false;
                        }
                        ns.selects(namespace) && res.selects(resource) && p.verbs.has(verb)
                    })
                } else if let Some(spec) = &self.resource {
                    let is = |field: &Option<String>, value: &str| {
                        field.as_deref().is_some_and(|f| f == "*" || f == value)
                    };
                    let resources = &spec.resources;
                    let resource_ok = contains(resources, "*")
                        || if subresource.is_empty() {
                            contains(resources, resource)
                        } else {
                            contains(resources, &format!("{resource}/*"))
                                || contains(resources, &format!("{resource}/{subresource}"))
                        };
                    is(&spec.version, group)
                        && is(&spec.namespace, namespace)
                        && resource_ok
                        && (contains(&spec.verbs, "*") || contains(&spec.verbs, verb))
                        && matches(&self.matches, &a.user)
                } else {
                    false
                }
            }
            Request::NonResource { verb, path } => {
                if let Some(permissions) = &self.nonresource_permissions {
                    permissions
                        .iter()
                        .any(|(p, verbs)| p == path && verbs.has(verb))
                } else if let Some(spec) = &self.nonresource {
                    let Some(pattern) = spec.path.as_deref() else {
                        return false;
                    };
                    if contains(&spec.verbs, "") {
                        return false;
                    }
                    let path_ok = pattern == "*"
                        || pattern == path
                        || (pattern.ends_with('*')
                            && path.starts_with(pattern.trim_end_matches('*')));
                    (contains(&spec.verbs, "*") || contains(&spec.verbs, verb))
                        && path_ok
                        && matches(&self.matches, &a.user)
                } else {
                    false
                }
            }
        }
    }

    /// One line: what the rule allows, to whom.
    pub(super) fn describe(&self) -> String {
        let mut what = Vec::new();
        if let Some(permissions) = &self.resource_permissions {
            let items: Vec<String> = permissions
                .iter()
                .map(|p| format!("{:?} {}", p.key, list(&p.verbs.verbs)))
                .collect();
            what.push(format!("resources {}", items.join(", ")));
        }
        if let Some(permissions) = &self.nonresource_permissions {
            let items: Vec<String> = permissions
                .iter()
                .map(|(p, v)| format!("{p:?} {}", list(&v.verbs)))
                .collect();
            what.push(format!("paths {}", items.join(", ")));
        }
        if let (Some(spec), None) = (&self.resource, &self.resource_permissions) {
            what.push(format!(
                "verbs {} on {} in API group {:?}, namespace {:?}",
                list(spec.verbs.as_deref().unwrap_or_default()),
                list(spec.resources.as_deref().unwrap_or_default()),
                spec.version.as_deref().unwrap_or_default(),
                spec.namespace.as_deref().unwrap_or_default(),
            ));
        }
        if let (Some(spec), None) = (&self.nonresource, &self.nonresource_permissions) {
            what.push(format!(
                "verbs {} on path {:?}",
                list(spec.verbs.as_deref().unwrap_or_default()),
                spec.path.as_deref().unwrap_or_default(),
            ));
        }
        let what = if what.is_empty() {
            "nothing".to_owned()
        } else {
            what.join("; ")
        };
        let mut who = Vec::new();
        if let Some(users) = &self.users {
            who.push(format!(
                "roles ⊇ {} in a project of {}",
                list(&users.roles),
                list(&users.projects)
            ));
        }
        if self.resource.is_some() && self.resource_permissions.is_none()
            || self.nonresource.is_some() && self.nonresource_permissions.is_none()
        {
            who.extend(self.matches.iter().map(|m| {
                format!(
                    "{} in {}",
                    m.kind,
                    list(m.values.as_deref().unwrap_or_default())
                )
            }));
        }
        let who = if who.is_empty() {
            "every user".to_owned()
        } else {
            who.join(" and ")
        };
        format!("rule {}: allows {what} to {who}", self.number)
    }

    /// The parts of the rule that can never apply, one line each.
    pub(super) fn warnings(&self) -> Vec<String> {
        let n = self.number;
        let mut out = Vec::new();
        if let Some(users) = &self.users {
            if users.projects.is_empty() {
                out.push(format!(
                    "rule {n}: `users` has no `projects`, so it applies to no one"
                ));
            }
        }
        for p in self.resource_permissions.iter().flatten() {
            match &p.scope {
                None => out.push(format!(
                    "rule {n}: resource_permissions key {:?} is not `namespace/resource`; ignored",
                    p.key
                )),
                Some((ns, res)) => {
                    for side in [ns, res] {
                        if matches!(side.kind, Kind::Invalid) {
                            out.push(format!(
                                "rule {n}: resource_permissions key {:?}: {:?} is not a list of names; ignored",
                                p.key, side.raw
                            ));
                        }
                    }
                }
            }
        }
        let v1_resource = self
            .resource
            .as_ref()
            .filter(|_| self.resource_permissions.is_none());
        let v1_nonresource = self
            .nonresource
            .as_ref()
            .filter(|_| self.nonresource_permissions.is_none());
        if self.resource.is_some() && v1_resource.is_none() {
            out.push(format!(
                "rule {n}: `resource` is ignored: `resource_permissions` takes precedence"
            ));
        }
        if self.nonresource.is_some() && v1_nonresource.is_none() {
            out.push(format!(
                "rule {n}: `nonresource` is ignored: `nonresource_permissions` takes precedence"
            ));
        }
        if let Some(spec) = v1_resource {
            if spec.resources.as_deref().unwrap_or_default().is_empty()
                || spec.verbs.as_deref().unwrap_or_default().is_empty()
            {
                out.push(format!(
                    "rule {n}: `resource` lists no resources or no verbs; it never matches"
                ));
            }
        }
        if let Some(spec) = v1_nonresource {
            if spec.path.is_none() || contains(&spec.verbs, "") {
                out.push(format!(
                    "rule {n}: `nonresource` has no `path` or an empty verb; it never matches"
                ));
            }
        }
        if v1_resource.is_some() || v1_nonresource.is_some() {
            for m in &self.matches {
                if !TYPES.contains(&m.kind.as_str()) {
                    out.push(format!(
                        "rule {n}: match type {:?} is not user, group, project or role; it never matches",
                        m.kind
                    ));
                }
            }
        }
        out
    }
}

const TYPES: [&str; 4] = ["group", "project", "role", "user"];

/// `match`: every entry holds (`*` values: any); an unknown type fails.
fn matches(entries: &[Match], user: &User<'_>) -> bool {
    entries.iter().all(|m| {
        if !TYPES.contains(&m.kind.as_str()) {
            return false;
        }
        let values = m.values.as_deref().unwrap_or_default();
        if values.iter().any(|v| v == "*") {
            return true;
        }
        let any_in = |items: &[String]| items.iter().any(|i| values.contains(i));
        match m.kind.as_str() {
            "group" => any_in(user.groups),
            "user" => values.iter().any(|v| v == user.name || v == user.uid),
            "project" => any_in(user.extra(PROJECT_ID)) || any_in(user.extra(PROJECT_NAME)),
            _ => any_in(user.extra(ROLES)),
        }
    })
}
