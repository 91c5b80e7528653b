//! Role mappings: a Keystone role adds Kubernetes groups to, or sets the
//! username of, every user whose token holds it — k8s-keystone-auth's
//! `role-mappings` (its sync configuration file, `--sync-config-file`),
//! read unchanged:
//!
//! ```yaml
//! role-mappings:
//!   - keystone-role: admin
//!     groups: ["system:masters"]
//!   - keystone-role: viewer
//!     username: read-only
//! ```
//!
//! Mappings apply in file order, as k8s-keystone-auth's `syncRoles`: every
//! matching mapping appends its groups, and the last matching `username`
//! wins. The file's other keys (namespace and role-assignment
//! synchronisation) are read and not acted on: stonegate does not write to
//! the Kubernetes API.

use serde::Deserialize;

use super::token_review::UserInfo;

/// The role mappings of one file, in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMappings(Vec<Mapping>);

/// One mapping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The Keystone role name that triggers it.
    #[serde(rename = "keystone-role", default)]
    pub keystone_role: String,
    /// The Kubernetes username it sets, when not empty.
    #[serde(default)]
    pub username: String,
    /// The Kubernetes groups it adds.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// k8s-keystone-auth's sync configuration, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncConfig {
    #[serde(rename = "role-mappings", default)]
    role_mappings: Vec<Mapping>,
    /// Synchronisation keys stonegate accepts and does not act on.
    #[serde(rename = "data-types-to-sync", default)]
    _data_types_to_sync: Vec<String>,
    #[serde(rename = "namespace-format", default)]
    _namespace_format: Option<String>,
    #[serde(rename = "projects-blacklist", default)]
    _projects_blacklist: Vec<String>,
    #[serde(rename = "projects-name-blacklist", default)]
    _projects_name_blacklist: Vec<String>,
}

impl RoleMappings {
    /// Parses a role-mappings (sync configuration) file's text; the error
    /// names the key or line that is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: SyncConfig = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        for (i, m) in config.role_mappings.iter().enumerate() {
            if m.keystone_role.is_empty() {
                return Err(format!("role-mappings[{i}]: keystone-role is required"));
            }
            if m.username.is_empty() && m.groups.is_empty() {
                return Err(format!(
                    "role-mappings[{i}] ({:?}): sets neither username nor groups",
                    m.keystone_role
                ));
            }
        }
        Ok(Self(config.role_mappings))
    }

    /// The mappings, in file order.
    pub fn mappings(&self) -> &[Mapping] {
        &self.0
    }

    /// Applies the mappings whose role the user holds (`roles`) to `user`.
    pub fn apply(&self, roles: &[std::sync::Arc<str>], user: &mut UserInfo) {
        for m in &self.0 {
            if !roles.iter().any(|r| **r == *m.keystone_role) {
                continue;
            }
            user.groups.extend(m.groups.iter().cloned());
            if !m.username.is_empty() {
                user.username.clone_from(&m.username);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn user() -> UserInfo {
        UserInfo {
            username: "alice".into(),
            uid: "u1".into(),
            groups: vec!["p1".into()],
            extra: BTreeMap::new(),
        }
    }

    /// k8s-keystone-auth's documented example, with the synchronisation keys
    /// beside the mappings.
    const FILE: &str = r#"
data-types-to-sync:
  - projects
namespace-format: "%n-%i"
role-mappings:
  - keystone-role: member
    groups: ["developers"]
  - keystone-role: admin
    username: cluster-admin
    groups: ["system:masters"]
  - keystone-role: reader
    username: viewer
"#;

    #[test]
    fn matching_roles_add_groups_and_the_last_username_wins() {
        let m = RoleMappings::parse(FILE).unwrap();
        let roles: Vec<std::sync::Arc<str>> = vec!["member".into(), "reader".into()];
        let mut u = user();
        m.apply(&roles, &mut u);
        assert_eq!(u.groups, ["p1", "developers"]);
        assert_eq!(u.username, "viewer");
        let mut admin = user();
        m.apply(&["admin".into()], &mut admin);
        assert_eq!(
            (admin.username.as_str(), admin.groups),
            ("cluster-admin", vec!["p1".into(), "system:masters".into()])
        );
        let mut none = user();
        m.apply(&["other".into()], &mut none);
        assert_eq!(none, user());
    }

    #[test]
    fn a_bad_file_names_what_is_wrong() {
        assert!(RoleMappings::parse("role-mappings:\n  - groups: [a]\n")
            .unwrap_err()
            .contains("keystone-role is required"));
        assert!(
            RoleMappings::parse("role-mappings:\n  - keystone-role: a\n")
                .unwrap_err()
                .contains("neither")
        );
        assert!(RoleMappings::parse("role-mapings: []\n")
            .unwrap_err()
            .contains("role-mapings"));
        assert_eq!(RoleMappings::parse("").unwrap(), RoleMappings::default());
    }
}
