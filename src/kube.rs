//! The kube-apiserver webhooks (`[kubernetes]`), a drop-in for
//! k8s-keystone-auth (cloud-provider-openstack `pkg/identity/keystone`, the
//! reference): `POST /webhook` on a TLS-only listener takes a TokenReview
//! (the authentication webhook, [`token_review`]) or a SubjectAccessReview
//! (the authorization webhook, [`authorization`], decided by the
//! k8s-keystone-auth [`policy`]), told apart by `kind` ([`webhook`]).
//!
//! A thin front door over the one validator: a TokenReview's token is
//! decided exactly as an `X-Auth-Token` (the same cache, local Fernet
//! validation, revocation events), then mapped to the apiserver's user info
//! as k8s-keystone-auth does — username = Keystone user name, uid = user
//! id, groups = the user's Keystone groups (`GET /v3/users/{id}/groups`
//! with the user's own token, cached per user; a federated token's own
//! mapped group ids, without a call) plus the project id,
//! `alpha.kubernetes.io/identity/...` extra keys — and k8s-keystone-auth's
//! role mappings are applied ([`role_mappings`]).
//!
//! The answers differ from k8s-keystone-auth's where the apiserver's cache
//! needs it (cloud-provider-openstack#1318): an invalid token is a 200 with
//! `authenticated: false`, which the apiserver caches; Keystone unavailable
//! is a 503, which it does not.

pub mod authorization;
pub mod policy;
pub mod role_mappings;
pub mod settings;
pub mod token_review;
pub mod webhook;

pub use settings::{Section, Settings};
pub use webhook::Webhook;
