//! k8s-keystone-auth's authorization policy (cloud-provider-openstack
//! `pkg/identity/keystone/policy.go`), read unchanged, and its decision
//! ([`Policy::decide`], in [`eval`]: `authorizer.go`'s `Authorize`).
//!
//! A policy is a JSON list of rules, each in one of its two formats (one
//! file may mix them):
//!
//! - version 1: `resource` (`verbs`, `resources`, `version` — matched
//!   against the API *group* —, `namespace`) or `nonresource` (`verbs`,
//!   `path`, a trailing `*` matching sub-paths), and `match`: a list of
//!   `{type, values}` (`user`, `group`, `project`, `role`), all of which
//!   must hold;
//! - version 2: `users` (`roles` the user must all hold, `projects` one of
//!   which must be the token's, by name or id), `resource_permissions`
//!   (`"namespace/resource": [verbs]`, each side `*`, a name, `!name`, a
//!   list `['a', 'b']` or `!['a', 'b']`) and `nonresource_permissions`
//!   (`"/path": [verbs]`); version 2 takes precedence over version 1 in
//!   the same rule.
//!
//! The text is that list, as k8s-keystone-auth's `--policy-file` reads it,
//! or a ConfigMap manifest whose `data.policies` holds it, as its
//! `--policy-configmap-name` does. Unlike k8s-keystone-auth, a key it would
//! ignore is refused: a misspelt `match` or `users.roles` silently widens a
//! rule to every user there. Parsing does no I/O.

pub mod eval;

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Deserialize;

pub use eval::{Attributes, Decision, Reason, Request, User};

/// The `extra` key k8s-keystone-auth's TokenReview answer lists the
/// token's roles under.
pub const ROLES: &str = "alpha.kubernetes.io/identity/roles";
/// The `extra` key of the token's project id.
pub const PROJECT_ID: &str = "alpha.kubernetes.io/identity/project/id";
/// The `extra` key of the token's project name.
pub const PROJECT_NAME: &str = "alpha.kubernetes.io/identity/project/name";

/// Why a policy text cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a JSON list of rules (or a rule with a key no format has).
    #[error("is not a k8s-keystone-auth policy list: {0}")]
    Json(String),
    /// Not YAML, or a YAML document that is not a ConfigMap with
    /// `data.policies`.
    #[error("is neither a JSON policy list nor a ConfigMap with data.policies: {0}")]
    ConfigMap(String),
    /// A rule lacks a key k8s-keystone-auth needs (it would crash on it).
    #[error("rule {rule}: `{key}` is missing; {fix}")]
    Missing {
        /// The rule, counted from 1.
        rule: usize,
        /// The key, dotted (`resource.version`).
        key: &'static str,
        /// What to write.
        fix: &'static str,
    },
}

/// One rule of the file, as written (k8s-keystone-auth's `policy`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Version 1, resource requests.
    pub resource: Option<ResourceSpec>,
    /// Version 1, non-resource requests.
    pub nonresource: Option<NonResourceSpec>,
    /// Version 1: who (every entry must hold; none: everyone).
    #[serde(rename = "match")]
    pub matches: Option<Vec<Match>>,
    /// Version 2: `"namespace/resource"` → verbs.
    pub resource_permissions: Option<BTreeMap<String, Vec<String>>>,
    /// Version 2: `"/path"` → verbs.
    pub nonresource_permissions: Option<BTreeMap<String, Vec<String>>>,
    /// Version 2: whom the rule is for (absent: everyone).
    pub users: Option<Users>,
}

/// Version 1 `resource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// Verbs (`*`: all).
    pub verbs: Option<Vec<String>>,
    /// Resources, `resource` or `resource/subresource` or `resource/*`
    /// (`*`: all).
    pub resources: Option<Vec<String>>,
    /// The API group (`""` the core group, `*` all); k8s-keystone-auth
    /// calls it `version`.
    pub version: Option<String>,
    /// The namespace (`*`: all, cluster-wide requests included).
    pub namespace: Option<String>,
}

/// Version 1 `nonresource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonResourceSpec {
    /// Verbs (`*`: all).
    pub verbs: Option<Vec<String>>,
    /// The path (`*`: all; `/foo/*`: every path starting `/foo/`).
    pub path: Option<String>,
}

/// Version 1 `match` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// `user`, `group`, `project` or `role` (any other never matches).
    #[serde(rename = "type")]
    pub kind: String,
    /// The accepted values (`*`: any).
    pub values: Option<Vec<String>>,
}

/// Version 2 `users`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Roles the token must all carry.
    pub roles: Option<Vec<String>>,
    /// Projects (names or ids), one of which must be the token's.
    pub projects: Option<Vec<String>>,
}

/// A loaded policy: its rules, in file order (any that allows decides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<eval::Compiled>,
}

/// The ConfigMap form: only `data.policies` is read.
#[derive(Deserialize)]
struct ConfigMap {
    kind: Option<String>,
    data: Option<ConfigMapData>,
}

#[derive(Deserialize)]
struct ConfigMapData {
    policies: Option<String>,
}

impl Policy {
    /// Parses a policy file's text: the JSON list, or a ConfigMap manifest
    /// holding it in `data.policies`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.trim_start().starts_with('[') {
            return Self::parse_list(text);
        }
        let map: ConfigMap =
            serde_yaml_ng::from_str(text).map_err(|e| Error::ConfigMap(e.to_string()))?;
        if map.kind.as_deref() != Some("ConfigMap") {
            return Err(Error::ConfigMap("`kind` is not ConfigMap".into()));
        }
        let list = map
            .data
            .and_then(|d| d.policies)
            .ok_or_else(|| Error::ConfigMap("no `data.policies`".into()))?;
        Self::parse_list(&list)
    }

    /// Parses the JSON list of rules.
    fn parse_list(text: &str) -> Result<Self, Error> {
        // A `null` entry is refused (k8s-keystone-auth would crash on it).
        let rules: Vec<Rule> =
            serde_json::from_str(text).map_err(|e| Error::Json(e.to_string()))?;
        let rules = rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| eval::Compiled::new(i + 1, rule))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule (every request: no opinion).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// One line per rule: what it allows, to whom.
    pub fn describe(&self) -> Vec<String> {
        self.rules.iter().map(eval::Compiled::describe).collect()
    }

    /// One line per rule part that can never apply (k8s-keystone-auth
    /// skips it): a `users` without `projects`, an unknown `match` type, a
    /// key that is not `namespace/resource`, a list that does not parse...
    pub fn warnings(&self) -> Vec<String> {
        self.rules
            .iter()
            .flat_map(eval::Compiled::warnings)
            .collect()
    }
}

/// `[a, b]`, each value as written.
pub(crate) fn list(values: &[String]) -> String {
    let mut out = String::from("[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{v:?}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests;
