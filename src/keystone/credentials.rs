//! How stonegate authenticates itself to Keystone: the [`ServiceCredentials`]
//! that `[keystone_authtoken]`'s `auth_type` and its options name, Identity
//! v3 (`password`, `v3applicationcredential`) or v2.0 (`password`).

use secrecy::SecretString;

use super::settings::Section;
use crate::settings::{problem, secret, Env, Problem};

/// Environment variable that may hold the service user's password.
pub const PASSWORD_ENV: &str = "STONEGATE_PASSWORD";
/// Environment variable that may hold the application credential secret.
pub const APP_CRED_SECRET_ENV: &str = "STONEGATE_APPLICATION_CREDENTIAL_SECRET";

/// How stonegate authenticates itself to Keystone.
#[derive(Debug, Clone)]
pub enum ServiceCredentials {
    /// `auth_type = password`.
    Password {
        /// `{"id": ...}` or `{"name": ..., "domain": {...}}` of the user.
        user: serde_json::Value,
        /// The password.
        password: SecretString,
        /// The `scope` object, if any.
        scope: Option<serde_json::Value>,
    },
    /// `auth_type = password` with `auth_version = "v2.0"`: keystoneauth's
    /// v2 `passwordCredentials`.
    PasswordV2 {
        /// `("username", name)` or `("userId", id)`.
        user: (&'static str, String),
        /// The password.
        password: SecretString,
        /// `("tenantId", id)` or `("tenantName", name)`, if scoped.
        tenant: Option<(&'static str, String)>,
    },
    /// `auth_type = v3applicationcredential`.
    ApplicationCredential {
        /// Credential id.
        id: String,
        /// Credential secret.
        secret: SecretString,
    },
}

impl Section {
    /// The v3 credentials (`auth_type` `password` or
    /// `v3applicationcredential`), recording problems in `p`.
    pub(super) fn credentials(
        &self,
        p: &mut Vec<Problem>,
        env: Env<'_>,
    ) -> Option<ServiceCredentials> {
        let ks = self;
        match ks.auth_type.as_str() {
            "password" => {
                let domain = |id: &Option<String>, name: &Option<String>| match (id, name) {
                    (Some(id), _) => Some(serde_json::json!({ "id": id })),
                    (None, Some(name)) => Some(serde_json::json!({ "name": name })),
                    (None, None) => None,
                };
                let user = match (&ks.user_id, &ks.username) {
                    (Some(id), _) => Some(serde_json::json!({ "id": id })),
                    (None, Some(name)) => match domain(&ks.user_domain_id, &ks.user_domain_name) {
                        Some(d) => Some(serde_json::json!({ "name": name, "domain": d })),
                        None => {
                            problem(
                                p,
                                "keystone_authtoken.user_domain_name",
                                "username needs user_domain_id or user_domain_name",
                            );
                            None
                        }
                    },
                    (None, None) => {
                        problem(
                            p,
                            "keystone_authtoken.username",
                            "is required with auth_type = \"password\" (or set user_id)",
                        );
                        None
                    }
                };
                let scope = match (&ks.project_id, &ks.project_name) {
                    (Some(id), _) => Some(serde_json::json!({ "project": { "id": id } })),
                    (None, Some(name)) => {
                        match domain(&ks.project_domain_id, &ks.project_domain_name) {
                            Some(d) => Some(
                                serde_json::json!({ "project": { "name": name, "domain": d } }),
                            ),
                            None => {
                                problem(
                                    p,
                                    "keystone_authtoken.project_domain_name",
                                    "project_name needs project_domain_id or project_domain_name",
                                );
                                None
                            }
                        }
                    }
                    (None, None) => None,
                };
                let password = secret(
                    p,
                    "keystone_authtoken.password",
                    &ks.password,
                    &ks.password_file,
                    PASSWORD_ENV,
                    env,
                );
                Some(ServiceCredentials::Password {
                    user: user?,
                    password: password?,
                    scope,
                })
            }
            "v3applicationcredential" => {
                let id = ks.application_credential_id.clone();
                if id.is_none() {
                    problem(
                        p,
                        "keystone_authtoken.application_credential_id",
                        "is required with auth_type = \"v3applicationcredential\"",
                    );
                }
                let secret = secret(
                    p,
                    "keystone_authtoken.application_credential_secret",
                    &ks.application_credential_secret,
                    &ks.application_credential_secret_file,
                    APP_CRED_SECRET_ENV,
                    env,
                );
                Some(ServiceCredentials::ApplicationCredential {
                    id: id?,
                    secret: secret?,
                })
            }
            other => {
                problem(
                    p,
                    "keystone_authtoken.auth_type",
                    &format!(
                        "{other:?} is not supported: use \"password\" or \"v3applicationcredential\""
                    ),
                );
                None
            }
        }
    }

    /// keystoneauth's v2 `password` plugin: `username` (else `user_id`),
    /// `project_id` (else `project_name`) as the tenant; domains do not exist
    /// in v2.0 and are ignored with a warning.
    pub(super) fn credentials_v2(
        &self,
        p: &mut Vec<Problem>,
        warnings: &mut Vec<Problem>,
        env: Env<'_>,
    ) -> Option<ServiceCredentials> {
        let ks = self;
        if ks.auth_type != "password" {
            problem(
                p,
                "keystone_authtoken.auth_type",
                &format!(
                    "{:?} is not available with auth_version = \"v2.0\": use \"password\" (application credentials need Identity v3)",
                    ks.auth_type
                ),
            );
            return None;
        }
        for (key, value) in [
            ("user_domain_id", &ks.user_domain_id),
            ("user_domain_name", &ks.user_domain_name),
            ("project_domain_id", &ks.project_domain_id),
            ("project_domain_name", &ks.project_domain_name),
        ] {
            if value.is_some() {
                problem(
                    warnings,
                    &format!("keystone_authtoken.{key}"),
                    "ignored: Identity v2.0 (auth_version) has no domains",
                );
            }
        }
        let user = match (&ks.username, &ks.user_id) {
            (Some(name), _) => Some(("username", name.clone())),
            (None, Some(id)) => Some(("userId", id.clone())),
            (None, None) => {
                problem(
                    p,
                    "keystone_authtoken.username",
                    "is required with auth_type = \"password\" (or set user_id)",
                );
                None
            }
        };
        let tenant = match (&ks.project_id, &ks.project_name) {
            (Some(id), _) => Some(("tenantId", id.clone())),
            (None, Some(name)) => Some(("tenantName", name.clone())),
            (None, None) => None,
        };
        let password = secret(
            p,
            "keystone_authtoken.password",
            &ks.password,
            &ks.password_file,
            PASSWORD_ENV,
            env,
        );
        Some(ServiceCredentials::PasswordV2 {
            user: user?,
            password: password?,
            tenant,
        })
    }
}
