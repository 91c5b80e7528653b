//! `[kubernetes]`: the kube-apiserver webhook listener (TLS only), its role
//! mappings and the authorization policy file, as written ([`Section`]) and
//! checked ([`Settings`]).

use std::net::SocketAddr;

use serde::Deserialize;

use super::{policy::Policy, role_mappings::RoleMappings};
use crate::settings::{addr, existing_file, problem, Problem};

/// `[kubernetes]`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Address the webhook listens on (TLS), e.g. `"0.0.0.0:8443"`.
    pub listen: Option<String>,
    /// The listener's certificate chain (PEM); reloaded when it changes.
    pub cert_file: Option<String>,
    /// The listener's private key (PEM).
    pub key_file: Option<String>,
    /// k8s-keystone-auth's role-mappings (sync configuration) file.
    pub role_mappings_file: Option<String>,
    /// k8s-keystone-auth's authorization policy file (SubjectAccessReview).
    pub policy_file: Option<String>,
    /// Only project-scoped tokens authenticate (k8s-keystone-auth's groups
    /// and `extra` keys name a project); `false` lets domain-scoped and
    /// unscoped tokens authenticate too, without the project group and keys.
    #[serde(default = "yes")]
    pub require_project_scope: bool,
}

fn yes() -> bool {
    true
}

/// `[kubernetes]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The webhook's TLS listener.
    pub listen: SocketAddr,
    /// Certificate chain (PEM).
    pub cert_file: String,
    /// Private key (PEM).
    pub key_file: String,
    /// The role mappings (empty without `role_mappings_file`).
    pub role_mappings: RoleMappings,
    /// The authorization policy file (`policy_file`), when set.
    pub policy_file: Option<String>,
    /// Its policy: `None` without `policy_file` (every SubjectAccessReview
    /// is then no opinion).
    pub policy: Option<Policy>,
    /// Whether only project-scoped tokens authenticate.
    pub require_project_scope: bool,
}

impl Section {
    /// Checks the section, recording every problem under `kubernetes.<key>`.
    pub fn build(&self, p: &mut Vec<Problem>) -> Option<Settings> {
        let before = p.len();
        let listen = addr(p, "kubernetes.listen", self.listen.as_deref());
        let mut file = |key: &str, value: &Option<String>| -> Option<String> {
            match value {
                None => {
                    problem(
                        p,
                        &format!("kubernetes.{key}"),
                        "is required: the webhook is served over TLS only (the apiserver's kubeconfig names an https:// server)",
                    );
                    None
                }
                Some(_) => {
                    existing_file(p, &format!("kubernetes.{key}"), value);
                    value.clone()
                }
            }
        };
        let cert_file = file("cert_file", &self.cert_file);
        let key_file = file("key_file", &self.key_file);
        let policy =
            self.policy_file
                .as_ref()
                .and_then(|path| match std::fs::read_to_string(path) {
                    Ok(text) => Policy::parse(&text)
                        .map_err(|e| {
                            problem(p, "kubernetes.policy_file", &format!("{path}: {e}"));
                        })
                        .ok(),
                    Err(e) => {
                        problem(
                            p,
                            "kubernetes.policy_file",
                            &format!("cannot read {path:?}: {e}"),
                        );
                        None
                    }
                });
        let role_mappings = match &self.role_mappings_file {
            None => RoleMappings::default(),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => RoleMappings::parse(&text).unwrap_or_else(|e| {
                    problem(
                        p,
                        "kubernetes.role_mappings_file",
                        &format!("{path}: {e} (k8s-keystone-auth's format: role-mappings: [{{keystone-role, username, groups}}])"),
                    );
                    RoleMappings::default()
                }),
                Err(e) => {
                    problem(
                        p,
                        "kubernetes.role_mappings_file",
                        &format!("cannot read {path:?}: {e}"),
                    );
                    RoleMappings::default()
                }
            },
        };
        if p.len() > before {
            return None;
        }
        Some(Settings {
            listen: listen?,
            cert_file: cert_file?,
            key_file: key_file?,
            role_mappings,
            policy_file: self.policy_file.clone(),
            policy,
            require_project_scope: self.require_project_scope,
        })
    }
}
